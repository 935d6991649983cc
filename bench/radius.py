"""RADIUS benchmark (issue 3): ``billingd`` against FreeRADIUS + PostgreSQL, same generator, same run.

Not a test: it prints figures (medians of ``--repeat`` runs), the ratio billingd / FreeRADIUS and
the issue's goals (auth >= 10x FreeRADIUS+SQL, durable accounting >= 5x, p99 <= 5 ms at 5,000/s).

The generator (``Target``, ``run_phase``) talks to ANY RADIUS server (host, ports, secret, user
and password patterns): every request datagram is built and signed in advance with ``aaa.codec``
(Access-Request PAP with Message-Authenticator; Accounting-Request Start then Interim-Update for
the same sessions), the Identifier of request ``i`` is ``i % 256``, and one non-blocking UDP
socket keeps a window of requests in flight (at most 256), or sends at a fixed rate.  Every reply
is decoded and its Response Authenticator and, when present, Message-Authenticator verified with
``aaa.codec``; a request with no valid reply after ``--timeout`` counts as lost (its Identifier is
then held back one more timeout so a late reply cannot be mistaken for the next request's).  Its
own ceiling is measured against a trivial responder (``radius.py echo``, a separate process).

What a run does: a fresh database with ``--subscribers`` funded PPPoE subscribers
(``bench/radius_seed.py``), the snapshot load time (``aaa.snapshot.load_snapshot`` in this
process), ``billingd`` started on ports 0 (time to ready, RSS from /proc), then per target:
Access-Request max req/s, accounting Start / Interim max req/s (billingd answers accounting only
once it is durable), and latency at fixed rates.  FreeRADIUS runs if installed as in
../shared/bench/freeradius (``setup.sh``); otherwise the figures of its reference file are used
and labelled so.  Everything is on loopback, bounded in count and time; every process started is
stopped and the database dropped at the end, also on error.  Usage:

    .venv/bin/python bench/radius.py [--repeat 3] [--quick] [--no-freeradius] [--seconds 8]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import ipaddress
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aaa import codec
from aaa.codec import Code, RadiusPacket

sys.path.insert(0, str(Path(__file__).resolve().parent))
from radius_seed import DEFAULT_ADMIN_URL, PASSWORD_FORMAT, USER_FORMAT, BenchDatabase

REPO = Path(__file__).resolve().parents[1]
BILLINGD = REPO / ".venv" / "bin" / "billingd"
DICTIONARIES = REPO / "conf" / "dictionaries"
SECRET = "bench-secret-123"

FR_CONFIG = Path("/etc/freeradius/anchor-sql")
FR_SECRET = "anchor-secret-123"
FR_USERS = 10_000
FR_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "freeradius"
# Medians of reference-2026-11-25.md (FreeRADIUS 3.2.1 + PostgreSQL 15, this kind of machine).
FR_REFERENCE_FIGURES = {
    "auth max req/s": 1696.0,
    "acct-start max req/s": 2137.0,
    "acct-interim max req/s": 2393.0,
    "auth @800/s p50 ms": 1.20,
    "auth @800/s p99 ms": 3.19,
}

GOAL_AUTH_RATIO = 10.0
GOAL_ACCT_RATIO = 5.0
GOAL_P99_MS = 5.0
GOAL_RATE = 5000.0

perf = time.perf_counter
RUN_STARTED = perf()
FREE = -1
HELD = -2  # an Identifier whose request timed out, held back until a late reply can no longer come


# --------------------------------------------------------------------------- request building


@dataclass(frozen=True)
class Target:
    """A RADIUS server to load: where, its secret, and how its subscribers are named."""

    name: str
    host: str
    auth_port: int
    acct_port: int
    secret: bytes
    users: int
    user_format: str
    password_format: str
    pid: int | None = None  # for CPU figures (the server process; threads included)


def _u32(value: int) -> bytes:
    return struct.pack("!I", value & 0xFFFFFFFF)


def _mac(i: int) -> bytes:
    return ("02-00-" + "-".join(f"{(i >> s) & 255:02X}" for s in (24, 16, 8, 0))).encode()


_NAS_IP = socket.inet_aton("127.0.0.1")
_NAS_ID = b"bras-bench"
_POOL = int(ipaddress.IPv4Address("100.64.0.0"))


@dataclass
class Requests:
    """Pre-built datagrams and, per request, what verifying its reply needs."""

    kind: str  # auth | acct-start | acct-interim
    datagrams: list[bytes]
    headers: list[RadiusPacket]  # code, identifier, authenticator (no attributes, no raw)

    def __len__(self) -> int:
        return len(self.datagrams)


def build_requests(target: Target, kind: str, n: int, first: int, tag: str) -> Requests:
    """Requests ``first .. first+n-1``; the k-th has Identifier ``k % 256``.

    ``auth``: PAP Access-Request with Message-Authenticator for user ``i % users + 1``.
    ``acct-start`` / ``acct-interim``: session ``tag + i`` of the same user.
    """
    secret = target.secret
    datagrams: list[bytes] = []
    headers: list[RadiusPacket] = []
    now = _u32(int(time.time()))
    for i in range(first, first + n):
        u = i % target.users + 1
        ident = (i - first) & 255  # run_phase sends the k-th datagram with Identifier k % 256
        user = (target.user_format % u).encode()
        common = [(4, _NAS_IP), (5, _u32(i)), (61, _u32(15)), (6, _u32(2)), (7, _u32(1)),
                  (31, _mac(i)), (30, _NAS_ID), (32, _NAS_ID)]  # fmt: skip
        if kind == "auth":
            authenticator = codec.new_authenticator()
            password = codec.encrypt_user_password(
                (target.password_format % u).encode(), secret, authenticator
            )
            raw = codec.encode_request(
                Code.ACCESS_REQUEST, ident, [(1, user), (2, password), *common], secret,
                authenticator=authenticator, message_authenticator=True,
            )  # fmt: skip
        else:
            interim = kind == "acct-interim"
            attrs = [(1, user), (40, _u32(3 if interim else 1)), (44, f"{tag}{i:08X}".encode()), *common,
                     (8, _u32(_POOL + u)), (45, _u32(1)), (41, _u32(0)), (55, now)]  # fmt: skip
            if interim:
                attrs += [(46, _u32(300)), (42, _u32(1_000_000 + i)), (43, _u32(5_000_000 + i)),
                          (47, _u32(1000)), (48, _u32(4000))]  # fmt: skip
            raw = codec.encode_request(Code.ACCOUNTING_REQUEST, ident, attrs, secret)
        datagrams.append(raw)
        headers.append(RadiusPacket(raw[0], ident, raw[4:20]))
    return Requests(kind, datagrams, headers)


# --------------------------------------------------------------------------- the send/receive loop


@dataclass
class PhaseResult:
    """What one phase measured."""

    target: str
    kind: str
    window: int
    rate: float
    sent: int = 0
    ok: int = 0
    rejected: int = 0
    other_code: int = 0
    bad_reply: int = 0  # malformed, wrong Response Authenticator or wrong Message-Authenticator
    unsigned: int = 0  # Access-Accept/Reject without Message-Authenticator (verified otherwise)
    late: int = 0  # replies for no request in flight (after the timeout, or duplicates)
    lost: int = 0
    id_stalls: int = 0  # requests that waited because their Identifier was still in flight / held
    elapsed_s: float = 0.0
    hit_time_limit: bool = False
    latencies: list[float] = field(default_factory=list, repr=False)
    server_cpu_s: float | None = None
    postgres_cpu_s: float | None = None
    generator_cpu_s: float = 0.0

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / max(self.sent, 1)

    def pct_ms(self, p: float) -> float | None:
        lat = self.latencies
        if not lat:
            return None
        return 1000.0 * lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))]

    def line(self) -> str:
        what = f"@{self.rate:.0f}/s" if self.rate else f"window {self.window}"
        cpu = ""
        if self.server_cpu_s is not None and self.elapsed_s > 0:
            cpu = f", server {100 * self.server_cpu_s / self.elapsed_s:.0f}% core"
            if self.ok:
                cpu += f" ({1e6 * self.server_cpu_s / self.ok:.0f} µs/req)"
        if self.postgres_cpu_s is not None and self.elapsed_s > 0:
            cpu += f", PostgreSQL {100 * self.postgres_cpu_s / self.elapsed_s:.0f}% core"
        cpu += f", generator {100 * self.generator_cpu_s / max(self.elapsed_s, 1e-9):.0f}% core"
        pcts = " ".join(
            f"{name} {v:.2f}" for name, p in (("p50", 50), ("p99", 99), ("p99.9", 99.9))
            if (v := self.pct_ms(p)) is not None
        )  # fmt: skip
        flags = []
        for name in ("rejected", "other_code", "bad_reply", "unsigned", "late", "id_stalls"):
            if getattr(self, name):
                flags.append(f"{name} {getattr(self, name)}")
        if self.hit_time_limit:
            flags.append("TIME LIMIT HIT")
        return (
            f"{perf() - RUN_STARTED:6.1f}s [{self.target}] {self.kind:<12} {what:<11} "
            f"{self.ok}/{self.sent} ok in {self.elapsed_s:.2f}s "
            f"= {self.throughput:,.0f} req/s, lost {self.lost} ({self.loss_pct:.2f}%); ms {pcts}{cpu}"
            + (f"; {', '.join(flags)}" if flags else "")
        )


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s() -> float:
    """CPU seconds of every process named postgres (backends and background, any database)."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if b"(postgres)" in data[:64]:
            fields = data[data.rfind(b")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_phase(
    target: Target,
    requests: Requests,
    *,
    window: int,
    rate: float = 0.0,
    timeout: float = 2.0,
    max_seconds: float = 60.0,
    measure: bool = True,
) -> PhaseResult:
    """Send ``requests`` over one socket: at most ``window`` in flight, at ``rate``/s if given."""
    window = max(1, min(window, 256))
    port = target.auth_port if requests.kind == "auth" else target.acct_port
    expect = Code.ACCESS_ACCEPT if requests.kind == "auth" else Code.ACCOUNTING_RESPONSE
    is_auth = requests.kind == "auth"
    res = PhaseResult(target.name, requests.kind, window, rate)
    datagrams, headers, secret = requests.datagrams, requests.headers, target.secret
    n = len(datagrams)
    decode, verify_ra, verify_ma = (
        codec.decode, codec.verify_response_authenticator, codec.verify_message_authenticator
    )  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.connect((target.host, port))
    sock.setblocking(False)
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    send, recv = sock.send, sock.recv
    slots = [FREE] * 256  # Identifier -> index of the request in flight, FREE or HELD
    held: list[tuple[float, int]] = []  # (release time, identifier)
    sent_at = [0.0] * n
    lat = res.latencies
    inflight = nxt = 0
    stalled = -1
    cpu0 = _proc_cpu_s(target.pid) if (measure and target.pid) else None
    pg0 = _postgres_cpu_s() if measure else None
    gen0 = os.times()
    t0 = perf()
    deadline = t0 + max_seconds
    last = t0
    next_scan = t0 + 0.05
    try:
        while True:
            now = perf()
            if now >= deadline:
                res.hit_time_limit = True
                break
            if nxt < n and inflight < window:  # ---- send
                limit = n
                if rate:
                    due = int((now - t0) * rate) + 1
                    limit = due if due < n else n
                while nxt < limit and inflight < window:
                    ident = nxt & 255
                    if slots[ident] != FREE:
                        if stalled != nxt:
                            stalled = nxt
                            res.id_stalls += 1
                        break
                    try:
                        send(datagrams[nxt])
                    except BlockingIOError:
                        break
                    except ConnectionRefusedError:  # an ICMP error of an earlier datagram
                        continue
                    sent_at[nxt] = perf()
                    slots[ident] = nxt
                    nxt += 1
                    inflight += 1
            if inflight == 0 and nxt >= n:
                break
            if rate and nxt < n and inflight < window:
                wait = t0 + nxt / rate - perf()
                wait = 0.0 if wait < 0 else min(wait, 0.01)
            else:
                wait = 0.01
            if ep.poll(wait):  # ---- receive
                while True:
                    try:
                        data = recv(4096)
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionRefusedError:
                        continue
                    t_recv = perf()
                    if len(data) < 20 or slots[data[1]] < 0:
                        res.late += 1
                        continue
                    ident = data[1]
                    seq = slots[ident]
                    slots[ident] = FREE
                    inflight -= 1
                    request = headers[seq]
                    try:
                        reply = decode(data)
                    except codec.MalformedPacket:
                        res.bad_reply += 1
                        continue
                    if not verify_ra(reply, request, secret):
                        res.bad_reply += 1
                        continue
                    if reply.has_message_authenticator:
                        if not verify_ma(reply, secret, request):
                            res.bad_reply += 1
                            continue
                    elif is_auth:
                        res.unsigned += 1
                    code = reply.code
                    if code == expect:
                        res.ok += 1
                        lat.append(t_recv - sent_at[seq])
                    elif code == Code.ACCESS_REJECT:
                        res.rejected += 1
                    else:
                        res.other_code += 1
                    last = t_recv
            now = perf()
            if now >= next_scan:  # ---- timeouts
                next_scan = now + 0.05
                oldest = now - timeout
                for ident in range(256):
                    seq = slots[ident]
                    if seq >= 0 and sent_at[seq] < oldest:
                        slots[ident] = HELD
                        held.append((now + timeout, ident))
                        inflight -= 1
                        res.lost += 1
                if held:
                    keep = []
                    for release, ident in held:
                        if release <= now:
                            slots[ident] = FREE
                        else:
                            keep.append((release, ident))
                    held = keep
    finally:
        ep.close()
        sock.close()
    res.lost += sum(1 for s in slots if s >= 0)
    res.sent = nxt
    res.elapsed_s = max(last - t0, 1e-9)
    gen1 = os.times()
    res.generator_cpu_s = (gen1.user - gen0.user) + (gen1.system - gen0.system)
    if cpu0 is not None and target.pid:
        with contextlib.suppress(OSError):
            res.server_cpu_s = _proc_cpu_s(target.pid) - cpu0
    if pg0 is not None:
        res.postgres_cpu_s = max(0.0, _postgres_cpu_s() - pg0)  # a backend that exits takes its time
    lat.sort()
    return res


# --------------------------------------------------------------------------- the trivial responder


def echo_main(secret: bytes, max_seconds: float, max_packets: int) -> None:
    """Answer every request with a valid empty Accept / Accounting-Response (Access: signed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    print(f"ECHO PORT {sock.getsockname()[1]}", flush=True)
    md5, hmac_digest, pack = hashlib.md5, hmac.digest, struct.pack
    zero = bytes(16)
    deadline = time.monotonic() + max_seconds
    served = 0
    while served < max_packets:
        try:
            data, addr = sock.recvfrom(4096)
        except TimeoutError:
            if time.monotonic() > deadline:
                break
            continue
        if len(data) < 20:
            continue
        req_auth = data[4:20]
        if data[0] == Code.ACCESS_REQUEST:
            hdr = pack("!BBH", Code.ACCESS_ACCEPT, data[1], 38)
            mac = hmac_digest(secret, hdr + req_auth + b"\x50\x12" + zero, "md5")
            body = b"\x50\x12" + mac
        else:
            hdr = pack("!BBH", Code.ACCOUNTING_RESPONSE, data[1], 20)
            body = b""
        sock.sendto(hdr + md5(hdr + req_auth + body + secret).digest() + body, addr)
        served += 1
        if not served & 0xFFFF and time.monotonic() > deadline:
            break


# --------------------------------------------------------------------------- processes


class Processes:
    """Every process this run starts; :meth:`stop_all` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log: Path | None = None) -> subprocess.Popen[bytes]:
        out = log.open("wb") if log else subprocess.PIPE
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT if log else None)
        self.started.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], wait_s: float = 30.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for _name, proc in reversed(self.started):
            self.stop(proc)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


_READY = re.compile(rb"RADIUS listening on \S+ auth (\d+) acct (\d+) metrics (\d+)")


def billingd_config(db_url: str, tmp: Path, *, secret: str = SECRET, more: str = "") -> Path:
    """A billingd config for a bench: RADIUS on free ports, one NAS on loopback, then ``more``."""
    config = tmp / "billing.toml"
    config.write_text(
        f"""
[isp]
name = "Bench ISP"
currency = "EUR"
time_zone = "Europe/Berlin"

[database]
url = "{db_url}"

[logging]
level = "info"

[aaa]
auth_port = 0
acct_port = 0
metrics_port = 0
dictionary_dir = "{DICTIONARIES}"
journal_dir = "{tmp / "journal"}"

[[aaa.nas]]
name = "bench"
address = "127.0.0.1"
secret = "{secret}"
vendor = "mikrotik"
{more}""",
        encoding="utf-8",
    )
    return config


def start_billingd(
    procs: Processes, db_url: str, tmp: Path, users: int
) -> tuple[Target, float, subprocess.Popen[bytes]]:
    config = billingd_config(db_url, tmp)
    log = tmp / "billingd.log"
    started = perf()
    proc = procs.start("billingd", [str(BILLINGD), "--config", str(config)], log)
    deadline = started + 120
    found = None
    while found is None and perf() < deadline and proc.poll() is None:
        time.sleep(0.02)
        found = _READY.search(log.read_bytes())
    if found is None:
        raise SystemExit("billingd did not start:\n" + log.read_text(errors="replace")[-3000:])
    ready_s = perf() - started
    target = Target("billingd", "127.0.0.1", int(found[1]), int(found[2]), SECRET.encode(), users,
                    USER_FORMAT, PASSWORD_FORMAT, proc.pid)  # fmt: skip
    return target, ready_s, proc


def freeradius_available() -> str | None:
    """None if FreeRADIUS is set up as in ../shared/bench/freeradius, else why not."""
    if shutil.which("freeradius") is None:
        return "`freeradius` is not installed"
    if not (FR_CONFIG / "radiusd.conf").exists():
        return f"{FR_CONFIG} does not exist"
    return None


def _udp_port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def freeradius_config(tmp: Path) -> tuple[Path, int, int]:
    """The reference config dir if 127.0.0.1:1812/1813 are free; else a copy in ``tmp`` whose
    only changes are its ``raddbdir`` and two free ports (someone else's server holds 1812)."""
    if not (_udp_port_busy(1812) or _udp_port_busy(1813)):
        return FR_CONFIG, 1812, 1813
    auth, acct = _free_udp_port(), _free_udp_port()
    copy = tmp / "freeradius-anchor-sql"
    subprocess.run(["cp", "-a", str(FR_CONFIG), str(copy)], check=True, timeout=60)
    tmp.chmod(0o755)  # FreeRADIUS drops to the freerad user
    conf = copy / "radiusd.conf"
    conf.write_text(conf.read_text().replace(f"raddbdir = {FR_CONFIG}", f"raddbdir = {copy}"))
    site = copy / "sites-available" / "anchor"
    site.write_text(
        site.read_text().replace("port = 1812", f"port = {auth}").replace("port = 1813", f"port = {acct}")
    )
    print(f"127.0.0.1:1812/1813 are in use by another process: FreeRADIUS runs from a copy of {FR_CONFIG} "
          f"on ports {auth}/{acct} (nothing else changed)", flush=True)  # fmt: skip
    return copy, auth, acct


def start_freeradius(procs: Processes, tmp: Path) -> tuple[Target, subprocess.Popen[bytes]]:
    config, auth, acct = freeradius_config(tmp)
    log = tmp / "freeradius.log"
    proc = procs.start("freeradius", ["freeradius", "-f", "-d", str(config)], log)
    target = Target("FreeRADIUS+SQL", "127.0.0.1", auth, acct, FR_SECRET.encode(), FR_USERS,
                    "user%05d", "pw%05d", proc.pid)  # fmt: skip
    probe = build_requests(target, "auth", 1, 0, "")
    deadline = perf() + 30
    while perf() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("freeradius exited:\n" + log.read_text(errors="replace")[-3000:])
        r = run_phase(target, probe, window=1, timeout=0.5, max_seconds=1.0, measure=False)
        if r.ok:
            return target, proc
        time.sleep(0.2)
    raise RuntimeError("freeradius did not answer within 30 s:\n" + log.read_text(errors="replace")[-3000:])


# --------------------------------------------------------------------------- scenarios


@dataclass
class Plan:
    repeat: int
    seconds: float  # per max-throughput phase
    rate_seconds: float  # per fixed-rate phase
    rates: tuple[float, ...]
    window: int
    timeout: float
    max_requests: int


def _tag() -> str:
    return os.urandom(3).hex()


def _sized(target: Target, kind: str, plan: Plan, tag: str) -> int:
    """Probe (also the warm-up): 2,000 unmeasured requests; size the phase to ``plan.seconds``."""
    probe = build_requests(target, kind, 2000, 50_000_000, tag)
    r = run_phase(target, probe, window=plan.window, timeout=plan.timeout, max_seconds=30, measure=False)
    return int(min(plan.max_requests, max(3000, r.throughput * plan.seconds * 1.1)))


def auth_max(target: Target, plan: Plan) -> list[PhaseResult]:
    n = _sized(target, "auth", plan, _tag())
    reqs = build_requests(target, "auth", n, 0, "")
    return [
        run_phase(target, reqs, window=plan.window, timeout=plan.timeout, max_seconds=plan.seconds * 3 + 5)
    ]


def acct_max(target: Target, plan: Plan) -> list[PhaseResult]:
    tag = _tag()
    n = _sized(target, "acct-start", plan, tag)
    out = []
    for kind in ("acct-start", "acct-interim"):
        reqs = build_requests(target, kind, n, 0, tag)
        out.append(run_phase(target, reqs, window=plan.window, timeout=plan.timeout,
                             max_seconds=plan.seconds * 3 + 5))  # fmt: skip
    return out


def at_rate(target: Target, plan: Plan, rate: float, kinds: Sequence[str]) -> list[PhaseResult]:
    tag = _tag()
    n = int(rate * plan.rate_seconds)
    out = []
    for kind in kinds:
        reqs = build_requests(target, kind, n, 0, tag if kind != "auth" else "")
        out.append(run_phase(target, reqs, window=256, rate=rate, timeout=plan.timeout,
                             max_seconds=plan.rate_seconds * 3 + 5))  # fmt: skip
    return out


Figures = dict[str, list[float]]


def _record(figs: Figures, key: str, value: float | None) -> None:
    if value is not None:
        figs.setdefault(key, []).append(value)


def measure_target(target: Target, plan: Plan, figs: Figures) -> None:
    """All scenarios, ``plan.repeat`` times; raw per-phase lines are printed as they come."""
    print(f"== {target.name} ({target.host} auth {target.auth_port} acct {target.acct_port})", flush=True)
    scenarios: list[tuple[str, Callable[[], list[PhaseResult]]]] = [
        ("max auth", lambda: auth_max(target, plan)),
        ("max acct", lambda: acct_max(target, plan)),
    ]
    for rate in plan.rates:
        scenarios.append(
            (f"auth @{rate:.0f}", lambda rate=rate: at_rate(target, plan, rate, ("auth",)))  # type: ignore[misc]
        )
        scenarios.append(
            (
                f"acct @{rate:.0f}",
                lambda rate=rate: at_rate(target, plan, rate, ("acct-start", "acct-interim")),
            )  # type: ignore[misc]
        )
    for _name, scenario in scenarios:
        for _ in range(plan.repeat):
            for r in scenario():
                print(r.line(), flush=True)
                if r.rate:
                    base = f"{r.kind} @{r.rate:.0f}/s"
                    _record(figs, f"{base} achieved req/s", r.throughput)
                    _record(figs, f"{base} p50 ms", r.pct_ms(50))
                    _record(figs, f"{base} p99 ms", r.pct_ms(99))
                    _record(figs, f"{base} p99.9 ms", r.pct_ms(99.9))
                    _record(figs, f"{base} loss %", r.loss_pct)
                else:
                    _record(figs, f"{r.kind} max req/s", r.throughput)
                    _record(figs, f"{r.kind} max p99 ms", r.pct_ms(99))
                    _record(figs, f"{r.kind} max loss %", r.loss_pct)
                    if r.server_cpu_s is not None and r.ok:
                        _record(figs, f"{r.kind} server µs/req", 1e6 * r.server_cpu_s / r.ok)


def echo_ceiling(procs: Processes, plan: Plan) -> Figures:
    """This generator's own ceiling against the trivial responder (a separate process)."""
    proc = procs.start("echo", [sys.executable, __file__, "echo", "--secret", SECRET,
                                "--max-seconds", str(plan.seconds * 20 + 60)])  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    m = re.match(r"ECHO PORT (\d+)", line)
    if not m:
        procs.stop(proc)
        raise SystemExit(f"echo responder did not start: {line!r}")
    port = int(m[1])
    target = Target("echo", "127.0.0.1", port, port, SECRET.encode(), 100_000, USER_FORMAT, PASSWORD_FORMAT,
                    proc.pid)  # fmt: skip
    figs: Figures = {}
    print(f"== generator ceiling: trivial responder on 127.0.0.1:{port}", flush=True)
    echo_plan = Plan(1, plan.seconds / 2, plan.rate_seconds, (), plan.window, plan.timeout, plan.max_requests)
    for r in auth_max(target, echo_plan) + acct_max(target, echo_plan):
        print(r.line(), flush=True)
        _record(figs, f"{r.kind} max req/s", r.throughput)
    procs.stop(proc)
    return figs


# --------------------------------------------------------------------------- report


def med(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.2f}{unit}"


def report(bd: Figures, fr: Figures, fr_label: str, echo: Figures, extra: dict[str, str], plan: Plan) -> None:
    print()
    print(f"===== RADIUS benchmark: medians of {plan.repeat} run(s) =====")
    for k, v in extra.items():
        print(f"  {k}: {v}")
    print(
        "  generator ceiling (trivial responder): " + ", ".join(f"{k} {fmt(med(v))}" for k, v in echo.items())
    )
    print()
    keys = list(bd)
    for k in fr:
        if k not in keys:
            keys.append(k)
    width = max(len(k) for k in keys) + 2
    print(f"  {'figure':<{width}}{'billingd':>12}{fr_label:>26}{'ratio':>9}")
    for k in keys:
        b, f = med(bd.get(k)), med(fr.get(k))
        ratio = f"{b / f:.1f}x" if (b is not None and f) else "—"
        print(f"  {k:<{width}}{fmt(b):>12}{fmt(f):>26}{ratio:>9}")
    print()
    print("  goals (issue 3):")

    def goal(name: str, ok: bool | None, detail: str) -> None:
        verdict = "n/a" if ok is None else ("MET" if ok else "MISSED")
        print(f"    [{verdict:>6}] {name}: {detail}")

    b, f = med(bd.get("auth max req/s")), med(fr.get("auth max req/s"))
    goal(f"auth >= {GOAL_AUTH_RATIO:.0f}x FreeRADIUS+SQL",
         None if not (b and f) else b / f >= GOAL_AUTH_RATIO,
         f"{fmt(b)} vs {fmt(f)} req/s = {b / f:.1f}x" if b and f else "no figure")  # fmt: skip
    for kind in ("acct-start", "acct-interim"):
        b, f = med(bd.get(f"{kind} max req/s")), med(fr.get(f"{kind} max req/s"))
        goal(f"durable {kind} >= {GOAL_ACCT_RATIO:.0f}x FreeRADIUS+SQL",
             None if not (b and f) else b / f >= GOAL_ACCT_RATIO,
             f"{fmt(b)} vs {fmt(f)} req/s = {b / f:.1f}x" if b and f else "no figure")  # fmt: skip
    for kind in ("auth", "acct-start", "acct-interim"):
        key = f"{kind} @{GOAL_RATE:.0f}/s"
        p99, got, loss = med(bd.get(f"{key} p99 ms")), med(bd.get(f"{key} achieved req/s")), med(
            bd.get(f"{key} loss %"))  # fmt: skip
        ok = None if p99 is None else (p99 <= GOAL_P99_MS and (got or 0) >= 0.98 * GOAL_RATE and not loss)
        goal(f"billingd {kind} p99 <= {GOAL_P99_MS:.0f} ms at {GOAL_RATE:.0f} req/s", ok,
             f"p99 {fmt(p99)} ms, p50 {fmt(med(bd.get(f'{key} p50 ms')))} ms, achieved {fmt(got)} req/s, "
             f"loss {fmt(loss)}%")  # fmt: skip


# --------------------------------------------------------------------------- main


def snapshot_load(db: BenchDatabase, repeat: int) -> tuple[float, float]:
    """Median seconds of ``aaa.snapshot.load_snapshot`` in this process, and RSS growth (MiB)."""
    from aaa.snapshot import load_snapshot

    assert db.engine is not None
    times = []
    growth = 0.0
    for _ in range(repeat):
        before = rss_mib(os.getpid())
        started = perf()
        snap = load_snapshot(db.engine)
        times.append(perf() - started)
        growth = rss_mib(os.getpid()) - before
        assert len(snap) == db.n, (len(snap), db.n)
        del snap
    return statistics.median(times), growth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="bench", choices=["bench", "echo"])
    ap.add_argument(
        "--pg-url", default=DEFAULT_ADMIN_URL, help="admin URL; a fresh database is made next to it"
    )
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is quoted")
    ap.add_argument("--quick", action="store_true", help="a short smoke run (1 repeat, short phases)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each max-throughput phase")
    ap.add_argument("--rate-seconds", type=float, default=6.0, help="length of each fixed-rate phase")
    ap.add_argument("--rates", default="5000", help="comma-separated fixed rates (req/s)")
    ap.add_argument("--window", type=int, default=128, help="requests in flight in max mode (<= 256)")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds until a request counts as lost")
    ap.add_argument("--max-requests", type=int, default=400_000, help="cap on requests per phase")
    ap.add_argument(
        "--no-freeradius", action="store_true", help="use the reference file's FreeRADIUS figures"
    )
    ap.add_argument("--secret", default=SECRET, help="echo mode: the shared secret")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="echo mode: lifetime")
    args = ap.parse_args(argv)

    if args.mode == "echo":
        echo_main(args.secret.encode(), args.max_seconds, 50_000_000)
        return 0

    if args.quick:
        args.repeat, args.seconds, args.rate_seconds = 1, 2.0, 2.0
        args.subscribers = min(args.subscribers, 100_000)
    plan = Plan(args.repeat, args.seconds, args.rate_seconds,
                tuple(float(r) for r in args.rates.split(",") if r), args.window, args.timeout,
                args.max_requests)  # fmt: skip
    run_started = perf()
    procs = Processes()
    db: BenchDatabase | None = None
    extra: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-radius-"))
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = False
    try:
        echo = echo_ceiling(procs, plan)

        started = perf()
        db = BenchDatabase(args.pg_url, args.subscribers)
        extra["seeding"] = (
            f"{args.subscribers:,} subscribers in {perf() - started:.1f} s ("
            + ", ".join(f"{k} {v:.1f}" for k, v in db.timings.items()) + ")"
        )  # fmt: skip
        print(f"database {db.name}: {extra['seeding']}", flush=True)
        load_s, growth = snapshot_load(db, args.repeat)
        extra["snapshot load (aaa.snapshot.load_snapshot, this process)"] = (
            f"{load_s:.2f} s for {args.subscribers:,} subscribers, RSS +{growth:.0f} MiB"
        )

        bd_target, ready_s, bd_proc = start_billingd(procs, db.url, tmp, args.subscribers)
        rss_ready = rss_mib(bd_proc.pid)
        extra["billingd start to ready (incl. snapshot load)"] = f"{ready_s:.2f} s"
        print(f"billingd ready in {ready_s:.2f} s, RSS {rss_ready:.0f} MiB", flush=True)
        bd: Figures = {}
        measure_target(bd_target, plan, bd)
        rss_end = rss_mib(bd_proc.pid)
        extra["billingd RSS (VmRSS)"] = f"{rss_ready:.0f} MiB when ready, {rss_end:.0f} MiB after the load"
        code = procs.stop(bd_proc)
        log = (tmp / "billingd.log").read_text(errors="replace")
        extra["billingd stop"] = f"exit {code}, " + (
            "accounting drained" if "stopped; accounting drained" in log else "NO 'accounting drained' line"
        )
        errors = [line for line in log.splitlines() if "error" in line.lower() or "Traceback" in line]
        if errors:
            extra["billingd log errors"] = f"{len(errors)}, first: {errors[0][:200]}"

        fr: Figures = {}
        why_not = "--no-freeradius given" if args.no_freeradius else freeradius_available()
        if why_not is None:
            fr_label = "FreeRADIUS+SQL"
            fr_target, fr_proc = start_freeradius(procs, tmp)
            measure_target(fr_target, plan, fr)
            procs.stop(fr_proc)
        else:
            fr_label = "FreeRADIUS (ref. file)"
            print(f"FreeRADIUS not measured ({why_not}; set it up with "
                  f"`bash {FR_REFERENCE / 'setup.sh'}`): using the figures from "
                  f"{FR_REFERENCE / 'reference-2026-11-25.md'}, NOT from this run")  # fmt: skip
            fr = {k: [v] for k, v in FR_REFERENCE_FIGURES.items()}
            extra["FreeRADIUS figures"] = "from the reference file, not this run"
        report(bd, fr, fr_label, echo, extra, plan)
        print(f"\n  total run time {perf() - run_started:.0f} s")
        ok = True
        return 0
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
