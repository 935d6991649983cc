"""The provisioning worker's records: every attempt at the network, and what the network confirmed.

``provisioning_attempts`` keeps one row per target per try of a task (a CoA to one NAS, a port
block on one switch): what was sent, what came back (ACK, NAK with its Error-Cause, a timeout,
an error) and how long it took, so staff can see why a subscriber is still online. Rows are only
ever added. ``network_states`` is, per service, the last state the network confirmed (the
network access and speed profile of the task that completed): the network reconciler compares
it, and what the switches report, with what billing says should be.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId
from billing.db.lifecycle import NETWORK_ACTIONS

ATTEMPT_ACTIONS = ("coa", "disconnect", "block", "unblock", "set_rate", "none")
"""What one attempt did to its target (``none``: the task had nothing to reach, e.g. no session)."""
ATTEMPT_RESULTS = ("ack", "nak", "gone", "timeout", "ok", "error")
"""ack / nak: the NAS's answer; gone: the NAS no longer has the session (a NAK with Error-Cause
503), which is what a Disconnect wants; timeout: no answer after every retransmit; ok / error:
a switch did, or refused, the change."""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ProvisioningAttempt(Base):
    """One try of a task at one target; never changed afterwards."""

    __tablename__ = "provisioning_attempts"
    __table_args__ = (
        CheckConstraint(_in("action", ATTEMPT_ACTIONS), name="action"),
        CheckConstraint(_in("result", ATTEMPT_RESULTS), name="result"),
        Index("ix_provisioning_attempts_task", "task_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("provisioning_tasks.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    """The task's try this belongs to (1 for the first)."""
    worker: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    """``nas:<name> <address>:<port> session <Acct-Session-Id>`` or ``switch:<name> <port>``."""
    action: Mapped[str] = mapped_column(String(16))
    request: Mapped[str] = mapped_column(String(1000))
    result: Mapped[str] = mapped_column(String(16))
    error_cause: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)


class NetworkState(Base):
    """What the network last confirmed for a service: its access and speed profile, and which task."""

    __tablename__ = "network_states"
    __table_args__ = (CheckConstraint(_in("network", NETWORK_ACTIONS), name="network"),)

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)
    network: Mapped[str] = mapped_column(String(16))
    speed_profile: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[int] = mapped_column(ForeignKey("provisioning_tasks.id"))
    confirmed_at: Mapped[datetime]
