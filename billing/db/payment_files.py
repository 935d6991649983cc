"""Imported payment files and the queue of lines no account could be matched to.

``payment_files`` is one imported bank file (statement or registry): the bank, its format, the
file's name and SHA-256, unique per bank, so the same file imported again posts nothing
(:mod:`billing.payment_import` answers "already imported as file N"). Its counts and totals say
what became of the lines: posted as payments, duplicates (a line key posted before, by this or an
earlier file or by the bank's online API), unmatched (money held in the suspense book), bad
(refused with a reason; ``problems`` keeps the first of them). ``lines_done`` is how far the
import got: lines are posted in batches, each committed with the counts, so an import that died
half-way is resumed from there by importing the same file again (``state`` still ``importing``).

``unmatched_payments`` holds each line that could not be paired with one open account: the money
was posted from the bank's clearing account to the suspense book (``transaction_id``), and an
operator later assigns it (``billing-admin unmatched assign``), which moves it to the subscriber
as a payment (``payment_id``). ``(bank, line_key)`` is unique: a line is queued once.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId

FILE_STATES = ("importing", "done")
UNMATCHED_STATES = ("open", "assigned")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class PaymentFile(Base):
    """One imported bank file and what became of its lines; see the module docstring."""

    __tablename__ = "payment_files"
    __table_args__ = (
        UniqueConstraint("bank", "sha256"),
        CheckConstraint(_in("state", FILE_STATES), name="state"),
        Index("ix_payment_files_bank_imported", "bank", "imported_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16))
    lines_total: Mapped[int] = mapped_column(Integer)
    lines_done: Mapped[int] = mapped_column(Integer)
    posted_count: Mapped[int] = mapped_column(Integer)
    posted_total: Mapped[Decimal]
    duplicate_count: Mapped[int] = mapped_column(Integer)
    duplicate_total: Mapped[Decimal]
    unmatched_count: Mapped[int] = mapped_column(Integer)
    unmatched_total: Mapped[Decimal]
    bad_count: Mapped[int] = mapped_column(Integer)
    problems: Mapped[list[Any]] = mapped_column(JSON)
    """The first bad lines, ``[{"line_no": 7, "reason": "..."}]`` (capped; the count is exact)."""
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    imported_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class UnmatchedPayment(Base):
    """A statement line held in the suspense book until an operator assigns it to an account."""

    __tablename__ = "unmatched_payments"
    __table_args__ = (
        UniqueConstraint("bank", "line_key"),
        CheckConstraint(_in("state", UNMATCHED_STATES), name="state"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("(state = 'assigned') = (payment_id IS NOT NULL)", name="assigned"),
        Index("ix_unmatched_payments_state", "state", "bank", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("payment_files.id"))
    bank: Mapped[str] = mapped_column(String(32))
    line_key: Mapped[str] = mapped_column(String(100))
    """The line's id at the bank (its reference, or the parser's content hash): the payment's
    ``external_id`` once assigned."""
    line_no: Mapped[int] = mapped_column(Integer)
    booked_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    account_text: Mapped[str | None] = mapped_column(String(64))
    contract_text: Mapped[str | None] = mapped_column(String(64))
    payer: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(300))
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    assigned_at: Mapped[datetime | None]
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
