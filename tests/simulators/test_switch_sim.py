"""``billing-sim switch``: pysnmp as a manager and netmiko as a client against the real servers.

The servers run as a ``billing-sim switch`` subprocess on free loopback ports (they need
Twisted's asyncio reactor, which must not be installed in the test process); one process serves
the whole module and is stopped, and checked gone, at the end.  The CLI interpreter is also
tested directly, without sockets.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netmiko import ConnectHandler
from netmiko.exceptions import ConfigInvalidException
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    Integer,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
    set_cmd,
)

from simulators.switch_huawei import UNRECOGNIZED, WRONG_PARAMETER, HuaweiCli, huawei_port_index
from simulators.switch_ssh import INVALID, IosCli, Mode
from simulators.switch_state import AdminStatus, SwitchState, canonical_port_name
from tests.switch_sim import STARTUP_TIMEOUT_S as STARTUP_TIMEOUT
from tests.switch_sim import start_switch

ROOT = Path(__file__).resolve().parents[2]
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"
UP, DOWN = 1, 2
USER, PASSWORD, SECRET = "netops", "s3cret-pw", "en-secret"


@dataclass
class Switch:
    process: subprocess.Popen[str]
    snmp_port: int
    ssh_port: int

    def netmiko(self) -> Any:
        return ConnectHandler(
            device_type="cisco_ios",
            host="127.0.0.1",
            port=self.ssh_port,
            username=USER,
            password=PASSWORD,
            secret=SECRET,
            conn_timeout=5,
            timeout=5,
        )


def _start(*extra: str) -> tuple[subprocess.Popen[str], str]:
    process, line = start_switch(*extra)  # its first line: the ports, once both are bound
    if not line:
        process.kill()
        process.communicate()
        pytest.fail(f"billing-sim switch printed nothing in {STARTUP_TIMEOUT} s")
    return process, line


@pytest.fixture(scope="module")
def switch() -> Iterator[Switch]:
    credentials = ("--username", USER, "--password", PASSWORD, "--secret", SECRET)
    process, line = _start("--ports", "4", *credentials, "--duration", "60")
    try:
        match = re.match(r"switch: snmp 127\.0\.0\.1:(\d+) ssh 127\.0\.0\.1:(\d+) ports 4$", line.strip())
        assert match, (line, process.stderr.read() if process.poll() is not None else "")  # type: ignore[union-attr]
        sim = Switch(process, int(match.group(1)), int(match.group(2)))
        yield sim
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    assert re.search(r"^GigabitEthernet0/4 admin (up|down)", out, re.MULTILINE), out  # final states
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", sim.ssh_port), 1):
        pass


def _snmp(port: int, community: str, request: str, *var_binds: ObjectType) -> tuple[Any, str, list[Any]]:
    """One GET or SET with pysnmp (v2c); (error indication, error status name, var binds)."""

    async def call() -> tuple[Any, str, list[Any]]:
        engine = SnmpEngine()
        try:
            target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=1)
            command = get_cmd if request == "get" else set_cmd
            indication, status, _, binds = await command(
                engine, CommunityData(community, mpModel=1), target, ContextData(), *var_binds
            )
            return indication, status.prettyPrint() if status else "noError", list(binds)
        finally:
            engine.close_dispatcher()

    return asyncio.run(call())


def _get(port: int, oid: str, community: str = "public") -> Any:
    indication, status, binds = _snmp(port, community, "get", ObjectType(ObjectIdentity(oid)))
    assert indication is None and status == "noError", (indication, status)
    return binds[0][1]


# ------------------------------------------------------------------ the servers


def test_snmp_reads_the_if_mib_subset(switch: Switch) -> None:
    assert str(_get(switch.snmp_port, f"{IF_DESCR}.2")) == "GigabitEthernet0/2"
    assert int(_get(switch.snmp_port, f"{IF_ADMIN_STATUS}.2")) == UP
    assert int(_get(switch.snmp_port, f"{IF_OPER_STATUS}.2")) == UP
    missing = _get(switch.snmp_port, f"{IF_ADMIN_STATUS}.99")
    assert missing.prettyPrint().startswith("No Such Instance")


def test_snmp_set_needs_the_read_write_community(switch: Switch) -> None:
    down = ObjectType(ObjectIdentity(f"{IF_ADMIN_STATUS}.3"), Integer(DOWN))
    indication, status, _ = _snmp(switch.snmp_port, "public", "set", down)
    assert indication is None and status == "noAccess"
    assert int(_get(switch.snmp_port, f"{IF_ADMIN_STATUS}.3")) == UP

    indication, status, _ = _snmp(switch.snmp_port, "private", "set", down)
    assert indication is None and status == "noError"
    assert int(_get(switch.snmp_port, f"{IF_ADMIN_STATUS}.3")) == DOWN
    assert int(_get(switch.snmp_port, f"{IF_OPER_STATUS}.3")) == DOWN


def test_snmp_rejects_read_only_objects_and_bad_values(switch: Switch) -> None:
    oper = ObjectType(ObjectIdentity(f"{IF_OPER_STATUS}.4"), Integer(DOWN))
    assert _snmp(switch.snmp_port, "private", "set", oper)[1] == "notWritable"
    bad = ObjectType(ObjectIdentity(f"{IF_ADMIN_STATUS}.4"), Integer(7))
    assert _snmp(switch.snmp_port, "private", "set", bad)[1] == "wrongValue"
    assert int(_get(switch.snmp_port, f"{IF_ADMIN_STATUS}.4")) == UP


def test_netmiko_and_snmp_see_each_others_changes(switch: Switch) -> None:
    threads_before = set(threading.enumerate())
    alias = ObjectType(ObjectIdentity(f"{IF_ALIAS}.2"), OctetString("cust-1002 via snmp"))
    assert _snmp(switch.snmp_port, "private", "set", alias)[1] == "noError"

    conn = switch.netmiko()
    try:
        conn.enable()
        assert conn.find_prompt() == "switch1#"
        output = conn.send_config_set(["interface GigabitEthernet0/1", "shutdown", "description cust-1001"])
        assert "switch1(config-if)#" in output
        assert conn.find_prompt() == "switch1#"  # send_config_set ended config mode
        assert int(_get(switch.snmp_port, f"{IF_ADMIN_STATUS}.1")) == DOWN
        assert int(_get(switch.snmp_port, f"{IF_OPER_STATUS}.1")) == DOWN
        assert str(_get(switch.snmp_port, f"{IF_ALIAS}.1")) == "cust-1001"

        assert " description cust-1002 via snmp" in conn.send_command("show running-config interface Gi0/2")
        status = conn.send_command("show interfaces status")
        assert re.search(r"^Gi0/1\s+cust-1001\s+disabled", status, re.MULTILINE), status
        assert re.search(r"^Gi0/2\s+cust-1002 via snmp\s+connected", status, re.MULTILINE), status
        assert "[OK]" in conn.save_config()
    finally:
        conn.disconnect()
    _assert_no_new_threads(threads_before)


def test_netmiko_detects_an_invalid_command(switch: Switch) -> None:
    threads_before = set(threading.enumerate())
    conn = switch.netmiko()
    try:
        assert INVALID in conn.send_command("show bogus")
        conn.enable()
        with pytest.raises(ConfigInvalidException):
            conn.send_config_set(["interface GigabitEthernet0/4", "frobnicate"], error_pattern=r"% Invalid")
        assert conn.check_config_mode()  # netmiko leaves the session in config mode: exit it
        conn.exit_config_mode()
        assert conn.find_prompt() == "switch1#"
        assert int(_get(switch.snmp_port, f"{IF_ADMIN_STATUS}.4")) == UP
    finally:
        conn.disconnect()
    _assert_no_new_threads(threads_before)


def test_duration_bounds_the_run() -> None:
    process, line = _start("--duration", "0.5")
    try:
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert line.startswith("switch: snmp 127.0.0.1:"), (line, err)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    assert "GigabitEthernet0/8 admin up" in out


def _assert_no_new_threads(before: set[threading.Thread]) -> None:
    deadline = time.monotonic() + 5
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert [t for t in threading.enumerate() if t not in before] == []


# ------------------------------------------------------------------ the CLI interpreter, no sockets


def test_cli_modes_prompts_and_abbreviations() -> None:
    state = SwitchState(2)
    cli = IosCli(state, secret="pw")
    assert cli.prompt == "switch1>"
    assert INVALID in cli.execute("configure terminal")  # not in user mode
    assert cli.mode is Mode.USER
    assert cli.execute("terminal length 0") == "" and cli.execute("terminal width 511") == ""
    cli.execute("enable")
    assert cli.prompt == "Password: "
    assert cli.execute("wrong") == "% Access denied" and cli.mode is Mode.USER
    cli.execute("en")
    cli.execute("pw")
    assert cli.prompt == "switch1#"
    cli.execute("conf t")
    assert cli.prompt == "switch1(config)#"
    assert INVALID in cli.execute("interface GigabitEthernet0/9")
    assert cli.mode is Mode.CONFIG
    cli.execute("int gi0/2")
    assert cli.prompt == "switch1(config-if)#"
    assert INVALID in cli.execute("frobnicate")
    assert cli.mode is Mode.CONFIG_IF  # an error keeps the mode
    cli.execute("shut")
    cli.execute("rate-limit 20480")
    assert state.port(2).admin is AdminStatus.DOWN and state.port(2).rate_limit_kbps == 20480
    cli.execute("no shut")
    assert state.port(2).admin is AdminStatus.UP
    cli.execute("exit")
    assert cli.mode is Mode.CONFIG
    cli.execute("exit")
    assert cli.mode is Mode.ENABLE
    assert "[OK]" in cli.execute("write memory") and state.saved == 1
    cli.execute("exit")
    assert cli.closed


def test_port_names() -> None:
    assert canonical_port_name("Gi0/3") == "GigabitEthernet0/3"
    assert canonical_port_name("gigabitethernet 0/12") == "GigabitEthernet0/12"
    assert canonical_port_name("Fa0/1") is None
    assert canonical_port_name("g0/1") is None  # too short to be unambiguous


def test_cli_accepts_ios_committed_access_rate_and_shows_it_for_both_directions() -> None:
    state = SwitchState(2)
    cli = IosCli(state)
    for line in ("enable", "conf t", "int gi0/1"):
        cli.execute(line)
    car = "rate-limit input 20480000 3840000 7680000 conform-action transmit exceed-action drop"
    assert cli.execute(car) == "" and state.port(1).rate_limit_kbps == 20480
    too_fast = car.replace("20480000", "20000000000")  # beyond IOS's 10 Gbit/s
    assert INVALID in cli.execute(too_fast) and state.port(1).rate_limit_kbps == 20480
    shown = cli.execute("do show running-config interface Gi0/1")
    assert f" {car}" in shown and f" {car.replace('input', 'output')}" in shown
    assert cli.execute(f"no {car}") == "" and state.port(1).rate_limit_kbps == 0


def test_huawei_cli_views_prompts_and_abbreviations() -> None:
    state = SwitchState(2, hostname="HUAWEI")
    cli = HuaweiCli(state)
    assert cli.prompt == "<HUAWEI>"
    assert cli.execute("screen-length 0 temporary") == ""
    assert "Enter system view" in cli.execute("sys")
    assert cli.prompt == "[HUAWEI]"
    cli.execute("int GE0/0/2")
    assert cli.prompt == "[HUAWEI-GigabitEthernet0/0/2]"
    cli.execute("shut")
    cli.execute("description cust-2002")
    cli.execute("qos lr inbound cir 20480")
    port = state.port(2)
    assert (port.admin, port.alias, port.rate_limit_kbps) == (AdminStatus.DOWN, "cust-2002", 20480)
    shown = cli.execute("display this")
    assert " shutdown" in shown and " qos lr outbound cir 20480 cbs 2560000" in shown
    cli.execute("undo shut")
    cli.execute("undo qos lr inbound")
    assert state.port(2).admin is AdminStatus.UP and state.port(2).rate_limit_kbps == 0
    cli.execute("quit")
    assert cli.prompt == "[HUAWEI]"
    cli.execute("int g0/0/1")
    cli.ctrl_z()
    assert cli.prompt == "<HUAWEI>"
    cli.execute("quit")
    assert cli.closed


def test_huawei_cli_errors_put_the_caret_under_the_offending_word_and_keep_the_view() -> None:
    cli = HuaweiCli(SwitchState(2, hostname="HUAWEI"))
    cli.execute("system-view")
    cli.execute("interface GigabitEthernet0/0/1")
    prompt = cli.prompt
    answer = cli.execute("qos lr inbound cir 20000000").split("\n")
    assert answer == [" " * (len(prompt) + len("qos lr inbound cir ")) + "^", WRONG_PARAMETER]
    assert cli.execute("frobnicate").endswith(UNRECOGNIZED)
    assert cli.execute("interface GigabitEthernet0/0/9").endswith(WRONG_PARAMETER)
    assert cli.execute("qos lr").endswith("Error: Incomplete command found at '^' position.")
    assert cli.prompt == prompt  # errors keep the view


def test_huawei_display_commands_show_port_states() -> None:
    state = SwitchState(2, hostname="HUAWEI", port_prefix="GigabitEthernet0/0/")
    state.set_admin(1, AdminStatus.DOWN)
    state.set_alias(2, "cust-2002")
    cli = HuaweiCli(state)
    brief = cli.execute("dis int br")
    assert re.search(r"^GigabitEthernet0/0/1\s+\*down\s+down", brief, re.MULTILINE), brief
    assert re.search(r"^GigabitEthernet0/0/2\s+up\s+up", brief, re.MULTILINE), brief
    assert re.search(r"^GE0/0/2\s+up\s+up\s+cust-2002$", cli.execute("display interface description"), re.M)
    config = cli.execute("display current-configuration")
    assert "interface GigabitEthernet0/0/1\n shutdown\n#" in config and config.endswith("#\nreturn")
    assert "Continue? [Y/N]" in cli.execute("save") and cli.prompt == ""
    assert "successfully" in cli.execute("y") and state.saved == 1
    assert huawei_port_index("gigabitethernet 0/0/7") == 7 and huawei_port_index("Gi0/7") is None
