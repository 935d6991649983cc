"""Bank simulator: a bank or payment agent paying into billingd over SOAP or check/pay, for tests and demos.

What it does, as a bank would: for each of ``count`` payments (a transaction id of its own, an
account from the list, an amount) it looks the account up (SOAP ``Lookup`` / check/pay
``check``), then pays (SOAP ``Pay`` through zeep built from the live WSDL / check/pay ``pay``
with ``requests``), every request signed (``billing.payment_auth``) and sent with HTTP Basic
credentials, from ``concurrency`` threads. Misbehaviour on purpose, each a fraction of the
payments: ``retry_rate`` resends a payment after its answer, re-signed with a fresh timestamp,
as a bank does when a reply was lost; ``duplicate_rate`` sends the very same request twice at
once; ``forge_rate`` signs with a wrong key. ``source_address`` binds the client sockets to
another local address (127.0.0.2) to call from a wrong address. It then writes the day's
registry (the CSV preset ``registry``: ``txn_id;paid_at;account;amount;currency``) of the
payments the bank believes it made, with injected discrepancies: ``drop`` lines left out
(missing at the bank), ``extra`` lines billing never saw (missing in billing), ``alter`` lines
with another amount (amount differs).

What it checks: a repeated payment must be answered with the original payment id (prv_txn),
a forged one must be refused; :attr:`BankStats.broken` lists every broken promise.

Why this shape (a test peer, not a product): blocking clients in a ``ThreadPoolExecutor``, no
reactor, bounded by a timeout per request; everything it sent and got is kept in
:class:`BankStats`, so tests assert on it and the CLI prints :meth:`BankStats.summary`.

Programmatic use::

    stats = BankSimulator(BankConfig(url="http://127.0.0.1:8080", bank="demobank", ...)).run()
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import statistics
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from billing.payment_auth import check_fields, lookup_fields, pay_fields, signature

if TYPE_CHECKING:  # requests and zeep are imported when a run starts: `billing-sim --help` stays fast
    import requests

__all__ = [
    "AccountSpecError",
    "BankConfig",
    "BankSimulator",
    "BankStats",
    "Outcome",
    "PlannedPayment",
    "RegistryDiscrepancies",
    "parse_accounts",
    "parse_amount",
    "write_registry",
]

Protocol = Literal["soap", "checkpay"]
CENTS = Decimal("0.01")
REGISTRY_HEADER = ("txn_id", "paid_at", "account", "amount", "currency")
FORGED_KEY = "not-the-bank's-key"


class AccountSpecError(ValueError):
    """An --accounts or --amount value that cannot be read."""


def parse_accounts(spec: str) -> list[str]:
    """Account numbers from ``100001,100002`` or a range ``100001-100100`` (also ``B0000001-B0000100``).

    A range keeps the first number's width and letter prefix; ranges and single numbers mix:
    ``100001-100003,200001``.
    """
    numbers: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        ranged = re.fullmatch(r"([A-Za-z_]*)(\d+)-\1?(\d+)", part)
        if ranged:
            prefix, first, last = ranged.groups()
            if int(last) < int(first):
                raise AccountSpecError(f"{part}: the range ends before it starts")
            if int(last) - int(first) >= 1_000_000:
                raise AccountSpecError(f"{part}: at most 1,000,000 accounts in a range")
            numbers += [f"{prefix}{i:0{len(first)}d}" for i in range(int(first), int(last) + 1)]
        elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", part):
            numbers.append(part)
        else:
            raise AccountSpecError(f"{part}: not an account number or a FIRST-LAST range")
    if not numbers:
        raise AccountSpecError(f"{spec!r}: no account numbers")
    return numbers


def parse_amount(spec: str) -> tuple[Decimal, Decimal]:
    """``10.00`` (every payment) or ``5.00-50.00`` (uniform, in cents): the lowest and highest amount."""
    low, _, high = spec.partition("-")
    try:
        bounds = (Decimal(low), Decimal(high or low))
    except ArithmeticError:
        raise AccountSpecError(f"{spec}: not an amount or a MIN-MAX range") from None
    if any(not b.is_finite() or b <= 0 or b != b.quantize(CENTS) for b in bounds) or bounds[1] < bounds[0]:
        raise AccountSpecError(f"{spec}: amounts must be > 0 with at most 2 decimals, MIN <= MAX")
    return bounds


@dataclass(frozen=True)
class RegistryDiscrepancies:
    """How many registry lines to leave out, to add (never paid) and to give another amount."""

    drop: int = 0
    extra: int = 0
    alter: int = 0


@dataclass(frozen=True)
class BankConfig:
    """One run: where to pay, as whom, how much, how (mis)behaving; see the module docstring."""

    url: str  # the payment API's base, e.g. http://127.0.0.1:8080 (SOAP at /payments, check/pay at /checkpay)
    bank: str
    password: str
    key: str
    accounts: Sequence[str]
    protocol: Protocol = "soap"
    count: int = 10
    concurrency: int = 4
    amount: tuple[Decimal, Decimal] = (Decimal("10.00"), Decimal("10.00"))
    lookup: bool = True
    retry_rate: float = 0.0
    duplicate_rate: float = 0.0
    forge_rate: float = 0.0
    source_address: str | None = None
    txn_prefix: str | None = None  # default: "sim<unix time>-", so runs do not collide
    currency: str = "EUR"  # written in the registry
    time_zone: tzinfo = UTC  # of check/pay's txn_date (the operator's zone, as agents are told)
    timeout: float = 10.0
    verify: bool | str = True  # TLS: False, or a CA / certificate file
    registry: Path | None = None
    discrepancies: RegistryDiscrepancies = RegistryDiscrepancies()
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("retry_rate", "duplicate_rate", "forge_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a fraction 0..1, got {getattr(self, name)}")
        if self.count < 1 or self.concurrency < 1:
            raise ValueError("count and concurrency must be at least 1")
        if not self.accounts:
            raise ValueError("accounts: at least one account number")
        if self.protocol not in ("soap", "checkpay"):
            raise ValueError(f"protocol: expected soap or checkpay, got {self.protocol!r}")


@dataclass(frozen=True)
class PlannedPayment:
    """One payment the bank makes, and how it misbehaves with it."""

    txn_id: str
    account: str
    amount: Decimal
    paid_at: datetime
    forged: bool = False
    retried: bool = False
    duplicated: bool = False


@dataclass(frozen=True)
class Outcome:
    """One request's answer: ``ok`` with our payment id, or ``code`` (fault code / check/pay result)."""

    ok: bool
    payment_id: int | None = None
    code: str | None = None  # e.g. "BadSignature" (SOAP) or "result 8" (check/pay)
    error: str | None = None  # transport error: no answer at all
    latency_s: float = 0.0


@dataclass
class BankStats:
    """What a run sent and got; :attr:`broken` lists the promises the server broke."""

    protocol: str
    url: str
    planned: int = 0
    forged: int = 0
    pay_requests: int = 0
    paid: dict[str, int] = field(default_factory=dict)  # txn_id -> payment id of the first ok answer
    repeats: int = 0  # retries and duplicates sent
    repeats_original: int = 0  # answered ok with the original payment id
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lookups: Counter[str] = field(default_factory=Counter)  # "ok" or the refusal code
    latencies_s: list[float] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    registry_lines: int = 0
    registry_dropped: list[str] = field(default_factory=list)
    registry_extra: list[str] = field(default_factory=list)
    registry_altered: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def percentile_ms(self, p: float) -> float | None:
        """The ``p``-th percentile (0..100) of pay latencies, in ms."""
        if not self.latencies_s:
            return None
        if len(self.latencies_s) == 1:
            return self.latencies_s[0] * 1000
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(p) - 1] * 1000

    def summary(self) -> str:
        """What a person reads after a run."""
        rate = self.pay_requests / self.elapsed_s if self.elapsed_s else 0.0
        p50, p99 = self.percentile_ms(50), self.percentile_ms(99)
        lines = [
            f"bank {self.protocol} -> {self.url}: {self.planned} payments ({self.forged} forged), "
            f"{self.pay_requests} pay requests in {self.elapsed_s:.1f} s ({rate:.1f}/s)",
            f"  ok: {len(self.paid)} payments credited; duplicates/retries answered with the original ids: "
            f"{self.repeats_original}/{self.repeats}",
            "  refused: " + (", ".join(f"{c} {n}" for c, n in sorted(self.refused.items())) or "none"),
        ]
        if self.lookups:
            lines.append("  lookups: " + ", ".join(f"{c} {n}" for c, n in sorted(self.lookups.items())))
        if self.errors:
            lines.append("  no answer: " + ", ".join(f"{c} {n}" for c, n in sorted(self.errors.items())))
        if p50 is not None and p99 is not None:
            lines.append(f"  latency (pay): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        if self.registry_lines or self.registry_dropped:
            lines.append(
                f"  registry: {self.registry_lines} lines (dropped {len(self.registry_dropped)}, "
                f"extra {len(self.registry_extra)}, altered {len(self.registry_altered)})"
            )
        lines += [f"  BROKEN: {b}" for b in self.broken[:20]]
        if len(self.broken) > 20:
            lines.append(f"  ... and {len(self.broken) - 20} more broken")
        return "\n".join(lines)


def _session(config: BankConfig) -> requests.Session:
    """One HTTP session for every thread: Basic credentials, TLS trust, and the source address."""
    import requests
    from requests.adapters import HTTPAdapter

    class SourceAddressAdapter(HTTPAdapter):
        """Connections that leave from ``config.source_address`` (to call from another local address)."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            if config.source_address:
                kwargs["source_address"] = (config.source_address, 0)
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.auth = (config.bank, config.password)
    session.verify = config.verify
    adapter = SourceAddressAdapter(pool_connections=2, pool_maxsize=max(config.concurrency * 2, 10))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _transport_errors() -> tuple[type[Exception], ...]:
    """What a request raises when no answer came (refused connection, timeout, HTTP error)."""
    import requests

    return (requests.RequestException,)


class _Soap:
    """The SOAP client: zeep, from the live WSDL, over one shared ``requests`` session."""

    def __init__(self, config: BankConfig, session: requests.Session) -> None:
        import zeep  # ~0.3 s to import: only when talking SOAP
        from zeep.transports import Transport

        self.config = config
        transport = Transport(session=session, timeout=config.timeout, operation_timeout=config.timeout)
        self.client = zeep.Client(config.url.rstrip("/") + "/payments?wsdl", transport=transport)
        self.fault = zeep.exceptions.Fault
        self.transport_error = _transport_errors()

    def lookup(self, account: str, ts: int) -> Outcome:
        sign = signature(self.config.key, lookup_fields(self.config.bank, account, ts))
        return self._call(lambda: self.client.service.Lookup(self.config.bank, account, ts, sign), None)

    def pay(self, p: PlannedPayment, ts: int, key: str) -> Outcome:
        sign = signature(key, pay_fields(self.config.bank, p.txn_id, p.account, p.amount, ts))
        return self._call(
            lambda: self.client.service.Pay(
                self.config.bank, p.txn_id, p.account, p.amount, p.paid_at, ts, sign
            ),
            "payment_id",
        )

    def _call(self, call: Callable[[], Any], id_field: str | None) -> Outcome:
        started = time.perf_counter()
        try:
            reply = call()
        except self.fault as fault:
            code = str(fault.code or "Fault").rpartition(":")[2]
            return Outcome(False, code=code.removeprefix("Client.").removeprefix("Server."),
                           latency_s=time.perf_counter() - started)  # fmt: skip
        except self.transport_error as exc:
            return Outcome(False, error=type(exc).__name__, latency_s=time.perf_counter() - started)
        latency = time.perf_counter() - started
        if id_field is None:
            return Outcome(
                bool(reply["exists"]), code=None if reply["exists"] else "NotPayable", latency_s=latency
            )
        return Outcome(True, payment_id=int(reply[id_field]), latency_s=latency)


class _CheckPay:
    """The check/pay client: ``requests`` GETs of ``/checkpay``, the XML reply parsed."""

    def __init__(self, config: BankConfig, session: requests.Session) -> None:
        self.config = config
        self.session = session
        self.url = config.url.rstrip("/") + "/checkpay"
        self.transport_error = (*_transport_errors(), ET.ParseError)

    def lookup(self, account: str, ts: int) -> Outcome:
        # check needs a txn id and an amount: a probe of 1.00 under a txn id that is never paid
        txn = f"check-{ts}-{account}"
        sign = signature(self.config.key, check_fields(self.config.bank, txn, account, Decimal("1.00"), ts))
        return self._get({"command": "check", "txn_id": txn, "account": account, "sum": "1.00",
                          "ts": str(ts), "sign": sign})  # fmt: skip

    def pay(self, p: PlannedPayment, ts: int, key: str) -> Outcome:
        sign = signature(key, pay_fields(self.config.bank, p.txn_id, p.account, p.amount, ts))
        txn_date = p.paid_at.astimezone(self.config.time_zone).strftime("%Y%m%d%H%M%S")
        return self._get({"command": "pay", "txn_id": p.txn_id, "account": p.account, "sum": f"{p.amount:f}",
                          "txn_date": txn_date, "ts": str(ts), "sign": sign})  # fmt: skip

    def _get(self, params: dict[str, str]) -> Outcome:
        started = time.perf_counter()
        try:
            response = self.session.get(self.url, params=params, timeout=self.config.timeout)
            response.raise_for_status()
            root = ET.fromstring(response.content)
        except self.transport_error as exc:
            return Outcome(False, error=type(exc).__name__, latency_s=time.perf_counter() - started)
        latency = time.perf_counter() - started
        result = (root.findtext("result") or "").strip()
        if result != "0":
            return Outcome(False, code=f"result {result or '?'}", latency_s=latency)
        prv = (root.findtext("prv_txn") or "").strip()
        return Outcome(True, payment_id=int(prv) if prv.isdigit() else None, latency_s=latency)


class BankSimulator:
    """Runs :class:`BankConfig`: plans the payments, sends them, checks the answers, writes the registry."""

    def __init__(
        self, config: BankConfig, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.stats = BankStats(config.protocol, config.url)
        self.session = _session(config)
        self.client: _Soap | _CheckPay = (
            _Soap(config, self.session) if config.protocol == "soap" else _CheckPay(config, self.session)
        )
        self.plan: list[PlannedPayment] = []
        self.prefix = config.txn_prefix if config.txn_prefix is not None else f"sim{int(time.time())}-"

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()

    def __enter__(self) -> BankSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def planned(self) -> list[PlannedPayment]:
        """The payments of this run (seeded): ids, accounts, amounts and who misbehaves."""
        c, rng = self.config, self.rng
        low, high = (int(a / CENTS) for a in c.amount)
        now = self.clock()
        plan = []
        for i in range(c.count):
            forged = rng.random() < c.forge_rate
            plan.append(
                PlannedPayment(
                    txn_id=f"{self.prefix}{i + 1}",
                    account=c.accounts[i % len(c.accounts)],
                    amount=Decimal(rng.randint(low, high)) * CENTS,
                    paid_at=(now - timedelta(seconds=rng.randint(1, 60))).replace(microsecond=0),
                    forged=forged,
                    retried=not forged and rng.random() < c.retry_rate,
                    duplicated=not forged and rng.random() < c.duplicate_rate,
                )
            )
        return plan

    def run(self) -> BankStats:
        """Send every planned payment; write the registry if configured; the stats (also on error)."""
        self.plan = self.planned()
        stats = self.stats
        stats.planned, stats.forged = len(self.plan), sum(p.forged for p in self.plan)
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="bank-sim") as pool:
                list(pool.map(self._one, self.plan))
        finally:
            stats.elapsed_s = time.perf_counter() - started
            self.close()
        if self.config.registry is not None:
            self.write_registry(self.config.registry)
        return stats

    def _ts(self) -> int:
        return int(self.clock().timestamp())

    def _one(self, p: PlannedPayment) -> None:
        if self.config.lookup:
            found = self.client.lookup(p.account, self._ts())
            with self.stats.lock:
                self.stats.lookups["ok" if found.ok else found.code or f"error {found.error}"] += 1
        key = FORGED_KEY if p.forged else self.config.key
        ts = self._ts()
        if p.duplicated:  # the very same request twice at once
            with ThreadPoolExecutor(2) as twice:
                outcomes = list(twice.map(lambda _: self.client.pay(p, ts, key), range(2)))
        else:
            outcomes = [self.client.pay(p, ts, key)]
        if p.retried:  # the reply was "lost": the same payment again, re-signed later
            outcomes.append(self.client.pay(p, self._ts(), key))
        self._record(p, outcomes)

    def _record(self, p: PlannedPayment, outcomes: list[Outcome]) -> None:
        stats = self.stats
        with stats.lock:
            stats.pay_requests += len(outcomes)
            stats.repeats += len(outcomes) - 1
            stats.latencies_s += [o.latency_s for o in outcomes if o.error is None]
            for o in outcomes:
                if o.error is not None:
                    stats.errors[o.error] += 1
                elif not o.ok:
                    stats.refused[o.code or "?"] += 1
            ids = {o.payment_id for o in outcomes if o.ok}
            if p.forged:
                if ids:
                    stats.broken.append(f"{p.txn_id}: forged signature accepted (payment {sorted(ids)})")
                return
            if not ids:
                return
            if len(ids) > 1:
                stats.broken.append(f"{p.txn_id}: one payment answered with several ids {sorted(ids)}")
            first = next(o.payment_id for o in outcomes if o.ok)
            stats.paid[p.txn_id] = first or 0
            stats.repeats_original += sum(o.ok and o.payment_id == first for o in outcomes) - 1

    def write_registry(self, path: Path) -> None:
        """The registry of the payments answered ok, with the configured discrepancies injected."""
        c, rng, stats = self.config, self.rng, self.stats
        lines = [p for p in self.plan if p.txn_id in stats.paid]
        d = c.discrepancies
        if d.drop + d.alter > len(lines):
            raise ValueError(f"registry: cannot drop {d.drop} and alter {d.alter} of {len(lines)} paid lines")
        chosen = rng.sample(range(len(lines)), d.drop + d.alter)
        dropped, altered = set(chosen[: d.drop]), set(chosen[d.drop :])
        rows: list[PlannedPayment] = []
        for i, p in enumerate(lines):
            if i in dropped:
                stats.registry_dropped.append(p.txn_id)
            elif i in altered:
                stats.registry_altered.append(p.txn_id)
                rows.append(PlannedPayment(p.txn_id, p.account, p.amount + Decimal("1.00"), p.paid_at))
            else:
                rows.append(p)
        for n in range(1, d.extra + 1):
            extra = PlannedPayment(f"{self.prefix}x{n}", c.accounts[n % len(c.accounts)], Decimal("7.77"),
                                   self.clock().replace(microsecond=0))  # fmt: skip
            stats.registry_extra.append(extra.txn_id)
            rows.append(extra)
        write_registry(path, rows, c.currency)
        stats.registry_lines = len(rows)


def write_registry(path: Path, payments: Sequence[PlannedPayment], currency: str) -> None:
    """Write the ``registry`` CSV: header ``txn_id;paid_at;account;amount;currency``, ';', UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";", lineterminator="\n")
        writer.writerow(REGISTRY_HEADER)
        for p in payments:
            writer.writerow(
                (p.txn_id, p.paid_at.isoformat(), p.account, f"{p.amount.quantize(CENTS):f}", currency)
            )


# --------------------------------------------------------------------------- command line

EPILOG = """\
example (the demo bank of conf/demo.toml, while `make demo` or billingd --config conf/demo.toml runs):
  billing-sim bank --url http://127.0.0.1:8080 --bank demobank --password demobank-password \\
      --key demobank-signing-key --protocol checkpay --time-zone Europe/Berlin \\
      --accounts 100001-100010 --count 100 --concurrency 8 --retry-rate 0.1 --duplicate-rate 0.05 \\
      --forge-rate 0.05 --registry var/registry.csv --drop 1 --extra 1 --alter 1
"""


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: expected a fraction 0..1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return value


def add_parser(commands: Any, positive: Callable[[type], Any]) -> None:
    """The ``billing-sim bank`` subcommand (``simulators.main``); ``positive`` parses numbers > 0."""
    bank = commands.add_parser(
        "bank",
        help="a bank or payment agent: looks up and pays over SOAP or check/pay, writes its registry",
        description="Pay --count payments into the payment API (SOAP: zeep from the live WSDL; check/pay: "
        "HTTP GET), retrying, duplicating, forging signatures or calling from a wrong address on purpose; "
        "print a summary and optionally write the day's registry CSV with injected discrepancies.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bank.add_argument(
        "--url", default="http://127.0.0.1:8080", help="payment API base URL (default %(default)s)"
    )
    bank.add_argument("--bank", default="demobank", help="bank code = HTTP user (default %(default)s)")
    bank.add_argument("--password", required=True, help="the bank's HTTP Basic password")
    bank.add_argument("--key", required=True, help="the bank's signing key (HMAC-SHA256)")
    bank.add_argument(
        "--protocol", choices=("soap", "checkpay"), default="soap", help="(default %(default)s)"
    )
    bank.add_argument("--count", type=positive(int), default=10, help="payments (default %(default)s)")
    bank.add_argument(
        "--concurrency", type=positive(int), default=4, help="client threads (default %(default)s)"
    )
    bank.add_argument(
        "--amount", default="10.00", help="amount, or MIN-MAX for random cents (default %(default)s)"
    )
    bank.add_argument("--accounts", required=True, help="account numbers: 100001,100002 or 100001-100100")
    bank.add_argument("--no-lookup", action="store_true", help="pay without looking the account up first")
    bank.add_argument("--retry-rate", type=_fraction, default=0.0, help="fraction resent after the answer")
    bank.add_argument("--duplicate-rate", type=_fraction, default=0.0, help="fraction sent twice at once")
    bank.add_argument("--forge-rate", type=_fraction, default=0.0, help="fraction with a bad signature")
    bank.add_argument("--from-address", help="bind the client to this local address, e.g. 127.0.0.2")
    bank.add_argument("--txn-prefix", help="transaction id prefix (default: sim<unix time>-)")
    bank.add_argument("--currency", default="EUR", help="currency written in the registry (default EUR)")
    bank.add_argument(
        "--time-zone", default="UTC", help="the ISP's time zone, of check/pay txn_date (default UTC)"
    )
    bank.add_argument(
        "--timeout", type=positive(float), default=10.0, help="seconds per request (default %(default)s)"
    )
    bank.add_argument("--cafile", help="TLS: trust this certificate / CA file")
    bank.add_argument("--registry", type=Path, metavar="FILE", help="write the registry CSV here")
    bank.add_argument("--drop", type=_count, default=0, help="registry: leave out N paid lines")
    bank.add_argument("--extra", type=_count, default=0, help="registry: add N lines never paid")
    bank.add_argument("--alter", type=_count, default=0, help="registry: change the amount of N lines")
    bank.add_argument("--seed", type=int, help="random seed (accounts order, amounts, who misbehaves)")
    bank.set_defaults(handler=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``billing-sim bank``: exit 0 ran, 1 bad input or no WSDL, 3 the server broke a promise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        config = BankConfig(
            url=args.url,
            bank=args.bank,
            password=args.password,
            key=args.key,
            accounts=parse_accounts(args.accounts),
            protocol=args.protocol,
            count=args.count,
            concurrency=args.concurrency,
            amount=parse_amount(args.amount),
            lookup=not args.no_lookup,
            retry_rate=args.retry_rate,
            duplicate_rate=args.duplicate_rate,
            forge_rate=args.forge_rate,
            source_address=args.from_address,
            txn_prefix=args.txn_prefix,
            currency=args.currency,
            time_zone=ZoneInfo(args.time_zone),
            timeout=args.timeout,
            verify=args.cafile or True,
            registry=args.registry,
            discrepancies=RegistryDiscrepancies(args.drop, args.extra, args.alter),
            seed=args.seed,
        )
        simulator = BankSimulator(config)
    except (ValueError, ZoneInfoNotFoundError, OSError) as exc:
        print(f"billing-sim bank: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the WSDL could not be fetched or read: nothing sent
        print(f"billing-sim bank: {args.url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"bank {args.bank}: {args.count} payments over {args.protocol} -> {args.url}, "
        f"{args.concurrency} threads",
        flush=True,
    )
    try:
        stats = simulator.run()
    except ValueError as exc:  # the registry's discrepancies do not fit the payments made
        print(simulator.stats.summary())
        print(f"billing-sim bank: {exc}", file=sys.stderr)
        return 1
    print(stats.summary())
    if args.registry:
        print(f"registry written to {args.registry}")
    return 3 if stats.broken else 0
