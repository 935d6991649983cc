"""The SNMP switch driver (pysnmp 7, asyncio) against ``billing-sim switch``: v2c and v3, refusals.

One simulator (4 ports, Cisco-style CLI) serves the module, started as a subprocess on free
loopback ports and stopped at the end; the coroutines run on one event loop per module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    UdpTransportTarget,
    set_cmd,
)

from nms_adapters.switches import (
    NotSupported,
    PortState,
    SwitchAccess,
    SwitchAuthFailed,
    SwitchRefused,
    SwitchUnreachable,
    driver_for,
)
from nms_adapters.switches.snmp import IF_ALIAS, SnmpDriver
from tests.switch_sim import HOST, RunningSwitch, running_switch

V3_USER, V3_AUTH, V3_PRIV = "netops", "auth-pass-1", "priv-pass-1"  # the simulator's defaults


@pytest.fixture(scope="module")
def switch() -> Iterator[RunningSwitch]:
    with running_switch("--ports", "4") as running:
        yield running


@pytest.fixture(scope="module")
def run() -> Iterator[Any]:
    with asyncio.Runner() as runner:
        yield runner.run


def _v2c(switch: RunningSwitch, write: str | None = "private", read: str = "public") -> SwitchAccess:
    return SwitchAccess(
        "sw-snmp", HOST, "snmp", snmp_port=switch.snmp_port, read_community=read, write_community=write
    )


def _v3(switch: RunningSwitch, auth_key: str = V3_AUTH) -> SwitchAccess:
    return SwitchAccess(
        "sw-snmp3",
        HOST,
        "snmp",
        snmp_port=switch.snmp_port,
        snmp_version="v3",
        v3_user=V3_USER,
        v3_auth_key=auth_key,
        v3_priv_key=V3_PRIV,
        v3_auth_protocol="sha",
        v3_priv_protocol="aes",
    )


async def _with_driver(access: SwitchAccess, operation: Any) -> Any:
    driver = driver_for(access)
    try:
        return await operation(driver)
    finally:
        await driver.close()


async def _set_alias(switch: RunningSwitch, if_index: int, alias: str) -> None:
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create((HOST, switch.snmp_port), timeout=2, retries=1)
        var_bind = ObjectType(ObjectIdentity(f"{IF_ALIAS}.{if_index}"), OctetString(alias))
        indication, status, _, _ = await set_cmd(
            engine, CommunityData("private", mpModel=1), target, ContextData(), var_bind
        )
        assert indication is None and not status
    finally:
        engine.close_dispatcher()


def test_snmp_block_and_unblock_are_seen_over_snmp_and_by_the_cli(switch: RunningSwitch, run: Any) -> None:
    cli_access = SwitchAccess(
        "sw-cli", HOST, "cisco_ios", ssh_port=switch.ssh_port, username="admin", password="admin",
        enable_secret="enable",
    )  # fmt: skip

    async def scenario() -> tuple[PortState, ...]:
        snmp, cli = driver_for(_v2c(switch)), driver_for(cli_access)
        try:
            await snmp.block("GigabitEthernet0/1")
            blocked = (await snmp.read_port("GigabitEthernet0/1"), await cli.read_port("Gi0/1"))
            await snmp.unblock("Gi0/1")
            unblocked = (await snmp.read_port("Gi0/1"), await cli.read_port("Gi0/1"))
            return *blocked, *unblocked
        finally:
            await snmp.close()
            await cli.close()

    snmp_blocked, cli_blocked, snmp_unblocked, cli_unblocked = run(scenario())
    assert snmp_blocked == PortState("GigabitEthernet0/1", False, False, "", None)
    assert (cli_blocked.admin_up, cli_blocked.oper_up) == (False, False)
    assert snmp_unblocked == PortState("Gi0/1", True, True, "", None)
    assert (cli_unblocked.admin_up, cli_unblocked.oper_up) == (True, True)


def test_snmp_reads_every_port_and_a_port_given_by_if_index(switch: RunningSwitch, run: Any) -> None:
    run(_set_alias(switch, 2, "cust-1002"))
    states = run(_with_driver(_v2c(switch), lambda d: d.read_ports()))
    assert [s.port for s in states] == [f"GigabitEthernet0/{n}" for n in range(1, 5)]
    assert states[1] == PortState("GigabitEthernet0/2", True, True, "cust-1002", None)
    by_index = run(_with_driver(_v2c(switch), lambda d: d.read_port("2")))
    assert by_index.alias == "cust-1002"


def test_the_read_only_community_used_for_writing_is_refused(switch: RunningSwitch, run: Any) -> None:
    read_only = _v2c(switch, write="public")
    with pytest.raises(SwitchRefused, match=r"SET .* refused: noAccess"):
        run(_with_driver(read_only, lambda d: d.block("Gi0/4")))
    assert run(_with_driver(_v2c(switch), lambda d: d.read_port("Gi0/4"))).admin_up


def test_an_unknown_community_gets_no_answer_and_is_unreachable(switch: RunningSwitch, run: Any) -> None:
    driver = SnmpDriver(_v2c(switch, read="nobody"), timeout_s=0.2, retries=0)

    async def read() -> None:
        try:
            await driver.read_port("1")
        finally:
            await driver.close()

    with pytest.raises(SwitchUnreachable, match="community is wrong"):
        run(read())


def test_v3_user_blocks_reads_and_unblocks(switch: RunningSwitch, run: Any) -> None:
    async def scenario(driver: Any) -> tuple[PortState, PortState]:
        await driver.block("Gi0/3")
        blocked = await driver.read_port("Gi0/3")
        await driver.unblock("Gi0/3")
        return blocked, await driver.read_port("Gi0/3")

    blocked, unblocked = run(_with_driver(_v3(switch), scenario))
    assert (blocked.admin_up, blocked.oper_up) == (False, False)
    assert (unblocked.admin_up, unblocked.oper_up) == (True, True)


def test_v3_with_a_wrong_auth_key_is_an_authentication_failure(switch: RunningSwitch, run: Any) -> None:
    with pytest.raises(SwitchAuthFailed):
        run(_with_driver(_v3(switch, auth_key="not-the-key"), lambda d: d.read_port("Gi0/3")))


def test_snmp_cannot_rate_limit_and_says_so(switch: RunningSwitch, run: Any) -> None:
    with pytest.raises(NotSupported, match="IF-MIB has no port rate limit"):
        run(_with_driver(_v2c(switch), lambda d: d.set_rate("Gi0/1", 20480)))


def test_a_port_the_switch_does_not_have_is_refused(switch: RunningSwitch, run: Any) -> None:
    with pytest.raises(SwitchRefused, match=r"no port 'Gi0/9'"):
        run(_with_driver(_v2c(switch), lambda d: d.block("Gi0/9")))
