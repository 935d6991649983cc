"""Scenario tests: the charge run and the service lifecycle on a test clock moving day by day.

Each scenario runs :func:`billing.charge_run.run_charges` once a day (its lifecycle evaluation at
01:00 of that day, rules :data:`billing.lifecycle_rules.DEFAULT_RULES` in UTC: residential
Internet has 5 days' grace and churns after 90 days suspended for debt), on both databases, and
checks the subscriber's ledger entry by entry after each step that moves money or status. Why:
the unit tests price and decide in isolation; only a clock over weeks shows that charging,
suspension, payment, resume and churn fit together (no fee while suspended for debt, the
credit for the suspended days, the charge for the days after resume).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, ledger, operators, service_lifecycle, subscribers
from billing.audit import Actor
from billing.books import book_account
from billing.catalog import assign_tariff, import_catalog
from billing.charge_run import run_charges
from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.db.lifecycle import ProvisioningTask
from billing.db.services import Service
from billing.lifecycle_rules import DEFAULT_RULES
from billing.permissions import resolve_actor

GOLDEN = Path(__file__).parent / "golden" / "charges"
RULES = service_lifecycle.rules_for(UTC)
START = date(2027, 1, 1)
GRACE = DEFAULT_RULES.lookup("internet", "residential").grace_days
CHURN = DEFAULT_RULES.lookup("internet", "residential").churn_after_days


class Clock:
    """One monthly prepaid subscriber (M-PRE: 31.00 a month, 50.00 installation) and a daily run."""

    def __init__(self, sessions: sessionmaker[Session], actor: Actor, funds: str) -> None:
        self.sessions = sessions
        self.actor = actor
        self.today = START - timedelta(days=1)
        with sessions.begin() as s:
            info = subscribers.create(
                s, actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
            )
            self.number = info.accounts[0].number
            account = accounts.find(s, self.number)
            self.ledger_account = account.ledger_account_id
            service = Service(account_id=account.id, kind="internet", status="active")
            s.add(service)
            s.flush()
            self.service = service.id
            assign_tariff(s, actor, service.id, "M-PRE", START)
            accounts.adjust(
                s,
                actor,
                self.number,
                funds,
                "goodwill",
                key="fund",
                effective_at=datetime(2026, 12, 1, tzinfo=UTC),
            )

    def run_until(self, last: date) -> None:
        """Run the charges (and the lifecycle evaluation) of every day after ``today`` through ``last``."""
        while self.today < last:
            self.today += timedelta(days=1)
            at = datetime.combine(self.today, clock_time(1), tzinfo=UTC)
            result = run_charges(self.sessions, self.today, self.actor, evaluate_at=at, rules=RULES)
            assert not result.errors and not result.lifecycle_failures, self.today

    def pay(self, amount: str, at: datetime, bank_tx: str) -> None:
        """A bank payment: bank clearing debit, subscriber account credit (one ledger transaction)."""
        value = Decimal(amount)
        with self.sessions.begin() as s:
            clearing = book_account(s, "clearing", "EUR", "bank1")
            ledger.post(
                s,
                ledger.TransactionRequest(
                    idempotency_key=f"pay:bank1:{bank_tx}",
                    kind="payment",
                    legs=(ledger.Leg(clearing, value), ledger.Leg(self.ledger_account, -value)),
                    effective_at=at,
                    description="payment",
                ),
            )

    def entries(self) -> list[tuple[str, Decimal]]:
        """The subscriber account's ledger: (key without the service prefix, signed amount), in order.

        Positive is money to the subscriber's credit (funding, payments, credits), negative a charge.
        """
        with self.sessions() as s:
            kind = s.scalar(select(LedgerAccount.kind).where(LedgerAccount.id == self.ledger_account))
            assert kind is not None
            rows = s.execute(
                select(LedgerTransaction.idempotency_key, Posting.amount)
                .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                .where(Posting.ledger_account_id == self.ledger_account)
                .order_by(LedgerTransaction.effective_at, LedgerTransaction.id)
            ).all()
        prefix = f"charge:{self.service}:"
        return [(key.removeprefix(prefix), ledger.natural_balance(kind, Decimal(raw))) for key, raw in rows]

    def balance(self) -> Decimal:
        with self.sessions() as s:
            return accounts.balance(s, self.number).balance

    def status(self) -> str:
        with self.sessions() as s:
            status = s.scalar(select(Service.status).where(Service.id == self.service))
            assert status is not None
            return status

    def outbox(self) -> list[tuple[str, bool, str | None]]:
        """The provisioning tasks of the service: (network, release, tariff profile), in order."""
        with self.sessions() as s:
            rows = s.execute(
                select(ProvisioningTask.network, ProvisioningTask.release, ProvisioningTask.tariff_code)
                .where(ProvisioningTask.service_id == self.service)
                .order_by(ProvisioningTask.id)
            ).all()
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.fixture
def actor(sessions: sessionmaker[Session]) -> Actor:
    with sessions.begin() as s:
        operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
        found = resolve_actor(s, "tester", source="test")
        for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
            dictionaries.add(s, found, kind, code, code.title())
        dictionaries.add(s, found, "adjustment_reason", "goodwill", "Goodwill")
        import_catalog(
            s, (GOLDEN / "catalog.toml").read_text(), "catalog.toml", found, today=date(2026, 12, 1)
        )
    return found


FUNDED = ("adjust:fund", Decimal("81.00"))  # exactly the installation and January
OPENING = [
    FUNDED,
    ("one_time:installation:2027-01-01", Decimal("-50.00")),
    ("recurring:2027-01-01:M-PRE:1", Decimal("-31.00")),
]
FEBRUARY = ("recurring:2027-02-01:M-PRE:1", Decimal("-31.00"))
# Suspended from Feb 7 (the day after the Feb 6 decision): 6 of 28 days kept, 6.64 of 31.00.
SUSPENSION_CREDIT = ("adjustment:2027-02-01:M-PRE:1:2027-02-07", Decimal("24.36"))


def test_rules_are_the_ones_the_scenarios_count_with() -> None:
    assert (GRACE, CHURN) == (5, 90)


def test_unpaid_monthly_prepaid_is_suspended_after_grace_and_resumed_by_a_payment(
    sessions: sessionmaker[Session], actor: Actor
) -> None:
    clock = Clock(sessions, actor, "81.00")
    clock.run_until(date(2027, 1, 31))
    assert (clock.entries(), clock.balance(), clock.status()) == (OPENING, Decimal("0"), "active")

    clock.run_until(date(2027, 2, 5))  # below zero since Feb 1: grace runs through Feb 5
    assert (clock.entries(), clock.balance(), clock.status()) == (
        [*OPENING, FEBRUARY],
        Decimal("-31"),
        "active",
    )
    assert clock.outbox() == []

    clock.run_until(date(2027, 2, 6))  # Feb 1 + 5 days: suspended for debt, walled garden
    assert clock.status() == "suspended_involuntary"
    assert clock.outbox() == [("walled_garden", False, None)]
    assert clock.entries() == [*OPENING, FEBRUARY]

    clock.run_until(date(2027, 2, 10))  # no fee while suspended: the rest of February is credited
    assert clock.entries() == [*OPENING, FEBRUARY, SUSPENSION_CREDIT]
    assert clock.balance() == Decimal("-6.64")

    clock.pay("100.00", datetime(2027, 2, 10, 12, tzinfo=UTC), "778")
    assert clock.balance() == Decimal("93.36")
    assert clock.status() == "suspended_involuntary"  # until the next run evaluates it

    clock.run_until(date(2027, 2, 11))  # funds at zero or above: resumed automatically
    assert clock.status() == "active"
    assert clock.outbox() == [("walled_garden", False, None), ("allow", False, "M-PRE")]

    clock.run_until(date(2027, 3, 1))  # charged again from Feb 12: 23 of 28 days is 25.46, 6.64 paid
    assert clock.entries() == [
        *OPENING,
        FEBRUARY,
        SUSPENSION_CREDIT,
        ("pay:bank1:778", Decimal("100.00")),
        ("adjustment:2027-02-01:M-PRE:1:2027-02-12", Decimal("-18.82")),
        ("recurring:2027-03-01:M-PRE:1", Decimal("-31.00")),
    ]
    assert (clock.balance(), clock.status()) == (Decimal("43.54"), "active")


def test_unpaid_monthly_prepaid_is_suspended_then_churned_with_no_fee_meanwhile(
    sessions: sessionmaker[Session], actor: Actor
) -> None:
    clock = Clock(sessions, actor, "81.00")
    clock.run_until(date(2027, 2, 6))
    assert clock.status() == "suspended_involuntary"
    suspended_on = date(2027, 2, 6)

    churn_day = suspended_on + timedelta(days=CHURN or 0)  # May 7
    clock.run_until(churn_day - timedelta(days=1))
    assert clock.status() == "suspended_involuntary"
    # March, April and May fall due while suspended for debt: no fee, no line
    assert clock.entries() == [*OPENING, FEBRUARY, SUSPENSION_CREDIT]

    clock.run_until(churn_day)
    assert clock.status() == "churned"
    assert clock.outbox() == [("walled_garden", False, None), ("deny", True, None)]

    clock.run_until(churn_day + timedelta(days=3))
    assert clock.entries() == [*OPENING, FEBRUARY, SUSPENSION_CREDIT]
    assert clock.balance() == Decimal("-6.64")  # the debt stays on the account
