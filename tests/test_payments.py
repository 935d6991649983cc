"""The payment service on both databases: exactly once, conflicts, bad input, resume, cancel, races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, operators, payments, service_lifecycle, subscribers
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.ledger import LedgerTransaction
from billing.db.lifecycle import ProvisioningTask
from billing.db.payments import Notification, Payment
from billing.db.services import Service
from billing.payments import PaymentConflict, PaymentError, PaymentRequest
from billing.permissions import resolve_actor

RULES = service_lifecycle.rules_for(UTC)
NOW = datetime.now(UTC)


class World:
    """An operator and one residential subscriber (account ``number``) with an active Internet service."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        with sessions.begin() as s:
            operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
            self.actor = resolve_actor(s, "tester", source="test")
            for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
                dictionaries.add(s, self.actor, kind, code, code.title())
            dictionaries.add(s, self.actor, "adjustment_reason", "fee", "Fee")
            self.number = self._subscriber(s)
            self.other = self._subscriber(s)
            service = Service(account_id=accounts.find(s, self.number).id, kind="internet", status="active",
                              created_at=NOW - timedelta(days=40))  # fmt: skip
            s.add(service)
            s.flush()
            self.service_id = service.id

    def _subscriber(self, s: Session) -> str:
        info = subscribers.create(
            s, self.actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        return info.accounts[0].number

    def pay(
        self, external_id: str, amount: str = "25.00", number: str | None = None, **kw: object
    ) -> payments.PaymentInfo:
        request = PaymentRequest(
            kw.pop("source", "bank1"), external_id, number or self.number, amount,  # type: ignore[arg-type]
            kw.pop("paid_at", NOW - timedelta(minutes=1)), channel="soap", **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        with self.sessions.begin() as s:
            return payments.pay(s, self.actor, request, rules=RULES)

    def balance(self, number: str | None = None) -> Decimal:
        with self.sessions() as s:
            return accounts.balance(s, number or self.number).balance

    def count(self, table: type) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(table)) or 0


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return World(sessions)


def test_a_payment_credits_once_and_a_retry_returns_the_original(world: World) -> None:
    first = world.pay("tx-1")
    again = world.pay("tx-1")
    assert first.created and not again.created
    assert (again.id, again.transaction_id, again.amount) == (first.id, first.transaction_id, Decimal("25"))
    assert world.balance() == Decimal("25")
    assert (world.count(Payment), world.count(Notification)) == (1, 1)
    with world.sessions() as s:
        assert s.scalar(select(func.count()).where(AuditEntry.action == "payments.pay")) == 1
    assert world.pay("tx-1", source="bank2").created  # the id is the source's own: another bank's is new


@pytest.mark.parametrize("change", [{"amount": "26.00"}, {"number": "other"}])
def test_the_same_id_with_other_details_is_a_conflict_and_posts_nothing(
    world: World, change: dict[str, str]
) -> None:
    world.pay("tx-1")
    kwargs = {"number": world.other} if change.get("number") else change
    with pytest.raises(PaymentConflict, match="tx-1 was used for another account or amount"):
        world.pay("tx-1", **kwargs)  # type: ignore[arg-type]
    assert (world.count(Payment), world.balance(), world.balance(world.other)) == (
        1,
        Decimal("25"),
        Decimal(0),
    )


@pytest.mark.parametrize(
    ("amount", "kw", "message"),
    [
        ("0", {}, "amount: must be positive"),
        ("-5", {}, "amount: must be positive"),
        ("1.001", {}, "at most 2 decimal places in EUR"),
        ("ten", {}, "amount"),
        ("5", {"currency": "USD"}, "currency: account .* is kept in EUR, got USD"),
        ("5", {"source": "bad source!"}, "source: expected"),
        ("5", {"paid_at": NOW + timedelta(hours=1)}, "paid_at: .* is in the future"),
        ("5", {"paid_at": datetime(2026, 1, 1)}, "paid_at: must be timezone-aware"),
        ("5", {"number": "404"}, "account: no account '404'"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    world: World, amount: str, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(PaymentError, match=message):
        world.pay("tx-bad", amount, **kw)  # type: ignore[arg-type]
    assert (world.count(Payment), world.count(LedgerTransaction)) == (0, 0)


def test_a_payment_covering_the_debt_resumes_the_suspended_service_and_writes_its_task(world: World) -> None:
    with world.sessions.begin() as s:
        accounts.adjust(
            s, world.actor, world.number, "-10.00", "fee", key="fee", effective_at=NOW - timedelta(10)
        )
        service_lifecycle.evaluate_services(s, world.actor, NOW - timedelta(hours=2), RULES)
        assert s.get(Service, world.service_id).status == "suspended_involuntary"  # type: ignore[union-attr]
    short = world.pay("tx-short", "5.00")
    assert short.lifecycle_changes == ()  # still 5.00 below zero: stays suspended
    paid = world.pay("tx-rest", "5.00")
    assert paid.lifecycle_changes == (f"service {world.service_id}: suspended_involuntary -> active",)
    with world.sessions() as s:
        networks = list(s.scalars(select(ProvisioningTask.network).order_by(ProvisioningTask.id)))
    assert networks == ["walled_garden", "allow"]


def test_cancel_reverses_a_payment_of_today_once(world: World) -> None:
    paid = world.pay("tx-1")
    with world.sessions.begin() as s:
        with pytest.raises(PaymentError, match="reason: required"):
            payments.cancel(s, world.actor, paid.id, " ", time_zone=UTC)
        cancelled = payments.cancel(s, world.actor, paid.id, "wrong account", time_zone=UTC)
    with world.sessions.begin() as s:
        again = payments.cancel(s, world.actor, paid.id, "again", time_zone=UTC)
    assert (cancelled.state, cancelled.created, again.created) == ("cancelled", True, False)
    assert again.cancel_transaction_id == cancelled.cancel_transaction_id
    assert world.balance() == Decimal(0)
    assert world.pay("tx-1").state == "cancelled"  # a retry of a cancelled payment does not pay again
    assert world.balance() == Decimal(0)


def test_only_a_payment_received_today_can_be_cancelled(world: World) -> None:
    paid = world.pay("tx-1")
    with world.sessions.begin() as s:
        s.get(Payment, paid.id).received_at = NOW - timedelta(days=2)  # type: ignore[union-attr]
    with (
        world.sessions.begin() as s,
        pytest.raises(PaymentError, match="only today's payments can be cancelled"),
    ):
        payments.cancel(s, world.actor, paid.id, "late", time_zone=UTC)
    assert world.balance() == Decimal("25")


def test_show_find_and_list(world: World) -> None:
    first, second = world.pay("tx-1"), world.pay("tx-2", "3.00")
    world.pay("tx-3", number=world.other)
    with world.sessions() as s:
        assert payments.show(s, first.id).external_id == "tx-1"
        assert payments.find(s, "bank1", "tx-2").id == second.id
        assert [p.external_id for p in payments.list_payments(s, account_number=world.number)] == [
            "tx-2",
            "tx-1",
        ]
        with pytest.raises(payments.UnknownPayment, match="no payment 999"):
            payments.show(s, 999)


def test_concurrent_duplicates_credit_once(world: World) -> None:
    """Twelve threads send each of ten payments at the same moment: each credits exactly once."""
    barrier = threading.Barrier(12)

    def send(external_id: str) -> bool:
        barrier.wait(timeout=30)
        return world.pay(external_id).created

    with ThreadPoolExecutor(12) as pool:
        for i in range(10):
            created = list(pool.map(send, [f"race-{i}"] * 12))
            assert created.count(True) == 1, i
    assert world.count(Payment) == 10
    assert world.balance() == Decimal("250")
