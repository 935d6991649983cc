"""The schema: exact money on both backends, UTC time, identical tables, constraints in the DB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from billing import ledger
from billing.db.engine import make_engine
from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.db.migrate import current_revision, head_revision, upgrade
from billing.db.models import Base
from billing.ledger import Leg, TransactionRequest


@pytest.mark.parametrize("amount", ["0.000001", "999999999999.999999", "-999999999999.999999", "12.5"])
def test_money_round_trips_exactly_through_the_ledger(engine: Engine, amount: str) -> None:
    value = Decimal(amount)
    with Session(engine) as s, s.begin():
        a = ledger.open_account(s, code="a", name="a", kind="subscriber", currency="EUR")
        b = ledger.open_account(s, code="b", name="b", kind="revenue", currency="EUR")
        ledger.post(s, TransactionRequest("k", "charge", (Leg(a, value), Leg(b, -value)), datetime.now(UTC)))
    with Session(engine) as s:
        assert ledger.raw_balance(s, a) == value
        assert s.scalar(select(Posting.amount).where(Posting.ledger_account_id == b)) == -value
        raw = s.execute(
            text("SELECT amount FROM postings WHERE ledger_account_id = :a"), {"a": a}
        ).scalar_one()
    assert not isinstance(raw, float), "money must not pass through float in storage"


def test_sql_sum_of_money_is_exact(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        a = ledger.open_account(s, code="a", name="a", kind="subscriber", currency="EUR")
        b = ledger.open_account(s, code="b", name="b", kind="revenue", currency="EUR")
        tenth = Decimal("0.1")
        ledger.post_batch(
            s,
            [
                TransactionRequest(f"k{i}", "charge", (Leg(a, tenth), Leg(b, -tenth)), datetime.now(UTC))
                for i in range(10)
            ],
        )
    with Session(engine) as s:
        assert s.scalar(select(func.sum(Posting.amount)).where(Posting.ledger_account_id == a)) == Decimal(
            "1.000000"
        )


def test_money_with_seven_fraction_digits_is_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="fraction digits"), Session(engine) as s, s.begin():
        s.add(LedgerAccount(code="x", name="x", kind="equity", currency="EUR", balance=Decimal("0.0000001")))


def test_timestamps_come_back_as_aware_utc(engine: Engine) -> None:
    local = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    with Session(engine) as s, s.begin():
        s.add(LedgerAccount(code="t", name="t", kind="equity", currency="EUR", created_at=local))
    with Session(engine) as s:
        stored = s.scalar(select(LedgerAccount.created_at))
    assert stored == local and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored.astimezone(UTC).hour == 1


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive"), Session(engine) as s, s.begin():
        s.add(
            LedgerAccount(code="t", name="t", kind="equity", currency="EUR", created_at=datetime(2026, 1, 1))
        )


def test_idempotency_key_is_a_unique_constraint_in_the_database(engine: Engine) -> None:
    row = {"kind": "charge", "effective_at": datetime.now(UTC), "posting_count": 2, "content_hash": "h"}
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        s.add(LedgerTransaction(idempotency_key="k", **row))
        s.flush()
        s.add(LedgerTransaction(idempotency_key="k", **row))


def test_migrations_match_the_models_and_are_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def _shape(engine: Engine) -> dict[str, object]:
    insp = inspect(engine)
    shape: dict[str, object] = {}
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        shape[table] = {
            "columns": [(c["name"], c["nullable"]) for c in insp.get_columns(table)],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted(
                {tuple(u["column_names"]) for u in insp.get_unique_constraints(table)}
                | {tuple(i["column_names"]) for i in insp.get_indexes(table) if i["unique"]}
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(i["name"] for i in insp.get_indexes(table) if not i["unique"]),
        }
    return shape


def test_schema_is_identical_on_sqlite_and_postgresql(templates, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sqlite_url = templates.sqlite()
    pg_url = templates.postgresql()
    engines = [make_engine(sqlite_url), make_engine(pg_url)]
    try:
        lite, pg = (_shape(e) for e in engines)
    finally:
        for e in engines:
            e.dispose()
        templates.drop(sqlite_url)
        templates.drop(pg_url)
    assert lite.keys() == pg.keys()
    for table in lite:
        assert lite[table] == pg[table], table
