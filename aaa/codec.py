"""RADIUS codec: datagram bytes <-> ``RadiusPacket``, authenticators, password hiding, values.

Why a codec of our own: pyrad accepts packets RFC 2865 says to drop (attributes running
past the Length field, type 0, a Message-Authenticator of the wrong length, datagrams over
4096 octets), rejects trailing padding RFC 2865 says to ignore, compares authenticators
with ``==``, and costs several times the CPU of a lean parser (see LIBRARY-NOTES.md).  So
this module is strict, small and pure: functions over a frozen dataclass, no sockets, no
clock, no pyrad (pyrad only parses the dictionaries, ``aaa.dictionary``).

Shape of a decoded packet: ``attributes`` is a tuple in wire order of ``(type, value)``
pairs; the content of each Vendor-Specific attribute (type 26) is split into its
sub-attributes, each a ``(vendor_id, vendor_type, value)`` triple in place of the
Vendor-Specific attribute.  Values are raw ``bytes``; ``decode_value`` /
``encode_value`` convert by dictionary data type.  Only the RFC 2865 §5.26 vendor
format (1-octet type, 1-octet length) is accepted; a Vendor-Specific attribute that does
not parse that way is a malformed packet.

Everything a peer can get wrong raises ``MalformedPacket`` with a ``Defect`` (a ``str``
enum, so callers compare members, and logs show a stable word); everything we are asked
to encode that does not fit the protocol raises ``EncodeError``.  Both derive from
``CodecError``.  Verification helpers return ``bool`` and use ``hmac.compare_digest``.

Message-Authenticator (RFC 3579 §3.2, RFC 5176 §3.3, RFC 5997): HMAC-MD5 keyed with the
shared secret over the packet with the attribute's value zeroed, with in the
Authenticator field: the packet's own Request Authenticator for Access-Request and
Status-Server; 16 zero octets for Accounting-Request, CoA-Request, Disconnect-Request and
for an Accounting-Response (unless it answers a Status-Server); the request's
authenticator for every other reply.  That is what FreeRADIUS and pyrad do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Network

__all__ = [
    "AUTHENTICATOR_LENGTH",
    "CHAP_CHALLENGE",
    "CHAP_PASSWORD",
    "HEADER_LENGTH",
    "MAX_PACKET_LENGTH",
    "MESSAGE_AUTHENTICATOR",
    "PROXY_STATE",
    "USER_PASSWORD",
    "VENDOR_SPECIFIC",
    "Attribute",
    "Code",
    "CodecError",
    "Defect",
    "EncodeError",
    "MalformedPacket",
    "RadiusPacket",
    "StandardAttribute",
    "Value",
    "VendorAttribute",
    "chap_challenge",
    "chap_password",
    "decode",
    "decode_tagged",
    "decode_value",
    "decrypt_user_password",
    "encode_attributes",
    "encode_reply",
    "encode_request",
    "encode_value",
    "encrypt_user_password",
    "new_authenticator",
    "verify_chap_password",
    "verify_message_authenticator",
    "verify_request_authenticator",
    "verify_response_authenticator",
]

HEADER_LENGTH = 20
AUTHENTICATOR_LENGTH = 16
MAX_PACKET_LENGTH = 4096  # RFC 2865 §3, and the largest datagram we accept
MAX_VALUE_LENGTH = 253  # one attribute: 255 minus type and length octets
MAX_VENDOR_VALUE_LENGTH = 247  # minus Vendor-Specific header, vendor id, sub-attribute header
MAX_USER_PASSWORD_LENGTH = 128  # RFC 2865 §5.2

# attribute types the codec itself handles
USER_PASSWORD = 2
CHAP_PASSWORD = 3
VENDOR_SPECIFIC = 26
PROXY_STATE = 33
CHAP_CHALLENGE = 60
MESSAGE_AUTHENTICATOR = 80


class Code(IntEnum):
    """RADIUS packet codes (RFC 2865, 2866, 5176, 5997)."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


# requests whose authenticator is an MD5 over the packet (RFC 2866 §3, RFC 5176 §2.3)
_SIGNED_REQUESTS = frozenset({Code.ACCOUNTING_REQUEST, Code.DISCONNECT_REQUEST, Code.COA_REQUEST})
# requests whose authenticator is random
_RANDOM_REQUESTS = frozenset({Code.ACCESS_REQUEST, Code.STATUS_SERVER})
_REPLIES: dict[int, frozenset[Code]] = {
    Code.ACCESS_REQUEST: frozenset({Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE}),
    Code.ACCOUNTING_REQUEST: frozenset({Code.ACCOUNTING_RESPONSE}),
    # Status-Server is answered by Access-Accept on the authentication port and by
    # Accounting-Response on the accounting port (RFC 5997 §3)
    Code.STATUS_SERVER: frozenset({Code.ACCESS_ACCEPT, Code.ACCOUNTING_RESPONSE}),
    Code.DISCONNECT_REQUEST: frozenset({Code.DISCONNECT_ACK, Code.DISCONNECT_NAK}),
    Code.COA_REQUEST: frozenset({Code.COA_ACK, Code.COA_NAK}),
}
_CODES: dict[int, Code] = {int(c): c for c in Code}


class Defect(StrEnum):
    """Why a packet or a received value is malformed: the ``reason`` of ``MalformedPacket``."""

    PACKET_TOO_SHORT = "packet-too-short"
    DATAGRAM_TOO_LONG = "datagram-too-long"
    LENGTH_BELOW_MINIMUM = "length-below-20"
    LENGTH_ABOVE_MAXIMUM = "length-above-4096"
    LENGTH_EXCEEDS_DATAGRAM = "length-exceeds-datagram"
    ATTRIBUTE_TRUNCATED = "attribute-header-truncated"
    ATTRIBUTE_LENGTH_BELOW_2 = "attribute-length-below-2"
    ATTRIBUTE_OVERFLOW = "attribute-overflows-packet"
    ATTRIBUTE_TYPE_ZERO = "attribute-type-zero"
    MESSAGE_AUTHENTICATOR_LENGTH = "message-authenticator-length"
    MESSAGE_AUTHENTICATOR_DUPLICATE = "message-authenticator-duplicate"
    VENDOR_SPECIFIC_TOO_SHORT = "vendor-specific-too-short"
    VENDOR_SPECIFIC_VENDOR_ID = "vendor-specific-bad-vendor-id"
    VENDOR_ATTRIBUTE_TRUNCATED = "vendor-attribute-header-truncated"
    VENDOR_ATTRIBUTE_LENGTH_BELOW_2 = "vendor-attribute-length-below-2"
    VENDOR_ATTRIBUTE_OVERFLOW = "vendor-attribute-overflows-vendor-specific"
    # value-level defects, raised by the value and password helpers
    VALUE_LENGTH = "value-length"
    VALUE_NOT_UTF8 = "value-not-utf8"
    VALUE_INVALID = "value-invalid"
    USER_PASSWORD_LENGTH = "user-password-length"
    CHAP_PASSWORD_LENGTH = "chap-password-length"


class CodecError(Exception):
    """Base of the codec's exceptions."""


class MalformedPacket(CodecError):
    """A received packet (or one of its values) breaks the protocol; drop it and log ``reason``."""

    def __init__(self, reason: Defect, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else str(reason))


class EncodeError(CodecError, ValueError):
    """What we were asked to encode does not fit the protocol (too long, out of range...)."""


StandardAttribute = tuple[int, bytes]
VendorAttribute = tuple[int, int, bytes]
Attribute = StandardAttribute | VendorAttribute
Value = int | str | bytes | IPv4Address | IPv6Address | IPv6Network | datetime


@dataclass(frozen=True, slots=True)
class RadiusPacket:
    """A decoded RADIUS packet.

    ``raw`` holds the packet's octets up to its Length field (trailing padding dropped);
    the verification helpers need it.  A packet built in code rather than decoded has
    ``raw == b""`` and cannot be verified.
    """

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[Attribute, ...] = ()
    raw: bytes = field(default=b"", repr=False)
    _first: dict[int, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def get(self, attr_type: int) -> bytes | None:
        """Value of the first standard attribute of that type, or None.

        The first call indexes the standard attributes (an accounting record reads a dozen).
        """
        first = self._first
        if first is None:
            first = {}
            for attr in self.attributes:
                if len(attr) == 2 and attr[0] not in first:
                    first[attr[0]] = attr[1]  # type: ignore[assignment]
            object.__setattr__(self, "_first", first)
        return first.get(attr_type)

    def get_all(self, attr_type: int) -> tuple[bytes, ...]:
        """Values of every standard attribute of that type, in wire order."""
        return tuple(a[1] for a in self.attributes if len(a) == 2 and a[0] == attr_type)  # type: ignore[misc]

    def get_vendor(self, vendor_id: int, vendor_type: int) -> bytes | None:
        """Value of the first vendor sub-attribute with that vendor id and type, or None."""
        for attr in self.attributes:
            if len(attr) == 3 and attr[0] == vendor_id and attr[1] == vendor_type:
                return attr[2]  # type: ignore[misc]
        return None

    def get_all_vendor(self, vendor_id: int, vendor_type: int) -> tuple[bytes, ...]:
        """Values of every vendor sub-attribute with that vendor id and type, in wire order."""
        return tuple(
            a[2]  # type: ignore[misc]
            for a in self.attributes
            if len(a) == 3 and a[0] == vendor_id and a[1] == vendor_type
        )

    @property
    def has_message_authenticator(self) -> bool:
        return self.get(MESSAGE_AUTHENTICATOR) is not None


_HEADER = struct.Struct("!BBH16s")
_SHORT_HEADER = struct.Struct("!BBH")
_UINT32 = struct.Struct("!I")
_VSA_HEADER = struct.Struct("!BBIBB")
_ZERO_AUTHENTICATOR = bytes(AUTHENTICATOR_LENGTH)
_MA_PLACEHOLDER = bytes((MESSAGE_AUTHENTICATOR, 18)) + _ZERO_AUTHENTICATOR


# --------------------------------------------------------------------------- decoding


def decode(datagram: bytes | bytearray | memoryview) -> RadiusPacket:
    """Decode and validate one datagram; raise ``MalformedPacket`` naming the defect.

    Octets after the Length field are padding and ignored (RFC 2865 §3).  Authenticators
    are not checked here: that needs the client's secret, see the ``verify_*`` functions.
    """
    size = len(datagram)
    if size < HEADER_LENGTH:
        raise MalformedPacket(Defect.PACKET_TOO_SHORT, f"{size} octets, a header is 20")
    if size > MAX_PACKET_LENGTH:
        raise MalformedPacket(Defect.DATAGRAM_TOO_LONG, f"{size} octets, at most 4096")
    code, identifier, length, authenticator = _HEADER.unpack_from(datagram)
    if length < HEADER_LENGTH:
        raise MalformedPacket(Defect.LENGTH_BELOW_MINIMUM, f"Length field is {length}")
    if length > MAX_PACKET_LENGTH:
        raise MalformedPacket(Defect.LENGTH_ABOVE_MAXIMUM, f"Length field is {length}")
    if length > size:
        raise MalformedPacket(Defect.LENGTH_EXCEEDS_DATAGRAM, f"Length field is {length}, datagram {size}")
    data = datagram if length == size and type(datagram) is bytes else bytes(datagram[:length])

    attributes: list[Attribute] = []
    append = attributes.append
    pos = HEADER_LENGTH
    seen_message_authenticator = False
    while pos < length:
        if length - pos < 2:
            raise MalformedPacket(Defect.ATTRIBUTE_TRUNCATED, f"1 octet left at offset {pos}")
        attr_type = data[pos]
        attr_length = data[pos + 1]
        if attr_type == 0:
            raise MalformedPacket(Defect.ATTRIBUTE_TYPE_ZERO, f"at offset {pos}")
        if attr_length < 2:
            raise MalformedPacket(
                Defect.ATTRIBUTE_LENGTH_BELOW_2, f"type {attr_type} length {attr_length} at offset {pos}"
            )
        end = pos + attr_length
        if end > length:
            raise MalformedPacket(
                Defect.ATTRIBUTE_OVERFLOW,
                f"type {attr_type} length {attr_length} at offset {pos} ends at {end}, Length is {length}",
            )
        if attr_type == VENDOR_SPECIFIC:
            _decode_vendor_specific(data, pos, end, append)
        else:
            if attr_type == MESSAGE_AUTHENTICATOR:
                if attr_length != 18:
                    raise MalformedPacket(
                        Defect.MESSAGE_AUTHENTICATOR_LENGTH, f"length {attr_length}, must be 18"
                    )
                if seen_message_authenticator:
                    raise MalformedPacket(
                        Defect.MESSAGE_AUTHENTICATOR_DUPLICATE, f"second one at offset {pos}"
                    )
                seen_message_authenticator = True
            append((attr_type, data[pos + 2 : end]))
        pos = end
    return RadiusPacket(_CODES.get(code, code), identifier, authenticator, tuple(attributes), data)


def _decode_vendor_specific(data: bytes, start: int, end: int, append: Callable[[Attribute], None]) -> None:
    """Split one Vendor-Specific attribute (RFC 2865 §5.26 format) into sub-attributes."""
    if end - start < 8:  # type, length, vendor id, one sub-attribute header
        raise MalformedPacket(Defect.VENDOR_SPECIFIC_TOO_SHORT, f"length {end - start} at offset {start}")
    vendor_id = _UINT32.unpack_from(data, start + 2)[0]
    if vendor_id >> 24:
        raise MalformedPacket(
            Defect.VENDOR_SPECIFIC_VENDOR_ID,
            f"vendor id {vendor_id:#010x} at offset {start}: high octet not 0",
        )
    pos = start + 6
    while pos < end:
        if end - pos < 2:
            raise MalformedPacket(Defect.VENDOR_ATTRIBUTE_TRUNCATED, f"vendor {vendor_id} at offset {pos}")
        vendor_type = data[pos]
        sub_length = data[pos + 1]
        if sub_length < 2:
            raise MalformedPacket(
                Defect.VENDOR_ATTRIBUTE_LENGTH_BELOW_2,
                f"vendor {vendor_id} type {vendor_type} length {sub_length} at offset {pos}",
            )
        sub_end = pos + sub_length
        if sub_end > end:
            raise MalformedPacket(
                Defect.VENDOR_ATTRIBUTE_OVERFLOW,
                f"vendor {vendor_id} type {vendor_type} length {sub_length} at offset {pos}",
            )
        append((vendor_id, vendor_type, data[pos + 2 : sub_end]))
        pos = sub_end


# --------------------------------------------------------------------------- verification


def verify_request_authenticator(packet: RadiusPacket, secret: bytes) -> bool:
    """Check the Request Authenticator of an Accounting-, CoA- or Disconnect-Request.

    RFC 2866 §3 / RFC 5176 §2.3: MD5(Code + Identifier + Length + 16 zero octets +
    Attributes + Secret).  (Access-Request and Status-Server authenticators are random:
    check their Message-Authenticator instead.)
    """
    if packet.code not in _SIGNED_REQUESTS:
        raise ValueError(f"code {packet.code} has no computed Request Authenticator")
    raw = _raw_of(packet)
    expected = hashlib.md5(raw[:4] + _ZERO_AUTHENTICATOR + raw[HEADER_LENGTH:] + secret).digest()
    return hmac.compare_digest(expected, packet.authenticator)


def verify_response_authenticator(reply: RadiusPacket, request: RadiusPacket, secret: bytes) -> bool:
    """Check that ``reply`` answers ``request``: same identifier, valid Response Authenticator.

    RFC 2865 §3: MD5(Code + Identifier + Length + Request Authenticator + Attributes +
    Secret).  Used by our own clients (CoA / Disconnect to a NAS, tests).
    """
    if reply.identifier != request.identifier:
        return False
    raw = _raw_of(reply)
    expected = hashlib.md5(raw[:4] + request.authenticator + raw[HEADER_LENGTH:] + secret).digest()
    return hmac.compare_digest(expected, reply.authenticator)


def verify_message_authenticator(
    packet: RadiusPacket, secret: bytes, request: RadiusPacket | None = None
) -> bool:
    """Check the Message-Authenticator (RFC 3579 §3.2); False if the packet has none.

    For a reply, pass the ``request`` it answers: the HMAC covers the request's
    authenticator (see the module docstring for which vector each code uses).
    """
    raw = _raw_of(packet)
    offset = _message_authenticator_offset(raw)
    if offset is None:
        return False
    vector = _message_authenticator_vector(packet.code, packet.authenticator, request)
    signed = raw[:4] + vector + raw[HEADER_LENGTH : offset + 2] + _ZERO_AUTHENTICATOR + raw[offset + 18 :]
    expected = hmac.digest(secret, signed, "md5")
    return hmac.compare_digest(expected, raw[offset + 2 : offset + 18])


def _raw_of(packet: RadiusPacket) -> bytes:
    if not packet.raw:
        raise ValueError("packet was not decoded from bytes: nothing to verify")
    return packet.raw


def _message_authenticator_offset(raw: bytes) -> int | None:
    pos = HEADER_LENGTH
    end = len(raw)
    while pos < end:  # raw was validated by decode()
        if raw[pos] == MESSAGE_AUTHENTICATOR:
            return pos
        pos += raw[pos + 1]
    return None


def _message_authenticator_vector(code: int, authenticator: bytes, request: RadiusPacket | None) -> bytes:
    if code in _RANDOM_REQUESTS:
        return authenticator
    if code in _SIGNED_REQUESTS:
        return _ZERO_AUTHENTICATOR
    if request is None:
        raise ValueError(f"code {code} is a reply: pass the request it answers")
    if code == Code.ACCOUNTING_RESPONSE and request.code != Code.STATUS_SERVER:
        return _ZERO_AUTHENTICATOR
    return request.authenticator


# --------------------------------------------------------------------------- encoding


def new_authenticator() -> bytes:
    """A random Request Authenticator (Access-Request, Status-Server)."""
    return secrets.token_bytes(AUTHENTICATOR_LENGTH)


def encode_attributes(attributes: Iterable[Attribute]) -> bytes:
    """Encode attributes in order; each vendor triple becomes its own Vendor-Specific."""
    parts: list[bytes] = []
    for attr in attributes:
        if len(attr) == 2:
            attr_type, value = attr  # type: ignore[misc]
            if not 1 <= attr_type <= 255:
                raise EncodeError(f"attribute type {attr_type} is not 1-255")
            if len(value) > MAX_VALUE_LENGTH:
                raise EncodeError(f"attribute {attr_type}: {len(value)} octets, at most {MAX_VALUE_LENGTH}")
            parts.append(bytes((attr_type, len(value) + 2)))
        else:
            vendor_id, vendor_type, value = attr  # type: ignore[misc]
            if not 0 <= vendor_id <= 0xFFFFFF:
                raise EncodeError(f"vendor id {vendor_id} does not fit 3 octets")
            if not 0 <= vendor_type <= 255:
                raise EncodeError(f"vendor {vendor_id} attribute type {vendor_type} is not 0-255")
            if len(value) > MAX_VENDOR_VALUE_LENGTH:
                raise EncodeError(
                    f"vendor {vendor_id} attribute {vendor_type}: {len(value)} octets, "
                    f"at most {MAX_VENDOR_VALUE_LENGTH}"
                )
            parts.append(
                _VSA_HEADER.pack(VENDOR_SPECIFIC, len(value) + 8, vendor_id, vendor_type, len(value) + 2)
            )
        parts.append(bytes(value))
    return b"".join(parts)


def encode_request(
    code: int,
    identifier: int,
    attributes: Iterable[Attribute],
    secret: bytes,
    *,
    authenticator: bytes | None = None,
    message_authenticator: bool | None = None,
) -> bytes:
    """Encode a request (our CoA / Disconnect client, simulators, tests).

    Access-Request and Status-Server get ``authenticator`` (random if None; pass it when
    a User-Password was hidden with it) and, by default, a Message-Authenticator as first
    attribute.  Accounting-, CoA- and Disconnect-Requests get the computed Request
    Authenticator; a Message-Authenticator only if asked.
    """
    if not 0 <= identifier <= 255:
        raise EncodeError(f"identifier {identifier} is not 0-255")
    if message_authenticator is None:
        message_authenticator = code in _RANDOM_REQUESTS
    body = _encode_body(attributes, message_authenticator)
    header = _header(code, identifier, body)
    if code in _SIGNED_REQUESTS:
        if authenticator is not None:
            raise ValueError(f"code {code}: the Request Authenticator is computed, do not pass one")
        if message_authenticator:
            body = _sign_message_authenticator(header, _ZERO_AUTHENTICATOR, body, secret)
        authenticator = hashlib.md5(header + _ZERO_AUTHENTICATOR + body + secret).digest()
    else:
        if authenticator is None:
            authenticator = new_authenticator()
        elif len(authenticator) != AUTHENTICATOR_LENGTH:
            raise EncodeError(f"authenticator of {len(authenticator)} octets, must be 16")
        if message_authenticator:
            body = _sign_message_authenticator(header, authenticator, body, secret)
    return header + authenticator + body


def encode_reply(
    request: RadiusPacket,
    code: int,
    attributes: Iterable[Attribute],
    secret: bytes,
    *,
    message_authenticator: bool | None = None,
) -> bytes:
    """Encode the reply to ``request`` with its Response Authenticator (RFC 2865 §3).

    Message-Authenticator: by default whenever the request is an Access-Request or a
    Status-Server or carried one; it is placed as the FIRST attribute (BlastRADIUS,
    CVE-2024-3596).  The request's Proxy-State attributes are copied, in order, after
    ``attributes`` (RFC 2865 §5.33): do not pass them yourself.
    """
    allowed = _REPLIES.get(request.code)
    if allowed is not None and code not in allowed:
        raise ValueError(f"code {code} does not answer a request of code {request.code}")
    attributes = list(attributes)
    if any(len(a) == 2 and a[0] == PROXY_STATE for a in attributes):
        raise EncodeError("Proxy-State is copied from the request by encode_reply; do not pass it")
    attributes.extend((PROXY_STATE, value) for value in request.get_all(PROXY_STATE))
    if message_authenticator is None:
        message_authenticator = request.code in _RANDOM_REQUESTS or request.has_message_authenticator
    body = _encode_body(attributes, message_authenticator)
    header = _header(code, request.identifier, body)
    if message_authenticator:
        vector = _message_authenticator_vector(code, request.authenticator, request)
        body = _sign_message_authenticator(header, vector, body, secret)
    response_authenticator = hashlib.md5(header + request.authenticator + body + secret).digest()
    return header + response_authenticator + body


def _encode_body(attributes: Iterable[Attribute], message_authenticator: bool) -> bytes:
    attributes = list(attributes)
    if any(len(a) == 2 and a[0] == MESSAGE_AUTHENTICATOR for a in attributes):
        raise EncodeError("Message-Authenticator is added by the encoder: use message_authenticator=True")
    body = encode_attributes(attributes)
    return _MA_PLACEHOLDER + body if message_authenticator else body


def _header(code: int, identifier: int, body: bytes) -> bytes:
    length = HEADER_LENGTH + len(body)
    if length > MAX_PACKET_LENGTH:
        raise EncodeError(f"packet of {length} octets, at most {MAX_PACKET_LENGTH}")
    return _SHORT_HEADER.pack(code, identifier, length)


def _sign_message_authenticator(header: bytes, vector: bytes, body: bytes, secret: bytes) -> bytes:
    """Fill in the Message-Authenticator placeholder at the start of ``body``."""
    mac = hmac.digest(secret, header + vector + body, "md5")
    return body[:2] + mac + body[18:]


# --------------------------------------------------------------------------- passwords


def encrypt_user_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Hide a User-Password (RFC 2865 §5.2): pad to 16-octet blocks, XOR with chained MD5s."""
    if len(password) > MAX_USER_PASSWORD_LENGTH:
        raise EncodeError(f"User-Password of {len(password)} octets, at most {MAX_USER_PASSWORD_LENGTH}")
    padded_length = max(16, -(-len(password) // 16) * 16)
    padded = password.ljust(padded_length, b"\0")
    return _password_xor(padded, secret, authenticator, decrypt=False)


def decrypt_user_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Recover a User-Password (RFC 2865 §5.2), trailing NUL padding removed.

    A wrong secret yields garbage, not an error: compare the result with the stored
    password (``hmac.compare_digest``).
    """
    if not hidden or len(hidden) % 16 or len(hidden) > MAX_USER_PASSWORD_LENGTH:
        raise MalformedPacket(
            Defect.USER_PASSWORD_LENGTH, f"{len(hidden)} octets, must be a multiple of 16 from 16 to 128"
        )
    return _password_xor(hidden, secret, authenticator, decrypt=True).rstrip(b"\0")


def _password_xor(data: bytes, secret: bytes, authenticator: bytes, *, decrypt: bool) -> bytes:
    out = []
    previous = authenticator
    for i in range(0, len(data), 16):
        block = data[i : i + 16]
        key = hashlib.md5(secret + previous).digest()
        result = (int.from_bytes(block, "big") ^ int.from_bytes(key, "big")).to_bytes(16, "big")
        out.append(result)
        previous = block if decrypt else result  # the chain runs over the hidden blocks
    return b"".join(out)


def chap_challenge(packet: RadiusPacket) -> bytes:
    """The CHAP challenge: CHAP-Challenge if present, else the Request Authenticator (RFC 2865 §2.2)."""
    challenge = packet.get(CHAP_CHALLENGE)
    return packet.authenticator if challenge is None else challenge


def chap_password(chap_id: int, password: bytes, challenge: bytes) -> bytes:
    """The CHAP-Password value: CHAP Identifier + MD5(Identifier + password + challenge) (RFC 1994)."""
    ident = bytes((chap_id,))
    return ident + hashlib.md5(ident + password + challenge).digest()


def verify_chap_password(packet: RadiusPacket, password: bytes) -> bool:
    """Check the request's CHAP-Password against the cleartext ``password``; False if it has none."""
    value = packet.get(CHAP_PASSWORD)
    if value is None:
        return False
    if len(value) != 17:
        raise MalformedPacket(Defect.CHAP_PASSWORD_LENGTH, f"{len(value)} octets, must be 17")
    expected = chap_password(value[0], password, chap_challenge(packet))
    return hmac.compare_digest(expected, value)


# --------------------------------------------------------------------------- values

# data type -> (octets, signed)
_INT_SIZES = {
    "integer": (4, False),
    "signed": (4, True),
    "short": (2, False),
    "byte": (1, False),
    "integer64": (8, False),
}
_BYTES_TYPES = frozenset({"octets", "abinary", "tlv", "ifid"})
_FIXED_LENGTHS = {"ipaddr": 4, "ipv6addr": 16, "date": 4, "ether": 6, "ifid": 8}


def decode_value(data_type: str, raw: bytes) -> Value:
    """Convert a received value by its dictionary data type (``AttributeDef.data_type``).

    string -> str (UTF-8), octets/abinary/tlv/ifid -> bytes, integer/signed/short/byte/
    integer64 -> int, date -> aware UTC datetime, ipaddr -> IPv4Address, ipv6addr ->
    IPv6Address, ipv6prefix -> IPv6Network, ether -> "aa:bb:cc:dd:ee:ff".
    Raises ``MalformedPacket`` (VALUE_LENGTH, VALUE_NOT_UTF8, VALUE_INVALID).
    """
    expected = _FIXED_LENGTHS.get(data_type)
    if expected is not None and len(raw) != expected:
        raise MalformedPacket(Defect.VALUE_LENGTH, f"{data_type} of {len(raw)} octets, must be {expected}")
    if data_type == "string":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket(Defect.VALUE_NOT_UTF8, str(exc)) from None
    if data_type in _BYTES_TYPES:
        return bytes(raw)
    int_size = _INT_SIZES.get(data_type)
    if int_size is not None:
        size, signed = int_size
        if len(raw) != size:
            raise MalformedPacket(Defect.VALUE_LENGTH, f"{data_type} of {len(raw)} octets, must be {size}")
        return int.from_bytes(raw, "big", signed=signed)
    if data_type == "ipaddr":
        return IPv4Address(raw)
    if data_type == "ipv6addr":
        return IPv6Address(raw)
    if data_type == "date":
        return datetime.fromtimestamp(int.from_bytes(raw, "big"), UTC)
    if data_type == "ether":
        return raw.hex(":")
    if data_type == "ipv6prefix":
        return _decode_ipv6prefix(raw)
    raise ValueError(f"unknown data type {data_type!r}")


def _decode_ipv6prefix(raw: bytes) -> IPv6Network:
    # RFC 3162 §2.3: reserved octet, prefix length, then the prefix (up to 16 octets)
    if not 2 <= len(raw) <= 18:
        raise MalformedPacket(Defect.VALUE_LENGTH, f"ipv6prefix of {len(raw)} octets, must be 2-18")
    prefix_length = raw[1]
    if prefix_length > 128 or len(raw) - 2 < -(-prefix_length // 8):
        raise MalformedPacket(Defect.VALUE_INVALID, f"ipv6prefix /{prefix_length} in {len(raw)} octets")
    try:
        return IPv6Network((raw[2:].ljust(16, b"\0"), prefix_length))
    except ValueError as exc:  # bits set past the prefix length
        raise MalformedPacket(Defect.VALUE_INVALID, str(exc)) from None


def encode_value(data_type: str, value: Value, *, tag: int | None = None) -> bytes:
    """Convert a value to octets by its dictionary data type; the inverse of ``decode_value``.

    Also accepts str for ipaddr/ipv6addr/ipv6prefix, int for date, bytes for string.
    ``tag`` (1-31) prefixes the RFC 2868 tag of a ``has_tag`` attribute: a leading octet
    for string types, the high octet of an integer.  Raises ``EncodeError``.
    """
    try:
        encoded = _encode_value(data_type, value)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, EncodeError):
            raise
        raise EncodeError(f"{value!r} is not a valid {data_type}: {exc}") from None
    if tag is None:
        return encoded
    if not 1 <= tag <= 0x1F:
        raise EncodeError(f"tag {tag} is not 1-31")
    if data_type == "integer":
        if encoded[0]:
            raise EncodeError(f"tagged integer {value!r} does not fit 3 octets")
        return bytes((tag,)) + encoded[1:]
    return bytes((tag,)) + encoded


def _encode_value(data_type: str, value: Value) -> bytes:
    if data_type == "string":
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
    if data_type in _BYTES_TYPES:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"{data_type} needs bytes")
        encoded = bytes(value)
        if data_type == "ifid" and len(encoded) != 8:
            raise EncodeError(f"ifid of {len(encoded)} octets, must be 8")
        return encoded
    int_size = _INT_SIZES.get(data_type)
    if int_size is not None:
        if not isinstance(value, int):
            raise TypeError(f"{data_type} needs int")
        size, signed = int_size
        return value.to_bytes(size, "big", signed=signed)
    if data_type == "date":
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise EncodeError("date needs a timezone-aware datetime")
            value = int(value.timestamp())
        if not isinstance(value, int):
            raise TypeError("date needs datetime or int")
        return value.to_bytes(4, "big")
    if data_type == "ipaddr":
        return IPv4Address(value).packed  # type: ignore[arg-type]
    if data_type == "ipv6addr":
        return IPv6Address(value).packed  # type: ignore[arg-type]
    if data_type == "ipv6prefix":
        network = IPv6Network(value)  # type: ignore[arg-type]
        significant = -(-network.prefixlen // 8)
        return bytes((0, network.prefixlen)) + network.network_address.packed[:significant]
    if data_type == "ether":
        if not isinstance(value, str):
            raise TypeError("ether needs 'aa:bb:cc:dd:ee:ff'")
        octets = bytes.fromhex(value.replace(":", "").replace("-", ""))
        if len(octets) != 6:
            raise EncodeError(f"ether {value!r} is not 6 octets")
        return octets
    raise ValueError(f"unknown data type {data_type!r}")


def decode_tagged(data_type: str, raw: bytes) -> tuple[int, Value]:
    """Split the RFC 2868 tag off a ``has_tag`` attribute: ``(tag, value)``, tag 0 if none.

    For strings the first octet is a tag only if it is 0x01-0x1F; for integers the high
    octet is always the tag and the value is the low three octets.
    """
    if data_type == "integer":
        if len(raw) != 4:
            raise MalformedPacket(Defect.VALUE_LENGTH, f"tagged integer of {len(raw)} octets, must be 4")
        return raw[0], int.from_bytes(raw[1:], "big")
    if raw and raw[0] <= 0x1F:
        return raw[0], decode_value(data_type, raw[1:])
    return 0, decode_value(data_type, raw)
