"""Payments: money in from a bank, a payment agent, a file or the cashier desk, posted exactly once.

What: :func:`pay` records a payment, unique per (source, the source's id), posts it to the
ledger (the source's clearing account debit, the subscriber account credit), re-evaluates the
lifecycle of the account's services (a service suspended for debt resumes, and its provisioning
task is written) and queues a notification, all in the caller's transaction. :func:`cancel`
reverses a payment received the same local day. :func:`show` and :func:`list_payments` read.

Why one service: the banks' SOAP API, the payment agents' check/pay protocol, file imports and
the cashier's CLI all call it, so the checks and the exactly-once rule live in one place.

Exactly once: the ledger key ``payment:{source}:{external_id}`` is unique in the database. A
retry with the same id and the same details (account, amount: the ledger's content hash covers
them) finds the first posting and returns the original payment (``created`` False); with other
details it is a :class:`PaymentConflict`. Concurrent duplicates on PostgreSQL: the second insert
of the key waits for the first transaction, then finds the key, so one credits and the other
replays. A caller that lost the reply (crash between commit and answer) gets the committed
payment on retry; if the first transaction never committed, the retry pays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import accounts, audit, ledger
from billing.audit import Actor
from billing.config import CURRENCY_MINOR_UNITS
from billing.db.customers import Account
from billing.db.payments import PAYMENT_CHANNELS, Payment
from billing.db.services import Service
from billing.db.types import utcnow
from billing.lifecycle_rules import LifecycleRules
from rating.money import MoneyError, normalize, parse_amount

SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
"""A source is a bank's or agent's code from the config, or ``cashier``."""

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a payer's timestamp may be (its clock against ours)."""


class PaymentError(ValueError):
    """A payment refused; nothing written."""


class PaymentConflict(PaymentError):
    """The source's id was used before for a payment with other details."""


class UnknownPayment(PaymentError):
    """No such payment."""


@dataclass(frozen=True)
class PaymentRequest:
    """What a payer asks: credit ``amount`` to ``account_number``; ``external_id`` is the payer's id."""

    source: str
    external_id: str
    account_number: str
    amount: Decimal | str
    paid_at: datetime
    channel: str = "cashier"
    currency: str | None = None
    purpose: str = ""


@dataclass(frozen=True)
class PaymentInfo:
    """A payment as stored; ``created`` is False when a call found it instead of making it."""

    id: int
    source: str
    external_id: str
    channel: str
    account_number: str
    amount: Decimal
    currency: str
    paid_at: datetime
    received_at: datetime
    purpose: str
    state: str
    transaction_id: int
    cancel_transaction_id: int | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    created: bool = True
    lifecycle_changes: tuple[str, ...] = ()


def ledger_key(source: str, external_id: str) -> str:
    """The payment's idempotency key in the ledger."""
    return f"payment:{source}:{external_id}"


def checked_amount(request: PaymentRequest, currency: str, now: datetime) -> Decimal:
    """The request's amount, once every field of the request is checked (:class:`PaymentError`)."""
    if not SOURCE.match(request.source):
        raise PaymentError(f"source: expected 1 to 32 letters, digits, '_', '.', '-', got {request.source!r}")
    if not request.external_id.strip() or len(request.external_id) > 100:
        raise PaymentError(f"external_id: expected 1 to 100 characters, got {request.external_id!r}")
    if request.channel not in PAYMENT_CHANNELS:
        raise PaymentError(f"channel: expected one of {', '.join(PAYMENT_CHANNELS)}, got {request.channel!r}")
    if request.paid_at.tzinfo is None:
        raise PaymentError("paid_at: must be timezone-aware")
    if request.paid_at > now + CLOCK_SKEW:
        raise PaymentError(f"paid_at: {request.paid_at.isoformat()} is in the future")
    if request.currency is not None and request.currency != currency:
        raise PaymentError(
            f"currency: account {request.account_number} is kept in {currency}, got {request.currency}"
        )
    if len(request.purpose) > 300:
        raise PaymentError("purpose: at most 300 characters")
    try:
        amount = parse_amount(request.amount, field="amount")
    except MoneyError as exc:
        raise PaymentError(str(exc)) from None
    if amount <= 0:
        raise PaymentError(f"amount: must be positive, got {amount}")
    places = CURRENCY_MINOR_UNITS.get(currency, 2)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise PaymentError(f"amount: at most {places} decimal places in {currency}, got {amount}")
    return amount


def ledger_request(
    actor: Actor, request: PaymentRequest, account: Account, amount: Decimal, debit_book: int, now: datetime
) -> ledger.TransactionRequest:
    """The payment's ledger transaction: ``debit_book`` (a clearing or the suspense book) to the account."""
    return ledger.TransactionRequest(
        idempotency_key=ledger_key(request.source, request.external_id),
        kind="payment",
        legs=(ledger.Leg(debit_book, amount), ledger.Leg(account.ledger_account_id, -amount)),
        effective_at=min(request.paid_at, now),
        description=f"payment {request.source} {request.external_id}"[:500],
        operator_id=actor.operator_id,
    )


def pay(
    session: Session,
    actor: Actor,
    request: PaymentRequest,
    *,
    rules: LifecycleRules,
    debit_book: int | None = None,
) -> PaymentInfo:
    """Record and post a payment, or return the one already recorded under its id (see module doc).

    Checks the request here (each refusal names its field), then posts it as a group of one
    (:func:`billing.payment_batch.pay_many`, the online API's group commit). The money comes from
    the source's clearing account, or from ``debit_book`` (a ledger account id) when given: an
    unmatched file line assigned later comes out of the suspense book.
    """
    now = utcnow()
    try:
        account = accounts.find(session, request.account_number)
    except accounts.AccountError:
        raise PaymentError(f"account: no account {request.account_number!r}") from None
    amount = checked_amount(request, account.currency, now)
    existing = _find(session, request.source, request.external_id)
    if existing is not None:
        return _replay(session, existing, account, amount)
    if account.status != "active":
        raise PaymentError(f"account: account {request.account_number} is closed")
    from billing.payment_batch import pay_many  # it builds on this module's pieces

    try:
        return pay_many(session, [(actor, request)], rules=rules, debit_book=debit_book)[0]
    except PaymentConflict:  # a concurrent payment under this id committed first, with other details
        raise PaymentConflict(
            f"external_id: {request.source} {request.external_id} was used for another account or amount"
        ) from None


def _replay(session: Session, found: Payment, account: Account, amount: Decimal) -> PaymentInfo:
    if found.account_id != account.id or found.amount != amount:
        raise PaymentConflict(
            f"external_id: {found.source} {found.external_id} was used for another account or amount"
        )
    return payment_info(found, account.number, created=False)


def resume_services(
    session: Session, actor: Actor, account: Account, at: datetime, rules: LifecycleRules
) -> tuple[str, ...]:
    """Evaluate the account's services now that funds rose: a debt suspension may end."""
    from billing.service_lifecycle import evaluate_services

    ids = list(
        session.scalars(
            select(Service.id).where(
                Service.account_id == account.id, Service.status == "suspended_involuntary"
            )
        )
    )
    if not ids:
        return ()
    report = evaluate_services(session, actor, at, rules, service_ids=ids)
    return tuple(f"service {c.service_id}: {c.from_status} -> {c.to_status}" for c in report.changes)


def cancel(session: Session, actor: Actor, payment_id: int, reason: str, *, time_zone: tzinfo) -> PaymentInfo:
    """Reverse a payment received today (the operator's time zone); cancelling twice returns the first."""
    reason = reason.strip()
    if not reason:
        raise PaymentError("reason: required")
    payment = session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
    if payment is None:
        raise UnknownPayment(f"payment_id: no payment {payment_id}")
    number = session.scalar(select(Account.number).where(Account.id == payment.account_id)) or ""
    if payment.state == "cancelled":
        return payment_info(payment, number, created=False)
    now = utcnow()
    received, today = payment.received_at.astimezone(time_zone).date(), now.astimezone(time_zone).date()
    if received != today:
        raise PaymentError(
            f"payment {payment_id} was received on {received}: only today's payments can be cancelled"
        )
    reversal = ledger.reverse(
        session,
        payment.transaction_id,
        idempotency_key=f"payment-cancel:{payment.id}",
        effective_at=now,
        description=f"cancel payment {payment.source} {payment.external_id}: {reason}"[:500],
        operator_id=actor.operator_id,
    )
    payment.state, payment.cancel_transaction_id = "cancelled", reversal.id
    payment.cancelled_at, payment.cancel_reason = now, reason[:300]
    session.flush()
    info = payment_info(payment, number)
    audit.record(
        session,
        actor,
        "payments.cancel",
        "payment",
        payment.id,
        before={"state": "posted"},
        after={"payment": info},
    )
    return info


def _find(session: Session, source: str, external_id: str) -> Payment | None:
    return session.scalar(select(Payment).where(Payment.source == source, Payment.external_id == external_id))


def find(session: Session, source: str, external_id: str) -> PaymentInfo:
    """The payment a source knows by its id (a bank asking for a status)."""
    found = _find(session, source, external_id)
    if found is None:
        raise UnknownPayment(f"external_id: no payment {external_id!r} from {source}")
    number = session.scalar(select(Account.number).where(Account.id == found.account_id)) or ""
    return payment_info(found, number, created=False)


def show(session: Session, payment_id: int) -> PaymentInfo:
    """One payment by its id."""
    found = session.get(Payment, payment_id)
    if found is None:
        raise UnknownPayment(f"payment_id: no payment {payment_id}")
    number = session.scalar(select(Account.number).where(Account.id == found.account_id)) or ""
    return payment_info(found, number, created=False)


def list_payments(
    session: Session, *, account_number: str | None = None, source: str | None = None, limit: int = 50
) -> list[PaymentInfo]:
    """The latest payments, newest first, of one account and/or one source."""
    query = select(Payment, Account.number).join(Account, Account.id == Payment.account_id)
    if account_number is not None:
        query = query.where(Account.number == account_number)
    if source is not None:
        query = query.where(Payment.source == source)
    rows = session.execute(query.order_by(Payment.id.desc()).limit(limit))
    return [payment_info(payment, number, created=False) for payment, number in rows]


def payment_info(
    payment: Payment, number: str, *, created: bool = True, changes: tuple[str, ...] = ()
) -> PaymentInfo:
    """A stored payment as returned to callers; ``created`` False when it was recorded before."""
    return PaymentInfo(
        payment.id,
        payment.source,
        payment.external_id,
        payment.channel,
        number,
        normalize(payment.amount),
        payment.currency,
        payment.paid_at,
        payment.received_at,
        payment.purpose,
        payment.state,
        payment.transaction_id,
        payment.cancel_transaction_id,
        payment.cancelled_at,
        payment.cancel_reason,
        created,
        changes,
    )
