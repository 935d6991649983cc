"""Charges keep their references without foreign keys, and the set-based path refuses conflicts.

Migration 0011 replaced the foreign keys of ``charges`` by triggers (set-based per statement on
PostgreSQL, per row on SQLite): these tests show the guarantee is still a foreign key's, on both
databases. The last test shows a charge run meeting a key posted before with other content.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, ledger, subscribers
from billing.audit import Actor
from billing.books import book_account
from billing.catalog import assign_tariff
from billing.charge_run import run_charges
from billing.db.charges import Charge, ChargeRun
from billing.db.customers import Account
from billing.db.services import Service
from tests.charge_world import charging_operator

DAY = date(2027, 1, 1)


@pytest.fixture
def actor(sessions: sessionmaker[Session]) -> Actor:
    return charging_operator(sessions)


def _service(sessions: sessionmaker[Session], actor: Actor) -> int:
    with sessions.begin() as s:
        info = subscribers.create(
            s, actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        number = info.accounts[0].number
        service = Service(account_id=accounts.find(s, number).id, kind="internet", status="active")
        s.add(service)
        s.flush()
        assign_tariff(s, actor, service.id, "M-PRE", DAY)
        accounts.adjust(s, actor, number, "1000", "goodwill", key=f"fund{service.id}",
                        effective_at=datetime(2026, 12, 1, tzinfo=UTC))  # fmt: skip
        return service.id


def _a_charge(session: Session) -> dict[str, object]:
    """The columns of an existing charge, to insert variants of it."""
    charge = session.scalars(select(Charge).limit(1)).one()
    return {c.key: getattr(charge, c.key) for c in Charge.__table__.columns if c.key != "id"} | {
        "idempotency_key": "copy"
    }


def _refused(sessions: sessionmaker[Session], change: dict[str, object]) -> None:
    with sessions() as s, pytest.raises(DBAPIError, match="refers to a missing"):
        s.execute(insert(Charge).values(_a_charge(s) | change))
        s.flush()


def test_a_charge_must_refer_to_an_existing_service_account_transaction_and_run(
    sessions: sessionmaker[Session], actor: Actor
) -> None:
    first, other = _service(sessions, actor), _service(sessions, actor)
    assert not run_charges(sessions, DAY, actor, evaluate=False).errors
    with sessions() as s:
        other_account = s.scalar(select(Service.account_id).where(Service.id == other))
    _refused(sessions, {"service_id": 10**9})
    _refused(sessions, {"service_id": other})  # a service of another account than the charged one
    _refused(sessions, {"account_id": other_account})
    _refused(sessions, {"transaction_id": 10**9})
    _refused(sessions, {"run_id": 10**9})
    with sessions.begin() as s:  # the same row with its true references is accepted
        s.execute(insert(Charge).values(_a_charge(s)))
        assert s.scalar(select(func.count()).select_from(Charge).where(Charge.service_id == first)) == 3


def test_a_charged_service_account_or_run_is_never_deleted_or_re_keyed(
    sessions: sessionmaker[Session], actor: Actor
) -> None:
    charged = _service(sessions, actor)
    result = run_charges(sessions, DAY, actor, evaluate=False)
    with sessions() as s:
        account_id = s.scalar(select(Service.account_id).where(Service.id == charged))
    for statement in (
        delete(Service).where(Service.id == charged),
        update(Service).where(Service.id == charged).values(id=10**9),
        delete(Account).where(Account.id == account_id),
        delete(ChargeRun).where(ChargeRun.id == result.run_id),
    ):
        with sessions() as s, pytest.raises(DBAPIError):
            s.execute(statement)
            s.flush()
    uncharged = _service(sessions, actor)
    with sessions.begin() as s:  # a service without charges goes as before
        s.execute(delete(Service).where(Service.id == uncharged))


def test_a_key_posted_before_with_other_content_fails_that_service_only(
    sessions: sessionmaker[Session], actor: Actor
) -> None:
    services = [_service(sessions, actor) for _ in range(5)]
    victim = services[2]
    with sessions.begin() as s:
        subscriber = s.scalar(
            select(Account.ledger_account_id)
            .join(Service, Service.account_id == Account.id)
            .where(Service.id == victim)
        )
        revenue = book_account(s, "revenue", "EUR", "internet")
        ledger.post(
            s,
            ledger.TransactionRequest(
                f"charge:{victim}:recurring:2027-01-01:M-PRE:1",
                "charge",
                (ledger.Leg(subscriber, Decimal("1.00")), ledger.Leg(revenue, Decimal("-1.00"))),
                datetime(2027, 1, 1, tzinfo=UTC),
            ),
        )
    result = run_charges(sessions, DAY, actor, evaluate=False, batch_size=10)
    assert [e.service_id for e in result.errors] == [victim]
    assert "other content" in result.errors[0].message
    assert result.services_charged == 4
    with sessions() as s:
        charged = dict(
            s.execute(select(Charge.service_id, func.sum(Charge.amount)).group_by(Charge.service_id)).all()
        )
    assert victim not in charged
    assert all(charged[s] == Decimal("81.00") for s in services if s != victim)
