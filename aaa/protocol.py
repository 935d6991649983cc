"""The RADIUS transport: datagrams in, replies out; no decisions about subscribers.

For each datagram, in this order: the source must be a configured NAS (else dropped before any
parsing, with a rate-limited log line and a metric); the bytes must decode strictly; a
retransmit of a request already answered gets the identical cached reply (RFC 5080), one still
in progress is dropped; anything else goes to the handler, which returns the reply bytes, None
for "no reply", or a Deferred of either (accounting waits for durable storage). A handler
that raises never kills the listener.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from aaa import codec
from aaa.duplicates import ReplyCache, RequestKey, State
from aaa.metrics import AaaMetrics
from aaa.settings import NasClient

Reply = bytes | None

_LOG_EVERY_S = 60.0


class Handler(Protocol):
    """Decides what to answer a decoded request from a known NAS."""

    def handle(
        self, packet: codec.RadiusPacket, client: NasClient, source: tuple[str, int]
    ) -> Reply | Deferred[Reply]: ...


class RadiusProtocol(DatagramProtocol):
    """One UDP listener (authentication or accounting)."""

    log = Logger()

    def __init__(
        self,
        kind: str,
        clients: Callable[[str], NasClient | None],
        handler: Handler,
        cache: ReplyCache,
        metrics: AaaMetrics,
        receive_buffer_bytes: int = 4 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self._clients = clients
        self._handler = handler
        self._cache = cache
        self._metrics = metrics
        self._latency = metrics.latency.labels(kind)
        self._receive_buffer = receive_buffer_bytes
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self.in_flight = 0

    def replace(self, clients: Callable[[str], NasClient | None], handler: Handler) -> None:
        """New NAS clients and handler (a reload); requests in flight finish with the old ones."""
        self._clients = clients
        self._handler = handler

    def startProtocol(self) -> None:
        handle = self.transport.getHandle()  # type: ignore[union-attr]
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        started = self._clock()
        client = self._clients(addr[0])
        if client is None:
            self._drop("unknown_client", addr, "datagram from an unknown NAS")
            return
        try:
            packet = codec.decode(datagram)
        except codec.MalformedPacket as exc:
            self._drop(f"malformed_{exc.reason.name.lower()}", addr, f"malformed packet: {exc}")
            return
        key = RequestKey(addr[0], addr[1], packet.code, packet.identifier, packet.authenticator)
        verdict = self._cache.receive(key)
        if verdict.state is State.ANSWERED:
            self._metrics.drops.labels("retransmit_answered_from_cache").inc()
            self.transport.write(verdict.reply, addr)  # type: ignore[union-attr, arg-type]
            return
        if verdict.state is State.IN_PROGRESS:
            self._metrics.drops.labels("retransmit_in_progress").inc()
            return
        try:
            result = self._handler.handle(packet, client, addr)
        except Exception:
            self.log.failure("handler failed on a request from {source}", source=addr[0])
            self._cache.forget(key)
            self._metrics.drops.labels("handler_error").inc()
            return
        if isinstance(result, Deferred):
            self.in_flight += 1
            result.addCallbacks(self._answered, self._failed, (key, addr, started), errbackArgs=(key,))
            result.addBoth(self._settled)
        else:
            self._answered(result, key, addr, started)

    def _answered(self, reply: Reply, key: RequestKey, addr: tuple[str, int], started: float) -> None:
        if reply is None:
            self._cache.forget(key)  # the NAS retransmits, and we decide again
            return
        self._cache.answer(key, reply)
        self.transport.write(reply, addr)  # type: ignore[union-attr]
        self._latency.observe(self._clock() - started)

    def _failed(self, failure: Failure, key: RequestKey) -> None:
        self.log.failure("request failed; not answered", failure)
        self._cache.forget(key)
        self._metrics.drops.labels("handler_error").inc()

    def _settled(self, _: object) -> None:
        self.in_flight -= 1

    def _drop(self, reason: str, addr: tuple[str, int], message: str) -> None:
        self._metrics.drops.labels(reason).inc()
        now = self._clock()
        if now - self._last_logged.get(addr[0], -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._last_logged[addr[0]] = now
            if len(self._last_logged) > 10_000:
                self._last_logged.clear()
            self.log.warn("{message} from {source} (dropped; logged at most once a minute per source)",
                          message=message, source=addr[0])  # fmt: skip
