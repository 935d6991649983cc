"""A billingd for end-to-end tests: its config (also the RADIUS tests'), and for the payment API
start (ready when the API logs its ports) and stop (SIGTERM, clean exit, ledger invariants), shared
by the SOAP, bank-simulator, crash and multi-process tests."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from billing.db.engine import make_engine
from billing.invariants import check_ledger

REPO = Path(__file__).resolve().parents[1]
BILLINGD = Path(sys.executable).with_name("billingd")
READY = re.compile(rb"payment API listening on \S+: http (\d+|-) tls (\d+|-)")


def write_config(
    tmp: Path,
    url: str,
    payments: str = "",
    *,
    aaa: str = "",
    secret: str = "testing123",
    nas_name: str = "lo",
    nas: str = "",
) -> Path:
    """A config for billingd on ``url``: RADIUS on free ports with one NAS on loopback (``secret``,
    ``nas_name``, ``nas`` more lines of its table), ``aaa`` more lines of its [aaa] table, then
    ``payments``: more tables ([payments], [provisioning], policies)."""
    path = tmp / "billing.toml"
    path.write_text(
        f"""
[isp]
name = "Test ISP"
currency = "EUR"
time_zone = "Europe/Berlin"

[database]
url = "{url}"

[logging]
level = "info"

[aaa]
auth_port = 0
acct_port = 0
metrics_port = 0
dictionary_dir = "{REPO / "conf" / "dictionaries"}"
journal_dir = "{tmp / "journal"}"
{aaa}
[[aaa.nas]]
name = "{nas_name}"
address = "127.0.0.1"
secret = "{secret}"
vendor = "mikrotik"
{nas}

{payments}
""",
        encoding="utf-8",
    )
    return path


class Billingd:
    """A running billingd: its process, log, the payment API's ports and an engine on its database."""

    def __init__(
        self, process: subprocess.Popen[bytes], log: Path, http: int, tls: int, engine: Engine
    ) -> None:
        self.process, self.log, self.http_port, self.tls_port, self.engine = process, log, http, tls, engine


def start(config: Path, log: Path, url: str, *args: str, timeout_s: float = 30.0) -> Billingd:
    """Start billingd and wait until its payment API listens; fail with its log if it does not."""
    with log.open("ab") as out:
        process = subprocess.Popen([str(BILLINGD), "--config", str(config), *args], stdout=out, stderr=out)
    deadline, found = time.monotonic() + timeout_s, None
    while found is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
        found = READY.search(log.read_bytes())
    if found is None:
        process.kill()
        process.wait()
        raise RuntimeError(
            "billingd's payment API did not start:\n" + log.read_text(errors="replace")[-3000:]
        )
    ports = [int(p) if p != b"-" else 0 for p in (found[1], found[2])]
    return Billingd(process, log, ports[0], ports[1], make_engine(url))


def stop(daemon: Billingd) -> int:
    """SIGTERM (SIGKILL after 20 s); the exit code."""
    daemon.process.send_signal(signal.SIGTERM)
    try:
        return daemon.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        return daemon.process.wait()


@contextmanager
def running(config: Path, log: Path, url: str, *args: str) -> Iterator[Billingd]:
    """billingd for the block; afterwards it must have stopped cleanly with the ledger intact."""
    daemon = start(config, log, url, *args)
    try:
        yield daemon
    finally:
        code = stop(daemon)
        with Session(daemon.engine) as s:
            violations = check_ledger(s)
        daemon.engine.dispose()
        assert code == 0, "billingd did not stop cleanly:\n" + log.read_text(errors="replace")[-3000:]
        assert not violations, "ledger invariants broken:\n" + "\n".join(map(str, violations))
