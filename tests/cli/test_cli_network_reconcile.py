"""``billing-admin reconcile-network`` against a real switch simulator read over SNMP, and the silence case.

The simulator (``billing-sim switch``) runs as a subprocess on free loopback ports for the module
(:mod:`tests.switch_sim`); each test puts its ports back up first. The worker is not run: a test
plays its part by marking tasks done and blocking the port over SNMP itself, as the worker would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.db.customers import Account
from billing.db.engine import session_factory
from billing.db.lifecycle import ProvisioningTask
from billing.db.network import Switch, SwitchPort
from billing.db.provisioning import NetworkState
from billing.db.services import Service, SpeedProfile
from billing.db.sessions import RadiusSession
from nms_adapters.switches import SwitchAccess, driver_for
from tests.cli.conftest import Cli
from tests.switch_sim import RunningSwitch, running_switch

PORTS = 4
EXIT_DRIFT = 5
EXTRA_CONFIG = """
[[aaa.nas]]
name = "bras1"
address = "10.0.1.0/24"
secret = "bras1-secret"

[provisioning]
switch_timeout_s = 5

[[provisioning.credentials]]
name = "sim"
read_community = "public"
write_community = "private"
"""


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSwitch]:
    with running_switch("--ports", str(PORTS), duration_s=300) as switch:
        yield switch


def _on_switch(sim: RunningSwitch, action: str, *ports: str) -> None:
    """Block or unblock ports over SNMP with the read-write community (as the worker's driver does)."""

    async def run() -> None:
        driver = driver_for(
            SwitchAccess(
                name="sim", address="127.0.0.1", device_type="snmp", snmp_port=sim.snmp_port,
                read_community="public", write_community="private",
            )
        )  # fmt: skip
        try:
            for port in ports:
                await getattr(driver, action)(port)
        finally:
            await driver.close()

    asyncio.run(run())


@pytest.fixture
def isp(populated: Cli) -> Cli:
    """The CLI with a NAS and switch credentials configured, a status reason, a speed profile."""
    with populated.config.open("a", encoding="utf-8") as config:
        config.write(EXTRA_CONFIG)
    populated.ok("dict", "add", "status_reason", "fraud", "Fraud")
    return populated


def _db(cli: Cli) -> Session:
    return session_factory(cli.engine)()


def _service(cli: Cli) -> int:
    """An active Internet service with a speed profile on the populated subscriber's account."""
    with _db(cli) as s, s.begin():
        profile = SpeedProfile(name="home-100", down_kbps=100_000, up_kbps=20_000)
        s.add(profile)
        s.flush()
        account_id = s.scalars(select(Account.id).order_by(Account.id)).first()
        service = Service(
            account_id=account_id, kind="internet", status="active", speed_profile_id=profile.id
        )
        s.add(service)
        s.flush()
        return service.id


def _finish(cli: Cli, task_id: int, state: str, *, confirm: str | None = None) -> None:
    """Play the worker: end a task in ``state``; with ``confirm``, record it as the network's state."""
    now = datetime.now(UTC)
    with _db(cli) as s, s.begin():
        task = s.get(ProvisioningTask, task_id)
        assert task is not None
        task.state, task.finished_at, task.attempts = state, now, 3
        task.outcome = (
            "after 3 tries: nas:bras1 disconnect timeout" if state == "unknown" else "1 target(s) confirmed"
        )
        if confirm is not None:
            s.merge(NetworkState(service_id=task.service_id, network=confirm, speed_profile=None,
                                 task_id=task.id, confirmed_at=now))  # fmt: skip


def _tasks(cli: Cli, service_id: int) -> list[tuple[int, str, str, str | None]]:
    with _db(cli) as s:
        rows = s.scalars(
            select(ProvisioningTask)
            .where(ProvisioningTask.service_id == service_id)
            .order_by(ProvisioningTask.id)
        )
        return [(t.id, t.idempotency_key, t.state, t.outcome) for t in rows]


def _run(cli: Cli, *args: str, user: str | None = None) -> tuple[int, Any]:
    result = cli("reconcile-network", *args, "--json", user=user)
    assert result.exit_code in (0, EXIT_DRIFT), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_port_up_that_should_be_blocked_is_reported_repaired_and_then_clean(
    isp: Cli, simulator: RunningSwitch
) -> None:
    """Blocked service, deny confirmed, switch rebooted (port up): drift; --repair: a task; blocked: clean."""
    _on_switch(simulator, "unblock", *(f"Gi0/{n}" for n in range(1, PORTS + 1)))
    service_id = _service(isp)
    with _db(isp) as s, s.begin():
        switch = Switch(name="sw1", address="127.0.0.1", device_type="snmp", credentials="sim",
                        snmp_port=simulator.snmp_port)  # fmt: skip
        s.add(switch)
        s.flush()
        s.add(SwitchPort(switch_id=switch.id, port="Gi0/2", vlan=0, service_id=service_id))
    isp.ok("service", "block", str(service_id), "--reason", "fraud")
    [(lifecycle_task, _, _, _)] = _tasks(isp, service_id)
    _finish(isp, lifecycle_task, "done", confirm="deny")

    table = isp("reconcile-network", "--switch", "sw1")
    assert table.exit_code == EXIT_DRIFT, table.output
    assert "port_should_be_blocked" in table.stdout and "switch:sw1 Gi0/2" in table.stdout
    code, report = _run(isp)
    assert code == EXIT_DRIFT
    assert [
        (d["kind"], d["service_id"], d["target"], d["desired"], d["reported"]) for d in report["drift"]
    ] == [("port_should_be_blocked", service_id, "switch:sw1 Gi0/2", "admin down", "admin up, oper up")]
    assert (report["switches_read"], report["ports_checked"], report["repairs"]) == (1, 1, [])

    denied = isp("reconcile-network", "--repair", user="helpdesk")  # support may read, not repair
    assert denied.exit_code == 3 and "provisioning.manage" in denied.output
    code, _ = _run(isp, "--switch", "sw1", user="helpdesk")
    assert code == EXIT_DRIFT
    assert len(_tasks(isp, service_id)) == 1

    code, repaired = _run(isp, "--switch", "sw1", "--repair")
    assert code == EXIT_DRIFT
    [repair] = repaired["repairs"]
    tasks = _tasks(isp, service_id)
    assert [(key, state) for _, key, state, _ in tasks[1:]] == [
        (f"reconcile:{service_id}:{repaired['run_id']}", "pending")
    ]
    assert repair == {"service_id": service_id, "task_id": tasks[1][0], "network": "deny", "superseded": [],
                      "note": None}  # fmt: skip

    code, pending = _run(isp)  # the outbox has it: progress, not drift
    assert (code, pending["drift"], pending["in_progress"]) == (0, [], [service_id])

    _on_switch(simulator, "block", "Gi0/2")  # the worker's part
    _finish(isp, tasks[1][0], "done", confirm="deny")
    clean = isp("reconcile-network")
    assert clean.exit_code == 0, clean.output
    assert "0 drift(s)" in clean.stdout and "1 port(s) on 1 switch(es)" in clean.stdout


def test_silence_then_unknown_is_resolved_by_the_reconciler(isp: Cli) -> None:
    """A Disconnect nobody answered (task unknown), the session still open: --repair supersedes it."""
    service_id = _service(isp)
    started = datetime.now(UTC) - timedelta(hours=1)
    with _db(isp) as s, s.begin():
        s.add(RadiusSession(acct_unique_id="u-1", acct_session_id="81000001", nas_address="10.0.1.5",
                            service_id=service_id, username="ann", started_at=started,
                            updated_at=started + timedelta(minutes=50), status="open"))  # fmt: skip
    isp.ok("service", "block", str(service_id), "--reason", "fraud")
    [(silent, _, _, _)] = _tasks(isp, service_id)
    _finish(isp, silent, "unknown")

    code, report = _run(isp, "--nas", "bras1")
    assert code == EXIT_DRIFT
    [drift] = report["drift"]
    assert (drift["kind"], drift["target"]) == (
        "session_should_be_down",
        "nas:bras1 10.0.1.5 session 81000001",
    )
    assert f"last task {silent} (deny) unknown" in drift["detail"]
    assert isp.count("provisioning_tasks") == 1

    code, repaired = _run(isp, "--nas", "bras1", "--repair")
    assert code == EXIT_DRIFT
    [repair] = repaired["repairs"]
    assert repair["superseded"] == [silent]
    [(_, _, old_state, old_outcome), (new_id, new_key, new_state, _)] = _tasks(isp, service_id)
    assert (new_key, new_state) == (f"reconcile:{service_id}:{repaired['run_id']}", "pending")
    assert (old_state, old_outcome) == (
        "superseded",
        f"resolved by reconcile run {repaired['run_id']}: task {new_id}",
    )
    assert isp.count("audit_log", "WHERE action = 'provisioning.reconcile_repair'") == 1

    code, after = _run(isp, "--nas", "bras1")
    assert (code, after["drift"], after["in_progress"]) == (0, [], [service_id])
    with _db(isp) as s, s.begin():  # the worker's Disconnect ends it; accounting closes the session
        s.execute(update(RadiusSession).values(status="closed", stopped_at=datetime.now(UTC)))
    _finish(isp, new_id, "done", confirm="deny")
    code, clean = _run(isp, "--nas", "bras1")
    assert (code, clean["drift"], clean["sessions_checked"]) == (0, [], 0)


def test_an_unknown_nas_is_refused_naming_the_configured_ones(isp: Cli) -> None:
    result = isp("reconcile-network", "--nas", "bras9")
    assert result.exit_code == 1
    assert "--nas: no [[aaa.nas]] named 'bras9'; known: bras1" in result.output
