"""billingd end to end: a real daemon process on loopback, real RADIUS peers, both databases.

FreeRADIUS's radclient sends PAP, CHAP and accounting; pyrad sends MS-CHAPv2 and retransmits;
raw sockets play an unknown NAS and a NAS with the wrong secret. One daemon per backend serves
the whole module; each test uses its own subscribers, so the tests are independent of order.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from pyrad.client import Client
from pyrad.dictionary import Dictionary
from sqlalchemy import Engine, select, text, update
from test_auth_methods import client_nt_response  # the independent MS-CHAPv2 client of the unit tests

from aaa import codec
from billing import accounts, dictionaries, operators, subscribers
from billing.audit import Actor
from billing.db.engine import make_engine, session_factory
from billing.db.network import Switch, SwitchPort
from billing.db.services import Service, ServiceMac, SpeedProfile
from tests.payment_daemon import write_config

REPO = Path(__file__).resolve().parents[2]
DICTIONARIES = REPO / "conf" / "dictionaries"
BILLINGD = Path(sys.executable).with_name("billingd")
SECRET = "testing123"
RADCLIENT = shutil.which("radclient")
needs_radclient = pytest.mark.skipif(
    RADCLIENT is None,
    reason="FreeRADIUS radclient not installed (Debian: freeradius-utils; .ci/run installs it)",
)
ACTOR = Actor(None, "test", None, "test")


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    log: Path
    auth: int
    acct: int
    metrics: int
    engine: Engine
    config: Path

    def radclient(self, kind: str, attributes: str, port: int | None = None) -> str:
        assert RADCLIENT is not None
        target = f"127.0.0.1:{port or (self.auth if kind in ('auth', 'status') else self.acct)}"
        run = subprocess.run(
            [RADCLIENT, "-x", "-r", "2", "-t", "2", target, kind, SECRET],
            input=attributes.encode(),
            capture_output=True,
            timeout=30,
        )
        return run.stdout.decode() + run.stderr.decode()

    def pyrad(self) -> Client:
        client = Client(server="127.0.0.1", authport=self.auth, acctport=self.acct, secret=SECRET.encode(),
                        dict=Dictionary(str(DICTIONARIES / "dictionary")))  # fmt: skip
        client.timeout, client.retries = 2, 2
        return client


PEOPLE = [
    ("demo", "demo", "residential", "10", "active", None),
    ("broke", "broke", "business", "-5", "active", None),
    ("walled", "walled", "residential", "-5", "active", None),
    ("paused", "paused", "residential", "10", "suspended_voluntary", None),
    ("gone", "gone", "residential", "10", "churned", None),
    ("flip", "flip", "residential", "10", "active", None),
    ("ms", "Passw0rd!", "residential", "10", "active", None),
    ("ipoe", None, "residential", "10", "active", "02:00:00:00:00:01"),
    ("solo", "solo", "residential", "10", "active", None),
    ("port", None, "residential", "10", "active", None),
]
"""(login, password, category, funds, status, CPE MAC) of the seeded subscribers."""


def _seed(url: str) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        operators.bootstrap(s, ACTOR, "test", "Test")
        for kind, code in (("subscriber_category", "residential"), ("subscriber_category", "business"),
                           ("region", "north"), ("adjustment_reason", "goodwill")):  # fmt: skip
            dictionaries.add(s, ACTOR, kind, code, code.title())
        profile = SpeedProfile(name="home-100", down_kbps=100_000, up_kbps=20_000)
        s.add(profile)
        s.flush()
        for login, password, category, funds, status, mac in PEOPLE:
            info = subscribers.create(s, ACTOR, kind="person", name=login, category=category, region="north",
                                      currency="EUR", credit_limit="0")  # fmt: skip
            number = info.accounts[0].number
            account = accounts.find(s, number)
            service = Service(
                account_id=account.id, kind="internet", status=status, speed_profile_id=profile.id,
                login=login if password else None, password=password, framed_pool="main",
                simultaneous_use=1 if login == "solo" else None,
            )  # fmt: skip
            s.add(service)
            s.flush()
            if mac:
                s.add(ServiceMac(mac=mac, service_id=service.id))
            if login == "port":  # bound to a switch port: found by DHCP Option 82
                switch = Switch(name="sw-7", remote_id="sw-7")
                s.add(switch)
                s.flush()
                s.add(SwitchPort(switch_id=switch.id, port="eth 0/1/2", vlan=100, service_id=service.id))
            accounts.adjust(s, ACTOR, number, funds, "goodwill")
    engine.dispose()


def _config(tmp: Path, url: str) -> Path:
    policy = '[[aaa.category_policy]]\ncategory = "business"\nout_of_funds = "reject"\n'
    return write_config(tmp, url, policy, aaa="snapshot_poll_s = 0.2", secret=SECRET)


_READY = re.compile(rb"RADIUS listening on \S+ auth (\d+) acct (\d+) metrics (\d+)")


def start_daemon(url: str, tmp: Path) -> Daemon:
    """Seed the database at ``url``, start billingd on it (ports 0) and wait until it serves."""
    _seed(url)
    log = tmp / "billingd.log"
    config = _config(tmp, url)
    with log.open("wb") as out:
        process = subprocess.Popen([str(BILLINGD), "--config", str(config)], stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    found = None
    while found is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
        found = _READY.search(log.read_bytes())
    if found is None:
        process.kill()
        process.wait()
        pytest.fail("billingd did not start:\n" + log.read_text(errors="replace")[-3000:])
    return Daemon(process, log, int(found[1]), int(found[2]), int(found[3]), make_engine(url), config)


def stop_daemon(daemon: Daemon) -> int:
    """SIGTERM, and the exit code (-9 if it had to be killed)."""
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code = daemon.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        daemon.process.wait()
        code = -9
    daemon.engine.dispose()
    return code


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def daemon(
    request: pytest.FixtureRequest, templates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:  # type: ignore[no-untyped-def]
    url = templates.sqlite() if request.param == "sqlite" else templates.postgresql()
    running = start_daemon(url, tmp_path_factory.mktemp(f"billingd-{request.param}"))
    try:
        yield running
    finally:
        code = stop_daemon(running)
        templates.drop(url)
        log = running.log.read_text(errors="replace")
        assert code == 0, "billingd did not stop cleanly:\n" + log[-3000:]
        assert "stopped; accounting drained" in log


@needs_radclient
def test_radclient_pap_accepts_with_speed_and_rejects_a_bad_password(daemon: Daemon) -> None:
    ok = daemon.radclient("auth", "User-Name=demo,User-Password=demo,Message-Authenticator=0x00")
    assert "Received Access-Accept" in ok and 'Mikrotik-Rate-Limit = "20M/100M"' in ok
    bad = daemon.radclient("auth", "User-Name=demo,User-Password=nope,Message-Authenticator=0x00")
    assert "Received Access-Reject" in bad


@needs_radclient
def test_radclient_chap_is_accepted(daemon: Daemon) -> None:
    out = daemon.radclient("auth", "User-Name=demo,CHAP-Password=demo,Message-Authenticator=0x00")
    assert "Received Access-Accept" in out


@needs_radclient
@pytest.mark.parametrize(
    ("login", "expected"),
    [
        ("broke", 'Reply-Message = "out of funds"'),  # business: reject when out of funds
        ("walled", 'Framed-Pool = "captive"'),  # residential: walled garden
        ("paused", 'Framed-Pool = "captive"'),
        ("gone", 'Reply-Message = "service terminated"'),
        ("nobody", 'Reply-Message = "unknown subscriber"'),
    ],
)
def test_status_and_funds_decide_the_answer(daemon: Daemon, login: str, expected: str) -> None:
    out = daemon.radclient("auth", f"User-Name={login},User-Password={login},Message-Authenticator=0x00")
    assert expected in out, out


@needs_radclient
def test_access_request_without_message_authenticator_gets_no_reply(daemon: Daemon) -> None:
    out = daemon.radclient("auth", "User-Name=demo,User-Password=demo")
    assert "No reply from server" in out


@needs_radclient
def test_status_server_is_answered(daemon: Daemon) -> None:
    assert "Received Access-Accept" in daemon.radclient("status", "Message-Authenticator=0x00")


@needs_radclient
def test_radclient_accounting_is_stored_with_usage_deltas(daemon: Daemon) -> None:
    base = "User-Name=demo,Acct-Session-Id=e2e-1,NAS-IP-Address=127.0.0.1"
    steps = [
        ("Start", ""),
        ("Interim-Update", ",Acct-Input-Octets=1000,Acct-Output-Octets=5000"),
        ("Interim-Update", ",Acct-Input-Octets=1500,Acct-Output-Octets=9000"),
        ("Stop", ",Acct-Input-Octets=1500,Acct-Output-Octets=9000"),
    ]
    for status, counters in steps:
        out = daemon.radclient("acct", f"{base},Acct-Status-Type={status}{counters}")
        assert "Received Accounting-Response" in out, out
    with daemon.engine.connect() as conn:
        session = conn.execute(
            text(
                "SELECT id, status, input_octets, output_octets FROM radius_sessions"
                " WHERE acct_session_id = 'e2e-1'"
            )
        ).one()
        usage = conn.execute(
            text("SELECT sum(input_octets), sum(output_octets) FROM session_usage WHERE session_id = :s"),
            {"s": session.id},
        ).one()
    assert (session.status, session.input_octets, session.output_octets) == ("closed", 1500, 9000)
    assert tuple(usage) == (1500, 9000)


def test_pyrad_mschapv2_is_accepted_with_mppe_keys(daemon: Daemon) -> None:
    client = daemon.pyrad()
    request = client.CreateAuthPacket(code=1, User_Name="ms")
    challenge, peer = os.urandom(16), os.urandom(16)
    response = client_nt_response(challenge, peer, b"ms", "Passw0rd!")
    request["MS-CHAP-Challenge"] = challenge
    request["MS-CHAP2-Response"] = bytes((1, 0)) + peer + bytes(8) + response
    request.add_message_authenticator()
    reply = client.SendPacket(request)
    assert reply.code == 2
    assert reply["MS-CHAP2-Success"][0].startswith(b"\x01S=")
    assert "MS-MPPE-Send-Key" in reply and "MS-MPPE-Recv-Key" in reply


def _datagram(daemon: Daemon, login: str, identifier: int = 9) -> bytes:
    client = daemon.pyrad()
    request = client.CreateAuthPacket(code=1, id=identifier, User_Name=login)
    request["User-Password"] = request.PwCrypt(login)
    request.add_message_authenticator()
    return request.RequestPacket()


def _exchange(datagram: bytes, port: int, source: str = "127.0.0.1", timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.sendto(datagram, ("127.0.0.1", port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def test_a_retransmit_gets_the_identical_reply(daemon: Daemon) -> None:
    datagram = _datagram(daemon, "demo")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(datagram, ("127.0.0.1", daemon.auth))
        first = sock.recv(4096)
        sock.sendto(datagram, ("127.0.0.1", daemon.auth))
        second = sock.recv(4096)
    assert first == second and codec.decode(first).code == codec.Code.ACCESS_ACCEPT


def test_an_unknown_nas_gets_no_reply(daemon: Daemon) -> None:
    assert _exchange(_datagram(daemon, "demo"), daemon.auth, source="127.0.0.2") is None


def test_a_wrong_secret_is_dropped(daemon: Daemon) -> None:
    client = daemon.pyrad()
    client.secret = b"not-the-secret"
    request = client.CreateAuthPacket(code=1, User_Name="demo")
    request["User-Password"] = request.PwCrypt("demo")
    request.add_message_authenticator()
    assert _exchange(request.RequestPacket(), daemon.auth) is None


def test_ipoe_by_mac_is_accepted_without_a_password(daemon: Daemon) -> None:
    client = daemon.pyrad()
    request = client.CreateAuthPacket(code=1, User_Name="02:00:00:00:00:01")
    request["Calling-Station-Id"] = "02-00-00-00-00-01"
    request.add_message_authenticator()
    assert client.SendPacket(request).code == 2


def test_ipoe_by_option82_port_is_accepted(daemon: Daemon) -> None:
    client = daemon.pyrad()
    request = client.CreateAuthPacket(code=1, User_Name="dhcp-client")
    request["Agent-Circuit-Id"] = b"eth 0/1/2:100"
    request["Agent-Remote-Id"] = b"sw-7"
    request.add_message_authenticator()
    assert client.SendPacket(request).code == 2
    request = client.CreateAuthPacket(code=1, User_Name="dhcp-client")
    request["Agent-Circuit-Id"] = b"eth 0/1/3:100"  # an unbound port
    request["Agent-Remote-Id"] = b"sw-7"
    request.add_message_authenticator()
    assert client.SendPacket(request).code == 3


def test_a_committed_status_change_reaches_authorization_within_a_second(daemon: Daemon) -> None:
    first = _exchange(_datagram(daemon, "flip", 21), daemon.auth)
    assert first is not None and codec.decode(first).code == codec.Code.ACCESS_ACCEPT
    with daemon.engine.begin() as conn:
        conn.execute(update(Service).where(Service.login == "flip").values(status="blocked"))
    deadline = time.monotonic() + 1.5
    code = None
    while time.monotonic() < deadline:
        reply = _exchange(
            _datagram(daemon, "flip", identifier=int(time.monotonic() * 1000) % 256), daemon.auth
        )
        code = codec.decode(reply).code if reply else None
        if code == codec.Code.ACCESS_REJECT:
            break
        time.sleep(0.05)
    assert code == codec.Code.ACCESS_REJECT


def test_metrics_count_requests_and_report_the_snapshot(daemon: Daemon) -> None:
    _exchange(_datagram(daemon, "demo", 33), daemon.auth)
    body = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics}/metrics", timeout=5).read().decode()
    assert re.search(r'billingd_radius_requests_total\{outcome="accept",type="access_request"\} [1-9]', body)
    assert f"billingd_snapshot_subscribers {len(PEOPLE)}.0" in body
    assert "billingd_journal_depth 0.0" in body


def test_funds_come_from_the_ledger(daemon: Daemon) -> None:
    """The snapshot's available funds are the ledger balance plus the credit limit."""
    with daemon.engine.connect() as conn:
        balance = conn.execute(
            select(text("balance")).select_from(text("ledger_accounts")).where(text("code = 'acct:100002'"))
        ).scalar_one()
    assert Decimal(balance) in (Decimal(5), Decimal(5_000_000))  # PostgreSQL NUMERIC, or SQLite millionths


def _wait_for_log(daemon: Daemon, needle: bytes, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while daemon.log.read_bytes().count(needle) < count:
        assert time.monotonic() < deadline, f"{needle!r} not logged {count} times"
        time.sleep(0.05)


def test_sighup_reloads_nas_clients_all_or_nothing(daemon: Daemon) -> None:
    original = daemon.config.read_text(encoding="utf-8")
    reloads = daemon.log.read_bytes().count(b"reloaded:")
    refusals = daemon.log.read_bytes().count(b"config not reloaded")
    assert _exchange(_datagram(daemon, "demo", 41), daemon.auth, source="127.0.0.3") is None
    try:
        extra = f'\n[[aaa.nas]]\nname = "lo3"\naddress = "127.0.0.3"\nsecret = "{SECRET}"\n'
        daemon.config.write_text(original + extra, encoding="utf-8")
        daemon.process.send_signal(signal.SIGHUP)
        _wait_for_log(daemon, b"reloaded:", reloads + 1)
        assert _exchange(_datagram(daemon, "demo", 42), daemon.auth, source="127.0.0.3") is not None
        daemon.config.write_text(
            original.replace('vendor = "mikrotik"', 'vendor = "nokia"'), encoding="utf-8"
        )
        daemon.process.send_signal(signal.SIGHUP)
        _wait_for_log(daemon, b"config not reloaded", refusals + 1)
        assert _exchange(_datagram(daemon, "demo", 43), daemon.auth, source="127.0.0.3") is not None  # kept
    finally:
        daemon.config.write_text(original, encoding="utf-8")
        daemon.process.send_signal(signal.SIGHUP)
        _wait_for_log(daemon, b"reloaded:", reloads + 2)
    assert _exchange(_datagram(daemon, "demo", 44), daemon.auth, source="127.0.0.3") is None


@needs_radclient
def test_simultaneous_use_limit_counts_open_sessions(daemon: Daemon) -> None:
    auth = "User-Name=solo,User-Password=solo,Message-Authenticator=0x00"
    acct = "User-Name=solo,Acct-Session-Id=solo-1,NAS-IP-Address=127.0.0.1,Class=0x{cls},Acct-Status-Type="
    assert "Received Access-Accept" in daemon.radclient("auth", auth)
    with daemon.engine.connect() as conn:
        service_id = conn.execute(select(Service.id).where(Service.login == "solo")).scalar_one()
    cls = f"svc:{service_id}".encode().hex()
    assert "Received Accounting-Response" in daemon.radclient("acct", acct.format(cls=cls) + "Start")
    second = daemon.radclient("auth", auth)
    assert "Received Access-Reject" in second and "simultaneous use limit of 1 reached" in second
    assert "Received Accounting-Response" in daemon.radclient("acct", acct.format(cls=cls) + "Stop")
    assert "Received Access-Accept" in daemon.radclient("auth", auth)


def test_sigterm_answers_every_accounting_request_it_stored(templates, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A burst of accounting, then SIGTERM at once: whatever was stored was also answered."""
    url = templates.sqlite()
    running = start_daemon(url, tmp_path)
    replies: set[int] = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for n in range(200):
                attributes = [(1, b"demo"), (40, (1).to_bytes(4, "big")), (44, f"burst-{n}".encode())]
                datagram = codec.encode_request(codec.Code.ACCOUNTING_REQUEST, n, attributes, SECRET.encode())
                sock.sendto(datagram, ("127.0.0.1", running.acct))
            running.process.send_signal(signal.SIGTERM)
            sock.settimeout(2)
            try:
                while True:
                    replies.add(codec.decode(sock.recv(4096)).identifier)
            except TimeoutError:
                pass
        assert running.process.wait(timeout=20) == 0
        with running.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM radius_sessions WHERE acct_session_id LIKE 'burst-%'")
            )
            count = stored.scalar_one()
    finally:
        stop_daemon(running) if running.process.poll() is None else running.engine.dispose()
        templates.drop(url)
    assert count > 0 and len(replies) == count
