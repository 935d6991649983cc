"""End to end for port-based subscribers: a billing decision → the outbox → the switch port, with
billingd's worker driving ``billing-sim switch`` over SNMP (one switch record) and over its SSH
CLI through netmiko (another record of the same simulated switch), on PostgreSQL.

The port states are read back through the drivers, as the reconciler reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from billing import switch_records
from billing.db.engine import make_engine
from nms_adapters.switches import PortState, SwitchAccess, driver_for
from tests.provisioning_world import (
    ACTOR,
    Billingd,
    attempts_of,
    config,
    decide,
    free_udp_port,
    seed,
    start_billingd,
    task_in,
    wait_for,
)
from tests.switch_sim import HOST, RunningSwitch, running_switch

CREDENTIALS = """
[[provisioning.credentials]]
name = "sim"
read_community = "public"
write_community = "private"
username = "admin"
password = "admin"
enable_secret = "enable"
"""


@dataclass
class World:
    daemon: Billingd
    engine: Engine
    switch: RunningSwitch
    services: dict[str, int]


@pytest.fixture(scope="module")
def world(templates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    url = templates.postgresql()
    tmp = tmp_path_factory.mktemp("provisioning-switch")
    services = seed(url, ["by-snmp", "by-cli"])
    engine = make_engine(url)
    with running_switch("--ports", "4") as switch:
        with Session(engine) as s, s.begin():
            switch_records.add_switch(s, ACTOR, "sw-snmp", address=HOST, device_type="snmp",
                                          credentials="sim", snmp_port=switch.snmp_port)  # fmt: skip
            switch_records.add_switch(s, ACTOR, "sw-cli", address=HOST, device_type="cisco_ios",
                                          credentials="sim", ssh_port=switch.ssh_port)  # fmt: skip
            switch_records.bind_port(s, ACTOR, "sw-snmp", "GigabitEthernet0/1", services["by-snmp"])
            switch_records.bind_port(s, ACTOR, "sw-cli", "GigabitEthernet0/2", services["by-cli"])
        cfg = config(tmp, url, free_udp_port(), more=CREDENTIALS, switch_timeout_s="20", lease_s="60")
        daemon = start_billingd(cfg, tmp / "billingd.log")
        try:
            yield World(daemon, engine, switch, services)
        finally:
            code = daemon.stop()
            engine.dispose()
            templates.drop(url)
            assert code == 0, daemon.log.read_text(errors="replace")[-3000:]


def _port(world: World, name: str) -> PortState:
    access = SwitchAccess("check", HOST, "snmp", snmp_port=world.switch.snmp_port, read_community="public")

    async def read() -> PortState:
        driver = driver_for(access)
        try:
            return await driver.read_port(name)
        finally:
            await driver.close()

    return asyncio.run(read())


def _done_after(world: World, service_id: int, previous: int) -> int:
    task = wait_for(
        world.engine,
        lambda s: (
            (t := task_in(("done", "dead", "unknown"), service_id)(s)) is not None and t.id > previous and t
        ),
        what="the decision's task finished",
        timeout_s=60,
    )
    assert task.state == "done", f"task {task.id} ended {task.state}: {task.outcome}"
    return int(task.id)


def test_a_block_shuts_the_port_over_snmp_and_an_unblock_opens_it(world: World) -> None:
    service_id = world.services["by-snmp"]
    assert _port(world, "GigabitEthernet0/1").admin_up

    decide(world.engine, service_id, "block")
    blocked = _done_after(world, service_id, 0)
    [attempt] = attempts_of(world.engine, blocked)
    assert (attempt.target, attempt.action, attempt.result) == (
        "switch:sw-snmp GigabitEthernet0/1",
        "block",
        "ok",
    )
    assert not _port(world, "GigabitEthernet0/1").admin_up

    decide(world.engine, service_id, "unblock")
    opened = _done_after(world, service_id, blocked)
    assert [(a.action, a.result) for a in attempts_of(world.engine, opened)] == [("unblock", "ok")]
    assert _port(world, "GigabitEthernet0/1").admin_up  # SNMP cannot set a rate: none is tried


def test_the_cli_driver_blocks_and_restores_the_port_with_the_tariff_rate(world: World) -> None:
    """netmiko against the simulated IOS CLI: shutdown, then no shutdown and the profile's rate limit."""
    service_id = world.services["by-cli"]
    decide(world.engine, service_id, "block")
    blocked = _done_after(world, service_id, 0)
    assert [(a.target, a.action, a.result) for a in attempts_of(world.engine, blocked)] == [
        ("switch:sw-cli GigabitEthernet0/2", "block", "ok")
    ]
    assert not _port(world, "GigabitEthernet0/2").admin_up

    decide(world.engine, service_id, "unblock")
    opened = _done_after(world, service_id, blocked)
    assert [(a.action, a.result, a.request) for a in attempts_of(world.engine, opened)] == [
        ("unblock", "ok", "unblock GigabitEthernet0/2"),
        ("set_rate", "ok", "set_rate GigabitEthernet0/2 100000 kbit/s"),
    ]
    assert _port(world, "GigabitEthernet0/2").admin_up


def test_the_daemon_log_has_no_worker_failure(world: World) -> None:
    assert b"failed unexpectedly" not in Path(world.daemon.log).read_bytes()
