"""The audit service: rows written with the change, JSON-safe values, search, and no way to edit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from billing import audit
from billing.audit import Actor
from billing.db.audit import AuditEntry

ACTOR = Actor(None, "alice", "root", "test")


def test_record_is_json_safe_and_searchable(sessions: sessionmaker[Session]) -> None:
    at = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    with sessions.begin() as session:
        audit.record(session, ACTOR, "thing.create", "thing", 7, after={"amount": Decimal("1.50"), "at": at})
        audit.record(session, Actor(None, "bob"), "thing.update", "thing", 7, before={"n": 1}, after={"n": 2})
    with sessions() as session:
        [first] = audit.search(session, operator="root")  # matches the impersonating login too
        assert first.after == {"amount": "1.50", "at": "2025-05-01T12:00:00Z"}
        assert (first.operator_login, first.impersonated_by, first.source) == ("alice", "root", "test")
        assert [r.action for r in audit.search(session, action="thing.*")] == ["thing.update", "thing.create"]
        assert [
            r.operator_login for r in audit.search(session, object_type="thing", object_id="7", limit=1)
        ] == ["bob"]
        future = datetime.now(UTC) + timedelta(days=1)
        assert audit.search(session, since=future) == []
        assert len(audit.search(session, until=future)) == 2


def test_record_rolls_back_with_the_change(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), sessions.begin() as session:
        audit.record(session, ACTOR, "thing.create", "thing", 1)
        raise RuntimeError("the change failed")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_unknown_outcome_and_naive_times_are_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        with pytest.raises(ValueError, match="outcome"):
            audit.record(session, ACTOR, "x", "y", None, outcome="maybe")
        with pytest.raises(ValueError, match="naive"):
            audit.json_safe({"at": datetime(2025, 1, 1)})


def test_the_database_refuses_update_and_delete(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        audit.record(session, ACTOR, "thing.create", "thing", 1)
    with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as session:
        session.execute(update(AuditEntry).values(action="thing.forged"))
    with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as session:
        session.execute(text("DELETE FROM audit_log"))
    with sessions() as session:
        assert session.scalars(select(AuditEntry.action)).all() == ["thing.create"]


def test_the_service_has_no_edit_path() -> None:
    assert not any(name.startswith(("update", "delete", "edit", "remove")) for name in dir(audit))
