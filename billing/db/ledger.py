"""Ledger tables: accounts with a cached balance, transactions, and append-only postings.

A posting's ``amount`` is signed, debit positive; every transaction's postings sum to zero per
currency. ``ledger_transactions.idempotency_key`` is unique: the database, not an ``if``, stops a
double post. ``reverses_id`` is unique: a transaction is reversed at most once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId
from billing.db.types import utcnow

LEDGER_ACCOUNT_KINDS = {
    # kind: normal side (the sign that makes a positive balance "natural" for the kind)
    "subscriber": "credit",  # money held for / owed by a customer: a liability
    "revenue": "credit",
    "clearing": "debit",  # money at a bank or agent, not yet settled: an asset
    "cash": "debit",
    "suspense": "credit",  # unmatched money received
    "tax": "credit",
    "adjustment": "debit",  # goodwill credits and write-offs: an expense
    "equity": "credit",
}


class LedgerAccount(Base):
    """A ledger account: a subscriber's balance or one of the operator's books."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in LEDGER_ACCOUNT_KINDS)})", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    """Cached sum of postings (debit positive), updated in the posting's DB transaction."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerTransaction(Base):
    """One money movement: two or more postings that sum to zero per currency."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (
        CheckConstraint("posting_count >= 2", name="posting_count"),
        Index("ix_ledger_transactions_effective_at", "effective_at"),
        # partial: most transactions reverse nothing, and their NULLs need no index entry
        Index(
            "uq_ledger_transactions_reverses_id",
            "reverses_id",
            unique=True,
            postgresql_where=text("reverses_id IS NOT NULL"),
            sqlite_where=text("reverses_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(500), default="")
    effective_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    posting_count: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of kind, reversed transaction and legs: the same key with other content is refused,
    and the invariant check recomputes it from the postings to prove none was changed."""


class Posting(Base):
    """One leg of a transaction; never updated or deleted (database triggers refuse it).

    Keyed by (transaction, leg number): no surrogate id, one index less to maintain per row.
    Tampering is detected by recomputing the transaction's ``content_hash`` from its postings.

    References are checked by a trigger, not by foreign keys: per-row foreign-key checks were
    60% of the cost of a batch post on PostgreSQL, while one set-based check per statement
    costs little. Since postings are insert-only and ledger accounts and transactions can be
    neither deleted nor re-keyed (triggers again), the guarantee is the same: every posting
    refers to an existing transaction and to an existing account kept in the posting's currency.
    See the initial migration for the triggers.
    """

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_postings_account_txn", "ledger_account_id", "transaction_id"),
    )

    transaction_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    leg: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ledger_account_id: Mapped[int] = mapped_column(BigId)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
