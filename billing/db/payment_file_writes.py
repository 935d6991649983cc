"""How a payment file's lines reach PostgreSQL: one COPY and one statement per batch.

A bank file may hold a million lines. Per line, Python writes one COPY row into a staging table;
one statement then inserts, for every line whose keys are new, its ledger transaction (content
hash computed by the database, the same as :func:`billing.ledger.content_hash`), its two
postings (checked by the postings trigger), and its ``payments`` row (matched lines) or its
``unmatched_payments`` row (the rest), the subscribers' balances and a notification per payment.
The subscriber accounts are locked before that statement and the bank's books are the caller's
to move last (the global lock order of :mod:`billing.ledger`: subscribers first, books last).
SQLite (small installations) takes the portable path in :mod:`billing.payment_import` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy.orm import Session

from billing.db.ledger_writes import raw_cursor, two_leg_content_hash_sql


class StagedLine(NamedTuple):
    """One line to post: a payment (``matched``: ``account_id`` set) or an unmatched line."""

    matched: bool
    idempotency_key: str
    other_key: str
    """The line's key of the other kind (payment/unmatched): if it exists, the line was posted."""
    external_id: str
    account_id: int | None
    debit_account: int
    credit_account: int
    amount: Decimal
    currency: str
    paid_at: datetime
    effective_at: datetime
    purpose: str
    description: str
    line_no: int
    booked_on: date
    account_text: str | None
    contract_text: str | None
    payer: str
    reason: str


_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS payment_stage (
    seq int, matched bool, idempotency_key text, other_key text, external_id text, account_id bigint,
    debit_account bigint, credit_account bigint, amount numeric CHECK (amount = round(amount, 6)),
    currency text, paid_at timestamptz, effective_at timestamptz, purpose text, description text,
    line_no int, booked_on date, account_text text, contract_text text, payer text, reason text
) ON COMMIT DELETE ROWS
"""

_STAGE_COLUMNS = "seq, " + ", ".join(StagedLine._fields)

_KIND = "CASE WHEN s.matched THEN 'payment' ELSE 'unmatched_payment' END"

_CONTENT_HASH = two_leg_content_hash_sql(_KIND)

_LOCK_SUBSCRIBERS = """
SELECT id FROM ledger_accounts WHERE id IN (
    SELECT s.credit_account FROM payment_stage s
    WHERE s.matched
      AND (SELECT 1 FROM ledger_transactions o WHERE o.idempotency_key = s.idempotency_key LIMIT 1) IS NULL
      AND (SELECT 1 FROM ledger_transactions o WHERE o.idempotency_key = s.other_key LIMIT 1) IS NULL
) ORDER BY id FOR NO KEY UPDATE
"""
"""The subscriber accounts the batch may credit, locked first (the global order), in id order.
Lines whose keys exist already are left out (a re-sent file locks nothing); a key that appears
after this point only means a line less is posted, so every account updated was locked here."""

_INSERT = f"""
WITH t AS (
    INSERT INTO ledger_transactions (idempotency_key, kind, description, effective_at, reverses_id,
                                     operator_id, posting_count, content_hash, created_at)
    SELECT s.idempotency_key, {_KIND}, s.description, s.effective_at, NULL, %(operator)s::bigint, 2,
           {_CONTENT_HASH}, %(now)s::timestamptz
    FROM payment_stage s
    WHERE (SELECT 1 FROM ledger_transactions o WHERE o.idempotency_key = s.other_key LIMIT 1) IS NULL
    ORDER BY s.seq
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
), n AS (
    SELECT s.*, t.id AS new_txn FROM payment_stage s JOIN t ON t.idempotency_key = s.idempotency_key
), p AS (
    INSERT INTO postings (transaction_id, leg, ledger_account_id, amount, currency)
    SELECT new_txn, 1, debit_account, amount, currency FROM n
    UNION ALL
    SELECT new_txn, 2, credit_account, -amount, currency FROM n
), pay AS (
    INSERT INTO payments (source, external_id, channel, account_id, amount, currency, paid_at, received_at,
                          purpose, state, transaction_id, operator_id)
    SELECT %(bank)s, external_id, 'file', account_id, amount, currency, paid_at, %(now)s::timestamptz,
           purpose, 'posted', new_txn, %(operator)s::bigint
    FROM n WHERE matched ORDER BY seq
    RETURNING id, transaction_id, account_id, amount, currency
), u AS (
    INSERT INTO unmatched_payments (file_id, bank, line_key, line_no, booked_on, amount, currency,
                                    account_text, contract_text, payer, purpose, reason, transaction_id,
                                    state, created_at)
    SELECT %(file)s::bigint, %(bank)s, external_id, line_no, booked_on, amount, currency, account_text,
           contract_text, payer, purpose, reason, new_txn, 'open', %(now)s::timestamptz
    FROM n WHERE NOT matched ORDER BY seq
), paid AS (
    SELECT pay.id, pay.account_id, pay.amount, pay.currency, n.seq, n.credit_account,
           sum(pay.amount) OVER (PARTITION BY n.credit_account ORDER BY n.seq) AS so_far
    FROM pay JOIN n ON n.new_txn = pay.transaction_id
), b AS (
    UPDATE ledger_accounts a SET balance = a.balance - d.total
    FROM (SELECT credit_account, sum(amount) AS total FROM paid GROUP BY credit_account) d
    WHERE a.id = d.credit_account
), note AS (
    INSERT INTO notifications (key, account_id, kind, payload, state, created_at)
    SELECT 'payment:' || paid.id, paid.account_id, 'payment_received',
           json_build_object('amount', round(paid.amount, 6)::text, 'currency', paid.currency,
                             'balance', round(-a.balance + paid.so_far, 6)::text),
           'pending', %(now)s::timestamptz
    FROM paid JOIN ledger_accounts a ON a.id = paid.credit_account
    ORDER BY paid.seq
)
SELECT seq FROM payment_stage WHERE seq NOT IN (SELECT seq FROM n)
"""
"""One statement for the batch: the new lines' ledger transactions and postings, their payment
(matched) or queue rows (unmatched), the subscribers' balances (locked before, by
:data:`_LOCK_SUBSCRIBERS`: the balance read here is the one the update starts from), and a
notification per payment with the balance right after it. Returns the lines not posted (a key
of theirs existed: the caller finds out which and why). The other key's test is a scalar
subquery on purpose: an index probe per line, where ``NOT EXISTS`` let the planner (stale
statistics on a growing ledger) hash the whole of ``ledger_transactions``."""

_RESUMABLE = """
SELECT v.id FROM services v
WHERE v.status = 'suspended_involuntary'
  AND v.account_id IN (SELECT account_id FROM payment_stage WHERE matched)
ORDER BY v.id
"""


def post_staged(
    session: Session,
    lines: Sequence[StagedLine],
    *,
    bank: str,
    file_id: int,
    operator_id: int | None,
    now: datetime,
) -> list[int]:
    """Post the lines whose keys are new, with the subscribers' balances and the notifications.

    Returns the indexes of the lines not posted. The books' balances are the caller's to move,
    last before the commit.
    """
    if not lines:
        return []
    if len({line.idempotency_key for line in lines}) != len(lines):
        raise ValueError("post_staged: a line key appears twice in the batch")
    params = {"operator": operator_id, "bank": bank, "file": file_id, "now": now}
    with raw_cursor(session) as cur:
        cur.execute(_STAGE)
        cur.execute("TRUNCATE payment_stage")
        with cur.copy(f"COPY payment_stage ({_STAGE_COLUMNS}) FROM STDIN") as copy:
            for seq, line in enumerate(lines):
                copy.write_row((seq, *line))
        cur.execute("ANALYZE payment_stage")  # a temp table has no statistics: the plans need them
        cur.execute(_LOCK_SUBSCRIBERS)
        cur.execute(_INSERT, params)
        return [seq for (seq,) in cur.fetchall()]


def resumable_services(session: Session) -> list[int]:
    """Services suspended for debt on the accounts the staged lines may have credited."""
    with raw_cursor(session) as cur:
        cur.execute(_RESUMABLE)
        return [service_id for (service_id,) in cur.fetchall()]
