"""Staff use cases for the provisioning outbox.

What: read the outbox (:func:`list_tasks`, :func:`task_detail` with every attempt), send a dead,
unknown or cancelled task back to the worker (:func:`retry`), stop one that should not run
(:func:`cancel`). ``billing-admin provisioning`` calls these; the switch records the worker
reaches are :mod:`billing.switch_records` (``billing-admin switch``).

Why here and not in :mod:`billing.provisioning_outbox`: that module is the worker's side (claim,
record) and changes with it; this is the staff's side, changing with what staff ask for. The
two meet only in the task's ``state`` column, and a staff change never touches a task a worker
holds: the row is locked (``FOR UPDATE``; the worker's claim skips locked rows) and the update
is conditional on the state that was read.

Every change is audited in the caller's transaction; the caller checks the permission first
(:data:`READ` / :data:`MANAGE`). Refusals raise :class:`ProvisioningAdminError` (also the base
of the switch records' refusals) and write nothing. Time is passed in
(``now``), defaulting to the current UTC time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from billing import accounts, audit
from billing.audit import Actor
from billing.db.customers import Account
from billing.db.lifecycle import TASK_STATES, ProvisioningTask
from billing.db.provisioning import ProvisioningAttempt
from billing.db.services import Service
from billing.db.types import utcnow
from billing.provisioning_outbox import action_of

__all__ = [
    "CANCELLABLE",
    "MANAGE",
    "READ",
    "RETRYABLE",
    "AttemptInfo",
    "ProvisioningAdminError",
    "TaskDetail",
    "TaskSummary",
    "UnknownTask",
    "cancel",
    "list_tasks",
    "retry",
    "task_detail",
]

READ: Final = "provisioning.read"
MANAGE: Final = "provisioning.manage"

RETRYABLE = ("dead", "unknown", "cancelled")
"""States a task may be sent back to ``pending`` from (every other one is refused)."""
CANCELLABLE = ("pending", "unknown", "dead")
"""States staff may cancel (``running``: a worker holds it; the rest are final already)."""

ERROR_CAUSES = {
    201: "Residual Session Context Removed",
    202: "Invalid EAP Packet",
    401: "Unsupported Attribute",
    402: "Missing Attribute",
    403: "NAS Identification Mismatch",
    404: "Invalid Request",
    405: "Unsupported Service",
    406: "Unsupported Extension",
    407: "Invalid Attribute Value",
    501: "Administratively Prohibited",
    502: "Request Not Routable (Proxy)",
    503: "Session Context Not Found",
    504: "Session Context Not Removable",
    505: "Other Proxy Processing Error",
    506: "Resources Unavailable",
    507: "Request Initiated",
    508: "Multiple Session Selection Unsupported",
}
"""RFC 5176 §3.6 Error-Cause values, so an attempt reads ``503 Session Context Not Found``."""


class ProvisioningAdminError(ValueError):
    """A staff request about tasks or switches that is refused; nothing is written."""


class UnknownTask(ProvisioningAdminError):
    """No provisioning task has the given id."""


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TaskSummary:
    """One outbox task as staff see it.

    ``action`` is what it does to the network (allow, walled_garden, deny, throttle, release);
    ``outcome`` sums up its last try (or the staff action that last changed it).
    """

    id: int
    idempotency_key: str
    service_id: int
    account: str
    network: str
    action: str
    speed_profile: str | None
    session_key: str | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    claimed_by: str | None
    lease_until: datetime | None
    outcome: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class AttemptInfo:
    """One try of a task at one target (``error_cause_name``: the RFC 5176 name of the code)."""

    id: int
    attempt: int
    worker: str
    target: str
    action: str
    request: str
    result: str
    error_cause: int | None
    error_cause_name: str | None
    detail: str | None
    started_at: datetime
    duration_ms: int


@dataclass(frozen=True)
class TaskDetail:
    """A task with every attempt at the network, oldest first."""

    task: TaskSummary
    status_change_id: int | None
    tariff_code: str | None
    release: bool
    exported_at: datetime | None
    attempt_rows: tuple[AttemptInfo, ...]


def _summary(task: ProvisioningTask, account: str) -> TaskSummary:
    return TaskSummary(
        id=task.id,
        idempotency_key=task.idempotency_key,
        service_id=task.service_id,
        account=account,
        network=task.network,
        action=action_of(task.network, task.release, task.session_key, task.speed_profile),
        speed_profile=task.speed_profile,
        session_key=task.session_key,
        state=task.state,
        attempts=task.attempts,
        next_attempt_at=task.next_attempt_at,
        claimed_by=task.claimed_by,
        lease_until=task.lease_until,
        outcome=task.outcome,
        created_at=task.created_at,
        finished_at=task.finished_at,
    )


def _task_query() -> Select[tuple[ProvisioningTask, str]]:
    return (
        select(ProvisioningTask, Account.number)
        .join(Service, Service.id == ProvisioningTask.service_id)
        .join(Account, Account.id == Service.account_id)
    )


def list_tasks(
    session: Session,
    *,
    state: str | None = None,
    account: str | None = None,
    service_id: int | None = None,
    limit: int = 50,
) -> list[TaskSummary]:
    """At most ``limit`` tasks, newest first; only those in ``state``, of ``account`` (its number:
    the subscriber) and/or of ``service_id``. An unknown state or account is refused."""
    if state is not None and state not in TASK_STATES:
        raise ProvisioningAdminError(f"state: expected one of {', '.join(TASK_STATES)}, got {state!r}")
    if limit < 1:
        raise ProvisioningAdminError(f"limit: must be at least 1, got {limit}")
    query = _task_query().order_by(ProvisioningTask.id.desc()).limit(limit)
    if state is not None:
        query = query.where(ProvisioningTask.state == state)
    if account is not None:
        query = query.where(Service.account_id == accounts.find(session, account).id)
    if service_id is not None:
        query = query.where(ProvisioningTask.service_id == service_id)
    return [_summary(task, number) for task, number in session.execute(query)]


def _load_task(session: Session, task_id: int, *, lock: bool = False) -> tuple[ProvisioningTask, str]:
    query = _task_query().where(ProvisioningTask.id == task_id)
    if lock:
        query = query.with_for_update(of=ProvisioningTask)
    found = session.execute(query).one_or_none()
    if found is None:
        raise UnknownTask(f"task_id: no provisioning task {task_id}")
    return found[0], found[1]


def task_detail(session: Session, task_id: int) -> TaskDetail:
    """Task ``task_id`` with every attempt (every target of every try), oldest first."""
    task, number = _load_task(session, task_id)
    a = ProvisioningAttempt
    rows = session.scalars(select(a).where(a.task_id == task_id).order_by(a.id))
    return TaskDetail(
        task=_summary(task, number),
        status_change_id=task.status_change_id,
        tariff_code=task.tariff_code,
        release=task.release,
        exported_at=task.exported_at,
        attempt_rows=tuple(
            AttemptInfo(
                id=r.id,
                attempt=r.attempt,
                worker=r.worker,
                target=r.target,
                action=r.action,
                request=r.request,
                result=r.result,
                error_cause=r.error_cause,
                error_cause_name=None if r.error_cause is None else ERROR_CAUSES.get(r.error_cause),
                detail=r.detail,
                started_at=r.started_at,
                duration_ms=r.duration_ms,
            )
            for r in rows
        ),
    )


def _refuse_state(
    task: ProvisioningTask, verb: str, done: str, allowed: tuple[str, ...], now: datetime
) -> ProvisioningAdminError:
    why = {
        "running": f"a worker ({task.claimed_by}) holds it until {_when(task.lease_until)}"
        + (", when another may take it over" if task.lease_until and task.lease_until < now else ""),
        "pending": "it is waiting for a worker already"
        + (f", due {_when(task.next_attempt_at)}" if task.next_attempt_at else ""),
        "done": "the network confirmed it; write a new change instead",
        "superseded": "a newer task of the service replaced it",
        "cancelled": "it is cancelled already",
    }.get(task.state, "")
    return ProvisioningAdminError(
        f"task_id: cannot {verb} task {task.id}: it is {task.state}"
        + (f" ({why})" if why else "")
        + f"; only {', '.join(allowed)} tasks can be {done}"
    )


def _when(value: datetime | None) -> str:
    return "-" if value is None else str(audit.json_safe(value.replace(microsecond=0)))


def _set_state(session: Session, task: ProvisioningTask, seen: str, **values: object) -> None:
    """Write ``values`` to ``task`` if it is still in state ``seen`` (no worker took it meanwhile)."""
    changed = session.execute(
        update(ProvisioningTask)
        .where(ProvisioningTask.id == task.id, ProvisioningTask.state == seen)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise ProvisioningAdminError(f"task_id: task {task.id} changed meanwhile; look again and repeat")
    session.refresh(task)


def retry(session: Session, actor: Actor, task_id: int, *, now: datetime | None = None) -> TaskSummary:
    """Send a dead, unknown or cancelled task back to ``pending``, due now.

    The attempt counter keeps counting (the attempts stay on record), so a task that used every
    try gets one more; if that fails it is dead or unknown again. A service-wide task that a newer
    one of the same service replaces is refused, naming the newer one: the worker would only mark
    it superseded, and the newer task carries the whole desired state. The NMS export cursor is
    reset so the new outcome is exported too.
    """
    at = now or utcnow()
    task, number = _load_task(session, task_id, lock=True)
    if task.state not in RETRYABLE:
        raise _refuse_state(task, "retry", "retried", RETRYABLE, at)
    if task.session_key is None:
        newer = session.execute(
            select(ProvisioningTask.id, ProvisioningTask.state)
            .where(
                ProvisioningTask.service_id == task.service_id,
                ProvisioningTask.session_key.is_(None),
                ProvisioningTask.id > task.id,
            )
            .order_by(ProvisioningTask.id.desc())
            .limit(1)
        ).one_or_none()
        if newer is not None:
            raise ProvisioningAdminError(
                f"task_id: cannot retry task {task.id}: task {newer.id} ({newer.state}) of service "
                f"{task.service_id} is newer and carries the whole desired state; retry that one"
            )
    before = _summary(task, number)
    seen = task.state
    _set_state(
        session,
        task,
        seen,
        state="pending",
        next_attempt_at=at,
        claimed_by=None,
        lease_until=None,
        finished_at=None,
        exported_at=None,
        outcome=_note(f"retried by {actor.login} (was {seen})", task.outcome),
    )
    after = _summary(task, number)
    audit.record(
        session,
        actor,
        "provisioning.retry",
        "provisioning_task",
        task.id,
        before={"state": before.state, "outcome": before.outcome, "attempts": before.attempts},
        after={"state": after.state, "next_attempt_at": after.next_attempt_at},
    )
    return after


def cancel(session: Session, actor: Actor, task_id: int, *, now: datetime | None = None) -> TaskSummary:
    """Cancel a pending, unknown or dead task: no worker will run it (a running one is refused).

    Cancelling is final for the worker but not for the record: attempts stay, and :func:`retry`
    can bring the task back.
    """
    at = now or utcnow()
    task, number = _load_task(session, task_id, lock=True)
    if task.state not in CANCELLABLE:
        raise _refuse_state(task, "cancel", "cancelled", CANCELLABLE, at)
    before = _summary(task, number)
    seen = task.state
    _set_state(
        session,
        task,
        seen,
        state="cancelled",
        next_attempt_at=None,
        finished_at=at,
        outcome=_note(f"cancelled by {actor.login} (was {seen})", task.outcome),
    )
    after = _summary(task, number)
    audit.record(
        session,
        actor,
        "provisioning.cancel",
        "provisioning_task",
        task.id,
        before={"state": before.state, "outcome": before.outcome},
        after={"state": after.state},
    )
    return after


def _note(what: str, previous: str | None) -> str:
    return (what + (f"; before: {previous}" if previous else ""))[:500]
