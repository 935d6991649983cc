"""Payments and the notifications they queue.

A ``payments`` row is money in from one source (a bank's code, a payment agent's, ``cashier``)
with that source's own id for it: ``(source, external_id)`` is unique, so a retried or
duplicated payment finds the row instead of making a second (the database decides, under
concurrency too); a retry with the same id and other details (account, amount) is a conflict,
not a payment (``billing.payments`` compares them). ``transaction_id`` is
its ledger transaction (source's clearing account debit, subscriber account credit);
``cancel_transaction_id`` the reversal when it was cancelled. ``billing.payments`` writes here.

``notifications`` is an outbox: a row per message to send (payment received, ...), unique per
``key`` so a retried payment queues nothing twice; a later release delivers them by e-mail/SMS.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId

PAYMENT_STATES = ("posted", "cancelled")
PAYMENT_CHANNELS = ("soap", "checkpay", "file", "cashier")
NOTIFICATION_STATES = ("pending", "sent", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Payment(Base):
    """One payment from one source; see the module docstring."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(_in("state", PAYMENT_STATES), name="state"),
        CheckConstraint(_in("channel", PAYMENT_CHANNELS), name="channel"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("(state = 'cancelled') = (cancel_transaction_id IS NOT NULL)", name="cancelled"),
        Index("ix_payments_account", "account_id", "paid_at"),
        Index("ix_payments_source_paid", "source", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime]
    received_at: Mapped[datetime]
    purpose: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16))
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    cancel_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(300))


class Notification(Base):
    """A message to send to a subscriber, queued in the transaction that decided it."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(_in("state", NOTIFICATION_STATES), name="state"),
        Index("ix_notifications_pending", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
