"""Customers (persons or companies), their contacts, and their billing accounts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId
from billing.db.types import utcnow


class Customer(Base):
    """The party with a contract: its category and region drive the tariff matrix and rules."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("kind IN ('person', 'company')", name="kind"),
        CheckConstraint("status IN ('active', 'closed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), index=True)
    tax_id: Mapped[str | None] = mapped_column(String(64))
    contract_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    """The contract's number as printed on it; bank payments may quote it (payment files)."""
    category_id: Mapped[int] = mapped_column(ForeignKey("dictionary_entries.id"), index=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("dictionary_entries.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class Contact(Base):
    """A way to reach a customer: e-mail, phone (for SMS) or postal address."""

    __tablename__ = "contacts"
    __table_args__ = (CheckConstraint("kind IN ('email', 'phone', 'address')", name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(300))


class Account(Base):
    """A billing account: where a customer's money lives; services (issue 4) attach here."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("billing_mode IN ('prepaid', 'postpaid')", name="billing_mode"),
        CheckConstraint("status IN ('active', 'closed')", name="status"),
        CheckConstraint("credit_limit >= 0", name="credit_limit"),
        Index("ix_accounts_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    billing_mode: Mapped[str] = mapped_column(String(16), default="prepaid")
    credit_limit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    status: Mapped[str] = mapped_column(String(16), default="active")
    ledger_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
