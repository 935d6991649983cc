"""The demo: an ISP's month of billing on the embedded database, then its AAA server live.

``make demo`` migrates ``var/demo.db`` and runs this. It seeds the ISP's dictionaries and speed
profiles, imports its tariff catalog (``conf/tariffs/demo.toml``: monthly prepaid home tariffs
at two speeds, a daily one, a postpaid and a daily business tariff, an installation fee and a
welcome promotion) and fourteen subscribers, each with an Internet service on a tariff whose
speed profile it has (PPPoE logins and passwords; one IPoE line known by its CPE MAC). Then it
bills a month through the real engine: each day one charge run
(:func:`billing.charge_run.run_charges`, as the daily timer runs it, at 00:15 local time) posts
what is due — monthly fees in advance on the 1st, daily fees, last month's postpaid business
fees in arrears, the installation and prorated first month of the lines connected mid-month —
and then runs the service lifecycle's evaluation. One subscriber on the daily tariff runs out of
money: after five days' grace the run suspends the service for debt (the walled garden), and
the day after a payment arrives the run resumes it. Between runs, payments arrive from a bank,
a goodwill credit is given and one payment is recalled (a reversing transaction). It shows
each day's run (services charged, lines, totals, payments, status changes), the status changes,
the balances with each service's status, one statement and the ledger's invariant check, and
which ``billing-admin`` commands show more.

Then it starts ``billingd`` on the same database, with its provisioning outbox worker, and runs
the provisioning loop (:mod:`billing.demo_provisioning`) against a BRAS simulator holding one
PPPoE session and a switch simulator (``billing-sim switch``, SNMP) whose port is bound to the IPoE
line: out of money → suspended → walled-garden CoA ACKed / port blocked → paid → resumed → the
tariff's rate back by CoA / port unblocked. With time left it starts the BRAS simulator
(``billing-sim bras``) with all the demo subscribers, and prints a live summary every second or
two: sessions online, Access-Accept/Reject, accounting stored, rows in ``radius_sessions`` and
``session_usage``, from billingd's metrics endpoint and the database. Two subscribers are there
for ``radtest``: ``demo``/``demo`` (active, funded: Access-Accept with its speed) and
``broke``/``broke`` (a business connected late in the month that never paid: out of funds but
still within the business grace period, so active, and conf/demo.toml's business policy rejects,
"out of funds").

While billingd runs it also serves the banks' SOAP API (``[payments]`` in conf/demo.toml): the
WSDL at ``http://127.0.0.1:8080/payments?wsdl``, with the demo bank's credentials printed next to
it, for a bank's developer to try with their own SOAP tool.

``--duration`` bounds the whole run in seconds: it always stops by itself. The ports come from
the config (0: any free port); if one is taken, the demo says which and uses free ones instead
(``--ports auto`` always does; the CoA port is then any free UDP port). Exit 0, unless the
catalog import or the ledger check fails, billingd cannot start, or the provisioning loop does not
complete.

Payments from the bank, the goodwill credit and the recalled payment are posted straight to the
ledger here; a payments engine comes later (the payment gateways of later releases post the same
transactions through their own services).
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
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, ledger, operators, subscribers
from billing.audit import Actor
from billing.books import book_account
from billing.catalog import assign_tariff, import_catalog, load_stored_catalog
from billing.charge_run import ChargeRunResult, run_charges
from billing.config import Config, load_config
from billing.db.charges import Charge, ChargeRun
from billing.db.dictionaries import DictionaryEntry
from billing.db.engine import make_engine, session_factory
from billing.db.lifecycle import ServiceStatusChange
from billing.db.services import Service, ServiceMac, SpeedProfile
from billing.invariants import check_ledger
from billing.ledger import Leg, TransactionRequest
from billing.permissions import resolve_actor
from rating.catalog import Catalog, CatalogError
from rating.matrix import resolve_tariff_price
from rating.money import format_amount

SEED_DICTIONARIES = {
    "subscriber_category": [("residential", "Residential"), ("business", "Business"), ("vip", "VIP")],
    "region": [("north", "North district"), ("centre", "City centre"), ("south", "South district")],
    "status_reason": [("non_payment", "Non-payment"), ("customer_request", "Customer request")],
    "adjustment_reason": [
        ("goodwill", "Goodwill credit"),
        ("outage", "Outage compensation"),
        ("correction", "Billing correction"),
    ],
}

SPEED_PROFILES = {  # name: (down, up) in kbit/s; conf/tariffs/demo.toml names them
    "home-100": (100_000, 20_000),
    "home-1000": (1_000_000, 200_000),
    "business-200": (200_000, 200_000),
}

SETUP_TARIFF = "SETUP"  # the installation fee: a one-time service for each line connected mid-month
RUN_AT = clock(0, 15)  # local time of the daily charge run (systemd/billing-charge.timer)


@dataclass(frozen=True)
class Person:
    """A demo subscriber: who they are, their Internet line, its tariff, and how they pay.

    ``payer`` says which payments arrive (see :func:`_payment_plan`): ``monthly`` (the month's
    fee by bank transfer within a few days of it being charged), ``upfront`` (100.00 on the
    1st), ``invoice`` (a postpaid business paying last month's invoice), ``topup`` (10.00 on
    the 1st, which lasts ten days of a daily tariff, then 20.00 on the 23rd), ``never``.
    ``joins`` is the day of the month the line is connected (its ``activated_on``); 0 means the
    1st of the month before, so a postpaid tariff's first fee (in arrears) is due on the 1st.
    """

    kind: str
    name: str
    category: str
    region: str
    login: str = ""  # PPPoE login; empty for the IPoE line, which is known by its MAC
    password: str = ""
    method: str = "pap"  # how the simulated BRAS proves the password: pap or chap
    mac: str = ""  # IPoE: the CPE MAC that identifies the service
    tariff: str = "HOME-100"
    payer: str = "monthly"
    joins: int = 1
    promotion: str | None = None
    credit_limit: str | None = None  # None: the category's default


# fmt: off
PEOPLE = [
    Person("person", "Anna Schmidt", "residential", "north", "anna", "anna-pw", "chap"),
    Person("person", "Jonas Weber", "residential", "centre", "jonas", "jonas-pw"),
    # runs out of money on the daily tariff: suspended for debt mid-month, back after paying
    Person("person", "Lea Fischer", "residential", "south", "lea", "lea-pw", "chap",
           tariff="DAY-100", payer="topup"),
    Person("person", "Paul Wagner", "vip", "centre", "paul", "paul-pw", tariff="HOME-1000"),
    Person("company", "Bäckerei Becker GmbH", "business", "north", "becker", "becker-pw", "chap",
           tariff="BIZ-200", payer="invoice", joins=0),
    Person("person", "Mia Hoffmann", "residential", "north", "mia", "mia-pw"),
    Person("person", "Noah Schulz", "residential", "south", "noah", "noah-pw", "chap"),
    Person("company", "Kanzlei Koch & Partner", "business", "centre", "koch", "koch-pw",
           tariff="BIZ-200", payer="invoice", joins=0),
    Person("person", "Emma Richter", "residential", "centre", "emma", "emma-pw"),
    Person("person", "Ben Klein", "residential", "north", "ben", "ben-pw", "chap"),
    # a new customer: connected on the 9th with the welcome promotion, pays the installation
    Person("person", "Sophie Wolf", "residential", "south", "sophie", "sophie-pw", joins=9,
           promotion="WELCOME"),
    Person("company", "Autohaus Neumann KG", "business", "south", mac="02:de:00:00:00:0c",
           tariff="BIZ-200", payer="invoice", joins=0),
    # for radtest: funded, so Access-Accept with the Home 100 speed
    Person("person", "Demo Subscriber", "residential", "centre", "demo", "demo", payer="upfront"),
    # for radtest: a business connected on the 20th on daily fees that never pays and has no
    # credit: out of funds, still within the 15 days' business grace (so not suspended), and the
    # business policy in conf/demo.toml rejects (residential ones get the walled garden)
    Person("company", "Pleite & Co. KG", "business", "south", "broke", "broke",
           tariff="BIZ-200-DAY", payer="never", joins=20, credit_limit="0"),
]
# fmt: on

UPFRONT_PAYMENT = Decimal("100.00")
TOPUPS = {1: Decimal("10.00"), 23: Decimal("20.00")}  # day of the month: amount, for payer "topup"
RECALLED = (20, Decimal("50.00"))  # the VIP's extra transfer on the 20th, recalled that evening


@dataclass
class Subscriber:
    """A seeded demo subscriber: the account, its ledger account, and its Internet service once connected."""

    number: str
    person: Person
    ledger_account_id: int
    service_id: int | None = None

    @property
    def name(self) -> str:
        return self.person.name

    @property
    def category(self) -> str:
        return self.person.category


@dataclass(frozen=True)
class Payment:
    """A bank transfer the demo posts on a day of the month (``recalled``: reversed that evening)."""

    subscriber: Subscriber
    amount: Decimal
    hour: int
    recalled: bool = False


class AlreadySeeded(Exception):
    """The database already holds the demo subscribers: the demo wants a fresh one."""


class Stop(Exception):
    """SIGTERM: stop the demo as Ctrl-C would, stopping billingd and the simulator first."""


def main(argv: list[str] | None = None) -> int:
    """Run the demo; the exit code (0 ok, 1 the import or ledger check failed, or billingd did not start)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="conf/demo.toml", help="config file (default: conf/demo.toml)")
    parser.add_argument(
        "--tariffs",
        default="conf/tariffs/demo.toml",
        help="tariff catalog to import (default: conf/tariffs/demo.toml)",
    )
    parser.add_argument(
        "--duration", type=float, default=50.0, help="stop after this many seconds (default 50)"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.05,
        help="at least this many seconds per simulated day, to watch it run",
    )
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
        first = date(year, month, 1)
        console.rule(f"[bold]{config.isp.name}[/]: billing demo, {args.month}, {config.isp.currency}")
        actor = _operator(sessions)
        try:
            people = _seed(sessions, actor, config, Path(args.tariffs), first)
        except AlreadySeeded as exc:
            console.print(f"[red]{exc}[/]")
            return 1
        except CatalogError as exc:
            console.print(f"{args.tariffs} was refused:\n{exc}", style="red", markup=False)
            return 1
        _simulate_month(console, sessions, actor, config, people, first, deadline, args.pace)
        _report(console, sessions, config, people, first)
        if _check(console, sessions):
            return 1
        _where_to_look(console, sessions, args.config, people, first)
        return AaaDemo(console, config, Path(args.config), engine, args, deadline, actor).run()
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


def _seed(
    sessions: sessionmaker[Session], actor: Actor, config: Config, tariffs: Path, first: date
) -> list[Subscriber]:
    """Dictionaries, speed profiles, the tariff catalog, the subscribers and their services.

    The catalog is imported after the dictionaries and speed profiles it names, so the import
    checks them as an operator's would. Lines connected on the 1st (or before) get their service
    now; the others on their day (:func:`_connect`, from the month's loop).
    """
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
        for name, (down, up) in SPEED_PROFILES.items():
            s.add(SpeedProfile(name=name, down_kbps=down, up_kbps=up))
        s.flush()
        today = datetime.now(config.isp.tzinfo).date()
        import_catalog(s, tariffs.read_text(encoding="utf-8"), str(tariffs), actor, today=today)
        catalog = load_stored_catalog(s)
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
            subscriber = Subscriber(account.number, person, account.ledger_account_id)
            if person.joins <= 1:
                _connect(s, actor, catalog, subscriber, _activation_day(person, first))
            people.append(subscriber)
    return people


def _activation_day(person: Person, first: date) -> date:
    """The day ``person``'s line starts to be billed (``Person.joins``; 0: the month before's 1st)."""
    if person.joins >= 1:
        return first.replace(day=person.joins)
    return (first - timedelta(days=1)).replace(day=1)


def _connect(s: Session, actor: Actor, catalog: Catalog, subscriber: Subscriber, day: date) -> None:
    """Give ``subscriber`` its Internet service, active from ``day`` on its tariff and speed.

    The speed profile is the one the tariff version names, so what AAA sends is what is billed.
    A line connected mid-month also gets a one-time service on the installation tariff, whose
    fee the charge run posts on ``day``.
    """
    person = subscriber.person
    profile_name = catalog.tariff(person.tariff).version_at(day).speed_profile
    profile = s.scalar(select(SpeedProfile.id).where(SpeedProfile.name == profile_name))
    service = Service(
        account_id=accounts.find(s, subscriber.number).id,
        kind="internet",
        status="active",
        speed_profile_id=profile,
        login=person.login or None,
        password=person.password or None,
        framed_pool="main",
    )
    s.add(service)
    s.flush()
    if person.mac:
        s.add(ServiceMac(mac=person.mac, service_id=service.id))
    assign_tariff(s, actor, service.id, person.tariff, day, promotion_code=person.promotion)
    subscriber.service_id = service.id
    if person.joins > 1:
        setup = Service(account_id=service.account_id, kind="one_time", status="active")
        s.add(setup)
        s.flush()
        assign_tariff(s, actor, setup.id, SETUP_TARIFF, day)


def _payment_plan(
    people: list[Subscriber], first: date, catalog: Catalog, rng: random.Random
) -> dict[int, list[Payment]]:
    """Which bank transfers arrive on which day of the month (see :class:`Person`'s ``payer``)."""
    plan: dict[int, list[Payment]] = defaultdict(list)
    for sub in people:
        person = sub.person
        price = resolve_tariff_price(catalog.tariff(person.tariff), first, person.category, person.region)
        fee = price.recurring.amount if price.recurring is not None else Decimal(0)
        if person.payer == "monthly":
            amount = fee * rng.choice([1, 1, 2])
            if person.joins > 1:  # and the installation
                setup = catalog.tariff(SETUP_TARIFF)
                fees = resolve_tariff_price(setup, first, person.category, person.region).one_time_fees
                amount += sum((f.amount for f in fees), Decimal(0))
            plan[max(person.joins, 1) + rng.randint(0, 3)].append(Payment(sub, amount, rng.randint(8, 18)))
        elif person.payer == "upfront":
            plan[1].append(Payment(sub, UPFRONT_PAYMENT, 7))
        elif person.payer == "invoice":
            plan[rng.randint(3, 12)].append(Payment(sub, fee, rng.randint(9, 16)))
        elif person.payer == "topup":
            for day, amount in TOPUPS.items():
                plan[day].append(Payment(sub, amount, rng.randint(8, 20)))
        if person.category == "vip":
            plan[RECALLED[0]].append(Payment(sub, RECALLED[1], 11, recalled=True))
    return plan


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
    """Walk the month day by day: connections, the charge run (and lifecycle), then the day's money."""
    currency = config.isp.currency
    zone = config.isp.tzinfo
    with sessions() as s:
        catalog = load_stored_catalog(s)
    plan = _payment_plan(people, first, catalog, random.Random(2026))
    by_service = {p.service_id: p for p in people if p.service_id is not None}
    last_change = 0
    console.print(
        f"Each day: one charge run at {RUN_AT:%H:%M} (charges due that day, then the lifecycle "
        "evaluation), then the day's payments.",
        highlight=False,
    )
    console.print(
        f"{'day':<10}  {'run':>3}  {'charged':>7}  {'lines':>5}  {'charges':>10}  "
        f"{'payments':>8}  {'paid':>9}  events",
        style="bold",
        highlight=False,
    )
    day = first
    while day.month == first.month:
        if time.monotonic() > deadline:
            console.print(f"[yellow]--duration reached: stopping the month at {day.isoformat()}[/]")
            return
        began = time.monotonic()
        notes = []
        joining = [p for p in people if p.person.joins == day.day and p.service_id is None]
        if joining:
            with sessions.begin() as s:
                for sub in joining:
                    _connect(s, actor, catalog, sub, day)
                    by_service[sub.service_id] = sub
                    promo = f" + {sub.person.promotion}" if sub.person.promotion else ""
                    notes.append(f"{sub.person.login} connected ({sub.person.tariff}{promo}, installation)")
        result = run_charges(
            sessions, day, actor, time_zone=zone, evaluate_at=datetime.combine(day, RUN_AT, tzinfo=zone)
        )
        with sessions() as s:
            for change_id, service_id, before, after, reason in _status_changes(s, last_change):
                last_change = change_id
                who = by_service.get(service_id)
                name = who.person.login if who is not None else f"service {service_id}"
                notes.append(f"{name}: {before} -> {after} ({reason})")
        paid = _post_money(sessions, actor, config, people, plan.get(day.day, []), day, notes)
        console.print(
            _day_line(day, result, currency, plan.get(day.day, []), paid, notes),
            highlight=False,
            soft_wrap=True,
        )
        time.sleep(max(0.0, pace - (time.monotonic() - began)))
        day += timedelta(days=1)


def _status_changes(s: Session, after_id: int) -> list[tuple[int, int, str, str, str]]:
    """Status changes recorded since the change ``after_id``: (id, service, from, to, reason code)."""
    rows = s.execute(
        select(
            ServiceStatusChange.id,
            ServiceStatusChange.service_id,
            ServiceStatusChange.from_status,
            ServiceStatusChange.to_status,
            DictionaryEntry.code,
        )
        .join(DictionaryEntry, DictionaryEntry.id == ServiceStatusChange.reason_id)
        .where(ServiceStatusChange.id > after_id)
        .order_by(ServiceStatusChange.id)
    )
    return [(row[0], row[1], row[2], row[3], row[4]) for row in rows]


def _post_money(
    sessions: sessionmaker[Session],
    actor: Actor,
    config: Config,
    people: list[Subscriber],
    payments: list[Payment],
    day: date,
    notes: list[str],
) -> Decimal:
    """The day's bank transfers, the outage credit on the 10th, a recalled payment; the sum paid.

    These are posted straight to the ledger: a payments engine comes later.
    """
    morning = datetime.combine(day, clock(6), tzinfo=config.isp.tzinfo)
    with sessions.begin() as s:
        bank = book_account(s, "clearing", config.isp.currency, "demo-bank")
        requests = [_payment(p, bank, morning.replace(hour=p.hour), day, n) for n, p in enumerate(payments)]
        posted = ledger.post_batch(s, requests) if requests else []
        for payment, transaction in zip(payments, posted, strict=True):
            if payment.recalled:
                ledger.reverse(
                    s,
                    transaction.id,
                    idempotency_key=f"demo:{day}:recall:{payment.subscriber.number}",
                    effective_at=morning.replace(hour=22),
                    description="payment recalled by the bank",
                    operator_id=actor.operator_id,
                )
                notes.append(f"{payment.subscriber.person.login}'s {format_amount(payment.amount)} recalled")
        if day.day == 10:
            accounts.adjust(
                s, actor, people[1].number, "5.00", "outage", key=f"demo:{day}:outage", effective_at=morning
            )
            notes.append(f"{people[1].person.login}: outage credit 5.00")
    return sum((p.amount for p in payments), Decimal(0))


def _payment(payment: Payment, bank: int, at: datetime, day: date, n: int) -> TransactionRequest:
    """A bank transfer as a ledger transaction: the bank's clearing account to the subscriber."""
    reference = f"{day:%Y%m%d}-{payment.subscriber.number}-{n}"
    amount, account = payment.amount, payment.subscriber.ledger_account_id
    return TransactionRequest(
        idempotency_key=f"payment:demo-bank:{reference}",
        kind="payment",
        legs=(Leg(bank, amount), Leg(account, -amount)),
        effective_at=at,
        description=f"bank transfer {reference}",
    )


def _day_line(
    day: date,
    result: ChargeRunResult,
    currency: str,
    payments: list[Payment],
    paid: Decimal,
    notes: list[str],
) -> str:
    """One row of the month's table: the day's charge run, its payments, and what happened."""
    charged = f"{result.services_charged}/{result.services_seen}"
    total = f"{format_amount(result.totals.get(currency, Decimal(0)))} {currency}"
    return (
        f"{day.isoformat():<10}  {result.run_id or '-':>3}  {charged:>7}  {result.charges_posted:>5}  "
        f"{total:>10}  {len(payments):>8}  {format_amount(paid):>9}  {'; '.join(notes)}"
    )


def _report(
    console: Console, sessions: sessionmaker[Session], config: Config, people: list[Subscriber], first: date
) -> None:
    """The month's charge runs and status changes, balances and statuses, and one statement."""
    zone = config.isp.tzinfo
    by_service = {p.service_id: p for p in people if p.service_id is not None}
    with sessions() as s:
        runs = s.scalar(select(func.count(ChargeRun.id))) or 0
        amounts = list(s.scalars(select(Charge.amount)))
        changes = s.execute(
            select(
                ServiceStatusChange.service_id,
                ServiceStatusChange.at,
                ServiceStatusChange.from_status,
                ServiceStatusChange.to_status,
                DictionaryEntry.code,
            )
            .join(DictionaryEntry, DictionaryEntry.id == ServiceStatusChange.reason_id)
            .order_by(ServiceStatusChange.id)
        ).all()
        statuses: dict[int, str] = {
            row.id: row.status for row in s.execute(select(Service.id, Service.status))
        }
    console.print(
        f"{runs} charge runs (table charge_runs) posted {len(amounts)} charges (table charges), "
        f"{format_amount(sum(amounts, Decimal(0)))} {config.isp.currency}; none was posted by hand.",
        highlight=False,
    )
    if changes:
        table = Table(title="Status changes made by the charge runs' lifecycle evaluation")
        for column in ("service", "subscriber", "at (local)", "from", "to", "reason"):
            table.add_column(column, no_wrap=True)
        for service_id, at, before, after, reason in changes:
            who = by_service.get(service_id)
            local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)
            name = who.name if who else ""
            table.add_row(str(service_id), name, f"{local:%Y-%m-%d %H:%M}", before, after, reason)
        console.print(table)

    table = Table(
        title="Balances and Internet services at the end of the month (balance > 0: the customer's funds)"
    )
    for column in ("account", "subscriber", "internet", "tariff", "service", "balance", "limit", "available"):
        table.add_column(column, justify="right" if column in ("balance", "limit", "available") else "left")
    with sessions() as s:
        for person in people:
            info = accounts.balance(s, person.number)
            style = "red" if info.available < 0 else ""
            line = person.person
            status = statuses.get(person.service_id, "") if person.service_id else "not connected"
            table.add_row(
                person.number,
                person.name,
                f"{line.login}/{line.password}" if line.login else f"IPoE {line.mac}",
                line.tariff + (f" + {line.promotion}" if line.promotion else ""),
                f"{person.service_id} {status}" if person.service_id else status,
                f"[{style}]{format_amount(info.balance)}[/]" if style else format_amount(info.balance),
                format_amount(info.credit_limit),
                format_amount(info.available),
            )
        console.print(table)
        start = datetime(first.year, first.month, 1, tzinfo=zone)
        end = datetime(first.year + first.month // 12, first.month % 12 + 1, 1, tzinfo=zone)
        shown = people[1]
        st = accounts.statement(s, shown.number, start, end)
    lines_table = Table(title=f"Statement of account {shown.number} ({shown.name}), {first:%Y-%m}")
    for column in ("date", "transaction", "kind", "description", "amount", "balance"):
        lines_table.add_column(
            column, justify="right" if column in ("amount", "balance", "transaction") else "left"
        )
    lines_table.add_row("", "", "", "opening balance", "", format_amount(st.opening))
    for line in st.lines:
        local = line.effective_at.astimezone(zone)
        lines_table.add_row(
            local.strftime("%Y-%m-%d %H:%M"),
            str(line.transaction_id),
            line.kind,
            line.description,
            format_amount(line.amount),
            format_amount(line.balance_after),
        )
    lines_table.add_row("", "", "", "closing balance", "", format_amount(st.closing))
    console.print(lines_table)


def _check(console: Console, sessions: sessionmaker[Session]) -> int:
    """The ledger's invariant check, as ``billing-admin check`` runs it; 1 when it fails."""
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


def _where_to_look(
    console: Console, sessions: sessionmaker[Session], config_path: str, people: list[Subscriber], first: date
) -> None:
    """The billing-admin commands that show what the month left behind (it stays in the database)."""
    with sessions() as s:
        first_run = s.scalar(select(func.min(ChargeRun.id))) or 1
        changed = s.scalar(select(ServiceStatusChange.service_id).order_by(ServiceStatusChange.id).limit(1))
    service = changed or next(p.service_id for p in people if p.service_id is not None)
    after = (first + timedelta(days=31)).replace(day=1)
    admin = f".venv/bin/billing-admin --config {config_path}"
    commands = [
        ("charge runs", "one run per day: services seen and charged, lines, totals"),
        (f"charge show {first_run}", "the 1st: the monthly advances, last month's postpaid fees"),
        (f"service history {service}", "the suspension for debt and the resume, with their reasons"),
        ("tariff list", "the catalog the demo imported (conf/tariffs/demo.toml)"),
        (f"charge run --date {after} --dry-run", "what next month's first run would post"),
    ]
    width = max(len(command) for command, _ in commands)
    console.print("Where to look (the month's data stays in the database):", highlight=False)
    for command, what in commands:
        console.print(
            f"  {admin} {command:<{width}}  # {what}", highlight=False, markup=False, soft_wrap=True
        )


# --------------------------------------------------------------------------- the AAA part, live

LIVE_MAX_S = 60.0  # the simulator runs at most this long, whatever --duration says
TEARDOWN_S = 3.0  # kept back at the end: the simulator's final Stops, billingd's drain and exit
SIM_STARTUP_S = 1.0  # the simulator's interpreter start and imports, before its clock starts
MIN_LIVE_S = 3.0  # less than this left for traffic once billingd is up: no live part
READY_TIMEOUT_S = 20.0  # billingd's start-up, at most
LOOP_NEEDS_S = 5.0  # left of --duration after the month, at least, to run billingd and the provisioning loop
LOOP_MIN_S = 8.0  # billingd's start and the switch simulator may always take this long, even past --duration
LOOP_SIM_S = (4.0, 5.0)  # the loop's BRAS simulator runs this long, at least and at most (the loop: ~2 s)
LOOP_SPARE_S = 3.0  # what the loop's simulator leaves of --duration when it can run longer than the least
SWITCH_READY_S = 10.0  # the switch simulator's start-up (it prints its ports), at most
TICK_S = 1.5  # how often the live summary is printed
SIM_INTERIM_S = 2.0  # Interim-Update interval of the simulated BRAS
SIM_TIMEOUT_S, SIM_RETRIES = 1.0, 2  # per request: at most 2 s, also for the final Stops
_READY = re.compile(r"RADIUS listening on (\S+) auth (\d+) acct (\d+) metrics (\d+)")
_PAYMENTS_READY = re.compile(r"payment API listening on \S+: http (\d+|-) tls")
_SIM_ACCESS = re.compile(
    r"access:\s+requests (\d+), accepted (\d+), rejected (\d+), challenged \d+, timeouts (\d+)"
)
_SIM_COA = re.compile(r"coa:\s+acked (\d+), naked (\d+); disconnect: acked (\d+)")
_SWITCH_READY = re.compile(rb"switch: snmp \S+:(\d+) ssh \S+:(\d+)")
_SIM_ACCT = re.compile(
    r"accounting: requests (\d+), acknowledged (\d+), timeouts (\d+) \(start (\d+), interim (\d+), stop (\d+)"
)


@dataclass(frozen=True)
class Ports:
    """billingd's listening ports; 0 = any free port (billingd logs the ones it got).

    ``payments``: the payment API's plain HTTP port (the WSDL's), when the config has banks.
    ``coa``: where the BRAS simulator listens for CoA/Disconnect (the demo NAS's ``coa_port``);
    0 here means "as configured" (the simulator and billingd's config need one real port).
    """

    auth: int
    acct: int
    metrics: int
    payments: int = 0
    coa: int = 0


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
        actor: Actor,
    ) -> None:
        self.console = console
        self.config = config
        self.config_path = config_path
        self.engine = engine
        self.actor = actor
        self.auto_ports = args.ports == "auto"
        self.log_path = Path(args.log)
        self.deadline = deadline
        self.host = "127.0.0.1"
        self.ports = Ports(0, 0, 0)
        self.coa_port = 0
        self.busy: list[str] = []

    def run(self) -> int:
        """The live part; 0 when it ran or was skipped with a reason, 1 when billingd failed to start
        or the provisioning loop did not complete."""
        aaa = self.config.aaa
        left = self.deadline - time.monotonic()
        if left < LOOP_NEEDS_S:
            self.console.print(
                f"[yellow]Only {max(left, 0):.0f} s left of --duration: no time to start billingd, the "
                "simulators and the provisioning loop (give it DURATION=10 or more).[/]"
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
        self.console.rule("[bold]AAA and provisioning[/]: billingd and simulated network on loopback")
        ports = self._choose_ports(nas.coa_port)
        looping = self.config.provisioning.worker
        if not looping:
            self.console.print(
                f"{self.config_path}: [provisioning] worker is off, so no provisioning loop.",
                style="yellow",
                markup=False,
            )
        final, traffic, loop_code = Observation(), 0.0, 0
        sim_out: str | None = None
        with tempfile.TemporaryDirectory(prefix="billing-demo-") as work:
            workdir = Path(work)
            config_path = self._config_for(ports, workdir, nas.coa_port)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            for exporter in self.config.provisioning.nms:
                if getattr(exporter, "directory", None) is not None:
                    exporter.directory.mkdir(parents=True, exist_ok=True)  # file exporters do not create it
            with self.log_path.open("wb") as log:
                billingd = subprocess.Popen(
                    [sys.executable, "-m", "billing.daemon", "--config", str(config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us; we stop it in order
                )
            simulator: subprocess.Popen[bytes] | None = None
            switch: subprocess.Popen[bytes] | None = None
            snmp_port = 0
            try:
                if looping:  # starts while billingd does; recorded in the database meanwhile
                    switch, switch_out = self._start_switch(workdir)
                    snmp_port = self._switch_ready(switch, switch_out)
                if not self._wait_ready(billingd):
                    return 1
                self._try_it(
                    "While it runs, try it from another terminal", self.ports.auth, self.ports.payments
                )
                if looping:
                    assert switch is not None
                    loop_code = self._provisioning(workdir, nas.secret.decode(), switch, snmp_port)
                duration = min(self.deadline - time.monotonic() - TEARDOWN_S - SIM_STARTUP_S, LIVE_MAX_S)
                if duration < MIN_LIVE_S:
                    self.console.print(
                        "[yellow]No time left of --duration for the AAA traffic (DURATION=20 or more "
                        "shows it).[/]"
                    )
                else:
                    simulator, sim_path = self._start_simulator(
                        workdir, nas.secret.decode(), duration, PEOPLE, churn=0.05, coa_port=self.ports.coa
                    )
                    began = time.monotonic()
                    self.console.print(
                        f"BRAS simulator: {len(PEOPLE)} subscribers, Interim-Update every {SIM_INTERIM_S:g} "
                        f"s, a little churn; {duration:.0f} s of traffic.\nLive, every {TICK_S:g} s, from "
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
                    sim_out = sim_path.read_text(errors="replace")
            finally:
                if simulator is not None:
                    self._stop(simulator, "the BRAS simulator", grace=2, first=signal.SIGINT)
                if switch is not None:
                    self._stop(switch, "the switch simulator", grace=2)
                code = self._stop(billingd, "billingd", grace=15)
            drained = b"stopped; accounting drained" in self.log_path.read_bytes()
            if code == 0 and drained:
                self.console.print("billingd stopped on SIGTERM: accounting drained, exit 0")
            else:
                self.console.print(f"[yellow]billingd exited with {code}; see {self.log_path}[/]")
            if sim_out is not None:
                self._summary(final, self._database(), sim_out, traffic)
        configured = self.config.aaa.listen.auth_port
        when_free = (
            f" once {', '.join(self.busy)} {'is' if len(self.busy) == 1 else 'are'} free" if self.busy else ""
        )
        self._try_it(
            f"billingd has stopped. To try radtest at leisure, start it again on this data{when_free} "
            f"(Ctrl-C stops it):\n  .venv/bin/billingd --config {self.config_path}\nthen",
            configured or None,
        )
        return loop_code

    def _provisioning(
        self, workdir: Path, secret: str, switch: subprocess.Popen[bytes], snmp_port: int
    ) -> int:
        """The provisioning loop (:mod:`billing.demo_provisioning`) with a BRAS simulator of its own.

        Only the loop's PPPoE subscriber is on it, without churn, so its session stays the one the
        CoAs address; it stops before the AAA traffic's simulator starts on the same CoA port.
        0 when the loop completed, 1 (with the reason printed) when it did not.
        """
        from billing.demo_provisioning import (
            SESSION_LOGIN,
            SWITCH_NAME,
            SWITCH_PORT,
            LoopFailed,
            ProvisioningLoop,
            record_switch,
        )

        self.console.rule(
            "[bold]Provisioning[/]: out of money, suspended, the network follows, paid, resumed"
        )
        if snmp_port == 0:
            self.console.print(
                f"provisioning loop FAILED: the switch simulator did not start within {SWITCH_READY_S:g} s",
                style="red",
                markup=False,
            )
            return 1
        sessions = session_factory(self.engine)
        # It ends by itself after LOOP_SIM_S, sending the session's Accounting Stop (an interrupted
        # simulator would leave it open in radius_sessions); the loop must be done by then.
        sim_s = min(max(self.deadline - time.monotonic() - LOOP_SPARE_S, LOOP_SIM_S[0]), LOOP_SIM_S[1])
        until = time.monotonic() + sim_s
        people = [p for p in PEOPLE if p.login == SESSION_LOGIN]
        completed = False
        bras, bras_out = self._start_simulator(
            workdir,
            secret,
            sim_s,
            people,
            churn=0.0,
            coa_port=self.ports.coa,
            name="bras-loop",
        )
        try:
            port_service = record_switch(sessions, self.actor, snmp_port)
            self.console.print(
                f"Switch simulator (billing-sim switch, pid {switch.pid}): SNMP 127.0.0.1:{snmp_port}, "
                f"recorded as switch {SWITCH_NAME!r} (device type snmp), port {SWITCH_PORT} bound to service "
                f"{port_service}.\nBRAS simulator for this phase (pid {bras.pid}): {SESSION_LOGIN} only, "
                f"no churn, CoA/Disconnect on 127.0.0.1:{self.ports.coa}; billingd's outbox worker "
                f"polls every {self.config.provisioning.poll_s:g} s.",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            tasks = ProvisioningLoop(
                self.console, self.config, sessions, self.actor, snmp_port, port_service, until
            ).run()
            completed = True
        except (LoopFailed, SQLAlchemyError) as exc:
            self.console.print(f"provisioning loop FAILED: {exc}", style="red", markup=False)
            self.console.print(
                self.log_path.read_text(errors="replace")[-2000:], markup=False, highlight=False
            )
            return 1
        finally:
            if completed:  # its end: the final Stop
                grace = max(until - time.monotonic(), 0) + SIM_TIMEOUT_S * SIM_RETRIES + 2
                self._stop(bras, "the loop's BRAS simulator", grace=grace, first=None)
            else:
                self._stop(bras, "the loop's BRAS simulator", grace=2, first=signal.SIGINT)
        coa = _SIM_COA.search(bras_out.read_text(errors="replace"))
        if coa:
            self.console.print(
                f"The loop's BRAS simulator counted: CoA acked {coa[1]}, naked {coa[2]}; "
                f"Disconnect acked {coa[3]}.",
                highlight=False,
            )
        admin = f".venv/bin/billing-admin --config {self.config_path}"
        drops = [e.directory for e in self.config.provisioning.nms if getattr(e, "directory", None)]
        self.console.print(
            "Look closer (it stays in the database):\n"
            f"  {admin} provisioning list\n"
            f"  {admin} provisioning show {tasks[0]}      # the suspension's CoA: request, ACK, duration\n"
            f"  {admin} switch show {SWITCH_NAME}   # the port bound to service {port_service}\n"
            f"  {admin} service history {port_service}"
            + "".join(f"\n  ls {d}/   # every finished task, as the NMS file export drops it" for d in drops),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return 0

    # ------------------------------------------------------------------ set-up

    def _choose_ports(self, coa_port: int) -> Ports:
        """The configured ports (``coa_port``: the demo NAS's), or free ones if any is taken or --ports auto.

        The CoA port is always a real one: the BRAS simulator listens on it and billingd's config names it.
        """
        aaa = self.config.aaa
        wanted = Ports(0, 0, 0) if self.auto_ports else Ports(
            aaa.listen.auth_port, aaa.listen.acct_port, aaa.metrics_port, self._payments_port(), coa_port
        )  # fmt: skip
        self.busy = busy = _busy_ports(
            aaa.listen.address, aaa.metrics_address, wanted, self.config.payments.listen_address
        )
        if busy:
            for what in busy:
                self.console.print(f"[yellow]{what} is already in use (another RADIUS server or demo?)[/]")
            self.console.print("[yellow]Using free ports instead; they are printed below.[/]")
            wanted = Ports(0, 0, 0)
        if wanted.coa == 0:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                wanted = Ports(
                    wanted.auth, wanted.acct, wanted.metrics, wanted.payments, sock.getsockname()[1]
                )
        self.coa_port = wanted.coa
        return wanted

    def _config_for(self, ports: Ports, workdir: Path, coa_port: int) -> Path:
        """The config billingd gets: the demo's own, or a copy with other ports."""
        aaa = self.config.aaa
        if ports == Ports(
            aaa.listen.auth_port, aaa.listen.acct_port, aaa.metrics_port, self._payments_port(), coa_port
        ):
            return self.config_path
        copy = workdir / self.config_path.name
        copy.write_text(_with_ports(self.config_path.read_text(encoding="utf-8"), ports), encoding="utf-8")
        return copy

    def _payments_port(self) -> int:
        """The payment API's configured plain HTTP port (0 when it is not served over plain HTTP)."""
        payments = self.config.payments
        return payments.http_port if payments.banks and payments.plain_http else 0

    def _wait_ready(self, billingd: subprocess.Popen[bytes]) -> bool:
        """Wait for billingd's "RADIUS listening" line (and the payment API's, when it has banks);
        on failure say why and show its log."""
        now = time.monotonic()
        until = min(now + READY_TIMEOUT_S, max(self.deadline - 1.0, now + LOOP_MIN_S))
        while time.monotonic() < until and billingd.poll() is None:
            log = self.log_path.read_text(errors="replace")
            found, paying = _READY.search(log), _PAYMENTS_READY.search(log)
            if found and (paying or not self.config.payments.banks):
                listen = found[1] if found[1] not in ("0.0.0.0", "::") else "127.0.0.1"
                self.host = listen
                http = paying[1] if paying and paying[1] != "-" else "0"
                self.ports = Ports(int(found[2]), int(found[3]), int(found[4]), int(http), self.coa_port)
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
        self,
        workdir: Path,
        secret: str,
        duration: float,
        people: list[Person],
        *,
        churn: float,
        coa_port: int,
        name: str = "bras",
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """``billing-sim bras`` with ``people`` for ``duration`` seconds, answering CoA on ``coa_port``;
        its output goes to ``<name>.out`` in ``workdir``."""
        roster = workdir / f"{name}.csv"
        with roster.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(("login", "password", "method", "kind", "mac"))
            for p in people:
                writer.writerow((p.login, p.password, p.method, "pppoe" if p.login else "ipoe", p.mac))
        out = workdir / f"{name}.out"
        command = [
            sys.executable, "-m", "simulators.main", "bras",
            "--server", self.host, "--auth-port", str(self.ports.auth), "--acct-port", str(self.ports.acct),
            "--secret", secret, "--subscribers", str(roster), "--duration", f"{max(duration, 1.0):.1f}",
            "--interim", f"{SIM_INTERIM_S:g}", "--churn", f"{churn:g}", "--coa-port", str(coa_port),
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

    def _start_switch(self, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
        """``billing-sim switch`` on 127.0.0.1 on free ports, past the deadline; its output file."""
        duration = max(self.deadline - time.monotonic(), LOOP_MIN_S) + READY_TIMEOUT_S
        out = workdir / "switch.out"
        with out.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "simulators.main", "switch", "--snmp-port", "0", "--ssh-port", "0",
                 "--ports", "8", "--duration", f"{duration:.0f}"],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return process, out

    def _switch_ready(self, switch: subprocess.Popen[bytes], out: Path) -> int:
        """The switch simulator's SNMP port, from the line naming its ports (0: not in time)."""
        until = time.monotonic() + SWITCH_READY_S
        while time.monotonic() < until and switch.poll() is None:
            found = _SWITCH_READY.search(out.read_bytes())
            if found:
                return int(found[1])
            time.sleep(0.05)
        self.console.print(out.read_text(errors="replace")[-1500:], markup=False, highlight=False)
        return 0

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
        self, process: subprocess.Popen[bytes], name: str, grace: float, first: int | None = signal.SIGTERM
    ) -> int:
        """Signal ``first`` (unless it already ended; None: let it end by itself), wait ``grace``
        seconds, then SIGKILL.

        The simulator gets SIGINT (it then prints its summary), billingd SIGTERM (it drains its
        accounting). Another Ctrl-C while waiting kills at once: nothing is left behind.
        """
        try:
            if process.poll() is None and first is not None:
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

    def _try_it(self, intro: str, auth_port: int | None, http_port: int | None = None) -> None:
        """The radtest lines for ``auth_port`` (None: the port billingd logs when it starts), and the
        SOAP API's WSDL on ``http_port`` (None: the configured one)."""
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
        self._try_soap(http_port)

    def _try_soap(self, http_port: int | None) -> None:
        """The banks' SOAP API: its WSDL and the demo bank's credentials (None: the configured port)."""
        payments = self.config.payments
        if not payments.banks or not payments.plain_http:
            return
        bank = payments.bank("demobank") or payments.banks[0]
        port = http_port or payments.http_port or "PORT"
        self.console.print(
            f'The banks\' SOAP API (README "Bank SOAP API"): WSDL '
            f"http://{payments.listen_address}:{port}/payments?wsdl\n"
            f"  bank {bank.code!r}: HTTP Basic user {bank.code!r}, password {bank.password.reveal()!r}; "
            f"signing key {bank.signing_key.reveal()!r} (hex HMAC-SHA256 over the fields joined by '|')",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _busy_ports(
    listen: str, metrics_address: str, ports: Ports, payments_address: str = "127.0.0.1"
) -> list[str]:
    """Which of the wanted ports something else holds, e.g. "UDP 127.0.0.1:1812 (RADIUS auth)"."""
    busy = []
    for what, address, port, kind in (
        ("RADIUS auth", listen, ports.auth, socket.SOCK_DGRAM),
        ("RADIUS accounting", listen, ports.acct, socket.SOCK_DGRAM),
        ("billingd metrics", metrics_address, ports.metrics, socket.SOCK_STREAM),
        ("payment API", payments_address, ports.payments, socket.SOCK_STREAM),
        ("the BRAS simulator's CoA", "127.0.0.1", ports.coa, socket.SOCK_DGRAM),
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
    """The config text with ``auth_port``, ``acct_port`` and ``metrics_port`` of ``[aaa]`` replaced,
    and ``http_port`` of ``[payments]`` when it has that key."""
    lines = config_text.splitlines()
    payments = next((i for i, line in enumerate(lines) if line.strip() == "[payments]"), None)
    if payments is not None:
        for i in range(payments + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if re.match(r"\s*http_port\s*=", lines[i]):
                lines[i] = f"http_port = {ports.payments}"
    if ports.coa:
        lines = _with_coa_port(lines, ports.coa)
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


def _with_coa_port(lines: list[str], port: int) -> list[str]:
    """``coa_port`` of every ``[[aaa.nas]]`` table set to ``port`` (added where a table has none)."""
    out: list[str] = []
    table, seen = "", False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            if table == "[[aaa.nas]]" and not seen:
                out.append(f"coa_port = {port}")
            table, seen = stripped, False
        elif table == "[[aaa.nas]]" and re.match(r"\s*coa_port\s*=", line):
            line, seen = f"coa_port = {port}", True
        out.append(line)
    if table == "[[aaa.nas]]" and not seen:
        out.append(f"coa_port = {port}")
    return out


if __name__ == "__main__":
    sys.exit(main())
