"""The demo: an ISP's month of billing on the embedded database, watched from the terminal.

``make demo`` migrates ``var/demo.db`` and runs this. It seeds the ISP's dictionaries and a
dozen subscribers, then walks a billing month day by day: monthly fees charged in advance on the
1st, daily fees for the daily tariff, payments arriving from a bank, a goodwill adjustment and a
recalled payment (a reversing transaction). It ends with balances, one statement and the ledger's
invariant check. ``--duration`` bounds the run in seconds: it always stops by itself, exit 0.

Charges and payments are posted straight to the ledger here; the rating engine and the payment
gateways of later releases post the same transactions through their own services.
"""

from __future__ import annotations

import argparse
import getpass
import random
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, ledger, operators, subscribers
from billing.audit import Actor
from billing.books import book_account
from billing.config import Config, load_config
from billing.db.customers import Account
from billing.db.engine import make_engine, session_factory
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

PEOPLE = [
    ("person", "Anna Schmidt", "residential", "north"),
    ("person", "Jonas Weber", "residential", "centre"),
    ("person", "Lea Fischer", "residential", "south"),
    ("person", "Paul Wagner", "vip", "centre"),
    ("company", "Bäckerei Becker GmbH", "business", "north"),
    ("person", "Mia Hoffmann", "residential", "north"),
    ("person", "Noah Schulz", "residential", "south"),
    ("company", "Kanzlei Koch & Partner", "business", "centre"),
    ("person", "Emma Richter", "residential", "centre"),
    ("person", "Ben Klein", "residential", "north"),
    ("person", "Sophie Wolf", "residential", "south"),
    ("company", "Autohaus Neumann KG", "business", "south"),
]


@dataclass(frozen=True)
class Plan:
    """What a demo subscriber buys: a monthly fee charged on the 1st, or a daily fee."""

    name: str
    fee: Decimal
    daily: bool


PLANS = {
    "residential": Plan("Home 100", Decimal("24.90"), daily=False),
    "vip": Plan("Home 1000", Decimal("49.90"), daily=False),
    "business": Plan("Business daily", Decimal("2.30"), daily=True),
}


@dataclass(frozen=True)
class Subscriber:
    number: str
    name: str
    category: str
    ledger_account_id: int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="conf/demo.toml", help="config file (default: conf/demo.toml)")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="stop after this many seconds (default 60)"
    )
    parser.add_argument("--pace", type=float, default=0.05, help="seconds per simulated day, to watch it run")
    parser.add_argument("--month", default="2026-11", help="the billing month to simulate, YYYY-MM")
    args = parser.parse_args(argv)

    deadline = time.monotonic() + max(args.duration, 1.0)
    console = Console(width=None if sys.stdout.isatty() else 120)
    config = load_config(args.config)
    engine = make_engine(config.database.sqlalchemy_url())
    sessions = session_factory(engine)
    try:
        year, month = (int(part) for part in args.month.split("-"))
        console.rule(f"[bold]{config.isp.name}[/]: billing demo, {args.month}, {config.isp.currency}")
        actor = _operator(sessions)
        people = _seed(sessions, actor, config)
        _simulate_month(console, sessions, actor, config, people, date(year, month, 1), deadline, args.pace)
        _report(console, sessions, config, people, date(year, month, 1))
        return _check(console, sessions)
    finally:
        engine.dispose()


def _operator(sessions: sessionmaker[Session]) -> Actor:
    """The demo runs as the OS login, made the first operator (admin) of a fresh database."""
    login = getpass.getuser()
    with sessions.begin() as s:
        if not operators.list_all(s):
            operators.bootstrap(s, Actor(None, login, None, "demo"), login, f"Demo operator ({login})")
        return resolve_actor(s, login, source="demo")


def _seed(sessions: sessionmaker[Session], actor: Actor, config: Config) -> list[Subscriber]:
    with sessions.begin() as s:
        for kind, values in SEED_DICTIONARIES.items():
            present = {v.code for v in dictionaries.list_values(s, kind)}
            for order, (code, name) in enumerate(values):
                if code not in present:
                    dictionaries.add(s, actor, kind, code, name, sort_order=order)
        people = []
        for kind, name, category, region in PEOPLE:
            slug = name.split()[0].lower()
            info = subscribers.create(
                s,
                actor,
                kind=kind,
                name=name,
                category=category,
                region=region,
                currency=config.isp.currency,
                emails=(f"{slug}@example.net",),
                credit_limit="50" if category == "business" else "0",
                billing_mode="postpaid" if category == "business" else "prepaid",
            )
            number = info.accounts[0].number
            ledger_id = s.query(Account.ledger_account_id).filter(Account.number == number).scalar()
            people.append(Subscriber(number, name, category, ledger_id))
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
                if rng.random() < 0.08:
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
    for column in ("account", "subscriber", "category", "mode", "balance", "credit limit", "available"):
        table.add_column(
            column, justify="right" if column in ("balance", "credit limit", "available") else "left"
        )
    with sessions() as s:
        for person in people:
            info = accounts.balance(s, person.number)
            account = subscribers.show(s, person.number).accounts[0]
            style = "red" if info.available < 0 else ""
            table.add_row(
                person.number,
                person.name,
                person.category,
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
    console.print(
        "Try the admin CLI on this data: .venv/bin/billing-admin --config conf/demo.toml subscribers list"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
