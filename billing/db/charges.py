"""Charge runs and the charges they post: the recorded job, its per-service errors, its lines.

``charge_runs`` is one run of :func:`billing.charge_run.run_charges`: who, when, for which day,
its status and counts, totals per currency. ``charge_run_errors`` holds one row per service
that failed (the run goes on without it). ``charges`` is one row per posted charge line with
the tariff version that produced it and its ledger transaction; its ``idempotency_key`` (the
ledger transaction's) is unique, so the database, not an ``if``, stops a second charge.
``charge_marks`` says through which day a service was planned, so a re-run of the same day
skips it without pricing it again (written in the same transaction as its charges).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId
from billing.db.types import utcnow

RUN_STATUSES = ("running", "completed", "failed")
CHARGE_KINDS = ("recurring", "adjustment", "one_time", "usage")
"""The values of :class:`billing.charge_plan.ChargeKind`."""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ChargeRun(Base):
    """One charge run (or dry run): a recorded, inspectable job.

    ``status`` is ``running`` until it ends; a run killed mid-way stays ``running`` (its
    committed batches are kept; the next run of the day finishes the work). ``totals`` maps a
    currency to the sum posted (as text, exact).
    """

    __tablename__ = "charge_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_charge_runs_as_of", "as_of"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    subscribers: Mapped[str | None] = mapped_column(String(200))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    operator_login: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    batch_size: Mapped[int] = mapped_column(Integer)
    services_seen: Mapped[int] = mapped_column(Integer, default=0)
    services_charged: Mapped[int] = mapped_column(Integer, default=0)
    services_skipped: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    charges_posted: Mapped[int] = mapped_column(Integer, default=0)
    totals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ChargeRunError(Base):
    """A service the run could not charge, and why (the run went on without it)."""

    __tablename__ = "charge_run_errors"
    __table_args__ = (Index("ix_charge_run_errors_run", "run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("charge_runs.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    message: Mapped[str] = mapped_column(String(1000))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Charge(Base):
    """A posted charge line; the tariff version that produced it; its ledger transaction.

    Its references (service of the charged account, account, ledger transaction, run) are
    checked by a trigger once per statement, not by foreign keys: a monthly run inserts a
    million rows, and per-row foreign-key checks cost more than the rows. Deleting or re-keying
    a referenced service, account or run is refused by triggers on those tables, so the
    guarantee is a foreign key's. See migration 0011.
    """

    __tablename__ = "charges"
    __table_args__ = (
        CheckConstraint(_in("kind", CHARGE_KINDS), name="kind"),
        CheckConstraint("period_start < period_end", name="period"),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_charges_service", "service_id", "period_start"),
        Index("ix_charges_account", "account_id"),
        Index("ix_charges_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    service_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(16))
    due_on: Mapped[date] = mapped_column(Date)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    tariff_code: Mapped[str] = mapped_column(String(64))
    tariff_version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(300))
    transaction_id: Mapped[int] = mapped_column(BigId)
    run_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChargeMark(Base):
    """Through which day a service has been planned and its charges posted."""

    __tablename__ = "charge_marks"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)
    planned_through: Mapped[date] = mapped_column(Date)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("charge_runs.id"))
