"""The banks' SOAP API end to end: zeep as the bank, over TLS, against a real billingd on both databases.

One ``billingd`` per backend serves the module (a temporary config with a self-signed certificate,
ports 0); the tests talk to it as a bank would: zeep reads the live WSDL and calls it over TLS with
HTTP Basic credentials, and raw envelopes show what a client's own SOAP stack would send (a
missing field, three decimals). Each test uses its own transaction ids and accounts, so the
tests are independent of order. The 1,000 concurrent duplicates run on PostgreSQL only (SQLite
serialises writers anyway).
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

from billing import accounts, dictionaries, operators, service_lifecycle, subscribers
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.engine import make_engine, session_factory
from billing.db.ledger import LedgerTransaction
from billing.db.lifecycle import ProvisioningTask
from billing.db.payments import Payment
from billing.db.services import Service
from billing.payment_auth import (
    cancel_fields,
    lookup_fields,
    pay_fields,
    registry_fields,
    signature,
    status_fields,
)
from billing.payment_soap import FAULT_TEXT, TNS
from billing.payments import ledger_key
from tests.payment_daemon import running, write_config
from tests.payment_tls import self_signed_pair

ACTOR = Actor(None, "test", None, "test")
NOW = datetime.now(UTC)
BANK, PASSWORD, KEY = "testbank", "pw-test", "key-test"
FAR_BANK = "farbank"  # allowed only from 192.0.2.0/24: every request from 127.0.0.1 is refused


@dataclass
class Daemon:
    """A running billingd with the payment API; the seeded accounts by role."""

    process: subprocess.Popen[bytes]
    log: Path
    http: int
    tls: int
    cert: Path
    engine: Engine
    backend: str
    ivan: str  # funded (12.34), has an address and a phone: the look-up must not show them
    debtor: str  # owes 10.00, service suspended for debt
    debtor_service: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.tls}/payments"

    def account(self) -> str:
        """A fresh funded account of its own for one test."""
        with session_factory(self.engine).begin() as s:
            return _subscriber(s, "Test Person")

    def balance(self, number: str) -> Decimal:
        with Session(self.engine) as s:
            return accounts.balance(s, number).balance

    def refusals(self) -> list[dict[str, Any]]:
        """The ``after`` of every audited refusal, oldest first."""
        with Session(self.engine) as s:
            rows = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "payments.refused", AuditEntry.outcome == "denied")
                .order_by(AuditEntry.id)
            )
            return [dict(row.after or {}) for row in rows]


class Bank:
    """A bank's SOAP client: zeep on the live WSDL, over TLS trusting the test certificate."""

    def __init__(self, daemon: Daemon, code: str = BANK, password: str = PASSWORD, key: str = KEY) -> None:
        self.code, self.key = code, key
        session = requests.Session()
        session.trust_env = False  # else $REQUESTS_CA_BUNDLE would replace ``verify``
        session.verify = str(daemon.cert)
        session.auth = (code, password)
        self.history = HistoryPlugin()
        self.client = zeep.Client(
            f"{daemon.url}?wsdl", transport=Transport(session=session), plugins=[self.history]
        )
        self.service = self.client.service

    def signed(self, fields: list[str]) -> str:
        return signature(self.key, fields)

    def lookup(self, account: str, *, ts: int | None = None) -> Any:
        ts = ts or int(time.time())
        return self.service.Lookup(
            bank=self.code,
            account=account,
            timestamp=ts,
            signature=self.signed(lookup_fields(self.code, account, ts)),
        )

    def pay(
        self, txn_id: str, account: str, amount: str, *, ts: int | None = None, bank: str | None = None
    ) -> Any:
        ts = ts or int(time.time())
        bank = bank or self.code
        sig = self.signed(pay_fields(bank, txn_id, account, Decimal(amount).quantize(Decimal("0.01")), ts))
        return self.service.Pay(
            bank=bank,
            txn_id=txn_id,
            account=account,
            amount=amount,
            paid_at=datetime.now(UTC) - timedelta(seconds=5),
            timestamp=ts,
            signature=sig,
        )

    def cancel(self, txn_id: str, reason: str = "customer asked") -> Any:
        ts = int(time.time())
        sig = self.signed(cancel_fields(self.code, txn_id, ts))
        return self.service.Cancel(bank=self.code, txn_id=txn_id, reason=reason, timestamp=ts, signature=sig)

    def status(self, txn_id: str) -> Any:
        ts = int(time.time())
        sig = self.signed(status_fields(self.code, txn_id, ts))
        return self.service.Status(bank=self.code, txn_id=txn_id, timestamp=ts, signature=sig)

    def last_reply(self) -> str:
        return etree.tostring(self.history.last_received["envelope"]).decode()


def _subscriber(s: Session, name: str, funds: str = "12.34", **contacts: Any) -> str:
    info = subscribers.create(
        s, ACTOR, kind="person", name=name, category="residential", region="north", currency="EUR", **contacts
    )
    number = info.accounts[0].number
    accounts.adjust(s, ACTOR, number, funds, "goodwill", key=f"seed:{number}")
    return number


def _seed(url: str) -> tuple[str, str, int]:
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        operators.bootstrap(s, ACTOR, "test", "Test")
        for kind, code in (
            ("subscriber_category", "residential"),
            ("region", "north"),
            ("adjustment_reason", "goodwill"),
            ("adjustment_reason", "fee"),
        ):
            dictionaries.add(s, ACTOR, kind, code, code.title())
        ivan = _subscriber(
            s, "Ivan Petrov", phones=("+49 30 1234567",), addresses=("Hauptstrasse 5, 10115 Berlin",)
        )
        debtor = _subscriber(s, "Dora Debtor", funds="0.01")
        account = accounts.find(s, debtor)
        service = Service(
            account_id=account.id, kind="internet", status="active", created_at=NOW - timedelta(days=40)
        )
        s.add(service)
        s.flush()
        accounts.adjust(s, ACTOR, debtor, "-10.01", "fee", key="debt", effective_at=NOW - timedelta(days=10))
        rules = service_lifecycle.rules_for(UTC)
        service_lifecycle.evaluate_services(s, ACTOR, NOW - timedelta(hours=2), rules)
        assert s.get(Service, service.id).status == "suspended_involuntary"  # type: ignore[union-attr]
        service_id = service.id
    engine.dispose()
    return ivan, debtor, service_id


def _payments(cert: Path, key: Path) -> str:
    return f"""
[payments]
listen_address = "127.0.0.1"
plain_http = true
http_port = 0
tls_port = 0
tls_certificate = "{cert}"
tls_private_key = "{key}"
timestamp_window_s = 300
threads = 16

[[payments.bank]]
code = "{BANK}"
name = "Test Bank"
password = "{PASSWORD}"
signing_key = "{KEY}"
allow_from = ["127.0.0.1/32"]

[[payments.bank]]
code = "{FAR_BANK}"
name = "Far Away Bank"
password = "pw-far"
signing_key = "key-far"
allow_from = ["192.0.2.0/24"]
"""


ROLE = {"sqlite": [], "postgresql": ["--role", "payments"]}
"""On PostgreSQL the payment API runs as a process of its own (no RADIUS), on SQLite inside billingd."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def daemon(
    request: pytest.FixtureRequest, templates: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    url = templates.sqlite() if request.param == "sqlite" else templates.postgresql()
    tmp = tmp_path_factory.mktemp(f"payments-{request.param}")
    cert, key = self_signed_pair(tmp)
    ivan, debtor, debtor_service = _seed(url)
    config = write_config(tmp, url, _payments(cert, key))
    try:
        with running(config, tmp / "billingd.log", url, *ROLE[request.param]) as up:
            yield Daemon(up.process, up.log, up.http_port, up.tls_port, cert, up.engine, request.param,
                         ivan, debtor, debtor_service)  # fmt: skip
    finally:
        templates.drop(url)
    assert "payment API stopped" in (tmp / "billingd.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def bank(daemon: Daemon) -> Bank:
    return Bank(daemon)


def _fault(call: Any) -> zeep.exceptions.Fault:
    with pytest.raises(zeep.exceptions.Fault) as raised:
        call()
    return raised.value


def _code(fault: zeep.exceptions.Fault) -> str:
    return str(fault.code).split(":", 1)[-1]  # "soap11env:Client.Conflict" -> "Client.Conflict"


def _envelope(operation: str, fields: dict[str, str]) -> bytes:
    body = "".join(f"<p:{k}>{v}</p:{k}>" for k, v in fields.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        f'"http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="{TNS}"><soapenv:Body><p:{operation}>{body}'
        f"</p:{operation}></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _pay_fields(txn_id: str, account: str, amount: str, ts: int | None = None) -> dict[str, str]:
    ts = ts or int(time.time())
    sig = signature(KEY, pay_fields(BANK, txn_id, account, Decimal(amount).quantize(Decimal("0.01")), ts))
    paid_at = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    return {
        "bank": BANK,
        "txn_id": txn_id,
        "account": account,
        "amount": amount,
        "paid_at": paid_at,
        "timestamp": str(ts),
        "signature": sig,
    }


def _post(daemon: Daemon, envelope: bytes, session: requests.Session | None = None) -> requests.Response:
    poster = session or requests
    return poster.post(  # type: ignore[no-any-return]
        daemon.url,
        data=envelope,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
        auth=(BANK, PASSWORD),
        verify=str(daemon.cert),
        timeout=30,
    )


# --------------------------------------------------------------------------- the WSDL


def test_the_wsdl_is_served_over_tls_and_plain_http_each_naming_its_own_address(daemon: Daemon) -> None:
    tls = requests.get(f"{daemon.url}?wsdl", verify=str(daemon.cert), timeout=10)
    plain = requests.get(f"http://127.0.0.1:{daemon.http}/payments?wsdl", timeout=10)
    assert tls.status_code == plain.status_code == 200
    assert f'location="https://127.0.0.1:{daemon.tls}/payments"' in tls.text
    assert f'location="http://127.0.0.1:{daemon.http}/payments"' in plain.text
    for operation in ("Lookup", "Pay", "Cancel", "Status", "UploadRegistry"):
        assert f'<wsdl:operation name="{operation}"' in tls.text
    schema = etree.fromstring(tls.content)
    xs = {"xs": "http://www.w3.org/2001/XMLSchema"}
    pay = schema.find(".//xs:complexType[@name='Pay']", xs)
    assert [e.get("name") for e in pay.iter("{*}element")] == [
        "bank", "txn_id", "account", "amount", "paid_at", "timestamp", "signature",
    ]  # fmt: skip
    for element in pay.iter("{*}element"):  # every field mandatory: minOccurs 1 (the default), not nillable
        assert element.get("minOccurs") is None and element.get("nillable") is None
    amount = schema.find(".//xs:simpleType[@name='Amount']/xs:restriction", xs)
    facets = {f.tag.split("}")[1]: f.get("value") for f in amount}
    assert (amount.get("base"), facets["fractionDigits"], facets["minExclusive"]) == ("xs:decimal", "2", "0")


def test_the_payment_api_runs_inside_billingd_or_alone_with_role_payments(daemon: Daemon) -> None:
    deadline = time.monotonic() + 15
    while b"RADIUS listening on" not in daemon.log.read_bytes() and time.monotonic() < deadline:
        if daemon.backend == "postgresql":
            break  # --role payments: the API is up (the fixture waited for it) and RADIUS never starts
        time.sleep(0.1)
    assert (b"RADIUS listening on" in daemon.log.read_bytes()) == (daemon.backend == "sqlite")


def test_billingd_serves_the_agents_check_pay_next_to_the_soap_api(daemon: Daemon) -> None:
    reply = requests.get(f"https://127.0.0.1:{daemon.tls}/checkpay?command=check", auth=(BANK, PASSWORD),
                         verify=str(daemon.cert), timeout=10)  # fmt: skip
    assert reply.status_code == 200 and "<result>" in reply.text


def test_a_client_that_does_not_trust_the_self_signed_certificate_cannot_connect(daemon: Daemon) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{daemon.url}?wsdl", timeout=10)  # the system's CAs do not know the test certificate


# --------------------------------------------------------------------------- authorization


@pytest.mark.parametrize(
    ("who", "change", "code", "reason"),
    [
        ("bad password", {"password": "wrong"}, "Client.AuthFailed", "bad password"),
        ("unknown bank", {"code": "nobank", "password": "x"}, "Client.AuthFailed", "unknown bank"),
        ("forged signature", {"key": "forged"}, "Client.BadSignature", "signature does not match"),
        (
            "wrong source address",
            {"code": FAR_BANK, "password": "pw-far", "key": "key-far"},
            "Client.AuthFailed",
            "address not allowed",
        ),
    ],
)
def test_each_authorization_failure_is_a_fault_with_only_its_code_and_is_audited_with_the_reason(
    daemon: Daemon, who: str, change: dict[str, str], code: str, reason: str
) -> None:
    account = daemon.account()
    before = len(daemon.refusals())
    caller = Bank(daemon, **change)
    fault = _fault(lambda: caller.pay(f"auth-{who}", account, "5.00"))
    assert (_code(fault), fault.message) == (code, FAULT_TEXT[code.split(".")[1]])
    assert reason not in caller.last_reply()  # the reason is for the log and the audit only
    refusals = daemon.refusals()[before:]
    assert [r["reason"] for r in refusals] == [reason] and refusals[0]["operation"] == "pay"
    assert daemon.balance(account) == Decimal("12.34")


def test_a_replay_outside_the_timestamp_window_is_refused_and_audited(daemon: Daemon, bank: Bank) -> None:
    account = daemon.account()
    before = len(daemon.refusals())
    fault = _fault(lambda: bank.pay("replayed", account, "5.00", ts=int(time.time()) - 3600))
    assert (_code(fault), fault.message) == ("Client.StaleRequest", FAULT_TEXT["StaleRequest"])
    assert daemon.refusals()[before]["reason"].startswith("timestamp ")
    assert daemon.balance(account) == Decimal("12.34")


def test_a_request_naming_another_bank_than_its_credentials_is_refused(daemon: Daemon, bank: Bank) -> None:
    fault = _fault(lambda: bank.pay("other-bank", daemon.account(), "5.00", bank=FAR_BANK))
    assert _code(fault) == "Client.AuthFailed"
    assert daemon.refusals()[-1]["reason"] == "request names another bank"


def test_a_post_without_credentials_is_challenged_for_http_basic(daemon: Daemon) -> None:
    reply = requests.post(
        daemon.url,
        data=_envelope("Pay", _pay_fields("nocreds", daemon.ivan, "1.00")),
        headers={"Content-Type": "text/xml"},
        verify=str(daemon.cert),
        timeout=10,
    )
    assert reply.status_code == 401 and reply.headers["WWW-Authenticate"].startswith("Basic ")


def test_a_request_body_over_the_limit_is_refused_before_it_is_read(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.http), timeout=10) as sock:
        sock.sendall(
            b"POST /payments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            b"Authorization: Basic dGVzdGJhbms6cHctdGVzdA==\r\nContent-Length: 1000000000\r\n\r\n<x/>"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413 "), reply


# --------------------------------------------------------------------------- the schema


def test_an_amount_with_three_decimals_is_a_schema_fault_and_pays_nothing(daemon: Daemon, bank: Bank) -> None:
    account = daemon.account()
    fault = _fault(lambda: bank.pay("three-decimals", account, "1.001"))
    assert _code(fault) == "Client.SchemaValidationError" and "fractionDigits" in fault.message
    assert daemon.balance(account) == Decimal("12.34")


@pytest.mark.parametrize("missing", ["txn_id", "amount", "timestamp", "signature", "paid_at"])
def test_a_missing_mandatory_field_is_a_schema_fault(daemon: Daemon, missing: str) -> None:
    fields = _pay_fields(f"missing-{missing}", daemon.ivan, "1.00")
    del fields[missing]
    reply = _post(daemon, _envelope("Pay", fields))
    assert reply.status_code == 500
    assert "<faultcode>soap11env:Client.SchemaValidationError</faultcode>" in reply.text


def test_a_negative_amount_is_a_schema_fault(daemon: Daemon) -> None:
    reply = _post(daemon, _envelope("Pay", _pay_fields("negative", daemon.ivan, "-1.00")))
    assert "Client.SchemaValidationError" in reply.text


# --------------------------------------------------------------------------- operations


def test_lookup_shows_only_the_masked_name_currency_and_suggested_amount(daemon: Daemon, bank: Bank) -> None:
    found = bank.lookup(daemon.ivan)
    assert (found.account, found.exists, found.masked_name, found.currency, found.suggested_amount) == (
        daemon.ivan,
        True,
        "I*** P***",
        "EUR",
        Decimal("0.00"),
    )
    reply = bank.last_reply()
    for secret in ("Ivan", "Petrov", "Hauptstrasse", "Berlin", "1234567", "12.34"):
        assert secret not in reply
    assert bank.lookup(daemon.debtor).suggested_amount == Decimal("10.00")
    unknown = bank.lookup("no-such-account")
    assert (unknown.exists, unknown.masked_name or "") == (False, "")


def test_pay_credits_at_once_and_a_retry_returns_the_same_payment(daemon: Daemon, bank: Bank) -> None:
    account = daemon.account()
    first = bank.pay("pay-1", account, "25.00")
    assert daemon.balance(account) == Decimal("37.34")
    again = bank.pay("pay-1", account, "25.00")  # the bank lost the reply: a fresh timestamp, same id
    assert (again.payment_id, again.state, again.amount) == (first.payment_id, "posted", Decimal("25.00"))
    assert (first.txn_id, first.account, first.currency) == ("pay-1", account, "EUR")
    assert daemon.balance(account) == Decimal("37.34")


@pytest.mark.parametrize("change", ["amount", "account"])
def test_the_same_txn_id_with_other_details_is_a_conflict_fault(
    daemon: Daemon, bank: Bank, change: str
) -> None:
    account = daemon.account()
    bank.pay(f"conflict-{change}", account, "5.00")
    other, amount = (daemon.account(), "5.00") if change == "account" else (account, "6.00")
    fault = _fault(lambda: bank.pay(f"conflict-{change}", other, amount))
    assert (_code(fault), fault.message) == ("Client.Conflict", FAULT_TEXT["Conflict"])
    assert daemon.balance(account) == Decimal("17.34") and daemon.balance(other) in (
        Decimal("17.34"),
        Decimal("12.34"),
    )


def test_pay_to_an_unknown_account_is_a_fault(daemon: Daemon, bank: Bank) -> None:
    fault = _fault(lambda: bank.pay("unknown-account", "no-such-account", "5.00"))
    assert _code(fault) == "Client.UnknownAccount"


def test_cancel_reverses_todays_payment_and_status_shows_it(daemon: Daemon, bank: Bank) -> None:
    account = daemon.account()
    paid = bank.pay("cancel-1", account, "7.50")
    assert bank.status("cancel-1").state == "posted"
    cancelled = bank.cancel("cancel-1")
    assert (cancelled.payment_id, cancelled.state) == (paid.payment_id, "cancelled")
    assert cancelled.cancelled_at is not None
    assert daemon.balance(account) == Decimal("12.34")
    assert bank.cancel("cancel-1").state == "cancelled"  # twice: the cancellation again, not a fault
    status = bank.status("cancel-1")
    assert (status.payment_id, status.state, status.amount) == (paid.payment_id, "cancelled", Decimal("7.50"))
    assert daemon.balance(account) == Decimal("12.34")


def test_status_and_cancel_of_an_unknown_payment_are_faults(daemon: Daemon, bank: Bank) -> None:
    assert _code(_fault(lambda: bank.status("never-paid"))) == "Client.UnknownPayment"
    assert _code(_fault(lambda: bank.cancel("never-paid"))) == "Client.UnknownPayment"


def test_a_payment_covering_the_debt_resumes_the_suspended_service(daemon: Daemon, bank: Bank) -> None:
    due = bank.lookup(daemon.debtor).suggested_amount
    bank.pay("resume-1", daemon.debtor, f"{due:f}")
    with Session(daemon.engine) as s:
        assert s.get(Service, daemon.debtor_service).status == "active"  # type: ignore[union-attr]
        tasks = list(
            s.scalars(
                select(ProvisioningTask.network)
                .where(ProvisioningTask.service_id == daemon.debtor_service)
                .order_by(ProvisioningTask.id)
            )
        )
    assert tasks[-1] == "allow"


def test_upload_registry_stores_the_days_payments(daemon: Daemon, bank: Bank) -> None:
    pytest.importorskip(
        "billing.bank_registry", reason="billing.bank_registry (reconciliation) not there yet"
    )
    account = daemon.account()
    bank.pay("reg-1", account, "3.00")
    day = datetime.now(UTC).date()
    lines = [{"txn_id": "reg-1", "account": account, "amount": Decimal("3.00"), "paid_at": datetime.now(UTC)}]
    ts = int(time.time())
    sig = bank.signed(registry_fields(BANK, day, 1, Decimal("3.00"), ts))
    stored = bank.service.UploadRegistry(
        bank=BANK,
        day=day,
        count=1,
        total=Decimal("3.00"),
        lines={"RegistryLine": lines},
        timestamp=ts,
        signature=sig,
    )
    assert stored.lines == 1 and stored.registry_id > 0
    sig = bank.signed(registry_fields(BANK, day, 2, Decimal("3.00"), ts))
    fault = _fault(
        lambda: bank.service.UploadRegistry(
            bank=BANK,
            day=day,
            count=2,
            total=Decimal("3.00"),
            lines={"RegistryLine": lines},
            timestamp=ts,
            signature=sig,
        )
    )
    assert _code(fault) == "Client.Invalid"


def test_an_empty_registry_is_signed_and_accepted(daemon: Daemon, bank: Bank) -> None:
    pytest.importorskip(
        "billing.bank_registry", reason="billing.bank_registry (reconciliation) not there yet"
    )
    day, ts = date(2026, 1, 1), int(time.time())
    sig = bank.signed(registry_fields(BANK, day, 0, Decimal(0), ts))
    stored = bank.service.UploadRegistry(
        bank=BANK,
        day=day,
        count=0,
        total=Decimal("0.00"),
        lines={"RegistryLine": []},
        timestamp=ts,
        signature=sig,
    )
    assert stored.lines == 0


# --------------------------------------------------------------------------- concurrency


def test_a_thousand_concurrent_duplicate_pays_credit_once(daemon: Daemon) -> None:
    if daemon.backend != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises writers")
    account = daemon.account()
    envelope = _envelope(
        "Pay", _pay_fields("dup-1000", account, "10.00")
    )  # one signed request, sent 1,000 times
    local = threading.local()

    def send(_: int) -> tuple[int, str | None]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        reply = _post(daemon, envelope, local.session)
        found = re.search(r"<tns:payment_id>(\d+)</tns:payment_id>", reply.text)
        return reply.status_code, found[1] if found else reply.text[-300:]

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(send, range(1000)))
    elapsed = time.monotonic() - began
    statuses = {status for status, _ in results}
    ids = {payment_id for _, payment_id in results}
    assert statuses == {200} and len(ids) == 1, (statuses, list(ids)[:3])
    with Session(daemon.engine) as s:
        rows = s.scalar(select(func.count()).select_from(Payment).where(Payment.external_id == "dup-1000"))
        key = ledger_key(BANK, "dup-1000")
        txns = s.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.idempotency_key == key)
        )
    assert (rows, txns) == (1, 1)
    assert daemon.balance(account) == Decimal("22.34")
    print(f"1,000 duplicate pays over TLS from 50 threads: {elapsed:.1f} s ({1000 / elapsed:.0f}/s)")
