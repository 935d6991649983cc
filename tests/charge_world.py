"""What the charge-run tests share: an operator, the dictionaries and the golden catalog."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from billing import dictionaries, operators
from billing.audit import Actor
from billing.catalog import import_catalog
from billing.permissions import resolve_actor

GOLDEN = Path(__file__).parent / "golden" / "charges"


def charging_operator(sessions: sessionmaker[Session]) -> Actor:
    """The operator ``tester``, the category, region and reason dictionaries, the golden catalog."""
    with sessions.begin() as s:
        operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
        actor = resolve_actor(s, "tester", source="test")
        for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
            dictionaries.add(s, actor, kind, code, code.title())
        dictionaries.add(s, actor, "adjustment_reason", "goodwill", "Goodwill")
        import_catalog(
            s, (GOLDEN / "catalog.toml").read_text(), "catalog.toml", actor, today=date(2026, 12, 1)
        )
    return actor
