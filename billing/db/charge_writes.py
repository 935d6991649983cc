"""How a charge run's own rows reach the database: ``charges`` and ``charge_marks`` in bulk.

A monthly run writes one ``charges`` row per posted line and one ``charge_marks`` row per
service, a million of each at full size. On PostgreSQL the charges go through COPY (in the
batch's transaction, after the ledger's own COPY) and the marks through one
``INSERT .. SELECT unnest(..) ON CONFLICT`` statement: per-row parameters cost more in Python
than the database spends on the rows. SQLite (the embedded default, small installations)
takes the portable SQLAlchemy Core statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from billing.db.charges import Charge, ChargeMark
from billing.db.ledger_writes import id_array, raw_cursor

CHARGE_COLUMNS = (
    "idempotency_key",
    "service_id",
    "account_id",
    "kind",
    "due_on",
    "period_start",
    "period_end",
    "tariff_code",
    "tariff_version",
    "fingerprint",
    "amount",
    "currency",
    "description",
    "transaction_id",
    "run_id",
    "created_at",
)
"""The order of the values in each row given to :func:`insert_charges`."""

ChargeRow = tuple[
    str, int, int, str, date, date, date, str, int, str, Decimal, str, str, int, int | None, datetime
]


def insert_charges(session: Session, rows: Sequence[ChargeRow]) -> None:
    """Insert ``charges`` rows (values in :data:`CHARGE_COLUMNS` order) in the session's transaction."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        with (
            raw_cursor(session) as cur,
            cur.copy(f"COPY charges ({', '.join(CHARGE_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    session.execute(insert(Charge), [dict(zip(CHARGE_COLUMNS, row, strict=True)) for row in rows])


def upsert_marks(session: Session, service_ids: Sequence[int], as_of: date, run_id: int | None) -> None:
    """Record that ``service_ids`` are planned (and their charges posted) through ``as_of``."""
    if not service_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        with raw_cursor(session) as cur:
            cur.execute(
                "INSERT INTO charge_marks (service_id, planned_through, run_id)"
                " SELECT s, %s::date, %s::bigint FROM unnest(%s::bigint[]) AS s"
                " ON CONFLICT (service_id) DO UPDATE"
                " SET planned_through = excluded.planned_through, run_id = excluded.run_id",
                (as_of, run_id, id_array(service_ids)),
            )
        return
    statement = sqlite.insert(ChargeMark.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=["service_id"],
        set_={"planned_through": statement.excluded.planned_through, "run_id": statement.excluded.run_id},
    )
    session.execute(
        statement, [{"service_id": s, "planned_through": as_of, "run_id": run_id} for s in service_ids]
    )
