"""The subscribers service: frozen results, one transaction per use case, rules on money and closing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, subscribers
from billing.accounts import AccountError, UnknownAccount
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.customers import Account, Customer
from billing.db.ledger import LedgerAccount
from billing.dictionaries import UnknownDictionaryValue
from billing.subscribers import SubscriberError

ACTOR = Actor(None, "tester", None, "test")


@pytest.fixture
def filled(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions.begin() as session:
        for kind, code in [
            ("subscriber_category", "residential"),
            ("region", "north"),
            ("adjustment_reason", "goodwill"),
        ]:
            dictionaries.add(session, ACTOR, kind, code, code.title())
    return sessions


def _create(session: Session, **overrides: object) -> subscribers.SubscriberInfo:
    fields: dict[str, object] = {
        "kind": "person",
        "name": "Ann",
        "category": "residential",
        "region": "north",
    }
    fields.update(overrides)
    return subscribers.create(session, ACTOR, currency="EUR", **fields)  # type: ignore[arg-type]


def test_create_returns_frozen_values_and_numbers_in_sequence(filled: sessionmaker[Session]) -> None:
    with filled.begin() as session:
        first = _create(session, emails=("a@example.net",))
        second = _create(session, name="Bo")
        custom = _create(session, name="Cy", account_number="X-1")
        third = _create(session, name="Di")
    assert dataclasses.is_dataclass(first) and not isinstance(first, Customer)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.name = "changed"  # type: ignore[misc]
    numbers = [s.accounts[0].number for s in (first, second, custom, third)]
    assert numbers == ["100001", "100002", "X-1", "100003"]
    with filled() as session:
        kinds = session.scalars(
            select(LedgerAccount.kind).where(LedgerAccount.code.startswith("acct:"))
        ).all()
        assert kinds == ["subscriber"] * 4
        assert subscribers.show(session, "100001").contacts == (
            subscribers.ContactInfo("email", "a@example.net"),
        )


def test_a_failed_create_leaves_nothing(filled: sessionmaker[Session]) -> None:
    message = "region: 'south' is not a value in dictionary region"
    with pytest.raises(UnknownDictionaryValue, match=message), filled.begin() as session:
        _create(session, region="south")
    with filled() as session:
        for model in (Customer, Account, LedgerAccount, AuditEntry):
            assert session.scalar(select(func.count()).select_from(model)) == (
                3 if model is AuditEntry else 0
            )


def test_adjust_balance_and_close(filled: sessionmaker[Session]) -> None:
    with filled.begin() as session:
        _create(session, credit_limit="10")
        credit = accounts.adjust(session, ACTOR, "100001", "12.50", "goodwill", key="k1")
        assert credit.created and credit.balance == Decimal("12.5")
        assert not accounts.adjust(session, ACTOR, "100001", "12.50", "goodwill", key="k1").created
        assert accounts.balance(session, "100001").available == Decimal("22.5")
        with pytest.raises(SubscriberError, match=r"balance: .*12\.500000 EUR"):
            subscribers.close(session, ACTOR, "100001")
        accounts.adjust(session, ACTOR, "100001", "-12.5", "goodwill")
        now = datetime.now(UTC)
        statement = accounts.statement(session, "100001", now - timedelta(days=1), now + timedelta(days=1))
        assert [line.balance_after for line in statement.lines] == [Decimal("12.5"), Decimal(0)]
        closed = subscribers.close(session, ACTOR, "100001")
        assert closed.status == "closed" and closed.accounts[0].closed_at is not None
        with pytest.raises(AccountError, match="closed"):
            accounts.adjust(session, ACTOR, "100001", "1", "goodwill")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "amount: must not be zero"),
        ("abc", "amount: expected a decimal"),
        ("0.001", "amount: at most 2"),
    ],
)
def test_adjust_refuses_bad_amounts(filled: sessionmaker[Session], amount: str, message: str) -> None:
    with filled.begin() as session:
        _create(session)
        with pytest.raises(AccountError, match=message):
            accounts.adjust(session, ACTOR, "100001", amount, "goodwill")


def test_unknown_account_and_bad_fields(filled: sessionmaker[Session]) -> None:
    with filled() as session:
        with pytest.raises(UnknownAccount, match="account_number"):
            subscribers.show(session, "nope")
        with pytest.raises(SubscriberError, match="credit_limit: must be zero or positive"):
            _create(session, credit_limit="-1")
        with pytest.raises(SubscriberError, match="kind"):
            _create(session, kind="robot")
        _create(session)
        with pytest.raises(SubscriberError, match="nothing to change"):
            subscribers.update(session, ACTOR, "100001", name="Ann")


def test_update_adds_and_removes_contacts_and_audits_them(filled: sessionmaker[Session]) -> None:
    with filled.begin() as session:
        _create(session, emails=("ann@example.net",), phones=("+4930123456",))
        before = [c.value for c in subscribers.show(session, "100001").contacts]
        after = subscribers.update(
            session, ACTOR, "100001", add_phones=("+4915112345678",), remove_contacts=(before[0],)
        )
        assert [c.value for c in after.contacts] == [*before[1:], "+4915112345678"]
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.action == "subscriber.update"
        assert len(entry.after["contacts"]) == len(before)


def test_removing_an_unknown_contact_or_adding_a_bad_one_changes_nothing(
    filled: sessionmaker[Session],
) -> None:
    with filled.begin() as session:
        _create(session, emails=("ann@example.net",), phones=("+4930123456",))
    for change, field in (({"remove_contacts": ("nobody@example.net",)}, "remove_contact"),
                          ({"add_emails": ("not-an-address",)}, "email")):  # fmt: skip
        with pytest.raises(SubscriberError, match=field), filled.begin() as session:
            subscribers.update(session, ACTOR, "100001", **change)  # type: ignore[arg-type]
    with filled() as session:
        assert len(subscribers.show(session, "100001").contacts) == 2
