"""The check/pay protocol over real HTTP on 127.0.0.1, on both databases: check, pay, a repeated pay
answering the original ids, conflicts, every authorization failure (8, audited), amounts (241/242),
accounts (4/5/7), and an unreachable database (1, retry).

The ``/checkpay`` resource is mounted on the payment web service (``billing.payment_web``, as
billingd runs it: the gateway's work in its thread pool), served in-process on the global
reactor, which runs in a thread for the whole session. Requests go through ``http.client``
(which can bind the client socket to 127.0.0.2 to come from a wrong address).
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billing import subscribers
from billing.config import Config, Secret, load_config
from billing.db.audit import AuditEntry
from billing.db.engine import make_engine
from billing.db.payments import Payment
from billing.payment_auth import amount_text, signature
from billing.payment_checkpay import (
    OK,
    OTHER,
    CheckPayRequest,
    Reply,
    checkpay_resource,
    parse_request,
    render_reply,
    signed_fields,
)
from billing.payment_gateway import PaymentGateway
from billing.payment_settings import BankSettings
from tests.test_payments import World

BANK, PASSWORD, KEY = "agent1", "pw-agent1", "key-of-agent1"


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="session")
def reactor() -> Iterator[Any]:
    """The global reactor, running in a thread until the session ends."""
    from twisted.internet import reactor as running

    thread = threading.Thread(target=running.run, kwargs={"installSignalHandlers": False}, daemon=True)
    thread.start()
    yield running
    running.callFromThread(running.stop)
    thread.join(10)


def _config(directory: Path) -> Config:
    path = directory / "billing.toml"
    path.write_text(
        '[isp]\nname = "T"\ncurrency = "EUR"\ntime_zone = "UTC"\n[database]\nurl = "sqlite:///unused.db"\n'
    )
    config = load_config(path)
    bank = BankSettings(BANK, "Agent One", Secret(PASSWORD), Secret(KEY), (ip_network("127.0.0.1/32"),))
    return dataclasses.replace(config, payments=dataclasses.replace(config.payments, banks=(bank,)))


class Server:
    """The payment web service (``billing.payment_web``) with ``/checkpay`` mounted, on 127.0.0.1."""

    def __init__(self, reactor: Any, engine: Engine, config: Config) -> None:
        from twisted.internet.threads import blockingCallFromThread

        from billing.payment_web import PaymentWebService

        self.reactor = reactor
        settings = dataclasses.replace(config.payments, listen_address="127.0.0.1", http_port=0, threads=8)
        gateway = PaymentGateway(engine, config)
        self.web = PaymentWebService(reactor, settings, gateway)
        self.web.mount(b"checkpay", checkpay_resource(gateway, reactor, self.web.pool))
        blockingCallFromThread(reactor, self.web.start)
        self.address = ("127.0.0.1", self.web.port_number("http"))

    def close(self) -> None:
        from twisted.internet.threads import blockingCallFromThread

        blockingCallFromThread(self.reactor, self.web.stop)


@pytest.fixture
def server(reactor: Any, engine: Engine, tmp_path: Path) -> Iterator[Server]:
    running = Server(reactor, engine, _config(tmp_path))
    yield running
    running.close()


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return World(sessions)


# --------------------------------------------------------------------------- the client


@dataclasses.dataclass(frozen=True)
class Answer:
    """The reply's elements (text) and the HTTP status."""

    status: int
    fields: dict[str, str]

    @property
    def result(self) -> int:
        return int(self.fields["result"])


def params(command: str, txn_id: str, account: str, amount: str, **change: str) -> dict[str, str]:
    """A correctly signed request's parameters; ``change`` replaces any of them after signing."""
    ts = change.pop("signed_ts", str(int(datetime.now(UTC).timestamp())))
    request = CheckPayRequest(command, txn_id, account, amount, "", "", ts, "")
    query = {"command": command, "txn_id": txn_id, "account": account, "sum": amount, "ts": ts,
             "sign": signature(change.pop("key", KEY), signed_fields(request, BANK, int(ts)))}  # fmt: skip
    if command == "pay":
        query["txn_date"] = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y%m%d%H%M%S")
    query.update(change)
    return {k: v for k, v in query.items() if v is not None}


def send(
    server: Server,
    query: dict[str, str],
    *,
    user: str = BANK,
    password: str = PASSWORD,
    post: bool = False,
    source: str = "127.0.0.1",
) -> Answer:
    """One request over HTTP with Basic credentials, from ``source``; the parsed XML reply."""
    conn = http.client.HTTPConnection(*server.address, timeout=10, source_address=(source, 0))
    headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    try:
        if post:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request("POST", "/checkpay", body=urlencode(query), headers=headers)
        else:
            conn.request("GET", "/checkpay?" + urlencode(query), headers=headers)
        response = conn.getresponse()
        body = response.read()
        assert response.getheader("Content-Type") == "text/xml; charset=utf-8"
    finally:
        conn.close()
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "response"
    return Answer(response.status, {child.tag: child.text or "" for child in root})


def _payments(sessions: sessionmaker[Session]) -> list[Payment]:
    with sessions() as s:
        return list(s.scalars(select(Payment).order_by(Payment.id)))


def _refusals(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "payments.refused")).all()
        assert all(r.outcome == "denied" and r.source == "checkpay" for r in rows)
        return [r.after or {} for r in rows]


# --------------------------------------------------------------------------- the codec


def test_the_reply_is_the_customary_xml_with_escaped_text() -> None:
    body = render_reply(Reply("7<01", OK, prv_txn=42, sum=Decimal("10.4")))
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<response><osmp_txn_id>7&lt;01</osmp_txn_id>'
        b"<prv_txn>42</prv_txn><sum>10.40</sum><result>0</result><comment>OK</comment></response>\n"
    )
    assert b"prv_txn" not in render_reply(Reply("7", OTHER))


def test_a_parameter_given_twice_or_not_in_utf8_makes_the_request_unreadable() -> None:
    from billing.payment_checkpay import MalformedRequest

    assert parse_request({b"command": [b"check"], b"sum": [b" 5 "]}).sum == "5"
    with pytest.raises(MalformedRequest, match="sum: given 2 times"):
        parse_request({b"sum": [b"5", b"6"]})
    with pytest.raises(MalformedRequest, match="account: not UTF-8"):
        parse_request({b"account": [b"\xff"]})


def test_a_malformed_sum_is_signed_as_sent_and_a_good_one_with_two_decimals() -> None:
    def fields(amount: str) -> list[str]:
        return signed_fields(CheckPayRequest("pay", "9", "100001", amount, "", "", "", ""), BANK, 5)

    assert fields("10.4") == ["pay", BANK, "9", "100001", "10.40", "5"]
    assert fields("1e3")[4] == "1e3" and fields("-1")[4] == "-1"
    assert signed_fields(CheckPayRequest("check", "9", "1", "7", "", "", "", ""), BANK, 5)[0] == "check"
    assert amount_text(Decimal("7")) == "7.00"


# --------------------------------------------------------------------------- check and pay


def test_check_answers_0_for_an_open_account_and_pays_nothing(server: Server, world: World) -> None:
    answer = send(server, params("check", "7001", world.number, "10.45"))
    assert answer.status == 200
    assert answer.fields == {"osmp_txn_id": "7001", "sum": "10.45", "result": "0", "comment": "OK"}
    assert _payments(world.sessions) == [] and world.balance() == 0


def test_pay_credits_the_account_and_answers_our_payment_id(server: Server, world: World) -> None:
    answer = send(server, params("pay", "7001", world.number, "10.45"))
    (payment,) = _payments(world.sessions)
    assert answer.fields == {
        "osmp_txn_id": "7001", "prv_txn": str(payment.id), "sum": "10.45", "result": "0", "comment": "OK",
    }  # fmt: skip
    assert (payment.source, payment.external_id, payment.channel) == (BANK, "7001", "checkpay")
    assert world.balance() == Decimal("10.45")


def test_a_repeated_pay_answers_0_with_the_original_prv_txn_and_credits_once(
    server: Server, world: World
) -> None:
    first = send(server, params("pay", "7002", world.number, "25"))
    again = send(server, params("pay", "7002", world.number, "25.00"), post=True)  # re-signed later, a form
    assert first.result == again.result == 0
    assert again.fields["prv_txn"] == first.fields["prv_txn"] and again.fields["sum"] == "25.00"
    assert again.fields["comment"] == "OK, already paid"
    assert len(_payments(world.sessions)) == 1 and world.balance() == Decimal(25)


@pytest.mark.parametrize("change", ["amount", "account"])
def test_a_txn_id_reused_with_other_details_answers_300_and_posts_nothing(
    server: Server, world: World, change: str
) -> None:
    assert send(server, params("pay", "7003", world.number, "5")).result == 0
    account, amount = (world.other, "5") if change == "account" else (world.number, "6")
    answer = send(server, params("pay", "7003", account, amount))
    assert answer.result == 300 and "prv_txn" not in answer.fields
    assert len(_payments(world.sessions)) == 1
    assert (world.balance(), world.balance(world.other)) == (Decimal(5), Decimal(0))


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("password", "bad password"),
        ("bank", "unknown bank"),
        ("signature", "signature does not match"),
        ("no signature", "signature does not match"),
        ("stale", "timestamp"),
        ("no timestamp", "timestamp"),
        ("address", "address not allowed"),
        ("bank parameter", "bank parameter"),
    ],
)
def test_each_authorization_failure_answers_8_and_is_audited(
    server: Server, world: World, how: str, reason: str
) -> None:
    stale = str(int(datetime.now(UTC).timestamp()) - 301)
    change: dict[str, Any] = {
        "signature": {"key": "forged"},
        "no signature": {"sign": None},
        "stale": {"signed_ts": stale},
        "no timestamp": {"ts": None},
        "bank parameter": {"bank": "otherbank"},
    }.get(how, {})
    kwargs: dict[str, Any] = {
        "password": {"password": "wrong"},
        "bank": {"user": "nobank"},
        "address": {"source": "127.0.0.2"},
    }.get(how, {})
    answer = send(server, params("pay", "7004", world.number, "5", **change), **kwargs)
    assert answer.fields == {"osmp_txn_id": "7004", "result": "8", "comment": "refused"}
    (audited,) = _refusals(world.sessions)
    assert reason in audited["reason"] and audited["operation"] == "pay"
    assert _payments(world.sessions) == []


def test_the_bank_parameter_may_name_the_http_user(server: Server, world: World) -> None:
    assert send(server, params("check", "7005", world.number, "5", bank=BANK)).result == 0


@pytest.mark.parametrize(
    ("amount", "result"),
    [("ten", 241), ("-5", 241), ("0", 241), ("0.00", 241), ("1.001", 241), ("1e3", 241), ("", 241),
     ("100000.01", 242), ("999999999", 242)],
)  # fmt: skip
def test_a_malformed_or_out_of_range_sum_answers_241_or_242(
    server: Server, world: World, amount: str, result: int
) -> None:
    for command in ("check", "pay"):
        assert send(server, params(command, "7006", world.number, amount)).result == result
    assert _payments(world.sessions) == [] and _refusals(world.sessions) == []


def test_accounts_answer_4_when_malformed_5_when_unknown_7_when_closed(server: Server, world: World) -> None:
    for command in ("check", "pay"):
        assert send(server, params(command, "7007", "no such/acct", "5")).result == 4
        assert send(server, params(command, "7007", "", "5")).result == 4
        assert send(server, params(command, "7007", "999999", "5")).result == 5
    with world.sessions.begin() as s:
        subscribers.close(s, world.actor, world.other)
    for command in ("check", "pay"):
        assert send(server, params(command, "7008", world.other, "5")).result == 7
    assert _payments(world.sessions) == []


@pytest.mark.parametrize(
    "change",
    [{"command": "refund"}, {"txn_date": None}, {"txn_date": "2026-12-03"}, {"txn_id": "a b"},
     {"txn_date": "20991231000000"}, {"txn_date": "202612031415"}],
)  # fmt: skip
def test_an_unknown_command_or_a_malformed_field_answers_300(
    server: Server, world: World, change: dict[str, Any]
) -> None:
    query = params("pay", "7009", world.number, "5")
    if "command" in change or "txn_id" in change:  # still correctly signed: the request is authorized
        key = "command" if "command" in change else "txn_id"
        query = params(change[key] if key == "command" else "pay",
                       change[key] if key == "txn_id" else "7009", world.number, "5")  # fmt: skip
    else:
        query.update(change)
        query = {k: v for k, v in query.items() if v is not None}
    answer = send(server, query)
    assert answer.result == 300
    assert _payments(world.sessions) == [] and _refusals(world.sessions) == []


def test_a_parameter_given_twice_answers_300(server: Server, world: World) -> None:
    query = urlencode(params("pay", "7010", world.number, "5")) + "&sum=500"
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    auth = base64.b64encode(f"{BANK}:{PASSWORD}".encode()).decode()
    conn.request("GET", "/checkpay?" + query, headers={"Authorization": "Basic " + auth})
    body = conn.getresponse().read()
    conn.close()
    assert ET.fromstring(body).findtext("result") == "300"
    assert _payments(world.sessions) == []


def test_an_unreachable_database_answers_1_so_the_agent_retries(reactor: Any, tmp_path: Path) -> None:
    gone = make_engine(f"sqlite:///{tmp_path}/no/such/dir/billing.db")
    down = Server(reactor, gone, _config(tmp_path))
    try:
        for command in ("check", "pay"):
            answer = send(down, params(command, "7011", "100001", "5"))
            assert answer.fields == {
                "osmp_txn_id": "7011", "result": "1", "comment": "temporary error, retry later",
            }  # fmt: skip
    finally:
        down.close()
        gone.dispose()


def test_head_is_refused_so_that_no_payment_runs_unseen(server: Server, world: World) -> None:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    auth = base64.b64encode(f"{BANK}:{PASSWORD}".encode()).decode()
    conn.request("HEAD", "/checkpay?" + urlencode(params("pay", "7012", world.number, "5")),
                 headers={"Authorization": "Basic " + auth})  # fmt: skip
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 405 and response.getheader("Allow") == "GET, POST"
    assert _payments(world.sessions) == []
