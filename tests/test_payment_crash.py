"""A payment whose answer was lost (billingd killed between commit and reply) resolves on retry.

On PostgreSQL: agents send payments to billingd over check/pay from many threads; billingd is
killed with SIGKILL in the middle, and a third of the agents give up waiting for their answers
(as after a network cut): some payments committed without an answer, some never committed, some
were answered. After a restart every payment is retried (re-signed, as agents
do): each answers 0, a payment answered before keeps its id, every transaction id is credited
exactly once, and the ledger's invariants hold.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import accounts, dictionaries, operators, subscribers
from billing.audit import Actor
from billing.db.engine import make_engine, session_factory
from billing.db.payments import Payment
from billing.payment_auth import pay_fields, signature
from tests.payment_daemon import running, start, write_config

BANK, PASSWORD, KEY = "agent1", "pw-agent", "key-agent"
ACTOR = Actor(None, "test", None, "test")
N = 300
PAYMENTS = f"""
[payments]
listen_address = "127.0.0.1"
plain_http = true
http_port = 0
threads = 16

[[payments.bank]]
code = "{BANK}"
name = "Agent"
password = "{PASSWORD}"
signing_key = "{KEY}"
allow_from = ["127.0.0.1/32"]
"""


def _seed(url: str, n: int) -> list[str]:
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        operators.bootstrap(s, ACTOR, "test", "Test")
        for kind, code in (("subscriber_category", "residential"), ("region", "north")):
            dictionaries.add(s, ACTOR, kind, code, code.title())
        numbers = [
            subscribers.create(s, ACTOR, kind="person", name="Payer", category="residential", region="north",
                               currency="EUR").accounts[0].number
            for _ in range(n)
        ]  # fmt: skip
    engine.dispose()
    return numbers


def _pay(
    port: int, txn: str, account: str, session: requests.Session, wait_s: float = 10.0
) -> tuple[int, int | None]:
    """One signed check/pay ``pay`` of 1.00; (result, prv_txn), or (-1, None) when no answer came
    within ``wait_s`` (the agent gave up: the payment may have been made or not)."""
    ts = int(datetime.now(UTC).timestamp())
    params = {
        "command": "pay", "txn_id": txn, "account": account, "sum": "1.00",
        "txn_date": datetime.now(UTC).strftime("%Y%m%d%H%M%S"), "ts": str(ts),
        "sign": signature(KEY, pay_fields(BANK, txn, account, Decimal("1.00"), ts)),
    }  # fmt: skip
    try:
        reply = session.get(
            f"http://127.0.0.1:{port}/checkpay", params=params, auth=(BANK, PASSWORD), timeout=(10, wait_s)
        )
    except requests.RequestException:
        return -1, None
    result = re.search(r"<result>(\d+)</result>", reply.text)
    prv = re.search(r"<prv_txn>(\d+)</prv_txn>", reply.text)
    return (int(result[1]) if result else -1), (int(prv[1]) if prv else None)


def test_payments_cut_off_by_a_crash_resolve_to_the_committed_state_on_retry(
    templates: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = templates.postgresql()
    tmp = tmp_path_factory.mktemp("crash")
    try:
        numbers = _seed(url, 20)
        config = write_config(tmp, url, PAYMENTS)
        first = start(config, tmp / "billingd.log", url, "--role", "payments")
        local = threading.local()
        answers, lock = [0], threading.Lock()

        def pay(i: int, port: int, kill_after: int | None = None) -> tuple[int, int | None]:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            impatient = kill_after is not None and i % 3 == 0  # gives up before the answer comes
            answer = _pay(
                port, f"t{i}", numbers[i % len(numbers)], local.session, 0.001 if impatient else 10.0
            )
            with lock:
                answers[0] += 1
                if answers[0] == kill_after:  # requests of the other threads are in flight now
                    first.process.send_signal(signal.SIGKILL)
            return answer

        with ThreadPoolExecutor(24) as pool:
            before = list(pool.map(lambda i: pay(i, first.http_port, N // 3), range(N)))
        first.process.wait()
        answered = {i: prv for i, (result, prv) in enumerate(before) if result == 0}
        assert 0 < len(answered) < N, "the kill must fall in the middle of the burst"
        with Session(first.engine) as s:
            committed = set(s.scalars(select(Payment.external_id)))
        assert {f"t{i}" for i in answered} <= committed  # answered means durable
        lost = committed - {f"t{i}" for i in answered}  # committed, the answer lost
        assert lost, "some payments must have committed without their answer arriving"
        with running(config, tmp / "billingd-restarted.log", url, "--role", "payments") as second:
            time.sleep(0.1)
            with ThreadPoolExecutor(24) as pool:
                after = list(pool.map(lambda i: pay(i, second.http_port), range(N)))
            assert [a for a in after if a[0] != 0 or a[1] is None] == []
            assert all(after[i][1] == prv for i, prv in answered.items())  # the same payment as answered
            with Session(second.engine) as s:
                assert s.scalar(select(func.count()).select_from(Payment)) == N
                assert (
                    s.scalar(select(func.count(func.distinct(Payment.id)))) == len({p for _, p in after}) == N
                )
                total = sum(accounts.balance(s, number).balance for number in numbers)
            assert total == Decimal(N)  # each transaction id credited exactly once
        first.engine.dispose()
    finally:
        templates.drop(url)
