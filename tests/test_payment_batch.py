"""Payments posted as a group (the payment API's group commit) on both databases: the same rows,
ledger lines, notifications and audit as one by one; replays within and across groups; resume."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, payments, service_lifecycle
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.ledger import LedgerTransaction
from billing.db.payments import Notification, Payment
from billing.db.services import Service
from billing.payment_batch import pay_many
from billing.payments import PaymentConflict, PaymentError, PaymentRequest
from tests.test_payments import NOW, RULES, World

BANK = Actor(None, "bank:bank1", source="soap")


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return World(sessions)


def _request(world: World, txn: str, amount: str = "5.00", number: str | None = None) -> PaymentRequest:
    return PaymentRequest("bank1", txn, number or world.number, amount, NOW - timedelta(minutes=1), "soap")


def _count(world: World, table: type, **where: object) -> int:
    with world.sessions() as s:
        query = select(func.count()).select_from(table)
        for name, value in where.items():
            query = query.where(getattr(table, name) == value)
        return s.scalar(query) or 0


def test_a_group_posts_each_payment_once_and_replays_duplicates_in_and_across_groups(world: World) -> None:
    before = world.pay("old-1", "7.00", source="bank1")
    group = [_request(world, "n-1"), _request(world, "n-2", "3.00", world.other), _request(world, "n-1"),
             _request(world, "old-1", "7.00")]  # fmt: skip
    with world.sessions.begin() as s:
        results = pay_many(s, [(BANK, r) for r in group], rules=RULES)
    assert [r.created for r in results] == [True, True, False, False]
    assert results[2].id == results[0].id and results[3].id == before.id
    assert [r.account_number for r in results] == [world.number, world.other, world.number, world.number]
    assert (world.balance(), world.balance(world.other)) == (Decimal("12.00"), Decimal("3.00"))
    assert _count(world, Payment) == 3 and _count(world, LedgerTransaction) == 3
    assert _count(world, Notification) == 3
    assert _count(world, AuditEntry, action="payments.pay") == 3
    with world.sessions() as s:
        note = s.scalars(select(Notification).where(Notification.key == f"payment:{results[1].id}")).one()
    assert note.payload == {"amount": "3.000000", "currency": "EUR", "balance": "3.000000"}
    again = world.pay("n-2", "3.00", number=world.other)  # the one-by-one path sees the group's rows
    assert not again.created and again.id == results[1].id


@pytest.mark.parametrize(
    ("bad", "error"),
    [(("old-1", "8.00", None), PaymentConflict), (("n-9", "5.00", "nope"), PaymentError),
     (("n-9", "5.001", None), PaymentError)],
)  # fmt: skip
def test_a_group_with_a_bad_request_raises_for_the_caller_to_retry_each_alone(
    world: World, bad: tuple[str, str, str | None], error: type[Exception]
) -> None:
    world.pay("old-1", "7.00", source="bank1")
    with pytest.raises(error), world.sessions.begin() as s:
        pay_many(s, [(BANK, _request(world, "n-1")), (BANK, _request(world, *bad))], rules=RULES)
    assert _count(world, Payment) == 1 and world.balance() == Decimal("7.00")


def test_a_group_resumes_a_service_suspended_for_debt(world: World) -> None:
    with world.sessions.begin() as s:
        accounts.adjust(s, world.actor, world.number, "-4.00", "fee", key="fee",
                        effective_at=NOW - timedelta(10))  # fmt: skip
        service_lifecycle.evaluate_services(s, world.actor, NOW - timedelta(hours=2), RULES)
    with world.sessions.begin() as s:
        group = [(BANK, _request(world, "r-1")), (BANK, _request(world, "r-2", "1.00", world.other))]
        results = pay_many(s, group, rules=RULES)
    assert results[0].lifecycle_changes == (f"service {world.service_id}: suspended_involuntary -> active",)
    assert results[1].lifecycle_changes == ()
    with world.sessions() as s:
        assert s.get(Service, world.service_id).status == "active"  # type: ignore[union-attr]
    assert payments  # the one-by-one module is the reference these tests compare with
