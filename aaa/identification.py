"""Subscriber identification: which keys of an Access-Request may name a subscriber.

What: from a decoded request (``aaa.codec.RadiusPacket``) and a per-NAS
``IdentificationPlan``, ``candidates`` yields, in the plan's order, the keys the caller
looks up in its subscriber snapshot, taking the first hit:

- ``("login", "demo")``: the PPPoE User-Name, realm optionally stripped, optionally
  case-folded (``fold_login``);
- ``("mac", "aa:bb:cc:dd:ee:ff")``: the CPE MAC address from Calling-Station-Id or
  User-Name (many BRAS put it there for IPoE), canonicalised by ``parse_mac``;
- ``("port", PortKey(switch, port, vlan))``: the access-switch port from DHCP Option 82
  (RFC 3046) as the BRAS relays it in RADIUS (``find_option82``, ``port_key``).

Why a module of its own: identification is the part of authorization that differs per
NAS vendor and per access network, and it runs on every Access-Request.  Keeping it pure
(no I/O, no clock, no pyrad, no ``billing``) lets the snapshot side build its keys with the
same functions (``parse_mac``, ``fold_login``, ``port_key``) so both sides agree byte for
byte, and lets tests drive it with real packets.

Option 82 sources, in the order of preference when a request carries several:

1. RFC 4679 (vendor 3561, ADSL-Forum) ``Agent-Circuit-Id`` / ``Agent-Remote-Id``, raw
   sub-option values.  MikroTik RouterOS, Huawei, Juniper and accel-ppp send these.
2. ``Mikrotik-Agent-Circuit-Id`` / ``Mikrotik-Agent-Remote-Id`` if an operator dictionary
   defines them (ours does not: RouterOS uses the RFC 4679 attributes).
3. Juniper/ERX ``ERX-Acc-Loop-Cir-Id`` / ``ERX-Acc-Loop-Remote-Id`` (access-loop ids).
4. Cisco ``Cisco-AVPair`` ``"circuit-id-tag=..."`` / ``"remote-id-tag=..."`` (raw after ``=``).
5. Juniper/ERX ``ERX-Dhcp-Option-82``: the option 82 value (its sub-options).
6. Juniper/ERX ``ERX-Dhcp-Options``: the client's DHCP options, option 82 among them.
7. Huawei ``Huawei-DHCP-Option``: a DHCP option; the "new" format (``radius-server
   hw-dhcp-option-format new``) is a 1-octet code and 1-octet length TLV, the "old" one a
   2-octet code followed by the value.  A value whose first octet is 0 is read as the old
   format (in the new one 0 would be a pad option, which a BRAS does not send first).

Circuit-id and remote-id are each taken from the most preferred source that has one.

Port naming, which the switch-port bindings in the database must follow:

- binary "vlan-mod-port" circuit-id (D-Link, Cisco, SNR, TP-Link default; sub-option type
  0, length 4: VLAN (2 octets), module (1), port (1)): port ``"<module>/<port>"``, the VLAN;
- text (also TP-Link style type 1 + length + text): the interface name without a trailing
  ``:<vlan>`` or ``.<vlan>``, and that VLAN: ``eth 0/1/2:100`` -> ``("eth 0/1/2", 100)``,
  ``ge-0/0/1.100`` -> ``("ge-0/0/1", 100)``, ``1/1/14`` -> ``("1/1/14", None)``; printable
  text of any other shape is kept whole, without a VLAN;
- anything else: ``"0x"`` and the lower-case hex of the value, without a VLAN.

The switch is the remote-id: binary type 0 length 6 (or type 1 length 6) -> the switch MAC,
canonical; text that is a MAC -> canonical MAC; other text -> as sent (a hostname or
identifier); anything else -> ``"0x"`` + hex.  Without a remote-id there is no port key
unless the plan sets ``port_without_remote_id`` (then the switch is ``""``).

Nothing here raises on client data: a value that does not parse is no candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Literal, get_args

from aaa.codec import RadiusPacket
from aaa.dictionary import RadiusDictionary

__all__ = [
    "CALLING_STATION_ID",
    "OPTION82_ATTRIBUTES",
    "USER_NAME",
    "Candidate",
    "IdentificationPlan",
    "MacSource",
    "Method",
    "Option82",
    "Option82Attributes",
    "PortKey",
    "candidates",
    "decode_circuit_id",
    "decode_remote_id",
    "find_option82",
    "fold_login",
    "parse_mac",
    "port_key",
]

USER_NAME = 1
CALLING_STATION_ID = 31

Method = Literal["login", "mac", "port"]
"""An identification method; a plan lists them in the order to try."""
MacSource = Literal["Calling-Station-Id", "User-Name"]
"""An attribute that may carry the CPE MAC address (RADIUS names, as in RFC 2865)."""

_METHODS: tuple[str, ...] = get_args(Method)
_MAC_SOURCES: dict[str, int] = {"Calling-Station-Id": CALLING_STATION_ID, "User-Name": USER_NAME}


@dataclass(frozen=True, slots=True)
class PortKey:
    """An access-switch port: the key of a switch+port binding (hashable, comparable)."""

    switch: str
    port: str
    vlan: int | None = None


Candidate = tuple[Method, str | PortKey]
"""``("login", str)``, ``("mac", str)`` or ``("port", PortKey)``."""


# --------------------------------------------------------------------------- MAC addresses

_HEX_DIGITS = "0123456789abcdefABCDEF"


def parse_mac(value: str | bytes) -> str | None:
    """A MAC address in canonical form ``aa:bb:cc:dd:ee:ff``, or None if ``value`` is not one.

    Accepted, with any surrounding whitespace and either case: ``aabb.ccdd.eeff`` (Cisco),
    ``aa-bb-cc-dd-ee-ff`` (Windows, Huawei), ``aa:bb:cc:dd:ee:ff``, ``aabb-ccdd-eeff``
    (Huawei), ``aabbccddeeff``.  Mixed separators and every other shape are refused.
    """
    if isinstance(value, bytes | bytearray):
        if not value.isascii():
            return None
        text = value.decode("ascii").strip()
    else:
        text = value.strip()
    size = len(text)
    if size == 17:  # aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff
        sep = text[2]
        if sep not in ":-" or text[5::3] != sep * 4:
            return None
        digits = text[0::3] + text[1::3]  # only for the check below
        if digits.strip(_HEX_DIGITS):
            return None
        return text.lower() if sep == ":" else text.replace("-", ":").lower()
    if size == 14:  # aabb.ccdd.eeff, aabb-ccdd-eeff
        sep = text[4]
        if sep not in ".-" or text[9] != sep:
            return None
        digits = text[0:4] + text[5:9] + text[10:14]
    elif size == 12:
        digits = text
    else:
        return None
    if digits.strip(_HEX_DIGITS):
        return None
    return bytes.fromhex(digits).hex(":")


# --------------------------------------------------------------------------- logins


def fold_login(login: str) -> str:
    """The case-insensitive form of a login (``str.casefold``); the snapshot uses it too."""
    return login.casefold()


# --------------------------------------------------------------------------- Option 82


@dataclass(frozen=True, slots=True)
class Option82:
    """DHCP Option 82 values found in a request, raw, for the port key and for logs.

    ``source`` names the attribute the circuit-id came from (``"Agent-Circuit-Id"``,
    ``"Cisco-AVPair"``, ``"ERX-Dhcp-Options"`` ...).
    """

    circuit_id: bytes
    remote_id: bytes | None
    source: str

    def __str__(self) -> str:
        remote = self.remote_id.hex() if self.remote_id is not None else "-"
        return f"circuit-id={self.circuit_id.hex()} remote-id={remote} ({self.source})"


class _Kind(IntEnum):
    CIRCUIT_ID = 1
    REMOTE_ID = 2
    CISCO_AVPAIR = 3
    RELAY_AGENT_INFORMATION = 4  # the value of DHCP option 82: sub-option TLVs
    DHCP_OPTIONS = 5  # DHCP option TLVs, option 82 among them
    HUAWEI_DHCP_OPTION = 6


# (attribute name, what it carries); the order is the order of preference
OPTION82_ATTRIBUTES: tuple[tuple[str, _Kind], ...] = (
    ("Agent-Circuit-Id", _Kind.CIRCUIT_ID),
    ("Agent-Remote-Id", _Kind.REMOTE_ID),
    ("Mikrotik-Agent-Circuit-Id", _Kind.CIRCUIT_ID),
    ("Mikrotik-Agent-Remote-Id", _Kind.REMOTE_ID),
    ("ERX-Acc-Loop-Cir-Id", _Kind.CIRCUIT_ID),
    ("ERX-Acc-Loop-Remote-Id", _Kind.REMOTE_ID),
    ("Cisco-AVPair", _Kind.CISCO_AVPAIR),
    ("ERX-Dhcp-Option-82", _Kind.RELAY_AGENT_INFORMATION),
    ("ERX-Dhcp-Options", _Kind.DHCP_OPTIONS),
    ("Huawei-DHCP-Option", _Kind.HUAWEI_DHCP_OPTION),
)
"""Attributes that may carry Option 82, most preferred first."""

_CIRCUIT_ID_TAG = b"circuit-id-tag="
_REMOTE_ID_TAG = b"remote-id-tag="
_AVPAIR_TAGS = (_CIRCUIT_ID_TAG, _REMOTE_ID_TAG)


@dataclass(frozen=True, slots=True)
class Option82Attributes:
    """The wire keys of the Option 82 attributes, compiled once from the dictionary.

    ``by_vendor`` maps vendor id -> vendor type -> (preference, kind, attribute name), so
    the per-request scan is two dict look-ups per vendor attribute.  ``missing`` lists the
    names of ``OPTION82_ATTRIBUTES`` the dictionary lacks (log it at start-up).
    """

    by_vendor: Mapping[int, Mapping[int, tuple[int, _Kind, str]]]
    missing: tuple[str, ...] = ()

    @classmethod
    def from_dictionary(cls, dictionary: RadiusDictionary) -> Option82Attributes:
        by_vendor: dict[int, dict[int, tuple[int, _Kind, str]]] = {}
        missing: list[str] = []
        for preference, (name, kind) in enumerate(OPTION82_ATTRIBUTES):
            definition = dictionary.find(name)
            if definition is None or not definition.is_vendor_specific:
                missing.append(name)
                continue
            by_vendor.setdefault(definition.vendor_id, {})[definition.code] = (
                preference,
                kind,
                definition.name,
            )
        return cls(
            by_vendor=MappingProxyType({v: MappingProxyType(t) for v, t in by_vendor.items()}),
            missing=tuple(missing),
        )


def find_option82(req: RadiusPacket, attributes: Option82Attributes) -> Option82 | None:
    """The Option 82 circuit-id (and remote-id, if any) of a request, or None.

    One pass over the request's attributes; circuit-id and remote-id each come from the
    most preferred source that carries one (see the module docstring).
    """
    by_vendor = attributes.by_vendor
    circuit: bytes | None = None
    circuit_rank = 1 << 30
    circuit_source = ""
    remote: bytes | None = None
    remote_rank = 1 << 30
    for attr in req.attributes:
        if len(attr) != 3:
            continue
        types = by_vendor.get(attr[0])
        if types is None:
            continue
        entry = types.get(attr[1])  # type: ignore[misc]
        if entry is None:
            continue
        rank, kind, name = entry
        value: bytes = attr[2]  # type: ignore[misc]
        found_circuit: bytes | None = None
        found_remote: bytes | None = None
        if kind is _Kind.CIRCUIT_ID:
            found_circuit = value
        elif kind is _Kind.REMOTE_ID:
            found_remote = value
        elif kind is _Kind.CISCO_AVPAIR:
            if not value.startswith(_AVPAIR_TAGS):
                continue
            if value.startswith(_CIRCUIT_ID_TAG):
                found_circuit = value[len(_CIRCUIT_ID_TAG) :]
            else:
                found_remote = value[len(_REMOTE_ID_TAG) :]
        else:
            if kind is _Kind.RELAY_AGENT_INFORMATION:
                information: bytes | None = _strip_option82_header(value)
            elif kind is _Kind.DHCP_OPTIONS:
                information = _dhcp_option(value, 82)
            else:
                information = _huawei_option82(value)
            if information is None:
                continue
            found_circuit, found_remote = _sub_options(information)
        if found_circuit and rank < circuit_rank:
            circuit, circuit_rank, circuit_source = found_circuit, rank, name
        if found_remote and rank < remote_rank:
            remote, remote_rank = found_remote, rank
    if circuit is None:
        return None
    return Option82(circuit, remote, circuit_source)


def _dhcp_option(options: bytes, wanted: int) -> bytes | None:
    """The value of the first option ``wanted`` in DHCP option TLVs (RFC 2132 §2), or None."""
    pos = 0
    size = len(options)
    while pos < size:
        code = options[pos]
        if code == 0:  # pad
            pos += 1
            continue
        if code == 255 or pos + 1 >= size:  # end, or a truncated option
            return None
        end = pos + 2 + options[pos + 1]
        if end > size:
            return None
        if code == wanted:
            return options[pos + 2 : end]
        pos = end
    return None


def _strip_option82_header(value: bytes) -> bytes:
    """ERX-Dhcp-Option-82 is the option's value; tolerate a NAS that includes code and length."""
    if len(value) >= 2 and value[0] == 82 and value[1] == len(value) - 2:
        return value[2:]
    return value


def _huawei_option82(value: bytes) -> bytes | None:
    if len(value) >= 2 and value[0] == 0:  # old format: 2-octet option code, then the value
        return value[2:] if value[1] == 82 else None
    return _dhcp_option(value, 82)


def _sub_options(information: bytes) -> tuple[bytes | None, bytes | None]:
    """Circuit-id (sub-option 1) and remote-id (2) of an option 82 value (RFC 3046 §2.0)."""
    circuit: bytes | None = None
    remote: bytes | None = None
    pos = 0
    size = len(information)
    while pos + 2 <= size:
        code = information[pos]
        end = pos + 2 + information[pos + 1]
        if end > size:  # truncated: keep what came before
            break
        if code == 1 and circuit is None:
            circuit = information[pos + 2 : end]
        elif code == 2 and remote is None:
            remote = information[pos + 2 : end]
        pos = end
    return circuit, remote


# ----------------------------------------------------------------- circuit-id, remote-id

# interface name, then an optional ":<vlan>" or ".<vlan>" (Huawei/ZTE "eth 0/1/2:100",
# Cisco "Gi1/0/5", Juniper "ge-0/0/1.100", bare "1/1/14")
_TEXT_PORT = re.compile(r"(?P<port>(?:[A-Za-z][A-Za-z-]*\s?)?\d+(?:/\d+)*)(?:[:.](?P<vlan>\d{1,4}))?")


def decode_circuit_id(raw: bytes) -> tuple[str, int | None]:
    """Port name and VLAN (or None) of a circuit-id; see the module docstring for the forms."""
    size = len(raw)
    if size == 6 and raw[0] == 0 and raw[1] == 4:
        # vlan-mod-port: type 0, length 4, VLAN (2 octets), module, port
        return f"{raw[4]}/{raw[5]}", (raw[2] << 8) | raw[3]
    if size > 2 and raw[0] == 1 and raw[1] == size - 2:  # type 1 (user-defined), length, text
        text = _printable(raw[2:])
        if text is not None:
            return _text_port(text)
    text = _printable(raw)
    if text is not None:
        return _text_port(text)
    return "0x" + raw.hex(), None


def _text_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    match = _TEXT_PORT.fullmatch(text)
    if match is None:
        return text, None
    vlan = match.group("vlan")
    if vlan is None:
        return text, None
    number = int(vlan)
    if not 1 <= number <= 4094:  # not a VLAN id: keep the text whole
        return text, None
    return match.group("port"), number


def _printable(raw: bytes) -> str | None:
    if not raw or not raw.isascii():
        return None
    text = raw.decode("ascii")
    return text if text.isprintable() else None


def decode_remote_id(raw: bytes) -> str:
    """The switch a remote-id names: its canonical MAC, its text identifier, or ``0x`` + hex."""
    if len(raw) == 8 and raw[0] in (0, 1) and raw[1] == 6:  # type, length 6, MAC
        return raw[2:].hex(":")
    text = _printable(raw)
    if text is None:
        return "0x" + raw.hex()
    return parse_mac(text) or text


def port_key(circuit_id: bytes, remote_id: bytes | None) -> PortKey:
    """The ``PortKey`` of raw Option 82 values (``""`` as switch without a remote-id)."""
    port, vlan = decode_circuit_id(circuit_id)
    switch = decode_remote_id(remote_id) if remote_id else ""
    return PortKey(switch, port, vlan)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class IdentificationPlan:
    """How one NAS's requests are identified (from the NAS's configuration).

    ``methods``: the methods to try, in order.  ``mac_from``: the attributes that may
    carry the CPE MAC, in order.  ``strip_realm``: drop ``@realm`` (after the last ``@``)
    from the login.  ``login_case_sensitive``: if False, logins are compared through
    ``fold_login``, and the snapshot must key them the same way.
    ``port_without_remote_id``: yield a port key with switch ``""`` when the request has a
    circuit-id but no remote-id (only safe if circuit-ids are unique across switches).
    Invalid settings raise ``ValueError`` naming the setting and what is allowed.
    """

    methods: tuple[Method, ...] = ("login", "mac", "port")
    mac_from: tuple[MacSource, ...] = ("Calling-Station-Id",)
    strip_realm: bool = False
    login_case_sensitive: bool = True
    port_without_remote_id: bool = False
    _mac_types: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in _METHODS]
        if unknown or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods {self.methods!r}: each at most once, from {', '.join(_METHODS)}")
        bad_sources = [s for s in self.mac_from if s not in _MAC_SOURCES]
        if bad_sources or len(set(self.mac_from)) != len(self.mac_from):
            raise ValueError(f"mac_from {self.mac_from!r}: each at most once, from {', '.join(_MAC_SOURCES)}")
        object.__setattr__(self, "_mac_types", tuple(_MAC_SOURCES[s] for s in self.mac_from))

    def login_of(self, user_name: bytes) -> str | None:
        """The login key of a User-Name value, or None (not UTF-8, or empty)."""
        try:
            login = user_name.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if self.strip_realm:
            user, at, _realm = login.rpartition("@")
            if at:
                login = user
        if not self.login_case_sensitive:
            login = fold_login(login)
        return login or None


def candidates(
    req: RadiusPacket, plan: IdentificationPlan, option82: Option82Attributes
) -> Iterator[Candidate]:
    """Yield the request's identification keys in the plan's order; the first hit wins.

    Lazy: the caller stops iterating at its first hit, so later methods cost nothing.
    A MAC found in several attributes is yielded once.
    """
    for method in plan.methods:
        if method == "login":
            user_name = req.get(USER_NAME)
            if user_name is not None:
                login = plan.login_of(user_name)
                if login is not None:
                    yield "login", login
        elif method == "mac":
            seen: str | None = None
            for attr_type in plan._mac_types:
                raw = req.get(attr_type)
                if raw is None:
                    continue
                mac = parse_mac(raw)
                if mac is not None and mac != seen:
                    seen = mac
                    yield "mac", mac
        else:
            found = find_option82(req, option82)
            if found is not None and (found.remote_id or plan.port_without_remote_id):
                yield "port", port_key(found.circuit_id, found.remote_id)
