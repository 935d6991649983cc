"""Provisioning benchmark (issue 6): CoA round trips per second, and a mass non-payment day end to end.

Not a test: it prints figures (medians of ``--repeat`` rounds), the ratio to FreeRADIUS's
``radclient`` measured in the same run, and the issue's goal (10,000 suspensions enforced end to
end in <= 10 s).

Part 1, CoA round trips/s against the BRAS simulator (``simulators/bras.py``, in a process of its
own: ``bench/bras_process.py``). ``--coa-sessions`` subscribers are brought online through a
minimal RADIUS responder (Access-Accept for all, the tests' ``Radius``), not through billingd:
this part measures the CoA path only, and needs no database. Then, per round:

- ours: ``aaa.dynamic_authorization.DynamicAuthClient`` on Twisted's asyncio reactor (as in
  billingd) keeps ``--window`` CoA-Requests in flight for ``--seconds``; each request names one
  live session (Acct-Session-Id, User-Name, Framed-IP-Address, NAS-IP-Address), carries a
  MikroTik rate limit unique to the request (so the simulator's duplicate cache never answers)
  and a Message-Authenticator; every reply is verified by the client.
- reference: ``radclient -f FILE -p WINDOW 127.0.0.1:PORT coa SECRET`` sends the same requests
  (same attributes, Message-Authenticator too) to the same simulator, in files of 10,000 (its
  cost per request grows with the file); its startup (a one-request run) is subtracted from
  the wall time of each file.
- ceilings, to tell whose limit a figure is: a raw UDP blaster (pre-encoded datagrams, one
  socket, the same window, replies not verified) gives the simulator's own maximum; ours against
  a trivial CoA responder (answers ACK without looking) gives the client's.

Part 2, the mass non-payment day: a fresh PostgreSQL database with ``--subscribers`` accounts
(``bench/radius_seed.py``, not funded), billingd (RADIUS only, ``[provisioning] worker = false``)
and the BRAS simulator, which brings every subscriber online through billingd's RADIUS
server; then every account goes into debt (one ledger adjustment each) and the daily evaluation
(``billing.service_lifecycle.evaluate_services``, ``as_of`` past the grace period) suspends every
service for debt in one transaction: a walled-garden CoA task per service (the time to write the
decisions is reported apart). Then, per ``--workers`` variant, that many ``billingd --role
provisioning`` processes start (by default 1 and 2 with the shipped ``[provisioning]`` settings,
and 1 with ``concurrency`` and ``batch`` 1024) and the clock runs from their launch until every
task is done with its attempt on record (the database is polled every 50 ms). Each round resets
the same tasks to pending (tasks are idempotent: the simulator ACKs the same walled-garden CoA
again) and deletes their attempts. CPU of the workers, the simulator (and its CoA thread) and
PostgreSQL is printed per round. ``--profile`` adds a round with one in-process worker under
cProfile (the reactor thread) with its database calls (claim, supersede, record) timed.

Everything binds 127.0.0.1, is bounded in time, and every process started is stopped and the
database dropped at the end, also on error. Usage::

    .venv/bin/python bench/provisioning.py [--repeat 3] [--quick] [--skip-coa] [--skip-mass]
        [--workers 1,2,1+concurrency=1024+batch=1024] [--subscribers 10000] [--profile]
        [--coa-sessions 2000] [--window 256] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bras_process import BrasProcess
from radius import BILLINGD, Processes, _postgres_cpu_s, _proc_cpu_s, billingd_config
from radius_seed import DEFAULT_ADMIN_URL, PASSWORD_FORMAT, USER_FORMAT, BenchDatabase

from aaa import codec
from aaa.codec import Attribute, Code
from simulators.bras import Subscriber

REPO = Path(__file__).resolve().parents[1]
DICTIONARIES = REPO / "conf" / "dictionaries"
SECRET = "bench-secret-123"
RADCLIENT = "/usr/bin/radclient"
GOAL_TASKS = 10_000
RADCLIENT_CHUNK = 10_000  # requests per radclient run (see run_radclient)
GOAL_SECONDS = 10.0

perf = time.perf_counter
RUN_STARTED = perf()
_RADIUS_READY = re.compile(rb"RADIUS listening on \S+ auth (\d+) acct (\d+) metrics (\d+)")
_WORKER_READY = re.compile(rb"provisioning worker \S+ started")

Figures = dict[str, list[float]]


def say(text: str) -> None:
    print(f"{perf() - RUN_STARTED:6.1f}s {text}", flush=True)


def med(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- part 1: CoA requests


@dataclass(frozen=True)
class CoaRequests:
    """The same CoA-Requests three ways: attribute lists (ours), radclient text, raw datagrams."""

    attributes: list[tuple[Attribute, ...]]
    radclient_text: list[str]


def build_coa_requests(
    dictionary: Any, sessions: Sequence[tuple[str, str, str]], n: int, offset: int = 0
) -> CoaRequests:
    """``n`` CoA-Requests over the ``sessions`` in turn, each with its own MikroTik rate limit."""
    from aaa.dynamic_authorization import render_attributes, session_identity
    from aaa.vendor_profiles import Authorization, SpeedProfile, renderer_for

    renderer = renderer_for("mikrotik", dictionary)
    identities = [
        session_identity(dictionary, acct_session_id=a, user_name=u, framed_ip=ip, nas_ip="127.0.0.1")
        for a, u, ip in sessions
    ]
    attributes, texts = [], []
    for k in range(offset, offset + n):
        profile = SpeedProfile(f"p{k}", 1000 + k % 100_000, 1000 + k // 100_000)
        change = tuple(renderer.render(Authorization(profile=profile)))
        attrs = (*identities[k % len(identities)], *change)
        attributes.append(attrs)
        texts.append(
            render_attributes(dictionary, attrs).replace("=", " = ") + ", Message-Authenticator = 0x00"
        )
    return CoaRequests(attributes, texts)


@dataclass
class CoaRun:
    """One client's run against one simulator."""

    who: str
    sent: int = 0
    acked: int = 0
    other: int = 0  # NAK or timeout
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    sim_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.acked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        sim = (
            f", simulator CoA thread {100 * self.sim_cpu_s / self.elapsed_s:.0f}% core"
            if self.sim_cpu_s
            else ""
        )
        cli = f", client {100 * self.client_cpu_s / self.elapsed_s:.0f}% core" if self.client_cpu_s else ""
        bad = f", NOT ACKED {self.other}" if self.other else ""
        return (
            f"{self.who}: {self.acked}/{self.sent} ACKed in {self.elapsed_s:.2f} s = {self.rate:,.0f} CoA/s"
            f"{cli}{sim}{bad}"
        )


def run_ours(
    loop: asyncio.AbstractEventLoop,
    reactor: Any,
    dictionary: Any,
    port: int,
    requests: CoaRequests,
    window: int,
    seconds: float,
) -> CoaRun:
    """DynamicAuthClient with ``window`` requests in flight until ``seconds`` pass (or requests run out)."""
    from aaa.dynamic_authorization import Answer, DynamicAuthClient, DynamicAuthTarget

    client = DynamicAuthClient(reactor, dictionary, timeout_s=2.0, retries=0)
    target = DynamicAuthTarget("bras", "127.0.0.1", port, SECRET.encode())
    run = CoaRun("ours (DynamicAuthClient)")
    attrs = requests.attributes
    finished: asyncio.Future[None] = loop.create_future()
    state = {"next": 0, "in_flight": 0, "last": 0.0}
    stop_at = 0.0

    def launch() -> None:
        k = state["next"]
        state["next"] += 1
        state["in_flight"] += 1
        client.coa(target, attrs[int(k)]).addCallbacks(done, failed)

    def done(result: Any) -> None:
        state["in_flight"] -= 1
        state["last"] = perf()
        if result.answer is Answer.ACK:
            run.acked += 1
        else:
            run.other += 1
        more()

    def failed(failure: Any) -> None:
        state["in_flight"] -= 1
        run.other += 1
        more()

    def more() -> None:
        if perf() < stop_at and state["next"] < len(attrs):
            launch()
        elif state["in_flight"] == 0 and not finished.done():
            finished.set_result(None)

    cpu0 = time.process_time()
    t0 = perf()
    stop_at = t0 + seconds
    for _ in range(min(window, len(attrs))):
        launch()
    loop.run_until_complete(asyncio.wait_for(finished, seconds + 30))
    run.elapsed_s = state["last"] - t0
    run.client_cpu_s = time.process_time() - cpu0
    run.sent = int(state["next"])
    loop.run_until_complete(client.close().asFuture(loop))
    return run


def run_radclient(port: int, texts: Sequence[str], window: int, tmp: Path, startup_s: float) -> CoaRun:
    """radclient over files of ``texts`` with ``window`` in parallel; wall time minus its startup.

    The requests go in files of at most ``RADCLIENT_CHUNK``, one run after another: radclient 3.2
    walks its whole request list on every pass of its loop, so its cost per request grows with the
    file (measured against the simulator: 12k/s with 10,000 requests, 6k/s with 45,000).
    """
    run = CoaRun("reference (radclient)", sent=len(texts))
    path = tmp / "coa-requests.txt"
    before = os.times()
    for first in range(0, len(texts), RADCLIENT_CHUNK):
        path.write_text("\n\n".join(texts[first : first + RADCLIENT_CHUNK]) + "\n")
        argv = [RADCLIENT, "-f", str(path), "-p", str(window), "-r", "1", "-t", "5", "-s", "-q",
                f"127.0.0.1:{port}", "coa", SECRET]  # fmt: skip
        t0 = perf()
        done = subprocess.run(argv, capture_output=True, timeout=600, check=False)
        run.elapsed_s += max(perf() - t0 - startup_s, 1e-6)
        out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        acked = _summary(out, "Accepted")
        run.acked += acked
        run.other += _summary(out, "Lost") + _summary(out, "Rejected")
        if acked == 0:
            say(f"radclient answered nothing useful (exit {done.returncode}): {out[-800:]}")
    after = os.times()
    run.client_cpu_s = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return run


def _summary(out: str, name: str) -> int:
    m = re.search(rf"{name}\s*:\s*(\d+)", out)
    return int(m[1]) if m else 0


def radclient_startup(port: int, text: str, tmp: Path) -> float:
    """Median wall time of a one-request radclient run: its startup (dictionaries) plus one round trip."""
    path = tmp / "coa-one.txt"
    path.write_text(text + "\n")
    times = []
    for _ in range(3):
        t0 = perf()
        argv = [RADCLIENT, "-f", str(path), "-r", "1", "-t", "5", "-q", f"127.0.0.1:{port}", "coa", SECRET]
        subprocess.run(argv, capture_output=True, timeout=60, check=False)
        times.append(perf() - t0)
    return statistics.median(times)


def raw_blaster(port: int, datagrams: Sequence[bytes], window: int, seconds: float) -> CoaRun:
    """Pre-encoded CoA datagrams over one socket, ``window`` in flight; any reply frees a slot."""
    run = CoaRun("raw UDP blaster (no verification)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.connect(("127.0.0.1", port))
    sock.settimeout(2.0)
    window = min(window, 256)
    t0 = perf()
    stop_at = t0 + seconds
    sent = 0
    for _ in range(min(window, len(datagrams))):
        sock.send(datagrams[sent])
        sent += 1
    in_flight = sent
    last = t0
    while in_flight:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            run.other += in_flight
            break
        in_flight -= 1
        last = perf()
        if data[0] == Code.COA_ACK:
            run.acked += 1
        else:
            run.other += 1
        if last < stop_at and sent < len(datagrams):
            sock.send(datagrams[sent])
            sent += 1
            in_flight += 1
    sock.close()
    run.sent, run.elapsed_s = sent, last - t0
    return run


def encode_all(attrs: Sequence[tuple[Attribute, ...]]) -> list[bytes]:
    """CoA-Request datagrams, the k-th with Identifier k % 256 (at most 256 in flight on one socket)."""
    return [
        codec.encode_request(Code.COA_REQUEST, k & 255, a, SECRET.encode(), message_authenticator=True)
        for k, a in enumerate(attrs)
    ]


def trivial_responder_main(port_out: Any, max_seconds: float) -> None:
    """A CoA responder that ACKs everything unread: the client's ceiling (runs in a child process)."""
    import hashlib

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    port_out.send(sock.getsockname()[1])
    secret = SECRET.encode()
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        hdr = bytes((Code.COA_ACK, data[1], 0, 20))
        sock.sendto(hdr + hashlib.md5(hdr + data[4:20] + secret).digest(), peer)


def asyncio_reactor() -> tuple[asyncio.AbstractEventLoop, Any]:
    """Twisted's asyncio reactor (billingd's), installed once; the loop is driven, never ``reactor.run()``."""
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor._asyncioEventloop, reactor  # type: ignore[attr-defined]


def coa_part(args: argparse.Namespace, tmp: Path, figures: Figures, notes: dict[str, str]) -> None:
    """Part 1: CoA round trips/s, ours vs radclient, against the BRAS simulator."""
    import multiprocessing

    from aaa.dictionary import load_dictionaries

    loop, reactor = asyncio_reactor()

    dictionary = load_dictionaries(DICTIONARIES, ())
    subs = tuple(Subscriber(USER_FORMAT % i, PASSWORD_FORMAT % i) for i in range(1, args.coa_sessions + 1))
    values = dict(subscribers=subs, secret=SECRET.encode(), coa_port=0, timeout=2.0, retries=2, workers=8)
    have_radclient = os.access(RADCLIENT, os.X_OK)
    if not have_radclient:
        notes["radclient"] = f"{RADCLIENT} not found: no reference figures"
    for label in ("simulator",):
        window = args.window
        sim = BrasProcess(values, own_radius=True)
        try:
            accepted, took = sim.login_all()
            sessions = sim.sessions()
            say(f"== CoA round trips, {label}: {accepted:,} sessions online in {took:.1f} s "
                f"(CoA on 127.0.0.1:{sim.coa_address[1]}, window {window})")  # fmt: skip
            port = sim.coa_address[1]
            # size each round from a probe, so a slow simulator still finishes in about --seconds
            probe = build_coa_requests(dictionary, sessions, 300)
            r = run_ours(loop, reactor, dictionary, port, probe, window, 30)
            n = int(min(args.max_requests, max(1000, r.rate * args.seconds * 1.3)))
            startup = radclient_startup(port, probe.radclient_text[0], tmp) if have_radclient else 0.0
            for round_ in range(args.repeat):
                reqs = build_coa_requests(dictionary, sessions, n, offset=(round_ + 1) * n)
                runs: list[tuple[str, CoaRun]] = []
                c0 = sim.stats()[2]
                ours = run_ours(loop, reactor, dictionary, port, reqs, window, args.seconds)
                ours.sim_cpu_s = sim.stats()[2] - c0
                runs.append(("ours", ours))
                if have_radclient:
                    c0 = sim.stats()[2]
                    ref = run_radclient(
                        port, reqs.radclient_text[: max(ours.sent, 200)], window, tmp, startup
                    )
                    ref.sim_cpu_s = sim.stats()[2] - c0
                    runs.append(("radclient", ref))
                c0 = sim.stats()[2]
                blast = raw_blaster(port, encode_all(reqs.attributes), window, args.seconds)
                blast.sim_cpu_s = sim.stats()[2] - c0
                runs.append(("raw blaster", blast))
                for who, run in runs:
                    say(f"  [{label}] round {round_ + 1}: {run.line()}")
                    figures.setdefault(f"{label}: {who} CoA/s", []).append(run.rate)
                    if run.sim_cpu_s and run.acked:
                        figures.setdefault(f"{label}: simulator µs/CoA ({who})", []).append(
                            1e6 * run.sim_cpu_s / run.acked
                        )
            if have_radclient:
                notes[f"radclient startup ({label})"] = (
                    f"{startup * 1000:.0f} ms (one-request run), subtracted"
                )
            stats = sim.stats()[0]
            notes[f"simulator counters ({label})"] = (
                f"coa acked {stats['coa_acked']:,}, naked {stats['coa_naked']:,}, "
                f"dropped {stats['coa_dropped']:,}, duplicates {stats['coa_duplicates']:,}"
            )
        finally:
            sim.close()
    # the client's own ceiling: a responder that ACKs without decoding, in another process
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    responder = ctx.Process(target=trivial_responder_main, args=(child, args.seconds * 4 + 60), daemon=True)
    responder.start()
    try:
        port = parent.recv()
        fake = [(f"S{i:08X}", USER_FORMAT % i, f"100.64.{i // 250}.{i % 250 + 1}") for i in range(1, 2001)]
        reqs = build_coa_requests(dictionary, fake, args.max_requests)
        for round_ in range(args.repeat):
            run = run_ours(loop, reactor, dictionary, port, reqs, args.window, args.seconds)
            run.who = "ours vs trivial responder (client ceiling)"
            say(f"  round {round_ + 1}: {run.line()}")
            figures.setdefault("client ceiling: ours CoA/s vs a trivial responder", []).append(run.rate)
    finally:
        responder.kill()
        responder.join(5)


# --------------------------------------------------------------------------- part 2: mass suspension


def prepare_debt(db: BenchDatabase) -> tuple[float, float, int]:
    """Every account into debt (-10.00), then the daily evaluation past the grace period.

    Returns (seconds for the debts, seconds for the suspension decisions, tasks written).
    """
    from sqlalchemy import func, select, text

    from billing import ledger, service_lifecycle
    from billing.audit import Actor
    from billing.books import book_account
    from billing.db.engine import session_factory
    from billing.db.lifecycle import ProvisioningTask
    from billing.ledger import Leg, TransactionRequest

    assert db.engine is not None
    sessions = session_factory(db.engine)
    with sessions.begin() as s:
        for code, name in (("non_payment", "Non-payment"), ("payment_received", "Payment received"),
                           ("customer_request", "Customer request")):  # fmt: skip
            s.execute(
                text(
                    "INSERT INTO dictionary_entries (kind, code, name, active, sort_order)"
                    " VALUES ('status_reason', :c, :n, true, 0) ON CONFLICT DO NOTHING"
                ),
                {"c": code, "n": name},
            )
        book = book_account(s, "adjustments", "EUR")
    started = perf()
    when = datetime.now(UTC) - timedelta(days=1)
    for first in range(1, db.n + 1, 5000):
        batch = [
            TransactionRequest(
                f"bench-debt:{i}", "adjustment", (Leg(i, Decimal(10)), Leg(book, Decimal(-10))), when
            )
            for i in range(first, min(db.n, first + 4999) + 1)
        ]
        with sessions.begin() as s:
            ledger.post_batch(s, batch)
    debt_s = perf() - started
    actor = Actor(None, "bench", None, "bench")
    rules = service_lifecycle.rules_for(UTC)
    as_of = datetime.now(UTC) + timedelta(days=7)
    started = perf()
    with sessions.begin() as s:
        report = service_lifecycle.evaluate_services(s, actor, as_of, rules)
    decide_s = perf() - started
    if report.failures:
        raise SystemExit(
            f"evaluation failed for {len(report.failures)} services, first: {report.failures[0]}"
        )
    with db.engine.connect() as conn:
        tasks = conn.execute(
            select(func.count())
            .select_from(ProvisioningTask)
            .where(ProvisioningTask.network == "walled_garden")
        ).scalar_one()
    return debt_s, decide_s, int(tasks)


def _count(db: BenchDatabase, sql: str) -> int:
    from sqlalchemy import text

    assert db.engine is not None
    with db.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def reset_tasks(db: BenchDatabase) -> None:
    """The same tasks pending again, their attempts and confirmations gone (a fresh round)."""
    from sqlalchemy import text

    assert db.engine is not None
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM provisioning_attempts"))
        conn.execute(text("DELETE FROM network_states"))
        conn.execute(
            text(
                "UPDATE provisioning_tasks SET state = 'pending', attempts = 0, claimed_by = NULL,"
                " lease_until = NULL, next_attempt_at = NULL, finished_at = NULL, outcome = NULL"
            )
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE provisioning_tasks"))
        conn.execute(text("VACUUM ANALYZE provisioning_attempts"))


@dataclass
class MassRun:
    workers: int
    tasks: int
    from_launch_s: float
    from_ready_s: float
    states: Counter[str]
    attempts: int
    tasks_with_attempt: int
    worker_cpu_s: float
    sim_cpu_s: float
    sim_coa_cpu_s: float
    pg_cpu_s: float

    @property
    def rate(self) -> float:
        return self.tasks / self.from_launch_s if self.from_launch_s > 0 else 0.0

    def line(self) -> str:
        s = self.from_launch_s
        return (
            f"{self.workers} worker(s): {self.tasks:,} tasks done in {s:.2f} s from launch "
            f"({self.from_ready_s:.2f} s from 'worker started') = {self.rate:,.0f} tasks/s; states "
            f"{dict(self.states)}; attempts {self.attempts:,} on {self.tasks_with_attempt:,} tasks; "
            f"cpu/s: workers {self.worker_cpu_s / s:.2f}, simulator {self.sim_cpu_s / s:.2f} "
            f"(CoA thread {self.sim_coa_cpu_s / s:.2f}), postgres {self.pg_cpu_s / s:.2f}"
        )


def run_workers(
    procs: Processes,
    config: Path,
    tmp: Path,
    db: BenchDatabase,
    sim: BrasProcess,
    k: int,
    limit_s: float,
    tag: str,
) -> MassRun:
    """Start ``k`` worker processes; wait until no task is pending or running; stop them."""
    n = _count(db, "SELECT count(*) FROM provisioning_tasks")
    _, sim0, coa0 = sim.stats()
    pg0 = _postgres_cpu_s()
    logs = [tmp / f"worker-{tag}-{j}.log" for j in range(k)]
    t0 = perf()
    workers = [
        procs.start(
            f"worker-{j}", [str(BILLINGD), "--config", str(config), "--role", "provisioning"], logs[j]
        )
        for j in range(k)
    ]
    ready_at: float | None = None
    finished_at = None
    cpu = [0.0] * k
    while perf() < t0 + limit_s:
        if ready_at is None and all(log.exists() and _WORKER_READY.search(log.read_bytes()) for log in logs):
            ready_at = perf()
        for j, w in enumerate(workers):
            if w.poll() is not None:
                raise SystemExit(f"worker {j} exited:\n" + logs[j].read_text(errors="replace")[-3000:])
            cpu[j] = _proc_cpu_s(w.pid)
        if _count(db, "SELECT count(*) FROM provisioning_tasks WHERE state IN ('pending', 'running')") == 0:
            finished_at = perf()
            break
        time.sleep(0.05)
    if finished_at is None:
        raise SystemExit(f"{k} worker(s): tasks not all finished within {limit_s:.0f} s")
    pg_cpu = _postgres_cpu_s() - pg0
    _, sim1, coa1 = sim.stats()
    for w in workers:
        procs.stop(w)
    from sqlalchemy import text

    assert db.engine is not None
    with db.engine.connect() as conn:
        states = Counter(
            dict(conn.execute(text("SELECT state, count(*) FROM provisioning_tasks GROUP BY state")).all())
        )
        attempts, with_attempt = conn.execute(
            text("SELECT count(*), count(DISTINCT task_id) FROM provisioning_attempts")
        ).one()
    return MassRun(
        k, n, finished_at - t0, finished_at - (ready_at or t0), states, int(attempts), int(with_attempt),
        sum(cpu), sim1 - sim0, coa1 - coa0, pg_cpu,
    )  # fmt: skip


def profile_worker(config: Path, db: BenchDatabase, sim: BrasProcess, tmp: Path, limit_s: float) -> str:
    """One in-process ProvisioningWorker (as billingd starts it) under cProfile, the DB calls timed.

    cProfile sees the reactor thread (CoA, planning, asyncio); claim / supersede / record run in
    the worker's DB threads, so they are timed by wrapping ``billing.provisioning_outbox``'s
    functions (wall time per call, summed). Returns the report text (also written to ``tmp``).
    """
    import cProfile
    import io
    import pstats

    from billing import provisioning_outbox as outbox
    from billing.config import load_config
    from billing.daemon import _provisioning_worker
    from billing.db.engine import make_engine

    reset_tasks(db)
    loop, reactor = asyncio_reactor()
    cfg = load_config(config)
    engine = make_engine(db.url, pool_size=cfg.database.pool_size, statement_timeout_ms=0)
    timings: dict[str, list[float]] = {}
    originals = {name: getattr(outbox, name) for name in ("claim", "supersede", "record")}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = perf()
            try:
                return fn(*a, **kw)
            finally:
                timings.setdefault(name, []).append(perf() - t)

        return wrapper

    for name, fn in originals.items():
        setattr(outbox, name, timed(name, fn))
    n = _count(db, "SELECT count(*) FROM provisioning_tasks")
    worker = _provisioning_worker(reactor, cfg, engine)
    _, sim0, coa0 = sim.stats()
    pg0 = _postgres_cpu_s()
    profiler = cProfile.Profile()

    async def until_done() -> float:
        t0 = perf()
        worker.start()
        while perf() < t0 + limit_s:
            left = await loop.run_in_executor(
                None,
                _count,
                db,
                "SELECT count(*) FROM provisioning_tasks WHERE state IN ('pending', 'running')",
            )
            if left == 0:
                return perf() - t0
            await asyncio.sleep(0.05)
        raise SystemExit(f"in-process worker: tasks not all finished within {limit_s:.0f} s")

    cpu0 = time.process_time()
    profiler.enable()
    try:
        took = loop.run_until_complete(until_done())
    finally:
        profiler.disable()
        cpu = time.process_time() - cpu0
        pg = _postgres_cpu_s() - pg0  # before the engine's backends exit and take their CPU time along
        loop.run_until_complete(worker.stop().asFuture(loop))
        for name, fn in originals.items():
            setattr(outbox, name, fn)
        engine.dispose()
    _, sim1, coa1 = sim.stats()
    lines = [
        f"in-process worker under cProfile: {n:,} tasks in {took:.2f} s = {n / took:,.0f} tasks/s"
        f" (profiling slows the reactor thread); cpu/s: this process {cpu / took:.2f},"
        f" simulator {(sim1 - sim0) / took:.2f} (CoA thread {(coa1 - coa0) / took:.2f}),"
        f" postgres {pg / took:.2f}",
    ]
    for name, values in timings.items():
        lines.append(
            f"  DB {name}: {len(values)} calls, {sum(values):.2f} s in all"
            f" ({100 * sum(values) / took:.0f}% of the wall time), median"
            f" {1000 * statistics.median(values):.1f} ms, max {1000 * max(values):.1f} ms"
        )
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    (tmp / "worker.prof.txt").write_text(out.getvalue())
    profiler.dump_stats(str(tmp / "worker.prof"))
    out2 = io.StringIO()
    pstats.Stats(profiler, stream=out2).sort_stats("tottime").print_stats(20)
    return "\n".join(lines) + "\n  reactor thread, by own time:\n" + out2.getvalue()


def mass_part(
    args: argparse.Namespace, tmp: Path, procs: Processes, figures: Figures, notes: dict[str, str]
) -> None:
    n = args.subscribers
    started = perf()
    db = BenchDatabase(args.pg_url, n, prefix="bench_provisioning", fund=False)
    sim: BrasProcess | None = None
    try:
        say(f"database {db.name}: {n:,} subscribers in {perf() - started:.1f} s")
        coa_port = _free_udp_port()
        worker_keys = "\n".join(f"{k} = {v}" for k, v in args.worker_setting)
        config = billingd_config(
            db.url,
            tmp,
            secret=SECRET,
            more=f"coa_port = {coa_port}\n\n[provisioning]\nworker = false\n{worker_keys}\n",
        )
        log = tmp / "billingd.log"
        radius = procs.start("billingd", [str(BILLINGD), "--config", str(config), "--role", "aaa"], log)
        deadline, found = perf() + 120, None
        while found is None and perf() < deadline and radius.poll() is None:
            time.sleep(0.05)
            found = _RADIUS_READY.search(log.read_bytes())
        if found is None:
            raise SystemExit("billingd did not start:\n" + log.read_text(errors="replace")[-3000:])
        subs = tuple(Subscriber(USER_FORMAT % i, PASSWORD_FORMAT % i) for i in range(1, n + 1))
        values = dict(subscribers=subs, secret=SECRET.encode(), auth_port=int(found[1]),
                      acct_port=int(found[2]), coa_port=coa_port, timeout=5.0, retries=3,
                      workers=16)  # fmt: skip
        sim = BrasProcess(values)
        accepted, took = sim.login_all()
        open_s = perf()
        while _count(db, "SELECT count(*) FROM radius_sessions WHERE status = 'open'") < accepted:
            if perf() - open_s > 120:
                raise SystemExit("billingd did not record every session within 120 s")
            time.sleep(0.2)
        notes["sessions online"] = (
            f"{accepted:,} of {n:,} via billingd's RADIUS in {took:.1f} s"
            f" (+{perf() - open_s:.1f} s until all open in the database)"
        )
        say(notes["sessions online"])
        debt_s, decide_s, tasks = prepare_debt(db)
        notes["suspension decisions"] = (
            f"{tasks:,} debt suspensions (walled garden) written by evaluate_services in one transaction in "
            f"{decide_s:.1f} s = {tasks / decide_s:,.0f}/s (debts posted before in {debt_s:.1f} s)"
        )
        say(notes["suspension decisions"])
        figures.setdefault("decisions written /s (evaluate_services)", []).append(tasks / decide_s)
        first = True
        for k, extra in args.workers:
            label = f"{k} worker process(es)" + (
                " " + " ".join(f"{a}={b}" for a, b in extra) if extra else ""
            )
            variant = config
            if extra:  # the config ends inside [provisioning]: appended keys land there
                variant = tmp / f"billing-{len(extra)}-{k}.toml"
                variant.write_text(config.read_text() + "".join(f"{a} = {b}\n" for a, b in extra))
            for round_ in range(args.repeat):
                if not first:
                    reset_tasks(db)
                first = False
                run = run_workers(procs, variant, tmp, db, sim, k, args.mass_limit_s, f"{k}-{round_}")
                say(f"  round {round_ + 1}: {label}: {run.line()}")
                figures.setdefault(f"{label}: s for all tasks, from launch", []).append(run.from_launch_s)
                figures.setdefault(f"{label}: s for all tasks, from ready", []).append(run.from_ready_s)
                figures.setdefault(f"{label}: tasks/s (from launch)", []).append(run.rate)
                if run.states != Counter(done=tasks) or run.tasks_with_attempt != tasks:
                    notes[f"{label}, round {round_ + 1}"] = (
                        f"NOT ALL DONE with an attempt: {dict(run.states)}"
                    )
        if args.profile:
            text_report = profile_worker(config, db, sim, tmp, args.mass_limit_s)
            print(text_report, flush=True)
            notes["profile"] = text_report.splitlines()[0]
        stats = sim.stats()[0]
        notes["simulator counters (part 2)"] = (
            f"coa acked {stats['coa_acked']:,}, naked {stats['coa_naked']:,},"
            f" duplicates {stats['coa_duplicates']:,}, dropped {stats['coa_dropped']:,}"
        )
        code = procs.stop(radius)
        text_log = "".join(p.read_text(errors="replace") for p in sorted(tmp.glob("*.log")))
        errors = [x for x in text_log.splitlines() if "Traceback" in x or " error" in x.lower()]
        notes["billingd"] = f"RADIUS exit {code}" + (
            f"; log errors {len(errors)}, first: {errors[0][:200]}" if errors else ""
        )
    finally:
        if sim is not None:
            sim.close()
        procs.stop_all()
        db.close()


# --------------------------------------------------------------------------- report, main


def report(figures: Figures, notes: dict[str, str], repeat: int, n: int) -> None:
    print()
    print(f"===== provisioning benchmark: medians of {repeat} round(s) =====")
    for k, v in notes.items():
        print(f"  {k}: {v}")
    print()
    if figures:
        width = max(len(k) for k in figures) + 2
        for k, values in figures.items():
            print(f"  {k:<{width}}{fmt(med(values)):>10}   (rounds: {', '.join(fmt(v) for v in values)})")
    print()
    for label in ("simulator",):
        ours, ref = med(figures.get(f"{label}: ours CoA/s")), med(figures.get(f"{label}: radclient CoA/s"))
        if ours and ref:
            print(f"  ratio ours / radclient ({label}): {ours / ref:.2f}x ({fmt(ours)} vs {fmt(ref)} CoA/s)")
    print("  goal (issue 6):")
    best = [(key, med(v)) for key, v in figures.items() if key.endswith("from launch")]
    for key, seconds in best:
        if seconds is None:
            continue
        scaled = seconds * GOAL_TASKS / n
        verdict = ("MET" if scaled <= GOAL_SECONDS else "MISSED") if n == GOAL_TASKS else "n/a"
        what = f"{seconds:.2f} s for {n:,}" + (
            "" if n == GOAL_TASKS else f" (~{scaled:.1f} s for {GOAL_TASKS:,})"
        )
        print(f"    [{verdict:>6}] {GOAL_TASKS:,} suspensions end to end <= {GOAL_SECONDS:.0f} s, "
              f"{key.rsplit(':', 1)[0]}: {what}")  # fmt: skip


def _setting(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pg-url", default=DEFAULT_ADMIN_URL, help="admin URL; a fresh database is made next to it"
    )
    ap.add_argument("--repeat", type=int, default=3, help="rounds per figure; the median is quoted")
    ap.add_argument(
        "--quick", action="store_true", help="a short smoke run (1 round, 2-s phases, 2,000 subscribers)"
    )
    ap.add_argument("--coa-sessions", type=int, default=2000, help="sessions online for the CoA round trips")
    ap.add_argument("--window", type=int, default=256, help="CoA-Requests in flight (ours and radclient -p)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each CoA phase")
    ap.add_argument("--max-requests", type=int, default=200_000, help="cap on CoA-Requests per phase")
    ap.add_argument(
        "--subscribers", type=int, default=GOAL_TASKS, help="subscribers suspended at once (part 2)"
    )
    ap.add_argument(
        "--workers",
        default="1,2,1+concurrency=1024+batch=1024",
        help="worker variants, comma-separated: processes, then +KEY=VALUE [provisioning] settings for"
        " that variant only (default: 1 and 2 processes with the shipped settings, 1 with larger batches)",
    )
    ap.add_argument("--mass-limit-s", type=float, default=300.0, help="give up a part-2 round after this")
    ap.add_argument("--worker-setting", type=_setting, action="append", default=[],
                    help="a [provisioning] key for the workers, KEY=VALUE (repeatable)")  # fmt: skip
    ap.add_argument("--profile", action="store_true",
                    help="part 2 once more: an in-process worker under cProfile, DB calls timed")  # fmt: skip
    ap.add_argument("--skip-coa", action="store_true", help="skip part 1 (CoA round trips)")
    ap.add_argument("--skip-mass", action="store_true", help="skip part 2 (mass suspension)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat, args.seconds = 1, 2.0
        args.subscribers = min(args.subscribers, 2000)
    args.workers = [
        (int(w.split("+")[0]), [_setting(kv) for kv in w.split("+")[1:]])
        for w in str(args.workers).split(",")
        if w
    ]
    tmp = Path(tempfile.mkdtemp(prefix="bench-provisioning-"))
    procs = Processes()
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures: Figures = {}
    notes: dict[str, str] = {}
    ok = False
    try:
        if not args.skip_mass:  # first: it forks the simulator before this process has a reactor
            mass_part(args, tmp, procs, figures, notes)
        if not args.skip_coa:
            coa_part(args, tmp, figures, notes)
        report(figures, notes, args.repeat, args.subscribers)
        print(f"\n  total run time {perf() - RUN_STARTED:.0f} s")
        ok = True
        return 0
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
