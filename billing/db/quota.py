"""Prepaid quota reservations: money held for a session of a metered prepaid tariff.

One row per RADIUS session (``acct_unique_id`` is unique: a retransmitted Start finds the
row, never makes a second). ``reserved`` is what was granted to the session so far and
``committed`` what was charged to it so far, both cumulative; while the row is ``open`` its
hold ``reserved - committed`` is unavailable to the account's other sessions. ``unbilled`` is
rated usage that funds did not cover (still due). ``input_octets``, ``output_octets`` and
``seconds`` are the session's counters as of the last commit: the high-water mark that makes a
retransmitted interim charge nothing. ``exhausted_at`` / ``action`` record when the session
ran out and what the network was told (``throttle`` or ``disconnect``). ``allowance_used`` is
the session's traffic counted against its tariff's allowance (also past it) as of the last commit,
over all billing periods it ran in; ``quota_period_use`` (:class:`QuotaPeriodUse`) splits it by
billing period: usage counts in the period its interim was recorded in, and the sum over a
service's rows of a period is what that period's allowance has used
(``billing.quota.allowance_used_before``, by ``(service_id, period_start)``).
The maths is :mod:`rating.quota`; :mod:`billing.quota` writes here.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId

RESERVATION_STATES = ("open", "closed")
EXHAUSTED_ACTIONS = ("throttle", "disconnect")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class QuotaReservation(Base):
    """Money held for one session; see the module docstring."""

    __tablename__ = "quota_reservations"
    __table_args__ = (
        CheckConstraint(_in("state", RESERVATION_STATES), name="state"),
        CheckConstraint(f"action IS NULL OR {_in('action', EXHAUSTED_ACTIONS)}", name="action"),
        CheckConstraint("committed >= 0 AND reserved >= committed AND unbilled >= 0", name="amounts"),
        CheckConstraint("(state = 'closed') = (closed_at IS NOT NULL)", name="closed"),
        # the open holds of an account are summed under its ledger lock on every reserve/commit
        Index(
            "ix_quota_reservations_account_open",
            "account_id",
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
        # the foreign key, and a service's reservations in the order they were opened
        Index("ix_quota_reservations_service_opened", "service_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    acct_unique_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    tariff_code: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8), default="open")
    reserved: Mapped[Decimal]
    committed: Mapped[Decimal]
    unbilled: Mapped[Decimal]
    input_octets: Mapped[int] = mapped_column(BigInteger)
    output_octets: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[int] = mapped_column(BigInteger)
    allowance_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    action: Mapped[str | None] = mapped_column(String(16))
    exhausted_at: Mapped[datetime | None]
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class QuotaPeriodUse(Base):
    """The allowance volume one session counted in one billing period of its service.

    ``period_start`` is the first local day of the period (the tariff's recurring period with
    the service's anchors, in the operator's zone); an interim's usage counts in the period
    containing the time it was recorded, so a session that crosses a period's end has a row per
    period it used something in. ``service_id`` is the reservation's, kept here so a period's
    use by a service is one index range. Rewritten at each commit of the session (its usage is
    rated whole each time); ``billing.quota`` writes here.
    """

    __tablename__ = "quota_period_use"
    __table_args__ = (
        CheckConstraint("allowance_used >= 0", name="allowance_used"),
        Index("ix_quota_period_use_service_period", "service_id", "period_start"),
    )

    reservation_id: Mapped[int] = mapped_column(ForeignKey("quota_reservations.id"), primary_key=True)
    period_start: Mapped[date] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    allowance_used: Mapped[int] = mapped_column(BigInteger)
