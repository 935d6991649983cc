"""The BRAS simulator in a process of its own, driven over a pipe, for the provisioning benchmark.

Not a test. The simulator answers CoA/Disconnect on ONE thread; run in the benchmark's process
it would share a GIL with the client it measures, so it runs here, in a forked child, and the
parent sends commands (log everyone in, report stats and CPU, close).

With ``own_radius`` the child logs its subscribers in through ``simulators.radius_stub`` (a
minimal RADIUS server that accepts everyone) so sessions come online without a database when only
CoA round trips are measured.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import wait
from dataclasses import asdict
from typing import Any

from simulators.bras import BrasConfig, BrasSimulator, Outcome
from simulators.radius_stub import AcceptingRadius

__all__ = ["BrasProcess"]


def _thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (from /proc), 0 if unknown."""
    if native_id is None:
        return 0.0
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child(conn: Any, values: dict[str, Any], own_radius: bool) -> None:
    responder = AcceptingRadius(values["secret"], name="bench-radius") if own_radius else None
    if responder is not None:
        values = {**values, "auth_port": responder.port, "acct_port": responder.port}
    sim = BrasSimulator(BrasConfig(**values))
    coa_thread = sim._coa_thread.native_id if sim._coa_thread is not None else None
    conn.send(("ready", sim.coa_address))
    try:
        while True:
            command = conn.recv()[0]
            if command == "login":
                started = time.perf_counter()
                jobs = [sim._pool.submit(sim._login, sub, None) for sub in sim.config.subscribers]
                wait(jobs)
                accepted = sum(1 for j in jobs if j.result() is Outcome.ACCEPTED)
                conn.send((accepted, time.perf_counter() - started))
            elif command == "sessions":
                conn.send([(s.acct_session_id, s.subscriber.user_name, s.framed_ip) for s in sim.sessions()])
            elif command == "stats":
                times = os.times()
                conn.send((asdict(sim.stats), times.user + times.system, _thread_cpu_s(coa_thread)))
            elif command == "close":
                break
    finally:
        sim.close()
        if responder is not None:
            responder.close()
        conn.send(("closed",))


class BrasProcess:
    """A BRAS simulator in a forked child; ``close()`` ends it."""

    def __init__(self, values: dict[str, Any], *, own_radius: bool = False) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_child, args=(child, values, own_radius), daemon=True)
        self.process.start()
        ready = self._call(None, timeout_s=30)
        self.coa_address: tuple[str, int] = ready[1]

    def _call(self, command: tuple[Any, ...] | None, timeout_s: float) -> Any:
        if command is not None:
            self._conn.send(command)
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"BRAS simulator process: no answer to {command} in {timeout_s} s")
        return self._conn.recv()

    def login_all(self, timeout_s: float = 600.0) -> tuple[int, float]:
        """Authenticate and start every subscriber: (how many were accepted, seconds)."""
        accepted, seconds = self._call(("login",), timeout_s)
        return int(accepted), float(seconds)

    def sessions(self) -> list[tuple[str, str, str]]:
        """(Acct-Session-Id, User-Name, Framed-IP-Address) of every online session."""
        return list(self._call(("sessions",), 60))

    def stats(self) -> tuple[dict[str, int], float, float]:
        """The simulator's counters, the process's CPU seconds, and its CoA thread's."""
        stats, cpu, coa_cpu = self._call(("stats",), 60)
        return stats, float(cpu), float(coa_cpu)

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, EOFError, RuntimeError):
                self._call(("close",), 30)
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._conn.close()
