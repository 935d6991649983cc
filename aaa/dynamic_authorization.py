"""RADIUS dynamic authorization client (RFC 5176): CoA-Request and Disconnect-Request to a NAS.

What: when billing decides (speed change, negative-balance profile, suspension), the provisioning
worker asks the NAS holding the session to change it (CoA-Request) or end it (Disconnect-Request)
and records what came back: ACK, NAK with its Error-Cause, or nothing (TIMEOUT: the outcome is
unknown, the reconciler resolves it).  Whether a CoA-NAK falls back to a Disconnect is the
worker's decision, taken per profile; this module only sends one request and reports its fate.

Why this shape:

- Non-blocking, on the reactor (billingd runs Twisted's asyncio reactor; the asyncio-native
  worker awaits our Deferreds with ``Deferred.asFuture``).  Sockets are Twisted
  ``DatagramProtocol`` listeners, retransmits are ``reactor.callLater`` timers; nothing waits.
- Packets go through the project's strict codec (``aaa.codec``): the Request Authenticator is
  computed as for accounting (RFC 5176 §2.3: MD5 over the packet with 16 zero octets in the
  Authenticator field, plus the secret), and every request carries a Message-Authenticator
  (RFC 5176 §3.3; the codec signs it with the zero authenticator, as FreeRADIUS and pyrad do).
- A retransmission is the identical datagram (same Identifier, same authenticators), so a NAS
  that already acted answers it from its duplicate cache instead of acting twice (RFC 5080
  §2.2.1; we add no Acct-Delay-Time-like attribute that would change it).  ``retries``
  retransmissions follow the first send, each ``timeout_s`` after the previous one; one
  ``timeout_s`` after the last send the answer is TIMEOUT.  So a silent NAS sees exactly
  ``1 + retries`` datagrams and the Deferred fires after ``(1 + retries) * timeout_s``.
- A reply is accepted only if it comes from the target's address and port, carries the
  Identifier of a request in flight on that socket, has a code answering that request, a valid
  Response Authenticator (MD5 with the request's authenticator and the shared secret) and, if
  present, a valid Message-Authenticator.  Anything else (a forgery, a wrong secret, a stray
  late reply) is dropped with a log line and the request keeps waiting.
- The Identifier is one octet, unique per (source address and port, destination address and
  port) for requests in flight.  So the client holds several sockets ("channels"), each its
  own identifier space of 256 per NAS: a request goes to the first channel with a free
  Identifier for its NAS, and a new channel (socket) is opened when all are full.  Channels
  stay open for reuse until ``close()``.  Identifiers rotate from a random start, so a late
  reply to a timed-out request does not meet a new request with its Identifier at once.
- ``close()`` ends requests still in flight with TIMEOUT (they may have reached the NAS: the
  outcome is unknown, exactly what TIMEOUT means to the worker) instead of an errback; it
  cancels every timer and closes every socket.  Requests after ``close()`` fail with
  ``ClientClosed``.  Requests that cannot be encoded (an attribute too long, a
  Message-Authenticator passed in) fail with the codec's ``EncodeError``.

Identity attributes (RFC 5176 §3): ``session_identity`` builds Acct-Session-Id, User-Name,
Framed-IP-Address and NAS-IP-Address (IPv6 addresses as Framed-IPv6-Address and
NAS-IPv6-Address) from the dictionary, skipping what is None; vendor speed attributes come
from ``aaa.vendor_profiles`` renderers.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal, Protocol

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError, MessageLengthError
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from aaa import codec
from aaa.codec import Attribute, Code, MalformedPacket, RadiusPacket
from aaa.dictionary import AttributeDef, RadiusDictionary

__all__ = [
    "DEFAULT_PORT",
    "MIKROTIK_PORT",
    "Answer",
    "ClientClosed",
    "DynamicAuthClient",
    "DynamicAuthError",
    "DynamicAuthResult",
    "DynamicAuthTarget",
    "render_attributes",
    "session_identity",
]

DEFAULT_PORT = 3799
"""The CoA/Disconnect port of RFC 5176 §3."""
MIKROTIK_PORT = 1700
"""MikroTik RouterOS listens for CoA/Disconnect on 1700 by default (``/radius incoming``)."""

_IDENTIFIERS = 256
_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024  # a burst of replies to thousands of requests must not drop
_ERROR_CAUSE = 101  # RFC 5176 §3.6; the dictionary's code is used when it has the attribute

_REQUEST_CODES = {"coa": Code.COA_REQUEST, "disconnect": Code.DISCONNECT_REQUEST}
_ACKS = {Code.COA_REQUEST: Code.COA_ACK, Code.DISCONNECT_REQUEST: Code.DISCONNECT_ACK}
_NAKS = {Code.COA_REQUEST: Code.COA_NAK, Code.DISCONNECT_REQUEST: Code.DISCONNECT_NAK}


class Answer(StrEnum):
    """How the NAS answered: CoA-/Disconnect-ACK, -NAK, or not at all after every retransmit."""

    ACK = "ack"
    NAK = "nak"
    TIMEOUT = "timeout"


class DynamicAuthError(Exception):
    """Base of this module's own errors."""


class ClientClosed(DynamicAuthError):
    """A request was made after ``DynamicAuthClient.close()``."""


@dataclass(frozen=True)
class DynamicAuthTarget:
    """One NAS's CoA/Disconnect listener.

    ``address`` is an IP address literal (a NAS is configured by address, and a reply is
    matched by its source address); ``port`` is ``DEFAULT_PORT`` (3799) for most NASes,
    ``MIKROTIK_PORT`` (1700) for MikroTik.  ``nas`` names the NAS in logs.
    """

    nas: str
    address: str
    port: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        try:
            ip_address(self.address)
        except ValueError:
            raise ValueError(f"NAS {self.nas!r}: address {self.address!r} is not an IP address") from None
        if not 1 <= self.port <= 65535:
            raise ValueError(f"NAS {self.nas!r}: port {self.port} is not 1-65535")
        if not isinstance(self.secret, bytes) or not self.secret:
            raise ValueError(f"NAS {self.nas!r}: the shared secret must be non-empty bytes")


@dataclass(frozen=True)
class DynamicAuthResult:
    """What became of one request: for the provisioning attempt record.

    ``error_cause`` is the reply's Error-Cause (RFC 5176 §3.6; NAKs carry one, a
    Disconnect-ACK may carry 201), None when absent or on TIMEOUT.  ``sends`` counts the
    datagrams sent (1 + retransmissions); ``duration_s`` runs from the first send to the
    answer (or to giving up).  ``request`` is what was sent, readable: ``Name=value, ...``
    with strings quoted, the Message-Authenticator left out and hidden attributes masked.
    """

    kind: Literal["coa", "disconnect"]
    answer: Answer
    error_cause: int | None
    sends: int
    duration_s: float
    request: str


def session_identity(
    dictionary: RadiusDictionary,
    *,
    acct_session_id: str | None,
    user_name: str | None,
    framed_ip: str | IPv4Address | IPv6Address | None,
    nas_ip: str | IPv4Address | IPv6Address | None,
) -> tuple[Attribute, ...]:
    """The attributes that identify a session to its NAS (RFC 5176 §3), skipping None.

    In this order: Acct-Session-Id, User-Name, Framed-IP-Address (Framed-IPv6-Address for an
    IPv6 address), NAS-IP-Address (NAS-IPv6-Address).  Codes and encodings come from the
    dictionary.  Raises ``ValueError`` if none of the session attributes (session id, user
    name, framed address) is given: a NAS address alone does not name a session.
    """
    if acct_session_id is None and user_name is None and framed_ip is None:
        raise ValueError("no Acct-Session-Id, User-Name or framed address: the NAS cannot find the session")
    out: list[Attribute] = []
    if acct_session_id is not None:
        out.append(_encode(dictionary, "Acct-Session-Id", acct_session_id))
    if user_name is not None:
        out.append(_encode(dictionary, "User-Name", user_name))
    if framed_ip is not None:
        address = ip_address(framed_ip)
        name = "Framed-IP-Address" if address.version == 4 else "Framed-IPv6-Address"
        out.append(_encode(dictionary, name, address))
    if nas_ip is not None:
        address = ip_address(nas_ip)
        name = "NAS-IP-Address" if address.version == 4 else "NAS-IPv6-Address"
        out.append(_encode(dictionary, name, address))
    return tuple(out)


def _encode(dictionary: RadiusDictionary, name: str, value: codec.Value) -> Attribute:
    definition = dictionary.attribute(name)
    raw = codec.encode_value(definition.data_type, value)
    if definition.is_vendor_specific:
        return (definition.vendor_id, definition.code, raw)
    return (definition.code, raw)


def render_attributes(dictionary: RadiusDictionary, attributes: Sequence[Attribute]) -> str:
    """``Name=value, ...`` for a log or an attempt record.

    Names and value names from the dictionary (unknown ones as ``Attr-N`` /
    ``Vendor-V-Attr-N``), strings quoted, octets as ``0x...``, a tag as ``Name:tag``;
    attributes the dictionary marks encrypted are shown as ``<hidden>``.
    """
    parts = []
    for attr in attributes:
        key = attr[0] if len(attr) == 2 else (attr[0], attr[1])
        raw: bytes = attr[-1]  # type: ignore[assignment]
        definition = dictionary.lookup(key)
        if definition is None:
            name = f"Attr-{key}" if isinstance(key, int) else f"Vendor-{key[0]}-Attr-{key[1]}"
            parts.append(f"{name}=0x{raw.hex()}")
        elif key == codec.MESSAGE_AUTHENTICATOR:
            continue
        else:
            parts.append(_render_one(definition, raw))
    return ", ".join(parts)


def _render_one(definition: AttributeDef, raw: bytes) -> str:
    name = definition.name
    if definition.encrypt:
        return f"{name}=<hidden>"
    try:
        if definition.has_tag:
            tag, value = codec.decode_tagged(definition.data_type, raw)
            if tag:
                name = f"{name}:{tag}"
        else:
            value = codec.decode_value(definition.data_type, raw)
    except MalformedPacket:
        return f"{name}=0x{raw.hex()}"
    if isinstance(value, int) and value in definition.value_names:
        return f"{name}={definition.value_names[value]}"
    if isinstance(value, bytes):
        return f"{name}=0x{value.hex()}"
    if isinstance(value, datetime):
        return f"{name}={value.isoformat()}"
    if isinstance(value, str) and definition.data_type == "string":
        return f"{name}={json.dumps(value, ensure_ascii=False)}"
    return f"{name}={value}"


# --------------------------------------------------------------------------- the client


class _Reactor(Protocol):
    """What the client needs of a reactor (``IReactorTime`` + ``IReactorUDP``)."""

    def callLater(self, delay: float, callable: object, *args: object) -> IDelayedCall: ...

    def seconds(self) -> float: ...

    def listenUDP(
        self, port: int, protocol: DatagramProtocol, interface: str = "", maxPacketSize: int = 8192
    ) -> IListeningPort: ...


Destination = tuple[str, int]


@dataclass(eq=False)
class _Exchange:
    """One request in flight."""

    kind: Literal["coa", "disconnect"]
    target: DynamicAuthTarget
    destination: Destination
    channel: _Channel
    request: RadiusPacket
    datagram: bytes
    text: str
    deferred: Deferred[DynamicAuthResult]
    started: float
    sends: int = 0
    timer: IDelayedCall | None = None


class _Channel(DatagramProtocol):
    """One UDP socket and its identifier spaces: 256 Identifiers per destination."""

    def __init__(self, client: DynamicAuthClient) -> None:
        self._client = client
        self.port: IListeningPort | None = None
        self.pending: dict[tuple[str, int, int], _Exchange] = {}
        self._in_use: dict[Destination, int] = {}
        self._next: dict[Destination, int] = {}

    def startProtocol(self) -> None:
        handle = self.transport.getHandle()  # type: ignore[union-attr]
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)

    def allocate(self, destination: Destination) -> int | None:
        """A free Identifier towards ``destination`` (now reserved), or None if all 256 are taken."""
        if self._in_use.get(destination, 0) >= _IDENTIFIERS:
            return None
        start = self._next.get(destination)
        if start is None:
            start = secrets.randbelow(_IDENTIFIERS)
        host, port = destination
        for step in range(_IDENTIFIERS):
            identifier = (start + step) % _IDENTIFIERS
            if (host, port, identifier) not in self.pending:
                self._next[destination] = (identifier + 1) % _IDENTIFIERS
                self._in_use[destination] = self._in_use.get(destination, 0) + 1
                return identifier
        raise AssertionError("identifier count out of step with the pending table")  # pragma: no cover

    def hold(self, identifier: int, exchange: _Exchange) -> None:
        host, port = exchange.destination
        self.pending[(host, port, identifier)] = exchange

    def release(self, destination: Destination, identifier: int) -> None:
        host, port = destination
        self.pending.pop((host, port, identifier), None)
        left = self._in_use.get(destination, 0) - 1
        if left > 0:
            self._in_use[destination] = left
        else:
            self._in_use.pop(destination, None)

    def send(self, datagram: bytes, destination: Destination) -> None:
        self.transport.write(datagram, destination)  # type: ignore[union-attr]

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self._client._received(self, datagram, addr)


class DynamicAuthClient:
    """Sends CoA- and Disconnect-Requests and reports each one's ``DynamicAuthResult``.

    ``timeout_s``: seconds between sends and after the last one; ``retries``: retransmissions
    after the first send (0: send once); ``bind``: the source address of our sockets (a NAS
    accepts CoA only from the addresses configured on it), whose family the targets must share.
    One client serves any number of NASes and requests; call ``close()`` when done.
    """

    log = Logger()

    def __init__(
        self,
        reactor: _Reactor,
        dictionary: RadiusDictionary,
        *,
        timeout_s: float = 1.0,
        retries: int = 3,
        bind: str = "127.0.0.1",
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s {timeout_s}: must be > 0")
        if retries < 0:
            raise ValueError(f"retries {retries}: must be >= 0")
        self._family = ip_address(bind).version  # ValueError if not an address
        self._reactor = reactor
        self._dictionary = dictionary
        self._timeout_s = timeout_s
        self._retries = retries
        self._bind = bind
        self._channels: list[_Channel] = []
        self._closed = False
        error_cause = dictionary.find("Error-Cause")
        self._error_cause = error_cause.code if error_cause is not None else _ERROR_CAUSE

    def coa(self, target: DynamicAuthTarget, attributes: Sequence[Attribute]) -> Deferred[DynamicAuthResult]:
        """Send a CoA-Request (identity + the attributes to change); fires with the result."""
        return self._request("coa", target, attributes)

    def disconnect(
        self, target: DynamicAuthTarget, attributes: Sequence[Attribute]
    ) -> Deferred[DynamicAuthResult]:
        """Send a Disconnect-Request (identity attributes); fires with the result."""
        return self._request("disconnect", target, attributes)

    def close(self) -> Deferred[None]:
        """End requests in flight with TIMEOUT, cancel their timers, close every socket.

        Fires when the sockets are closed.  Calling it again is harmless.
        """
        if self._closed:
            return defer.succeed(None)
        self._closed = True
        channels, self._channels = self._channels, []
        for channel in channels:
            for exchange in list(channel.pending.values()):
                self._finish(exchange, Answer.TIMEOUT, None)
        stops = [defer.maybeDeferred(ch.port.stopListening) for ch in channels if ch.port is not None]
        done: Deferred[None] = defer.gatherResults(stops, consumeErrors=True).addCallback(lambda _: None)
        return done

    # ------------------------------------------------------------------ sending

    def _request(
        self, kind: Literal["coa", "disconnect"], target: DynamicAuthTarget, attributes: Sequence[Attribute]
    ) -> Deferred[DynamicAuthResult]:
        if self._closed:
            return defer.fail(ClientClosed(f"{kind} to {target.nas}: the client is closed"))
        address = ip_address(target.address)
        if address.version != self._family:
            return defer.fail(
                ValueError(
                    f"{kind} to {target.nas}: {target.address} is not of the family of bind {self._bind}"
                )
            )
        destination = (str(address), target.port)
        code = _REQUEST_CODES[kind]
        try:
            channel, identifier = self._allocate(destination)
        except CannotListenError as exc:
            return defer.fail(exc)
        try:
            datagram = codec.encode_request(
                code, identifier, attributes, target.secret, message_authenticator=True
            )
        except (codec.EncodeError, ValueError) as exc:
            channel.release(destination, identifier)
            return defer.fail(exc)
        exchange = _Exchange(
            kind=kind,
            target=target,
            destination=destination,
            channel=channel,
            request=codec.decode(datagram),
            datagram=datagram,
            text=render_attributes(self._dictionary, attributes),
            deferred=Deferred(),
            started=self._reactor.seconds(),
        )
        channel.hold(identifier, exchange)
        self._send(exchange)
        return exchange.deferred

    def _allocate(self, destination: Destination) -> tuple[_Channel, int]:
        for channel in self._channels:
            identifier = channel.allocate(destination)
            if identifier is not None:
                return channel, identifier
        channel = _Channel(self)
        channel.port = self._reactor.listenUDP(0, channel, interface=self._bind)
        self._channels.append(channel)
        if len(self._channels) > 1:
            self.log.info(
                "dynamic authorization: socket {count} opened ({in_flight} requests in flight to {nas})",
                count=len(self._channels),
                in_flight=_IDENTIFIERS * (len(self._channels) - 1),
                nas=f"{destination[0]}:{destination[1]}",
            )
        identifier = channel.allocate(destination)
        assert identifier is not None
        return channel, identifier

    def _send(self, exchange: _Exchange) -> None:
        exchange.sends += 1
        try:
            exchange.channel.send(exchange.datagram, exchange.destination)
        except (OSError, MessageLengthError) as exc:  # counts as a lost send: the timer retries
            self.log.warn("{kind} to {nas}: send failed: {error}", kind=exchange.kind,
                          nas=exchange.target.nas, error=exc)  # fmt: skip
        exchange.timer = self._reactor.callLater(self._timeout_s, self._expired, exchange)

    def _expired(self, exchange: _Exchange) -> None:
        exchange.timer = None
        if exchange.sends <= self._retries:
            self._send(exchange)
        else:
            self._finish(exchange, Answer.TIMEOUT, None)

    def _finish(self, exchange: _Exchange, answer: Answer, error_cause: int | None) -> None:
        if exchange.timer is not None and exchange.timer.active():
            exchange.timer.cancel()
        exchange.timer = None
        exchange.channel.release(exchange.destination, exchange.request.identifier)
        result = DynamicAuthResult(
            kind=exchange.kind,
            answer=answer,
            error_cause=error_cause,
            sends=exchange.sends,
            duration_s=self._reactor.seconds() - exchange.started,
            request=exchange.text,
        )
        exchange.deferred.callback(result)

    # ------------------------------------------------------------------ receiving

    def _received(self, channel: _Channel, datagram: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = codec.decode(datagram)
        except MalformedPacket as exc:
            self.log.warn("dropping a malformed reply from {source}: {reason}", source=addr[0], reason=exc)
            return
        exchange = channel.pending.get((addr[0], addr[1], reply.identifier))
        if exchange is None:
            self.log.warn("dropping a reply from {source}:{port}: no request in flight with identifier {id}",
                          source=addr[0], port=addr[1], id=reply.identifier)  # fmt: skip
            return
        request = exchange.request
        secret = exchange.target.secret
        if reply.code == _ACKS[request.code]:
            answer = Answer.ACK
        elif reply.code == _NAKS[request.code]:
            answer = Answer.NAK
        else:
            self.log.warn("dropping code {code} from {nas}: it does not answer a {kind} request",
                          code=reply.code, nas=exchange.target.nas, kind=exchange.kind)  # fmt: skip
            return
        if not codec.verify_response_authenticator(reply, request, secret):
            self.log.warn("dropping a reply from {nas}: bad Response Authenticator (wrong secret or forged)",
                          nas=exchange.target.nas)  # fmt: skip
            return
        if reply.has_message_authenticator and not codec.verify_message_authenticator(reply, secret, request):
            self.log.warn("dropping a reply from {nas}: bad Message-Authenticator", nas=exchange.target.nas)
            return
        self._finish(exchange, answer, self._error_cause_of(reply, exchange))

    def _error_cause_of(self, reply: RadiusPacket, exchange: _Exchange) -> int | None:
        raw = reply.get(self._error_cause)
        if raw is None:
            return None
        if len(raw) != 4:
            self.log.warn("{nas}: Error-Cause of {size} octets, must be 4: ignored",
                          nas=exchange.target.nas, size=len(raw))  # fmt: skip
            return None
        return int.from_bytes(raw, "big")
