"""The netmiko drivers (``cisco_ios``, ``huawei``) against ``billing-sim switch`` over SSH.

Each vendor gets its own simulator (``--cli cisco_ios`` / ``--cli huawei``, 4 ports) and one
driver for the module, so the tests also show the cached session surviving refused commands
(``connections_opened`` stays 1).  netmiko runs in a two-thread pool that is shut down, with
the session, at the end; no thread may be left behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from nms_adapters.switches import (
    PortState,
    SwitchAccess,
    SwitchAuthFailed,
    SwitchRefused,
    SwitchUnreachable,
    driver_for,
)
from nms_adapters.switches.cli import CliDriver
from tests.switch_sim import HOST, RunningSwitch, running_switch

USER, PASSWORD, SECRET = "netops", "s3cret-pw", "en-secret"


@dataclass
class Vendor:
    """One simulated switch with its driver and the port names its operators type."""

    device_type: str
    switch: RunningSwitch
    driver: CliDriver
    run: Any  # runs a coroutine on the module's event loop

    def port(self, n: int) -> str:
        return f"Gi0/{n}" if self.device_type == "cisco_ios" else f"GE0/0/{n}"

    def interface(self, n: int) -> str:
        return f"GigabitEthernet0/{n}" if self.device_type == "cisco_ios" else f"GigabitEthernet0/0/{n}"

    def access(self, **changes: Any) -> SwitchAccess:
        fields = dict(username=USER, password=PASSWORD, enable_secret=SECRET) | changes
        return SwitchAccess(
            f"sw-{self.device_type}", HOST, self.device_type, ssh_port=self.switch.ssh_port, **fields
        )

    def snmp_read(self, if_index: int) -> PortState:
        access = SwitchAccess(
            "sw-snmp", HOST, "snmp", snmp_port=self.switch.snmp_port, read_community="public"
        )

        async def read() -> PortState:
            driver = driver_for(access)
            try:
                return await driver.read_port(str(if_index))
            finally:
                await driver.close()

        return self.run(read())


@pytest.fixture(scope="module", params=["cisco_ios", "huawei"])
def vendor(request: pytest.FixtureRequest) -> Iterator[Vendor]:
    threads_before = set(threading.enumerate())
    credentials = ("--username", USER, "--password", PASSWORD, "--secret", SECRET)
    with (
        running_switch("--cli", request.param, "--ports", "4", *credentials) as switch,
        asyncio.Runner() as runner,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="netmiko") as pool,
    ):
        placeholder = Vendor(request.param, switch, None, runner.run)  # type: ignore[arg-type]
        driver = driver_for(placeholder.access(), executor=pool)
        assert isinstance(driver, CliDriver)
        placeholder.driver = driver
        try:
            yield placeholder
        finally:
            runner.run(driver.close())
    deadline = time.monotonic() + 5
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert [t.name for t in threading.enumerate() if t not in threads_before] == []


def test_block_and_unblock_reach_the_port_and_snmp_sees_them(vendor: Vendor) -> None:
    driver, run = vendor.driver, vendor.run
    run(driver.block(vendor.port(1)))
    assert run(driver.read_port(vendor.port(1))) == PortState(vendor.port(1), False, False, "", None)
    assert vendor.snmp_read(1).admin_up is False
    run(driver.block(vendor.port(1)))  # idempotent
    run(driver.unblock(vendor.port(1)))
    assert run(driver.read_port(vendor.port(1))) == PortState(vendor.port(1), True, True, "", None)
    assert vendor.snmp_read(1).admin_up is True


def test_rate_limit_is_set_changed_kept_and_removed(vendor: Vendor) -> None:
    driver, run, port = vendor.driver, vendor.run, vendor.port(2)
    run(driver.set_rate(port, 20480))
    assert run(driver.read_port(port)).rate_kbps == 20480
    run(driver.set_rate(port, 10240))
    run(driver.set_rate(port, 10240))  # already so: no configuration commands
    assert run(driver.read_port(port)).rate_kbps == 10240
    run(driver.set_rate(port, None))
    assert run(driver.read_port(port)) == PortState(port, True, True, "", None)


def test_read_ports_lists_every_port_with_state_and_rate(vendor: Vendor) -> None:
    driver, run = vendor.driver, vendor.run
    run(driver.block(vendor.port(4)))
    run(driver.set_rate(vendor.port(3), 5120))
    try:
        states = {state.port: state for state in run(driver.read_ports())}
    finally:
        run(driver.unblock(vendor.port(4)))
        run(driver.set_rate(vendor.port(3), None))
    assert sorted(states) == [vendor.interface(n) for n in range(1, 5)]
    assert states[vendor.interface(4)] == PortState(vendor.interface(4), False, False, "", None)
    assert states[vendor.interface(3)] == PortState(vendor.interface(3), True, True, "", 5120)


def test_a_refused_command_is_named_and_the_next_operation_works(vendor: Vendor) -> None:
    driver, run = vendor.driver, vendor.run
    with pytest.raises(SwitchRefused) as no_port:
        run(driver.block(vendor.port(99)))
    assert f"'interface {vendor.interface(99)}' refused" in str(no_port.value)
    assert ("% Invalid input" if vendor.device_type == "cisco_ios" else "Error: Wrong parameter") in str(
        no_port.value
    )
    with pytest.raises(SwitchRefused, match=r"(rate-limit input 20000000000|qos lr inbound cir 20000000)"):
        run(driver.set_rate(vendor.port(3), 20_000_000))  # beyond what the switch accepts: in interface mode
    # configuration mode was left: a show command (exec mode only) and a change both work, same session
    run(driver.block(vendor.port(3)))
    assert run(driver.read_port(vendor.port(3))).admin_up is False
    run(driver.unblock(vendor.port(3)))
    assert run(driver.read_port(vendor.port(3))).rate_kbps is None
    assert driver.connections_opened == 1


def test_a_wrong_password_is_an_authentication_failure(vendor: Vendor) -> None:
    async def attempt() -> None:
        driver = driver_for(vendor.access(password="wrong"))
        try:
            await driver.read_port(vendor.port(1))
        finally:
            await driver.close()

    with pytest.raises(SwitchAuthFailed, match="login refused"):
        vendor.run(attempt())


def test_a_switch_that_does_not_listen_is_unreachable() -> None:
    access = SwitchAccess("sw-gone", HOST, "cisco_ios", ssh_port=_closed_port(), username="u", password="p")

    async def attempt() -> None:
        driver = driver_for(access)
        try:
            await driver.block("Gi0/1")
        finally:
            await driver.close()

    with pytest.raises(SwitchUnreachable, match="cannot log in"):
        asyncio.run(attempt())


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
