"""Billing accounts and the money on them: balances, statements, adjustments, reversals.

Money on an account moves only through the ledger: :func:`adjust` credits or debits it against
the operator's adjustments book, :func:`reverse_transaction` undoes a transaction by a linked
reversal. Balances are shown the natural way: a positive balance is the customer's funds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, dictionaries, ledger
from billing.audit import Actor
from billing.books import book_account
from billing.config import CURRENCY_MINOR_UNITS
from billing.db.customers import Account
from billing.db.ledger import LedgerAccount, LedgerTransaction
from billing.db.types import utcnow
from rating.money import MoneyError, normalize, parse_amount


class AccountError(ValueError):
    """A request about an account's money that is refused; nothing is written."""


class UnknownAccount(AccountError):
    """No billing account has the given number."""


@dataclass(frozen=True)
class AccountInfo:
    """A billing account with its natural balance (positive: the customer's funds)."""

    number: str
    currency: str
    billing_mode: str
    credit_limit: Decimal
    status: str
    balance: Decimal
    available: Decimal
    created_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class Balance:
    """Balance, credit limit and what may still be spent (``available = balance + credit_limit``)."""

    account_number: str
    currency: str
    balance: Decimal
    credit_limit: Decimal
    available: Decimal


@dataclass(frozen=True)
class Adjustment:
    """A posted adjustment; ``created`` is False when its idempotency key had been posted before."""

    transaction_id: int
    idempotency_key: str
    account_number: str
    amount: Decimal
    currency: str
    reason: str
    created: bool
    balance: Decimal


@dataclass(frozen=True)
class Reversal:
    """A reversing transaction and the one it reverses."""

    transaction_id: int
    reverses_id: int
    reason: str


@dataclass(frozen=True)
class AccountStatement:
    """An account's movements over ``[start, end)``: opening, lines with running balance, closing."""

    account_number: str
    currency: str
    start: datetime
    end: datetime
    opening: Decimal
    closing: Decimal
    lines: tuple[ledger.StatementLine, ...]


def find(session: Session, number: str) -> Account:
    """The account row with ``number``; unknown numbers are refused naming the field."""
    account = session.scalar(select(Account).where(Account.number == number))
    if account is None:
        raise UnknownAccount(f"account_number: no account {number!r}")
    return account


def info(session: Session, account: Account) -> AccountInfo:
    """An account with its natural balance and available funds."""
    kind, raw = session.execute(
        select(LedgerAccount.kind, LedgerAccount.balance).where(LedgerAccount.id == account.ledger_account_id)
    ).one()
    balance, limit = normalize(ledger.natural_balance(kind, raw)), normalize(account.credit_limit)
    return AccountInfo(
        number=account.number,
        currency=account.currency,
        billing_mode=account.billing_mode,
        credit_limit=limit,
        status=account.status,
        balance=balance,
        available=balance + limit,
        created_at=account.created_at,
        closed_at=account.closed_at,
    )


def balance(session: Session, number: str) -> Balance:
    """Balance, credit limit and available funds of account ``number``."""
    shown = info(session, find(session, number))
    return Balance(shown.number, shown.currency, shown.balance, shown.credit_limit, shown.available)


def statement(session: Session, number: str, start: datetime, end: datetime) -> AccountStatement:
    """Opening balance, each movement in ``[start, end)`` with the running balance, and closing."""
    account = find(session, number)
    try:
        found = ledger.statement(session, account.ledger_account_id, start, end)
    except ledger.LedgerError as exc:
        raise AccountError(str(exc)) from None
    lines = tuple(
        replace(line, amount=normalize(line.amount), balance_after=normalize(line.balance_after))
        for line in found.lines
    )
    return AccountStatement(
        number, found.currency, start, end, normalize(found.opening), normalize(found.closing), lines
    )


def _adjust_amount(text: str | Decimal, currency: str) -> Decimal:
    try:
        amount = parse_amount(text, field="amount")
    except MoneyError as exc:
        raise AccountError(str(exc)) from None
    if amount == 0:
        raise AccountError("amount: must not be zero (positive credits the account, negative debits it)")
    places = CURRENCY_MINOR_UNITS.get(currency, 6)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise AccountError(f"amount: at most {places} decimal places in {currency}, got {amount}")
    return amount


def adjust(
    session: Session,
    actor: Actor,
    number: str,
    amount: str | Decimal,
    reason: str,
    *,
    key: str | None = None,
    description: str = "",
    effective_at: datetime | None = None,
) -> Adjustment:
    """Credit (positive ``amount``) or debit (negative) the account against the adjustments book.

    ``reason`` is a code of the ``adjustment_reason`` dictionary. With ``key`` the adjustment
    is idempotent: repeating it returns the first posting instead of posting twice.
    """
    account = find(session, number)
    value = _adjust_amount(amount, account.currency)
    if account.status != "active":
        raise AccountError(f"account_number: account {number} is closed")
    dictionaries.resolve(session, "adjustment_reason", reason, field="reason")
    if key is not None and not key.strip():
        raise AccountError("key: must not be empty")
    idempotency_key = f"adjust:{key}" if key else f"adjust:{uuid.uuid4().hex}"
    book = book_account(session, "adjustments", account.currency)
    request = ledger.TransactionRequest(
        idempotency_key=idempotency_key,
        kind="adjustment",
        legs=(ledger.Leg(account.ledger_account_id, -value), ledger.Leg(book, value)),
        effective_at=effective_at or utcnow(),
        description=description.strip() or f"adjustment: {reason}",
        operator_id=actor.operator_id,
    )
    before = info(session, account).balance
    try:
        posted = ledger.post(session, request)
    except ledger.LedgerError as exc:
        raise AccountError(str(exc)) from None
    after = info(session, account).balance
    result = Adjustment(
        posted.id, idempotency_key, number, normalize(value), account.currency, reason, posted.created, after
    )
    if posted.created:
        audit.record(
            session,
            actor,
            "ledger.adjust",
            "account",
            number,
            before={"balance": before},
            after={"balance": after, "transaction_id": posted.id, "amount": result.amount, "reason": reason},
        )
    return result


def reverse_transaction(
    session: Session, actor: Actor, transaction_id: int, reason: str, *, effective_at: datetime | None = None
) -> Reversal:
    """Post the exact opposite of a transaction, linked to it; a second reversal is refused."""
    reason = reason.strip()
    if not reason:
        raise AccountError("reason: must not be empty")
    original = session.get(LedgerTransaction, transaction_id)
    if original is None:
        raise AccountError(f"transaction_id: no ledger transaction {transaction_id}")
    try:
        posted = ledger.reverse(
            session,
            transaction_id,
            idempotency_key=f"reverse:{transaction_id}",
            effective_at=effective_at or utcnow(),
            description=f"reversal of transaction {transaction_id}: {reason}",
            operator_id=actor.operator_id,
        )
    except ledger.LedgerError as exc:
        raise AccountError(f"transaction_id: {exc}") from None
    if not posted.created:
        raise AccountError(
            f"transaction_id: transaction {transaction_id} was already reversed by {posted.id}"
        )
    audit.record(
        session,
        actor,
        "ledger.reverse",
        "ledger_transaction",
        transaction_id,
        after={"reversal_id": posted.id, "reason": reason},
    )
    return Reversal(posted.id, transaction_id, reason)
