"""The BRAS simulator against a tiny RADIUS responder on 127.0.0.1 (real UDP, real packets).

The responder is written with our strict codec (``aaa.codec``), independently of pyrad,
which the simulator uses: so a packet the simulator gets wrong fails here.  It accepts
known users whose PAP/CHAP password is right (IPoE: a known MAC), rejects the rest,
acknowledges accounting, and records every request it accepted as valid.  CoA and
Disconnect requests are built by the test with ``aaa.codec.encode_request``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aaa import codec
from aaa.codec import Code, RadiusPacket
from simulators import bras as sim
from simulators.bras import (
    BrasConfig,
    BrasSimulator,
    CoaAnswer,
    ErrorCause,
    Outcome,
    Subscriber,
    TerminateCause,
)
from simulators.main import main
from simulators.radius_stub import AcceptingRadius

SECRET = b"testing123"
RADCLIENT = shutil.which("radclient")
GIB = 1 << 30

# attribute types (RFC 2865/2866/2869/5176)
USER_NAME, FRAMED_IP, CLASS, CALLING_STATION_ID = 1, 8, 25, 31
ACCT_STATUS_TYPE, ACCT_INPUT_OCTETS, ACCT_OUTPUT_OCTETS, ACCT_SESSION_ID = 40, 42, 43, 44
ACCT_TERMINATE_CAUSE, ACCT_INPUT_GIGAWORDS, ACCT_OUTPUT_GIGAWORDS = 49, 52, 53
ERROR_CAUSE = 101
START, STOP, INTERIM, ACCOUNTING_ON = 1, 2, 3, 7
ADSL_FORUM, AGENT_CIRCUIT_ID, AGENT_REMOTE_ID = 3561, 1, 2
MIKROTIK, MIKROTIK_RATE_LIMIT = 14988, 8


def u32(value: bytes | None) -> int:
    assert value is not None
    return int.from_bytes(value, "big")


class Responder(AcceptingRadius):
    """A RADIUS server in a thread: one UDP socket for authentication and accounting."""

    def __init__(self, users: dict[str, str], macs: set[str] = frozenset(), drop_first: int = 0) -> None:  # type: ignore[assignment]
        self.users = users
        self.macs = macs
        self.drop_first = drop_first
        self.received: list[RadiusPacket] = []
        self.invalid: list[str] = []
        self._lock = threading.Lock()
        super().__init__(SECRET, name="test-radius-responder")

    def requests(self, code: int) -> list[RadiusPacket]:
        with self._lock:
            return [p for p in self.received if p.code == code]

    def accounting(self, status: int | None = None) -> list[RadiusPacket]:
        acct = self.requests(Code.ACCOUNTING_REQUEST)
        return [p for p in acct if status is None or u32(p.get(ACCT_STATUS_TYPE)) == status]

    def answer(self, req: RadiusPacket) -> bytes | None:
        if self.drop_first > 0:
            self.drop_first -= 1
            return None
        if req.code == Code.ACCESS_REQUEST:
            if not codec.verify_message_authenticator(req, SECRET):
                self.invalid.append("access request without a valid Message-Authenticator")
                return None
            with self._lock:
                self.received.append(req)
            if self._authentic(req):
                attrs = [
                    (CLASS, b"class-" + (req.get(USER_NAME) or b"")),
                    (MIKROTIK, MIKROTIK_RATE_LIMIT, b"5M/5M"),
                ]
                return codec.encode_reply(req, Code.ACCESS_ACCEPT, attrs, SECRET)
            return codec.encode_reply(req, Code.ACCESS_REJECT, [], SECRET)
        if req.code == Code.ACCOUNTING_REQUEST:
            if not codec.verify_request_authenticator(req, SECRET):
                self.invalid.append("accounting request with a bad authenticator")
                return None
            with self._lock:
                self.received.append(req)
            return codec.encode_reply(req, Code.ACCOUNTING_RESPONSE, [], SECRET)
        self.invalid.append(f"unexpected code {req.code}")
        return None

    def _authentic(self, req: RadiusPacket) -> bool:
        name = (req.get(USER_NAME) or b"").decode()
        if name in self.users:
            password = self.users[name].encode()
            hidden = req.get(codec.USER_PASSWORD)
            if hidden is not None:
                return codec.decrypt_user_password(hidden, SECRET, req.authenticator) == password
            return codec.verify_chap_password(req, password)
        mac = (req.get(CALLING_STATION_ID) or b"").decode()
        return mac in self.macs and req.get(codec.USER_PASSWORD) is None


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while (left := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"threads left behind: {sorted(t.name for t in left)}"


@pytest.fixture
def responder() -> Iterator[Responder]:
    r = Responder(
        users={
            "alice": "secret-a",
            "bob": "secret-b",
            "carol": "secret-c",
            "dave": "secret-d",
            "u1": "p1",
            "u2": "p2",
        },
        macs={"02:00:00:00:00:99"},
    )
    yield r
    r.close()
    assert r.invalid == []


def config(port: int, subs: tuple[Subscriber, ...], **overrides: object) -> BrasConfig:
    values: dict[str, object] = {
        "subscribers": subs,
        "secret": SECRET,
        "auth_port": port,
        "acct_port": port,
        "coa_port": 0,
        "timeout": 0.3,
        "retries": 3,
        "workers": 4,
        "interim": 0.3,
        "seed": 7,
    }
    values.update(overrides)
    return BrasConfig(**values)  # type: ignore[arg-type]


ALICE = Subscriber("alice", "secret-a", "pap")
BOB = Subscriber("bob", "secret-b", "chap")
WRONG_PAP = Subscriber("carol", "wrong", "pap", mac="02:00:00:00:00:01")
WRONG_CHAP = Subscriber("dave", "wrong", "chap")
IPOE = Subscriber(
    kind="ipoe", mac="02:00:00:00:00:99", circuit_id="eth 0/1/7:100", remote_id="0x001122334455"
)


def coa_request(
    code: Code, attrs: list[codec.Attribute], secret: bytes = SECRET
) -> tuple[bytes, RadiusPacket]:
    raw = codec.encode_request(code, 42, attrs, secret)
    return raw, codec.decode(raw)


def send_coa(
    address: tuple[str, int],
    raw: bytes,
    request: RadiusPacket,
    sock: socket.socket | None = None,
    timeout: float = 1.0,
) -> RadiusPacket | None:
    """Send one CoA/Disconnect datagram (from ``sock`` if given, so retransmissions share a port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as own:
        s = sock or own
        s.settimeout(timeout)
        s.sendto(raw, address)
        try:
            data = s.recv(4096)
        except TimeoutError:
            return None
    reply = codec.decode(data)
    assert codec.verify_response_authenticator(reply, request, SECRET)
    return reply


def wait_for(predicate, timeout: float = 2.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------- authentication


def test_pap_and_chap_are_accepted_and_wrong_passwords_rejected(responder: Responder) -> None:
    subs = (ALICE, BOB, WRONG_PAP, WRONG_CHAP)
    with BrasSimulator(config(responder.port, subs)) as bras:
        assert [bras.authenticate(s) for s in subs] == [
            Outcome.ACCEPTED,
            Outcome.ACCEPTED,
            Outcome.REJECTED,
            Outcome.REJECTED,
        ]
        stats = bras.stats
    assert (stats.access_requests, stats.accepted, stats.rejected, stats.auth_timeouts) == (4, 2, 2, 0)
    access = responder.requests(Code.ACCESS_REQUEST)
    assert all(p.has_message_authenticator for p in access)
    assert access[0].get(codec.USER_PASSWORD) is not None and access[0].get(codec.CHAP_PASSWORD) is None
    assert access[1].get(codec.CHAP_PASSWORD) is not None and access[1].get(codec.CHAP_CHALLENGE) is not None
    assert access[2].get(CALLING_STATION_ID) == b"02:00:00:00:00:01"


def test_ipoe_is_identified_by_mac_and_option82(responder: Responder) -> None:
    with BrasSimulator(config(responder.port, (IPOE,))) as bras:
        assert bras.authenticate(IPOE) is Outcome.ACCEPTED
    (req,) = responder.requests(Code.ACCESS_REQUEST)
    assert req.get(USER_NAME) == b"02:00:00:00:00:99"
    assert req.get(codec.USER_PASSWORD) is None
    assert req.get_vendor(ADSL_FORUM, AGENT_CIRCUIT_ID) == b"eth 0/1/7:100"
    assert req.get_vendor(ADSL_FORUM, AGENT_REMOTE_ID) == bytes.fromhex("001122334455")


def test_lost_first_sends_are_retransmitted(responder: Responder) -> None:
    responder.drop_first = 2
    with BrasSimulator(config(responder.port, (ALICE,), timeout=0.15)) as bras:
        assert bras.authenticate(ALICE) is Outcome.ACCEPTED
        assert bras.stats.retransmissions == 2


# --------------------------------------------------------------------------- accounting


def test_start_interim_stop_carry_growing_counters_and_gigawords(responder: Responder) -> None:
    with BrasSimulator(config(responder.port, (ALICE,), download_rate=0, upload_rate=0)) as bras:
        assert bras.authenticate(ALICE) is Outcome.ACCEPTED
        session = bras.start(ALICE)
        assert session.reply["Mikrotik-Rate-Limit"] == ["5M/5M"]
        session.add_usage(1 * GIB, 3 * GIB)
        assert bras.interim(ALICE) is Outcome.ACKNOWLEDGED
        session.add_usage(1 * GIB, 2 * GIB + 5)
        assert bras.interim(ALICE) is Outcome.ACKNOWLEDGED
        assert bras.stop(ALICE, TerminateCause.LOST_CARRIER) is Outcome.ACKNOWLEDGED
        assert bras.stop(ALICE) is Outcome.NO_SESSION
        stats = bras.stats
    assert (stats.starts, stats.interims, stats.stops, stats.acct_acknowledged) == (1, 2, 1, 4)
    acct = responder.accounting()
    assert [u32(p.get(ACCT_STATUS_TYPE)) for p in acct] == [START, INTERIM, INTERIM, STOP]
    assert len({p.get(ACCT_SESSION_ID) for p in acct}) == 1
    assert all(p.get(CLASS) == b"class-alice" for p in acct)  # Class echoed (RFC 2865 §5.25)
    totals = [
        (
            u32(p.get(ACCT_INPUT_OCTETS)) + (u32(p.get(ACCT_INPUT_GIGAWORDS) or b"\0") << 32),
            u32(p.get(ACCT_OUTPUT_OCTETS)) + (u32(p.get(ACCT_OUTPUT_GIGAWORDS) or b"\0") << 32),
        )
        for p in acct[1:]
    ]
    assert totals == [(1 * GIB, 3 * GIB), (2 * GIB, 5 * GIB + 5), (2 * GIB, 5 * GIB + 5)]
    assert acct[1].get(ACCT_OUTPUT_GIGAWORDS) is None  # 3 GiB: still fits 32 bits
    assert u32(acct[2].get(ACCT_OUTPUT_GIGAWORDS)) == 1 and u32(acct[2].get(ACCT_OUTPUT_OCTETS)) == GIB + 5
    assert u32(acct[3].get(ACCT_TERMINATE_CAUSE)) == TerminateCause.LOST_CARRIER


def test_reboot_sends_accounting_on_and_everyone_logs_in_again(responder: Responder) -> None:
    with BrasSimulator(config(responder.port, (ALICE, BOB))) as bras:
        for sub in (ALICE, BOB):
            bras.authenticate(sub)
            bras.start(sub)
        old_ids = {s.acct_session_id for s in bras.sessions()}
        assert bras.reboot() is Outcome.ACKNOWLEDGED
        new_ids = {s.acct_session_id for s in bras.sessions()}
        stats = bras.stats
    assert len(new_ids) == 2 and not new_ids & old_ids
    (on,) = responder.accounting(ACCOUNTING_ON)
    acct = responder.accounting()
    assert acct.index(on) == 2 and len(responder.accounting(START)) == 4
    assert len(responder.accounting(STOP)) == 0  # a rebooted NAS sends no Stops
    assert (stats.accounting_ons, stats.accepted) == (1, 4)


# --------------------------------------------------------------------------- CoA and Disconnect


def test_coa_and_disconnect_are_verified_acked_and_acted_on(responder: Responder) -> None:
    with BrasSimulator(config(responder.port, (ALICE, BOB))) as bras:
        address = bras.coa_address
        assert address is not None
        for sub in (ALICE, BOB):
            bras.authenticate(sub)
            bras.start(sub)
        alice = bras.session(ALICE)
        assert alice is not None

        raw, req = coa_request(
            Code.COA_REQUEST,
            [(ACCT_SESSION_ID, alice.acct_session_id.encode()), (MIKROTIK, MIKROTIK_RATE_LIMIT, b"10M/10M")],
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas_client:
            reply = send_coa(address, raw, req, nas_client)
            assert reply is not None and reply.code == Code.COA_ACK
            assert alice.coa == {"Mikrotik-Rate-Limit": "10M/10M"}
            assert send_coa(address, raw, req, nas_client) == reply  # a retransmission: same answer

        raw, req = coa_request(Code.DISCONNECT_REQUEST, [(USER_NAME, b"bob")])
        reply = send_coa(address, raw, req)
        assert reply is not None and reply.code == Code.DISCONNECT_ACK
        assert bras.session(BOB) is None
        assert wait_for(lambda: len(responder.accounting(STOP)) == 1)
        (stop,) = responder.accounting(STOP)
        assert stop.get(USER_NAME) == b"bob"
        assert u32(stop.get(ACCT_TERMINATE_CAUSE)) == TerminateCause.ADMIN_RESET

        for code, nak in ((Code.COA_REQUEST, Code.COA_NAK), (Code.DISCONNECT_REQUEST, Code.DISCONNECT_NAK)):
            raw, req = coa_request(code, [(ACCT_SESSION_ID, b"no-such-session")])
            reply = send_coa(address, raw, req)
            assert reply is not None and reply.code == nak
            assert u32(reply.get(ERROR_CAUSE)) == 503  # Session-Context-Not-Found

        raw, req = coa_request(Code.DISCONNECT_REQUEST, [(USER_NAME, b"alice")], secret=b"wrong-secret")
        assert send_coa(address, raw, req, timeout=0.3) is None  # bad authenticator: dropped, no answer
        assert bras.session(ALICE) is not None
        stats = bras.stats
    assert (stats.coa_acked, stats.coa_naked, stats.disconnect_acked, stats.disconnect_naked) == (1, 1, 1, 1)
    assert (stats.coa_duplicates, stats.coa_dropped) == (1, 1)


def test_nak_and_silent_answer_modes_are_set_per_request_kind(responder: Responder) -> None:
    """coa_answer="nak": NAK with the configured cause, nothing applied; disconnect "silent": no answer."""
    cfg = config(
        responder.port, (ALICE, BOB), coa_answer="nak", nak_error_cause=405, disconnect_answer="silent"
    )
    with BrasSimulator(cfg) as bras:
        address = bras.coa_address
        assert address is not None
        for sub in (ALICE, BOB):
            bras.authenticate(sub)
            bras.start(sub)
        raw, req = coa_request(
            Code.COA_REQUEST, [(USER_NAME, b"alice"), (MIKROTIK, MIKROTIK_RATE_LIMIT, b"1M/1M")]
        )
        reply = send_coa(address, raw, req)
        assert reply is not None and reply.code == Code.COA_NAK
        assert u32(reply.get(ERROR_CAUSE)) == ErrorCause.UNSUPPORTED_SERVICE
        assert bras.last_coa(ALICE) == {} and bras.session(ALICE).coa == {}  # type: ignore[union-attr]

        raw, req = coa_request(Code.COA_REQUEST, [(ACCT_SESSION_ID, b"no-such-session")])
        reply = send_coa(address, raw, req)
        assert reply is not None and u32(reply.get(ERROR_CAUSE)) == 503  # an unknown session stays 503

        raw, req = coa_request(Code.DISCONNECT_REQUEST, [(USER_NAME, b"bob")])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas_client:
            assert send_coa(address, raw, req, nas_client, timeout=0.2) is None
            assert send_coa(address, raw, req, nas_client, timeout=0.2) is None  # a retransmission too
        assert bras.session(BOB) is not None
        stats = bras.stats
    assert (stats.coa_naked, stats.coa_acked, stats.disconnect_silenced, stats.disconnect_acked) == (
        2,
        0,
        2,
        0,
    )
    assert len(responder.accounting(STOP)) == 0
    assert "unanswered on purpose 0 CoA, 2 disconnect" in stats.summary()


def test_a_nakked_disconnect_keeps_the_session_and_the_default_cause_is_501(responder: Responder) -> None:
    """disconnect_answer="nak" without a cause: 501 Administratively-Prohibited; CoA still ACKed."""
    with BrasSimulator(config(responder.port, (ALICE,), disconnect_answer="nak")) as bras:
        address = bras.coa_address
        assert address is not None
        bras.authenticate(ALICE)
        bras.start(ALICE)
        raw, req = coa_request(Code.DISCONNECT_REQUEST, [(USER_NAME, b"alice")])
        reply = send_coa(address, raw, req)
        assert reply is not None and reply.code == Code.DISCONNECT_NAK
        assert u32(reply.get(ERROR_CAUSE)) == ErrorCause.ADMINISTRATIVELY_PROHIBITED == 501
        assert bras.session(ALICE) is not None
        raw, req = coa_request(
            Code.COA_REQUEST, [(USER_NAME, b"alice"), (MIKROTIK, MIKROTIK_RATE_LIMIT, b"2M/2M")]
        )
        reply = send_coa(address, raw, req)
        assert reply is not None and reply.code == Code.COA_ACK


def test_last_coa_is_the_last_acked_change_while_coa_accumulates(responder: Responder) -> None:
    """Two ACKed CoAs: ``last_coa`` shows the second one's attributes only, ``Session.coa`` both."""
    with BrasSimulator(config(responder.port, (ALICE, BOB))) as bras:
        address = bras.coa_address
        assert address is not None
        for sub in (ALICE, BOB):
            bras.authenticate(sub)
            bras.start(sub)
        for attr in ((MIKROTIK, MIKROTIK_RATE_LIMIT, b"10M/10M"), (CLASS, b"walled")):
            raw, req = coa_request(Code.COA_REQUEST, [(USER_NAME, b"alice"), attr])
            reply = send_coa(address, raw, req)
            assert reply is not None and reply.code == Code.COA_ACK
        assert bras.last_coa(ALICE) == {"Class": b"walled"}
        assert bras.session(ALICE).coa == {"Mikrotik-Rate-Limit": "10M/10M", "Class": b"walled"}  # type: ignore[union-attr]
        assert bras.last_coa(BOB) == {}
        assert bras.last_coa(Subscriber("nobody", "x")) is None


def test_answer_modes_are_validated_and_exposed_on_the_command_line(
    responder: Responder, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown modes and causes outside 400-599 are refused; the CLI passes the modes through."""
    with pytest.raises(ValueError, match="coa_answer 'maybe'"):
        config(responder.port, (ALICE,), coa_answer="maybe")
    with pytest.raises(ValueError, match="400-599"):
        config(responder.port, (ALICE,), nak_error_cause=201)
    assert config(responder.port, (ALICE,), disconnect_answer="silent").disconnect_answer is CoaAnswer.SILENT
    for bad in (["--coa-answer", "maybe"], ["--nak-error-cause", "99"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["bras", "--generate", "u%d:p%d:1-1", *bad])
        assert exit_info.value.code == 2
    argv = ["bras", "--auth-port", str(responder.port), "--acct-port", str(responder.port), "--secret"]
    argv += [SECRET.decode(), "--generate", "u%d:p%d:1-1", "--duration", "0.3", "--coa-port", "0"]
    argv += [
        "--coa-answer",
        "nak",
        "--disconnect-answer",
        "silent",
        "--nak-error-cause",
        "506",
        "--timeout",
        "0.3",
    ]
    assert main(argv) == 0
    assert "(CoA nak, Disconnect silent)" in capsys.readouterr().out


@pytest.mark.skipif(RADCLIENT is None, reason="FreeRADIUS radclient not installed (Debian: freeradius-utils)")
def test_radclient_gets_verified_ack_and_nak_with_error_cause_from_the_simulator(
    responder: Responder,
) -> None:
    """FreeRADIUS's radclient, an independent client, verifies a Disconnect-ACK and a CoA-NAK's cause."""
    assert RADCLIENT is not None
    with BrasSimulator(config(responder.port, (ALICE, BOB), coa_answer="nak")) as bras:
        address = bras.coa_address
        assert address is not None
        for sub in (ALICE, BOB):
            bras.authenticate(sub)
            bras.start(sub)
        alice = bras.session(ALICE)
        assert alice is not None

        def radclient(kind: str, attributes: str) -> str:
            run = subprocess.run(
                [RADCLIENT, "-x", "-r", "1", "-t", "2", f"{address[0]}:{address[1]}", kind, SECRET.decode()],
                input=f"{attributes}\nMessage-Authenticator = 0x00\n".encode(),
                capture_output=True,
                timeout=20,
            )
            return run.stdout.decode() + run.stderr.decode()

        out = radclient("coa", f'Acct-Session-Id = "{alice.acct_session_id}"\nMikrotik-Rate-Limit = "1M/1M"')
        assert "Received CoA-NAK" in out and "Error-Cause = Administratively-Prohibited" in out, out
        out = radclient("disconnect", 'User-Name = "bob"')
        assert "Received Disconnect-ACK" in out, out
        assert bras.session(BOB) is None
        stats = bras.stats
    assert (stats.coa_naked, stats.disconnect_acked, stats.coa_dropped) == (1, 1, 0)


# --------------------------------------------------------------------------- whole runs


def test_run_brings_everyone_online_sends_interims_reboots_and_stops_at_the_end(responder: Responder) -> None:
    subs = (ALICE, BOB, IPOE, WRONG_CHAP)
    cfg = config(responder.port, subs, interim=0.25, reboot_after=0.8, download_rate=20 * GIB)
    began = time.monotonic()
    stats = BrasSimulator(cfg).run(1.6)
    assert time.monotonic() - began < 1.6 + cfg.timeout * cfg.retries + 0.5
    assert stats.rejected >= 1 and stats.accepted >= 6  # 3 good subscribers, twice (reboot)
    assert stats.accounting_ons == 1 and stats.interims >= 3 and stats.timeouts == 0
    assert stats.acct_acknowledged == stats.acct_requests
    assert len(responder.accounting(STOP)) == 3  # the final Stops
    assert any(p.get(ACCT_OUTPUT_GIGAWORDS) for p in responder.accounting(INTERIM))


def test_timeouts_are_counted_and_the_run_ends_within_its_duration() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        gone = s.getsockname()[1]  # closed on leaving the block: nobody answers there
    cfg = config(gone, (ALICE, BOB), timeout=0.2, interim=0.4)
    began = time.monotonic()
    stats = BrasSimulator(cfg).run(1.0)
    assert time.monotonic() - began < 1.0 + 0.3
    assert stats.accepted == 0 and stats.auth_timeouts >= 2 and stats.timeouts == stats.auth_timeouts
    assert stats.retransmissions >= 4


def test_close_without_use_and_twice_leaves_nothing_behind() -> None:
    bras = BrasSimulator(config(9, (ALICE,)))
    bras.close()
    bras.close()


# --------------------------------------------------------------------------- subscribers and the CLI


def test_subscribers_from_csv_toml_and_generated(tmp_path: Path) -> None:
    csv_file = tmp_path / "subs.csv"
    csv_file.write_text(
        "login,password,method,kind,mac,circuit_id,remote_id\n"
        "alice,secret-a,pap,pppoe,,,\n"
        ",,,ipoe,02:00:00:00:00:99,eth 0/1/7:100,0x001122334455\n"
    )
    assert sim.load_subscribers(csv_file) == (ALICE, IPOE)
    toml_file = tmp_path / "subs.toml"
    toml_file.write_text('[[subscriber]]\nlogin = "bob"\npassword = "secret-b"\nmethod = "chap"\n')
    assert sim.load_subscribers(toml_file) == (BOB,)
    generated = sim.generate_subscribers("user%05d:pw%05d:1-3:chap,ipoe")
    assert [(s.login, s.password, s.method, s.kind) for s in generated] == [
        (f"user{n:05d}", f"pw{n:05d}", "chap", "ipoe") for n in (1, 2, 3)
    ]
    assert generated[0].mac == "02:00:00:00:00:01" and generated[0].circuit_id == "eth 0/0/2:100"
    bad = tmp_path / "bad.csv"
    bad.write_text("login,password,method\nx,y,md5\n")
    with pytest.raises(sim.SubscriberSpecError, match=r"bad.csv:2: method 'md5'"):
        sim.load_subscribers(bad)
    with pytest.raises(sim.SubscriberSpecError):
        sim.generate_subscribers("user%05d:1-3")


def test_cli_runs_for_its_duration_and_prints_a_summary(
    responder: Responder, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bras", "--auth-port", str(responder.port), "--acct-port", str(responder.port)]
    argv += ["--secret", SECRET.decode(), "--subscribers", "u%d:p%d:1-3", "--count", "2"]
    argv += ["--duration", "0.6", "--interim", "0.2", "--coa-port", "0", "--timeout", "0.3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "accepted 2," in out and "timeouts 0" in out
    assert len(responder.accounting(START)) == 2 and len(responder.accounting(STOP)) == 2
    assert main(["bras", "--generate", "u%d:p:1-2", "--count", "5", "--no-coa"]) == 1
