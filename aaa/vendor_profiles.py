"""Vendor profiles: an authorization decision rendered into the NAS vendor's RADIUS attributes.

What: ``Authorization`` (a speed profile, addresses, timers, Class) goes in; a tuple of
encoded attributes comes out, in the ``aaa.codec`` form (``(type, bytes)`` pairs and
``(vendor_id, vendor_type, bytes)`` triples), ready for ``codec.encode_reply``.

Why a module of its own: every BRAS vendor spells "50 Mbit/s down, 10 up" differently
(a MikroTik string seen from the router, Cisco policy names, a Juniper service with
parameters, Huawei integers in bit/s, accel-ppp's Filter-Id), and the handler that
decides an Access-Accept should not know any of it.  One renderer per vendor, chosen
from a registry by the NAS's configured vendor name (like netmiko's ``ssh_dispatcher``);
an unknown name fails listing the supported ones.  The "negative balance" walled garden
is just another ``Authorization`` (a small speed, a captive-portal pool, an address
list): nothing here special-cases it.

Attribute codes come from the ``RadiusDictionary`` (``conf/dictionaries/``), looked up
once when a renderer is built, never hard-coded; a dictionary without an attribute a
renderer needs, or with it under an unexpected data type, fails at start-up
(``MissingAttribute``), not on the first Access-Request.

Every vendor gets the RFC attributes that are set: Framed-IP-Address or Framed-Pool
(RFC 2865 / 2869), Framed-IPv6-Prefix and Framed-IPv6-Pool (RFC 3162),
Delegated-IPv6-Prefix (RFC 4818), the delegated-prefix pool (RFC 6911
Delegated-IPv6-Prefix-Pool, or the vendor's own attribute where the vendor reads that
instead), Session-Timeout, Idle-Timeout, Acct-Interim-Interval (RFC 2869), Class.
Then the vendor's speed attributes:

``mikrotik``
    Mikrotik-Rate-Limit = "rx/tx [rx-burst/tx-burst [rx-threshold/tx-threshold
    [rx-time/tx-time]]]", rates with ``k`` (x1000) or ``M`` (x1000000), times in
    seconds.  rx/tx are the router's: rx is the subscriber's upload, so 50 Mbit/s down
    and 10 up is "10M/50M".  Source: MikroTik RouterOS manual, RADIUS client,
    "Mikrotik-Rate-Limit" and its examples ("64k/128M", "64k/64k 256k/256k 128k/128k
    10/10"); also ``conf/dictionaries/dictionary.mikrotik``.  Plus Mikrotik-Address-List
    (a firewall address list, e.g. the walled garden's) and Mikrotik-Delegated-IPv6-Pool
    (the pool RouterOS takes DHCPv6-PD prefixes from).

``cisco`` (IOS / IOS XE BNG, ISG), two documented modes:
    ``mode="policy"`` (default, the ISG way): Cisco-AVPair
    "subscriber:sub-qos-policy-in=<name>" and "subscriber:sub-qos-policy-out=<name>",
    naming policy-maps configured on the BNG; "in" is from the subscriber (upload),
    "out" towards it (download).  Names come from templates, default "{name}-in" /
    "{name}-out", with fields ``{name}``, ``{down_kbps}``, ``{up_kbps}``.
    ``mode="rate"``: per-session CAR on the virtual-access interface, Cisco-AVPair
    "lcp:interface-config#1=rate-limit input <bps> <normal> <max> conform-action
    transmit exceed-action drop" (upload) and "#2 ... output ..." (download); burst
    sizes in bytes by Cisco's rule of thumb, normal = rate x 1.5 s / 8, max = 2 x
    normal.  Sources: the policy AV pairs as in ``conf/dictionaries/dictionary.cisco``
    (Cisco ISG Configuration Guide, "Configuring ISG Policies for Regulating Network
    Access"); the CAR line per the Cisco IOS ``rate-limit`` command reference (rate in
    bit/s, bursts in bytes), as BRAS logs show it in Access-Accepts (accel-ppp's shaper
    reads the same lcp string).  CAR has no
    burst *rate*: SpeedProfile bursts are not rendered in either mode.

``juniper`` (MX / JUNOSe BNG, ERX vendor 4874), two documented modes:
    ``mode="service"`` (default): ERX-Service-Activate, tag 1,
    "<service>(<down>,<up>)" with rates in bit/s with Junos suffixes (k, m, g:
    "internet(50m,10m)").  The BNG must define a dynamic service profile ``<service>``
    (default "internet") whose two user-defined variables, in that order, are the
    download and upload rates (e.g. used by a policer's ``bandwidth-limit`` or a
    traffic-control-profile's ``shaping-rate``).  Source: Juniper "Using RADIUS to
    activate subscriber service sessions" (JUNOSe Broadband Access; Junos Subscriber
    Management: ERX-Service-Activate 26-65, parameters in the order the service's
    variables are declared) and ``conf/dictionaries/dictionary.erx``.
    ``mode="policy"``: ERX-Ingress-Policy-Name (upload) / ERX-Egress-Policy-Name
    (download), names from templates as for Cisco.  Bursts are not rendered.
    The delegated-prefix pool is ERX-IPv6-Delegated-Pool-Name.

``huawei`` (ME60 / NE40E / NetEngine BRAS, vendor 2011)
    Huawei-Input-Average-Rate / Huawei-Output-Average-Rate (CIR) and, when the profile
    has a burst, Huawei-Input-Peak-Rate / Huawei-Output-Peak-Rate (PIR), all integers in
    **bit/s**; "Input" is the subscriber's upload.  Burst sizes (bits) are left to the
    BRAS's defaults.  Source: ``conf/dictionaries/dictionary.huawei`` (rates in bit/s,
    "Input" = upload); not yet checked against a Huawei attribute reference.  An integer
    attribute caps a rate at 4 294 967 295 bit/s.  Delegated pool:
    Huawei-Delegated-IPv6-Prefix-Pool.

``accel-ppp``
    Filter-Id = "<down>/<up>" in kbit/s ("50000/10000"), what accel-ppp's ``shaper``
    module reads by default ([shaper] attr=Filter-Id, "2000/3000 means 2000 kbit
    down-stream and 3000 kbit up-stream").  ``rate_attribute=`` names another string
    attribute when the NAS's [shaper] attr= says so.  Bursts are accel-ppp's
    burst-factor configuration, not RADIUS.  Source: accel-ppp documentation,
    ``shaper`` section, and ``conf/dictionaries/dictionary.accel-ppp``.

``generic``
    Only the RFC attributes.

``address_list`` is a MikroTik notion: other vendors ignore it (their walled garden is
the captive-portal pool, or a policy name).

Cost: rendering is cached twice, per ``SpeedProfile`` (the vendor part; tariffs are
few) and per whole ``Authorization`` (frozen, so hashable; LRU, ``cache_size``
entries), so a repeated decision costs a hash and a dictionary look-up (under 1 us);
a miss encodes the handful of RFC attributes with per-type encoders chosen when the
renderer is built (a few us).  Pure: no I/O, no clock.
"""

from __future__ import annotations

import functools
import string
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from aaa.codec import Attribute, Value, encode_value
from aaa.dictionary import AttributeDef, DataType, RadiusDictionary

__all__ = [
    "RENDERERS",
    "AccelPppRenderer",
    "Authorization",
    "CiscoRenderer",
    "GenericRenderer",
    "HuaweiRenderer",
    "InvalidProfile",
    "JuniperRenderer",
    "MikrotikRenderer",
    "MissingAttribute",
    "SpeedProfile",
    "UnknownVendor",
    "VendorProfileError",
    "VendorRenderer",
    "format_junos_rate",
    "format_mikrotik_rate",
    "renderer_for",
    "supported_vendors",
]

_UINT32_MAX = 0xFFFFFFFF
_MAX_VALUE_LENGTH = 253  # RFC 2865 §5: one attribute's value
_MAX_VENDOR_VALUE_LENGTH = 247  # minus the Vendor-Specific and sub-attribute headers


# --------------------------------------------------------------------------- errors


class VendorProfileError(Exception):
    """Base of this module's exceptions."""


class UnknownVendor(VendorProfileError, LookupError):
    """No renderer is registered under that vendor name; the message lists the supported ones."""

    def __init__(self, vendor: str, supported: tuple[str, ...]) -> None:
        self.vendor = vendor
        self.supported = supported
        super().__init__(f"unknown NAS vendor {vendor!r}; supported: {', '.join(supported)}")

    def __str__(self) -> str:  # KeyError-style repr quoting would hide the list
        return str(self.args[0])


class MissingAttribute(VendorProfileError, LookupError):
    """The RADIUS dictionary lacks an attribute a renderer needs, or has it with another type."""

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidProfile(VendorProfileError, ValueError):
    """A SpeedProfile or Authorization holds a value no NAS could be given."""


# --------------------------------------------------------------------------- inputs


def _check_count(owner: str, field_name: str, value: object, *, minimum: int, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidProfile(f"{owner}.{field_name} must be an int, not {value!r}")
    if not minimum <= value <= _UINT32_MAX:
        raise InvalidProfile(f"{owner}.{field_name} = {value} is not {minimum}-{_UINT32_MAX}")


@dataclass(frozen=True, slots=True)
class SpeedProfile:
    """A tariff's speed, from the subscriber's point of view, in kbit/s (1 kbit = 1000 bit).

    Bursts (optional): the rate allowed while the average stays under
    ``burst_threshold_kbps`` (one value for both directions), averaged over
    ``burst_time_s``.  Vendors without burst rates ignore them.
    """

    name: str
    down_kbps: int
    up_kbps: int
    burst_down_kbps: int | None = None
    burst_up_kbps: int | None = None
    burst_threshold_kbps: int | None = None
    burst_time_s: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidProfile(f"SpeedProfile.name must be a non-empty str, not {self.name!r}")
        for field_name in ("down_kbps", "up_kbps"):
            _check_count("SpeedProfile", field_name, getattr(self, field_name), minimum=1, optional=False)
        for field_name in ("burst_down_kbps", "burst_up_kbps", "burst_threshold_kbps", "burst_time_s"):
            _check_count("SpeedProfile", field_name, getattr(self, field_name), minimum=1, optional=True)
        if self.burst_down_kbps is not None and self.burst_down_kbps < self.down_kbps:
            raise InvalidProfile(f"{self.name}: burst_down_kbps {self.burst_down_kbps} < down_kbps")
        if self.burst_up_kbps is not None and self.burst_up_kbps < self.up_kbps:
            raise InvalidProfile(f"{self.name}: burst_up_kbps {self.burst_up_kbps} < up_kbps")
        if not self.has_burst and (self.burst_threshold_kbps is not None or self.burst_time_s is not None):
            raise InvalidProfile(f"{self.name}: a burst threshold or time without a burst rate")

    @property
    def has_burst(self) -> bool:
        return self.burst_down_kbps is not None or self.burst_up_kbps is not None

    @classmethod
    def from_record(cls, row: Any) -> SpeedProfile:
        """From anything with the same attribute names (a ``speed_profiles`` row, a result row)."""
        return cls(
            row.name,
            row.down_kbps,
            row.up_kbps,
            row.burst_down_kbps,
            row.burst_up_kbps,
            row.burst_threshold_kbps,
            row.burst_time_s,
        )


@dataclass(frozen=True, slots=True)
class Authorization:
    """What an Access-Accept grants: speed, addresses, timers, and the Class to echo in accounting.

    ``framed_ip`` and ``framed_pool`` are exclusive (a fixed address, or a pool on the
    NAS).  ``ipv6_prefix`` is the Framed-IPv6-Prefix (RFC 3162, the link's prefix),
    ``delegated_prefix`` the Delegated-IPv6-Prefix (RFC 4818, DHCPv6-PD to the CPE),
    ``ipv6_pool`` the NAS pool name, sent as Framed-IPv6-Pool and as the vendor's
    delegated-prefix pool.  None means "do not send".
    """

    profile: SpeedProfile
    framed_ip: IPv4Address | None = None
    framed_pool: str | None = None
    ipv6_prefix: IPv6Network | None = None
    delegated_prefix: IPv6Network | None = None
    ipv6_pool: str | None = None
    session_timeout_s: int | None = None
    interim_interval_s: int | None = None
    class_: bytes | None = None
    idle_timeout_s: int | None = None
    address_list: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.profile, SpeedProfile):
            raise InvalidProfile(f"Authorization.profile must be a SpeedProfile, not {self.profile!r}")
        if self.framed_ip is not None and self.framed_pool is not None:
            raise InvalidProfile("framed_ip and framed_pool are exclusive: send an address or a pool")
        if self.framed_ip is not None and not isinstance(self.framed_ip, IPv4Address):
            raise InvalidProfile(f"framed_ip must be an IPv4Address, not {self.framed_ip!r}")
        for field_name in ("ipv6_prefix", "delegated_prefix"):
            value = getattr(self, field_name)
            if value is not None and not isinstance(value, IPv6Network):
                raise InvalidProfile(f"{field_name} must be an IPv6Network, not {value!r}")
        for field_name in ("framed_pool", "ipv6_pool", "address_list"):
            value = getattr(self, field_name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidProfile(f"{field_name} must be a non-empty str, not {value!r}")
        for field_name in ("session_timeout_s", "interim_interval_s", "idle_timeout_s"):
            _check_count("Authorization", field_name, getattr(self, field_name), minimum=0, optional=True)
        if self.class_ is not None and (not isinstance(self.class_, bytes) or not self.class_):
            raise InvalidProfile(f"class_ must be non-empty bytes, not {self.class_!r}")


# --------------------------------------------------------------------------- rate formats


def format_mikrotik_rate(kbps: int) -> str:
    """A RouterOS rate: "50M" when a whole number of Mbit/s, else "1500k" (k = 1000, M = 10^6)."""
    return f"{kbps // 1000}M" if kbps % 1000 == 0 else f"{kbps}k"


def format_junos_rate(kbps: int) -> str:
    """A Junos rate in bit/s with its suffixes: "1g", "50m", "1500k"."""
    if kbps % 1_000_000 == 0:
        return f"{kbps // 1_000_000}g"
    return f"{kbps // 1000}m" if kbps % 1000 == 0 else f"{kbps}k"


_TEMPLATE_FIELDS = frozenset({"name", "down_kbps", "up_kbps"})


def _check_template(vendor: str, option: str, template: str) -> str:
    """Fail at start-up, not per request, on a name template with an unknown field."""
    if not isinstance(template, str) or not template:
        raise VendorProfileError(f"{vendor}: {option} must be a non-empty str template")
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    unknown = fields - _TEMPLATE_FIELDS
    if unknown:
        raise VendorProfileError(
            f"{vendor}: {option} {template!r} uses {sorted(unknown)}; fields are {sorted(_TEMPLATE_FIELDS)}"
        )
    return template


def _fill(template: str, profile: SpeedProfile) -> str:
    return template.format(name=profile.name, down_kbps=profile.down_kbps, up_kbps=profile.up_kbps)


# --------------------------------------------------------------------------- attribute slots

_STRING_TYPES = frozenset({DataType.STRING})
_INTEGER_TYPES = frozenset({DataType.INTEGER})


# Fast encoders for the types on the hot path.  ``codec.encode_value`` is the reference
# (tests compare against it) but converts addresses and networks through their text form
# (``IPv6Network(network)`` re-parses a string: ~10 us); these take the validated objects.
_pack_uint32 = struct.Struct("!I").pack


def _encode_string(value: Value) -> bytes:
    return value.encode() if isinstance(value, str) else encode_value("string", value)


def _encode_integer(value: Value) -> bytes:
    if type(value) is int and 0 <= value <= _UINT32_MAX:
        return _pack_uint32(value)
    return encode_value("integer", value)


def _encode_ipaddr(value: Value) -> bytes:
    return value.packed if isinstance(value, IPv4Address) else encode_value("ipaddr", value)


def _encode_ipv6prefix(value: Value) -> bytes:
    # RFC 3162 §2.3: reserved octet, prefix length, the significant prefix octets
    if not isinstance(value, IPv6Network):
        return encode_value("ipv6prefix", value)
    length = value.prefixlen
    return bytes((0, length)) + value.network_address.packed[: (length + 7) // 8]


def _encode_octets(value: Value) -> bytes:
    return value if type(value) is bytes else encode_value("octets", value)


_FAST_ENCODERS: Mapping[DataType, Callable[[Value], bytes]] = MappingProxyType(
    {
        DataType.STRING: _encode_string,
        DataType.INTEGER: _encode_integer,
        DataType.IPADDR: _encode_ipaddr,
        DataType.IPV6PREFIX: _encode_ipv6prefix,
        DataType.OCTETS: _encode_octets,
    }
)


@dataclass(frozen=True, slots=True)
class _Slot:
    """One attribute compiled from the dictionary: value -> encoded codec attribute."""

    definition: AttributeDef
    encode: Callable[[Value], bytes]
    header: tuple[int, ...]  # (type,) or (vendor_id, vendor_type)
    max_length: int

    def __call__(self, value: Value) -> Attribute:
        raw = self.encode(value)
        if len(raw) > self.max_length:
            raise InvalidProfile(
                f"{self.definition.name}: {len(raw)} octets, at most {self.max_length}: {value!r}"
            )
        return (*self.header, raw)  # type: ignore[return-value]


def _slot(dictionary: RadiusDictionary, vendor: str, name: str, types: frozenset[DataType]) -> _Slot:
    definition = dictionary.find(name)
    if definition is None:
        raise MissingAttribute(f"{vendor}: attribute {name!r} is not in the RADIUS dictionary")
    if definition.data_type not in types:
        raise MissingAttribute(
            f"{vendor}: attribute {name!r} has data type {definition.data_type}, "
            f"expected {' or '.join(sorted(types))}"
        )
    data_type = definition.data_type
    if definition.has_tag:  # RFC 2868 tag 1: the only one we send
        encode: Callable[[Value], bytes] = functools.partial(encode_value, data_type, tag=1)
    else:
        encode = _FAST_ENCODERS.get(data_type) or functools.partial(encode_value, data_type)
    if definition.vendor_id:
        return _Slot(definition, encode, (definition.vendor_id, definition.code), _MAX_VENDOR_VALUE_LENGTH)
    return _Slot(definition, encode, (definition.code,), _MAX_VALUE_LENGTH)


# --------------------------------------------------------------------------- renderers


class VendorRenderer:
    """Renders ``Authorization`` for one vendor; built once per vendor and dictionary.

    Subclasses set ``vendor`` and ``delegated_pool_attribute`` and implement
    ``_speed_attributes``.  ``render`` is cached: ``cache_size`` whole authorizations
    (LRU) and ``profile_cache_size`` speed profiles.
    """

    vendor: ClassVar[str] = ""
    delegated_pool_attribute: ClassVar[str | None] = "Delegated-IPv6-Prefix-Pool"

    def __init__(
        self, dictionary: RadiusDictionary, *, cache_size: int = 4096, profile_cache_size: int = 1024
    ) -> None:
        self.dictionary = dictionary
        slot = self._slot
        self._framed_ip = slot("Framed-IP-Address", frozenset({DataType.IPADDR}))
        self._framed_pool = slot("Framed-Pool", _STRING_TYPES)
        self._framed_ipv6_prefix = slot("Framed-IPv6-Prefix", frozenset({DataType.IPV6PREFIX}))
        self._delegated_prefix = slot("Delegated-IPv6-Prefix", frozenset({DataType.IPV6PREFIX}))
        self._framed_ipv6_pool = slot("Framed-IPv6-Pool", _STRING_TYPES)
        pool_name = self.delegated_pool_attribute
        self._delegated_pool = slot(pool_name, _STRING_TYPES) if pool_name else None
        self._session_timeout = slot("Session-Timeout", _INTEGER_TYPES)
        self._idle_timeout = slot("Idle-Timeout", _INTEGER_TYPES)
        self._interim_interval = slot("Acct-Interim-Interval", _INTEGER_TYPES)
        self._class = slot("Class", frozenset({DataType.OCTETS, DataType.STRING}))
        self.render: Callable[[Authorization], tuple[Attribute, ...]] = functools.lru_cache(
            maxsize=cache_size
        )(self._render)
        self.speed_attributes: Callable[[SpeedProfile], tuple[Attribute, ...]] = functools.lru_cache(
            maxsize=profile_cache_size
        )(self._speed_attributes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} vendor={self.vendor!r}>"

    def _slot(self, name: str, types: frozenset[DataType]) -> _Slot:
        return _slot(self.dictionary, self.vendor, name, types)

    def _render(self, auth: Authorization) -> tuple[Attribute, ...]:
        out: list[Attribute] = []
        append = out.append
        if auth.framed_ip is not None:
            append(self._framed_ip(auth.framed_ip))
        elif auth.framed_pool is not None:
            append(self._framed_pool(auth.framed_pool))
        if auth.ipv6_prefix is not None:
            append(self._framed_ipv6_prefix(auth.ipv6_prefix))
        if auth.delegated_prefix is not None:
            append(self._delegated_prefix(auth.delegated_prefix))
        if auth.ipv6_pool is not None:
            append(self._framed_ipv6_pool(auth.ipv6_pool))
            if self._delegated_pool is not None:
                append(self._delegated_pool(auth.ipv6_pool))
        if auth.session_timeout_s is not None:
            append(self._session_timeout(auth.session_timeout_s))
        if auth.idle_timeout_s is not None:
            append(self._idle_timeout(auth.idle_timeout_s))
        if auth.interim_interval_s is not None:
            append(self._interim_interval(auth.interim_interval_s))
        if auth.class_ is not None:
            append(self._class(auth.class_))
        out.extend(self.speed_attributes(auth.profile))
        out.extend(self._extra_attributes(auth))
        return tuple(out)

    def _speed_attributes(self, profile: SpeedProfile) -> tuple[Attribute, ...]:
        return ()

    def _extra_attributes(self, auth: Authorization) -> tuple[Attribute, ...]:
        """Per-session vendor attributes other than speed (MikroTik's address list)."""
        return ()


class GenericRenderer(VendorRenderer):
    """Only the RFC attributes: for a NAS whose speed comes from its own configuration."""

    vendor = "generic"


class MikrotikRenderer(VendorRenderer):
    """MikroTik RouterOS: Mikrotik-Rate-Limit "up/down ..." and Mikrotik-Address-List."""

    vendor = "mikrotik"
    # RouterOS takes DHCPv6-PD prefixes from the pool its own VSA 22 names
    delegated_pool_attribute = "Mikrotik-Delegated-IPv6-Pool"

    def __init__(self, dictionary: RadiusDictionary, **options: Any) -> None:
        super().__init__(dictionary, **options)
        self._rate_limit = self._slot("Mikrotik-Rate-Limit", _STRING_TYPES)
        self._address_list = self._slot("Mikrotik-Address-List", _STRING_TYPES)

    @staticmethod
    def rate_limit(profile: SpeedProfile) -> str:
        """The Mikrotik-Rate-Limit string; rx/tx are the router's, i.e. upload/download."""
        fmt = format_mikrotik_rate
        parts = [f"{fmt(profile.up_kbps)}/{fmt(profile.down_kbps)}"]
        if profile.has_burst:
            burst_up = profile.burst_up_kbps or profile.up_kbps
            burst_down = profile.burst_down_kbps or profile.down_kbps
            parts.append(f"{fmt(burst_up)}/{fmt(burst_down)}")
            if profile.burst_threshold_kbps is not None or profile.burst_time_s is not None:
                # RouterOS defaults: threshold = the rate, time = 1 s; spelt out when only
                # the time is given, since the fields are positional
                if profile.burst_threshold_kbps is not None:
                    threshold = fmt(profile.burst_threshold_kbps)
                    parts.append(f"{threshold}/{threshold}")
                else:
                    parts.append(f"{fmt(profile.up_kbps)}/{fmt(profile.down_kbps)}")
                if profile.burst_time_s is not None:
                    parts.append(f"{profile.burst_time_s}/{profile.burst_time_s}")
        return " ".join(parts)

    def _speed_attributes(self, profile: SpeedProfile) -> tuple[Attribute, ...]:
        return (self._rate_limit(self.rate_limit(profile)),)

    def _extra_attributes(self, auth: Authorization) -> tuple[Attribute, ...]:
        if auth.address_list is None:
            return ()
        return (self._address_list(auth.address_list),)


class CiscoRenderer(VendorRenderer):
    """Cisco IOS / IOS XE: Cisco-AVPair policy names (ISG, default) or per-session CAR rates."""

    vendor = "cisco"

    def __init__(
        self,
        dictionary: RadiusDictionary,
        *,
        mode: Literal["policy", "rate"] = "policy",
        policy_in: str = "{name}-in",
        policy_out: str = "{name}-out",
        **options: Any,
    ) -> None:
        if mode not in ("policy", "rate"):
            raise VendorProfileError(f"cisco: mode {mode!r} is not 'policy' or 'rate'")
        super().__init__(dictionary, **options)
        self.mode = mode
        self.policy_in = _check_template("cisco", "policy_in", policy_in)
        self.policy_out = _check_template("cisco", "policy_out", policy_out)
        self._avpair = self._slot("Cisco-AVPair", _STRING_TYPES)

    @staticmethod
    def car(direction: Literal["input", "output"], kbps: int, index: int) -> str:
        """An "lcp:interface-config" CAR line; bursts in bytes: 1.5 s of traffic, max twice that."""
        bps = kbps * 1000
        normal = bps * 3 // 16  # bps * 1.5 s / 8 bits
        return (
            f"lcp:interface-config#{index}=rate-limit {direction} {bps} {normal} {2 * normal} "
            "conform-action transmit exceed-action drop"
        )

    def avpairs(self, profile: SpeedProfile) -> tuple[str, str]:
        """The two Cisco-AVPair strings: upload (in / input) first, then download."""
        if self.mode == "rate":
            return self.car("input", profile.up_kbps, 1), self.car("output", profile.down_kbps, 2)
        return (
            f"subscriber:sub-qos-policy-in={_fill(self.policy_in, profile)}",
            f"subscriber:sub-qos-policy-out={_fill(self.policy_out, profile)}",
        )

    def _speed_attributes(self, profile: SpeedProfile) -> tuple[Attribute, ...]:
        return tuple(self._avpair(pair) for pair in self.avpairs(profile))


class JuniperRenderer(VendorRenderer):
    """Juniper MX / JUNOSe (ERX VSAs): a parameterized service (default) or policy names."""

    vendor = "juniper"
    delegated_pool_attribute = "ERX-IPv6-Delegated-Pool-Name"

    def __init__(
        self,
        dictionary: RadiusDictionary,
        *,
        mode: Literal["service", "policy"] = "service",
        service: str = "internet",
        ingress_policy: str = "{name}-in",
        egress_policy: str = "{name}-out",
        **options: Any,
    ) -> None:
        if mode not in ("service", "policy"):
            raise VendorProfileError(f"juniper: mode {mode!r} is not 'service' or 'policy'")
        if not isinstance(service, str) or not service or any(c in service for c in "(), "):
            raise VendorProfileError(f"juniper: service {service!r} must be a bare service name")
        super().__init__(dictionary, **options)
        self.mode = mode
        self.service = service
        self.ingress_policy = _check_template("juniper", "ingress_policy", ingress_policy)
        self.egress_policy = _check_template("juniper", "egress_policy", egress_policy)
        if mode == "service":
            self._service_activate = self._slot("ERX-Service-Activate", _STRING_TYPES)
        else:
            self._ingress = self._slot("ERX-Ingress-Policy-Name", _STRING_TYPES)
            self._egress = self._slot("ERX-Egress-Policy-Name", _STRING_TYPES)

    def service_activate(self, profile: SpeedProfile) -> str:
        """ "<service>(<down>,<up>)", rates in bit/s with Junos suffixes."""
        return f"{self.service}({format_junos_rate(profile.down_kbps)},{format_junos_rate(profile.up_kbps)})"

    def _speed_attributes(self, profile: SpeedProfile) -> tuple[Attribute, ...]:
        if self.mode == "service":
            return (self._service_activate(self.service_activate(profile)),)
        return (
            self._ingress(_fill(self.ingress_policy, profile)),
            self._egress(_fill(self.egress_policy, profile)),
        )


class HuaweiRenderer(VendorRenderer):
    """Huawei BRAS: average (CIR) and, with a burst, peak (PIR) rates in bit/s."""

    vendor = "huawei"
    delegated_pool_attribute = "Huawei-Delegated-IPv6-Prefix-Pool"

    def __init__(self, dictionary: RadiusDictionary, **options: Any) -> None:
        super().__init__(dictionary, **options)
        slot = self._slot
        self._input_average = slot("Huawei-Input-Average-Rate", _INTEGER_TYPES)
        self._output_average = slot("Huawei-Output-Average-Rate", _INTEGER_TYPES)
        self._input_peak = slot("Huawei-Input-Peak-Rate", _INTEGER_TYPES)
        self._output_peak = slot("Huawei-Output-Peak-Rate", _INTEGER_TYPES)

    @staticmethod
    def _bps(kbps: int) -> int:
        bps = kbps * 1000
        if bps > _UINT32_MAX:
            raise InvalidProfile(f"huawei: {kbps} kbit/s does not fit a 32-bit bit/s rate")
        return bps

    def _speed_attributes(self, profile: SpeedProfile) -> tuple[Attribute, ...]:
        bps = self._bps
        out = [self._input_average(bps(profile.up_kbps)), self._output_average(bps(profile.down_kbps))]
        if profile.burst_up_kbps is not None:
            out.append(self._input_peak(bps(profile.burst_up_kbps)))
        if profile.burst_down_kbps is not None:
            out.append(self._output_peak(bps(profile.burst_down_kbps)))
        return tuple(out)


class AccelPppRenderer(VendorRenderer):
    """accel-ppp: "down/up" kbit/s in Filter-Id (or the attribute its [shaper] attr= names)."""

    vendor = "accel-ppp"

    def __init__(
        self, dictionary: RadiusDictionary, *, rate_attribute: str = "Filter-Id", **options: Any
    ) -> None:
        super().__init__(dictionary, **options)
        self._rate = self._slot(rate_attribute, _STRING_TYPES)

    def _speed_attributes(self, profile: SpeedProfile) -> tuple[Attribute, ...]:
        return (self._rate(f"{profile.down_kbps}/{profile.up_kbps}"),)


# --------------------------------------------------------------------------- registry

RENDERERS: Mapping[str, type[VendorRenderer]] = MappingProxyType(
    {
        cls.vendor: cls
        for cls in (
            AccelPppRenderer,
            CiscoRenderer,
            GenericRenderer,
            HuaweiRenderer,
            JuniperRenderer,
            MikrotikRenderer,
        )
    }
)
"""Vendor name (as in the NAS configuration) -> renderer class."""


def supported_vendors() -> tuple[str, ...]:
    """The vendor names ``renderer_for`` accepts, sorted."""
    return tuple(sorted(RENDERERS))


def renderer_for(vendor: str, dictionary: RadiusDictionary, **options: Any) -> VendorRenderer:
    """Build the renderer of a vendor; ``UnknownVendor`` lists the supported names.

    ``options`` are the vendor's (``mode=``, ``policy_in=`` ...) and the caches'
    (``cache_size=``, ``profile_cache_size=``).  Raises ``MissingAttribute`` if the
    dictionary lacks an attribute the vendor needs.
    """
    try:
        cls = RENDERERS[vendor]
    except (KeyError, TypeError):
        raise UnknownVendor(str(vendor), supported_vendors()) from None
    return cls(dictionary, **options)
