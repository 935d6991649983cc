"""Prepaid quota reservations: money held for a session of a metered prepaid tariff.

One row per RADIUS session (``acct_unique_id`` is unique: a retransmitted Start finds the
row, never makes a second). ``reserved`` is what was granted to the session so far and
``committed`` what was charged to it so far, both cumulative; while the row is ``open`` its
hold ``reserved - committed`` is unavailable to the account's other sessions. ``unbilled`` is
rated usage that funds did not cover (still due). ``input_octets``, ``output_octets`` and
``seconds`` are the session's counters as of the last commit: the high-water mark that makes a
retransmitted interim charge nothing. ``exhausted_at`` / ``action`` record when the session
ran out and what the network was told (``throttle`` or ``disconnect``). ``allowance_used`` is
the session's traffic counted against its tariff's allowance (also past it) as of the last commit: the sum
over a service's reservations opened in a billing period is what that period's allowance has
used (``billing.quota.allowance_used_before``, by ``(service_id, opened_at)``).
The maths is :mod:`rating.quota`; :mod:`billing.quota` writes here.
"""

from __future__ import annotations

from datetime import datetime
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
        # the allowance already used in a billing period: a range of one service's reservations
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
