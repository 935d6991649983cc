"""The network reconciler: compare what billing says should be with what the network reports.

The outbox (:mod:`billing.provisioning_worker`) makes the network follow each decision once; this
module checks afterwards that it did, and that nothing undid it (a switch rebooted, a CoA whose
answer was lost, a task that ended ``unknown``). ``billing-admin reconcile-network`` runs it on
demand; ``billingd`` runs it every ``[provisioning] reconcile_interval_s`` (see
:func:`reconcile_periodically`).

Desired, per service: the network access its status means under the lifecycle rules
(:func:`billing.status_meaning.meaning`: allow, walled_garden or deny, exactly what the lifecycle
writes into a task) and, for allow, the service's speed profile (walled_garden: the walled-garden
profile). Reported: the open RADIUS sessions of accounting (with the ``[[aaa.nas]]`` covering each
``nas_address``), what the network last confirmed (``network_states``), the service's tasks, and
the admin state of each bound port of every switch billing controls (``device_type`` set), read
through :mod:`nms_adapters.switches`.

Drift kinds (:class:`DriftKind`):

=========================  =================================================================
session_should_be_down     an open session of a service whose desired access is deny
session_unconfirmed        an open session, desired allow / walled_garden, and the network never
                           confirmed that state (the last task ended unknown or dead, or none ran)
session_stale              an open session of a denied service, but the network confirmed deny
                           after the session's last accounting update: a Stop was lost; the
                           accounting reaper closes it (not repaired: a Disconnect has nothing
                           to end)
port_should_be_blocked     a bound port administratively up, desired deny
port_should_be_up          a bound port administratively down, desired allow / walled_garden
port_rate_differs          a rate-capable switch (CLI drivers) limits the port to another rate
                           than the allowed profile's
port_not_found             the switch does not report a port the database binds (not repaired)
switch_unreachable         a controlled switch could not be read (not repaired; its ports are
                           not checked)
=========================  =================================================================

Not drift: a service with a pending or running task heading to the desired access (the outbox
is on it: counted as *in progress*), and a session that started after the service's last
decision (the later of the service row's last change and its latest task): the AAA server
authorized that login with the current status, and the reconciler does not fight the login
gate. Session (prepaid quota) tasks are the quota's business: only service-wide tasks count.

Repair (``--repair`` / ``reconcile_repair``) writes, per drifted service, ONE provisioning task
with the desired state (idempotency key ``reconcile:<service_id>:<run id>``) and marks the
service's ``unknown`` tasks ``superseded`` ("resolved by reconcile run <id>: task <new id>"),
with an audit row; it re-reads the service in its transaction and skips one whose desired state
changed, or that got a task in flight, since the read. Nothing else stored changes.

Layers: :func:`desired_for` and :func:`compare` are pure (no I/O, no clock); :func:`load_snapshot`
and :func:`write_repairs` are the database side (the caller's transaction); :func:`read_switches`
talks to the switches (asyncio); :func:`run_reconcile` composes them for the daemon, the CLI calls
the steps itself so each runs under its permission check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from billing import audit
from billing.audit import Actor
from billing.db.customers import Account, Customer
from billing.db.dictionaries import DictionaryEntry
from billing.db.lifecycle import ProvisioningTask
from billing.db.network import Switch, SwitchPort
from billing.db.provisioning import NetworkState
from billing.db.services import Service
from billing.db.services import SpeedProfile as SpeedProfileRow
from billing.db.sessions import RadiusSession
from billing.lifecycle import ServiceStatus
from billing.lifecycle_rules import LifecycleRules, NetworkAccess
from billing.provisioning_outbox import PortRef, write_task
from billing.provisioning_settings import ProvisioningSettings
from billing.status_meaning import meaning
from billing.switch_access import switch_access
from nms_adapters.switches import RATE_CAPABLE_DEVICE_TYPES

if TYPE_CHECKING:
    from aaa.settings import AaaSettings

__all__ = [
    "DAEMON_ACTOR",
    "REPAIRABLE",
    "WALLED_GARDEN_PROFILE",
    "Confirmed",
    "Desired",
    "Drift",
    "DriftKind",
    "OpenSession",
    "PortView",
    "ReconcileError",
    "Repair",
    "Report",
    "ReportedPort",
    "ServiceView",
    "Snapshot",
    "SwitchReading",
    "SwitchTarget",
    "TaskView",
    "build_report",
    "compare",
    "desired_for",
    "load_snapshot",
    "new_run_id",
    "read_switches",
    "read_switches_blocking",
    "reconcile_periodically",
    "run_reconcile",
    "switch_access",
    "write_repairs",
]

_log = logging.getLogger(__name__)

WALLED_GARDEN_PROFILE = "walled-garden"
"""The speed profile name the worker confirms for walled_garden (``network_states.speed_profile``)."""
DAEMON_ACTOR = Actor(None, "billingd", None, "daemon:reconcile")
"""Who the periodic repair is audited as."""
IN_FLIGHT_STATES = ("pending", "running")
UNCERTAIN_STATES = ("unknown", "dead")
"""Task outcomes after which the network may be in the task's state, the previous one, or a mix."""
_CHUNK = 1000


class ReconcileError(ValueError):
    """A request the reconciler refuses before reading anything (an unknown --nas or --switch)."""


class DriftKind(StrEnum):
    """What disagrees (see the module docstring's table)."""

    SESSION_SHOULD_BE_DOWN = "session_should_be_down"
    SESSION_UNCONFIRMED = "session_unconfirmed"
    SESSION_STALE = "session_stale"
    PORT_SHOULD_BE_BLOCKED = "port_should_be_blocked"
    PORT_SHOULD_BE_UP = "port_should_be_up"
    PORT_RATE_DIFFERS = "port_rate_differs"
    PORT_NOT_FOUND = "port_not_found"
    SWITCH_UNREACHABLE = "switch_unreachable"


REPAIRABLE = frozenset(
    {
        DriftKind.SESSION_SHOULD_BE_DOWN,
        DriftKind.SESSION_UNCONFIRMED,
        DriftKind.PORT_SHOULD_BE_BLOCKED,
        DriftKind.PORT_SHOULD_BE_UP,
        DriftKind.PORT_RATE_DIFFERS,
    }
)
"""Drift a new provisioning task fixes; the rest needs staff (or the accounting reaper)."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Desired:
    """Where billing wants the network for a service: what a task written now would say.

    ``speed_profile``: the allowed profile's name (walled_garden: :data:`WALLED_GARDEN_PROFILE`,
    deny: None); ``kbps``: the allowed profile's downstream rate (a port's rate limit).
    """

    network: str
    speed_profile: str | None = None
    kbps: int | None = None
    release: bool = False
    tariff_code: str | None = None

    def describe(self) -> str:
        return self.network + (f" {self.speed_profile}" if self.speed_profile else "")


@dataclass(frozen=True, slots=True)
class Confirmed:
    """What the network last confirmed for the service, by which (service-wide) task, when."""

    network: str
    speed_profile: str | None
    task_id: int
    at: datetime

    def describe(self) -> str:
        return self.network + (f" {self.speed_profile}" if self.speed_profile else "")


@dataclass(frozen=True, slots=True)
class TaskView:
    """A service-wide provisioning task, as far as the reconciler cares."""

    id: int
    state: str
    network: str
    created_at: datetime
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceView:
    """One service: desired state and what billing knows of the network's.

    ``confirmed`` is None when the network never confirmed a state, or a service-wide task after
    the confirming one ended unknown or dead (the network may be anywhere between).
    ``decided_at``: the later of the service row's last change and its latest service-wide task.
    ``in_flight``: the networks of its pending or running service-wide tasks.
    ``unknown_tasks``: every task of the service in state unknown (repair supersedes them).
    """

    service_id: int
    account: str
    status: str
    desired: Desired
    decided_at: datetime
    confirmed: Confirmed | None = None
    latest_task: TaskView | None = None
    in_flight: tuple[str, ...] = ()
    unknown_tasks: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenSession:
    """An open RADIUS session as accounting last reported it; ``nas``: the [[aaa.nas]] name, if any."""

    service_id: int
    acct_unique_id: str
    acct_session_id: str
    username: str
    nas_address: str
    nas: str | None
    started_at: datetime
    updated_at: datetime

    @property
    def target(self) -> str:
        return f"nas:{self.nas or '?'} {self.nas_address} session {self.acct_session_id}"


@dataclass(frozen=True, slots=True)
class PortView:
    """A port bound to a service on a switch billing controls."""

    switch: str
    port: str
    vlan: int
    service_id: int
    device_type: str

    @property
    def target(self) -> str:
        return f"switch:{self.switch} {self.port}" + (f" vlan {self.vlan}" if self.vlan else "")


@dataclass(frozen=True, slots=True)
class SwitchTarget:
    """A controlled switch to read, and the database's names of its bound ports."""

    name: str
    address: str | None
    device_type: str
    credentials: str | None
    snmp_port: int | None
    ssh_port: int | None
    ports: tuple[str, ...]

    def ref(self) -> PortRef:
        """The switch as the outbox names it (for :func:`switch_access`)."""
        return PortRef(
            self.name, self.address, self.device_type, self.credentials, self.snmp_port, self.ssh_port, "*"
        )


@dataclass(frozen=True, slots=True)
class ReportedPort:
    """A port's state as its switch reported it (``rate_kbps`` None: no limit, or unknown over SNMP)."""

    admin_up: bool
    oper_up: bool | None = None
    rate_kbps: int | None = None


@dataclass(frozen=True, slots=True)
class SwitchReading:
    """One switch's answer: ``ports`` keyed by the database's port names, or the ``error`` that stopped it."""

    switch: str
    error: str | None = None
    ports: Mapping[str, ReportedPort] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Drift:
    """One disagreement between billing and the network."""

    kind: DriftKind
    service_id: int | None
    account: str | None
    target: str
    desired: str
    reported: str
    detail: str = ""

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRABLE


@dataclass(frozen=True, slots=True)
class Repair:
    """What ``--repair`` did for one service: the task written and the unknown tasks it superseded.

    ``task_id`` None: nothing written, ``note`` says why (the service changed since the read).
    """

    service_id: int
    task_id: int | None
    network: str
    superseded: tuple[int, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything read from the database for one run (plain values, no ORM rows)."""

    at: datetime
    services: Mapping[int, ServiceView]
    sessions: tuple[OpenSession, ...]
    ports: tuple[PortView, ...]
    switches: tuple[SwitchTarget, ...]


@dataclass(frozen=True)
class Report:
    """One run: the drift found, what was checked, and what ``--repair`` wrote."""

    run_id: str
    at: datetime
    drift: tuple[Drift, ...]
    in_progress: tuple[int, ...]
    sessions_checked: int
    ports_checked: int
    switches_read: int
    repairs: tuple[Repair, ...] = ()

    @property
    def drifted_services(self) -> tuple[int, ...]:
        return tuple(sorted({d.service_id for d in self.drift if d.service_id is not None}))

    def summary(self) -> str:
        text = (
            f"reconcile run {self.run_id}: {len(self.drift)} drift(s) in {len(self.drifted_services)} "
            f"service(s); checked {self.sessions_checked} session(s), {self.ports_checked} port(s) on "
            f"{self.switches_read} switch(es); {len(self.in_progress)} service(s) in progress"
        )
        written = [r for r in self.repairs if r.task_id is not None]
        if self.repairs:
            text += f"; repair wrote {len(written)} task(s)"
            skipped = len(self.repairs) - len(written)
            if skipped:
                text += f", skipped {skipped}"
        return text


def new_run_id(now: datetime) -> str:
    """A readable, unique run id: ``20261203T151500Z-1a2b3c``."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- pure: desired state


def desired_for(
    status: str,
    kind: str,
    category: str,
    rules: LifecycleRules,
    *,
    tariff_code: str | None = None,
    profile: str | None = None,
    profile_kbps: int | None = None,
) -> Desired:
    """The network a service of ``status`` must have, as the lifecycle would write its task."""
    network = meaning(ServiceStatus(status), rules.lookup(kind, category)).network
    if network is NetworkAccess.ALLOW:
        return Desired(network.value, profile, profile_kbps, tariff_code=tariff_code)
    if network is NetworkAccess.WALLED_GARDEN:
        return Desired(network.value, WALLED_GARDEN_PROFILE)
    return Desired(network.value, release=status == ServiceStatus.CHURNED)


# --------------------------------------------------------------------------- pure: comparison


def compare(
    services: Mapping[int, ServiceView],
    sessions: Iterable[OpenSession],
    ports: Iterable[PortView],
    readings: Mapping[str, SwitchReading],
) -> tuple[tuple[Drift, ...], tuple[int, ...]]:
    """Every drift, and the services skipped because a task heading to the desired state is in flight."""
    drift: list[Drift] = []
    in_progress: set[int] = set()
    for session in sessions:
        view = services.get(session.service_id)
        if view is None:
            continue
        if view.desired.network in view.in_flight:
            in_progress.add(view.service_id)
            continue
        found = _session_drift(view, session)
        if found is not None:
            drift.append(found)
    unreachable: dict[str, int] = {}
    for port in ports:
        reading = readings.get(port.switch)
        if reading is None:
            continue
        if reading.error is not None:
            unreachable[port.switch] = unreachable.get(port.switch, 0) + 1
            continue
        view = services.get(port.service_id)
        if view is None:
            continue
        if view.desired.network in view.in_flight:
            in_progress.add(view.service_id)
            continue
        found = _port_drift(view, port, reading.ports.get(port.port))
        if found is not None:
            drift.append(found)
    for name, reading in readings.items():
        if reading.error is not None:
            drift.append(
                Drift(
                    DriftKind.SWITCH_UNREACHABLE,
                    None,
                    None,
                    f"switch:{name}",
                    "readable",
                    reading.error,
                    f"{unreachable.get(name, 0)} bound port(s) not checked",
                )
            )
    drift.sort(key=lambda d: (d.service_id is not None, d.service_id or 0, d.kind, d.target))
    return tuple(drift), tuple(sorted(in_progress))


def _last_task(view: ServiceView) -> str:
    task = view.latest_task
    if task is None:
        return "no task ever ran"
    return f"last task {task.id} ({task.network}) {task.state}" + (
        f": {task.outcome}" if task.outcome else ""
    )


def _session_drift(view: ServiceView, session: OpenSession) -> Drift | None:
    want, confirmed = view.desired, view.confirmed
    if session.started_at >= view.decided_at:
        return None  # authorized at login with the current status
    shown = f"session open since {session.started_at:%Y-%m-%d %H:%M:%S}Z; " + (
        f"network confirmed {confirmed.describe()} (task {confirmed.task_id})"
        if confirmed is not None
        else "network state unconfirmed"
    )
    if want.network == NetworkAccess.DENY:
        if (
            confirmed is not None
            and confirmed.network == NetworkAccess.DENY
            and session.updated_at <= confirmed.at
        ):
            return Drift(
                DriftKind.SESSION_STALE, view.service_id, view.account, session.target, "no session",
                shown, "no accounting since the network confirmed deny; the reaper closes it",
            )  # fmt: skip
        return Drift(
            DriftKind.SESSION_SHOULD_BE_DOWN, view.service_id, view.account, session.target, "no session",
            shown, f"service {view.status}; {_last_task(view)}",
        )  # fmt: skip
    if confirmed is not None and (confirmed.network, confirmed.speed_profile) == (
        want.network,
        want.speed_profile,
    ):
        return None
    return Drift(
        DriftKind.SESSION_UNCONFIRMED, view.service_id, view.account, session.target, want.describe(),
        shown, f"service {view.status}; {_last_task(view)}",
    )  # fmt: skip


def _port_drift(view: ServiceView, port: PortView, reported: ReportedPort | None) -> Drift | None:
    want = view.desired
    want_up = want.network != NetworkAccess.DENY
    desired = "admin up" if want_up else "admin down"
    if reported is None:
        return Drift(
            DriftKind.PORT_NOT_FOUND, view.service_id, view.account, port.target, desired,
            "not reported by the switch", "check the port name in switch_ports",
        )  # fmt: skip
    shown = "admin up" if reported.admin_up else "admin down"
    if reported.oper_up is not None:
        shown += ", oper up" if reported.oper_up else ", oper down"
    detail = f"service {view.status}; {_last_task(view)}"
    if reported.admin_up and not want_up:
        return Drift(DriftKind.PORT_SHOULD_BE_BLOCKED, view.service_id, view.account, port.target, desired,
                     shown, detail)  # fmt: skip
    if not reported.admin_up and want_up:
        return Drift(DriftKind.PORT_SHOULD_BE_UP, view.service_id, view.account, port.target, desired,
                     shown, detail)  # fmt: skip
    if (
        want.network == NetworkAccess.ALLOW
        and want.kbps is not None
        and port.device_type in RATE_CAPABLE_DEVICE_TYPES
        and reported.rate_kbps != want.kbps
    ):
        rate = f"{reported.rate_kbps} kbit/s" if reported.rate_kbps is not None else "no rate limit"
        return Drift(
            DriftKind.PORT_RATE_DIFFERS, view.service_id, view.account, port.target,
            f"{want.kbps} kbit/s ({want.speed_profile})", rate, detail,
        )  # fmt: skip
    return None


def build_report(
    snapshot: Snapshot, readings: Mapping[str, SwitchReading], *, run_id: str | None = None
) -> Report:
    """The report of one run from what was read (pure)."""
    drift, in_progress = compare(snapshot.services, snapshot.sessions, snapshot.ports, readings)
    checked_ports = sum(1 for p in snapshot.ports if (r := readings.get(p.switch)) and r.error is None)
    return Report(
        run_id or new_run_id(snapshot.at),
        snapshot.at,
        drift,
        in_progress,
        len(snapshot.sessions),
        checked_ports,
        sum(1 for r in readings.values() if r.error is None),
    )


# --------------------------------------------------------------------------- database: reading


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def load_snapshot(
    session: Session,
    aaa: AaaSettings,
    rules: LifecycleRules,
    *,
    now: datetime,
    nas: str | None = None,
    switch: str | None = None,
) -> Snapshot:
    """Read what the run compares: open sessions, controlled switches' bound ports, their services.

    No filter: every open session and every controlled switch. ``nas`` limits the run to the
    sessions of that ``[[aaa.nas]]``, ``switch`` to that switch's ports; naming only one of
    them leaves the other kind out.
    """
    if nas is not None and all(c.name != nas for c in aaa.nas):
        known = ", ".join(c.name for c in aaa.nas) or "none configured"
        raise ReconcileError(f"--nas: no [[aaa.nas]] named {nas!r}; known: {known}")
    want_sessions = nas is not None or switch is None
    want_ports = switch is not None or nas is None
    sessions = _open_sessions(session, aaa, nas) if want_sessions else []
    ports, switches = _controlled_ports(session, switch) if want_ports else ([], [])
    ids = sorted({s.service_id for s in sessions} | {p.service_id for p in ports})
    services = _service_views(session, ids, rules)
    return Snapshot(now, services, tuple(sessions), tuple(ports), tuple(switches))


def _open_sessions(session: Session, aaa: AaaSettings, nas: str | None) -> list[OpenSession]:
    r = RadiusSession
    found: list[OpenSession] = []
    names: dict[str, str | None] = {}
    rows = session.execute(
        select(
            r.service_id, r.acct_unique_id, r.acct_session_id, r.username, r.nas_address, r.started_at,
            r.updated_at,
        )
        .where(r.status == "open", r.service_id.is_not(None))
        .order_by(r.id)
    )  # fmt: skip
    for row in rows:
        if row.nas_address not in names:
            client = aaa.client_for(row.nas_address)
            names[row.nas_address] = client.name if client is not None else None
        name = names[row.nas_address]
        if nas is not None and name != nas:
            continue
        found.append(
            OpenSession(
                row.service_id, row.acct_unique_id, row.acct_session_id, row.username, row.nas_address,
                name, row.started_at, row.updated_at,
            )
        )  # fmt: skip
    return found


def _controlled_ports(session: Session, switch: str | None) -> tuple[list[PortView], list[SwitchTarget]]:
    query = select(Switch).order_by(Switch.name)
    if switch is not None:
        row = session.scalar(select(Switch).where(Switch.name == switch))
        if row is None:
            raise ReconcileError(f"--switch: no switch named {switch!r}")
        if row.device_type is None:
            raise ReconcileError(f"--switch: billing does not control {switch!r} (it has no device type)")
        query = query.where(Switch.name == switch)
    rows = list(session.scalars(query.where(Switch.device_type.is_not(None))))
    bound: dict[int, list[tuple[str, int, int]]] = {}
    for sw_id, port, vlan, service_id in session.execute(
        select(SwitchPort.switch_id, SwitchPort.port, SwitchPort.vlan, SwitchPort.service_id)
        .where(SwitchPort.switch_id.in_([r.id for r in rows]), SwitchPort.service_id.is_not(None))
        .order_by(SwitchPort.id)
    ):
        bound.setdefault(sw_id, []).append((port, vlan, service_id))
    ports: list[PortView] = []
    targets: list[SwitchTarget] = []
    for row in rows:
        mine = bound.get(row.id, [])
        if not mine:
            continue
        assert row.device_type is not None
        ports.extend(PortView(row.name, port, vlan, sid, row.device_type) for port, vlan, sid in mine)
        names = tuple(dict.fromkeys(port for port, _, _ in mine))
        targets.append(
            SwitchTarget(
                row.name, row.address, row.device_type, row.credentials, row.snmp_port, row.ssh_port, names
            )
        )
    return ports, targets


def _service_views(session: Session, ids: Sequence[int], rules: LifecycleRules) -> dict[int, ServiceView]:
    views: dict[int, ServiceView] = {}
    for chunk in _chunks(ids):
        views.update(_service_views_chunk(session, chunk, rules))
    return views


def _service_views_chunk(session: Session, ids: list[int], rules: LifecycleRules) -> dict[int, ServiceView]:
    t, svc = ProvisioningTask, Service
    rows = session.execute(
        select(
            svc.id, svc.status, svc.kind, svc.tariff_code, svc.updated_at, Account.number,
            DictionaryEntry.code.label("category"), SpeedProfileRow.name.label("profile"),
            SpeedProfileRow.down_kbps,
        )
        .join(Account, Account.id == svc.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .outerjoin(DictionaryEntry, DictionaryEntry.id == Customer.category_id)
        .outerjoin(SpeedProfileRow, SpeedProfileRow.id == svc.speed_profile_id)
        .where(svc.id.in_(ids))
    ).all()  # fmt: skip
    service_wide = t.session_key.is_(None)
    latest_ids = select(func.max(t.id)).where(t.service_id.in_(ids), service_wide).group_by(t.service_id)
    done_ids = (
        select(func.max(t.id))
        .where(t.service_id.in_(ids), service_wide, t.state == "done")
        .group_by(t.service_id)
    )
    tasks: dict[int, Any] = {
        task.id: task
        for task in session.execute(
            select(t.id, t.service_id, t.state, t.network, t.session_key, t.speed_profile, t.created_at,
                   t.outcome)
            .where(
                t.service_id.in_(ids),
                (t.state.in_((*IN_FLIGHT_STATES, *UNCERTAIN_STATES)))
                | t.id.in_(latest_ids.scalar_subquery())
                | t.id.in_(done_ids.scalar_subquery()),
            )
            .order_by(t.id)
        )
    }  # fmt: skip
    by_service: dict[int, list[Any]] = {}
    for task in tasks.values():
        by_service.setdefault(task.service_id, []).append(task)
    states = {
        row.service_id: row
        for row in session.execute(
            select(NetworkState.service_id, NetworkState.network, NetworkState.speed_profile,
                   NetworkState.task_id, NetworkState.confirmed_at, t.session_key)
            .join(t, t.id == NetworkState.task_id)
            .where(NetworkState.service_id.in_(ids))
        )
    }  # fmt: skip
    views: dict[int, ServiceView] = {}
    for row in rows:
        desired = desired_for(
            row.status, row.kind, row.category or "", rules,
            tariff_code=row.tariff_code, profile=row.profile, profile_kbps=row.down_kbps,
        )  # fmt: skip
        mine = by_service.get(row.id, [])
        wide = [x for x in mine if x.session_key is None]
        latest = max(wide, key=lambda x: x.id, default=None)
        confirmed = _confirmed(states.get(row.id), wide, row.profile)
        if confirmed is not None and any(
            x.id > confirmed.task_id and x.state in UNCERTAIN_STATES for x in wide
        ):
            confirmed = None
        decided_at = max(row.updated_at, latest.created_at) if latest is not None else row.updated_at
        views[row.id] = ServiceView(
            row.id,
            row.number,
            row.status,
            desired,
            decided_at,
            confirmed,
            TaskView(latest.id, latest.state, latest.network, latest.created_at, latest.outcome)
            if latest is not None
            else None,
            tuple(sorted({x.network for x in wide if x.state in IN_FLIGHT_STATES})),
            tuple(x.id for x in mine if x.state == "unknown"),
        )
    return views


def _confirmed(state: Any, wide: list[Any], profile: str | None) -> Confirmed | None:
    """``network_states`` when a service-wide task wrote it, else the latest done service-wide task.

    A session (quota) task also lands in ``network_states``; it says nothing of the service's
    other sessions, so the last service-wide task that completed stands in for it.
    """
    if state is not None and state.session_key is None:
        return Confirmed(state.network, state.speed_profile, state.task_id, state.confirmed_at)
    done = max((x for x in wide if x.state == "done"), key=lambda x: x.id, default=None)
    if done is None:
        return None
    speed = {
        NetworkAccess.ALLOW.value: done.speed_profile or profile,
        NetworkAccess.WALLED_GARDEN.value: WALLED_GARDEN_PROFILE,
    }.get(done.network)
    return Confirmed(done.network, speed, done.id, done.created_at)


# --------------------------------------------------------------------------- switches


async def read_switches(
    targets: Sequence[SwitchTarget], settings: ProvisioningSettings, *, executor: Executor | None = None
) -> dict[str, SwitchReading]:
    """Read every target's ports at once (each within ``settings.switch_timeout_s``); never raises.

    A switch that cannot be built, reached or read gives a reading with ``error``; a port the
    walk did not name is asked for alone before it counts as not found.
    """
    readings = await asyncio.gather(*(_read_switch(t, settings, executor) for t in targets))
    return {r.switch: r for r in readings}


async def _read_switch(
    target: SwitchTarget, settings: ProvisioningSettings, executor: Executor | None
) -> SwitchReading:
    from nms_adapters.switches import SwitchError, driver_for
    from nms_adapters.switches.port_names import same_port

    timeout = settings.switch_timeout_s
    try:
        driver = driver_for(switch_access(target.ref(), settings), executor=executor)
    except (SwitchError, ValueError) as exc:
        return SwitchReading(target.name, error=str(exc))
    try:
        states = await asyncio.wait_for(driver.read_ports(), timeout)
        ports: dict[str, ReportedPort] = {}
        for name in target.ports:
            state = next((s for s in states if same_port(s.port, name)), None)
            if state is None:
                with contextlib.suppress(SwitchError, TimeoutError):
                    state = await asyncio.wait_for(driver.read_port(name), timeout)
            if state is not None:
                ports[name] = ReportedPort(state.admin_up, state.oper_up, state.rate_kbps)
        return SwitchReading(target.name, ports=ports)
    except TimeoutError:
        return SwitchReading(target.name, error=f"no answer within {timeout:g} s")
    except SwitchError as exc:
        return SwitchReading(target.name, error=str(exc) or type(exc).__name__)
    except Exception as exc:  # a driver bug must not hide the other switches' drift
        _log.exception("reconcile: reading switch %s failed unexpectedly", target.name)
        return SwitchReading(target.name, error=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await driver.close()


def read_switches_blocking(
    targets: Sequence[SwitchTarget], settings: ProvisioningSettings
) -> dict[str, SwitchReading]:
    """:func:`read_switches` on a fresh event loop (for the CLI and threads; not on a running loop)."""
    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="reconcile-cli") as executor:
        return asyncio.run(read_switches(targets, settings, executor=executor))


# --------------------------------------------------------------------------- database: repair


def write_repairs(
    session: Session,
    actor: Actor,
    report: Report,
    snapshot: Snapshot,
    rules: LifecycleRules,
    now: datetime,
) -> Report:
    """Write one task per service with repairable drift, supersede its unknown tasks; audited.

    Each service is re-read (locked on PostgreSQL) first: one whose desired access changed, or
    which got a task in flight towards it since the snapshot, is skipped with a note.
    """
    wanted: dict[int, list[DriftKind]] = {}
    for d in report.drift:
        if d.repairable and d.service_id is not None:
            wanted.setdefault(d.service_id, []).append(d.kind)
    if not wanted:
        return report
    ids = sorted(wanted)
    for chunk in _chunks(ids):  # lock the rows first, in id order (no deadlock with the lifecycle)
        list(
            session.scalars(
                select(Service.id).where(Service.id.in_(chunk)).order_by(Service.id).with_for_update()
            )
        )
    fresh = _service_views(session, ids, rules)
    repairs: list[Repair] = []
    for service_id in ids:
        before, now_view = snapshot.services[service_id], fresh.get(service_id)
        if now_view is None or now_view.desired != before.desired:
            repairs.append(
                Repair(service_id, None, before.desired.network, note="desired state changed since the read")
            )
            continue
        if now_view.desired.network in now_view.in_flight:
            repairs.append(
                Repair(service_id, None, before.desired.network, note="a task is in flight since the read")
            )
            continue
        repairs.append(
            _repair_one(session, actor, now_view, sorted(set(wanted[service_id])), report.run_id, now)
        )
    return replace(report, repairs=tuple(repairs))


def _repair_one(
    session: Session, actor: Actor, view: ServiceView, kinds: list[DriftKind], run_id: str, now: datetime
) -> Repair:
    want = view.desired
    task_id, _ = write_task(
        session,
        f"reconcile:{view.service_id}:{run_id}",
        view.service_id,
        want.network,
        release=want.release,
        tariff_code=want.tariff_code,
        created_at=now,
    )
    superseded = tuple(
        session.scalars(
            update(ProvisioningTask)
            .where(ProvisioningTask.service_id == view.service_id, ProvisioningTask.state == "unknown")
            .values(state="superseded", outcome=f"resolved by reconcile run {run_id}: task {task_id}")
            .returning(ProvisioningTask.id)
            .execution_options(synchronize_session=False)
        )
    )
    audit.record(
        session, actor, "provisioning.reconcile_repair", "service", view.service_id,
        before={"status": view.status, "unknown_tasks": list(superseded)},
        after={"run": run_id, "task_id": task_id, "network": want.network,
               "speed_profile": want.speed_profile, "drift": [k.value for k in kinds],
               "superseded": list(superseded)},
    )  # fmt: skip
    return Repair(view.service_id, task_id, want.network, tuple(sorted(superseded)))


# --------------------------------------------------------------------------- entry points


def run_reconcile(
    engine: Engine,
    settings: ProvisioningSettings,
    aaa: AaaSettings,
    rules: LifecycleRules,
    *,
    repair: bool = False,
    nas: str | None = None,
    switch: str | None = None,
    actor: Actor = DAEMON_ACTOR,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """One whole run, blocking: read, compare, and with ``repair`` write the tasks (for the daemon).

    Call it from a worker thread, never on the reactor: the switch reads run on their own event
    loop (``asyncio.run``) and the database work is synchronous. No permission check: the daemon
    is trusted; repairs are audited as ``actor``.
    """
    factory = sessionmaker(engine, expire_on_commit=False)
    now = clock()
    with factory.begin() as session:
        snapshot = load_snapshot(session, aaa, rules, now=now, nas=nas, switch=switch)
    readings = read_switches_blocking(snapshot.switches, settings)
    report = build_report(snapshot, readings)
    if repair and any(d.repairable for d in report.drift):
        with factory.begin() as session:
            report = write_repairs(session, actor, report, snapshot, rules, clock())
    return report


async def reconcile_periodically(
    engine: Engine,
    settings: ProvisioningSettings,
    aaa: AaaSettings,
    rules: LifecycleRules,
    *,
    executor: Executor | None = None,
    on_report: Callable[[Report], None] | None = None,
) -> None:
    """Run :func:`run_reconcile` every ``settings.reconcile_interval_s`` (repairing when
    ``settings.reconcile_repair``) in ``executor`` (default: the loop's), until cancelled.

    Returns at once when the interval is 0 (reconciliation only on demand). A failed run is
    logged and the next one tried; cancelling stops the loop (a run already in its thread
    finishes, bounded by the switch timeout).
    """
    interval = settings.reconcile_interval_s
    if interval <= 0:
        return
    loop = asyncio.get_running_loop()
    run = partial(run_reconcile, engine, settings, aaa, rules, repair=settings.reconcile_repair)
    while True:
        await asyncio.sleep(interval)
        try:
            report = await loop.run_in_executor(executor, run)
        except Exception:
            _log.exception("reconcile: the periodic run failed; trying again in %g s", interval)
            continue
        (_log.warning if report.drift else _log.info)("%s", report.summary())
        if on_report is not None:
            on_report(report)
