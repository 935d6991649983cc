"""The network reconciler: the pure comparison rule by rule, then reading and repairing on both databases.

Pure cases build :class:`ServiceView` / :class:`OpenSession` / :class:`PortView` values directly.
Database cases write services, sessions, tasks and confirmed states as the lifecycle, accounting
and the worker would, and check what the snapshot reads and what a repair writes (one task per
drifted service, unknown tasks superseded, an audit row, nothing else).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from aaa.settings import AaaSettings, NasClient
from billing import accounts, dictionaries, network_reconcile, operators, service_lifecycle, subscribers
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.lifecycle import ProvisioningTask, ServiceStatusChange
from billing.db.network import Switch, SwitchPort
from billing.db.provisioning import NetworkState
from billing.db.services import Service, SpeedProfile
from billing.db.sessions import RadiusSession
from billing.network_reconcile import (
    WALLED_GARDEN_PROFILE,
    Confirmed,
    Desired,
    DriftKind,
    OpenSession,
    PortView,
    ReconcileError,
    ReportedPort,
    ServiceView,
    Snapshot,
    SwitchReading,
    SwitchTarget,
    TaskView,
    build_report,
    compare,
    desired_for,
    load_snapshot,
    read_switches_blocking,
    reconcile_periodically,
    run_reconcile,
    switch_access,
    write_repairs,
)
from billing.permissions import resolve_actor
from billing.provisioning_settings import ProvisioningSettings, SwitchCredentials

RULES = service_lifecycle.rules_for(ZoneInfo("Europe/Berlin"))
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
AAA = AaaSettings(
    nas=(
        NasClient("bras1", ip_network("10.0.1.0/24"), b"s1"),
        NasClient("bras2", ip_network("10.0.2.0/24"), b"s2"),
    )
)


# --------------------------------------------------------------------------- pure: builders


def view(
    service_id: int = 1,
    *,
    network: str = "allow",
    profile: str | None = "home-100",
    kbps: int | None = 100_000,
    status: str = "active",
    confirmed: Confirmed | None = None,
    latest: TaskView | None = None,
    in_flight: tuple[str, ...] = (),
    decided_at: datetime = T0,
) -> ServiceView:
    if network == "walled_garden":
        desired = Desired(network, WALLED_GARDEN_PROFILE)
    elif network == "deny":
        desired = Desired(network)
    else:
        desired = Desired(network, profile, kbps)
    return ServiceView(
        service_id, f"10000{service_id}", status, desired, decided_at, confirmed, latest, in_flight
    )


def online(
    service_id: int = 1, *, started: datetime = T0 - HOUR, updated: datetime | None = None
) -> OpenSession:
    return OpenSession(
        service_id, f"u{service_id}", f"s{service_id}", f"user{service_id}", "10.0.1.1", "bras1",
        started, updated or started,
    )  # fmt: skip


def port(service_id: int = 1, device_type: str = "snmp") -> PortView:
    return PortView("sw1", "Gi0/3", 0, service_id, device_type)


def kinds(services: dict[int, ServiceView], *, sessions=(), ports=(), readings=None) -> list[str]:  # type: ignore[no-untyped-def]
    drift, _ = compare(services, sessions, ports, readings or {})
    return [d.kind.value for d in drift]


ALLOW_DONE = Confirmed("allow", "home-100", 7, T0 - 2 * HOUR)
DENY_DONE = Confirmed("deny", None, 8, T0 - 2 * HOUR)


# --------------------------------------------------------------------------- pure: desired state


@pytest.mark.parametrize(
    ("status", "kind", "category", "expected"),
    [
        ("active", "internet", "residential", Desired("allow", "home-100", 100_000, tariff_code="home")),
        ("suspended_involuntary", "internet", "residential", Desired("walled_garden", WALLED_GARDEN_PROFILE)),
        ("suspended_involuntary", "tv", "residential", Desired("deny")),
        ("suspended_voluntary", "internet", "business", Desired("deny")),
        ("blocked", "internet", "residential", Desired("deny")),
        ("pending", "internet", "residential", Desired("deny")),
        ("churned", "internet", "residential", Desired("deny", release=True)),
    ],
)
def test_desired_state_is_what_the_status_means_under_the_rules(
    status: str, kind: str, category: str, expected: Desired
) -> None:
    found = desired_for(
        status, kind, category, RULES, tariff_code="home", profile="home-100", profile_kbps=100_000
    )
    assert found == expected


# --------------------------------------------------------------------------- pure: sessions


def test_an_open_session_of_a_denied_service_should_be_down() -> None:
    services = {1: view(network="deny", status="blocked", confirmed=ALLOW_DONE)}
    [drift], _ = compare(services, [online()], [], {})
    assert drift.kind is DriftKind.SESSION_SHOULD_BE_DOWN and drift.repairable
    assert (drift.service_id, drift.target, drift.desired) == (
        1,
        "nas:bras1 10.0.1.1 session s1",
        "no session",
    )
    assert "confirmed allow home-100 (task 7)" in drift.reported


def test_a_session_that_started_after_the_last_decision_is_no_drift() -> None:
    """The AAA server authorized that login with the current status: the reconciler does not fight it."""
    services = {1: view(network="deny", status="blocked"), 2: view(2, confirmed=None)}
    assert kinds(services, sessions=[online(1, started=T0 + HOUR), online(2, started=T0)]) == []


def test_a_session_of_an_allowed_service_is_unconfirmed_until_the_network_confirms_that_state() -> None:
    silent = TaskView(9, "unknown", "allow", T0 - HOUR, "after 3 tries: timeout")
    services = {
        1: view(1, confirmed=ALLOW_DONE),
        2: view(2, confirmed=None, latest=silent),
        3: view(3, confirmed=replace(ALLOW_DONE, speed_profile="home-50")),
        4: view(4, network="walled_garden", status="suspended_involuntary", confirmed=ALLOW_DONE),
    }
    drift, _ = compare(services, [online(i) for i in (1, 2, 3, 4)], [], {})
    assert [(d.service_id, d.kind.value) for d in drift] == [
        (2, "session_unconfirmed"), (3, "session_unconfirmed"), (4, "session_unconfirmed"),
    ]  # fmt: skip
    assert "last task 9 (allow) unknown: after 3 tries: timeout" in drift[0].detail
    assert drift[2].desired == f"walled_garden {WALLED_GARDEN_PROFILE}"


def test_a_session_without_accounting_since_the_network_confirmed_deny_is_stale_and_not_repaired() -> None:
    services = {1: view(network="deny", status="blocked", confirmed=DENY_DONE)}
    [stale], _ = compare(services, [online(updated=DENY_DONE.at - HOUR)], [], {})
    assert stale.kind is DriftKind.SESSION_STALE and not stale.repairable
    [live], _ = compare(services, [online(updated=DENY_DONE.at + HOUR)], [], {})
    assert live.kind is DriftKind.SESSION_SHOULD_BE_DOWN


def test_a_task_in_flight_towards_the_desired_state_is_progress_not_drift() -> None:
    services = {
        1: view(network="deny", status="blocked", in_flight=("deny",)),
        2: view(2, network="deny", status="blocked", in_flight=("allow",)),
    }
    readings = {"sw1": SwitchReading("sw1", ports={"Gi0/3": ReportedPort(admin_up=True)})}
    drift, in_progress = compare(services, [online(1), online(2)], [port(1)], readings)
    assert [(d.service_id, d.kind.value) for d in drift] == [(2, "session_should_be_down")]
    assert in_progress == (1,)


# --------------------------------------------------------------------------- pure: ports and switches


@pytest.mark.parametrize(
    ("network", "admin_up", "expected"),
    [
        ("deny", True, ["port_should_be_blocked"]),
        ("deny", False, []),
        ("allow", False, ["port_should_be_up"]),
        ("allow", True, []),
        ("walled_garden", False, ["port_should_be_up"]),
        ("walled_garden", True, []),
    ],
)
def test_a_bound_port_follows_the_desired_access(network: str, admin_up: bool, expected: list[str]) -> None:
    readings = {"sw1": SwitchReading("sw1", ports={"Gi0/3": ReportedPort(admin_up, oper_up=admin_up)})}
    assert kinds({1: view(network=network)}, ports=[port()], readings=readings) == expected


def test_a_rate_limit_is_compared_only_where_the_driver_can_set_one() -> None:
    slow = {"sw1": SwitchReading("sw1", ports={"Gi0/3": ReportedPort(True, True, rate_kbps=50_000)})}
    none = {"sw1": SwitchReading("sw1", ports={"Gi0/3": ReportedPort(True, True, rate_kbps=None)})}
    right = {"sw1": SwitchReading("sw1", ports={"Gi0/3": ReportedPort(True, True, rate_kbps=100_000)})}
    services = {1: view()}
    assert kinds(services, ports=[port(device_type="cisco_ios")], readings=slow) == ["port_rate_differs"]
    assert kinds(services, ports=[port(device_type="huawei")], readings=none) == ["port_rate_differs"]
    assert kinds(services, ports=[port(device_type="cisco_ios")], readings=right) == []
    assert kinds(services, ports=[port(device_type="snmp")], readings=slow) == []  # IF-MIB has no rate


def test_an_unreadable_switch_is_reported_once_and_its_ports_are_not_judged() -> None:
    readings = {"sw1": SwitchReading("sw1", error="no answer within 20 s"), "sw2": SwitchReading("sw2")}
    services = {1: view(network="deny"), 2: view(2, network="deny")}
    ports = [port(1), PortView("sw1", "Gi0/4", 0, 2, "snmp"), PortView("sw2", "Gi0/9", 0, 2, "snmp")]
    drift, _ = compare(services, [], ports, readings)
    assert [(d.kind.value, d.target, d.detail) for d in drift] == [
        ("switch_unreachable", "switch:sw1", "2 bound port(s) not checked"),
        ("port_not_found", "switch:sw2 Gi0/9", "check the port name in switch_ports"),
    ]
    assert not any(d.repairable for d in drift)


def test_the_report_counts_what_was_checked() -> None:
    snapshot = Snapshot(
        T0,
        {1: view(network="deny", status="blocked")},
        (online(1),),
        (port(1), PortView("sw2", "Gi0/1", 0, 1, "snmp")),
        (),
    )
    readings = {
        "sw1": SwitchReading("sw1", ports={"Gi0/3": ReportedPort(admin_up=False)}),
        "sw2": SwitchReading("sw2", error="refused"),
    }
    report = build_report(snapshot, readings, run_id="r1")
    assert (report.sessions_checked, report.ports_checked, report.switches_read) == (1, 1, 1)
    assert [d.kind.value for d in report.drift] == ["switch_unreachable", "session_should_be_down"]
    assert report.drifted_services == (1,)
    assert report.summary().startswith("reconcile run r1: 2 drift(s) in 1 service(s)")


# --------------------------------------------------------------------------- switches


def test_a_switch_that_cannot_even_be_addressed_reads_as_an_error_not_an_exception() -> None:
    settings = ProvisioningSettings(credentials=(SwitchCredentials("sim", read_community="public"),))
    targets = [
        SwitchTarget("no-creds", "127.0.0.1", "snmp", "missing", None, None, ("Gi0/1",)),
        SwitchTarget("no-type", "127.0.0.1", "netgear", "sim", None, None, ("Gi0/1",)),
        SwitchTarget("no-address", None, "snmp", "sim", None, None, ("Gi0/1",)),
        SwitchTarget("no-community", "127.0.0.1", "snmp", None, None, None, ("Gi0/1",)),
    ]
    readings = read_switches_blocking(targets, settings)
    assert {name: r.error for name, r in readings.items()} == {
        "no-creds": "switch no-creds names credentials 'missing', "
        "which no [[provisioning.credentials]] defines",
        "no-type": "switch no-type: unknown device type 'netgear'; supported: snmp, cisco_ios, huawei",
        "no-address": "switch no-address has no address",
        "no-community": "switch no-community: snmp v2c needs a read community",
    }
    assert read_switches_blocking([], settings) == {}


def test_switch_access_takes_ports_and_secrets_from_the_named_credentials() -> None:
    creds = SwitchCredentials("sim", read_community="public", write_community="private", username="ops")
    target = SwitchTarget("sw1", "10.0.0.2", "cisco_ios", "sim", None, 2222, ("Gi0/1",))
    access = switch_access(target.ref(), ProvisioningSettings(credentials=(creds,)))
    assert (access.name, access.address, access.device_type, access.snmp_port, access.ssh_port) == (
        "sw1", "10.0.0.2", "cisco_ios", 161, 2222,
    )  # fmt: skip
    assert (access.read_community, access.write_community, access.username) == ("public", "private", "ops")


# --------------------------------------------------------------------------- database


@dataclass
class World:
    sessions: sessionmaker[Session]
    engine: Engine
    actor: Actor
    number: str
    profile_id: int

    def service(self, status: str = "active", *, kind: str = "internet", updated_at: datetime = T0) -> int:
        with self.sessions.begin() as s:
            service = Service(
                account_id=accounts.find(s, self.number).id, kind=kind, status=status,
                speed_profile_id=self.profile_id, created_at=T0 - 30 * 24 * HOUR, updated_at=updated_at,
            )  # fmt: skip
            s.add(service)
            s.flush()
            return service.id

    def online(self, service_id: int, nas_address: str = "10.0.1.1", *, started: datetime = T0 - HOUR) -> str:
        key = f"{service_id}-{nas_address}-{started.timestamp():.0f}"
        with self.sessions.begin() as s:
            s.add(
                RadiusSession(
                    acct_unique_id=key, acct_session_id=f"as-{key}", nas_address=nas_address,
                    service_id=service_id, username=f"user{service_id}", started_at=started,
                    updated_at=started, status="open",
                )
            )  # fmt: skip
        return key

    def task(
        self,
        service_id: int,
        network: str,
        state: str,
        *,
        at: datetime = T0 - 2 * HOUR,
        session_key: str | None = None,
        speed_profile: str | None = None,
    ) -> int:
        with self.sessions.begin() as s:
            n = s.scalar(select(func.count()).select_from(ProvisioningTask)) or 0
            task = ProvisioningTask(
                idempotency_key=f"test:{service_id}:{n}", service_id=service_id, network=network, state=state,
                session_key=session_key, speed_profile=speed_profile, created_at=at,
                finished_at=None if state in ("pending", "running") else at,
                outcome="after 3 tries: nas:bras1: disconnect timeout" if state == "unknown" else None,
            )  # fmt: skip
            s.add(task)
            s.flush()
            return task.id

    def confirm(self, service_id: int, task_id: int, network: str, profile: str | None, at: datetime) -> None:
        with self.sessions.begin() as s:
            s.merge(NetworkState(service_id=service_id, network=network, speed_profile=profile,
                                 task_id=task_id, confirmed_at=at))  # fmt: skip

    def snapshot(self, **filters: str) -> Snapshot:
        with self.sessions.begin() as s:
            return load_snapshot(s, AAA, RULES, now=T0, **filters)

    def count(self, table: type) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(table)) or 0


@pytest.fixture
def world(sessions: sessionmaker[Session], engine: Engine) -> Iterator[World]:
    """An operator, one residential subscriber, the home-100 profile; services are added per test."""
    with sessions.begin() as s:
        operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
        actor = resolve_actor(s, "tester", source="test")
        for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
            dictionaries.add(s, actor, kind, code, code.title())
        info = subscribers.create(
            s, actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        profile = SpeedProfile(name="home-100", down_kbps=100_000, up_kbps=20_000)
        s.add(profile)
        s.flush()
        profile_id = profile.id
    yield World(sessions, engine, actor, info.accounts[0].number, profile_id)


def test_the_snapshot_reads_desired_and_confirmed_state_per_service(world: World) -> None:
    active, debtor, blocked, churned = (
        world.service(s) for s in ("active", "suspended_involuntary", "blocked", "churned")
    )
    for service_id in (active, debtor, blocked, churned):
        world.online(service_id)
    done = world.task(active, "allow", "done")
    world.confirm(active, done, "allow", "home-100", T0 - HOUR)
    views = world.snapshot().services
    assert views[active].desired == Desired("allow", "home-100", 100_000)
    assert views[active].confirmed == Confirmed("allow", "home-100", done, T0 - HOUR)
    assert views[debtor].desired == Desired("walled_garden", WALLED_GARDEN_PROFILE)
    assert views[blocked].desired == Desired("deny")
    assert views[churned].desired == Desired("deny", release=True)
    assert views[active].account == world.number and views[blocked].confirmed is None


def test_a_task_that_ended_unknown_after_the_confirmation_leaves_the_state_unconfirmed(world: World) -> None:
    service_id = world.service("blocked")
    world.online(service_id)
    done = world.task(service_id, "allow", "done", at=T0 - 3 * HOUR)
    world.confirm(service_id, done, "allow", "home-100", T0 - 3 * HOUR)
    silent = world.task(service_id, "deny", "unknown", at=T0 - 2 * HOUR)
    [view_] = world.snapshot().services.values()
    assert view_.confirmed is None
    assert view_.latest_task is not None and (view_.latest_task.id, view_.latest_task.state) == (
        silent,
        "unknown",
    )
    assert view_.unknown_tasks == (silent,)
    assert view_.decided_at == T0  # the service row changed after the task


def test_a_quota_session_task_does_not_stand_for_the_service(world: World) -> None:
    """The confirmed state falls back to the last service-wide task that completed."""
    service_id = world.service()
    key = world.online(service_id)
    done = world.task(service_id, "allow", "done", at=T0 - 3 * HOUR)
    throttle = world.task(
        service_id, "allow", "done", session_key=key, speed_profile="slow", at=T0 - 2 * HOUR
    )
    world.confirm(service_id, throttle, "allow", "slow", T0 - 2 * HOUR)
    [view_] = world.snapshot().services.values()
    assert view_.confirmed == Confirmed("allow", "home-100", done, T0 - 3 * HOUR)
    assert view_.latest_task is not None and view_.latest_task.id == done


def test_the_nas_filter_keeps_that_nas_sessions_and_leaves_switches_out(world: World) -> None:
    first, second = world.service(), world.service()
    world.online(first, "10.0.1.7")
    world.online(second, "10.0.2.7")
    world.online(second, "192.0.2.1")  # covered by no [[aaa.nas]]
    _switch(world, "sw1", "snmp", first)
    everything = world.snapshot()
    assert [(s.service_id, s.nas) for s in everything.sessions] == [
        (first, "bras1"),
        (second, "bras2"),
        (second, None),
    ]
    assert [t.name for t in everything.switches] == ["sw1"]
    only = world.snapshot(nas="bras2")
    assert [(s.service_id, s.nas) for s in only.sessions] == [(second, "bras2")]
    assert only.switches == () and only.ports == ()
    with pytest.raises(ReconcileError, match=r"--nas: no \[\[aaa.nas\]\] named 'bras9'; known: bras1, bras2"):
        world.snapshot(nas="bras9")


def test_the_switch_filter_reads_only_that_controlled_switch(world: World) -> None:
    first, second = world.service(), world.service()
    world.online(first)
    _switch(world, "sw1", "snmp", first, port_name="Gi0/1")
    _switch(world, "sw2", "cisco_ios", second, port_name="Gi0/2")
    _switch(world, "sw3", None, world.service(), port_name="Gi0/3")  # billing does not control it
    assert [t.name for t in world.snapshot().switches] == ["sw1", "sw2"]
    only = world.snapshot(switch="sw2")
    assert only.sessions == ()
    assert [(p.switch, p.port, p.service_id, p.device_type) for p in only.ports] == [
        ("sw2", "Gi0/2", second, "cisco_ios")
    ]
    with pytest.raises(ReconcileError, match="does not control 'sw3'"):
        world.snapshot(switch="sw3")
    with pytest.raises(ReconcileError, match="no switch named 'sw9'"):
        world.snapshot(switch="sw9")


def _switch(
    world: World, name: str, device_type: str | None, service_id: int, *, port_name: str = "Gi0/3"
) -> None:
    with world.sessions.begin() as s:
        switch = Switch(name=name, address="127.0.0.1", device_type=device_type)
        s.add(switch)
        s.flush()
        s.add(SwitchPort(switch_id=switch.id, port=port_name, vlan=0, service_id=service_id))


def test_silence_unknown_is_resolved_by_a_repair_task(world: World) -> None:
    """A Disconnect that timed out (task unknown) with the session still open: drift, then one new task."""
    service_id = world.service("blocked")
    world.online(service_id)
    silent = world.task(service_id, "deny", "unknown")
    other = world.service()  # in sync: no session, no port
    snapshot = world.snapshot()
    report = build_report(snapshot, {}, run_id="run-1")
    assert [(d.service_id, d.kind.value) for d in report.drift] == [(service_id, "session_should_be_down")]
    changes_before, audit_before = world.count(ServiceStatusChange), world.count(AuditEntry)

    with world.sessions.begin() as s:
        repaired = write_repairs(s, world.actor, report, snapshot, RULES, T0)
    [repair] = repaired.repairs
    assert (repair.service_id, repair.network, repair.superseded) == (service_id, "deny", (silent,))
    with world.sessions() as s:
        new = s.get(ProvisioningTask, repair.task_id)
        old = s.get(ProvisioningTask, silent)
        assert new is not None and old is not None
        assert (new.idempotency_key, new.network, new.state, new.release) == (
            f"reconcile:{service_id}:run-1", "deny", "pending", False,
        )  # fmt: skip
        assert (old.state, old.outcome) == ("superseded", f"resolved by reconcile run run-1: task {new.id}")
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "provisioning.reconcile_repair"))
        assert entry.object_id == str(service_id) and entry.operator_login == "tester"
        assert entry.after is not None and entry.after["drift"] == ["session_should_be_down"]
        assert (
            s.scalar(
                select(func.count()).select_from(ProvisioningTask).where(ProvisioningTask.service_id == other)
            )
            == 0
        )
    assert world.count(ServiceStatusChange) == changes_before
    assert world.count(AuditEntry) == audit_before + 1

    with world.sessions.begin() as s:  # the same report again: its own task is in flight, nothing new
        again = write_repairs(s, world.actor, report, snapshot, RULES, T0)
    assert [(r.task_id, r.note) for r in again.repairs] == [(None, "a task is in flight since the read")]
    assert world.count(ProvisioningTask) == 2


def test_a_repair_skips_a_service_whose_state_changed_since_the_read(world: World) -> None:
    moved, steady = world.service("blocked"), world.service("blocked")
    world.online(moved)
    world.online(steady)
    snapshot = world.snapshot()
    report = build_report(snapshot, {}, run_id="run-2")
    with world.sessions.begin() as s:
        s.execute(update(Service).where(Service.id == moved).values(status="active"))
    world.task(steady, "deny", "pending", at=T0)
    with world.sessions.begin() as s:
        repaired = write_repairs(s, world.actor, report, snapshot, RULES, T0)
    assert [(r.service_id, r.task_id, r.note) for r in repaired.repairs] == [
        (moved, None, "desired state changed since the read"),
        (steady, None, "a task is in flight since the read"),
    ]
    assert world.count(ProvisioningTask) == 1


def test_run_reconcile_repairs_and_the_next_run_sees_the_task_in_flight(world: World) -> None:
    service_id = world.service("suspended_involuntary")
    world.online(service_id)
    world.task(service_id, "walled_garden", "dead")
    settings = ProvisioningSettings(reconcile_repair=True)
    first = run_reconcile(world.engine, settings, AAA, RULES, repair=True)
    assert [d.kind.value for d in first.drift] == ["session_unconfirmed"]
    [repair] = first.repairs
    assert repair.network == "walled_garden" and repair.task_id is not None
    with world.sessions() as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "provisioning.reconcile_repair")
        ).one()
        assert (entry.operator_login, entry.source) == ("billingd", "daemon:reconcile")
    second = run_reconcile(world.engine, settings, AAA, RULES)
    assert second.drift == () and second.in_progress == (service_id,) and second.repairs == ()


def test_the_periodic_run_reports_each_pass_and_stops_when_cancelled(world: World) -> None:
    service_id = world.service("blocked")
    world.online(service_id)
    reports: list[network_reconcile.Report] = []

    async def main() -> None:
        settings = ProvisioningSettings(reconcile_interval_s=0.05)
        loop_task = asyncio.ensure_future(
            reconcile_periodically(world.engine, settings, AAA, RULES, on_report=reports.append)
        )
        for _ in range(200):
            await asyncio.sleep(0.02)
            if len(reports) >= 2:
                break
        loop_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop_task
        await reconcile_periodically(world.engine, ProvisioningSettings(), AAA, RULES)  # 0: returns at once

    asyncio.run(main())
    assert len(reports) >= 2
    assert [d.kind.value for d in reports[0].drift] == ["session_should_be_down"]
    assert all(r.repairs == () for r in reports)  # reconcile_repair is off
    assert world.count(ProvisioningTask) == 0
