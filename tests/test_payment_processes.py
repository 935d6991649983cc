"""Two ``billingd --role payments`` processes share one port (SO_REUSEPORT): both serve payments,
and a payment retried through the other process is still paid once."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.db.payments import Payment
from tests.payment_daemon import running, write_config
from tests.test_payment_crash import BANK, KEY, PASSWORD, _pay, _seed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_payment_processes_share_a_port_and_a_retry_through_either_pays_once(
    templates: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = templates.postgresql()
    tmp = tmp_path_factory.mktemp("two")
    port = _free_port()
    payments = f"""
[payments]
listen_address = "127.0.0.1"
plain_http = true
http_port = {port}
threads = 4

[[payments.bank]]
code = "{BANK}"
name = "Agent"
password = "{PASSWORD}"
signing_key = "{KEY}"
allow_from = ["127.0.0.1/32"]
"""
    try:
        numbers = _seed(url, 4)
        config = write_config(tmp, url, payments)
        with (
            running(config, tmp / "a.log", url, "--role", "payments") as a,
            running(config, tmp / "b.log", url, "--role", "payments") as b,
        ):
            assert a.http_port == b.http_port == port
            answers = []
            for i in range(60):  # a new connection each time: the kernel spreads them
                with requests.Session() as session:
                    answers.append(_pay(port, f"p{i % 30}", numbers[i % 30 % 4], session))
            assert all(result == 0 for result, _ in answers)
            assert [prv for _, prv in answers[:30]] == [prv for _, prv in answers[30:]]  # retries: same ids
            served = [len(re.findall(r"\(check/pay\)", log.read_text())) for log in (a.log, b.log)]
            assert all(served), f"both processes must serve: {served}"
            with Session(a.engine) as s:
                assert s.scalar(select(func.count()).select_from(Payment)) == 30
    finally:
        templates.drop(url)
