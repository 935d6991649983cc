"""The unmatched-payments queue: bank file lines no account could be matched to, and their pairing.

What: :func:`list_unmatched` reads the queue; :func:`assign` pairs a line with an account: the
money, held in the suspense book since the import (:mod:`billing.payment_import`), moves to the
subscriber as a payment of the bank, through :func:`billing.payments.pay` with the suspense
book as the debit side, so the payment is the same as any other (key ``payment:{bank}:{key}``,
notification, services suspended for debt resume, audit row ``payments.pay``). The queue row
is locked and marked assigned in the same transaction: a line is assigned once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing import audit
from billing.audit import Actor
from billing.books import book_account
from billing.db.customers import Account
from billing.db.ledger import LedgerTransaction
from billing.db.payment_files import UnmatchedPayment
from billing.db.payments import Payment
from billing.db.types import utcnow
from billing.lifecycle_rules import LifecycleRules
from billing.payment_import import PaymentImportError
from rating.money import normalize


@dataclass(frozen=True)
class UnmatchedInfo:
    """A line of the unmatched queue."""

    id: int
    bank: str
    file_id: int
    line_no: int
    line_key: str
    booked_on: date
    amount: Decimal
    currency: str
    account_text: str | None
    contract_text: str | None
    payer: str
    purpose: str
    reason: str
    state: str
    transaction_id: int
    created_at: datetime
    payment_id: int | None
    assigned_at: datetime | None
    account_number: str | None = None
    lifecycle_changes: tuple[str, ...] = ()


def _unmatched_info(
    row: UnmatchedPayment, number: str | None = None, changes: Sequence[str] = ()
) -> UnmatchedInfo:
    """A queue row as reported (``number``: the account it was assigned to)."""
    return UnmatchedInfo(
        row.id,
        row.bank,
        row.file_id,
        row.line_no,
        row.line_key,
        row.booked_on,
        normalize(row.amount),
        row.currency,
        row.account_text,
        row.contract_text,
        row.payer,
        row.purpose,
        row.reason,
        row.state,
        row.transaction_id,
        row.created_at,
        row.payment_id,
        row.assigned_at,
        number,
        tuple(changes),
    )


def list_unmatched(
    session: Session, *, bank: str | None = None, open_only: bool = False, limit: int = 100
) -> list[UnmatchedInfo]:
    """The unmatched queue, oldest first (the order people work through it)."""
    query = (
        select(UnmatchedPayment, Account.number)
        .outerjoin(Payment, Payment.id == UnmatchedPayment.payment_id)
        .outerjoin(Account, Account.id == Payment.account_id)
    )
    if bank is not None:
        query = query.where(UnmatchedPayment.bank == bank)
    if open_only:
        query = query.where(UnmatchedPayment.state == "open")
    rows = session.execute(query.order_by(UnmatchedPayment.id).limit(limit))
    return [_unmatched_info(row, number) for row, number in rows]


def assign(
    session: Session, actor: Actor, line_id: int, account_number: str, *, rules: LifecycleRules
) -> UnmatchedInfo:
    """Move an unmatched line's money from suspense to ``account_number`` as a payment (once).

    The payment is the bank's, with the line's key as its id (ledger key ``payment:{bank}:{key}``),
    posted suspense debit / subscriber credit by :func:`billing.payments.pay`, which also resumes
    services suspended for debt, queues the notification and audits the payment.
    """
    from billing import payments

    row = session.scalar(select(UnmatchedPayment).where(UnmatchedPayment.id == line_id).with_for_update())
    if row is None:
        raise PaymentImportError(f"line_id: no unmatched line {line_id}")
    if row.state != "open":
        raise PaymentImportError(
            f"line_id: unmatched line {line_id} was assigned before (payment {row.payment_id})"
        )
    suspense = book_account(session, "suspense", row.currency)
    paid_at = session.scalar(
        select(LedgerTransaction.effective_at).where(LedgerTransaction.id == row.transaction_id)
    )
    assert paid_at is not None, "an unmatched line is written with its ledger transaction"
    request = payments.PaymentRequest(
        row.bank,
        row.line_key,
        account_number,
        row.amount,
        paid_at,
        channel="file",
        currency=row.currency,
        purpose=row.purpose,
    )
    paid = payments.pay(session, actor, request, rules=rules, debit_book=suspense)
    if not paid.created:
        raise PaymentImportError(
            f"line_id: the bank's id {row.line_key!r} was paid before as payment {paid.id}; nothing moved"
        )
    before = _unmatched_info(row)
    session.execute(
        update(UnmatchedPayment)
        .where(UnmatchedPayment.id == row.id)
        .values(state="assigned", payment_id=paid.id, assigned_at=utcnow(), assigned_by=actor.operator_id)
    )
    session.refresh(row)
    info = _unmatched_info(row, paid.account_number, paid.lifecycle_changes)
    audit.record(
        session,
        actor,
        "payments.unmatched.assign",
        "unmatched_payment",
        row.id,
        before={"state": before.state},
        after={"line": info, "payment_id": paid.id},
    )
    return info
