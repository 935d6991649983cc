"""How ledger rows reach the database: one portable path, two fast paths on PostgreSQL.

- Portable (SQLite, the embedded default): SQLAlchemy Core; currencies are looked up first and
  checked by :mod:`billing.ledger`, postings carry them explicitly.
- PostgreSQL, a few transactions (single posts, group commits): one statement with scalar
  parameters inserts the new transactions and their postings, taking each posting's currency
  from its ledger account. A transaction naming an unknown account is not inserted at all; the
  per-currency balance is checked by the postings trigger (see the initial migration).
- PostgreSQL, large batches (charge runs): COPY into a staging table and into postings.

Everywhere a key that exists already is skipped (the unique index decides, under concurrency
too), and balances change by ``balance = balance + delta`` on rows locked in one global order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting

_CHUNK = 5000
"""Rows per statement on the portable path."""

_PARAMS = 1000
"""Rows per statement where each row is its own parameters (PostgreSQL allows 65,535 in all)."""

COPY_FROM = 200
"""On PostgreSQL, batches of this many transactions or more go through COPY."""


class NewPosting(NamedTuple):
    """A posting row to insert; its currency is its ledger account's."""

    leg: int
    ledger_account_id: int
    amount: Decimal


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


def needs_currencies(session: Session, n_transactions: int) -> bool:
    """Whether :func:`insert_transactions` needs the accounts' currencies (else the SQL joins them)."""
    return session.get_bind().dialect.name != "postgresql" or n_transactions >= COPY_FROM


def account_currencies(session: Session, account_ids: Sequence[int]) -> dict[int, str]:
    """``{id: currency}`` for the ledger accounts that exist (a currency never changes)."""
    found: dict[int, str] = {}
    if session.get_bind().dialect.name == "postgresql" and len(account_ids) > _PARAMS:
        with _raw_cursor(session) as cur:  # one array parameter: cheap to send for big batches
            cur.execute(
                "SELECT id, currency FROM ledger_accounts WHERE id = ANY(%s::bigint[])",
                (id_array(account_ids),),
            )
            return dict(cur.fetchall())
    for i in range(0, len(account_ids), _PARAMS):
        rows = session.execute(
            select(LedgerAccount.id, LedgerAccount.currency).where(
                LedgerAccount.id.in_(account_ids[i : i + _PARAMS])
            )
        )
        found.update((account_id, currency) for account_id, currency in rows)
    return found


def insert_transactions(
    session: Session,
    txns: Sequence[NewTransaction],
    created_at: datetime,
    currencies: Mapping[int, str] | None = None,
) -> dict[str, int]:
    """Insert the transactions whose key is new, with their postings; return ``{key: id}`` of those.

    ``currencies`` (account id to currency) is required where :func:`needs_currencies` says so.
    A key missing from the result existed already or, on the PostgreSQL path without
    ``currencies``, named a ledger account that does not exist; the caller tells which.
    """
    if not needs_currencies(session, len(txns)):
        return _insert_postgresql(session, txns, created_at)
    if currencies is None:
        raise ValueError("currencies are required on this path")
    if session.get_bind().dialect.name == "postgresql":
        return _copy_postgresql(session, txns, created_at, currencies)
    return _insert_portable(session, txns, created_at, currencies)


def add_to_balances(session: Session, deltas: Mapping[int, Decimal]) -> None:
    """Add each non-zero delta to its account's cached balance.

    On PostgreSQL the rows are first locked in one global order, subscriber accounts first and
    books (revenue, clearing: the hot rows) last, so two posters never deadlock and the hot rows
    stay locked for the shortest time. SQLite serialises writers (``BEGIN IMMEDIATE``).
    """
    accounts = sorted(a for a, delta in deltas.items() if delta)
    if not accounts:
        return
    if session.get_bind().dialect.name == "postgresql":
        _add_postgresql(session, accounts, deltas)
        return
    for account_id in accounts:
        session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == account_id)
            .values(balance=LedgerAccount.balance + deltas[account_id])
        )


def _insert_portable(
    session: Session, txns: Sequence[NewTransaction], created_at: datetime, currencies: Mapping[int, str]
) -> dict[str, int]:
    table = LedgerTransaction.__table__
    statement = (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(table.c.idempotency_key, table.c.id)
    )
    inserted: dict[str, int] = {}
    for i in range(0, len(txns), _CHUNK):
        rows = [
            {
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
            for t in txns[i : i + _CHUNK]
        ]
        inserted.update((key, txn_id) for key, txn_id in session.execute(statement, rows))
    postings = [
        {
            "transaction_id": inserted[t.idempotency_key],
            "leg": p.leg,
            "ledger_account_id": p.ledger_account_id,
            "amount": p.amount,
            "currency": currencies[p.ledger_account_id],
        }
        for t in txns
        if t.idempotency_key in inserted
        for p in t.postings
    ]
    if postings:
        session.execute(Posting.__table__.insert(), postings)
    return inserted


@contextmanager
def _raw_cursor(session: Session, *, pipeline: bool = False) -> Iterator[Any]:
    """A psycopg cursor in the session's transaction; its errors become SQLAlchemy's, as usual."""
    conn = session.connection().connection.dbapi_connection
    try:
        with conn.pipeline() if pipeline else nullcontext(), conn.cursor() as cur:
            yield cur
    except psycopg.Error as exc:
        raise DBAPIError.instance(None, None, exc, psycopg.Error) from None


raw_cursor = _raw_cursor
"""For other bulk writers in the same transaction (the charge run COPYs its ``charges`` rows)."""


def two_leg_content_hash_sql(kind: str) -> str:
    """SQL for :func:`billing.ledger.content_hash` of a two-leg transaction reversing nothing.

    ``kind`` is an SQL expression; the row alias ``s`` has ``debit_account``, ``credit_account``
    and the positive ``amount``. Used by the set-based writers (charge runs, payment files); the
    invariant check recomputes every hash from the postings, so the two can never drift apart.
    """
    return f"""encode(sha256(convert_to({kind} || '|None|'
    || CASE WHEN s.debit_account < s.credit_account
    THEN s.debit_account || ':' || (s.amount * 1000000)::bigint || ';'
         || s.credit_account || ':' || (-s.amount * 1000000)::bigint
    ELSE s.credit_account || ':' || (-s.amount * 1000000)::bigint || ';'
         || s.debit_account || ':' || (s.amount * 1000000)::bigint END, 'UTF8')), 'hex')"""


def id_array(ids: Iterable[int]) -> str:
    """``{1,2,3}``: a PostgreSQL array literal, to pass as one ``%s::bigint[]`` parameter.

    Building the text is ~10x cheaper in Python than psycopg's list adaptation, which matters
    for 2,000-id parameters sent once per batch.
    """
    return "{" + ",".join(map(str, ids)) + "}"


def _values(rows: int, types: Sequence[str]) -> str:
    """``(%s::t1, %s::t2), ...`` for ``rows`` rows: scalar parameters are cheap to send."""
    row = "(" + ", ".join(f"%s::{t}" for t in types) + ")"
    return ", ".join([row] * rows)


_TXN_TYPES = ("text", "text", "text", "timestamptz", "bigint", "bigint", "int", "text")
_POSTING_TYPES = ("text", "smallint", "bigint", "numeric")


def _insert_sql(n_txns: int, n_postings: int) -> str:
    """New transactions whose accounts all exist, and their postings in the accounts' currency."""
    return f"""
WITH x(k, kd, d, e, r, o, n, h) AS (VALUES {_values(n_txns, _TXN_TYPES)}),
y(k, l, a, m) AS (VALUES {_values(n_postings, _POSTING_TYPES)}),
t AS (
    INSERT INTO ledger_transactions (idempotency_key, kind, description, effective_at, reverses_id,
                                     operator_id, posting_count, content_hash, created_at)
    SELECT k, kd, d, e, r, o, n, h, %s::timestamptz FROM x
    WHERE NOT EXISTS (
        SELECT 1 FROM y LEFT JOIN ledger_accounts a ON a.id = y.a WHERE y.k = x.k AND a.id IS NULL
    )
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
), p AS (
    INSERT INTO postings (transaction_id, leg, ledger_account_id, amount, currency)
    SELECT t.id, y.l, y.a, y.m, a.currency
    FROM y JOIN t ON t.idempotency_key = y.k JOIN ledger_accounts a ON a.id = y.a
)
SELECT idempotency_key, id FROM t
"""


def _insert_postgresql(
    session: Session, txns: Sequence[NewTransaction], created_at: datetime
) -> dict[str, int]:
    params: list[Any] = []
    for t in txns:
        params += (t.idempotency_key, t.kind, t.description, t.effective_at, t.reverses_id, t.operator_id,
                   len(t.postings), t.content_hash)  # fmt: skip
    n_postings = 0
    for t in txns:
        for p in t.postings:
            params += (t.idempotency_key, p.leg, p.ledger_account_id, p.amount)
            n_postings += 1
    params.append(created_at)
    with _raw_cursor(session) as cur:
        cur.execute(_insert_sql(len(txns), n_postings), params)
        return dict(cur.fetchall())


_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS ledger_stage (
    idempotency_key text, kind text, description text, effective_at timestamptz,
    reverses_id bigint, operator_id bigint, posting_count int, content_hash text, seq int
) ON COMMIT DELETE ROWS
"""


def _copy_postgresql(
    session: Session, txns: Sequence[NewTransaction], created_at: datetime, currencies: Mapping[int, str]
) -> dict[str, int]:
    """Stage the transactions with COPY, insert the new ones, then COPY their postings."""
    with _raw_cursor(session) as cur:
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
                        copy.write_row(
                            (txn_id, p.leg, p.ledger_account_id, p.amount, currencies[p.ledger_account_id])
                        )
    return inserted


def _add_postgresql(session: Session, accounts: Sequence[int], deltas: Mapping[int, Decimal]) -> None:
    # NO KEY UPDATE is what the UPDATE itself takes, and does not conflict with the KEY SHARE
    # locks that foreign keys to ledger_accounts take.
    order = "ORDER BY kind <> 'subscriber', id FOR NO KEY UPDATE"
    if len(accounts) <= _PARAMS:
        lock: tuple[str, Sequence[Any]] = (
            f"SELECT id FROM ledger_accounts WHERE id IN ({', '.join(['%s'] * len(accounts))}) {order}",
            accounts,
        )
        add: tuple[str, Sequence[Any]] = (
            "UPDATE ledger_accounts a SET balance = a.balance + d.delta FROM "
            f"(VALUES {_values(len(accounts), ('bigint', 'numeric'))}) AS d(id, delta) WHERE a.id = d.id",
            [v for a in accounts for v in (a, deltas[a])],
        )
    else:
        lock = (f"SELECT id FROM ledger_accounts WHERE id = ANY(%s) {order}", (list(accounts),))
        add = (
            "UPDATE ledger_accounts a SET balance = a.balance + d.delta "
            "FROM unnest(%s::bigint[], %s::numeric[]) AS d(id, delta) WHERE a.id = d.id",
            (list(accounts), [deltas[a] for a in accounts]),
        )
    with _raw_cursor(session, pipeline=True) as cur:
        cur.execute(*lock)
        cur.execute(*add)
