"""The demo end to end: a month billed by the charge runs, then billingd and the BRAS simulator live.

It runs ``python -m billing.demo`` once, as a user would, on a copy of conf/demo.toml that points
at a temporary SQLite file and at free ports (1812/1813 may be taken on a CI machine), and checks
that it ends by itself, in time, with exit 0, having authenticated and accounted, and that it
leaves no process behind; then what the month left in its database: a charge run per day that
posted every charge, the subscriber who ran out of money suspended for debt and resumed, the
radtest subscribers' states, and a ledger whose invariants hold; and the provisioning loop: two
subscribers out of money, suspended, the walled-garden CoA ACKed by the BRAS simulator and the
switch port blocked (read back over SNMP), then paid, resumed, the tariff's rate and the port back.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from billing import accounts
from billing.db.engine import make_engine
from billing.db.migrate import upgrade
from billing.demo import PEOPLE, SETUP_TARIFF, SPEED_PROFILES, Ports, _busy_ports, _with_ports
from billing.demo_provisioning import PORT_MAC, SESSION_LOGIN, SWITCH_PORT
from billing.invariants import check_ledger
from rating.catalog import load_catalog

REPO = Path(__file__).resolve().parents[1]
DURATION = 20  # the month's charge runs take a few seconds; the rest is the live part
SET_UP = 15  # interpreter start, imports, seeding: generous for a slow CI machine


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo_config(tmp: Path) -> tuple[Path, Ports]:
    """conf/demo.toml with a temporary database, journal and NMS drop directory, and free ports."""
    ports = Ports(
        _free_port(socket.SOCK_DGRAM),
        _free_port(socket.SOCK_DGRAM),
        _free_port(socket.SOCK_STREAM),
        _free_port(socket.SOCK_STREAM),
        _free_port(socket.SOCK_DGRAM),
    )
    text = (REPO / "conf" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace('"sqlite:///var/demo.db"', f'"sqlite:///{tmp / "demo.db"}"')
    text = text.replace('journal_dir = "var/journal"', f'journal_dir = "{tmp / "journal"}"')
    text = text.replace('directory = "var/nms"', f'directory = "{tmp / "nms"}"')
    assert str(tmp) in text.split("[aaa]")[0] and str(tmp / "journal") in text and str(tmp / "nms") in text
    path = tmp / "demo.toml"
    path.write_text(_with_ports(text, ports), encoding="utf-8")
    return path, ports


def _processes_with(marker: str) -> dict[int, str]:
    """Live processes whose environment carries ``marker``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


@dataclass(frozen=True)
class DemoRun:
    """One run of the demo: its exit code, output, how long it took, and what it left behind."""

    returncode: int
    text: str
    elapsed: float
    ports: Ports
    config: Path
    database: str
    left_behind: dict[int, str]
    wsdl: str | None  # the payment API's WSDL as fetched while the demo ran (None: never served)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo run once for the tests of this module (it takes DURATION seconds)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    config, ports = _demo_config(tmp_path)
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    engine = make_engine(database)
    upgrade(engine)
    engine.dispose()
    tag = uuid.uuid4().hex
    marker = f"BILLING_DEMO_TEST={tag}"  # every process the demo starts inherits it
    env = {**os.environ, "BILLING_DEMO_TEST": tag}
    command = [sys.executable, "-m", "billing.demo", "--config", str(config), "--duration", str(DURATION),
               "--log", str(tmp_path / "billingd.log")]  # fmt: skip
    began = time.monotonic()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    wsdl: list[str] = []  # a bank's developer fetching the WSDL while the demo runs
    fetcher = threading.Thread(target=_fetch_wsdl, args=(ports.payments, process, wsdl), daemon=True)
    fetcher.start()
    try:
        out, _ = process.communicate(timeout=DURATION + SET_UP + 30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        raise AssertionError(
            "the demo did not stop by itself:\n" + out.decode(errors="replace")[-4000:]
        ) from None
    elapsed = time.monotonic() - began
    deadline = time.monotonic() + 5
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    fetcher.join(timeout=5)
    return DemoRun(
        process.returncode,
        out.decode(errors="replace"),
        elapsed,
        ports,
        config,
        database,
        left,
        wsdl[0] if wsdl else None,
    )


def _fetch_wsdl(port: int, process: subprocess.Popen[bytes], into: list[str]) -> None:
    """Poll the payment API's WSDL until it answers once or the demo ends."""
    while process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/payments?wsdl", timeout=2) as reply:
                into.append(reply.read().decode())
                return
        except OSError:
            time.sleep(0.25)


def test_the_demo_runs_billingd_and_the_simulator_and_stops_in_time(demo: DemoRun) -> None:
    out, ports = demo.text, demo.ports
    assert demo.returncode == 0, out[-4000:]
    assert demo.elapsed < DURATION + SET_UP, f"took {demo.elapsed:.1f} s\n{out[-2000:]}"
    assert "Ledger invariants hold" in out
    assert f"RADIUS auth 127.0.0.1:{ports.auth}, accounting 127.0.0.1:{ports.acct}" in out, out[-4000:]
    access = re.search(r"access requests (\d+): accepted (\d+), rejected (\d+)", out)
    accounting = re.search(r"accounting requests (\d+): acknowledged (\d+)", out)
    assert access and accounting, out[-4000:]
    assert int(access[2]) > 0 and int(access[3]) > 0  # demo and friends in; broke out
    assert int(accounting[2]) > 0
    assert re.search(r"radius_sessions [1-9]\d* \(open 0\)", out), out[-2000:]
    assert "billingd stopped on SIGTERM: accounting drained, exit 0" in out
    assert f"radtest demo demo 127.0.0.1:{ports.auth} 0 testing123" in out
    assert f"radtest broke broke 127.0.0.1:{ports.auth} 0 testing123" in out
    assert demo.left_behind == {}, f"left behind: {demo.left_behind}"


def test_the_banks_soap_wsdl_is_served_while_the_demo_runs_and_its_credentials_are_printed(
    demo: DemoRun,
) -> None:
    assert demo.wsdl is not None, demo.text[-3000:]
    for operation in ("Lookup", "Pay", "Cancel", "Status", "UploadRegistry"):
        assert f'<wsdl:operation name="{operation}"' in demo.wsdl
    assert f"WSDL http://127.0.0.1:{demo.ports.payments}/payments?wsdl" in demo.text
    assert "password 'demobank-password'; signing key 'demobank-signing-key'" in demo.text


def test_every_day_of_the_month_is_billed_by_one_charge_run_that_posts_all_charges(demo: DemoRun) -> None:
    with _connect(demo) as conn:
        runs = conn.execute(text("SELECT as_of, status FROM charge_runs ORDER BY id")).all()
        charges = conn.scalar(text("SELECT count(*) FROM charges WHERE run_id IS NOT NULL"))
        charge_kinds = dict(conn.execute(text("SELECT kind, count(*) FROM charges GROUP BY kind")).all())
        not_by_a_run = conn.scalar(
            text(
                "SELECT count(*) FROM ledger_transactions t WHERE t.kind = 'charge' AND NOT EXISTS"
                " (SELECT 1 FROM charges c WHERE c.transaction_id = t.id AND c.run_id IS NOT NULL)"
            )
        )
        tariffs = set(conn.scalars(text("SELECT tariff_code FROM services")))
        speeds = {
            (tariff, profile)
            for tariff, profile in conn.execute(
                text(
                    "SELECT s.tariff_code, p.name FROM services s"
                    " JOIN speed_profiles p ON p.id = s.speed_profile_id"
                )
            )
        }
    assert [(str(day), status) for day, status in runs] == [
        (f"2026-11-{d:02d}", "completed") for d in range(1, 31)
    ], demo.text[-3000:]
    assert charges and charges > 30
    assert {"recurring", "one_time"} <= set(charge_kinds)  # fees, and the installations mid-month
    assert not_by_a_run == 0  # no charge was posted by hand
    assert tariffs == {"HOME-100", "HOME-1000", "DAY-100", "BIZ-200", "BIZ-200-DAY", "SETUP"}
    assert speeds == {  # the speed AAA sends is the one billed
        ("HOME-100", "home-100"),
        ("HOME-1000", "home-1000"),
        ("DAY-100", "home-100"),
        ("BIZ-200", "business-200"),
        ("BIZ-200-DAY", "business-200"),
    }
    assert re.search(r"2026-11-01 +1 +12/12 +12 ", demo.text), demo.text[:3000]
    admin = f"billing-admin --config {demo.config}"
    for hint in ("charge runs", "charge show 1 ", "service history 3 ", "tariff list"):
        assert f"{admin} {hint}" in demo.text, hint


def test_the_subscriber_out_of_money_is_suspended_for_debt_then_resumed_after_paying(demo: DemoRun) -> None:
    with _connect(demo) as conn:
        changes = conn.execute(
            text(
                "SELECT c.from_status, c.to_status, c.event, d.code, c.at FROM service_status_changes c"
                " JOIN services s ON s.id = c.service_id JOIN dictionary_entries d ON d.id = c.reason_id"
                " WHERE s.login = 'lea' ORDER BY c.id"
            )
        ).all()
        status = conn.scalar(text("SELECT status FROM services WHERE login = 'lea'"))
        others = conn.scalar(
            text(
                "SELECT count(*) FROM service_status_changes c JOIN services s ON s.id = c.service_id"
                " WHERE (s.login IS NULL OR s.login <> 'lea') AND s.id NOT IN"
                " (SELECT id FROM services WHERE login = :login UNION SELECT service_id FROM service_macs"
                " WHERE mac = :mac)"  # the provisioning loop's two subscribers
            ),
            {"login": SESSION_LOGIN, "mac": PORT_MAC},
        )
        unpaid_days = conn.scalar(
            text(
                "SELECT count(*) FROM charges c JOIN services s ON s.id = c.service_id"
                " WHERE s.login = 'lea' AND c.due_on BETWEEN '2026-11-17' AND '2026-11-24'"
            )
        )
    assert [row[:4] for row in changes] == [
        ("active", "suspended_involuntary", "suspend_for_debt", "non_payment"),
        ("suspended_involuntary", "active", "debt_paid", "payment_received"),
    ]
    assert str(changes[0][4]) < str(changes[1][4])
    assert status == "active"
    assert others == 0  # everyone else paid in time, or is within the grace period
    assert unpaid_days == 0  # no daily fee while suspended
    assert "lea: active -> suspended_involuntary (non_payment)" in demo.text
    assert "lea: suspended_involuntary -> active (payment_received)" in demo.text


def test_the_provisioning_loop_reaches_the_simulated_network_and_back(demo: DemoRun) -> None:
    """Out of money → suspended → CoA / port block ACKed by the simulators → paid → resumed → speed back."""
    out = demo.text
    assert demo.returncode == 0 and "Loop complete in" in out, out[-4000:]
    assert re.search(r"anna .*active -> suspended_involuntary \(non_payment\): network walled_garden", out)
    assert re.search(r"Autohaus .*active -> suspended_involuntary \(non_payment\): network deny", out)
    assert re.search(
        r"coa nas:demo-bras 127\.0\.0\.1:\d+ session \w+: Mikrotik-Rate-Limit 512k/512k -> ack", out
    )
    assert f"block switch:demo-switch {SWITCH_PORT} -> ok" in out
    assert f"read back over SNMP: {SWITCH_PORT} ifAdminStatus down" in out
    assert re.search(r"Mikrotik-Rate-Limit 20M/100M -> ack", out)
    assert f"unblock switch:demo-switch {SWITCH_PORT} -> ok" in out
    assert f"read back over SNMP: {SWITCH_PORT} ifAdminStatus up" in out
    assert "The loop's BRAS simulator counted: CoA acked 2, naked 0" in out
    assert (
        "billing-admin provisioning list" in out
        and f"billing-admin --config {demo.config} provisioning show" in out
    )
    with _connect(demo) as conn:
        tasks = conn.execute(
            text(
                "SELECT t.network, t.state, a.action, a.result FROM provisioning_tasks t"
                " JOIN provisioning_attempts a ON a.task_id = t.id ORDER BY t.id, a.id"
            )
        ).all()
        states = dict(
            conn.execute(text("SELECT network, count(*) FROM network_states GROUP BY network")).all()
        )
    assert [tuple(row) for row in tasks if row[2] != "none"] == [
        ("walled_garden", "done", "coa", "ack"),
        ("deny", "done", "block", "ok"),
        ("allow", "done", "coa", "ack"),
        ("allow", "done", "unblock", "ok"),
    ]
    assert states.get("allow", 0) >= 2 and set(states) == {"allow"}
    exported = list((demo.config.parent / "nms").glob("*.json"))
    assert exported, "no NMS export file"


def test_demo_ends_active_and_funded_and_broke_active_but_out_of_funds(demo: DemoRun) -> None:
    with _connect(demo) as conn:
        rows = conn.execute(
            text(
                "SELECT s.login, s.status FROM services s WHERE s.login IN ('demo', 'broke') ORDER BY s.login"
            )
        ).all()
    engine = make_engine(demo.database)
    try:
        with Session(engine) as session:
            balances = {
                number: accounts.balance(session, number).available for number in ("100013", "100014")
            }
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("broke", "active"), ("demo", "active")]
    assert balances["100013"] > 0  # demo
    assert balances["100014"] < 0  # broke: AAA rejects it, "out of funds"


def test_the_ledger_invariants_hold_after_the_month(demo: DemoRun) -> None:
    engine = make_engine(demo.database)
    try:
        with Session(engine) as session:
            assert check_ledger(session) == []
    finally:
        engine.dispose()


def test_every_demo_line_gets_the_speed_profile_of_its_tariff() -> None:
    catalog = load_catalog(
        (REPO / "conf" / "tariffs" / "demo.toml").read_text(encoding="utf-8"), source="demo"
    )
    for person in PEOPLE:
        tariff = catalog.tariff(person.tariff)
        assert tariff.kind.value == "internet", person
        assert tariff.versions[-1].speed_profile in SPEED_PROFILES, person
        if person.promotion:
            assert person.tariff in catalog.promotion(person.promotion).tariffs
    assert catalog.tariff(SETUP_TARIFF).versions[0].one_time_fees


@contextlib.contextmanager
def _connect(demo: DemoRun) -> Iterator[Connection]:
    engine = make_engine(demo.database)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        busy = _busy_ports("127.0.0.1", "127.0.0.1", Ports(port, 0, 0))
    assert busy == [f"UDP 127.0.0.1:{port} (RADIUS auth)"]
    assert _busy_ports("127.0.0.1", "127.0.0.1", Ports(0, 0, 0)) == []


def test_ports_are_replaced_in_the_aaa_table_and_the_payment_apis_http_port_only() -> None:
    text = (REPO / "conf" / "demo.toml").read_text(encoding="utf-8")
    changed = tomllib.loads(_with_ports(text, Ports(0, 1, 2, 3)))
    original = tomllib.loads(text)
    assert tomllib.loads(_with_ports(text, Ports(0, 1, 2, 3, 4)))["aaa"]["nas"][0]["coa_port"] == 4
    assert changed["payments"]["http_port"] == 3
    del changed["payments"]["http_port"], original["payments"]["http_port"]
    assert (changed["aaa"]["auth_port"], changed["aaa"]["acct_port"], changed["aaa"]["metrics_port"]) == (
        0,
        1,
        2,
    )
    for key in ("auth_port", "acct_port", "metrics_port"):
        del changed["aaa"][key], original["aaa"][key]
    assert changed == original
    bare = tomllib.loads(_with_ports('[isp]\nname = "x"\n', Ports(1, 2, 3)))
    assert bare["aaa"] == {"auth_port": 1, "acct_port": 2, "metrics_port": 3}
