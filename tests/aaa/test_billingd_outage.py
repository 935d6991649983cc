"""billingd while its PostgreSQL goes away and comes back (issue 3: journal, replay, degraded mode).

The database here is a private PostgreSQL cluster that this module creates (``initdb`` into a
temporary directory, ``pg_ctl`` on a free port) and stops and starts at will; the machine's
shared server, which the other tests use, is never touched.  Each test runs its own
``billingd`` subprocess on its own database of that cluster:

- ``degraded_mode = "last_known"`` (the default): accounting sent while the database is down is
  answered from the fsync'd journal and replayed once it is back, none lost and none doubled;
  authorization meanwhile answers from the last snapshot, and metrics and the log say so;
- ``degraded_mode = "reject"``: while the database is down every Access-Request is rejected.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pyrad.client import Client
from pyrad.dictionary import Dictionary
from pyrad.packet import Packet
from sqlalchemy import text
from test_billingd import _READY, BILLINGD, DICTIONARIES, SECRET, _config, _seed

from billing.db.engine import make_engine
from billing.db.migrate import upgrade

PG_BIN = Path("/usr/lib/postgresql/15/bin")
INITDB = PG_BIN / "initdb"
PG_CTL = PG_BIN / "pg_ctl"
ACCESS_ACCEPT, ACCESS_REJECT, ACCOUNTING_RESPONSE = 2, 3, 5
RECOVERY_S = 15.0  # replay runs every 5 s; the LISTEN connection backs off 0.5, 1, 2, 4 s ...


# --------------------------------------------------------------------------- private PostgreSQL


@dataclass
class PrivateCluster:
    """A throwaway PostgreSQL cluster in ``directory``, listening on 127.0.0.1:``port``."""

    directory: Path
    port: int
    run_as: list[str]  # ``runuser -u postgres --`` when we are root, else nothing
    running: bool = False

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def _run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self.run_as, *args], cwd=self.directory, capture_output=True, timeout=timeout, check=False
        )

    def initdb(self) -> None:
        done = self._run(str(INITDB), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stdout.decode()}{done.stderr.decode()}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = self.directory / "server.log"
        pg_ctl = [str(PG_CTL), "-D", str(self.data), "-l", str(log), "-o", options, "-w", "-t", "20"]
        done = self._run(*pg_ctl, "start")
        if done.returncode:
            raise RuntimeError(
                f"pg_ctl start failed: {done.stderr.decode()}\n{log.read_text(errors='replace')}"
            )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients, clean shutdown; ``immediate``: abort)."""
        done = self._run(str(PG_CTL), "-D", str(self.data), "-m", mode, "-w", "-t", "20", "stop")
        if done.returncode and self._postmaster_pid() is not None:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.decode()}")
        self.running = False

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def destroy(self) -> None:
        """Stop whatever runs (even after a failed start) and delete the directory."""
        try:
            self.stop("immediate")
        except Exception:
            pid = self._postmaster_pid()
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """Create, migrate and seed (test_billingd's subscribers) a database; return its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = self.url(name)
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        _seed(url)
        return url


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL 15 cluster; always stopped and deleted afterwards."""
    if not INITDB.exists() or not PG_CTL.exists():
        pytest.skip(f"PostgreSQL server binaries not found under {PG_BIN} (Debian: postgresql-15)")
    run_as: list[str] = []
    owner: tuple[int, int] | None = None
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' OS user to own a private cluster")
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser(1) to start a private cluster as 'postgres'")
        run_as, owner = [runuser, "-u", "postgres", "--"], (entry.pw_uid, entry.pw_gid)
    directory = Path(tempfile.mkdtemp(prefix="billingd-outage-pg-"))  # not under pytest's 0700 root
    if owner is not None:
        os.chown(directory, *owner)
    made = PrivateCluster(directory, _free_port(), run_as)
    try:
        made.initdb()
        made.start()
        yield made
    finally:
        made.destroy()


# --------------------------------------------------------------------------- the daemon


@dataclass
class Billingd:
    """A running ``billingd`` subprocess and what it bound to."""

    process: subprocess.Popen[bytes]
    log: Path
    auth: int
    acct: int
    metrics: int
    url: str
    returncode: int | None = None
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def client(self) -> Client:
        client = Client(server="127.0.0.1", authport=self.auth, acctport=self.acct, secret=SECRET.encode(),
                        dict=Dictionary(str(DICTIONARIES / "dictionary")))  # fmt: skip
        client.timeout, client.retries = 2, 1
        return client

    def access(self, login: str) -> Packet:
        """A PAP Access-Request for ``login`` (password = login); the reply."""
        client = self.client()
        request = client.CreateAuthPacket(code=1, id=next(self._ids) % 256, User_Name=login)
        request["User-Password"] = request.PwCrypt(login)
        request.add_message_authenticator()
        return client.SendPacket(request)

    def account(
        self, login: str, session: str, status: str, seconds: int = 0, octets: tuple[int, int] = (0, 0)
    ) -> int:
        """One Accounting-Request from NAS 127.0.0.1; the reply's code."""
        client = self.client()
        request = client.CreateAcctPacket(id=next(self._ids) % 256, User_Name=login)
        request["Acct-Session-Id"] = session
        request["NAS-IP-Address"] = "127.0.0.1"
        request["Acct-Status-Type"] = status
        request["Acct-Session-Time"] = seconds
        request["Acct-Input-Octets"], request["Acct-Output-Octets"] = octets
        return int(client.SendPacket(request).code)

    def metric(self, name: str) -> float | None:
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
        return float(found[1]) if found else None

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_billingd(tmp: Path, url: str, degraded_mode: str | None = None) -> Iterator[Billingd]:
    """``billingd`` on ``url`` (test_billingd's config, ports 0); SIGTERM'd (or killed) on exit."""
    config = _config(tmp, url)
    if degraded_mode is not None:
        body = config.read_text(encoding="utf-8")
        config.write_text(body.replace("[aaa]\n", f'[aaa]\ndegraded_mode = "{degraded_mode}"\n', 1), "utf-8")
    log = tmp / "billingd.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(BILLINGD), "--config", str(config)], stdout=out, stderr=out)
    daemon: Billingd | None = None
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
            found = _READY.search(log.read_bytes())
        if found is None:
            pytest.fail("billingd did not start:\n" + log.read_text(errors="replace")[-3000:])
        daemon = Billingd(process, log, int(found[1]), int(found[2]), int(found[3]), url)
        yield daemon
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = -9
        if daemon is not None:
            daemon.returncode = code


def _until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(every)


def _assert_stopped_cleanly(daemon: Billingd) -> None:
    assert daemon.returncode == 0, "billingd did not stop cleanly:\n" + daemon.logged()[-3000:]
    assert "stopped; accounting drained" in daemon.logged()


# --------------------------------------------------------------------------- tests


# (status, Acct-Session-Time, (input, output) octets, database up?) per record, in sending order
_SESSION_A = [  # demo's session: begins with the database up, ends while it is down
    ("Start", 0, (0, 0), True),
    ("Interim-Update", 60, (1000, 5000), True),
    ("Interim-Update", 120, (1500, 9000), False),
    ("Interim-Update", 180, (2000, 12000), False),
    ("Stop", 240, (2500, 15000), False),
    ("Stop", 240, (2500, 15000), False),  # the NAS lost our reply and sent the Stop again (new id)
]
_SESSION_B = [  # ms's session: entirely while the database is down
    ("Start", 0, (0, 0), False),
    ("Interim-Update", 30, (300, 700), False),
    ("Stop", 45, (400, 900), False),
]
_SESSION_C = [  # flip's session: begins while the database is down, goes on once it is back
    ("Start", 0, (0, 0), False),
    ("Interim-Update", 10, (100, 100), False),
]
_JOURNALED = len(_SESSION_A) - 2 + len(_SESSION_B) + len(_SESSION_C)


def _session_rows(url: str, acct_session_id: str) -> tuple[Any, list[tuple[int, int, int, int]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            session = conn.execute(
                text(
                    "SELECT r.id, r.status, r.input_octets, r.output_octets, r.session_time_s,"
                    " r.service_id, s.login FROM radius_sessions r LEFT JOIN services s"
                    " ON s.id = r.service_id WHERE r.acct_session_id = :sid"
                ),
                {"sid": acct_session_id},
            ).one()
            usage = conn.execute(
                text(
                    "SELECT input_octets, output_octets, seconds, service_id FROM session_usage"
                    " WHERE session_id = :id ORDER BY id"
                ),
                {"id": session.id},
            ).all()
    finally:
        engine.dispose()
    return session, [tuple(row) for row in usage]


def test_accounting_is_journaled_while_the_database_is_down_and_replayed_exactly_once(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    """PostgreSQL stopped mid-session, degraded_mode = last_known (the default).

    While it is down: every Interim/Stop still gets an Accounting-Response (the records are
    fsync'd in the journal: ``billingd_journal_depth`` > 0, the log says "journaling"); a
    funded subscriber still gets Access-Accept from the last snapshot; ``billingd_degraded``
    is 1 and the log says "degraded mode on".  Once it is back (within ~15 s): the journal is
    replayed (depth 0), degraded mode ends, and the database holds exactly the sessions'
    final totals and one usage row per forward move: none lost, none doubled (the repeated
    Stop adds nothing; an interim stored directly after the restart, while older records of
    its session still wait in the journal, is neither undone nor added to by the replay).
    """
    cluster.start()
    url = cluster.new_database("outage_last_known")
    with running_billingd(tmp_path, url) as daemon:
        for status, seconds, octets, db_up in _SESSION_A:
            if not db_up and cluster.running:
                assert daemon.metric("billingd_degraded") == 0.0
                cluster.stop("fast")
            code = daemon.account("demo", "outage-a", status, seconds, octets)
            assert code == ACCOUNTING_RESPONSE, f"{status} {octets}: no Accounting-Response"
        for login, session, records in (("ms", "outage-b", _SESSION_B), ("flip", "outage-c", _SESSION_C)):
            for status, seconds, octets, _ in records:
                assert daemon.account(login, session, status, seconds, octets) == ACCOUNTING_RESPONSE

        _until(
            lambda: daemon.metric("billingd_journal_depth") == _JOURNALED, 3, f"journal depth {_JOURNALED}"
        )
        _until(lambda: daemon.metric("billingd_degraded") == 1.0, 5, "billingd_degraded 1.0")
        assert daemon.access("demo").code == ACCESS_ACCEPT  # from the last known snapshot
        log = daemon.logged()
        assert "degraded mode on: last_known" in log
        assert "journaling" in log

        cluster.start()
        # newer than what waits in the journal, and most likely stored before the replay runs
        assert daemon.account("flip", "outage-c", "Interim-Update", 20, (200, 300)) == ACCOUNTING_RESPONSE
        _until(lambda: daemon.metric("billingd_journal_depth") == 0.0, RECOVERY_S, "journal replayed")
        _until(lambda: daemon.metric("billingd_degraded") == 0.0, RECOVERY_S, "degraded mode off")
        assert re.search(r"replayed \d+ journaled accounting records", daemon.logged())
        assert daemon.access("demo").code == ACCESS_ACCEPT
    _assert_stopped_cleanly(daemon)

    session, usage = _session_rows(url, "outage-a")
    assert (session.status, session.input_octets, session.output_octets, session.session_time_s) == (
        "closed", 2500, 15000, 240,
    )  # fmt: skip
    assert session.login == "demo"
    assert usage == [
        (1000, 5000, 60, session.service_id),
        (500, 4000, 60, session.service_id),
        (500, 3000, 60, session.service_id),
        (500, 3000, 60, session.service_id),
    ]
    session, usage = _session_rows(url, "outage-b")
    assert (session.status, session.input_octets, session.output_octets, session.session_time_s) == (
        "closed", 400, 900, 45,
    )  # fmt: skip
    assert session.login == "ms"
    assert usage == [(300, 700, 30, session.service_id), (100, 200, 15, session.service_id)]
    # replay before or after the newer interim: either way the totals are the newest report's
    session, usage = _session_rows(url, "outage-c")
    assert (session.status, session.input_octets, session.output_octets, session.session_time_s) == (
        "open", 200, 300, 20,
    )  # fmt: skip
    assert session.login == "flip"
    assert [sum(column) for column in zip(*usage, strict=True)][:3] == [200, 300, 20]
    assert all(row[3] == session.service_id for row in usage)


def test_degraded_mode_reject_refuses_everyone_while_the_database_is_down(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    """degraded_mode = "reject": once the daemon notices the database is gone, a funded
    subscriber who was accepted a moment ago gets Access-Reject ("unknown subscriber": the
    directory is empty), ``billingd_degraded`` is 1 and the log says "degraded mode on:
    reject"; when the database is back, the subscriber is accepted again."""
    cluster.start()
    url = cluster.new_database("outage_reject")
    with running_billingd(tmp_path, url, degraded_mode="reject") as daemon:
        assert daemon.access("demo").code == ACCESS_ACCEPT
        cluster.stop("fast")
        _until(lambda: daemon.metric("billingd_degraded") == 1.0, 5, "billingd_degraded 1.0")
        reply = daemon.access("demo")
        assert reply.code == ACCESS_REJECT
        assert reply["Reply-Message"] == ["unknown subscriber"]
        assert "degraded mode on: reject" in daemon.logged()

        cluster.start()
        _until(lambda: daemon.access("demo").code == ACCESS_ACCEPT, RECOVERY_S, "accepted again", every=0.3)
        _until(lambda: daemon.metric("billingd_degraded") == 0.0, 2, "billingd_degraded 0.0")
    _assert_stopped_cleanly(daemon)
