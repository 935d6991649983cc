"""The ledger's invariants, checked against the database (``billing-admin check``).

1. every transaction's postings sum to zero per currency;
2. every transaction has as many postings as it recorded (at least two), none missing or added;
3. every posting's currency is its ledger account's currency;
4. every cached balance equals the sum of its account's postings;
5. no posting was changed, added or removed: each transaction's content hash, recomputed from
   its stored postings, matches the one recorded when it was posted.
Each failure names the offending row, so an operator can look it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.ledger import content_hash
from rating.money import to_micros

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)`` while the check runs."""

_HASH_BATCH = 5000


@dataclass(frozen=True)
class Violation:
    """One broken invariant on one row."""

    check: str
    table: str
    row_id: int
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.table} id={self.row_id}: {self.detail}"


def check_ledger(session: Session, progress: Progress | None = None) -> list[Violation]:
    """Run every invariant and return the violations (an empty list means the ledger is sound)."""
    report = progress or (lambda step, done, total: None)
    steps: list[tuple[str, Callable[[Session], list[Violation]]]] = [
        ("transactions balance", _unbalanced_transactions),
        ("posting counts", _posting_counts),
        ("posting currencies", _posting_currencies),
        ("cached balances", _cached_balances),
    ]
    violations: list[Violation] = []
    for number, (name, step) in enumerate(steps):
        report(name, number, len(steps) + 1)
        violations.extend(step(session))
    violations.extend(_content_hashes(session, report))
    report("done", len(steps) + 1, len(steps) + 1)
    return violations


def _unbalanced_transactions(session: Session) -> list[Violation]:
    total = func.sum(Posting.amount)
    rows = session.execute(
        select(Posting.transaction_id, Posting.currency, total)
        .group_by(Posting.transaction_id, Posting.currency)
        .having(total != 0)
        .order_by(Posting.transaction_id)
    )
    return [
        Violation(
            "transactions balance", "ledger_transactions", txn_id, f"{currency} postings sum to {amount}"
        )
        for txn_id, currency, amount in rows
    ]


def _posting_counts(session: Session) -> list[Violation]:
    counts = (
        select(Posting.transaction_id, func.count().label("n")).group_by(Posting.transaction_id).subquery()
    )
    actual = func.coalesce(counts.c.n, 0)
    rows = session.execute(
        select(LedgerTransaction.id, LedgerTransaction.posting_count, actual)
        .outerjoin(counts, counts.c.transaction_id == LedgerTransaction.id)
        .where((actual != LedgerTransaction.posting_count) | (actual < 2))
        .order_by(LedgerTransaction.id)
    )
    orphans = session.execute(
        select(Posting.transaction_id, Posting.leg)
        .outerjoin(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(LedgerTransaction.id.is_(None))
    )
    return [
        Violation(
            "posting counts", "ledger_transactions", txn_id, f"recorded {expected} postings, found {found}"
        )
        for txn_id, expected, found in rows
    ] + [
        Violation("posting counts", "postings", txn_id, f"leg {leg} belongs to a missing transaction")
        for txn_id, leg in orphans
    ]


def _posting_currencies(session: Session) -> list[Violation]:
    rows = session.execute(
        select(
            Posting.transaction_id, Posting.leg, Posting.currency, LedgerAccount.id, LedgerAccount.currency
        )
        .join(LedgerAccount, LedgerAccount.id == Posting.ledger_account_id)
        .where(Posting.currency != LedgerAccount.currency)
    )
    return [
        Violation(
            "posting currencies", "postings", txn, f"leg {leg}: {pcur} on ledger account {aid} kept in {acur}"
        )
        for txn, leg, pcur, aid, acur in rows
    ]


def _cached_balances(session: Session) -> list[Violation]:
    sums = (
        select(Posting.ledger_account_id, func.sum(Posting.amount).label("total"))
        .group_by(Posting.ledger_account_id)
        .subquery()
    )
    total = func.coalesce(sums.c.total, 0)
    rows = session.execute(
        select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.balance, total)
        .outerjoin(sums, sums.c.ledger_account_id == LedgerAccount.id)
        .where(LedgerAccount.balance != total)
        .order_by(LedgerAccount.id)
    )
    return [
        Violation(
            "cached balances", "ledger_accounts", aid, f"{code}: cached {cached}, postings sum to {summed}"
        )
        for aid, code, cached, summed in rows
    ]


def _content_hashes(session: Session, report: Progress) -> list[Violation]:
    """Recompute each transaction's content hash from its postings, in batches of transactions."""
    total = session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0
    violations = []
    done = 0
    last_id = 0
    while True:
        txns = session.execute(
            select(LedgerTransaction.id, LedgerTransaction.kind, LedgerTransaction.reverses_id)
            .add_columns(LedgerTransaction.content_hash)
            .where(LedgerTransaction.id > last_id)
            .order_by(LedgerTransaction.id)
            .limit(_HASH_BATCH)
        ).all()
        if not txns:
            return violations
        legs: dict[int, list[tuple[int, int]]] = {}
        rows = session.execute(
            select(Posting.transaction_id, Posting.ledger_account_id, Posting.amount).where(
                Posting.transaction_id > last_id, Posting.transaction_id <= txns[-1][0]
            )
        )
        for txn_id, account_id, amount in rows:
            legs.setdefault(txn_id, []).append((account_id, to_micros(Decimal(amount))))
        for txn_id, kind, reverses_id, recorded in txns:
            if content_hash(kind, reverses_id, legs.get(txn_id, [])) != recorded:
                violations.append(
                    Violation(
                        "transaction content",
                        "ledger_transactions",
                        txn_id,
                        "postings differ from when posted",
                    )
                )
        last_id = txns[-1][0]
        done += len(txns)
        report(f"transaction content {done}/{total}", done, max(total, 1))
