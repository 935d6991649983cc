"""The payment API's gateway on both databases: each authorization check refuses with its code and
is audited; look-ups reveal no personal data; business errors map to stable codes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from ipaddress import ip_network

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts
from billing.config import Config, Secret, load_config
from billing.db.audit import AuditEntry
from billing.payment_auth import (
    amount_text,
    cancel_fields,
    lookup_fields,
    pay_fields,
    signature,
    status_fields,
)
from billing.payment_gateway import Credentials, PaymentGateway, Refused, mask_name
from billing.payment_settings import BankSettings
from tests.test_payments import World

NOW = datetime.now(UTC)
TS = int(NOW.timestamp())
KEY = "k3y-of-bank1"


def _config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("gw") / "billing.toml"
    path.write_text(
        '[isp]\nname = "T"\ncurrency = "EUR"\ntime_zone = "UTC"\n[database]\nurl = "sqlite:///unused.db"\n'
    )
    config = load_config(path)
    bank = BankSettings("bank1", "Bank One", Secret("pw1"), Secret(KEY), (ip_network("127.0.0.0/8"),))
    return dataclasses.replace(config, payments=dataclasses.replace(config.payments, banks=(bank,)))


@pytest.fixture
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> PaymentGateway:
    return PaymentGateway(engine, _config(tmp_path_factory), clock=lambda: NOW)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return World(sessions)


def _authorize(gateway: PaymentGateway, **change: object) -> BankSettings:
    args: dict[str, object] = {"bank": "bank1", "password": "pw1", "addr": "127.0.0.1", "ts": TS, "key": KEY}
    args.update(change)
    fields = pay_fields(str(args["bank"]), "t1", "100001", Decimal("5"), int(args["ts"]))  # type: ignore[call-overload]
    creds = Credentials(str(args["bank"]), str(args["password"]), str(args["addr"]))
    return gateway.authorize(creds, "pay", fields, signature(str(args["key"]), fields), int(args["ts"]))  # type: ignore[call-overload]


def test_a_correctly_signed_request_from_an_allowed_address_is_authorized(gateway: PaymentGateway) -> None:
    assert _authorize(gateway).code == "bank1"
    assert _authorize(gateway, ts=TS - 290, addr="::ffff:127.0.0.9").code == "bank1"


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({"bank": "nobank"}, "AuthFailed", "unknown bank"),
        ({"password": "wrong"}, "AuthFailed", "bad password"),
        ({"addr": "10.1.2.3"}, "AuthFailed", "address not allowed"),
        ({"ts": TS - 301}, "StaleRequest", "timestamp"),
        ({"ts": TS + 301}, "StaleRequest", "timestamp"),
        ({"key": "forged"}, "BadSignature", "signature does not match"),
    ],
)
def test_each_authorization_failure_is_refused_with_its_code_and_audited(
    gateway: PaymentGateway,
    sessions: sessionmaker[Session],
    change: dict[str, object],
    code: str,
    reason: str,
) -> None:
    with pytest.raises(Refused) as refused:
        _authorize(gateway, **change)
    assert refused.value.code == code and reason in refused.value.reason
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "payments.refused")).one()
    assert entry.outcome == "denied" and entry.after is not None
    assert entry.after["code"] == code and reason in entry.after["reason"]


def test_a_signature_covers_every_field_of_the_operation() -> None:
    base = signature(KEY, pay_fields("bank1", "t1", "100001", Decimal("5"), TS))
    assert base == signature(KEY, ["pay", "bank1", "t1", "100001", "5.00", str(TS)])
    assert base != signature(KEY, pay_fields("bank1", "t1", "100001", Decimal("5.01"), TS))
    assert base != signature(KEY, pay_fields("bank1", "t1", "100002", Decimal("5"), TS))
    assert amount_text(Decimal("1E+1")) == "10.00"
    assert (
        len(
            {
                tuple(f)
                for f in (lookup_fields("b", "t", 1), cancel_fields("b", "t", 1), status_fields("b", "t", 1))
            }
        )
        == 3
    )


def test_a_lookup_shows_a_masked_name_and_a_rounded_debt_but_not_the_balance(
    gateway: PaymentGateway, world: World
) -> None:
    bank = _authorize(gateway)
    found = gateway.lookup(bank, world.number)
    assert (found.exists, found.masked_name, found.currency, found.suggested_amount) == (
        True, "A***", "EUR", Decimal(0),
    )  # fmt: skip
    with world.sessions.begin() as s:
        from billing import ledger
        from billing.books import book_account

        account = accounts.find(s, world.number)
        fee = book_account(s, "adjustments", "EUR")
        debt = Decimal("12.30")
        ledger.post(s, ledger.TransactionRequest(
            idempotency_key="debt", kind="adjustment", effective_at=NOW,
            legs=(ledger.Leg(account.ledger_account_id, debt), ledger.Leg(fee, -debt)),
        ))  # fmt: skip
    assert gateway.lookup(bank, world.number).suggested_amount == Decimal(13)
    missing = gateway.lookup(bank, "999999")
    assert (missing.exists, missing.masked_name) == (False, "")
    assert mask_name("Ivan  Petrov") == "I*** P***"


def test_pay_retry_conflict_cancel_and_status_map_to_stable_codes(
    gateway: PaymentGateway, world: World
) -> None:
    bank = _authorize(gateway)
    paid = NOW - timedelta(minutes=1)
    first = gateway.pay(
        bank, channel="soap", txn_id="t1", account_number=world.number, amount=Decimal("5"), paid_at=paid
    )
    again = gateway.pay(
        bank, channel="soap", txn_id="t1", account_number=world.number, amount=Decimal("5"), paid_at=paid
    )
    assert first.created and not again.created and again.id == first.id
    with pytest.raises(Refused, match="Conflict"):
        gateway.pay(
            bank, channel="soap", txn_id="t1", account_number=world.number, amount=Decimal("6"), paid_at=paid
        )
    with pytest.raises(Refused, match="UnknownAccount"):
        gateway.pay(
            bank, channel="soap", txn_id="t2", account_number="nope", amount=Decimal("5"), paid_at=paid
        )
    with pytest.raises(Refused, match="InvalidAmount"):
        gateway.pay(
            bank, channel="soap", txn_id="t3", account_number=world.number, amount=Decimal("-1"), paid_at=paid
        )
    with pytest.raises(Refused, match="UnknownPayment"):
        gateway.status(bank, "t9")
    assert gateway.status(bank, "t1").state == "posted"
    assert gateway.cancel(bank, "t1", "customer asked").state == "cancelled"
    assert gateway.status(bank, "t1").state == "cancelled"
    assert world.balance() == Decimal(0)


def test_group_commit_posts_concurrent_payments_once_each_and_refuses_only_the_bad_ones(
    gateway: PaymentGateway, world: World
) -> None:
    """Through the gateway's writer thread: distinct ids credit, duplicates replay, a conflict and
    an unknown account fail alone, and the balance is the sum of the distinct payments."""
    from concurrent.futures import ThreadPoolExecutor

    bank = _authorize(gateway)
    paid = NOW - timedelta(minutes=1)
    gateway.start_group_commit(max_group=50)
    try:

        def pay(i: int) -> object:
            txn, number, amount = f"g{i % 100}", world.number, Decimal("1.00")
            if i == 150:
                amount = Decimal("2.00")  # g50 again with another amount: a conflict
            if i == 151:
                txn, number = "g-unknown", "nope"
            try:
                return gateway.pay(bank, channel="soap", txn_id=txn, account_number=number, amount=amount,
                                   paid_at=paid)  # fmt: skip
            except Refused as refused:
                return refused.code

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(pay, range(200)))
    finally:
        gateway.close()
    assert results[150] == "Conflict" and results[151] == "UnknownAccount"
    paid_ok = [r for r in results if not isinstance(r, str)]
    assert len(paid_ok) == 198
    assert sum(1 for r in paid_ok if r.created) == 100  # type: ignore[attr-defined]
    by_txn: dict[str, set[int]] = {}
    for r in paid_ok:
        by_txn.setdefault(r.external_id, set()).add(r.id)  # type: ignore[attr-defined]
    assert all(len(ids) == 1 for ids in by_txn.values()) and len(by_txn) == 100
    assert world.balance() == Decimal("100.00")
