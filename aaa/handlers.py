"""What the server answers: every request type and situation, decided in one table.

The transport (``aaa.protocol``) hands over decoded requests from known NAS clients. Here the
authenticators are checked, the request goes to its decision (``aaa.authorize`` for access,
the accounting sink for accounting), and :data:`REPLIES` says which reply code, if any, each
outcome gets. "No reply" is an answer too: a NAS retransmits what it got no answer to, which is
exactly right for accounting that could not be stored.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from twisted.internet.defer import Deferred

from aaa import codec
from aaa.authorize import REPLY_MESSAGE, Directory, Verdict, authorize
from aaa.codec import Code, RadiusPacket
from aaa.dictionary import RadiusDictionary
from aaa.identification import IdentificationPlan, Option82Attributes
from aaa.metrics import AaaMetrics
from aaa.settings import AaaSettings, NasClient
from aaa.vendor_profiles import VendorRenderer, renderer_for

Reply = bytes | None


class Situation(StrEnum):
    """What became of a request, before choosing the reply."""

    ACCEPTED = "accept"
    REJECTED = "reject"
    STORED = "stored"
    NOT_STORED = "not_stored"
    BAD_AUTHENTICATOR = "bad_authenticator"
    NO_MESSAGE_AUTHENTICATOR = "no_message_authenticator"
    ALIVE = "alive"
    UNSUPPORTED = "unsupported"


REPLIES: dict[tuple[Code, Situation], Code | None] = {
    (Code.ACCESS_REQUEST, Situation.ACCEPTED): Code.ACCESS_ACCEPT,
    (Code.ACCESS_REQUEST, Situation.REJECTED): Code.ACCESS_REJECT,
    (Code.ACCESS_REQUEST, Situation.BAD_AUTHENTICATOR): None,  # forged or wrong secret
    (Code.ACCESS_REQUEST, Situation.NO_MESSAGE_AUTHENTICATOR): None,  # BlastRADIUS (CVE-2024-3596)
    (Code.ACCOUNTING_REQUEST, Situation.STORED): Code.ACCOUNTING_RESPONSE,  # committed or journaled
    (Code.ACCOUNTING_REQUEST, Situation.NOT_STORED): None,  # the NAS retransmits; nothing is lost
    (Code.ACCOUNTING_REQUEST, Situation.BAD_AUTHENTICATOR): None,
    (Code.STATUS_SERVER, Situation.ALIVE): None,  # per port: see STATUS_REPLY
    (Code.STATUS_SERVER, Situation.BAD_AUTHENTICATOR): None,
}
"""Every (request, situation) pair the server meets; a missing pair means no reply."""

STATUS_REPLY = {"auth": Code.ACCESS_ACCEPT, "acct": Code.ACCOUNTING_RESPONSE}
"""RFC 5997: Status-Server is answered like a successful request of the port's kind."""

AccountingSink = Callable[[RadiusPacket, NasClient, str], Deferred[None]]
"""Takes an Accounting-Request; fires once the record is durable, fails if it could not be."""

OpenSessions = Callable[[int], Deferred[int]]
"""Counts a service's open sessions (a database query, run off the reactor thread)."""


class RadiusHandler:
    """Handles the requests of one listener (``kind`` is ``auth`` or ``acct``)."""

    def __init__(
        self,
        kind: str,
        settings: AaaSettings,
        dictionary: RadiusDictionary,
        directory: Callable[[], Directory],
        accounting: AccountingSink | None,
        metrics: AaaMetrics,
        open_sessions: OpenSessions | None = None,
    ) -> None:
        self.kind = kind
        self._open_sessions = open_sessions
        self._settings = settings
        self._directory = directory
        self._accounting = accounting
        self._metrics = metrics
        self._counters: dict[tuple[int, str], Any] = {}
        self._option82 = Option82Attributes.from_dictionary(dictionary)
        self._per_client: dict[str, tuple[IdentificationPlan, VendorRenderer]] = {
            client.name: (
                IdentificationPlan(
                    methods=client.identification, mac_from=client.mac_from, strip_realm=client.strip_realm
                ),  # type: ignore[arg-type]
                renderer_for(client.vendor, dictionary),
            )
            for client in settings.nas
        }

    def handle(
        self, packet: RadiusPacket, client: NasClient, source: tuple[str, int]
    ) -> Reply | Deferred[Reply]:
        code = packet.code
        if code == Code.STATUS_SERVER:
            return self._status(packet, client)
        if code == Code.ACCESS_REQUEST and self.kind == "auth":
            return self._access(packet, client)
        if code == Code.ACCOUNTING_REQUEST and self.kind == "acct" and self._accounting is not None:
            return self._accounting_request(packet, client, source)
        self._count(code, Situation.UNSUPPORTED)
        return None

    def _access(self, packet: RadiusPacket, client: NasClient) -> Reply | Deferred[Reply]:
        if not packet.has_message_authenticator:
            if client.require_message_authenticator:
                return self._reply(packet, client, Situation.NO_MESSAGE_AUTHENTICATOR)
        elif not codec.verify_message_authenticator(packet, client.secret):
            return self._reply(packet, client, Situation.BAD_AUTHENTICATOR)
        plan, renderer = self._per_client[client.name]
        verdict = authorize(packet, client, plan, self._option82, self._directory(), renderer, self._settings)
        if verdict.accept and verdict.simultaneous_use and verdict.service_id and self._open_sessions:
            limit = verdict.simultaneous_use
            counted = self._open_sessions(verdict.service_id)
            return counted.addCallback(lambda n: self._within_limit(packet, client, verdict, n, limit))
        situation = Situation.ACCEPTED if verdict.accept else Situation.REJECTED
        return self._reply(packet, client, situation, verdict.attributes, verdict.outcome)

    def _within_limit(
        self, packet: RadiusPacket, client: NasClient, verdict: Verdict, n: int, limit: int
    ) -> Reply:
        """Simultaneous-use: a service at its limit of open sessions gets no new one."""
        if n >= limit:
            message = ((REPLY_MESSAGE, f"simultaneous use limit of {limit} reached".encode()),)
            return self._reply(packet, client, Situation.REJECTED, message, "simultaneous_use")
        return self._reply(packet, client, Situation.ACCEPTED, verdict.attributes, verdict.outcome)

    def _accounting_request(
        self, packet: RadiusPacket, client: NasClient, source: tuple[str, int]
    ) -> Reply | Deferred[Reply]:
        if not codec.verify_request_authenticator(packet, client.secret):
            return self._reply(packet, client, Situation.BAD_AUTHENTICATOR)
        if packet.has_message_authenticator and not codec.verify_message_authenticator(packet, client.secret):
            return self._reply(packet, client, Situation.BAD_AUTHENTICATOR)
        assert self._accounting is not None
        stored = self._accounting(packet, client, source[0])
        return stored.addCallbacks(
            lambda _: self._reply(packet, client, Situation.STORED),
            lambda _failure: self._reply(packet, client, Situation.NOT_STORED),
        )

    def _status(self, packet: RadiusPacket, client: NasClient) -> Reply:
        if not (
            packet.has_message_authenticator and codec.verify_message_authenticator(packet, client.secret)
        ):
            return self._reply(packet, client, Situation.BAD_AUTHENTICATOR)
        self._count(packet.code, Situation.ALIVE)
        return codec.encode_reply(packet, STATUS_REPLY[self.kind], (), client.secret)

    def _reply(
        self,
        packet: RadiusPacket,
        client: NasClient,
        situation: Situation,
        attributes: tuple[codec.Attribute, ...] = (),
        outcome: str | None = None,
    ) -> Reply:
        self._count(packet.code, situation, outcome)
        code = REPLIES.get((Code(packet.code), situation))
        return None if code is None else codec.encode_reply(packet, code, attributes, client.secret)

    def _count(self, code: int, situation: Situation, outcome: str | None = None) -> None:
        """Count a request by type and outcome (the labelled counter is looked up once per pair)."""
        key = (code, outcome or situation.value)
        counter = self._counters.get(key)
        if counter is None:
            try:
                name = Code(code).name.lower()
            except ValueError:
                name = f"code_{code}"
            counter = self._counters[key] = self._metrics.requests.labels(name, key[1])
        counter.inc()
