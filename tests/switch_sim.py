"""Start ``billing-sim switch`` as a subprocess on free loopback ports for a test module, and stop it.

The simulator needs Twisted's asyncio reactor, which must not be installed in the test process,
so it runs apart; its first line gives the bound ports.  :func:`running_switch` yields a
:class:`RunningSwitch` and, on the way out, terminates the process and checks that it exited
cleanly, printed its final port states and no longer listens.
"""

from __future__ import annotations

import re
import selectors
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 15.0
HOST = "127.0.0.1"
_READY = re.compile(r"switch: snmp 127\.0\.0\.1:(\d+) ssh 127\.0\.0\.1:(\d+) ports (\d+)$")


class SimulatorFailed(AssertionError):
    """The simulator did not start, or did not stop cleanly."""


@dataclass(frozen=True)
class RunningSwitch:
    """A started simulator: its process and bound ports."""

    process: subprocess.Popen[str]
    snmp_port: int
    ssh_port: int
    ports: int


def start_switch(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``billing-sim switch`` on ports 0 with ``args``; (process, its first line or "")."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.main", "switch", "--snmp-port", "0", "--ssh-port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:  # never hang a suite on a simulator that does not start
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=STARTUP_TIMEOUT_S)
    return process, process.stdout.readline() if ready else ""


@contextmanager
def running_switch(*args: str, duration_s: float = 120.0) -> Iterator[RunningSwitch]:
    """A simulator for the ``with`` block (``args`` as for ``billing-sim switch``); stopped, checked."""
    process, line = start_switch(*args, "--duration", str(duration_s))
    match = _READY.match(line.strip())
    if not match:
        process.kill()
        _, err = process.communicate(timeout=10)
        raise SimulatorFailed(f"billing-sim switch did not start: {line!r} {err}")
    switch = RunningSwitch(process, int(match.group(1)), int(match.group(2)), int(match.group(3)))
    try:
        yield switch
    finally:
        process.terminate()
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise SimulatorFailed("billing-sim switch did not stop on SIGTERM") from None
    if process.returncode != 0 or "Traceback" in err or "ERROR" in err:
        raise SimulatorFailed(f"billing-sim switch exited {process.returncode}: {err}")
    if " admin " not in out:
        raise SimulatorFailed(f"billing-sim switch printed no final port states: {out!r}")
    try:
        socket.create_connection((HOST, switch.ssh_port), 1).close()
    except ConnectionRefusedError:
        return
    raise SimulatorFailed(f"billing-sim switch still listens on {switch.ssh_port}")
