"""The bank simulator against a live billingd (payment API on plain HTTP, loopback), both databases.

One ``billingd`` per backend serves the module; each test pays with its own transaction id prefix
into its own fresh accounts, so the tests are independent of order. Over SOAP (zeep from the live
WSDL) and over check/pay: payments credit once however often they are retried or duplicated, the
repeats are answered with the original ids, forged signatures and a wrong source address are
refused (and audited), and the registry file holds exactly the injected discrepancies.
"""

from __future__ import annotations

import csv
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import accounts, dictionaries, operators, subscribers
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.customers import Account as AccountRow
from billing.db.engine import make_engine, session_factory
from billing.db.payments import Payment
from simulators.bank import BankConfig, BankSimulator, BankStats, RegistryDiscrepancies
from simulators.main import main
from tests.payment_daemon import REPO, running, write_config

ACTOR = Actor(None, "test", None, "test")
BANK, PASSWORD, KEY = "simbank", "pw-sim", "key-sim"


@dataclass
class Daemon:
    """A running billingd with the payment API on plain HTTP."""

    process: subprocess.Popen[bytes]
    log: Path
    http: int
    engine: Engine

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def accounts(self, n: int) -> list[str]:
        """``n`` fresh accounts with a zero balance, for one test."""
        with session_factory(self.engine).begin() as s:
            return [
                subscribers.create(
                    s, ACTOR, kind="person", name="Sim Payer", category="residential", region="north",
                    currency="EUR",
                ).accounts[0].number
                for _ in range(n)
            ]  # fmt: skip

    def balance(self, number: str) -> Decimal:
        with Session(self.engine) as s:
            return accounts.balance(s, number).balance

    def payments(self, prefix: str) -> dict[str, Payment]:
        """This bank's payments whose transaction id starts with ``prefix``, by transaction id."""
        with Session(self.engine) as s:
            rows = s.scalars(
                select(Payment).where(Payment.source == BANK, Payment.external_id.startswith(prefix))
            )
            return {p.external_id: p for p in rows}

    def refusals_since(self, audit_id: int) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.scalars(
                select(AuditEntry).where(AuditEntry.action == "payments.refused", AuditEntry.id > audit_id)
            )
            return [dict(r.after or {}) for r in rows]

    def last_audit_id(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)) or 0


PAYMENTS = f"""
[payments]
listen_address = "127.0.0.1"
plain_http = true
http_port = 0
threads = 8

[[payments.bank]]
code = "{BANK}"
name = "Simulated Bank"
password = "{PASSWORD}"
signing_key = "{KEY}"
allow_from = ["127.0.0.1/32"]
"""


def _seed(url: str) -> None:
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        operators.bootstrap(s, ACTOR, "test", "Test")
        for kind, code in (("subscriber_category", "residential"), ("region", "north")):
            dictionaries.add(s, ACTOR, kind, code, code.title())
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def daemon(
    request: pytest.FixtureRequest, templates: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    url = templates.sqlite() if request.param == "sqlite" else templates.postgresql()
    tmp = tmp_path_factory.mktemp(f"bank-sim-{request.param}")
    _seed(url)
    try:
        with running(write_config(tmp, url, PAYMENTS), tmp / "billingd.log", url) as up:
            yield Daemon(up.process, up.log, up.http_port, up.engine)
    finally:
        templates.drop(url)


def _config_for(daemon: Daemon, protocol: str, prefix: str, accounts: list[str], **kw: Any) -> BankConfig:
    return BankConfig(
        url=daemon.url, bank=BANK, password=PASSWORD, key=KEY, accounts=accounts, protocol=protocol,  # type: ignore[arg-type]
        txn_prefix=prefix, time_zone=ZoneInfo("Europe/Berlin"), seed=7, **kw,
    )  # fmt: skip


REFUSED_FORGED = {"soap": "BadSignature", "checkpay": "result 8"}
REFUSED_ADDRESS = {"soap": "AuthFailed", "checkpay": "result 8"}


@pytest.mark.parametrize("protocol", ["soap", "checkpay"])
def test_payments_credit_once_however_often_they_are_retried_or_duplicated_and_forgeries_are_refused(
    daemon: Daemon, protocol: str
) -> None:
    numbers = daemon.accounts(4)
    prefix = f"t1-{protocol}-"
    audit_before = daemon.last_audit_id()
    config = _config_for(daemon, protocol, prefix, numbers, count=40, concurrency=6, amount=(Decimal("1.00"),
                         Decimal("99.99")), retry_rate=0.3, duplicate_rate=0.3, forge_rate=0.2)  # fmt: skip
    sim = BankSimulator(config)
    stats = sim.run()

    forged = [p for p in sim.plan if p.forged]
    honest = [p for p in sim.plan if not p.forged]
    assert forged and any(p.retried for p in honest) and any(p.duplicated for p in honest)
    assert stats.broken == [] and not stats.errors
    assert stats.refused == {REFUSED_FORGED[protocol]: len(forged)}
    assert stats.repeats == sum(p.retried + p.duplicated for p in honest) > 0
    assert stats.repeats_original == stats.repeats
    assert stats.lookups == {"ok": 40}

    stored = daemon.payments(prefix)
    assert set(stored) == {p.txn_id for p in honest} == set(stats.paid)
    assert all(stored[t].id == stats.paid[t] and stored[t].channel == protocol for t in stored)
    for number in numbers:  # each credited exactly once
        assert daemon.balance(number) == sum((p.amount for p in honest if p.account == number), Decimal(0))
    refusals = daemon.refusals_since(audit_before)
    assert len(refusals) == len(forged) and {r["reason"] for r in refusals} == {"signature does not match"}
    assert "latency (pay): p50" in stats.summary()


@pytest.mark.parametrize("protocol", ["soap", "checkpay"])
def test_a_bank_calling_from_a_wrong_address_is_refused_and_pays_nothing(
    daemon: Daemon, protocol: str
) -> None:
    numbers = daemon.accounts(1)
    prefix = f"t2-{protocol}-"
    audit_before = daemon.last_audit_id()
    stats = BankSimulator(
        _config_for(daemon, protocol, prefix, numbers, count=3, lookup=False, source_address="127.0.0.2")
    ).run()
    assert stats.refused == {REFUSED_ADDRESS[protocol]: 3} and not stats.paid
    assert daemon.payments(prefix) == {} and daemon.balance(numbers[0]) == 0
    refusals = daemon.refusals_since(audit_before)
    assert [(r["reason"], r["address"]) for r in refusals] == [("address not allowed", "127.0.0.2")] * 3


def payment_account(daemon: Daemon, payment: Payment) -> str:
    with Session(daemon.engine) as s:
        return s.scalar(select(AccountRow.number).where(AccountRow.id == payment.account_id)) or ""


def _registry(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        assert f.readline() == "txn_id;paid_at;account;amount;currency\n"
        f.seek(0)
        return list(csv.DictReader(f, delimiter=";"))


def test_the_registry_holds_the_payments_made_with_exactly_the_injected_discrepancies(
    daemon: Daemon, tmp_path: Path
) -> None:
    numbers = daemon.accounts(3)
    prefix = "t3-"
    path = tmp_path / "registry.csv"
    stats = BankSimulator(
        _config_for(daemon, "soap", prefix, numbers, count=12, lookup=False, forge_rate=0.2, registry=path,
                    discrepancies=RegistryDiscrepancies(drop=2, extra=1, alter=2))
    ).run()  # fmt: skip
    stored = daemon.payments(prefix)
    rows = {r["txn_id"]: r for r in _registry(path)}
    assert (
        len(stats.registry_dropped) == 2
        and len(stats.registry_altered) == 2
        and len(stats.registry_extra) == 1
    )
    assert set(stored) - set(rows) == set(stats.registry_dropped)  # missing at the bank
    assert set(rows) - set(stored) == set(stats.registry_extra)  # missing in billing
    assert stats.registry_lines == len(rows) == len(stored) - 2 + 1
    for txn_id, row in rows.items():
        assert row["currency"] == "EUR" and re.fullmatch(r"\d+\.\d\d", row["amount"])
        if txn_id in stats.registry_extra:
            continue
        payment = stored[txn_id]
        assert row["account"] == payment_account(daemon, payment)
        assert datetime.fromisoformat(row["paid_at"]) == payment.paid_at
        differs = Decimal(row["amount"]) != payment.amount
        assert differs == (txn_id in stats.registry_altered)


def test_the_registry_is_read_by_the_registry_preset(daemon: Daemon, tmp_path: Path) -> None:
    parsers = pytest.importorskip(
        "billing.payment_files", reason="billing.payment_files (parsers) not here yet"
    )
    path = tmp_path / "registry.csv"
    BankSimulator(
        _config_for(daemon, "soap", "t4-", daemon.accounts(2), count=4, lookup=False, registry=path,
                    discrepancies=RegistryDiscrepancies(extra=1, alter=1))
    ).run()  # fmt: skip
    parsed = parsers.parse(
        path.read_bytes(), "registry", presets_dir=REPO / "conf" / "payment_formats", currency="EUR"
    )
    assert not parsed.bad and len(parsed.lines) == 5
    assert {line.key for line in parsed.lines} == {r["txn_id"] for r in _registry(path)}


def test_the_command_line_prints_the_summary(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    numbers = daemon.accounts(2)
    code = main(["bank", "--url", daemon.url, "--bank", BANK, "--password", PASSWORD, "--key", KEY,
                 "--accounts", ",".join(numbers), "--count", "5", "--concurrency", "2", "--amount", "5.00",
                 "--retry-rate", "1", "--txn-prefix", "t5-", "--time-zone", "Europe/Berlin"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5 payments (0 forged), 10 pay requests" in out
    assert "ok: 5 payments credited; duplicates/retries answered with the original ids: 5/5" in out
    assert "refused: none" in out and "lookups: ok 5" in out
    assert sum(daemon.balance(n) for n in numbers) == Decimal("25.00")


def test_bad_command_line_input_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["bank", "--password", "p", "--key", "k", "--protocol", "checkpay"]
    assert main([*base, "--accounts", "9-1"]) == 1
    assert "the range ends before it starts" in capsys.readouterr().err
    assert main([*base, "--accounts", "100001", "--amount", "1.001"]) == 1
    assert main([*base, "--accounts", "100001", "--time-zone", "Mars/Base"]) == 1


def test_stats_percentiles_and_account_ranges() -> None:
    from simulators.bank import parse_accounts, parse_amount

    assert parse_accounts("100001-100003,B0000009-B0000010,x_1") == [
        "100001", "100002", "100003", "B0000009", "B0000010", "x_1",
    ]  # fmt: skip
    assert parse_amount("5-7.5") == (Decimal(5), Decimal("7.5"))
    stats = BankStats("soap", "u", latencies_s=[i / 1000 for i in range(1, 101)])
    assert stats.percentile_ms(50) == pytest.approx(50.5) and stats.percentile_ms(99) == pytest.approx(99.01)
