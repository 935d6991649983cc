"""Access-Request decisions: who is asking, may they browse, and with which profile.

Pure: everything the decision needs comes in (the decoded request, the NAS client, a snapshot
of subscriber state, the NAS vendor's renderer, the settings), a :class:`Verdict` goes out.
No I/O, no clock, so every branch is a unit test. The order is fixed:

1. identify the subscriber by the NAS's plan (login, CPE MAC, switch port), first hit wins;
   nobody found: reject "unknown subscriber";
2. a PPPoE login proves its password (PAP, CHAP, MS-CHAPv2); IPoE identities (MAC, port)
   are the network's word and carry no password;
3. the service status and available funds decide, with the category's policy:

   =====================  =======================================================
   status                 answer
   =====================  =======================================================
   active, funds >= 0     accept with the service's speed profile and addresses
   active, funds < 0      policy ``out_of_funds``: reject, or the walled garden
   suspended_*            policy ``suspended``: reject, or the walled garden
   blocked                policy ``blocked``: reject, or the walled garden
   pending, churned       reject, saying why
   =====================  =======================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Network
from typing import Protocol

from aaa import auth_methods
from aaa.codec import Attribute, RadiusPacket
from aaa.identification import IdentificationPlan, Option82Attributes, PortKey, candidates
from aaa.settings import AaaSettings, NasClient
from aaa.vendor_profiles import Authorization, SpeedProfile, VendorRenderer

REPLY_MESSAGE = 18
CLASS = 25


class Subscriber(Protocol):
    """What a snapshot entry offers the decision (see ``aaa.snapshot``)."""

    service_id: int
    status: str
    category: str
    available: Decimal
    credential: auth_methods.Credential | None
    profile: SpeedProfile | None
    framed_ip: IPv4Address | None
    framed_pool: str | None
    ipv6_prefix: IPv6Network | None
    delegated_prefix: IPv6Network | None
    simultaneous_use: int | None


class Directory(Protocol):
    """Subscriber lookups by identity (the in-memory snapshot)."""

    def by_login(self, login: str) -> Subscriber | None: ...

    def by_mac(self, mac: str) -> Subscriber | None: ...

    def by_port(self, port: PortKey) -> Subscriber | None: ...


@dataclass(frozen=True)
class Verdict:
    """The answer to an Access-Request; ``outcome`` labels metrics and logs."""

    accept: bool
    attributes: tuple[Attribute, ...]
    outcome: str
    service_id: int | None = None
    simultaneous_use: int | None = None
    """The service's limit of concurrent sessions, for the caller to check (it needs the DB)."""


def authorize(
    request: RadiusPacket,
    client: NasClient,
    plan: IdentificationPlan,
    option82: Option82Attributes,
    directory: Directory,
    renderer: VendorRenderer,
    settings: AaaSettings,
) -> Verdict:
    """Decide an Access-Request (whose authenticators the caller has already checked)."""
    found = _identify(request, plan, option82, directory)
    if found is None:
        return _reject("unknown", "unknown subscriber")
    method, subscriber = found
    extra: tuple[Attribute, ...] = ()
    if method == "login":
        if subscriber.credential is None:
            return _reject("bad_credential", "no usable password on file", subscriber)
        outcome = auth_methods.authenticate(request, client.secret, subscriber.credential)
        if not outcome.ok:
            return Verdict(False, (_message("authentication failed"), *outcome.reply_attributes),
                           f"auth_{outcome.reason.name.lower()}", subscriber.service_id)  # fmt: skip
        extra = outcome.reply_attributes
    return _by_status(subscriber, renderer, settings, extra)


def _identify(
    request: RadiusPacket, plan: IdentificationPlan, option82: Option82Attributes, directory: Directory
) -> tuple[str, Subscriber] | None:
    lookups = {"login": directory.by_login, "mac": directory.by_mac, "port": directory.by_port}
    keys: Iterator[tuple[str, object]] = candidates(request, plan, option82)
    for method, key in keys:
        found = lookups[method](key)  # type: ignore[operator]
        if found is not None:
            return method, found
    return None


def _by_status(
    subscriber: Subscriber, renderer: VendorRenderer, settings: AaaSettings, extra: tuple[Attribute, ...]
) -> Verdict:
    policy = settings.policy_for(subscriber.category)
    status = subscriber.status
    if status == "active":
        if subscriber.available >= 0:
            return _accept(subscriber, renderer, settings, extra)
        return _restricted(
            policy.out_of_funds, "out_of_funds", "out of funds", subscriber, renderer, settings
        )
    if status in ("suspended_voluntary", "suspended_involuntary"):
        return _restricted(policy.suspended, "suspended", "service suspended", subscriber, renderer, settings)
    if status == "blocked":
        return _restricted(policy.blocked, "blocked", "service blocked", subscriber, renderer, settings)
    if status == "churned":
        return _reject("churned", "service terminated", subscriber)
    return _reject("not_active", "service not active yet", subscriber)


def _accept(
    subscriber: Subscriber, renderer: VendorRenderer, settings: AaaSettings, extra: tuple[Attribute, ...]
) -> Verdict:
    if subscriber.profile is None:
        return _reject("no_profile", "no speed profile on the service", subscriber)
    grant = Authorization(
        profile=subscriber.profile,
        framed_ip=subscriber.framed_ip,
        framed_pool=None if subscriber.framed_ip else subscriber.framed_pool,
        ipv6_prefix=subscriber.ipv6_prefix,
        delegated_prefix=subscriber.delegated_prefix,
        session_timeout_s=settings.session_timeout_s,
        interim_interval_s=settings.interim_interval_s,
        class_=_class(subscriber),
    )
    return Verdict(
        True, (*renderer.render(grant), *extra), "accept", subscriber.service_id, subscriber.simultaneous_use
    )


def _restricted(
    action: str,
    outcome: str,
    reason: str,
    subscriber: Subscriber,
    renderer: VendorRenderer,
    settings: AaaSettings,
) -> Verdict:
    if action != "walled_garden":
        return _reject(outcome, reason, subscriber)
    garden = settings.walled_garden
    grant = Authorization(
        profile=SpeedProfile("walled-garden", garden.down_kbps, garden.up_kbps),
        framed_pool=garden.pool,
        session_timeout_s=garden.session_timeout_s,
        interim_interval_s=settings.interim_interval_s,
        class_=_class(subscriber),
    )
    return Verdict(
        True,
        renderer.render(grant),
        f"walled_garden_{outcome}",
        subscriber.service_id,
        subscriber.simultaneous_use,
    )


def _class(subscriber: Subscriber) -> bytes:
    """Echoed by the NAS in accounting: ties the session to the service without a lookup."""
    return f"svc:{subscriber.service_id}".encode()


def _message(text: str) -> Attribute:
    return (REPLY_MESSAGE, text.encode())


def _reject(outcome: str, text: str, subscriber: Subscriber | None = None) -> Verdict:
    return Verdict(False, (_message(text),), outcome, subscriber.service_id if subscriber else None)
