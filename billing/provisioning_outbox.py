"""The outbox's database side: claim due tasks, load what they need, record attempts and outcomes.

Claiming is one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``: a task
goes ``pending`` → ``running`` with the worker's name and a lease, so two workers never hold the
same task (on SQLite the database's single writer gives the same guarantee). A task whose lease
ran out (its worker died mid-task) is claimable again; tasks are idempotent (they state where the
network must end up, not a step), so running one twice converges on the same state.

Order per subscriber (account): a task is claimed only when no earlier task of the same account
is still pending or running, so a resume never overtakes the suspend before it. An older pending
service-wide task that a newer one for the same service makes pointless is marked ``superseded``
instead of being run first (the newer one carries the whole desired state).

Recording is set-based: a worker hands over the outcomes of many tasks at once (one transaction,
attempts inserted together). An outcome is written only while the worker still holds the claim
(``claimed_by`` and ``running``): a worker that lost its lease cannot overwrite a newer result,
though its attempts are kept, since they did happen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from aaa.vendor_profiles import SpeedProfile
from billing.db.customers import Account
from billing.db.lifecycle import ProvisioningTask
from billing.db.network import Switch, SwitchPort
from billing.db.provisioning import NetworkState, ProvisioningAttempt
from billing.db.services import Service
from billing.db.services import SpeedProfile as SpeedProfileRow
from billing.db.sessions import RadiusSession

__all__ = [
    "ACTIVE_STATES",
    "AttemptRecord",
    "Finished",
    "PortRef",
    "SessionRef",
    "Work",
    "claim",
    "record",
    "supersede",
    "write_task",
]

ACTIVE_STATES = ("pending", "running")
"""States that hold back the later tasks of the same account."""


@dataclass(frozen=True, slots=True)
class SessionRef:
    """An open RADIUS session, as accounting last reported it: what a CoA must name."""

    acct_unique_id: str
    acct_session_id: str
    username: str
    framed_ip: str | None
    nas_address: str


@dataclass(frozen=True, slots=True)
class PortRef:
    """A switch port bound to the service, and how to reach its switch."""

    switch: str
    address: str | None
    device_type: str | None
    credentials: str | None
    snmp_port: int | None
    ssh_port: int | None
    port: str


@dataclass(frozen=True, slots=True)
class Work:
    """A claimed task with everything its execution needs (loaded in the claim's transaction).

    ``profile`` is the speed to apply when ``network`` is allow: the quota's throttle profile
    for a session task, else the service's own profile (None if it has none).
    """

    task_id: int
    attempt: int
    service_id: int
    account: str
    network: str
    release: bool
    session_key: str | None
    profile: SpeedProfile | None
    sessions: tuple[SessionRef, ...]
    ports: tuple[PortRef, ...]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try at one target, as ``provisioning_attempts`` stores it."""

    target: str
    action: str
    request: str
    result: str
    started_at: datetime
    duration_ms: int
    error_cause: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """A worker's verdict on one try of a task.

    ``state`` is done, pending (try again at ``next_attempt_at``), unknown or dead; on done,
    ``network`` and ``speed_profile`` are what the network now confirms.
    """

    task_id: int
    state: str
    outcome: str
    attempts: tuple[AttemptRecord, ...]
    next_attempt_at: datetime | None = None
    service_id: int | None = None
    network: str | None = None
    speed_profile: str | None = None


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def write_task(
    session: Session,
    key: str,
    service_id: int,
    network: str,
    *,
    release: bool = False,
    tariff_code: str | None = None,
    status_change_id: int | None = None,
    session_key: str | None = None,
    speed_profile: str | None = None,
    created_at: datetime | None = None,
) -> tuple[int, bool]:
    """Write the outbox task ``key`` once; (its id, whether this call wrote it).

    The unique ``idempotency_key``, not an ``if``, stops a second task for the same decision: a
    second write of the key changes nothing and answers the first task's id.
    """
    insert_for = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    values = dict(
        idempotency_key=key,
        service_id=service_id,
        status_change_id=status_change_id,
        network=network,
        release=release,
        tariff_code=tariff_code,
        session_key=session_key,
        speed_profile=speed_profile,
        state="pending",
        attempts=0,
    )
    if created_at is not None:
        values["created_at"] = created_at
    written = session.execute(
        insert_for(ProvisioningTask)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(ProvisioningTask.id)
    ).scalar_one_or_none()
    if written is not None:
        return written, True
    existing = session.scalar(select(ProvisioningTask.id).where(ProvisioningTask.idempotency_key == key))
    assert existing is not None
    return existing, False


def supersede(session: Session, now: datetime) -> int:
    """Mark pending service-wide tasks that a newer service-wide task replaces; returns how many."""
    newer = aliased(ProvisioningTask)
    t = ProvisioningTask
    statement = (
        update(t)
        .where(
            t.state == "pending",
            t.session_key.is_(None),
            exists().where(newer.service_id == t.service_id, newer.session_key.is_(None), newer.id > t.id),
        )
        .values(state="superseded", finished_at=now, outcome="superseded by a newer task of the service")
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount or 0


def claim(session: Session, worker: str, now: datetime, lease_s: float, limit: int) -> list[Work]:
    """Claim up to ``limit`` due tasks for ``worker`` and load their sessions, ports and profiles."""
    t, earlier = ProvisioningTask, aliased(ProvisioningTask)
    s, earlier_service = aliased(Service), aliased(Service)
    due = or_(
        and_(t.state == "pending", or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now)),
        and_(t.state == "running", t.lease_until < now),
    )
    held_back = (
        exists()
        .where(
            earlier.id < t.id,
            earlier.state.in_(ACTIVE_STATES),
            earlier_service.id == earlier.service_id,
            earlier_service.account_id == s.account_id,
        )
        .correlate(t, s)
    )
    candidates = select(t.id).join(s, s.id == t.service_id).where(due, ~held_back).order_by(t.id).limit(limit)
    if _dialect(session) == "postgresql":
        candidates = candidates.with_for_update(of=t, skip_locked=True)
    statement = (
        update(ProvisioningTask)
        .where(ProvisioningTask.id.in_(candidates.scalar_subquery()))
        .values(
            state="running",
            claimed_by=worker,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=ProvisioningTask.attempts + 1,
        )
        .returning(ProvisioningTask.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(session.execute(statement).scalars())
    return _load(session, ids) if ids else []


def _load(session: Session, ids: list[int]) -> list[Work]:
    t, svc = ProvisioningTask, Service

    rows = session.execute(
        select(
            t.id,
            t.attempts,
            t.service_id,
            t.network,
            t.release,
            t.session_key,
            t.speed_profile,
            Account.number,
            svc.speed_profile_id,
        )
        .join(svc, svc.id == t.service_id)
        .join(Account, Account.id == svc.account_id)
        .where(t.id.in_(ids))
        .order_by(t.id)
    ).all()
    service_ids = {r.service_id for r in rows}
    sessions = _open_sessions(session, service_ids)
    ports = _ports(session, service_ids)
    profiles = _profiles(session)
    out = []
    for r in rows:
        if r.speed_profile is not None:
            profile = profiles[1].get(r.speed_profile)
        else:
            profile = profiles[0].get(r.speed_profile_id) if r.speed_profile_id is not None else None
        mine = sessions.get(r.service_id, ())
        if r.session_key is not None:
            mine = tuple(x for x in mine if x.acct_unique_id == r.session_key)
        out.append(
            Work(
                r.id,
                r.attempts,
                r.service_id,
                r.number,
                r.network,
                r.release,
                r.session_key,
                profile,
                mine,
                () if r.session_key is not None else ports.get(r.service_id, ()),
            )
        )
    return out


def _open_sessions(session: Session, service_ids: set[int]) -> dict[int, tuple[SessionRef, ...]]:
    r = RadiusSession
    found: dict[int, list[SessionRef]] = {}
    for row in session.execute(
        select(r.service_id, r.acct_unique_id, r.acct_session_id, r.username, r.framed_ip, r.nas_address)
        .where(r.service_id.in_(service_ids), r.status == "open")
        .order_by(r.id)
    ):
        found.setdefault(row.service_id, []).append(
            SessionRef(row.acct_unique_id, row.acct_session_id, row.username, row.framed_ip, row.nas_address)
        )
    return {k: tuple(v) for k, v in found.items()}


def _ports(session: Session, service_ids: set[int]) -> dict[int, tuple[PortRef, ...]]:
    found: dict[int, list[PortRef]] = {}
    for row in session.execute(
        select(
            SwitchPort.service_id,
            SwitchPort.port,
            Switch.name,
            Switch.address,
            Switch.device_type,
            Switch.credentials,
            Switch.snmp_port,
            Switch.ssh_port,
        )
        .join(Switch, Switch.id == SwitchPort.switch_id)
        .where(SwitchPort.service_id.in_(service_ids))
        .order_by(SwitchPort.id)
    ):
        found.setdefault(row.service_id, []).append(
            PortRef(
                row.name,
                row.address,
                row.device_type,
                row.credentials,
                row.snmp_port,
                row.ssh_port,
                row.port,
            )
        )
    return {k: tuple(v) for k, v in found.items()}


def _profiles(session: Session) -> tuple[dict[int, SpeedProfile], dict[str, SpeedProfile]]:
    """Every speed profile (a small table) by id and by name."""
    by_id: dict[int, SpeedProfile] = {}
    by_name: dict[str, SpeedProfile] = {}
    for row in session.scalars(select(SpeedProfileRow)):
        profile = SpeedProfile.from_record(row)
        by_id[row.id], by_name[row.name] = profile, profile
    return by_id, by_name


def record(session: Session, worker: str, finished: Sequence[Finished], now: datetime) -> int:
    """Store the attempts and outcomes of ``finished`` tasks; returns how many outcomes applied.

    An outcome applies only while ``worker`` still holds the task (see the module docstring).
    """
    attempts = [
        {
            "task_id": f.task_id,
            "attempt": 0,
            "worker": worker,
            "target": a.target[:128],
            "action": a.action,
            "request": a.request[:1000],
            "result": a.result,
            "error_cause": a.error_cause,
            "detail": a.detail[:500] if a.detail else None,
            "started_at": a.started_at,
            "duration_ms": a.duration_ms,
        }
        for f in finished
        for a in f.attempts
    ]
    held = _held(session, worker, [f.task_id for f in finished])
    for row in attempts:
        row["attempt"] = held.get(row["task_id"], 0)
    if attempts:
        session.execute(insert(ProvisioningAttempt), attempts)
    outcomes = [
        {
            "b_id": f.task_id,
            "b_state": f.state,
            "b_outcome": f.outcome[:500],
            "b_next": f.next_attempt_at,
            "b_finished": now if f.state != "pending" else None,
        }
        for f in finished
        if f.task_id in held
    ]
    if outcomes:
        t = ProvisioningTask.__table__.c
        session.connection().execute(
            update(ProvisioningTask.__table__)
            .where(t.id == bindparam("b_id"), t.claimed_by == worker, t.state == "running")
            .values(
                state=bindparam("b_state"),
                outcome=bindparam("b_outcome"),
                next_attempt_at=bindparam("b_next"),
                finished_at=bindparam("b_finished"),
                claimed_by=None,
                lease_until=None,
            ),
            outcomes,
        )
    applied = len(outcomes)
    confirmed = [f for f in finished if f.task_id in held and f.state == "done" and f.network is not None]
    if confirmed:
        _confirm(session, confirmed, now)
    return applied


def _held(session: Session, worker: str, ids: list[int]) -> dict[int, int]:
    """The tasks among ``ids`` that ``worker`` still holds, with their attempt number."""
    t = ProvisioningTask
    rows = session.execute(
        select(t.id, t.attempts).where(t.id.in_(ids), t.claimed_by == worker, t.state == "running")
    )
    return {row.id: row.attempts for row in rows}


def _confirm(session: Session, done: Sequence[Finished], now: datetime) -> None:
    """Upsert ``network_states``: what the network confirmed for each service."""
    insert_for = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    latest: dict[int, Finished] = {}
    for f in done:
        assert f.service_id is not None
        if f.service_id not in latest or latest[f.service_id].task_id < f.task_id:
            latest[f.service_id] = f
    statement = insert_for(NetworkState)
    statement = statement.on_conflict_do_update(
        index_elements=[NetworkState.service_id],
        set_={
            "network": statement.excluded.network,
            "speed_profile": statement.excluded.speed_profile,
            "task_id": statement.excluded.task_id,
            "confirmed_at": statement.excluded.confirmed_at,
        },
        where=NetworkState.task_id < statement.excluded.task_id,
    )
    session.execute(
        statement,
        [
            {
                "service_id": f.service_id,
                "network": f.network,
                "speed_profile": f.speed_profile,
                "task_id": f.task_id,
                "confirmed_at": now,
            }
            for f in latest.values()
        ],
    )


# --------------------------------------------------------------------------- NMS export cursor


def unexported(session: Session, limit: int) -> list[Any]:
    """Finished tasks no exporter has taken yet, oldest first, as ``nms_adapters`` events."""
    from nms_adapters.events import NetworkEvent

    t = ProvisioningTask
    rows = session.execute(
        select(t, Account.number, Service.speed_profile_id)
        .join(Service, Service.id == t.service_id)
        .join(Account, Account.id == Service.account_id)
        .where(t.state.in_(("done", "unknown", "dead")), t.exported_at.is_(None))
        .order_by(t.id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    ids = [row[0].id for row in rows]
    targets: dict[int, list[str]] = {}
    for task_id, target in session.execute(
        select(ProvisioningAttempt.task_id, ProvisioningAttempt.target)
        .where(ProvisioningAttempt.task_id.in_(ids), ProvisioningAttempt.action != "none")
        .distinct()
        .order_by(ProvisioningAttempt.task_id, ProvisioningAttempt.target)
    ):
        targets.setdefault(task_id, []).append(target)
    profiles = _profiles(session)[0]
    events = []
    for task, account, profile_id in rows:
        profile = task.speed_profile
        if profile is None and task.network == "allow" and profile_id in profiles:
            profile = profiles[profile_id].name
        events.append(
            NetworkEvent(
                task_id=task.id,
                service_id=task.service_id,
                account=account,
                action=action_of(task.network, task.release, task.session_key, task.speed_profile),
                speed_profile=profile,
                outcome=task.state,
                at=task.finished_at or task.created_at,
                targets=tuple(targets.get(task.id, ())),
            )
        )
    return events


def action_of(network: str, release: bool, session_key: str | None, speed_profile: str | None) -> str:
    """The event's action: allow, walled_garden, deny, throttle (a quota's slow profile) or release."""
    if release:
        return "release"
    if network == "allow" and session_key is not None and speed_profile is not None:
        return "throttle"
    return network


def mark_exported(session: Session, ids: Sequence[int], now: datetime) -> None:
    session.execute(
        update(ProvisioningTask)
        .where(ProvisioningTask.id.in_(ids))
        .values(exported_at=now)
        .execution_options(synchronize_session=False)
    )
