"""The reply table and the transport, without sockets: every situation gets the reply it should."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from aaa import codec
from aaa.codec import Code
from aaa.dictionary import load_dictionaries
from aaa.duplicates import ReplyCache
from aaa.handlers import REPLIES, RadiusHandler, Situation
from aaa.metrics import AaaMetrics
from aaa.protocol import RadiusProtocol
from aaa.settings import AaaSettings, NasClient

DICTIONARIES = Path(__file__).resolve().parents[2] / "conf" / "dictionaries"
RADIUS = load_dictionaries(DICTIONARIES)
SECRET = b"testing123"
CLIENT = NasClient("lo", ip_network("127.0.0.1/32"), SECRET, vendor="mikrotik")
SETTINGS = AaaSettings(nas=(CLIENT,))
USER_NAME, USER_PASSWORD, ACCT_STATUS_TYPE, ACCT_SESSION_ID = 1, 2, 40, 44


class Nobody:
    def by_login(self, login: str) -> None:
        return None

    def by_mac(self, mac: str) -> None:
        return None

    def by_port(self, port: object) -> None:
        return None


def _handler(kind: str, accounting: Any = None) -> RadiusHandler:
    return RadiusHandler(kind, SETTINGS, RADIUS, Nobody, accounting, AaaMetrics())


def _access(message_authenticator: bool | None = True, secret: bytes = SECRET) -> codec.RadiusPacket:
    authenticator = codec.new_authenticator()
    hidden = codec.encrypt_user_password(b"pw", secret, authenticator)
    datagram = codec.encode_request(
        Code.ACCESS_REQUEST, 1, [(USER_NAME, b"x"), (USER_PASSWORD, hidden)], secret,
        authenticator=authenticator, message_authenticator=message_authenticator,
    )  # fmt: skip
    return codec.decode(datagram)


def _accounting(secret: bytes = SECRET) -> codec.RadiusPacket:
    attributes = [(USER_NAME, b"x"), (ACCT_STATUS_TYPE, (1).to_bytes(4, "big")), (ACCT_SESSION_ID, b"s")]
    return codec.decode(codec.encode_request(Code.ACCOUNTING_REQUEST, 2, attributes, secret))


def _result(reply: Any) -> bytes | None:
    if isinstance(reply, Deferred):
        out: list[bytes | None] = []
        reply.addCallback(out.append)
        return out[0]
    return reply


def test_unknown_subscriber_is_rejected_and_signed() -> None:
    reply = _result(_handler("auth").handle(_access(), CLIENT, ("127.0.0.1", 5000)))
    assert reply is not None
    decoded = codec.decode(reply)
    assert decoded.code == Code.ACCESS_REJECT
    assert decoded.attributes[0][0] == codec.MESSAGE_AUTHENTICATOR  # placed first (BlastRADIUS)


def test_access_request_without_message_authenticator_is_dropped_when_required() -> None:
    assert _handler("auth").handle(_access(message_authenticator=False), CLIENT, ("127.0.0.1", 1)) is None


def test_access_request_with_a_forged_message_authenticator_is_dropped() -> None:
    assert _handler("auth").handle(_access(secret=b"wrong"), CLIENT, ("127.0.0.1", 1)) is None


@pytest.mark.parametrize(("stored", "answered"), [(True, True), (False, False)])
def test_accounting_is_answered_only_once_stored(stored: bool, answered: bool) -> None:
    sink = (lambda *_: succeed(None)) if stored else (lambda *_: fail(OSError("db and journal down")))
    reply = _result(_handler("acct", sink).handle(_accounting(), CLIENT, ("127.0.0.1", 1)))
    assert (reply is not None) is answered
    if reply is not None:
        assert codec.decode(reply).code == Code.ACCOUNTING_RESPONSE


def test_accounting_with_a_bad_authenticator_is_dropped_before_storing() -> None:
    stored: list[object] = []
    handler = _handler("acct", lambda *a: stored.append(a) or succeed(None))
    assert handler.handle(_accounting(secret=b"wrong"), CLIENT, ("127.0.0.1", 1)) is None
    assert stored == []


@pytest.mark.parametrize(("kind", "code"), [("auth", Code.ACCESS_ACCEPT), ("acct", Code.ACCOUNTING_RESPONSE)])
def test_status_server_is_answered_per_port(kind: str, code: Code) -> None:
    packet = codec.decode(codec.encode_request(Code.STATUS_SERVER, 3, [], SECRET, message_authenticator=True))
    reply = _handler(kind, lambda *_: succeed(None)).handle(packet, CLIENT, ("127.0.0.1", 1))
    assert reply is not None and codec.decode(reply).code == code


def test_requests_a_port_does_not_serve_get_no_reply() -> None:
    assert _handler("auth").handle(_accounting(), CLIENT, ("127.0.0.1", 1)) is None


def test_the_reply_table_never_answers_an_unverified_request() -> None:
    assert all(REPLIES[key] is None for key in REPLIES if key[1] is Situation.BAD_AUTHENTICATOR)


class Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def _protocol(handler: Any) -> tuple[RadiusProtocol, Transport, AaaMetrics]:
    metrics = AaaMetrics()
    protocol = RadiusProtocol("auth", SETTINGS.client_for, handler, ReplyCache(Clock()), metrics)
    transport = Transport()
    protocol.transport = transport  # type: ignore[assignment]
    return protocol, transport, metrics


def _drops(metrics: AaaMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("billingd_radius_drops_total", {"reason": reason}) or 0.0


def test_transport_drops_unknown_sources_and_malformed_packets_without_calling_the_handler() -> None:
    calls: list[object] = []

    class Recorder:
        def handle(self, *args: object) -> bytes:
            calls.append(args)
            return b"reply"

    protocol, transport, metrics = _protocol(Recorder())
    protocol.datagramReceived(_access().raw, ("192.0.2.1", 1812))
    protocol.datagramReceived(b"\x01\x02\x00\x05", ("127.0.0.1", 1812))
    assert calls == [] and transport.sent == []
    assert _drops(metrics, "unknown_client") == 1
    assert sum(v for k, v in _all_drops(metrics).items() if k.startswith("malformed")) == 1


def _all_drops(metrics: AaaMetrics) -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "billingd_radius_drops_total"
    }


def test_transport_answers_a_retransmit_from_the_cache_and_survives_a_failing_handler() -> None:
    calls: list[int] = []

    class Counting:
        def handle(self, packet: codec.RadiusPacket, *args: object) -> bytes:
            calls.append(packet.identifier)
            if packet.identifier == 99:
                raise RuntimeError("bug")
            return b"reply-" + bytes([packet.identifier])

    protocol, transport, _ = _protocol(Counting())
    datagram = _access().raw
    protocol.datagramReceived(datagram, ("127.0.0.1", 4000))
    protocol.datagramReceived(datagram, ("127.0.0.1", 4000))
    assert calls == [1] and [d for d, _ in transport.sent] == [b"reply-\x01", b"reply-\x01"]
    broken = bytearray(_access().raw)
    broken[1] = 99
    protocol.datagramReceived(bytes(broken), ("127.0.0.1", 4001))  # raises inside: dropped, listener lives
    protocol.datagramReceived(datagram, ("127.0.0.1", 4002))
    assert calls == [1, 99, 1]
