"""A year of daily charge runs: each tariff kind's ledger, exactly, after every run and every event.

What: one world per database holds one subscription (each on its own account) per case below.
A test clock moves day by day from 2027-01-01 to 2028-01-01 (the last run closes December's
post-paid period); each day the charge run of that day runs (its lifecycle evaluation at 01:00,
rules :data:`billing.lifecycle_rules.DEFAULT_RULES` in UTC, as :class:`tests.test_charge_run.World`
does), then the day's events happen at noon (payments, customer requests). After every run and
every event the world records, for each subscription, a :class:`Step`: the ledger lines that step
added to the subscriber account (key without the ``charge:{service}:`` prefix, signed: positive
is money to the subscriber's credit, negative a charge), the account's balance, the service's
status and tariff (and, separately, the provisioning tasks it wrote). Each test then compares
one kind's whole journal with the journal it expects, step by step: 367 steps or more per
subscription, so a missing, extra, early, late or mispriced
line fails at the exact step (its label names the day).

Why this way: the acceptance point of the charge-run issue asks for the exact ledger after each
day of a year for each tariff kind; unit tests price one period at a time, and only a clock over
a year shows periods, adjustments, promotion phases, usage rating and the lifecycle fitting
together. The expectations are derived, not copied from the run: from the prices in
``tests/golden/charges/catalog.toml`` (read below) and the calendar, with plain ``Decimal``
arithmetic (a period's amount is the sum of its days' fees over its length, rounded once to the
cent, half up: ``actual_days`` proration).

Speed: a run costs 40-60 ms however few services there are (the catalog is loaded, the run row
written, ...) and a few ms more per service, so all the cases share one year per database (a
module-scoped fixture, built once and never asserted on while built) and each test reads its
own subscriptions' journals. SQLite's pause after each write transaction (it lets a waiting
payment in; nothing waits here) is set to zero while the year runs, and PostgreSQL commits
without waiting for the WAL flush. About 25 s a database on the 2-core machine.
"""

from __future__ import annotations

import math
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, charge_run, ledger, service_lifecycle, subscribers
from billing.audit import Actor
from billing.books import book_account
from billing.catalog import assign_tariff
from billing.db.customers import Account
from billing.db.engine import make_engine, session_factory
from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.db.lifecycle import ProvisioningTask
from billing.db.services import Service
from billing.db.sessions import RadiusSession, SessionUsage
from billing.invariants import check_ledger
from billing.lifecycle_rules import DEFAULT_RULES
from tests.charge_world import GOLDEN, charging_operator
from tests.conftest import Templates

RULES = service_lifecycle.rules_for(UTC)
FIRST, LAST = date(2027, 1, 1), date(2028, 1, 1)
DAYS = tuple(FIRST + timedelta(n) for n in range((LAST - FIRST).days + 1))
GB = 10**9
CENT = Decimal("0.01")
FUNDS = Decimal("1000.00")

Line = tuple[str, Decimal]
"""A ledger line of the subscriber account: (idempotency key without ``charge:{service}:``, signed amount)."""


# --------------------------------------------------------------------------- the catalog's prices

CATALOG: dict[str, Any] = tomllib.loads((GOLDEN / "catalog.toml").read_text())


def _version(code: str) -> dict[str, Any]:
    (tariff,) = [t for t in CATALOG["tariffs"] if t["code"] == code]
    (version,) = tariff["versions"]
    return version


def _fee(code: str) -> Decimal:
    return Decimal(_version(code)["fee"])


M_PRE, M_BIG, D_PRE, Y_PRE, U_POST = (_fee(c) for c in ("M-PRE", "M-BIG", "D-PRE", "Y-PRE", "U-POST"))
(_INSTALLATION,) = _version("M-PRE")["one_time_fees"]
INSTALLATION = Decimal(_INSTALLATION["amount"])
(WELCOME,) = [p for p in CATALOG["promotions"] if p["code"] == "WELCOME"]
TRIAL, PROMO = WELCOME["phases"]  # the first month free, then two months at a percentage off

_USAGE = _version("U-POST")["usage"]
(NIGHT,) = _USAGE["bands"]
ALLOWANCE = int(Decimal(_USAGE["allowance"]["included"].removesuffix(" GB")) * GB)
OVERAGE = {p["direction"]: Decimal(p["price"]) for p in _USAGE["allowance"]["overage_prices"]}
FREE_AT_NIGHT = {p["direction"] for p in _USAGE["prices"] if p.get("band") == NIGHT["name"] and p.get("free")}


def test_the_catalog_has_the_prices_the_expectations_are_written_for() -> None:
    assert (M_PRE, M_BIG, D_PRE, Y_PRE, U_POST, INSTALLATION) == (31, 62, 1, 365, 20, 50)
    assert (_version("Y-PRE")["period"], _version("D-PRE")["proration"]) == ("annual", "none")
    assert (TRIAL["months"], TRIAL["free"], PROMO["months"], PROMO["percent_off"]) == (1, True, 2, "50")
    assert ALLOWANCE == 10 * GB
    assert OVERAGE == {"in": 1, "out": 1}
    assert sorted(FREE_AT_NIGHT) == ["in"]
    assert (NIGHT["start"], NIGHT["end"]) == (clock_time(1), clock_time(7))
    rules = RULES.lookup("internet", "residential")
    assert rules == DEFAULT_RULES.lookup("internet", "residential")
    days = (rules.grace_days, rules.churn_after_days, rules.voluntary_max_days, rules.voluntary_days_per_year)
    assert days == (5, 90, 90, 90)
    assert rules.voluntary_fee.amount(M_PRE) == 0


# --------------------------------------------------------------------------- calendar arithmetic


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later (days up to 28 only, which is all this file uses)."""
    assert day.day <= 28
    index = day.month - 1 + months
    return date(day.year + index // 12, index % 12 + 1, day.day)


def amount(fee_on: Callable[[date], Decimal], start: date, end: date, first: date | None = None) -> Decimal:
    """What the days ``[first or start, end)`` of the period ``[start, end)`` cost, rounded once.

    ``fee_on(day)`` is the fee of the whole period at that day's price: each day costs its
    fee over the period's length in days (``actual_days``); the sum is rounded to the cent.
    """
    charged = [(first or start) + timedelta(n) for n in range((end - (first or start)).days)]
    total = sum((fee_on(day) for day in charged), Decimal(0))
    return (total / (end - start).days).quantize(CENT, rounding=ROUND_HALF_UP)


def share(fee: Decimal, start: date, end: date, first: date, last: date | None = None) -> Decimal:
    """The days ``[first, last or end)`` of the period ``[start, end)`` at ``fee``, rounded once."""
    return amount(lambda day: fee if day < (last or end) else Decimal(0), start, end, first)


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Subscription:
    """One service on its own account, funded on 2026-12-01 (before the first run)."""

    tariff: str
    activated_on: date
    anchor: int = 1
    promotion: str | None = None
    funds: Decimal = FUNDS


SUBSCRIPTIONS: dict[str, Subscription] = {
    "monthly": Subscription("M-PRE", date(2027, 1, 10)),
    "monthly-anchor-15": Subscription("M-PRE", date(2027, 4, 10), anchor=15),
    "daily": Subscription("D-PRE", FIRST),
    "annual": Subscription("Y-PRE", date(2027, 3, 5), anchor=5),
    "annual-mid-period": Subscription("Y-PRE", date(2027, 6, 20)),
    "postpaid-usage": Subscription("U-POST", FIRST),
    "postpaid-mid-month": Subscription("U-POST", date(2027, 2, 10)),
    "promo": Subscription("M-PRE", FIRST, promotion="WELCOME"),
    "promo-mid-month": Subscription("M-PRE", date(2027, 1, 10), promotion="WELCOME"),
    "voluntary": Subscription("M-PRE", FIRST),
    "tariff-change": Subscription("M-PRE", FIRST),
    "unpaid-resumed": Subscription("M-PRE", FIRST, funds=Decimal("81.00")),  # installation + January
    "unpaid-churned": Subscription("M-PRE", FIRST, funds=Decimal("81.00")),
}


def noon(day: date) -> datetime:
    return datetime.combine(day, clock_time(12), tzinfo=UTC)


@dataclass(frozen=True)
class Payment:
    """A bank payment: bank clearing debit, subscriber account credit."""

    at: datetime
    amount: Decimal
    bank_tx: str

    @property
    def label(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} payment {self.amount}"

    @property
    def lines(self) -> tuple[Line, ...]:
        return ((f"pay:bank1:{self.bank_tx}", self.amount),)


@dataclass(frozen=True)
class Request:
    """A customer's request, applied at once by an operator (``at_day``: scheduled for that day)."""

    at: datetime
    event: str
    until: date | None = None
    tariff: str | None = None
    at_day: date | None = None
    lines: tuple[Line, ...] = ()  # a request moves no money by itself

    @property
    def label(self) -> str:
        what = [self.event] + [f"{k} {v}" for k, v in (("to", self.tariff), ("until", self.until)) if v]
        return f"{self.at:%Y-%m-%d %H:%M} {' '.join(what)}" + (f" on {self.at_day}" if self.at_day else "")


Event = Payment | Request

EVENTS: dict[str, tuple[Event, ...]] = {
    "voluntary": (
        Request(noon(date(2027, 1, 10)), "suspend_voluntary", until=date(2027, 2, 21)),
        Request(noon(date(2027, 7, 20)), "suspend_voluntary", until=date(2027, 8, 31)),
        Request(noon(date(2027, 8, 20)), "resume"),  # back early
    ),
    "tariff-change": (
        Request(noon(date(2027, 1, 15)), "change_tariff", tariff="M-BIG"),
        Request(noon(date(2027, 6, 20)), "change_tariff", tariff="M-PRE"),
        Request(noon(date(2027, 9, 20)), "change_tariff", tariff="M-BIG", at_day=date(2027, 10, 1)),
    ),
    "unpaid-resumed": (
        Payment(noon(date(2027, 2, 10)), Decimal("100.00"), "778"),
        Payment(noon(date(2027, 4, 20)), Decimal("300.00"), "779"),
    ),
}


class Usage(NamedTuple):
    """A ``session_usage`` row: recorded at ``at`` after ``seconds`` of session time."""

    at: datetime
    upload: int
    download: int
    seconds: int = 3600


def at(month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0, year: int = 2027) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


USAGE: tuple[Usage, ...] = (
    # January: 9 GB counted, within the 10 GB allowance: no usage line
    Usage(at(1, 5), 1 * GB, 4 * GB),
    Usage(at(1, 20), GB // 2, 7 * GB // 2),
    # February: 9 GB counted (the night's 30 GB download is free), then 2.2 GB of download and
    # 0.3 GB of upload over the allowance: 3 GB + 1 GB at the overage price (whole GB, rounded up)
    Usage(at(2, 3), 2 * GB, 6 * GB),
    Usage(at(2, 14, 4), 1 * GB, 30 * GB),  # 03:00-04:00: night
    Usage(at(2, 25), 0, 32 * GB // 10),
    Usage(at(2, 28, 23, 59, 59), 3 * GB // 10, 0, 7200),  # the period's last second
    # March: recorded at its first instant; then a free night download past the allowance
    Usage(at(3, 1, 0), 5 * GB, 5 * GB, 60),
    Usage(at(3, 10, 4), 0, 20 * GB),
    Usage(at(3, 31, 23, 59, 59), 3 * GB // 2, 0, 7200),  # 1.5 GB over: 2 GB
    # April: a session from 23:30 on March 31 recorded at 00:30 on April 1 is April's; exactly
    # the allowance in all: no usage line
    Usage(at(4, 1, 0, 30), 4 * GB, 4 * GB),
    Usage(at(4, 15), 0, 2 * GB),
    # May: none
    # June: 25 GB in one go: 15 GB over
    Usage(at(6, 10), 0, 25 * GB),
    # July: exactly the allowance, then 0.25 GB up and 0.75 GB down: 1 GB each
    Usage(at(7, 8), 0, 10 * GB),
    Usage(at(7, 22), GB // 4, 0),
    Usage(at(7, 23), 0, 3 * GB // 4),
    # August: 12.5 GB at the month's end: 2.5 GB over, 3 GB
    Usage(at(8, 31, 23, 59, 59), 0, 25 * GB // 2, 7200),
    # September: recorded at its first instant; 10 GB in all
    Usage(at(9, 1, 0), GB // 2, 0, 60),
    Usage(at(9, 30), 0, 19 * GB // 2),
    # October: a night: only the upload counts
    Usage(at(10, 31, 4), 1 * GB, 40 * GB),
    # November: 13 GB of download, 3 GB over, and 0.1 GB of upload past it: 3 GB + 1 GB
    Usage(at(11, 1, 0), 3 * GB, 3 * GB, 60),
    Usage(at(11, 16), 0, 7 * GB),
    Usage(at(11, 30, 23, 59, 59), GB // 10, 0, 7200),
    # December (due on 2028-01-01): 10.5 GB of download: 2 GB
    Usage(at(12, 1, 0), 0, GB // 2, 60),
    Usage(at(12, 31, 23, 59, 59), 0, 11 * GB, 7200),
    # January 2028: recorded before the 2028-01-01 run, rated only at the end of January
    Usage(at(1, 1, 0, year=2028), 1 * GB, 1 * GB, 60),
)
"""The usage of ``postpaid-usage``, each row in the database from the first run after ``at``."""


# --------------------------------------------------------------------------- the year


def cents(stored: Decimal) -> Decimal:
    """A stored amount (6 places) shown to the cent when that is exact, as it is, digits and all, if not."""
    shown = stored.quantize(CENT)
    return shown if shown == stored else stored


@dataclass(frozen=True)
class Step:
    """What one run or event did to one subscription."""

    label: str
    lines: tuple[Line, ...]  # sorted by key
    balance: Decimal
    status: str
    tariff: str


@dataclass
class Year:
    """The journals of every subscription over the days, and whatever went wrong on the way.

    By default the cases above over :data:`DAYS`; a test may give its own.
    """

    sessions: sessionmaker[Session]
    actor: Actor
    subscriptions: dict[str, Subscription] = field(default_factory=lambda: SUBSCRIPTIONS)
    events: dict[str, tuple[Event, ...]] = field(default_factory=lambda: EVENTS)
    usage: tuple[Usage, ...] = USAGE
    days: tuple[date, ...] = DAYS
    services: dict[str, int] = field(default_factory=dict)
    journals: dict[str, list[Step]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)
    outbox: dict[str, list[tuple[str, str, bool, str | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """The provisioning tasks of each service: (label of the step that wrote it, network, release, tariff)."""
    _accounts: dict[int, str] = field(default_factory=dict)  # ledger account id: subscription
    _seen: int = 0  # the last ledger transaction id looked at
    _seen_task: int = 0  # the last provisioning task id looked at

    def open(self) -> None:
        """Create the subscriptions and fund them; their first step is the funding."""
        with self.sessions.begin() as s:
            for name, sub in self.subscriptions.items():
                info = subscribers.create(
                    s,
                    self.actor,
                    kind="person",
                    name=name,
                    category="residential",
                    region="north",
                    currency="EUR",
                )
                number = info.accounts[0].number
                account = accounts.find(s, number)
                service = Service(account_id=account.id, kind="internet", status="active")
                s.add(service)
                s.flush()
                assign_tariff(
                    s,
                    self.actor,
                    service.id,
                    sub.tariff,
                    sub.activated_on,
                    promotion_code=sub.promotion,
                    billing_anchor_day=sub.anchor,
                )
                accounts.adjust(
                    s,
                    self.actor,
                    number,
                    str(sub.funds),
                    "goodwill",
                    key=f"fund-{name}",
                    effective_at=datetime(2026, 12, 1, tzinfo=UTC),
                )
                self.services[name] = service.id
                self._accounts[account.ledger_account_id] = name
        self.observe("2026-12-01 funding", self.subscriptions)

    def observe(self, label: str, names: Iterable[str]) -> None:
        """Append a step to the journals of ``names``; lines on any other account are a failure."""
        with self.sessions() as s:
            rows = s.execute(
                select(
                    LedgerTransaction.id,
                    Posting.ledger_account_id,
                    LedgerTransaction.idempotency_key,
                    Posting.amount,
                    LedgerAccount.kind,
                )
                .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                .join(LedgerAccount, LedgerAccount.id == Posting.ledger_account_id)
                .where(LedgerTransaction.id > self._seen, Posting.ledger_account_id.in_(self._accounts))
            ).all()
            states = s.execute(
                select(
                    Service.id, Service.status, Service.tariff_code, LedgerAccount.kind, LedgerAccount.balance
                )
                .join(Account, Account.id == Service.account_id)
                .join(LedgerAccount, LedgerAccount.id == Account.ledger_account_id)
                .where(Service.id.in_(self.services.values()))
            ).all()
            tasks = s.execute(
                select(
                    ProvisioningTask.id,
                    ProvisioningTask.service_id,
                    ProvisioningTask.network,
                    ProvisioningTask.release,
                    ProvisioningTask.tariff_code,
                )
                .where(ProvisioningTask.id > self._seen_task)
                .order_by(ProvisioningTask.id)
            ).all()
        self._seen = max([self._seen, *(row[0] for row in rows)])
        self._seen_task = max([self._seen_task, *(row[0] for row in tasks)])
        owners = {service_id: name for name, service_id in self.services.items()}
        for _, service_id, network, release, tariff_code in tasks:
            self.outbox[owners[service_id]].append((label, network, release, tariff_code))
        new: dict[str, list[Line]] = defaultdict(list)
        for _, account_id, key, raw, kind in rows:
            name = self._accounts[account_id]
            new[name].append(
                (
                    key.removeprefix(f"charge:{self.services[name]}:"),
                    cents(ledger.natural_balance(kind, Decimal(raw))),
                )
            )
        by_service = {row[0]: row[1:] for row in states}
        wanted = set(names)
        for name in self.subscriptions:
            if name not in wanted:
                if new.get(name):
                    self.failures.append(f"{label}: lines on {name}'s account: {new[name]}")
                continue
            status, tariff, kind, balance = by_service[self.services[name]]
            self.journals[name].append(
                Step(
                    label,
                    tuple(sorted(new.get(name, []))),
                    cents(ledger.natural_balance(kind, Decimal(balance))),
                    status,
                    tariff or "",
                )
            )

    def insert_usage(self, rows: Sequence[Usage]) -> None:
        service_id = self.services["postpaid-usage"]
        with self.sessions.begin() as s:
            for row in rows:
                radius = RadiusSession(
                    acct_unique_id=f"u{service_id}-{row.at.timestamp()}",
                    acct_session_id="s1",
                    nas_address="192.0.2.1",
                    service_id=service_id,
                    username=f"user{service_id}",
                    started_at=row.at - timedelta(seconds=row.seconds),
                    updated_at=row.at,
                )
                s.add(radius)
                s.flush()
                s.add(
                    SessionUsage(
                        session_id=radius.id,
                        service_id=service_id,
                        recorded_at=row.at,
                        input_octets=row.upload,
                        output_octets=row.download,
                        seconds=row.seconds,
                    )
                )

    def ledger_account(self, name: str) -> int:
        (found,) = [account for account, owner in self._accounts.items() if owner == name]
        return found

    def apply(self, name: str, event: Event) -> None:
        with self.sessions.begin() as s:
            if isinstance(event, Payment):
                clearing = book_account(s, "clearing", "EUR", "bank1")
                subscriber = self.ledger_account(name)
                ledger.post(
                    s,
                    ledger.TransactionRequest(
                        idempotency_key=f"pay:bank1:{event.bank_tx}",
                        kind="payment",
                        legs=(ledger.Leg(clearing, event.amount), ledger.Leg(subscriber, -event.amount)),
                        effective_at=event.at,
                        description="payment",
                    ),
                )
            else:
                service_lifecycle.apply_event(
                    s,
                    self.actor,
                    self.services[name],
                    event.event,
                    event.at,
                    reason="customer_request",
                    rules=RULES,
                    until=event.until,
                    tariff_code=event.tariff,
                    at=event.at_day,
                )
        self.observe(event.label, [name])

    def run(self) -> None:
        """Every day: the usage recorded so far, the run at 01:00, a step each, the day's events."""
        pending = sorted(self.usage)
        events = sorted(
            ((e.at, name, e) for name, es in self.events.items() for e in es), key=lambda t: t[:2]
        )
        for day in self.days:
            evaluate_at = datetime.combine(day, clock_time(1), tzinfo=UTC)
            recorded = [row for row in pending if row.at < evaluate_at]
            pending = pending[len(recorded) :]
            if recorded:
                self.insert_usage(recorded)
            result = charge_run.run_charges(
                self.sessions, day, self.actor, evaluate_at=evaluate_at, rules=RULES
            )
            if result.errors or result.lifecycle_failures:
                self.failures.append(
                    f"{day}: {result.errors}, {result.lifecycle_failures} lifecycle failures"
                )
            self.observe(f"{day} run", self.subscriptions)
            while events and events[0][0].date() == day:
                _, name, event = events.pop(0)
                self.apply(name, event)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def year(request: pytest.FixtureRequest, templates: Templates) -> Iterator[Year]:
    """The year, run once per database for all the tests of this module."""
    url = templates.sqlite() if request.param == "sqlite" else templates.postgresql()
    engine = make_engine(url, pool_size=8)
    try:
        if request.param == "postgresql":
            # Commits need not wait for the WAL flush in a test (a few ms each, thousands of them);
            # visibility, locks and isolation are unchanged.
            with engine.connect() as connection:
                connection.exec_driver_sql(
                    f"ALTER DATABASE {engine.url.database} SET synchronous_commit = off"
                )
                connection.commit()
            engine.dispose()
        sessions = session_factory(engine)
        yield run_year(Year(sessions, operator(sessions)))
    finally:
        engine.dispose()
        templates.drop(url)


def operator(sessions: sessionmaker[Session]) -> Actor:
    """The operator running everything, the dictionaries and the catalog of tests/golden/charges."""
    return charging_operator(sessions)


def run_year(year: Year) -> Year:
    """Open the subscriptions and run the days (SQLite's pause for waiting writers set to zero)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(charge_run, "SQLITE_PAUSE_MIN_S", 0.0, raising=False)
        patch.setattr(charge_run, "SQLITE_PAUSE_MAX_S", 0.0, raising=False)
        year.open()
        year.run()
    return year


# --------------------------------------------------------------------------- expectations


class Expect(NamedTuple):
    """One expected step: its label, the lines it adds (any order), and the status and tariff after it."""

    label: str
    lines: Sequence[Line] = ()
    status: str = "active"
    tariff: str | None = None  # None: the subscription's tariff


def runs(due: Callable[[date], Sequence[Line]]) -> Iterator[Expect]:
    """A run a day, each posting ``due(day)``: an active service with no events."""
    for day in DAYS:
        yield Expect(f"{day} run", due(day))


def assert_journal(year: Year, name: str, expected: Iterable[Expect]) -> None:
    """The journal of ``name`` is the funding step and then exactly ``expected``, step by step.

    The balance of each expected step is the previous one plus its lines, starting from the
    funding; compared with the account's stored balance, it checks that the lines are all there is.
    """
    sub = year.subscriptions[name]
    balance = sub.funds
    want = [Step("2026-12-01 funding", ((f"adjust:fund-{name}", sub.funds),), balance, "active", sub.tariff)]
    for step in expected:
        balance += sum((value for _, value in step.lines), Decimal(0))
        want.append(
            Step(step.label, tuple(sorted(step.lines)), balance, step.status, step.tariff or sub.tariff)
        )
    got = year.journals[name]
    for observed, wanted in zip(got, want, strict=False):
        assert observed == wanted, f"{name}, step {wanted.label}"
    assert [s.label for s in got] == [s.label for s in want]


def adjustment(fee_on: Callable[[date], Decimal], start: date, day: date, tariff: str) -> Line:
    """The adjustment due on ``day`` in the monthly period from ``start`` (a status or tariff change).

    A prepaid period is charged as known: the days from the day a line is due on keep that
    day's fee (``fee_on``: the tariff's fee at the status of the day, 0 when not on the tariff).
    So the adjustment is the period's amount as known on ``day`` minus as known the day before
    (each rounded once); as a ledger line, its negative.
    """
    end = add_months(start, 1)
    before = amount(lambda d: fee_on(min(d, day - timedelta(days=1))), start, end)
    after = amount(lambda d: fee_on(min(d, day)), start, end)
    return (f"adjustment:{start}:{tariff}:1:{day}", before - after)


def events_of(name: str, day: date) -> list[Event]:
    """The events of ``name`` on ``day`` (each a step after the day's run)."""
    return [e for e in EVENTS.get(name, ()) if e.at.date() == day]


# --------------------------------------------------------------------------- the tests


def test_monthly_prepaid_charges_the_installation_and_each_month_in_advance_from_a_mid_month_start(
    year: Year,
) -> None:
    """M-PRE activated on Jan 10 (periods from the 1st) and on Apr 10 with the anchor day 15.

    On activation: the installation fee and the rest of the current period, prorated by actual
    days (Jan 10..31: 22/31 of 31.00; Apr 10..14 of the period Mar 15..Apr 14: 5/31); then on
    each period's first day the whole monthly fee, whatever the period's length; nothing before
    activation.
    """

    def anchored_on_the_1st(day: date) -> list[Line]:
        start = SUBSCRIPTIONS["monthly"].activated_on
        if day == start:
            return [
                (f"one_time:installation:{start}", -INSTALLATION),
                ("recurring:2027-01-01:M-PRE:1", -share(M_PRE, date(2027, 1, 1), date(2027, 2, 1), start)),
            ]
        return [(f"recurring:{day}:M-PRE:1", -M_PRE)] if day > start and day.day == 1 else []

    def anchored_on_the_15th(day: date) -> list[Line]:
        start = SUBSCRIPTIONS["monthly-anchor-15"].activated_on
        if day == start:
            return [
                (f"one_time:installation:{start}", -INSTALLATION),
                ("recurring:2027-03-15:M-PRE:1", -share(M_PRE, date(2027, 3, 15), date(2027, 4, 15), start)),
            ]
        return [(f"recurring:{day}:M-PRE:1", -M_PRE)] if day > start and day.day == 15 else []

    assert anchored_on_the_1st(date(2027, 1, 10))[1][1] == Decimal("-22.00")
    assert anchored_on_the_15th(date(2027, 4, 10))[1][1] == Decimal("-5.00")
    assert_journal(year, "monthly", runs(anchored_on_the_1st))
    assert_journal(year, "monthly-anchor-15", runs(anchored_on_the_15th))


def test_daily_prepaid_charges_each_day_its_daily_fee(year: Year) -> None:
    """D-PRE from Jan 1: every run posts that day's fee, nothing else (no proration, no one-time fee)."""
    assert_journal(year, "daily", runs(lambda day: [(f"recurring:{day}:D-PRE:1", -D_PRE)]))


def test_annual_prepaid_charges_the_year_in_advance_once(year: Year) -> None:
    """Y-PRE from Mar 5 with the anchor day 5, and from Jun 20 with the anchor day 1.

    The first: the whole annual fee on Mar 5, nothing else all year. The second: its year runs
    from Jun 1 (the anchor day in the month of activation) to Jun 1 2028, 366 days with Feb 29;
    on Jun 20 the days to the end of it, 347/366 of 365.00.
    """
    on_the_5th = SUBSCRIPTIONS["annual"].activated_on
    mid_period = SUBSCRIPTIONS["annual-mid-period"].activated_on
    rest = share(Y_PRE, date(2027, 6, 1), date(2028, 6, 1), mid_period)
    assert rest == Decimal("346.05")  # 365 x 347 / 366 = 346.0519
    assert_journal(
        year,
        "annual",
        runs(lambda day: [("recurring:2027-03-05:Y-PRE:1", -Y_PRE)] if day == on_the_5th else []),
    )
    assert_journal(
        year,
        "annual-mid-period",
        runs(lambda day: [("recurring:2027-06-01:Y-PRE:1", -rest)] if day == mid_period else []),
    )


def in_night_band(row: Usage) -> bool:
    """Whether the row's session time ``[at - seconds, at)`` is all in the night band (or all out of it)."""
    first, last = row.at - timedelta(seconds=row.seconds), row.at - timedelta(microseconds=1)
    inside = [NIGHT["start"] <= t.time() < NIGHT["end"] for t in (first, last)]
    assert (inside[0] == inside[1] and first.date() == last.date()) or not any(inside), row
    return inside[0]


def usage_charge(rows: Iterable[Usage]) -> Decimal:
    """What one period's usage costs on U-POST, from the catalog's usage prices.

    Counted traffic (both directions, except the download in the free night band) uses the 10 GB
    allowance in time order; past it, each direction's volume costs its overage price per GB,
    rounded up to a whole GB per direction and period. (Inside the allowance nothing is charged,
    so the plan's own prices never apply with this overage policy.) The table keeps the one row
    where the allowance runs out to a single counted direction, where the split is plain.
    """
    left = ALLOWANCE
    over = {"in": 0, "out": 0}
    for row in sorted(rows):
        counted = {
            "out": row.upload,
            "in": 0 if in_night_band(row) and "in" in FREE_AT_NIGHT else row.download,
        }
        total = sum(counted.values())
        if total <= left:
            left -= total
            continue
        if left:
            (direction,) = [d for d, octets in counted.items() if octets]
            over[direction] += total - left
            left = 0
            continue
        for direction, octets in counted.items():
            over[direction] += octets
    return sum((OVERAGE[d] * math.ceil(octets / GB) for d, octets in over.items()), Decimal(0))


def test_postpaid_with_usage_charges_each_month_in_arrears_with_its_rated_usage(year: Year) -> None:
    """U-POST from Jan 1 with usage in most months, and from Feb 10 with none.

    On the 1st of each month (through 2028-01-01) the month before is due: its fee (the first,
    partial month prorated by actual days: Feb 10..28 is 19/28 of 20.00) and, when it costs
    anything, its usage rated from the ``session_usage`` rows recorded in it (the allowance
    afresh each month; a row belongs to the month of its ``recorded_at``, so one at 00:00 on the
    1st is the new month's and one at 23:59:59 on the last day the old month's). No line before.
    """
    by_month: dict[date, list[Usage]] = defaultdict(list)
    for row in USAGE:
        by_month[row.at.date().replace(day=1)].append(row)
    costs = {month: usage_charge(rows) for month, rows in by_month.items()}
    by_hand = {2: 4, 3: 2, 6: 15, 7: 2, 8: 3, 11: 4, 12: 2}  # the comments of USAGE: months with a cost
    assert {m.month: c for m, c in costs.items() if c and m.year == 2027} == by_hand

    def metered(day: date) -> list[Line]:
        if day.day != 1 or day == FIRST:
            return []
        month = add_months(day, -1)
        lines = [(f"recurring:{month}:U-POST:1", -U_POST)]
        return lines + ([(f"usage:{month}:U-POST:1", -costs[month])] if costs.get(month) else [])

    def from_the_10th(day: date) -> list[Line]:
        start = SUBSCRIPTIONS["postpaid-mid-month"].activated_on
        if day.day != 1 or day <= start:
            return []
        month = add_months(day, -1)
        return [(f"recurring:{month}:U-POST:1", -share(U_POST, month, day, max(month, start)))]

    assert from_the_10th(date(2027, 3, 1)) == [("recurring:2027-02-01:U-POST:1", Decimal("-13.57"))]
    assert_journal(year, "postpaid-usage", runs(metered))
    assert_journal(year, "postpaid-mid-month", runs(from_the_10th))


def welcome(activated_on: date, fee: Decimal) -> Callable[[date], Decimal]:
    """The monthly fee on a day under WELCOME: free for a month from activation, then two at half price."""
    trial_end = add_months(activated_on, TRIAL["months"])
    promo_end = add_months(trial_end, PROMO["months"])
    off = Decimal(PROMO["percent_off"]) / 100
    return lambda day: Decimal(0) if day < trial_end else fee * (1 - off) if day < promo_end else fee


def test_promotion_then_regular_price(year: Year) -> None:
    """M-PRE with WELCOME from Jan 1 and from Jan 10 (periods from the 1st).

    The installation fee on activation (the promotion does not touch it); a month is charged in
    advance at each day's phase price, so a zero month posts no line (January), a month across a
    phase change is priced day by day (Feb: 9 free days and 19 at 15.50, of 28; Apr: 9 days at
    15.50 and 21 at 31.00, of 30), and from the end of the promotion the regular fee.
    """
    for name in ("promo", "promo-mid-month"):
        start = SUBSCRIPTIONS[name].activated_on
        fee_on = welcome(start, M_PRE)

        def due(day: date, start: date = start, fee_on: Callable[[date], Decimal] = fee_on) -> list[Line]:
            lines = [(f"one_time:installation:{start}", -INSTALLATION)] if day == start else []
            if day == start or (day > start and day.day == 1):
                month = day.replace(day=1)
                price = amount(fee_on, month, add_months(month, 1), day)
                lines += [(f"recurring:{month}:M-PRE:1", -price)] if price else []
            return lines

        assert_journal(year, name, runs(due))
    fee_on = welcome(date(2027, 1, 10), M_PRE)
    assert amount(fee_on, date(2027, 2, 1), date(2027, 3, 1)) == Decimal("10.52")
    assert amount(fee_on, date(2027, 4, 1), date(2027, 5, 1)) == Decimal("26.35")


def test_voluntary_suspension_and_return(year: Year) -> None:
    """M-PRE from Jan 1, suspended on request twice: returning as scheduled, then early.

    A status change made during a day counts from the next day; a scheduled one from its day.
    Suspended on Jan 10 until Feb 21 (the period ``[Jan 10, Feb 21)``): Jan 11..31 are credited
    (the reduced fee of the rules is 0), February's advance is nothing, and the return, executed
    by the Feb 21 run before charging, charges Feb 21..28 (8/28).
    Suspended on Jul 20 until Aug 31 and back on Aug 20 (the scheduled return is then not
    needed): Jul 21..31 credited, August charged from Aug 21 (11/31). Full months otherwise.
    """
    changes = {  # the first day charged at a new status: the start of its period
        date(2027, 1, 11): date(2027, 1, 1),
        date(2027, 2, 21): date(2027, 2, 1),
        date(2027, 7, 21): date(2027, 7, 1),
        date(2027, 8, 21): date(2027, 8, 1),
    }
    suspended = [(date(2027, 1, 11), date(2027, 2, 21)), (date(2027, 7, 21), date(2027, 8, 21))]

    def fee_on(day: date) -> Decimal:
        return Decimal(0) if any(lo <= day < hi for lo, hi in suspended) else M_PRE

    def steps() -> Iterator[Expect]:
        status = "active"
        for day in DAYS:
            lines: list[Line] = [("one_time:installation:2027-01-01", -INSTALLATION)] if day == FIRST else []
            if day.day == 1 and fee_on(day):  # in advance, as known that day: the whole month
                lines.append((f"recurring:{day}:M-PRE:1", -M_PRE))
            if day in changes:
                lines.append(adjustment(fee_on, changes[day], day, "M-PRE"))
            if day == date(2027, 2, 21):
                status = "active"  # the scheduled return, executed before that day's charges
            yield Expect(f"{day} run", lines, status)
            for event in events_of("voluntary", day):
                status = "suspended_voluntary" if event.event == "suspend_voluntary" else "active"
                yield Expect(event.label, event.lines, status)

    expected = list(steps())
    assert [(s.label, s.lines) for s in expected if any(k.startswith("adjustment") for k, _ in s.lines)] == [
        ("2027-01-11 run", [("adjustment:2027-01-01:M-PRE:1:2027-01-11", Decimal("21.00"))]),
        ("2027-02-21 run", [("adjustment:2027-02-01:M-PRE:1:2027-02-21", Decimal("-8.86"))]),
        ("2027-07-21 run", [("adjustment:2027-07-01:M-PRE:1:2027-07-21", Decimal("11.00"))]),
        ("2027-08-21 run", [("adjustment:2027-08-01:M-PRE:1:2027-08-21", Decimal("-11.00"))]),
    ]
    assert_journal(year, "voluntary", expected)
    (first, second, back) = EVENTS["voluntary"]
    assert year.outbox["voluntary"] == [
        (first.label, "deny", False, None),
        ("2027-02-21 run", "allow", False, "M-PRE"),
        (second.label, "deny", False, None),
        (back.label, "allow", False, "M-PRE"),
    ]


def test_tariff_change_mid_month(year: Year) -> None:
    """M-PRE from Jan 1; M-BIG from Jan 16 and M-PRE from Jun 21 (changes made at noon the day
    before), and M-BIG again from Oct 1 (a change scheduled for Oct 1, executed by that day's run
    before charging: October is charged in advance on M-BIG alone).

    On the first day of a new tariff: the old tariff's month as known before is adjusted to the
    days it was in force (a credit), and the new tariff's share of the month is charged, each
    prorated by actual days and rounded on its own (Jun: 20/30 of 62.00 is 41.33, so 20.67 back,
    and 10/30 of 31.00 is 10.33). Each other month: the fee of the tariff in force on its 1st.
    """
    spans = [  # (first day charged, tariff, monthly fee)
        (FIRST, "M-PRE", M_PRE),
        (date(2027, 1, 16), "M-BIG", M_BIG),
        (date(2027, 6, 21), "M-PRE", M_PRE),
        (date(2027, 10, 1), "M-BIG", M_BIG),
    ]

    def due(day: date) -> list[Line]:
        lines: list[Line] = [("one_time:installation:2027-01-01", -INSTALLATION)] if day == FIRST else []
        (first, code, fee) = [span for span in spans if span[0] <= day][-1]
        month, end = day.replace(day=1), add_months(day.replace(day=1), 1)
        if day.day == 1:
            lines.append((f"recurring:{day}:{code}:1", -fee))
        if day == first and day.day != 1:
            (_, old, old_fee) = spans[spans.index((first, code, fee)) - 1]
            lines.append(adjustment(lambda d: old_fee if d < first else Decimal(0), month, day, old))
            lines.append((f"recurring:{month}:{code}:1", -share(fee, month, end, first)))
        return lines

    def steps() -> Iterator[Expect]:
        tariff = "M-PRE"
        for day in DAYS:
            if day == date(2027, 10, 1):
                tariff = "M-BIG"  # the scheduled change, executed by the run before charging
            yield Expect(f"{day} run", due(day), tariff=tariff)
            for event in events_of("tariff-change", day):
                assert isinstance(event, Request) and event.tariff is not None
                tariff = tariff if event.at_day else event.tariff
                yield Expect(event.label, event.lines, tariff=tariff)

    assert due(date(2027, 6, 21)) == [
        ("adjustment:2027-06-01:M-BIG:1:2027-06-21", Decimal("20.67")),
        ("recurring:2027-06-01:M-PRE:1", Decimal("-10.33")),
    ]
    assert_journal(year, "tariff-change", steps())
    (to_big, to_pre, _) = EVENTS["tariff-change"]
    assert year.outbox["tariff-change"] == [
        (to_big.label, "allow", False, "M-BIG"),
        (to_pre.label, "allow", False, "M-PRE"),
        ("2027-10-01 run", "allow", False, "M-BIG"),
    ]


def test_non_payment_suspension_payment_resume(year: Year) -> None:
    """M-PRE from Jan 1 funded with exactly the installation and January (81.00).

    Feb 1's fee takes the funds below zero: after the grace period (5 days) the Feb 6 run
    suspends the service for debt, from Feb 7 February's rest is credited (6/28 kept); a payment
    at noon on Feb 10 is seen by the Feb 11 run, which resumes it, and Feb 12..28 are charged
    again (23/28 in all, 25.46, so 18.82 more). A second payment on Apr 20 funds the rest of the
    year: every month in advance, never below zero again. The network: walled garden, then allowed.
    """
    grace = RULES.lookup("internet", "residential").grace_days or 0
    suspended_on = date(2027, 2, 1) + timedelta(days=grace)
    resumed_on = date(2027, 2, 10) + timedelta(days=1)

    def fee_on(day: date) -> Decimal:
        return Decimal(0) if suspended_on < day <= resumed_on else M_PRE

    def steps() -> Iterator[Expect]:
        status = "active"
        for day in DAYS:
            lines: list[Line] = [("one_time:installation:2027-01-01", -INSTALLATION)] if day == FIRST else []
            if day.day == 1:
                lines.append((f"recurring:{day}:M-PRE:1", -M_PRE))
            if day - timedelta(days=1) in (suspended_on, resumed_on):
                lines.append(adjustment(fee_on, date(2027, 2, 1), day, "M-PRE"))
            status = {suspended_on: "suspended_involuntary", resumed_on: "active"}.get(day, status)
            yield Expect(f"{day} run", lines, status)
            for event in events_of("unpaid-resumed", day):
                yield Expect(event.label, event.lines, status)

    expected = list(steps())
    assert [line for step in expected[:45] for line in step.lines if line[0].startswith("adj")] == [
        ("adjustment:2027-02-01:M-PRE:1:2027-02-07", Decimal("24.36")),
        ("adjustment:2027-02-01:M-PRE:1:2027-02-12", Decimal("-18.82")),
    ]
    assert_journal(year, "unpaid-resumed", expected)
    resumed = [step.balance for step in year.journals["unpaid-resumed"] if step.label >= f"{resumed_on}"]
    assert min(resumed) == Decimal("12.54")  # on Apr 1, before the second payment
    assert year.outbox["unpaid-resumed"] == [
        (f"{suspended_on} run", "walled_garden", False, None),
        (f"{resumed_on} run", "allow", False, "M-PRE"),
    ]


def test_non_payment_churn(year: Year) -> None:
    """M-PRE from Jan 1 funded with 81.00 and never paid again.

    Suspended for debt by the Feb 6 run (February's rest credited from Feb 7: the debt is the 6
    days used, 6.64), no fee while suspended (the Mar 1, Apr 1 and May 1 runs post nothing), and
    churned by the run 90 days after the suspension (May 7); nothing after that all year, and
    the debt stays on the account. The network: walled garden, then denied and released.
    """
    rules = RULES.lookup("internet", "residential")
    suspended_on = date(2027, 2, 1) + timedelta(days=rules.grace_days or 0)
    churned_on = suspended_on + timedelta(days=rules.churn_after_days or 0)
    assert churned_on == date(2027, 5, 7)

    def fee_on(day: date) -> Decimal:
        return Decimal(0) if day > suspended_on else M_PRE

    def steps() -> Iterator[Expect]:
        status = "active"
        for day in DAYS:
            lines: list[Line] = []
            if day == FIRST:
                lines = [
                    ("one_time:installation:2027-01-01", -INSTALLATION),
                    ("recurring:2027-01-01:M-PRE:1", -M_PRE),
                ]
            elif day == date(2027, 2, 1):
                lines = [("recurring:2027-02-01:M-PRE:1", -M_PRE)]
            elif day == suspended_on + timedelta(days=1):
                lines = [adjustment(fee_on, date(2027, 2, 1), day, "M-PRE")]
            status = {suspended_on: "suspended_involuntary", churned_on: "churned"}.get(day, status)
            yield Expect(f"{day} run", lines, status)

    assert_journal(year, "unpaid-churned", steps())
    assert year.journals["unpaid-churned"][-1].balance == Decimal("-6.64")
    assert year.outbox["unpaid-churned"] == [
        (f"{suspended_on} run", "walled_garden", False, None),
        (f"{churned_on} run", "deny", True, None),
    ]


def test_every_run_charges_every_service_without_error_and_the_ledger_balances(year: Year) -> None:
    """No run of the year reports a failed service or lifecycle evaluation, no event or run puts
    a line on another subscription's account, and the ledger's invariants hold at the end."""
    assert year.failures == []
    changed = {*EVENTS, "unpaid-churned"}
    assert {name: tasks for name, tasks in year.outbox.items() if name not in changed and tasks} == {}
    assert {name: len(journal) for name, journal in year.journals.items()} == {
        name: 1 + len(DAYS) + len(EVENTS.get(name, ())) for name in SUBSCRIPTIONS
    }
    with year.sessions() as s:
        assert check_ledger(s) == []


def test_a_tariff_changed_back_within_a_month_is_charged_for_each_of_its_days(
    sessions: sessionmaker[Session],
) -> None:
    """M-PRE from Jan 1, M-BIG from Jan 16, M-PRE again from Jan 26; runs on the days that matter
    (a run catches up on the days missed) through Feb 1.

    January costs Jan 1..15 and 26..31 at 31.00 and Jan 16..25 at 62.00 (15 + 20 + 6), with the
    installation; February 31.00. Every run without error, the balance after each; the second
    M-PRE part of January has keys of its own (``:from2027-01-26``).
    """
    events: dict[str, tuple[Event, ...]] = {
        "there-and-back": (
            Request(noon(date(2027, 1, 15)), "change_tariff", tariff="M-BIG"),
            Request(noon(date(2027, 1, 25)), "change_tariff", tariff="M-PRE"),
        )
    }
    year = run_year(
        Year(
            sessions,
            operator(sessions),
            subscriptions={"there-and-back": Subscription("M-PRE", FIRST)},
            events=events,
            usage=(),
            days=tuple(
                date(2027, month, day) for month, day in [(1, 1), (1, 15), (1, 16), (1, 25), (1, 26), (2, 1)]
            ),
        )
    )
    posted = {
        date(2027, 1, 1): -INSTALLATION - M_PRE,
        date(2027, 1, 15): Decimal(0),
        date(2027, 1, 16): Decimal("16.00") - Decimal("32.00"),  # back 16/31 of 31.00, 16/31 of 62.00
        date(2027, 1, 25): Decimal(0),
        date(2027, 1, 26): Decimal("12.00") - Decimal("6.00"),  # back 6/31 of 62.00, 6/31 of 31.00
        date(2027, 2, 1): -M_PRE,
    }
    balance, expected = FUNDS, []
    for day, change in posted.items():
        balance += change
        expected.append((f"{day} run", balance))
    runs_only = [
        (step.label, step.balance) for step in year.journals["there-and-back"] if step.label.endswith("run")
    ]
    assert year.failures == []
    assert runs_only == expected
    lines = [line for step in year.journals["there-and-back"] for line in step.lines]
    assert ("recurring:2027-01-01:M-PRE:1:from2027-01-26", Decimal("-6.00")) in lines


def test_a_tariff_change_scheduled_for_the_1st_is_charged_from_the_1st(
    sessions: sessionmaker[Session],
) -> None:
    """M-PRE from Sep 1, a change to M-BIG scheduled on Sep 20 for Oct 1; runs on Sep 20, Oct 1 and 2.

    Expected: October is charged in advance on M-BIG alone (62.00 on Oct 1), no M-PRE line for
    October and no adjustment, as for a service that was on M-BIG from Oct 1.
    """
    days = (date(2027, 9, 20), date(2027, 10, 1), date(2027, 10, 2))
    request = Request(noon(date(2027, 9, 20)), "change_tariff", tariff="M-BIG", at_day=date(2027, 10, 1))
    year = run_year(
        Year(
            sessions,
            operator(sessions),
            subscriptions={"scheduled": Subscription("M-PRE", date(2027, 9, 1))},
            events={"scheduled": (request,)},
            usage=(),
            days=days,
        )
    )
    october = [step.lines for step in year.journals["scheduled"] if step.label >= "2027-10-01"]
    assert october == [(("recurring:2027-10-01:M-BIG:1", -M_BIG),), ()]
