"""Payment API benchmark (issue 5): durable SOAP pays/s into ``billingd`` on PostgreSQL, and latency at 200/s.

Not a test: it prints figures (medians of ``--repeat`` runs) and their ratio to the issue's goals
(>= 500 pay/s; p99 <= 50 ms at 200 pay/s; the probe ceiling of spyne under twisted.web on this
kind of machine was 550-740 calls/s).

What a run does: a fresh PostgreSQL database next to ``--pg-url`` with ``--subscribers`` funded
accounts (``bench/radius_seed.py``), ``billingd`` started on it with the payment API on plain
HTTP (loopback, port 0) and one bank (``--role payments``, the payment API as a process of its own,
by default; ``--role all`` shares the process with the RADIUS server), then per phase:

- max: ``--clients`` closed-loop clients (each sends its next request when the last was answered)
  for ``--seconds``; pay/s = payments answered with a payment id / elapsed, p50/p99 latency;
- at fixed rates (``--rates``, default 200/s, the goal's, and 50/s): an open-loop schedule
  (request ``i`` due at ``start + i/rate``) for ``--rate-seconds``; a request's latency runs from
  when it was due, so a server (or client) falling behind shows in the figure instead of hiding it.

Every request is a SOAP ``Pay`` envelope built and signed before the phase (``billing.payment_auth``),
each with its own transaction id to a random account, POSTed with HTTP Basic credentials over
keep-alive connections (``http.client``) from ``--processes`` client processes with threads, so
the client is not the bottleneck (its CPU share is printed with each phase, as are billingd's
and PostgreSQL's). A payment is durable when answered: its transaction has committed. At the end
the payments in the database are counted against the answers and the ledger's invariants are
checked; billingd is stopped and the database dropped, also on error. The max phase with the
most clients also runs over the check/pay protocol (``/checkpay``; ``--no-checkpay`` skips it).

Usage::

    .venv/bin/python bench/payments.py [--repeat 3] [--quick] [--clients 8,32] [--no-checkpay]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import multiprocessing
import queue
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from radius import BILLINGD, Processes, _postgres_cpu_s, _proc_cpu_s, billingd_config, rss_mib
from radius_seed import DEFAULT_ADMIN_URL, BenchDatabase

from billing.payment_auth import amount_text, pay_fields, signature

TNS = "urn:isp-billing:payments:1"
BANK, PASSWORD, KEY = "benchbank", "bench-password", "bench-signing-key"
GOAL_PAY_PER_S = 500.0
GOAL_P99_MS = 50.0
GOAL_RATE = 200.0
ACCOUNT_FORMAT = "B%07d"  # radius_seed's account numbers
REQUEST_TIMEOUT_S = 30.0

perf = time.perf_counter
_READY = re.compile(rb"payment API listening on \S+: http (\d+) tls")


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """One pre-built HTTP request: method, path and body (SOAP envelope or empty for check/pay GET)."""

    method: str
    path: str
    body: bytes


def soap_pay(txn_id: str, account: str, amount: Decimal, ts: int, paid_at: str) -> Request:
    """A signed SOAP ``Pay`` envelope, as a bank's own SOAP stack would send it."""
    sign = signature(KEY, pay_fields(BANK, txn_id, account, amount, ts))
    fields = {"bank": BANK, "txn_id": txn_id, "account": account, "amount": amount_text(amount),
              "paid_at": paid_at, "timestamp": str(ts), "signature": sign}  # fmt: skip
    body = "".join(f"<p:{k}>{v}</p:{k}>" for k, v in fields.items())
    envelope = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        f'"http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="{TNS}"><soapenv:Body><p:Pay>{body}'
        "</p:Pay></soapenv:Body></soapenv:Envelope>"
    )
    return Request("POST", "/payments", envelope.encode())


def checkpay_pay(txn_id: str, account: str, amount: Decimal, ts: int, txn_date: str) -> Request:
    """A signed check/pay ``pay`` GET."""
    sign = signature(KEY, pay_fields(BANK, txn_id, account, amount, ts))
    query = urlencode({"command": "pay", "txn_id": txn_id, "account": account, "sum": amount_text(amount),
                       "txn_date": txn_date, "ts": ts, "sign": sign})  # fmt: skip
    return Request("GET", "/checkpay?" + query, b"")


def build(protocol: str, n: int, tag: str, accounts: int, rng: random.Random) -> list[Request]:
    """``n`` signed pay requests with distinct transaction ids ``tag-i`` to random accounts."""
    now = datetime.now(UTC)
    ts = int(now.timestamp())
    paid_at = (now - timedelta(seconds=10)).replace(microsecond=0)
    out = []
    for i in range(n):
        account = ACCOUNT_FORMAT % rng.randint(1, accounts)
        amount = Decimal(rng.randint(100, 10_000)) / 100
        if protocol == "soap":
            out.append(soap_pay(f"{tag}-{i}", account, amount, ts, paid_at.isoformat()))
        else:
            out.append(checkpay_pay(f"{tag}-{i}", account, amount, ts, paid_at.strftime("%Y%m%d%H%M%S")))
    return out


def answered_ok(protocol: str, status: int, body: bytes) -> bool:
    """Whether a reply is a payment answered with an id (SOAP ``payment_id``; check/pay result 0)."""
    if protocol == "soap":
        return status == 200 and b"payment_id>" in body
    return status == 200 and b"<result>0</result>" in body and b"<prv_txn>" in body


# --------------------------------------------------------------------------- client processes


@dataclass
class SliceResult:
    """What one client process measured."""

    ok: int = 0
    failed: int = 0
    errors: int = 0
    first_failure: str = ""
    latencies: list[float] = field(default_factory=list)
    first_sent: float = float("inf")
    last_done: float = 0.0
    cpu_s: float = 0.0


def run_slice(
    port: int,
    protocol: str,
    requests: list[Request],
    threads: int,
    start_at: float,
    deadline: float,
    due: list[float] | None,
) -> SliceResult:
    """In a client process: send ``requests`` from ``threads`` keep-alive connections.

    ``due`` None: closed loop, each thread sends its next request when the last was answered,
    until the requests or the time (``deadline``, wall clock) run out. Else request ``k`` is sent
    at ``due[k]`` (wall clock) by the first free thread, and its latency counts from then.
    """
    cpu_before = time.process_time()
    auth = "Basic " + base64.b64encode(f"{BANK}:{PASSWORD}".encode()).decode()
    result = SliceResult()
    lock = threading.Lock()
    cursor = iter(range(len(requests)))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        lat: list[float] = []
        ok = failed = errors = 0
        first = ""
        sent_min, done_max = float("inf"), 0.0
        while True:
            with lock:
                k = next(cursor, None)
            if k is None:
                break
            if due is not None:
                wait = due[k] - time.time()
                if wait > 0:
                    time.sleep(wait)
                began = due[k]
            else:
                began = time.time()
                if began >= deadline:
                    break
            req = requests[k]
            headers = {"Authorization": auth}
            if req.method == "POST":
                headers.update({"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Pay"'})
            sent = time.time()
            try:
                conn.request(req.method, req.path, body=req.body or None, headers=headers)
                response = conn.getresponse()
                body = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
                continue
            done = time.time()
            sent_min, done_max = min(sent_min, sent), max(done_max, done)
            if answered_ok(protocol, status, body):
                ok += 1
                lat.append(done - began)
            else:
                failed += 1
                first = first or f"HTTP {status}: {body[:300]!r}"
        conn.close()
        with lock:
            result.ok += ok
            result.failed += failed
            result.errors += errors
            result.latencies += lat
            result.first_failure = result.first_failure or first
            result.first_sent = min(result.first_sent, sent_min)
            result.last_done = max(result.last_done, done_max)

    wait = start_at - time.time()
    if wait > 0:
        time.sleep(wait)
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    result.cpu_s = time.process_time() - cpu_before
    return result


def _slice_to_queue(out: Any, *args: Any) -> None:
    """A client process's body: :func:`run_slice`, its result put on ``out``."""
    out.put(run_slice(*args))


class PhaseStuck(RuntimeError):
    """The clients of a phase did not all finish in time (the server stalled, or a client died)."""


@dataclass
class Phase:
    """One phase's figures."""

    name: str
    ok: int
    failed: int
    errors: int
    elapsed_s: float
    latencies: list[float]
    first_failure: str
    client_cpu_s: float
    server_cpu_s: float
    postgres_cpu_s: float

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def pct_ms(self, p: int) -> float | None:
        if len(self.latencies) < 2:
            return None
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000

    def line(self) -> str:
        # postgres: every postgres process on the machine; a backend of another user that exits
        # during the phase takes its CPU with it, so the figure is a rough one (n/a when negative)
        pg = f"{self.postgres_cpu_s / self.elapsed_s:.2f}" if self.postgres_cpu_s >= 0 else "n/a"
        cpu = (f"cpu/s: billingd {self.server_cpu_s / self.elapsed_s:.2f}, postgres {pg}, "
               f"client {self.client_cpu_s / self.elapsed_s:.2f}" if self.elapsed_s else "")  # fmt: skip
        fail = f"; FAILED {self.failed} errors {self.errors}: {self.first_failure[:200]}" if (
            self.failed or self.errors) else ""  # fmt: skip
        return (f"  {self.name}: {self.ok} ok in {self.elapsed_s:.2f} s = {self.rate:,.0f} pay/s; "
                f"ms p50 {fmt(self.pct_ms(50))} p99 {fmt(self.pct_ms(99))}; {cpu}{fail}")  # fmt: skip


def run_phase(
    name: str,
    port: int,
    protocol: str,
    requests: list[Request],
    *,
    processes: int,
    clients: int,
    seconds: float,
    rate: float | None,
    server_pids: Sequence[int],
) -> Phase:
    """Send ``requests`` from ``processes`` × (``clients`` / ``processes``) threads; see :func:`run_slice`."""
    start_at = time.time() + 1.0
    deadline = start_at + seconds
    slices = [requests[k::processes] for k in range(processes)]
    dues: list[list[float] | None] = [None] * processes
    if rate is not None:
        dues = [
            [start_at + (k + j * processes) / rate for j in range(len(slices[k]))] for k in range(processes)
        ]
    threads = max(1, clients // processes)
    server0, pg0 = _cpu_s(server_pids), _postgres_cpu_s()
    ctx = multiprocessing.get_context("fork")
    out: Any = ctx.Queue()
    workers = [
        ctx.Process(
            target=_slice_to_queue,
            args=(out, port, protocol, slices[k], threads, start_at, deadline, dues[k]),
            daemon=True,
        )
        for k in range(processes)
    ]
    for w in workers:
        w.start()
    results: list[SliceResult] = []
    try:
        # a client whose server stalls gives up after its request timeouts; past this, it is stuck
        limit = time.monotonic() + (deadline - time.time()) + REQUEST_TIMEOUT_S + 30
        while len(results) < processes:
            try:
                results.append(out.get(timeout=max(0.1, limit - time.monotonic())))
            except queue.Empty:
                alive = sum(w.is_alive() for w in workers)
                raise PhaseStuck(f"{name}: {processes - len(results)} client process(es) gave no result "
                                 f"({alive} still alive)") from None  # fmt: skip
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
            w.join(5)
    server_cpu, pg_cpu = _cpu_s(server_pids) - server0, _postgres_cpu_s() - pg0
    first = min(r.first_sent for r in results)
    last = max(r.last_done for r in results)
    return Phase(
        name=name,
        ok=sum(r.ok for r in results),
        failed=sum(r.failed for r in results),
        errors=sum(r.errors for r in results),
        elapsed_s=max(last - (start_at if rate is not None else first), 1e-9),
        latencies=[x for r in results for x in r.latencies],
        first_failure=next((r.first_failure for r in results if r.first_failure), ""),
        client_cpu_s=sum(r.cpu_s for r in results),
        server_cpu_s=server_cpu,
        postgres_cpu_s=pg_cpu,
    )


# --------------------------------------------------------------------------- billingd


def _cpu_s(pids: Sequence[int]) -> float:
    return sum(_proc_cpu_s(pid) for pid in pids)


def _rss(pids: Sequence[int]) -> float:
    return sum(rss_mib(pid) for pid in pids)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_billingd(
    procs: Processes, db_url: str, tmp: Path, threads: int, role: str, instances: int = 1
) -> tuple[int, float, list[int]]:
    """billingd with the payment API on 127.0.0.1: its HTTP port, time to ready, pids.

    ``instances`` > 1 starts that many ``billingd --role payments`` on one port (SO_REUSEPORT).
    """
    config = billingd_config(
        db_url,
        tmp,
        more=f"""
[payments]
listen_address = "127.0.0.1"
plain_http = true
http_port = {_free_port() if instances > 1 else 0}
threads = {threads}

[[payments.bank]]
code = "{BANK}"
name = "Bench Bank"
password = "{PASSWORD}"
signing_key = "{KEY}"
allow_from = ["127.0.0.1/32"]
""",
    )
    started = perf()
    pids, port = [], 0
    for k in range(instances):
        log = tmp / f"billingd-{k}.log"
        proc = procs.start("billingd", [str(BILLINGD), "--config", str(config), "--role", role], log)
        found = None
        while found is None and perf() < started + 120 and proc.poll() is None:
            time.sleep(0.02)
            found = _READY.search(log.read_bytes())
        if found is None:
            raise SystemExit(
                "billingd's payment API did not start:\n" + log.read_text(errors="replace")[-3000:]
            )
        pids.append(proc.pid)
        port = int(found[1])
    return port, perf() - started, pids


def checkpay_mounted(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/checkpay")
        return conn.getresponse().status != 404
    finally:
        conn.close()


# --------------------------------------------------------------------------- report


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def med(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def report(figures: dict[str, list[float | None]], extra: dict[str, str], repeat: int) -> None:
    print()
    print(f"===== payment API benchmark (billingd + PostgreSQL): medians of {repeat} run(s) =====")
    for k, v in extra.items():
        print(f"  {k}: {v}")
    print()
    width = max(len(k) for k in figures) + 2
    for k, values in figures.items():
        print(f"  {k:<{width}}{fmt(med(values)):>10}   (runs: {', '.join(fmt(v) for v in values)})")
    print()
    print("  goals (issue 5):")
    best_key = max((k for k in figures if k.startswith("SOAP pay/s")), key=lambda k: med(figures[k]) or 0)
    best = med(figures[best_key])
    verdict = "n/a" if best is None else ("MET" if best >= GOAL_PAY_PER_S else "MISSED")
    print(f"    [{verdict:>6}] SOAP pay >= {GOAL_PAY_PER_S:.0f}/s: {fmt(best)}/s ({best_key.split(', ')[-1]})"
          + (f" = {best / GOAL_PAY_PER_S:.2f}x the goal" if best else ""))  # fmt: skip
    p99 = med(figures.get(f"SOAP @{GOAL_RATE:.0f}/s p99 ms", []))
    got = med(figures.get(f"SOAP @{GOAL_RATE:.0f}/s achieved pay/s", []))
    ok = None if p99 is None else p99 <= GOAL_P99_MS and (got or 0) >= 0.98 * GOAL_RATE
    verdict = "n/a" if ok is None else ("MET" if ok else "MISSED")
    print(f"    [{verdict:>6}] p99 <= {GOAL_P99_MS:.0f} ms at {GOAL_RATE:.0f}/s: p99 {fmt(p99)} ms"
          + (f" = {p99 / GOAL_P99_MS:.2f} of the budget" if p99 is not None else "")
          + f", achieved {fmt(got)} pay/s")  # fmt: skip


def _activity(db: BenchDatabase) -> str:
    """What the bench database's sessions are doing (to tell a lock wait from an idle server)."""
    from sqlalchemy import text

    assert db.engine is not None
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 100)"
                " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    return "database sessions:\n" + "\n".join(f"  {tuple(r)}" for r in rows)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pg-url", default=DEFAULT_ADMIN_URL, help="admin URL; a fresh database is made next to it"
    )
    ap.add_argument("--subscribers", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is quoted")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each max-throughput phase")
    ap.add_argument("--rate-seconds", type=float, default=10.0, help="length of each fixed-rate phase")
    ap.add_argument("--clients", default="8,32", help="comma-separated concurrent clients of the max phases")
    ap.add_argument("--processes", type=int, default=2, help="client processes (threads split among them)")
    ap.add_argument(
        "--threads", type=int, default=20, help="billingd's payment thread pool ([payments] threads)"
    )
    ap.add_argument(
        "--rates", default="200,50", help="fixed offered rates (pay/s); the goal is judged at 200"
    )
    ap.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="billingd --role payments processes sharing the port (SO_REUSEPORT); more than 1 needs"
        " --role payments",
    )
    ap.add_argument(
        "--role",
        choices=("payments", "all"),
        default="payments",
        help="billingd --role: the payment API alone (default), or with the RADIUS server in one process",
    )
    ap.add_argument("--no-checkpay", action="store_true", help="skip the check/pay max phase")
    ap.add_argument("--quick", action="store_true", help="a short smoke run (1 repeat, 3-s phases)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat, args.seconds, args.rate_seconds = 1, 3.0, 3.0
    clients = [int(c) for c in args.clients.split(",") if c]
    rates = [float(r) for r in args.rates.split(",") if r]

    run_started = perf()
    procs = Processes()
    db: BenchDatabase | None = None
    tmp = Path(tempfile.mkdtemp(prefix="bench-payments-"))
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    extra: dict[str, str] = {}
    figures: dict[str, list[float | None]] = {}
    rng = random.Random(5)
    ok = False
    try:
        started = perf()
        db = BenchDatabase(args.pg_url, args.subscribers, prefix="bench_payments")
        extra["seeding"] = f"{args.subscribers:,} funded accounts in {perf() - started:.1f} s"
        print(f"database {db.name}: {extra['seeding']}", flush=True)
        if args.api_processes > 1 and args.role != "payments":
            raise SystemExit("--api-processes > 1 needs --role payments")
        port, ready_s, pids = start_billingd(procs, db.url, tmp, args.threads, args.role, args.api_processes)
        rss_ready = _rss(pids)
        extra["billingd"] = (
            f"{args.api_processes} x --role {args.role}, ready in {ready_s:.2f} s,"
            f" payment thread pool {args.threads}"
        )
        print(f"billingd ready in {ready_s:.2f} s on port {port}", flush=True)
        protocols = ["soap"]
        if not args.no_checkpay:
            if checkpay_mounted(port):
                protocols.append("checkpay")
            else:
                extra["check/pay"] = "not measured: this billingd does not mount /checkpay"
        answered = 0
        warm_up = build("soap", 400, "warm", args.subscribers, rng)
        warm = run_phase(
            "warm-up", port, "soap", warm_up, processes=args.processes, clients=8, seconds=30, rate=None,
            server_pids=pids,
        )  # fmt: skip
        print(warm.line(), flush=True)
        answered += warm.ok
        for run in range(1, args.repeat + 1):
            print(f"run {run}/{args.repeat}", flush=True)
            for protocol in protocols:
                label = "SOAP" if protocol == "soap" else "check/pay"
                for c in clients if protocol == "soap" else clients[-1:]:
                    n = int(args.seconds * 1500) + 100
                    reqs = build(protocol, n, f"r{run}-{protocol}-max{c}", args.subscribers, rng)
                    phase = run_phase(f"{label} max, {c} clients", port, protocol, reqs,
                                      processes=args.processes, clients=c, seconds=args.seconds, rate=None,
                                      server_pids=pids)  # fmt: skip
                    print(phase.line(), flush=True)
                    answered += phase.ok
                    figures.setdefault(f"{label} pay/s, {c} clients", []).append(phase.rate)
                    figures.setdefault(f"{label} max ({c} clients) p50 ms", []).append(phase.pct_ms(50))
                    figures.setdefault(f"{label} max ({c} clients) p99 ms", []).append(phase.pct_ms(99))
            for k, rate in enumerate(rates):
                n = int(args.rate_seconds * rate)
                reqs = build("soap", n, f"r{run}-rate{k}-{rate:.0f}", args.subscribers, rng)
                phase = run_phase(f"SOAP @{rate:.0f}/s", port, "soap", reqs, processes=args.processes,
                                  clients=32, seconds=args.rate_seconds + 60, rate=rate,
                                  server_pids=pids)  # fmt: skip
                print(phase.line() + f"; billingd RSS {_rss(pids):.0f} MiB", flush=True)
                answered += phase.ok
                figures.setdefault(f"SOAP @{rate:.0f}/s achieved pay/s", []).append(phase.rate)
                figures.setdefault(f"SOAP @{rate:.0f}/s p50 ms", []).append(phase.pct_ms(50))
                figures.setdefault(f"SOAP @{rate:.0f}/s p99 ms", []).append(phase.pct_ms(99))

        extra["billingd RSS"] = f"{rss_ready:.0f} MiB when ready, {_rss(pids):.0f} MiB after the load"
        assert db.engine is not None
        from sqlalchemy import text
        from sqlalchemy.orm import Session

        from billing.invariants import check_ledger

        with db.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM payments WHERE source = :b"), {"b": BANK}
            ).scalar()
        extra["durability"] = (f"{stored:,} payments stored for {answered:,} answered with an id"
                               + ("" if stored == answered else "  <-- MISMATCH"))  # fmt: skip
        with Session(db.engine) as s:
            violations = check_ledger(s)
        extra["ledger invariants"] = "hold" if not violations else f"BROKEN: {violations[:3]}"
        codes = [procs.stop(p) for name, p in procs.started if name == "billingd"]
        log = "".join(path.read_text(errors="replace") for path in sorted(tmp.glob("billingd-*.log")))
        errors = [line for line in log.splitlines() if "error" in line.lower() or "Traceback" in line]
        extra["billingd stop"] = f"exit {', '.join(map(str, codes))}" + (
            f"; log errors {len(errors)}, first: {errors[0][:200]}" if errors else "")  # fmt: skip
        report(figures, extra, args.repeat)
        print(f"\n  total run time {perf() - run_started:.0f} s")
        ok = True
        return 0
    except PhaseStuck as exc:
        print(f"STUCK: {exc}", file=sys.stderr)
        print(
            f"billingd alive: {procs.started[0][1].poll() is None if procs.started else '?'}", file=sys.stderr
        )
        if db is not None:
            print(_activity(db), file=sys.stderr)
        log = tmp / "billingd-0.log"
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print("billingd log, last lines:\n" + "\n".join(tail), file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if db is not None:
            db.close()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
