"""The stored tariff catalog (``billing.catalog``), on SQLite and PostgreSQL.

Import of the example catalog, re-import as a no-op, the used-version rule, all-or-nothing
with every problem listed, export round trip, dictionary checks, assigning a tariff.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from billing import catalog, dictionaries, subscribers
from billing.audit import Actor
from billing.catalog import (
    CatalogStoreError,
    assign_tariff,
    export_catalog,
    import_catalog,
    load_stored_catalog,
)
from billing.db.audit import AuditEntry
from billing.db.services import Service
from billing.db.tariffs import ADDON_KINDS
from rating.catalog import CatalogError, load_catalog
from rating.tariff import AddonKind

EXAMPLE = Path(__file__).resolve().parents[1] / "conf" / "tariffs" / "example.toml"
ROOT = Actor(None, "root")
TODAY = date(2026, 12, 1)
TABLES = ("tariffs", "tariff_versions", "bundles", "promotions", "catalog_imports", "audit_log")

SMALL = """\
[[tariffs]]
code = "HOME"
name = "Home"
kind = "internet"

[[tariffs.versions]]
version = 1
effective_from = 2026-01-01
currency = "EUR"
billing_mode = "prepaid"
fee = "{fee}"
period = "monthly"

[[tariffs.versions.prices]]
region = "north"
fee = "20.00"
{more}"""

FUTURE_VERSION = """
[[tariffs.versions]]
version = 2
effective_from = 2027-06-01
currency = "EUR"
billing_mode = "prepaid"
fee = "{fee}"
period = "monthly"
"""


def small(fee: str = "25.00", more: str = "") -> str:
    return SMALL.format(fee=fee, more=more)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


@pytest.fixture
def sessions_with_dictionaries(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Categories residential and business, regions north, south, rural and city."""
    with sessions.begin() as session:
        for kind, code in [
            ("subscriber_category", "residential"),
            ("subscriber_category", "business"),
            ("region", "north"),
            ("region", "south"),
            ("region", "rural"),
            ("region", "city"),
        ]:
            dictionaries.add(session, ROOT, kind, code, code.title())
    return sessions


def do_import(sessions: sessionmaker[Session], body: str, **options: object) -> catalog.ImportResult:
    with sessions.begin() as session:
        return import_catalog(session, body, "tariffs.toml", ROOT, today=TODAY, **options)  # type: ignore[arg-type]


def add_service(sessions: sessionmaker[Session], tariff: str | None = None) -> int:
    with sessions.begin() as session:
        info = subscribers.create(
            session, ROOT, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        account_id = session.scalar(
            text("SELECT id FROM accounts WHERE number = :n"), {"n": info.accounts[0].number}
        )
        service = Service(account_id=account_id, kind="internet", status="active", tariff_code=tariff)
        session.add(service)
        session.flush()
        return service.id


def test_addon_kinds_match_the_rating_model() -> None:
    assert tuple(kind.value for kind in AddonKind) == ADDON_KINDS


def test_import_example_then_reimport_is_a_no_op(sessions_with_dictionaries: sessionmaker[Session]) -> None:
    sessions = sessions_with_dictionaries
    body = EXAMPLE.read_text(encoding="utf-8")
    first = do_import(sessions, body)
    assert first.import_id is not None and first.counts()["tariffs_added"] == 11
    assert first.counts()["versions_added"] == 12 and first.counts()["bundles_added"] == 2
    assert any("speed profile" in w for w in first.warnings)  # no profiles defined: warnings only
    engine = sessions.kw["bind"]
    after_first = counts(engine)
    assert after_first["catalog_imports"] == 1
    again = do_import(sessions, body)
    assert not again.changed and again.import_id is None and again.unchanged_versions == 12
    assert counts(engine) == after_first
    with sessions() as session:
        stored = load_stored_catalog(session)
        audit_row = session.scalar(select(AuditEntry).where(AuditEntry.action == "tariff.import"))
    assert stored == load_catalog(body, source="example")
    assert audit_row is not None and audit_row.after["counts"]["versions_added"] == 12


def test_export_round_trips(sessions_with_dictionaries: sessionmaker[Session]) -> None:
    sessions = sessions_with_dictionaries
    do_import(sessions, EXAMPLE.read_text(encoding="utf-8"))
    with sessions() as session:
        exported = export_catalog(session)
        stored = load_stored_catalog(session)
    assert load_catalog(exported, source="export") == stored
    before = counts(sessions.kw["bind"])
    assert not do_import(sessions, exported).changed
    assert counts(sessions.kw["bind"]) == before


def test_new_versions_are_added_and_unused_ones_may_change(
    sessions_with_dictionaries: sessionmaker[Session],
) -> None:
    sessions = sessions_with_dictionaries
    do_import(sessions, small())
    added = do_import(sessions, small(more=FUTURE_VERSION.format(fee="30.00")))
    assert [str(c) for c in added.changes] == ["version HOME v2 added"] and added.unchanged_versions == 1
    add_service(sessions, "HOME")
    # version 2 starts after today: nothing can have been charged with it yet
    replaced = do_import(sessions, small(more=FUTURE_VERSION.format(fee="31.00")))
    assert [str(c) for c in replaced.changes] == ["version HOME v2 replaced"]
    with sessions() as session:
        assert load_stored_catalog(session).tariff("HOME").version(2).recurring.amount == 31  # type: ignore[union-attr]


def test_a_changed_used_version_is_refused_and_nothing_is_written(
    sessions_with_dictionaries: sessionmaker[Session],
) -> None:
    sessions = sessions_with_dictionaries
    do_import(sessions, small())
    add_service(sessions, "HOME")
    before = counts(sessions.kw["bind"])
    with pytest.raises(CatalogError) as refused:
        do_import(sessions, small(fee="26.00", more=FUTURE_VERSION.format(fee="30.00")))
    (problem,) = refused.value.problems
    assert str(problem).startswith(
        'tariffs.toml: tariffs[0].versions[0]: version 1 of "HOME" is in use (1 service have the tariff'
    )
    assert "add version 3 with a later effective_from instead" in str(problem)
    assert counts(sessions.kw["bind"]) == before  # version 2 was not added either
    with sessions() as session:
        assert load_stored_catalog(session).tariff("HOME").version(1).recurring.amount == 25  # type: ignore[union-attr]


def test_without_services_a_version_may_still_change(
    sessions_with_dictionaries: sessionmaker[Session],
) -> None:
    do_import(sessions_with_dictionaries, small())
    result = do_import(sessions_with_dictionaries, small(fee="26.00"))
    assert [str(c) for c in result.changes] == ["version HOME v1 replaced"]


def test_every_problem_is_reported_at_once(sessions_with_dictionaries: sessionmaker[Session]) -> None:
    sessions = sessions_with_dictionaries
    body = (
        small()
        .replace('region = "north"', 'region = "nort"\ncategory = "vip"')
        .replace('currency = "EUR"', 'currency = "XYZ"')
    )
    before = counts(sessions.kw["bind"])
    with pytest.raises(CatalogError) as refused:
        do_import(sessions, body)
    assert [str(p) for p in refused.value.problems] == [
        'tariffs.toml: tariffs[0].versions[0].currency: currency "XYZ" is not one we bill in (known: '
        + ", ".join(sorted(catalog.CURRENCY_MINOR_UNITS))
        + ")",
        'tariffs.toml: tariffs[0].versions[0].prices[0].category: unknown category "vip"'
        " (known: business, residential)",
        'tariffs.toml: tariffs[0].versions[0].prices[0].region: unknown region "nort"'
        " (known: city, north, rural, south)",
    ]
    assert counts(sessions.kw["bind"]) == before


def test_file_and_database_problems_are_reported_together(
    sessions_with_dictionaries: sessionmaker[Session],
) -> None:
    body = small(fee="25.5.0").replace('region = "north"', 'region = "nort"')
    with pytest.raises(CatalogError) as refused:
        do_import(sessions_with_dictionaries, body)
    keys = [p.key for p in refused.value.problems]
    assert "tariffs[0].versions[0].fee" in keys and "tariffs[0].versions[0].prices[0].region" in keys


def test_dry_run_writes_nothing(sessions_with_dictionaries: sessionmaker[Session]) -> None:
    sessions = sessions_with_dictionaries
    before = counts(sessions.kw["bind"])
    result = do_import(sessions, small(), dry_run=True)
    assert result.dry_run and [str(c) for c in result.changes] == [
        "tariff HOME added",
        "version HOME v1 added",
    ]
    assert counts(sessions.kw["bind"]) == before


def test_a_stored_version_missing_from_the_file_is_refused(
    sessions_with_dictionaries: sessionmaker[Session],
) -> None:
    sessions = sessions_with_dictionaries
    do_import(sessions, small(more=FUTURE_VERSION.format(fee="30.00")))
    with pytest.raises(
        CatalogError, match=r"tariffs\[0\]\.versions: version 2 \(effective 2027-06-01\) is stored"
    ):
        do_import(sessions, small())


def test_a_partial_file_keeps_the_stored_rest(sessions_with_dictionaries: sessionmaker[Session]) -> None:
    sessions = sessions_with_dictionaries
    do_import(sessions, EXAMPLE.read_text(encoding="utf-8"))
    result = do_import(sessions, small())
    assert [str(c) for c in result.changes] == ["tariff HOME added", "version HOME v1 added"]
    with sessions() as session:
        assert len(load_stored_catalog(session).tariffs) == 12


def test_assign_tariff(sessions_with_dictionaries: sessionmaker[Session]) -> None:
    sessions = sessions_with_dictionaries
    do_import(sessions, EXAMPLE.read_text(encoding="utf-8"))
    service_id = add_service(sessions)
    with sessions.begin() as session:
        with pytest.raises(CatalogStoreError, match="TV-BASIC is a tv tariff, the service is internet"):
            assign_tariff(session, ROOT, service_id, "TV-BASIC", date(2025, 3, 1))
        with pytest.raises(CatalogStoreError, match="no version effective on 2024-12-31"):
            assign_tariff(session, ROOT, service_id, "HOME-100", date(2024, 12, 31))
        with pytest.raises(CatalogStoreError, match="WELCOME cannot be granted on 2026-02-01"):
            assign_tariff(session, ROOT, service_id, "HOME-100", date(2026, 2, 1), promotion_code="WELCOME")
        done = assign_tariff(
            session,
            ROOT,
            service_id,
            "HOME-100",
            date(2025, 3, 1),
            promotion_code="WELCOME",
            billing_anchor_day=15,
        )
    assert (done.version, done.billing_anchor_day) == (1, 15)
    with sessions() as session:
        service = session.get(Service, service_id)
        assert service is not None and (service.tariff_code, service.activated_on) == (
            "HOME-100",
            date(2025, 3, 1),
        )
        assert session.scalar(select(func.count()).where(AuditEntry.action == "service.assign_tariff")) == 1
    # the tariff is now in use: its past versions are frozen
    body = EXAMPLE.read_text(encoding="utf-8").replace('fee = "25.00"', 'fee = "25.50"')
    with pytest.raises(CatalogError, match=r'tariffs\[0\]\.versions\[0\]: version 1 of "HOME-100" is in use'):
        do_import(sessions, body)
    # and so is the promotion a service holds
    body = EXAMPLE.read_text(encoding="utf-8").replace('percent_off = "50"', 'percent_off = "40"')
    with pytest.raises(CatalogError, match=r'promotions\[0\]: promotion "WELCOME" is held by 1 service'):
        do_import(sessions, body)


def test_the_database_refuses_an_unknown_tariff_code(
    sessions_with_dictionaries: sessionmaker[Session],
) -> None:
    from sqlalchemy.exc import IntegrityError

    service_id = add_service(sessions_with_dictionaries)
    with pytest.raises(IntegrityError), sessions_with_dictionaries.begin() as session:
        session.execute(text("UPDATE services SET tariff_code = 'NOPE' WHERE id = :id"), {"id": service_id})
    with pytest.raises(IntegrityError), sessions_with_dictionaries.begin() as session:
        session.execute(
            text("UPDATE services SET billing_anchor_day = 29 WHERE id = :id"), {"id": service_id}
        )
