"""How ledger rows reach the database: one portable path, one fast path for PostgreSQL.

The portable path (SQLite, the embedded default) uses SQLAlchemy Core. On PostgreSQL, where
throughput matters, a whole batch of transactions and their postings is written by a single
statement over arrays (``INSERT ... ON CONFLICT DO NOTHING`` feeding the postings insert), and
balances are locked in a fixed order and updated by one statement, sent in a pipeline.
Both paths keep the same rules: a key that exists is skipped (the unique index decides), and
account rows are locked in one global order (subscriber accounts first, then books, each by id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting

_CHUNK = 5000


class NewPosting(NamedTuple):
    """A posting row to insert; the transaction id is assigned by the database."""

    leg: int
    ledger_account_id: int
    amount: Decimal
    currency: str


class NewTransaction(NamedTuple):
    """A transaction row to insert together with its postings (a tuple: batches build many)."""

    idempotency_key: str
    kind: str
    description: str
    effective_at: datetime
    reverses_id: int | None
    operator_id: int | None
    content_hash: str
    postings: tuple[NewPosting, ...]


def account_facts(session: Session, account_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """``{id: (currency, kind)}`` for the accounts that exist (both never change once created)."""
    found: dict[int, tuple[str, str]] = {}
    for i in range(0, len(account_ids), _CHUNK):
        rows = session.execute(
            select(LedgerAccount.id, LedgerAccount.currency, LedgerAccount.kind).where(
                LedgerAccount.id.in_(account_ids[i : i + _CHUNK])
            )
        )
        found.update((account_id, (currency, kind)) for account_id, currency, kind in rows)
    return found


def insert_transactions(
    session: Session, txns: Sequence[NewTransaction], created_at: datetime
) -> dict[str, int]:
    """Insert transactions whose key is new, with their postings; return ``{key: id}`` of those."""
    if session.get_bind().dialect.name == "postgresql":
        return _insert_postgresql(session, txns, created_at)
    return _insert_portable(session, txns, created_at)


def add_to_balances(session: Session, deltas: Mapping[int, Decimal], books_last: Sequence[int]) -> None:
    """Add each delta to its account's cached balance, locking rows in the global order.

    ``books_last`` lists the ids in that order (subscriber accounts, then books, each by id).
    """
    ordered = [a for a in books_last if deltas.get(a)]
    if not ordered:
        return
    if session.get_bind().dialect.name == "postgresql":
        _add_postgresql(session, ordered, deltas)
        return
    for account_id in ordered:
        session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == account_id)
            .values(balance=LedgerAccount.balance + deltas[account_id])
        )


def lock_order_key(kind: str, account_id: int) -> tuple[bool, int]:
    """The global order in which account rows are locked: subscribers first, books last.

    Books (revenue, clearing) are the hot rows; locking them last keeps them locked for the
    shortest time, and one fixed order means two posters can never deadlock.
    """
    return (kind != "subscriber", account_id)


def _insert_portable(
    session: Session, txns: Sequence[NewTransaction], created_at: datetime
) -> dict[str, int]:
    table = LedgerTransaction.__table__
    statement = (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(table.c.idempotency_key, table.c.id)
    )
    inserted: dict[str, int] = {}
    for i in range(0, len(txns), _CHUNK):
        rows = [_transaction_row(t, created_at) for t in txns[i : i + _CHUNK]]
        inserted.update((key, txn_id) for key, txn_id in session.execute(statement, rows))
    postings = [
        {
            "transaction_id": inserted[t.idempotency_key],
            "leg": p.leg,
            "ledger_account_id": p.ledger_account_id,
            "amount": p.amount,
            "currency": p.currency,
        }
        for t in txns
        if t.idempotency_key in inserted
        for p in t.postings
    ]
    if postings:
        session.execute(Posting.__table__.insert(), postings)
    return inserted


def _transaction_row(t: NewTransaction, created_at: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": t.idempotency_key,
        "kind": t.kind,
        "description": t.description,
        "effective_at": t.effective_at,
        "reverses_id": t.reverses_id,
        "operator_id": t.operator_id,
        "posting_count": len(t.postings),
        "content_hash": t.content_hash,
        "created_at": created_at,
    }


_PG_INSERT = """
WITH t AS (
    INSERT INTO ledger_transactions (idempotency_key, kind, description, effective_at, reverses_id,
                                     operator_id, posting_count, content_hash, created_at)
    SELECT k, kd, d, e, r, o, n, h, %(created_at)s
    FROM unnest(%(keys)s::text[], %(kinds)s::text[], %(descriptions)s::text[],
                %(effective)s::timestamptz[], %(reverses)s::bigint[], %(operators)s::bigint[],
                %(counts)s::int[], %(hashes)s::text[]) AS x(k, kd, d, e, r, o, n, h)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
), p AS (
    INSERT INTO postings (transaction_id, leg, ledger_account_id, amount, currency)
    SELECT t.id, y.l, y.a, y.m, y.c
    FROM unnest(%(p_keys)s::text[], %(p_legs)s::smallint[], %(p_accounts)s::bigint[],
                %(p_amounts)s::numeric[], %(p_currencies)s::text[]) AS y(k, l, a, m, c)
    JOIN t ON t.idempotency_key = y.k
)
SELECT idempotency_key, id FROM t
"""


def _raw_connection(session: Session) -> Any:
    """The psycopg connection inside the session's current transaction."""
    return session.connection().connection.dbapi_connection


def _insert_postgresql(
    session: Session, txns: Sequence[NewTransaction], created_at: datetime
) -> dict[str, int]:
    conn = _raw_connection(session)
    inserted: dict[str, int] = {}
    with conn.cursor() as cur:
        for i in range(0, len(txns), _CHUNK):
            chunk = txns[i : i + _CHUNK]
            legs = [(t.idempotency_key, p) for t in chunk for p in t.postings]
            params = {
                "created_at": created_at,
                "keys": [t.idempotency_key for t in chunk],
                "kinds": [t.kind for t in chunk],
                "descriptions": [t.description for t in chunk],
                "effective": [t.effective_at for t in chunk],
                "reverses": [t.reverses_id for t in chunk],
                "operators": [t.operator_id for t in chunk],
                "counts": [len(t.postings) for t in chunk],
                "hashes": [t.content_hash for t in chunk],
                "p_keys": [k for k, _ in legs],
                "p_accounts": [p.ledger_account_id for _, p in legs],
                "p_amounts": [p.amount for _, p in legs],
                "p_currencies": [p.currency for _, p in legs],
                "p_legs": [p.leg for _, p in legs],
            }
            cur.execute(_PG_INSERT, params, prepare=len(chunk) == 1)
            inserted.update(cur.fetchall())
    return inserted


_COPY_FROM = 200
"""Batches from this size go through COPY and a staging table instead of array parameters."""

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS ledger_stage (
    idempotency_key text, kind text, description text, effective_at timestamptz,
    reverses_id bigint, operator_id bigint, posting_count int, content_hash text, seq int
) ON COMMIT DELETE ROWS
"""


def _copy_postgresql(
    session: Session, txns: Sequence[NewTransaction], created_at: datetime
) -> dict[str, int]:
    """Stage the transactions with COPY, insert the new ones, then COPY their postings."""
    conn = _raw_connection(session)
    with conn.cursor() as cur:
        cur.execute(_STAGE)
        cur.execute("TRUNCATE ledger_stage")
        with cur.copy("COPY ledger_stage FROM STDIN") as copy:
            for seq, t in enumerate(txns):
                copy.write_row(
                    (t.idempotency_key, t.kind, t.description, t.effective_at, t.reverses_id, t.operator_id,
                     len(t.postings), t.content_hash, seq)
                )  # fmt: skip
        cur.execute(
            "INSERT INTO ledger_transactions (idempotency_key, kind, description, effective_at, reverses_id,"
            " operator_id, posting_count, content_hash, created_at)"
            " SELECT idempotency_key, kind, description, effective_at, reverses_id, operator_id,"
            " posting_count, content_hash, %s FROM ledger_stage ORDER BY seq"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key, id",
            (created_at,),
        )
        inserted: dict[str, int] = dict(cur.fetchall())
        cur.execute("TRUNCATE ledger_stage")
        with cur.copy(
            "COPY postings (transaction_id, leg, ledger_account_id, amount, currency) FROM STDIN"
        ) as copy:
            for t in txns:
                txn_id = inserted.get(t.idempotency_key)
                if txn_id is not None:
                    for p in t.postings:
                        copy.write_row((txn_id, p.leg, p.ledger_account_id, p.amount, p.currency))
    return inserted


def _add_postgresql(session: Session, ordered: Sequence[int], deltas: Mapping[int, Decimal]) -> None:
    conn = _raw_connection(session)
    ids = list(ordered)
    amounts = [deltas[a] for a in ordered]
    # Locks in lock_order_key's order; NO KEY UPDATE does not conflict with the KEY SHARE locks
    # that the postings' foreign key takes, and is what the UPDATE itself would take.
    with conn.pipeline(), conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM ledger_accounts WHERE id = ANY(%s)"
            " ORDER BY kind <> 'subscriber', id FOR NO KEY UPDATE",
            (ids,),
            prepare=True,
        )
        cur.execute(
            "UPDATE ledger_accounts a SET balance = a.balance + d.delta "
            "FROM unnest(%s::bigint[], %s::numeric[]) AS d(id, delta) WHERE a.id = d.id",
            (ids, amounts),
            prepare=True,
        )
