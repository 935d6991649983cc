"""The service lifecycle's tables: status history, scheduled changes, voluntary suspensions, outbox.

``service_status_changes`` is the append-only history of a service (database triggers refuse
UPDATE and DELETE, as for the ledger). ``scheduled_service_changes`` holds future-dated events,
consumed by the daily evaluation (``pending`` until done, cancelled or refused).
``voluntary_suspensions`` keeps each period a subscriber asked for, ``[start_date, end_date)``,
past and planned, so the yearly cap can be counted. ``provisioning_tasks`` is the outbox
(DESIGN.md, "Provisioning"): what the network must now enforce, written in the transaction of
the status change; ``idempotency_key`` is unique, so writing the same change twice makes one task.
The pure state machine is :mod:`billing.lifecycle`; :mod:`billing.service_lifecycle` writes here.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId
from billing.db.services import SERVICE_STATUSES
from billing.db.types import utcnow

LIFECYCLE_EVENTS = (
    "activate",
    "suspend_voluntary",
    "resume",
    "suspend_for_debt",
    "debt_paid",
    "block",
    "unblock",
    "churn",
    "change_tariff",
)
"""The values of ``billing.lifecycle.Event`` (a test checks they agree)."""
SCHEDULED_STATES = ("pending", "done", "cancelled", "refused")
NETWORK_ACTIONS = ("allow", "walled_garden", "deny")
"""The values of ``billing.lifecycle_rules.NetworkAccess``."""
TASK_STATES = ("pending", "running", "done", "unknown", "dead", "cancelled", "superseded")
"""pending (due at ``next_attempt_at``), running (claimed until ``lease_until``), done (every
target confirmed), unknown (no answer after every attempt: the reconciler decides), dead (refused
after every attempt: staff must look), cancelled (by staff), superseded (a later task or a
reconciler repair replaced it). See :mod:`billing.provisioning_outbox`."""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ServiceStatusChange(Base):
    """One transition of a service (or a tariff change in place), never changed afterwards.

    ``operator_id`` is NULL for an automatic transition (debt, payment, a scheduled return);
    for a scheduled change it is the operator who scheduled it. ``at`` is the transition's
    ``as_of``; ``scheduled_change_id`` names the scheduled change it executed, if any.
    """

    __tablename__ = "service_status_changes"
    __table_args__ = (
        CheckConstraint(_in("from_status", SERVICE_STATUSES), name="from_status"),
        CheckConstraint(_in("to_status", SERVICE_STATUSES), name="to_status"),
        CheckConstraint(_in("event", LIFECYCLE_EVENTS), name="event"),
        Index("ix_service_status_changes_service", "service_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    from_status: Mapped[str] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    event: Mapped[str] = mapped_column(String(24))
    reason_id: Mapped[int] = mapped_column(ForeignKey("dictionary_entries.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    at: Mapped[datetime]
    tariff_code: Mapped[str | None] = mapped_column(String(64))
    """change_tariff: the new tariff."""
    from_tariff_code: Mapped[str | None] = mapped_column(String(64))
    """change_tariff: the tariff before it (charges of earlier periods are priced with it)."""
    scheduled_change_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_service_changes.id"))


class ScheduledServiceChange(Base):
    """An event due from the start of ``effective`` (a day in the ISP's time zone).

    ``pending`` until the daily evaluation executes it (``done``), the table refuses it
    (``refused``, with ``outcome`` saying why) or a later transition makes it obsolete
    (``cancelled``). ``closed_at`` is the ``as_of`` that closed it.
    """

    __tablename__ = "scheduled_service_changes"
    __table_args__ = (
        CheckConstraint(_in("event", LIFECYCLE_EVENTS), name="event"),
        CheckConstraint(_in("state", SCHEDULED_STATES), name="state"),
        CheckConstraint("(state = 'pending') = (closed_at IS NULL)", name="closed"),
        Index("ix_scheduled_service_changes_due", "state", "effective"),
        Index("ix_scheduled_service_changes_service", "service_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    effective: Mapped[date] = mapped_column(Date)
    event: Mapped[str] = mapped_column(String(24))
    reason_id: Mapped[int] = mapped_column(ForeignKey("dictionary_entries.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    tariff_code: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(500))


class VoluntarySuspension(Base):
    """A voluntary suspension period ``[start_date, end_date)``: planned, current or past.

    Unique per (service, start date): the lifecycle shortens a period by its start when the
    subscriber returns early. A planned period whose start is refused or cancelled is removed.
    """

    __tablename__ = "voluntary_suspensions"
    __table_args__ = (
        UniqueConstraint("service_id", "start_date"),
        CheckConstraint("end_date >= start_date", name="period"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime]


class ProvisioningTask(Base):
    """The outbox: what the network must enforce for a service; the worker executes it.

    ``network`` is allow (with ``tariff_code``'s profile), walled_garden or deny; ``release``
    says the service is gone and its network identity may be freed. ``idempotency_key`` (e.g.
    ``status_change:<id>``) is unique: the database, not an ``if``, stops a second task.
    ``session_key`` (an ``acct_unique_id``) narrows a task to one RADIUS session: prepaid quota
    (``billing.quota``) writes ``allow`` with ``speed_profile`` set (CoA the session to that
    throttle profile) or ``deny`` (Disconnect the session), keys ``quota:<session>:<action>``.

    The worker (:mod:`billing.provisioning_worker`) claims a task by setting ``running``,
    ``claimed_by`` and ``lease_until``; a lease that runs out (the worker died) makes it claimable
    again. Each try is a ``provisioning_attempts`` row per target; ``outcome`` sums up the last.
    ``exported_at`` is the NMS export cursor: set once the finished task reached every exporter.
    """

    __tablename__ = "provisioning_tasks"
    __table_args__ = (
        CheckConstraint(_in("network", NETWORK_ACTIONS), name="network"),
        CheckConstraint(_in("state", TASK_STATES), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_provisioning_tasks_state", "state", "id"),
        Index("ix_provisioning_tasks_service", "service_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    status_change_id: Mapped[int | None] = mapped_column(ForeignKey("service_status_changes.id"))
    network: Mapped[str] = mapped_column(String(16))
    release: Mapped[bool] = mapped_column(Boolean, default=False)
    tariff_code: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    session_key: Mapped[str | None] = mapped_column(String(64))
    speed_profile: Mapped[str | None] = mapped_column(String(64))
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(500))
    exported_at: Mapped[datetime | None]
