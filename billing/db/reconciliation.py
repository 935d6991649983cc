"""Banks' daily registries and the reconciliations of a bank's day against recorded payments.

``bank_registries`` is a bank's own list of the payments it made to us on one day (uploaded over
SOAP or imported from a file), one row per (bank, day): a new upload for the same day replaces
the lines (``bank_registry_lines``) in place until the day is final. ``line_count`` and ``total``
are the registry's own totals, kept for the audit trail and the SOAP signature check.

``reconciliations`` is the result of comparing one bank's day (registry or statement lines) with
the payments recorded for that bank on that local day, one row per (bank, day): ``open`` while it
has discrepancies, ``reconciled`` when it has none, ``closed`` when an operator closed it with
discrepancies and a reason. The last two are final. Matched payments are only counted;
every discrepancy is a ``reconciliation_items`` row, unique per (reconciliation, bank
transaction id); a "missing in billing" item of a closed day links the ledger transaction that
moved its money from the bank's clearing account to suspense.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId

REGISTRY_ORIGINS = ("soap", "file")
RECONCILIATION_SOURCES = ("registry", "statement")
RECONCILIATION_STATES = ("open", "reconciled", "closed")
FINAL_STATES = ("reconciled", "closed")
DISCREPANCY_KINDS = (
    "missing_in_billing",
    "missing_at_bank",
    "amount_differs",
    "account_differs",
    "other_day",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class BankRegistry(Base):
    """A bank's registry of one day's payments; see the module docstring."""

    __tablename__ = "bank_registries"
    __table_args__ = (
        UniqueConstraint("bank", "day"),
        CheckConstraint(_in("origin", REGISTRY_ORIGINS), name="origin"),
        CheckConstraint("line_count >= 0", name="line_count"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    origin: Mapped[str] = mapped_column(String(8))
    line_count: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal]
    received_at: Mapped[datetime]
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    replaced: Mapped[int] = mapped_column(Integer, default=0)
    """How many times a new upload replaced the lines."""


class BankRegistryLine(Base):
    """One payment as the bank lists it in its registry."""

    __tablename__ = "bank_registry_lines"
    __table_args__ = (
        UniqueConstraint("registry_id", "txn_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    registry_id: Mapped[int] = mapped_column(ForeignKey("bank_registries.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    txn_id: Mapped[str] = mapped_column(String(100))
    account: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal]
    currency: Mapped[str | None] = mapped_column(String(3))
    paid_at: Mapped[datetime]


class Reconciliation(Base):
    """The comparison of one bank's day with billing's payments; see the module docstring."""

    __tablename__ = "reconciliations"
    __table_args__ = (
        UniqueConstraint("bank", "day"),
        CheckConstraint(_in("source", RECONCILIATION_SOURCES), name="source"),
        CheckConstraint(_in("state", RECONCILIATION_STATES), name="state"),
        CheckConstraint("state <> 'closed' OR reason IS NOT NULL", name="closed_reason"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(16))
    registry_id: Mapped[int | None] = mapped_column(ForeignKey("bank_registries.id"))
    statement_sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    bank_count: Mapped[int] = mapped_column(Integer)
    bank_total: Mapped[Decimal]
    billing_count: Mapped[int] = mapped_column(Integer)
    billing_total: Mapped[Decimal]
    matched_count: Mapped[int] = mapped_column(Integer)
    matched_total: Mapped[Decimal]
    discrepancy_count: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(300))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    operator_login: Mapped[str] = mapped_column(String(64))
    reconciled_at: Mapped[datetime]
    """When the result was last computed."""
    closed_at: Mapped[datetime | None]
    runs: Mapped[int] = mapped_column(Integer, default=1)


class ReconciliationItem(Base):
    """One discrepancy of a reconciliation: a bank transaction id and both sides' view of it."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        UniqueConstraint("reconciliation_id", "txn_id"),
        CheckConstraint(_in("kind", DISCREPANCY_KINDS), name="kind"),
        Index("ix_reconciliation_items_txn", "txn_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reconciliation_id: Mapped[int] = mapped_column(ForeignKey("reconciliations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    txn_id: Mapped[str] = mapped_column(String(100))
    line_no: Mapped[int | None] = mapped_column(Integer)
    bank_amount: Mapped[Decimal | None]
    billing_amount: Mapped[Decimal | None]
    bank_account: Mapped[str | None] = mapped_column(String(64))
    billing_account: Mapped[str | None] = mapped_column(String(64))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    bank_paid_at: Mapped[datetime | None]
    billing_paid_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(String(300))
    suspense_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
