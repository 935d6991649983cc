"""The RFC 5176 client (``aaa.dynamic_authorization``) against real peers on 127.0.0.1.

Peers: the BRAS simulator (``simulators.bras``: it verifies our Request Authenticator and
Message-Authenticator with the strict codec, finds the session and answers ACK, NAK or nothing);
a pyrad NAS that decodes and verifies our packets with pyrad's own code and answers with pyrad;
and small UDP NASes on the reactor for what a correct peer never does (forged replies) or to
observe the wire (identifier spaces).  No RADIUS code is mocked.

Sessions come online the way a BRAS brings them: the simulator authenticates and sends
Accounting Start to ``AcceptingRadius`` (``simulators.radius_stub``), a minimal RADIUS server that
accepts every Access-Request and acknowledges accounting, and records the accounting so a
Disconnect's Stop can be checked.  (billingd would need a database; the CoA side does not.)

The reactor: each test gets a private asyncio reactor (as billingd runs, but not installed
globally, so it cannot clash with other test modules), runs its scenario in the test's own
thread with ``drive`` and is torn down with its file descriptors.  The simulator's blocking
calls (logins) happen before the reactor runs.  Every test checks that no thread, socket or
timer is left behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary
from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from aaa import codec
from aaa.codec import Code, RadiusPacket
from aaa.dictionary import load_dictionaries
from aaa.dynamic_authorization import (
    DEFAULT_PORT,
    MIKROTIK_PORT,
    Answer,
    ClientClosed,
    DynamicAuthClient,
    DynamicAuthResult,
    DynamicAuthTarget,
    render_attributes,
    session_identity,
)
from aaa.vendor_profiles import Authorization, SpeedProfile, renderer_for
from simulators.bras import BrasConfig, BrasSimulator, Outcome, Subscriber, TerminateCause
from simulators.radius_stub import AcceptingRadius

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
DICTIONARIES = REPO / "conf" / "dictionaries"
DICTIONARY = load_dictionaries(DICTIONARIES)
SECRET = b"coa-secret"
ALICE = Subscriber("alice", "pw-a", "pap")
BOB = Subscriber("bob", "pw-b", "chap")
ACCT_TERMINATE_CAUSE = 49


# --------------------------------------------------------------------------- harness


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """No thread and no file descriptor (socket, pipe, epoll) survives a test."""
    threads, fds = set(threading.enumerate()), _open_fds()
    yield
    deadline = time.monotonic() + 2.0
    while (left := set(threading.enumerate()) - threads) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"threads left behind: {sorted(t.name for t in left)}"
    assert _open_fds() - fds == set(), "file descriptors left open"


@pytest.fixture
def reactor() -> Iterator[AsyncioSelectorReactor]:
    """A private asyncio reactor on a new event loop; closed with its waker pipe afterwards."""
    loop = asyncio.new_event_loop()
    running = AsyncioSelectorReactor(loop)
    yield running
    waker = running.waker
    if waker is not None:
        running.removeReader(waker)
        waker.connectionLost(None)
    loop.close()


def drive(
    reactor: AsyncioSelectorReactor, scenario: Callable[[], Coroutine[Any, Any, T]], limit: float = 15.0
) -> T:
    """Run ``scenario`` on the reactor until it returns (at most ``limit`` s); its result.

    Afterwards no timer may be pending: the client must have cancelled what it scheduled.
    """
    outcome: list[Any] = []

    def finished(result: object) -> None:
        outcome.append(result)
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(scenario()).addBoth(finished))
    guard = reactor.callLater(limit, reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert outcome, f"the scenario did not finish within {limit} s"
    guard.cancel()
    own = "AsyncioSelectorReactor.stop"  # the reactor's own stop step is no leftover
    left = [c for c in reactor.getDelayedCalls() if c.active() and not c.func.__qualname__.startswith(own)]
    assert left == [], "timers left pending"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]  # type: ignore[no-any-return]


def sleep(reactor: AsyncioSelectorReactor, seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest.fixture
def radius() -> Iterator[AcceptingRadius]:
    server = AcceptingRadius(SECRET, name="test-radius")
    yield server
    server.close()


@pytest.fixture
def bras_with(radius: AcceptingRadius) -> Iterator[Callable[..., BrasSimulator]]:
    """Makes BRAS simulators (CoA listener on a free port unless told) with ALICE and BOB online."""
    made: list[BrasSimulator] = []

    def make(**overrides: Any) -> BrasSimulator:
        values: dict[str, Any] = dict(
            subscribers=(ALICE, BOB),
            secret=SECRET,
            auth_port=radius.port,
            acct_port=radius.port,
            coa_port=0,
            timeout=0.5,
            retries=2,
            workers=2,
        )
        values.update(overrides)
        bras = BrasSimulator(BrasConfig(**values))
        made.append(bras)
        for sub in (ALICE, BOB):
            assert bras.authenticate(sub) is Outcome.ACCEPTED
            bras.start(sub)
        return bras

    yield make
    for bras in made:
        bras.close()


def target_of(bras: BrasSimulator, secret: bytes = SECRET) -> DynamicAuthTarget:
    assert bras.coa_address is not None
    host, port = bras.coa_address
    return DynamicAuthTarget("bras-sim", host, port, secret)


def identity(bras: BrasSimulator, sub: Subscriber) -> tuple[codec.Attribute, ...]:
    session = bras.session(sub)
    assert session is not None
    return session_identity(
        DICTIONARY,
        acct_session_id=session.acct_session_id,
        user_name=sub.user_name,
        framed_ip=session.framed_ip,
        nas_ip="127.0.0.1",
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


MIKROTIK = renderer_for("mikrotik", DICTIONARY)
FAST = SpeedProfile("fast", down_kbps=50_000, up_kbps=10_000)


# --------------------------------------------------------------------------- against the BRAS simulator


def test_coa_to_a_live_session_is_acked_once_and_the_bras_applies_the_new_rate(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator]
) -> None:
    """A CoA-Request (identity + Mikrotik-Rate-Limit) is verified by the NAS, ACKed on the first send."""
    bras = bras_with()
    attrs = identity(bras, ALICE) + MIKROTIK.speed_attributes(FAST)

    async def scenario() -> DynamicAuthResult:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=2.0, retries=3)
        try:
            return await client.coa(target_of(bras), attrs)
        finally:
            await client.close()

    result = drive(reactor, scenario)
    session = bras.session(ALICE)
    assert session is not None
    assert (result.kind, result.answer, result.error_cause, result.sends) == ("coa", Answer.ACK, None, 1)
    assert 0 <= result.duration_s < 2.0
    assert result.request == (
        f'Acct-Session-Id="{session.acct_session_id}", User-Name="alice", '
        f'Framed-IP-Address={session.framed_ip}, NAS-IP-Address=127.0.0.1, Mikrotik-Rate-Limit="10M/50M"'
    )
    assert bras.last_coa(ALICE) == {"Mikrotik-Rate-Limit": "10M/50M"}
    assert bras.last_coa(BOB) == {}
    assert (bras.stats.coa_acked, bras.stats.coa_dropped) == (1, 0)


def test_a_nak_reports_the_nas_error_cause_and_an_unknown_session_503(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator]
) -> None:
    """CoA-NAK with the configured Error-Cause (405) leaves the session alone; unknown session: 503."""
    bras = bras_with(coa_answer="nak", nak_error_cause=405)
    unknown = session_identity(
        DICTIONARY, acct_session_id="no-such-session", user_name=None, framed_ip=None, nas_ip=None
    )

    async def scenario() -> tuple[DynamicAuthResult, DynamicAuthResult]:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=2.0)
        try:
            known = await client.coa(target_of(bras), identity(bras, ALICE) + MIKROTIK.speed_attributes(FAST))
            gone = await client.disconnect(target_of(bras), unknown)
            return known, gone
        finally:
            await client.close()

    known, gone = drive(reactor, scenario)
    assert (known.answer, known.error_cause, known.sends) == (Answer.NAK, 405, 1)
    assert (gone.kind, gone.answer, gone.error_cause) == ("disconnect", Answer.NAK, 503)
    assert gone.request == 'Acct-Session-Id="no-such-session"'
    assert bras.last_coa(ALICE) == {}  # NAKed: nothing applied
    assert bras.session(ALICE) is not None


def test_a_silent_nas_gets_exactly_one_plus_retries_sends_then_timeout(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator]
) -> None:
    """retries=2, timeout 0.1 s: three datagrams at 0, 0.1, 0.2 s, TIMEOUT at 0.3 s."""
    bras = bras_with(coa_answer="silent")

    async def scenario() -> DynamicAuthResult:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=0.1, retries=2)
        try:
            return await client.coa(target_of(bras), identity(bras, ALICE))
        finally:
            await client.close()

    result = drive(reactor, scenario)
    assert (result.answer, result.error_cause, result.sends) == (Answer.TIMEOUT, None, 3)
    assert 0.29 <= result.duration_s < 1.0
    assert wait_for(lambda: bras.stats.coa_silenced == 3)
    assert (bras.stats.coa_duplicates, bras.stats.coa_dropped, bras.stats.coa_acked) == (0, 0, 0)


def test_a_disconnect_ack_ends_the_session_with_an_admin_reset_stop(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator], radius: AcceptingRadius
) -> None:
    """Disconnect-ACK: the NAS dropped the session and accounted for it (Stop, Admin-Reset)."""
    bras = bras_with()
    attrs = identity(bras, BOB)

    async def scenario() -> DynamicAuthResult:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=2.0)
        try:
            return await client.disconnect(target_of(bras), attrs)
        finally:
            await client.close()

    result = drive(reactor, scenario)
    assert (result.kind, result.answer, result.error_cause, result.sends) == (
        "disconnect",
        Answer.ACK,
        None,
        1,
    )
    assert bras.session(BOB) is None and bras.session(ALICE) is not None
    assert wait_for(lambda: len(radius.stops()) == 1)
    (stop,) = radius.stops()
    assert stop.get(1) == b"bob"
    assert int.from_bytes(stop.get(ACCT_TERMINATE_CAUSE) or b"", "big") == TerminateCause.ADMIN_RESET


def test_a_wrong_secret_gets_no_answer_from_the_nas_and_ends_in_timeout(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator]
) -> None:
    """Our authenticators depend on the secret: a NAS with another one drops the request."""
    bras = bras_with()

    async def scenario() -> DynamicAuthResult:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=0.1, retries=1)
        try:
            return await client.disconnect(target_of(bras, b"not-the-secret"), identity(bras, ALICE))
        finally:
            await client.close()

    result = drive(reactor, scenario)
    assert (result.answer, result.sends) == (Answer.TIMEOUT, 2)
    assert wait_for(lambda: bras.stats.coa_dropped == 2)
    assert bras.session(ALICE) is not None


def test_more_than_256_concurrent_requests_to_one_nas_are_all_answered(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator]
) -> None:
    """600 CoA-Requests in flight at once to one NAS: three sockets' identifier spaces, 600 ACKs."""
    bras = bras_with()
    attrs = identity(bras, ALICE) + MIKROTIK.speed_attributes(FAST)

    async def scenario() -> list[DynamicAuthResult]:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=1.0, retries=3)
        try:
            pending = [client.coa(target_of(bras), attrs) for _ in range(600)]
            return [await d for d in pending]
        finally:
            await client.close()

    results = drive(reactor, scenario, limit=30.0)
    assert [r.answer for r in results] == [Answer.ACK] * 600
    assert bras.stats.coa_acked == 600


def test_mikrotik_style_target_on_port_1700_gets_the_walled_garden_profile(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator]
) -> None:
    """A NAS listening on 1700 (RouterOS's default) applies the negative-balance rate and address list."""
    try:
        bras = bras_with(coa_port=MIKROTIK_PORT)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        pytest.skip("UDP 127.0.0.1:1700 is in use on this machine")
    assert bras.coa_address == ("127.0.0.1", MIKROTIK_PORT)
    walled = Authorization(SpeedProfile("negative-balance", 512, 512), address_list="negative-balance")
    attrs = identity(bras, ALICE) + MIKROTIK.render(walled)
    target = DynamicAuthTarget("mikrotik-1", "127.0.0.1", MIKROTIK_PORT, SECRET)

    async def scenario() -> DynamicAuthResult:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=2.0)
        try:
            return await client.coa(target, attrs)
        finally:
            await client.close()

    result = drive(reactor, scenario)
    assert (result.answer, result.sends) == (Answer.ACK, 1)
    assert bras.last_coa(ALICE) == {
        "Mikrotik-Rate-Limit": "512k/512k",
        "Mikrotik-Address-List": "negative-balance",
    }
    assert DEFAULT_PORT == 3799


def test_close_ends_requests_in_flight_as_timeout_and_refuses_new_ones(
    reactor: AsyncioSelectorReactor, bras_with: Callable[..., BrasSimulator]
) -> None:
    """close(): a request in flight fires TIMEOUT (outcome unknown); timers, sockets go; new calls fail."""
    bras = bras_with(coa_answer="silent")

    async def scenario() -> tuple[DynamicAuthResult, Failure]:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=5.0, retries=3)
        in_flight = client.coa(target_of(bras), identity(bras, ALICE))
        await sleep(reactor, 0.05)
        await client.close()
        assert in_flight.called
        result = await in_flight
        late: list[Failure] = []
        client.coa(target_of(bras), identity(bras, ALICE)).addErrback(late.append)
        await client.close()  # twice: harmless
        return result, late[0]

    result, late = drive(reactor, scenario)
    assert (result.answer, result.sends) == (Answer.TIMEOUT, 1)
    assert result.duration_s < 1.0
    assert late.check(ClientClosed)


# --------------------------------------------------------------------------- against other peers


class PyradNas(DatagramProtocol):
    """A NAS written with pyrad: decodes our requests, verifies both authenticators, answers with pyrad."""

    def __init__(self, reply_code: int, error_cause: str | None = None) -> None:
        self.dictionary = PyradDictionary(str(DICTIONARIES / "dictionary"))
        self.reply_code = reply_code
        self.error_cause = error_cause
        self.received: list[pyrad_packet.CoAPacket] = []
        self.checks: list[tuple[bool, bool]] = []

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        req = pyrad_packet.CoAPacket(secret=SECRET, dict=self.dictionary, packet=datagram)
        self.received.append(req)
        self.checks.append((req.VerifyCoARequest(), req.verify_message_authenticator()))
        reply = req.CreateReply()
        reply.code = self.reply_code
        if self.error_cause is not None:
            reply["Error-Cause"] = self.error_cause
        reply.add_message_authenticator()
        self.transport.write(reply.ReplyPacket(), addr)  # type: ignore[union-attr]


def test_pyrad_verifies_our_coa_request_and_we_verify_its_nak(reactor: AsyncioSelectorReactor) -> None:
    """Independent codec both ways: pyrad checks our authenticators and attributes; we check its reply."""
    nas = PyradNas(pyrad_packet.CoANAK, "Unsupported-Service")
    port = reactor.listenUDP(0, nas, interface="127.0.0.1")
    target = DynamicAuthTarget("pyrad", "127.0.0.1", port.getHost().port, SECRET)
    attrs = session_identity(
        DICTIONARY,
        acct_session_id="0001000000AB",
        user_name="alice",
        framed_ip=IPv4Address("100.64.0.7"),
        nas_ip="127.0.0.1",
    )
    attrs += MIKROTIK.speed_attributes(FAST)

    async def scenario() -> DynamicAuthResult:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=2.0)
        try:
            return await client.coa(target, attrs)
        finally:
            await client.close()
            await port.stopListening()

    result = drive(reactor, scenario)
    assert (result.answer, result.error_cause, result.sends) == (Answer.NAK, 405, 1)
    (req,) = nas.received
    assert nas.checks == [(True, True)]  # Request Authenticator (RFC 5176 §2.3), Message-Authenticator
    assert req.code == pyrad_packet.CoARequest
    assert list(req.raw_packet[20:22]) == [80, 18]  # Message-Authenticator first
    assert req["Acct-Session-Id"] == ["0001000000AB"] and req["User-Name"] == ["alice"]
    assert req["Framed-IP-Address"] == ["100.64.0.7"] and req["NAS-IP-Address"] == ["127.0.0.1"]
    assert req["Mikrotik-Rate-Limit"] == ["10M/50M"]


class ForgingNas(DatagramProtocol):
    """Answers the first send with everything a client must ignore, the retransmission correctly."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append(datagram)
        req = codec.decode(datagram)
        assert codec.verify_request_authenticator(req, SECRET)
        write = self.transport.write  # type: ignore[union-attr]
        if len(self.datagrams) > 1:
            write(codec.encode_reply(req, Code.COA_ACK, [], SECRET), addr)
            return
        write(b"\x2c\x00\x00", addr)  # malformed
        write(codec.encode_reply(req, Code.COA_NAK, [(101, (404).to_bytes(4, "big"))], b"wrong-secret"), addr)
        other_id = dataclasses.replace(req, identifier=(req.identifier + 1) % 256)
        write(codec.encode_reply(other_id, Code.COA_ACK, [], SECRET), addr)
        as_disconnect = dataclasses.replace(req, code=Code.DISCONNECT_REQUEST)
        write(codec.encode_reply(as_disconnect, Code.DISCONNECT_ACK, [], SECRET), addr)
        write(_with_bad_message_authenticator(codec.encode_reply(req, Code.COA_ACK, [], SECRET), req), addr)


def _with_bad_message_authenticator(reply: bytes, req: RadiusPacket) -> bytes:
    """Flip a bit of the (first-attribute) Message-Authenticator, keep the Response Authenticator valid."""
    assert reply[20] == codec.MESSAGE_AUTHENTICATOR
    body = reply[20:22] + bytes([reply[22] ^ 1]) + reply[23:]
    return reply[:4] + hashlib.md5(reply[:4] + req.authenticator + body + SECRET).digest() + body


def test_forged_and_mismatched_replies_are_ignored_and_the_request_keeps_waiting(
    reactor: AsyncioSelectorReactor,
) -> None:
    """Malformed, wrong secret, wrong identifier, wrong code, bad Message-Authenticator: all dropped."""
    nas = ForgingNas()
    port = reactor.listenUDP(0, nas, interface="127.0.0.1")
    target = DynamicAuthTarget("forger", "127.0.0.1", port.getHost().port, SECRET)
    events: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_namespace", "").startswith("aaa.dynamic_authorization"):
            events.append(formatEvent(event))

    async def scenario() -> DynamicAuthResult:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=0.2, retries=2)
        try:
            return await client.coa(
                target,
                session_identity(
                    DICTIONARY, acct_session_id="S1", user_name=None, framed_ip=None, nas_ip=None
                ),
            )
        finally:
            await client.close()
            await port.stopListening()

    globalLogPublisher.addObserver(observe)
    try:
        result = drive(reactor, scenario)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert (result.answer, result.error_cause, result.sends) == (Answer.ACK, None, 2)
    assert len(nas.datagrams) == 2 and nas.datagrams[0] == nas.datagrams[1]  # identical retransmission
    drops = [e for e in events if e.startswith("dropping")]
    assert len(drops) == 5, drops
    for reason in (
        "malformed",
        "Response Authenticator",
        "no request in flight",
        "does not answer",
        "Message-Authenticator",
    ):
        assert any(reason in e for e in drops), (reason, drops)


class CollectingNas(DatagramProtocol):
    """Holds every request until ``expected`` different ones arrived, then ACKs them all (one port).

    Retransmissions (a datagram the kernel dropped from a full queue) are answered once all are in.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.held: dict[tuple[str, int, int], tuple[RadiusPacket, tuple[str, int]]] = {}

    def startProtocol(self) -> None:
        handle = self.transport.getHandle()  # type: ignore[union-attr]
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        req = codec.decode(datagram)
        assert codec.verify_request_authenticator(req, SECRET)
        assert codec.verify_message_authenticator(req, SECRET)
        key = (addr[0], addr[1], req.identifier)
        assert self.held.get(key, (req,))[0] == req  # a (port, Identifier) in flight is never reused
        self.held[key] = (req, addr)
        if len(self.held) >= self.expected:
            for held, peer in self.held.values():
                reply = codec.encode_reply(held, Code.COA_ACK, [], SECRET)
                self.transport.write(reply, peer)  # type: ignore[union-attr]


def test_past_256_in_flight_a_new_socket_opens_and_identifiers_never_repeat_per_socket(
    reactor: AsyncioSelectorReactor,
) -> None:
    """600 requests held by the NAS: 3 source ports, each (port, Identifier) pair used once."""
    nas = CollectingNas(600)
    port = reactor.listenUDP(0, nas, interface="127.0.0.1")
    target = DynamicAuthTarget("collector", "127.0.0.1", port.getHost().port, SECRET)

    async def scenario() -> list[DynamicAuthResult]:
        client = DynamicAuthClient(reactor, DICTIONARY, timeout_s=1.0, retries=3)
        try:
            pending = [
                client.coa(
                    target,
                    session_identity(
                        DICTIONARY, acct_session_id=f"S{n}", user_name=None, framed_ip=None, nas_ip=None
                    ),
                )
                for n in range(600)
            ]
            return [await d for d in pending]
        finally:
            await client.close()
            await port.stopListening()

    results = drive(reactor, scenario)
    assert [r.answer for r in results] == [Answer.ACK] * 600
    per_port = Counter(port for _, port, _ in nas.held)
    assert sorted(per_port.values()) == [88, 256, 256]


# --------------------------------------------------------------------------- pure parts


def test_session_identity_uses_the_dictionary_in_order_and_skips_none() -> None:
    """Acct-Session-Id, User-Name, Framed-IP-Address, NAS-IP-Address; IPv6 ones by family; None skipped."""
    assert session_identity(
        DICTIONARY,
        acct_session_id="A1",
        user_name="alice",
        framed_ip="100.64.0.9",
        nas_ip=IPv4Address("10.0.0.1"),
    ) == (
        (44, b"A1"),
        (1, b"alice"),
        (8, bytes([100, 64, 0, 9])),
        (4, bytes([10, 0, 0, 1])),
    )
    v6 = session_identity(
        DICTIONARY, acct_session_id=None, user_name=None, framed_ip="2001:db8::5", nas_ip="2001:db8::1"
    )
    assert [a[0] for a in v6] == [DICTIONARY["Framed-IPv6-Address"].code, DICTIONARY["NAS-IPv6-Address"].code]
    with pytest.raises(ValueError, match="cannot find the session"):
        session_identity(DICTIONARY, acct_session_id=None, user_name=None, framed_ip=None, nas_ip="10.0.0.1")


def test_the_request_text_names_attributes_and_values_and_hides_secrets() -> None:
    """Value names, octets in hex, unknown attributes by number, User-Password masked."""
    text = render_attributes(
        DICTIONARY,
        [(6, (2).to_bytes(4, "big")), (25, b"\x01\xff"), (2, b"x" * 16), (250, b"\x01"), (9999, 1, b"ab")],
    )
    assert (
        text == "Service-Type=Framed-User, Class=0x01ff, User-Password=<hidden>, Attr-250=0x01, "
        "Vendor-9999-Attr-1=0x6162"
    )


def test_bad_requests_and_settings_fail_early(reactor: AsyncioSelectorReactor) -> None:
    """A Message-Authenticator passed in, an oversize value, a target of another family, bad settings."""
    with pytest.raises(ValueError, match="not an IP address"):
        DynamicAuthTarget("x", "nas.example", 3799, SECRET)
    with pytest.raises(ValueError, match="port"):
        DynamicAuthTarget("x", "127.0.0.1", 0, SECRET)
    with pytest.raises(ValueError, match="secret"):
        DynamicAuthTarget("x", "127.0.0.1", 3799, b"")
    with pytest.raises(ValueError, match="retries"):
        DynamicAuthClient(reactor, DICTIONARY, retries=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        DynamicAuthClient(reactor, DICTIONARY, timeout_s=0)
    target = DynamicAuthTarget("x", "127.0.0.1", 9, SECRET)

    async def scenario() -> list[Failure]:
        client = DynamicAuthClient(reactor, DICTIONARY)
        failures: list[Failure] = []
        for attrs in ([(codec.MESSAGE_AUTHENTICATOR, bytes(16))], [(1, b"x" * 254)]):
            client.coa(target, attrs).addErrback(failures.append)
        client.disconnect(DynamicAuthTarget("v6", "::1", 3799, SECRET), [(1, b"a")]).addErrback(
            failures.append
        )
        await client.close()
        return failures

    failures = drive(reactor, scenario)
    assert [f.type for f in failures] == [codec.EncodeError, codec.EncodeError, ValueError]
