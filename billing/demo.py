"""The demo: an ISP's month of billing on the embedded database, then its AAA server live.

``make demo`` migrates ``var/demo.db`` and runs this. It seeds the ISP's dictionaries and
fourteen subscribers, each with an Internet service and a speed profile (PPPoE logins and
passwords; one IPoE line known by its CPE MAC), then walks a billing month day by day: monthly
fees charged in advance on the 1st, daily fees for the daily tariff, payments arriving from a
bank, a goodwill adjustment and a recalled payment (a reversing transaction). It shows balances,
one statement and the ledger's invariant check.

Then it starts ``billingd`` on the same database and the BRAS simulator (``billing-sim bras``)
with the demo subscribers, and prints a live summary every second or two: sessions online,
Access-Accept/Reject, accounting stored, rows in ``radius_sessions`` and ``session_usage``,
from billingd's metrics endpoint and the database. Two subscribers are there for ``radtest``:
``demo``/``demo`` (active, funded: Access-Accept with its speed) and ``broke``/``broke`` (a
business account out of funds: conf/demo.toml's business policy rejects, "out of funds").

``--duration`` bounds the whole run in seconds: it always stops by itself. The ports come from
the config (0: any free port); if one is taken, the demo says which and uses free ones instead
(``--ports auto`` always does). Exit 0, unless the ledger check fails or billingd cannot start.

Charges and payments are posted straight to the ledger here; the rating engine and the payment
gateways of later releases post the same transactions through their own services.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, ledger, operators, subscribers
from billing.audit import Actor
from billing.books import book_account
from billing.config import Config, load_config
from billing.db.engine import make_engine, session_factory
from billing.db.services import Service, ServiceMac, SpeedProfile
from billing.invariants import check_ledger
from billing.ledger import Leg, TransactionRequest
from billing.permissions import resolve_actor
from rating.money import format_amount, round_to_minor

SEED_DICTIONARIES = {
    "subscriber_category": [("residential", "Residential"), ("business", "Business"), ("vip", "VIP")],
    "region": [("north", "North district"), ("centre", "City centre"), ("south", "South district")],
    "status_reason": [("non_payment", "Non-payment"), ("customer_request", "Customer request")],
    "adjustment_reason": [("goodwill", "Goodwill credit"), ("outage", "Outage compensation")],
}


@dataclass(frozen=True)
class Person:
    """A demo subscriber: who they are, their Internet line, and how they pay."""

    kind: str
    name: str
    category: str
    region: str
    login: str = ""  # PPPoE login; empty for the IPoE line, which is known by its MAC
    password: str = ""
    method: str = "pap"  # how the simulated BRAS proves the password: pap or chap
    mac: str = ""  # IPoE: the CPE MAC that identifies the service
    payer: str = "random"  # "random": a bank transfer now and then; "upfront": 100.00 on the 1st; "never"
    credit_limit: str | None = None  # None: the category's default


PEOPLE = [
    Person("person", "Anna Schmidt", "residential", "north", "anna", "anna-pw", "chap"),
    Person("person", "Jonas Weber", "residential", "centre", "jonas", "jonas-pw"),
    Person("person", "Lea Fischer", "residential", "south", "lea", "lea-pw", "chap"),
    Person("person", "Paul Wagner", "vip", "centre", "paul", "paul-pw"),
    Person("company", "Bäckerei Becker GmbH", "business", "north", "becker", "becker-pw", "chap"),
    Person("person", "Mia Hoffmann", "residential", "north", "mia", "mia-pw"),
    Person("person", "Noah Schulz", "residential", "south", "noah", "noah-pw", "chap"),
    Person("company", "Kanzlei Koch & Partner", "business", "centre", "koch", "koch-pw"),
    Person("person", "Emma Richter", "residential", "centre", "emma", "emma-pw"),
    Person("person", "Ben Klein", "residential", "north", "ben", "ben-pw", "chap"),
    Person("person", "Sophie Wolf", "residential", "south", "sophie", "sophie-pw"),
    Person("company", "Autohaus Neumann KG", "business", "south", mac="02:de:00:00:00:0c"),
    # for radtest: funded, so Access-Accept with the Home 100 speed
    Person("person", "Demo Subscriber", "residential", "centre", "demo", "demo", payer="upfront"),
    # for radtest: a business on daily fees that never pays and has no credit: out of funds, and
    # the business policy in conf/demo.toml rejects (residential ones get the walled garden)
    Person(
        "company", "Pleite & Co. KG", "business", "south", "broke", "broke", payer="never", credit_limit="0"
    ),
]

UPFRONT_PAYMENT = Decimal("100.00")


@dataclass(frozen=True)
class Plan:
    """What a demo subscriber buys: a monthly fee charged on the 1st, or a daily fee; and a speed."""

    name: str
    fee: Decimal
    daily: bool
    profile: str
    down_kbps: int
    up_kbps: int


PLANS = {
    "residential": Plan("Home 100", Decimal("24.90"), False, "home-100", 100_000, 20_000),
    "vip": Plan("Home 1000", Decimal("49.90"), False, "home-1000", 1_000_000, 200_000),
    "business": Plan("Business daily", Decimal("2.30"), True, "business-200", 200_000, 200_000),
}


@dataclass(frozen=True)
class Subscriber:
    """A seeded demo subscriber: the account and the ledger account its money moves on."""

    number: str
    person: Person
    ledger_account_id: int

    @property
    def name(self) -> str:
        return self.person.name

    @property
    def category(self) -> str:
        return self.person.category


class AlreadySeeded(Exception):
    """The database already holds the demo subscribers: the demo wants a fresh one."""


class Stop(Exception):
    """SIGTERM: stop the demo as Ctrl-C would, stopping billingd and the simulator first."""


def main(argv: list[str] | None = None) -> int:
    """Run the demo; the exit code (0 ok, 1 the ledger check failed or billingd did not start)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="conf/demo.toml", help="config file (default: conf/demo.toml)")
    parser.add_argument(
        "--duration", type=float, default=50.0, help="stop after this many seconds (default 50)"
    )
    parser.add_argument("--pace", type=float, default=0.05, help="seconds per simulated day, to watch it run")
    parser.add_argument("--month", default="2026-11", help="the billing month to simulate, YYYY-MM")
    parser.add_argument(
        "--ports",
        choices=("config", "auto"),
        default="config",
        help="config: the [aaa] ports of the config, free ones if taken (default); auto: free ports",
    )
    parser.add_argument(
        "--log", default="var/demo-billingd.log", help="billingd's log file (default: var/demo-billingd.log)"
    )
    args = parser.parse_args(argv)

    deadline = time.monotonic() + max(args.duration, 1.0)
    console = Console(width=None if sys.stdout.isatty() else 120)
    config = load_config(args.config)
    engine = make_engine(config.database.sqlalchemy_url())
    sessions = session_factory(engine)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        year, month = (int(part) for part in args.month.split("-"))
        console.rule(f"[bold]{config.isp.name}[/]: billing demo, {args.month}, {config.isp.currency}")
        actor = _operator(sessions)
        try:
            people = _seed(sessions, actor, config)
        except AlreadySeeded as exc:
            console.print(f"[red]{exc}[/]")
            return 1
        _simulate_month(console, sessions, actor, config, people, date(year, month, 1), deadline, args.pace)
        _report(console, sessions, config, people, date(year, month, 1))
        if _check(console, sessions):
            return 1
        return AaaDemo(console, config, Path(args.config), engine, args, deadline).run()
    except (KeyboardInterrupt, Stop):
        console.print("[yellow]interrupted[/]")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine.dispose()


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def _operator(sessions: sessionmaker[Session]) -> Actor:
    """The demo runs as the OS login, made the first operator (admin) of a fresh database."""
    login = getpass.getuser()
    with sessions.begin() as s:
        if not operators.list_all(s):
            operators.bootstrap(s, Actor(None, login, None, "demo"), login, f"Demo operator ({login})")
        return resolve_actor(s, login, source="demo")


def _seed(sessions: sessionmaker[Session], actor: Actor, config: Config) -> list[Subscriber]:
    """Dictionaries, speed profiles, and the subscribers with their accounts and Internet services."""
    with sessions.begin() as s:
        if s.scalar(select(Service.id).where(Service.login == "demo")) is not None:
            raise AlreadySeeded(
                "This database already holds the demo subscribers; `make demo` starts from a fresh "
                "var/demo.db (or remove it and run `billing-admin --config conf/demo.toml db upgrade`)."
            )
        for kind, values in SEED_DICTIONARIES.items():
            present = {v.code for v in dictionaries.list_values(s, kind)}
            for order, (code, name) in enumerate(values):
                if code not in present:
                    dictionaries.add(s, actor, kind, code, name, sort_order=order)
        profiles = {}
        for plan in PLANS.values():
            profile = SpeedProfile(name=plan.profile, down_kbps=plan.down_kbps, up_kbps=plan.up_kbps)
            s.add(profile)
            profiles[plan.profile] = profile
        s.flush()
        people = []
        for person in PEOPLE:
            slug = person.name.split()[0].lower()
            business = person.category == "business"
            info = subscribers.create(
                s,
                actor,
                kind=person.kind,
                name=person.name,
                category=person.category,
                region=person.region,
                currency=config.isp.currency,
                emails=(f"{slug}@example.net",),
                credit_limit=person.credit_limit or ("50" if business else "0"),
                billing_mode="postpaid" if business and person.credit_limit is None else "prepaid",
            )
            account = accounts.find(s, info.accounts[0].number)
            service = Service(
                account_id=account.id,
                kind="internet",
                status="active",
                speed_profile_id=profiles[PLANS[person.category].profile].id,
                login=person.login or None,
                password=person.password or None,
                framed_pool="main",
            )
            s.add(service)
            s.flush()
            if person.mac:
                s.add(ServiceMac(mac=person.mac, service_id=service.id))
            people.append(Subscriber(account.number, person, account.ledger_account_id))
    return people


def _simulate_month(
    console: Console,
    sessions: sessionmaker[Session],
    actor: Actor,
    config: Config,
    people: list[Subscriber],
    first: date,
    deadline: float,
    pace: float,
) -> None:
    rng = random.Random(2026)
    currency = config.isp.currency
    zone = config.isp.tzinfo
    day = first
    while day.month == first.month:
        if time.monotonic() > deadline:
            console.print(f"[yellow]--duration reached: stopping the month at {day.isoformat()}[/]")
            return
        at = datetime(day.year, day.month, day.day, 6, 0, tzinfo=zone)
        charges, payments = [], []
        with sessions.begin() as s:
            revenue = book_account(s, "revenue", currency, "internet")
            bank = book_account(s, "clearing", currency, "demo-bank")
            for person in people:
                plan = PLANS[person.category]
                if plan.daily or day == first:
                    charges.append(_charge(person, plan, revenue, at, day))
                if person.person.payer == "upfront" and day == first:
                    payments.append(_payment(person, bank, UPFRONT_PAYMENT, at + timedelta(hours=1), day))
                elif person.person.payer == "random" and rng.random() < 0.08:
                    amount = round_to_minor(
                        plan.fee * (30 if plan.daily else 1) * Decimal(rng.choice([1, 1, 2])), 2
                    )
                    payments.append(
                        _payment(person, bank, amount, at + timedelta(hours=rng.randint(2, 14)), day)
                    )
            posted = ledger.post_batch(s, charges + payments)
            if day.day == 10:
                accounts.adjust(
                    s, actor, people[1].number, "5.00", "outage", key=f"demo:{day}:outage", effective_at=at
                )
            if day.day == 20 and payments:
                ledger.reverse(
                    s,
                    posted[-1].id,
                    idempotency_key=f"demo:{day}:recall",
                    effective_at=at + timedelta(hours=16),
                    description="payment recalled by the bank",
                    operator_id=actor.operator_id,
                )
        charged = sum((leg.amount for r in charges for leg in r.legs if leg.amount > 0), Decimal(0))
        paid = sum((leg.amount for r in payments for leg in r.legs if leg.amount > 0), Decimal(0))
        notes = {10: "  + outage credit", 20: "  + a payment recalled" if payments else ""}.get(day.day, "")
        console.print(
            f"{day.isoformat()}  charges {len(charges):>2} = {format_amount(charged):>8} {currency}   "
            f"payments {len(payments):>2} = {format_amount(paid):>8} {currency}{notes}"
        )
        time.sleep(pace)
        day += timedelta(days=1)


def _charge(person: Subscriber, plan: Plan, revenue: int, at: datetime, day: date) -> TransactionRequest:
    period = day.isoformat() if plan.daily else day.strftime("%Y-%m")
    return TransactionRequest(
        idempotency_key=f"charge:{person.number}:{period}",
        kind="charge",
        legs=(Leg(person.ledger_account_id, plan.fee), Leg(revenue, -plan.fee)),
        effective_at=at,
        description=f"{plan.name}, {period}",
    )


def _payment(person: Subscriber, bank: int, amount: Decimal, at: datetime, day: date) -> TransactionRequest:
    reference = f"{day:%Y%m%d}-{person.number}"
    return TransactionRequest(
        idempotency_key=f"payment:demo-bank:{reference}",
        kind="payment",
        legs=(Leg(bank, amount), Leg(person.ledger_account_id, -amount)),
        effective_at=at,
        description=f"bank transfer {reference}",
    )


def _report(
    console: Console, sessions: sessionmaker[Session], config: Config, people: list[Subscriber], first: date
) -> None:
    table = Table(title="Balances at the end of the month (positive: the customer's funds)")
    for column in ("account", "subscriber", "category", "internet", "mode", "balance", "limit", "available"):
        table.add_column(column, justify="right" if column in ("balance", "limit", "available") else "left")
    with sessions() as s:
        for person in people:
            info = accounts.balance(s, person.number)
            account = subscribers.show(s, person.number).accounts[0]
            style = "red" if info.available < 0 else ""
            line = person.person
            table.add_row(
                person.number,
                person.name,
                person.category,
                f"{line.login}/{line.password}" if line.login else f"IPoE {line.mac}",
                account.billing_mode,
                f"[{style}]{format_amount(info.balance)}[/]" if style else format_amount(info.balance),
                format_amount(info.credit_limit),
                format_amount(info.available),
            )
        console.print(table)
        zone = config.isp.tzinfo
        start = datetime(first.year, first.month, 1, tzinfo=zone)
        end = datetime(first.year + first.month // 12, first.month % 12 + 1, 1, tzinfo=zone)
        shown = people[1]
        st = accounts.statement(s, shown.number, start, end)
    lines = Table(title=f"Statement of account {shown.number} ({shown.name}), {first:%Y-%m}")
    for column in ("date", "transaction", "kind", "description", "amount", "balance"):
        lines.add_column(
            column, justify="right" if column in ("amount", "balance", "transaction") else "left"
        )
    lines.add_row("", "", "", "opening balance", "", format_amount(st.opening))
    for line in st.lines:
        local = line.effective_at.astimezone(config.isp.tzinfo)
        lines.add_row(
            local.strftime("%Y-%m-%d %H:%M"),
            str(line.transaction_id),
            line.kind,
            line.description,
            format_amount(line.amount),
            format_amount(line.balance_after),
        )
    lines.add_row("", "", "", "closing balance", "", format_amount(st.closing))
    console.print(lines)


def _check(console: Console, sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        violations = check_ledger(s)
    if violations:
        for violation in violations:
            console.print(f"[red]{violation}[/]")
        return 1
    console.print(
        "[green]Ledger invariants hold[/]: every transaction balances, cached balances match postings."
    )
    return 0


# --------------------------------------------------------------------------- the AAA part, live

LIVE_MAX_S = 60.0  # the simulator runs at most this long, whatever --duration says
TEARDOWN_S = 3.0  # kept back at the end: the simulator's final Stops, billingd's drain and exit
SIM_STARTUP_S = 1.0  # the simulator's interpreter start and imports, before its clock starts
MIN_LIVE_S = 3.0  # less than this left for traffic once billingd is up: no live part
READY_TIMEOUT_S = 20.0  # billingd's start-up, at most
TICK_S = 1.5  # how often the live summary is printed
SIM_INTERIM_S = 2.0  # Interim-Update interval of the simulated BRAS
SIM_TIMEOUT_S, SIM_RETRIES = 1.0, 2  # per request: at most 2 s, also for the final Stops
_READY = re.compile(r"RADIUS listening on (\S+) auth (\d+) acct (\d+) metrics (\d+)")
_SIM_ACCESS = re.compile(
    r"access:\s+requests (\d+), accepted (\d+), rejected (\d+), challenged \d+, timeouts (\d+)"
)
_SIM_ACCT = re.compile(
    r"accounting: requests (\d+), acknowledged (\d+), timeouts (\d+) \(start (\d+), interim (\d+), stop (\d+)"
)


@dataclass(frozen=True)
class Ports:
    """billingd's listening ports; 0 = any free port (billingd logs the ones it got)."""

    auth: int
    acct: int
    metrics: int


@dataclass
class Observation:
    """What billingd's metrics endpoint and the database show at one moment (None: not readable)."""

    accepted: int | None = None
    walled: int | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    acct_stored: int | None = None
    snapshot: int | None = None
    online: int | None = None
    sessions: int | None = None
    usage_rows: int | None = None
    octets_in: int = 0
    octets_out: int = 0

    def line(self, elapsed: float) -> str:
        """One line of the live summary."""
        rejected = sum(self.rejected.values()) if self.accepted is not None else None
        return (
            f"  +{elapsed:4.1f}s  online {_n(self.online):>3} | accept {_n(self.accepted):>3}  walled "
            f"{_n(self.walled):>2}  reject {_n(rejected):>2} | acct stored {_n(self.acct_stored):>4} | "
            f"radius_sessions {_n(self.sessions):>3}  session_usage {_n(self.usage_rows):>4}"
        )


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def _size(octets: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if octets < 1000 or unit == "GB":
            return f"{octets:.0f} {unit}" if unit == "B" else f"{octets:.1f} {unit}"
        octets /= 1000  # type: ignore[assignment]
    return f"{octets} B"


class AaaDemo:
    """billingd and the BRAS simulator as subprocesses, watched until the deadline, then stopped.

    The simulator runs as ``billing-sim bras`` (``python -m simulators.main``), not through its
    Python API: ``billing`` must not import ``simulators`` (tests/test_layout.py). Its live
    figures therefore come from billingd's side (metrics, database); its own counts are read
    from the summary it prints when it ends.
    """

    def __init__(
        self,
        console: Console,
        config: Config,
        config_path: Path,
        engine: Engine,
        args: argparse.Namespace,
        deadline: float,
    ) -> None:
        self.console = console
        self.config = config
        self.config_path = config_path
        self.engine = engine
        self.auto_ports = args.ports == "auto"
        self.log_path = Path(args.log)
        self.deadline = deadline
        self.host = "127.0.0.1"
        self.ports = Ports(0, 0, 0)
        self.busy: list[str] = []

    def run(self) -> int:
        """The live part; 0 when it ran or was skipped with a reason, 1 when billingd failed."""
        aaa = self.config.aaa
        left = self.deadline - time.monotonic() - TEARDOWN_S
        if left < MIN_LIVE_S + 2:
            self.console.print(
                f"[yellow]Only {max(left, 0):.0f} s left of --duration: no time to start billingd and "
                "the BRAS simulator (give it DURATION=15 or more).[/]"
            )
            return 0
        nas = aaa.client_for("127.0.0.1")
        if nas is None:
            self.console.print(
                f"{self.config_path} has no [[aaa.nas]] for 127.0.0.1: no live part.",
                style="yellow",
                markup=False,
            )
            return 0
        self.console.rule("[bold]AAA[/]: billingd and a simulated BRAS on loopback")
        ports = self._choose_ports()
        with tempfile.TemporaryDirectory(prefix="billing-demo-") as work:
            workdir = Path(work)
            config_path = self._config_for(ports, workdir)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("wb") as log:
                billingd = subprocess.Popen(
                    [sys.executable, "-m", "billing.daemon", "--config", str(config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us; we stop it in order
                )
            simulator: subprocess.Popen[bytes] | None = None
            try:
                if not self._wait_ready(billingd):
                    return 1
                self._try_it("While it runs, try it from another terminal", self.ports.auth)
                duration = min(self.deadline - time.monotonic() - TEARDOWN_S - SIM_STARTUP_S, LIVE_MAX_S)
                simulator, sim_out = self._start_simulator(workdir, nas.secret.decode(), duration)
                began = time.monotonic()
                self.console.print(
                    f"BRAS simulator: {len(PEOPLE)} subscribers, Interim-Update every {SIM_INTERIM_S:g} s, "
                    f"a little churn; {duration:.0f} s of traffic.\nLive, every {TICK_S:g} s, from "
                    f"billingd's metrics and {self.engine.url.render_as_string()}:",
                    soft_wrap=True,
                )
                try:
                    self._watch(simulator, began, began + duration + SIM_TIMEOUT_S * SIM_RETRIES + 2)
                except (KeyboardInterrupt, Stop):
                    self.console.print("[yellow]interrupted: stopping the simulator and billingd[/]")
                traffic = min(duration, time.monotonic() - began)
                final = self._observe()
                self._stop(simulator, "the BRAS simulator", grace=2, first=signal.SIGINT)
                simulator = None
            finally:
                if simulator is not None:
                    self._stop(simulator, "the BRAS simulator", grace=2, first=signal.SIGINT)
                code = self._stop(billingd, "billingd", grace=15)
            drained = b"stopped; accounting drained" in self.log_path.read_bytes()
            if code == 0 and drained:
                self.console.print("billingd stopped on SIGTERM: accounting drained, exit 0")
            else:
                self.console.print(f"[yellow]billingd exited with {code}; see {self.log_path}[/]")
            self._summary(final, self._database(), sim_out.read_text(errors="replace"), traffic)
        configured = self.config.aaa.listen.auth_port
        when_free = (
            f" once {', '.join(self.busy)} {'is' if len(self.busy) == 1 else 'are'} free" if self.busy else ""
        )
        self._try_it(
            f"billingd has stopped. To try radtest at leisure, start it again on this data{when_free} "
            f"(Ctrl-C stops it):\n  .venv/bin/billingd --config {self.config_path}\nthen",
            configured or None,
        )
        return 0

    # ------------------------------------------------------------------ set-up

    def _choose_ports(self) -> Ports:
        aaa = self.config.aaa
        wanted = Ports(0, 0, 0) if self.auto_ports else Ports(
            aaa.listen.auth_port, aaa.listen.acct_port, aaa.metrics_port
        )  # fmt: skip
        self.busy = busy = _busy_ports(aaa.listen.address, aaa.metrics_address, wanted)
        if busy:
            for what in busy:
                self.console.print(f"[yellow]{what} is already in use (another RADIUS server or demo?)[/]")
            self.console.print("[yellow]Using free ports instead; they are printed below.[/]")
            return Ports(0, 0, 0)
        return wanted

    def _config_for(self, ports: Ports, workdir: Path) -> Path:
        """The config billingd gets: the demo's own, or a copy with other ``[aaa]`` ports."""
        aaa = self.config.aaa
        if ports == Ports(aaa.listen.auth_port, aaa.listen.acct_port, aaa.metrics_port):
            return self.config_path
        copy = workdir / self.config_path.name
        copy.write_text(_with_ports(self.config_path.read_text(encoding="utf-8"), ports), encoding="utf-8")
        return copy

    def _wait_ready(self, billingd: subprocess.Popen[bytes]) -> bool:
        """Wait for billingd's "RADIUS listening" line; on failure say why and show its log."""
        until = min(time.monotonic() + READY_TIMEOUT_S, self.deadline - TEARDOWN_S - MIN_LIVE_S)
        while time.monotonic() < until and billingd.poll() is None:
            found = _READY.search(self.log_path.read_text(errors="replace"))
            if found:
                listen = found[1] if found[1] not in ("0.0.0.0", "::") else "127.0.0.1"
                self.host = listen
                self.ports = Ports(int(found[2]), int(found[3]), int(found[4]))
                self.console.print(
                    f"billingd is up (pid {billingd.pid}, log {self.log_path}): RADIUS auth "
                    f"{listen}:{self.ports.auth}, accounting {listen}:{self.ports.acct},\n  metrics "
                    f"http://{self.config.aaa.metrics_address}:{self.ports.metrics}/metrics",
                    soft_wrap=True,
                )
                return True
            time.sleep(0.1)
        if billingd.poll() is None:
            self.console.print('[red]billingd did not report "RADIUS listening" in time[/]')
        else:
            self.console.print(f"[red]billingd exited with {billingd.returncode} while starting[/]")
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.console.print(tail, markup=False, highlight=False)
        return False

    def _start_simulator(
        self, workdir: Path, secret: str, duration: float
    ) -> tuple[subprocess.Popen[bytes], Path]:
        roster = workdir / "subscribers.csv"
        with roster.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(("login", "password", "method", "kind", "mac"))
            for p in PEOPLE:
                writer.writerow((p.login, p.password, p.method, "pppoe" if p.login else "ipoe", p.mac))
        out = workdir / "bras.out"
        command = [
            sys.executable, "-m", "simulators.main", "bras",
            "--server", self.host, "--auth-port", str(self.ports.auth), "--acct-port", str(self.ports.acct),
            "--secret", secret, "--subscribers", str(roster), "--duration", f"{duration:.1f}",
            "--interim", f"{SIM_INTERIM_S:g}", "--churn", "0.05", "--coa-port", "0",
            "--timeout", f"{SIM_TIMEOUT_S:g}", "--retries", str(SIM_RETRIES),
            "--nas-identifier", "demo-bras", "--seed", "2026",
        ]  # fmt: skip
        with out.open("wb") as sink:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return process, out

    # ------------------------------------------------------------------ watching

    def _watch(self, simulator: subprocess.Popen[bytes], began: float, until: float) -> None:
        """Print the live summary every TICK_S seconds until the simulator ends (or ``until``)."""
        next_tick = began + TICK_S
        while simulator.poll() is None and time.monotonic() < until:
            time.sleep(max(0.0, min(next_tick, until) - time.monotonic()))
            if simulator.poll() is not None:
                break
            if time.monotonic() >= next_tick:
                self.console.print(
                    self._observe().line(time.monotonic() - began), highlight=False, soft_wrap=True
                )
                next_tick += TICK_S

    def _observe(self) -> Observation:
        seen = self._database()
        try:
            url = f"http://{self.config.aaa.metrics_address}:{self.ports.metrics}/metrics"
            with urllib.request.urlopen(url, timeout=1) as response:
                body = response.read().decode()
        except OSError:
            return seen
        seen.accepted, seen.walled, seen.acct_stored = 0, 0, 0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == "billingd_snapshot_subscribers":
                    seen.snapshot = int(sample.value)
                if sample.name != "billingd_radius_requests_total":
                    continue
                kind, outcome, count = sample.labels["type"], sample.labels["outcome"], int(sample.value)
                if kind == "access_request":
                    if outcome == "accept":
                        seen.accepted += count
                    elif outcome.startswith("walled_garden"):
                        seen.walled += count
                    elif outcome not in ("bad_authenticator", "no_message_authenticator"):
                        seen.rejected[outcome] = seen.rejected.get(outcome, 0) + count
                elif kind == "accounting_request" and outcome == "stored":
                    seen.acct_stored += count
        return seen

    def _database(self) -> Observation:
        seen = Observation()
        try:
            with self.engine.connect() as conn:
                seen.sessions, seen.online = conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END), 0)"
                        " FROM radius_sessions"
                    )
                ).one()
                seen.usage_rows, seen.octets_in, seen.octets_out = conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(input_octets), 0), coalesce(sum(output_octets), 0)"
                        " FROM session_usage"
                    )
                ).one()
        except SQLAlchemyError:
            pass  # busy for a moment: "?" this time
        return seen

    # ------------------------------------------------------------------ ending

    def _stop(
        self, process: subprocess.Popen[bytes], name: str, grace: float, first: int = signal.SIGTERM
    ) -> int:
        """Signal ``first`` (unless it already ended), wait ``grace`` seconds, then SIGKILL.

        The simulator gets SIGINT (it then prints its summary), billingd SIGTERM (it drains its
        accounting). Another Ctrl-C while waiting kills at once: nothing is left behind.
        """
        try:
            if process.poll() is None:
                process.send_signal(first)
            return process.wait(timeout=grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt, Stop):
            self.console.print(f"[yellow]{name} did not stop within {grace:g} s: killed[/]")
            process.kill()
            return process.wait()

    def _summary(self, final: Observation, stored: Observation, sim_output: str, traffic: float) -> None:
        table = Table(title=f"AAA summary: {traffic:.0f} s of traffic", show_header=False)
        table.add_column("from")
        table.add_column("what")
        access, acct = _SIM_ACCESS.search(sim_output), _SIM_ACCT.search(sim_output)
        if access and acct:
            table.add_row(
                "BRAS simulator",
                f"access requests {access[1]}: accepted {access[2]}, rejected {access[3]}, "
                f"timeouts {access[4]}",
            )
            table.add_row(
                "",
                f"accounting requests {acct[1]}: acknowledged {acct[2]}, timeouts {acct[3]} "
                f"(start {acct[4]}, interim {acct[5]}, stop {acct[6]})",
            )
        else:
            table.add_row("BRAS simulator", "no summary; its output:\n" + sim_output[-1500:])
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(final.rejected.items())) or "none"
        table.add_row(
            "billingd",
            f"Access-Accept {_n(final.accepted)} + walled garden {_n(final.walled)}; "
            f"Access-Reject {sum(final.rejected.values())} ({reasons})",
        )
        table.add_row(
            "", f"accounting stored {_n(final.acct_stored)}; snapshot {_n(final.snapshot)} subscribers"
        )
        table.add_row(
            "database",
            f"radius_sessions {_n(stored.sessions)} (open {_n(stored.online)}), session_usage "
            f"{_n(stored.usage_rows)} rows: {_size(stored.octets_out)} down, {_size(stored.octets_in)} up",
        )
        self.console.print(table)

    def _try_it(self, intro: str, auth_port: int | None) -> None:
        """The radtest lines for ``auth_port`` (None: the port billingd logs when it starts)."""
        port = "" if auth_port == 1812 else f":{auth_port or 'PORT'}"
        secret = "testing123"
        nas = self.config.aaa.client_for("127.0.0.1")
        if nas is not None:
            secret = nas.secret.decode()
        self.console.print(
            f"{intro} (FreeRADIUS's radtest, Debian package freeradius-utils):\n"
            f"  radtest demo demo {self.host}{port} 0 {secret}     # Access-Accept, with the speed profile\n"
            f'  radtest broke broke {self.host}{port} 0 {secret}   # Access-Reject: "out of funds"',
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _busy_ports(listen: str, metrics_address: str, ports: Ports) -> list[str]:
    """Which of the wanted ports something else holds, e.g. "UDP 127.0.0.1:1812 (RADIUS auth)"."""
    busy = []
    for what, address, port, kind in (
        ("RADIUS auth", listen, ports.auth, socket.SOCK_DGRAM),
        ("RADIUS accounting", listen, ports.acct, socket.SOCK_DGRAM),
        ("billingd metrics", metrics_address, ports.metrics, socket.SOCK_STREAM),
    ):
        if port == 0:
            continue
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:  # as the daemon does: a TIME_WAIT left over is no owner
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                busy.append(f"{'UDP' if kind == socket.SOCK_DGRAM else 'TCP'} {address}:{port} ({what})")
    return busy


def _with_ports(config_text: str, ports: Ports) -> str:
    """The config text with ``auth_port``, ``acct_port`` and ``metrics_port`` of ``[aaa]`` replaced."""
    lines = config_text.splitlines()
    wanted = {"auth_port": ports.auth, "acct_port": ports.acct, "metrics_port": ports.metrics}
    header = next((i for i, line in enumerate(lines) if line.strip() == "[aaa]"), None)
    if header is None:
        first_sub = next(
            (i for i, line in enumerate(lines) if line.lstrip().startswith(("[aaa.", "[[aaa."))), len(lines)
        )
        lines[first_sub:first_sub] = ["[aaa]", *(f"{k} = {v}" for k, v in wanted.items()), ""]
        return "\n".join(lines) + "\n"
    end = next((i for i in range(header + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for i in range(header + 1, end):
        found = re.match(r"\s*(auth_port|acct_port|metrics_port)\s*=", lines[i])
        if found:
            lines[i] = f"{found[1]} = {wanted.pop(found[1])}"
    lines[header + 1 : header + 1] = [f"{k} = {v}" for k, v in wanted.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
