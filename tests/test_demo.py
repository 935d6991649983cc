"""The demo end to end: a month of billing, then billingd and the BRAS simulator live, bounded.

It runs ``python -m billing.demo`` as a user would, on a copy of conf/demo.toml that points at a
temporary SQLite file and at free ports (1812/1813 may be taken on a CI machine), and checks
that it ends by itself, in time, with exit 0, having authenticated and accounted, and that it
leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

from billing.db.engine import make_engine
from billing.db.migrate import upgrade
from billing.demo import Ports, _busy_ports, _with_ports

REPO = Path(__file__).resolve().parents[1]
DURATION = 15
SET_UP = 15  # interpreter start, imports, seeding: generous for a slow CI machine


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo_config(tmp: Path) -> tuple[Path, Ports]:
    """conf/demo.toml with a temporary database and journal, and free ports."""
    ports = Ports(
        _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    )
    text = (REPO / "conf" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace('"sqlite:///var/demo.db"', f'"sqlite:///{tmp / "demo.db"}"')
    text = text.replace('journal_dir = "var/journal"', f'journal_dir = "{tmp / "journal"}"')
    assert str(tmp) in text.split("[aaa]")[0] and str(tmp / "journal") in text
    path = tmp / "demo.toml"
    path.write_text(_with_ports(text, ports), encoding="utf-8")
    return path, ports


def _processes_with(marker: str) -> dict[int, str]:
    """Live processes whose environment carries ``marker``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def test_the_demo_runs_billingd_and_the_simulator_and_stops_in_time(tmp_path: Path) -> None:
    config, ports = _demo_config(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    upgrade(engine)
    engine.dispose()
    tag = uuid.uuid4().hex
    marker = f"BILLING_DEMO_TEST={tag}"  # every process the demo starts inherits it
    env = {**os.environ, "BILLING_DEMO_TEST": tag}
    command = [sys.executable, "-m", "billing.demo", "--config", str(config), "--duration", str(DURATION),
               "--log", str(tmp_path / "billingd.log")]  # fmt: skip
    began = time.monotonic()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = process.communicate(timeout=DURATION + SET_UP + 30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        raise AssertionError(
            "the demo did not stop by itself:\n" + out.decode(errors="replace")[-4000:]
        ) from None
    elapsed = time.monotonic() - began
    text = out.decode(errors="replace")
    try:
        assert process.returncode == 0, text[-4000:]
        assert elapsed < DURATION + SET_UP, f"took {elapsed:.1f} s\n{text[-2000:]}"
        assert "Ledger invariants hold" in text
        assert f"RADIUS auth 127.0.0.1:{ports.auth}, accounting 127.0.0.1:{ports.acct}" in text, text[-4000:]
        access = re.search(r"access requests (\d+): accepted (\d+), rejected (\d+)", text)
        accounting = re.search(r"accounting requests (\d+): acknowledged (\d+)", text)
        assert access and accounting, text[-4000:]
        assert int(access[2]) > 0 and int(access[3]) > 0  # demo and friends in; broke out
        assert int(accounting[2]) > 0
        assert re.search(r"radius_sessions [1-9]\d* \(open 0\)", text), text[-2000:]
        assert "billingd stopped on SIGTERM: accounting drained, exit 0" in text
        assert f"radtest demo demo 127.0.0.1:{ports.auth} 0 testing123" in text
        assert f"radtest broke broke 127.0.0.1:{ports.auth} 0 testing123" in text
    finally:
        deadline = time.monotonic() + 5
        while (left := _processes_with(marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert left == {}, f"left behind: {left}"


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        busy = _busy_ports("127.0.0.1", "127.0.0.1", Ports(port, 0, 0))
    assert busy == [f"UDP 127.0.0.1:{port} (RADIUS auth)"]
    assert _busy_ports("127.0.0.1", "127.0.0.1", Ports(0, 0, 0)) == []


def test_ports_are_replaced_in_the_aaa_table_only() -> None:
    text = (REPO / "conf" / "demo.toml").read_text(encoding="utf-8")
    changed = tomllib.loads(_with_ports(text, Ports(0, 1, 2)))
    original = tomllib.loads(text)
    assert (changed["aaa"]["auth_port"], changed["aaa"]["acct_port"], changed["aaa"]["metrics_port"]) == (
        0,
        1,
        2,
    )
    for key in ("auth_port", "acct_port", "metrics_port"):
        del changed["aaa"][key], original["aaa"][key]
    assert changed == original
    bare = tomllib.loads(_with_ports('[isp]\nname = "x"\n', Ports(1, 2, 3)))
    assert bare["aaa"] == {"auth_port": 1, "acct_port": 2, "metrics_port": 3}
