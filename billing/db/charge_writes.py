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
from typing import NamedTuple

from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from billing.db.charges import Charge, ChargeMark
from billing.db.ledger_writes import id_array, raw_cursor, two_leg_content_hash_sql
from billing.db.types import utcnow

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


class StagedCharge(NamedTuple):
    """One charge line as the PostgreSQL set-based path stages it (see :func:`post_staged`)."""

    idempotency_key: str
    service_id: int
    account_id: int
    debit_account: int
    credit_account: int
    amount: Decimal
    currency: str
    kind: str
    due_on: date
    period_start: date
    period_end: date
    tariff_code: str
    tariff_version: int
    fingerprint: str
    description: str
    effective_at: datetime


def charge_row(
    line: StagedCharge, transaction_id: int, run_id: int | None, created_at: datetime
) -> ChargeRow:
    """The ``charges`` row (:data:`CHARGE_COLUMNS` order) of a line posted as ``transaction_id``."""
    return (
        line.idempotency_key,
        line.service_id,
        line.account_id,
        line.kind,
        line.due_on,
        line.period_start,
        line.period_end,
        line.tariff_code,
        line.tariff_version,
        line.fingerprint,
        line.amount,
        line.currency,
        line.description,
        transaction_id,
        run_id,
        created_at,
    )


_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS charge_stage (
    seq int, idempotency_key text, service_id bigint, account_id bigint,
    debit_account bigint, credit_account bigint, amount numeric CHECK (amount = round(amount, 6)),
    currency text, kind text, due_on date, period_start date, period_end date, tariff_code text,
    tariff_version int, fingerprint text, description text, effective_at timestamptz,
    created bool NOT NULL DEFAULT true
) ON COMMIT DELETE ROWS
"""

_STAGE_COLUMNS = "seq, " + ", ".join(StagedCharge._fields)

_CONTENT_HASH = two_leg_content_hash_sql("'charge'")
""":func:`billing.ledger.content_hash` of a charge (kind ``charge``, reversing nothing, two legs
sorted by account), in SQL; the invariant check recomputes it from the postings."""

_INSERT = f"""
WITH t AS (
    INSERT INTO ledger_transactions (idempotency_key, kind, description, effective_at, reverses_id,
                                     operator_id, posting_count, content_hash, created_at)
    SELECT s.idempotency_key, 'charge', s.description, s.effective_at, NULL, %(operator)s::bigint, 2,
           {_CONTENT_HASH}, %(now)s::timestamptz
    FROM charge_stage s ORDER BY s.seq
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
), n AS (
    SELECT s.*, t.id AS txn FROM charge_stage s JOIN t ON t.idempotency_key = s.idempotency_key
), p AS (
    INSERT INTO postings (transaction_id, leg, ledger_account_id, amount, currency)
    SELECT txn, 1, debit_account, amount, currency FROM n
    UNION ALL
    SELECT txn, 2, credit_account, -amount, currency FROM n
), c AS (
    INSERT INTO charges ({", ".join(CHARGE_COLUMNS)})
    SELECT idempotency_key, service_id, account_id, kind, due_on, period_start, period_end, tariff_code,
           tariff_version, fingerprint, amount, currency, description, txn, %(run)s::bigint,
           %(now)s::timestamptz
    FROM n
)
SELECT seq FROM charge_stage WHERE seq NOT IN (SELECT seq FROM n)
"""
"""One statement: the new keys' transactions, their two postings each, their ``charges`` rows;
returns the lines whose key existed already (the postings and charges triggers run at its end)."""

_EXISTING = f"""
UPDATE charge_stage s SET created = false FROM ledger_transactions t
WHERE s.seq = ANY(%s::int[]) AND t.idempotency_key = s.idempotency_key
RETURNING s.seq, t.content_hash = {_CONTENT_HASH}
"""
"""Marks the lines whose key existed (their balances do not move); says if each has the same content."""

_LOCK_BALANCES = """
SELECT id FROM ledger_accounts WHERE id IN (
    SELECT debit_account FROM charge_stage WHERE created
    UNION SELECT credit_account FROM charge_stage WHERE created
) ORDER BY kind <> 'subscriber', id FOR NO KEY UPDATE
"""

_ADD_BALANCES = """
UPDATE ledger_accounts a SET balance = a.balance + d.delta
FROM (
    SELECT account, sum(amount) AS delta FROM (
        SELECT debit_account AS account, amount FROM charge_stage WHERE created
        UNION ALL
        SELECT credit_account, -amount FROM charge_stage WHERE created
    ) legs GROUP BY account
) d
WHERE a.id = d.account AND d.delta <> 0
"""


def post_staged(
    session: Session, lines: Sequence[StagedCharge], run_id: int | None, operator_id: int | None
) -> tuple[list[bool], list[str]]:
    """Post charge lines set-based on PostgreSQL; return, per line, whether it was new, and conflicts.

    What :func:`billing.ledger.post_batch` and :func:`insert_charges` do, for charges only, in one
    set-based statement over one staged row per line (COPY): each new key gets its ledger
    transaction (debit ``debit_account``, credit ``credit_account``, the content hash computed
    by the database), its two postings (checked by the postings trigger: accounts exist and are
    kept in the line's currency; legs balance) and its ``charges`` row (checked by its trigger).
    The balances move later, last before the commit (:func:`add_staged_balances`), so the
    accounts' row locks are held briefly. Per line, Python only writes one COPY row: validating
    and hashing each line as a generic ledger request cost more than the database spent on it.
    A key posted before is not posted again; posted before with other content is returned among
    the conflicts (keys), and the caller must roll back.
    """
    if not lines:
        return [], []
    if len({line.idempotency_key for line in lines}) != len(lines):
        raise ValueError("post_staged: an idempotency key appears twice in the batch")
    params = {"operator": operator_id, "run": run_id, "now": utcnow()}
    with raw_cursor(session) as cur:
        cur.execute(_STAGE)
        cur.execute("TRUNCATE charge_stage")
        with cur.copy(f"COPY charge_stage ({_STAGE_COLUMNS}) FROM STDIN") as copy:
            for seq, line in enumerate(lines):
                copy.write_row((seq, *line))
        cur.execute(_INSERT, params)
        old = [seq for (seq,) in cur.fetchall()]
        created = [True] * len(lines)
        conflicts = []
        if old:
            cur.execute(_EXISTING, (id_array(old),))
            for seq, same in cur.fetchall():
                created[seq] = False
                if not same:
                    conflicts.append(lines[seq].idempotency_key)
    return created, conflicts


def add_staged_balances(session: Session) -> None:
    """Move the balances of the lines :func:`post_staged` created, locking accounts in the global order.

    Subscriber accounts first, books (revenue: the hot rows) last, as :mod:`billing.ledger` does,
    so the charge run's writers and payments never deadlock. Call it last before the commit.
    """
    with raw_cursor(session, pipeline=True) as cur:
        cur.execute(_LOCK_BALANCES)
        cur.execute(_ADD_BALANCES)
