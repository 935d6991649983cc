"""Tests of aaa.codec: annotated wire vectors, encoding, authenticators, passwords, values,
and a cross-check against pyrad's client-side packets (an independent implementation)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa import codec
from aaa.codec import Code, Defect, EncodeError, MalformedPacket, RadiusPacket

VECTORS = Path(__file__).parent / "vectors"
DICTIONARY_FILE = Path(__file__).parents[2] / "conf" / "dictionaries" / "dictionary"
SECRET = b"testing123"


# --------------------------------------------------------------------------- vector files


@dataclasses.dataclass
class Vector:
    name: str
    file: str
    secret: bytes = b""
    datagram: bytes = b""
    request: bytes = b""
    expects: list[list[str]] = dataclasses.field(default_factory=list)
    error: str = ""


def _read_vectors(path: Path) -> Iterator[Vector]:
    current: Vector | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "case":
            if current is not None:
                yield current
            current = Vector(name=rest.strip(), file=path.name)
            continue
        assert current is not None, f"{path.name}:{number}: {word} before any case"
        if word == "secret":
            current.secret = rest.strip().encode()
        elif word == "packet":
            current.datagram += bytes.fromhex(rest)
        elif word == "zeros":
            current.datagram += bytes(int(rest))
        elif word == "request":
            current.request = bytes.fromhex(rest)
        elif word == "expect":
            current.expects.append(rest.split(" ", 3))
        elif word == "error":
            current.error = rest.strip()
        else:
            raise AssertionError(f"{path.name}:{number}: unknown directive {word!r}")
    if current is not None:
        yield current


ALL_VECTORS = [v for path in sorted(VECTORS.glob("*.txt")) for v in _read_vectors(path)]


def _hex(text: str) -> bytes:
    return b"" if text == '""' else bytes.fromhex(text)


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda v: f"{v.file}:{v.name}")
def test_vector(vector: Vector) -> None:
    if vector.error:
        with pytest.raises(MalformedPacket) as caught:
            codec.decode(vector.datagram)
        assert caught.value.reason == Defect(vector.error)
        assert not vector.expects
        return
    packet = codec.decode(vector.datagram)
    standard: dict[int, list[bytes]] = {}
    vendor: dict[tuple[int, int], list[bytes]] = {}
    for expect in vector.expects:
        what, args = expect[0], expect[1:]
        if what == "code":
            assert packet.code == int(args[0])
        elif what == "identifier":
            assert packet.identifier == int(args[0])
        elif what == "length":
            assert len(packet.raw) == int(args[0])
        elif what == "attributes":
            assert len(packet.attributes) == int(args[0])
        elif what == "attribute":
            standard.setdefault(int(args[0]), []).append(_hex(args[1]))
        elif what == "vendor":
            vendor.setdefault((int(args[0]), int(args[1])), []).append(_hex(args[2]))
        elif what == "user-password":
            hidden = packet.get(codec.USER_PASSWORD)
            assert hidden is not None
            password = " ".join(args).encode()
            assert codec.decrypt_user_password(hidden, vector.secret, packet.authenticator) == password
        elif what == "chap-password":
            outcome, password = args[0], " ".join(args[1:]).encode()
            assert codec.verify_chap_password(packet, password) is (outcome == "valid")
        elif what == "message-authenticator":
            request = codec.decode(vector.request) if vector.request else None
            if args[0] == "absent":
                assert not packet.has_message_authenticator
            else:
                assert packet.has_message_authenticator
                verified = codec.verify_message_authenticator(packet, vector.secret, request)
                assert verified is (args[0] == "valid")
        elif what == "request-authenticator":
            assert codec.verify_request_authenticator(packet, vector.secret) is (args[0] == "valid")
        elif what == "response-authenticator":
            request = codec.decode(vector.request)
            assert codec.verify_response_authenticator(packet, request, vector.secret) is (args[0] == "valid")
        else:
            raise AssertionError(f"unknown expectation {what!r}")
    for attr_type, values in standard.items():
        assert list(packet.get_all(attr_type)) == values, f"attribute {attr_type}"
    for (vendor_id, vendor_type), values in vendor.items():
        found = list(packet.get_all_vendor(vendor_id, vendor_type))
        assert found == values, f"vendor {vendor_id}/{vendor_type}"


def test_vectors_cover_every_packet_defect() -> None:
    covered = {v.error for v in ALL_VECTORS if v.error}
    value_level = {
        Defect.VALUE_LENGTH,
        Defect.VALUE_NOT_UTF8,
        Defect.VALUE_INVALID,
        Defect.USER_PASSWORD_LENGTH,
        Defect.CHAP_PASSWORD_LENGTH,
    }
    assert covered == {str(d) for d in Defect} - {str(d) for d in value_level}


def _vector(name: str) -> Vector:
    return next(v for v in ALL_VECTORS if v.name == name)


# --------------------------------------------------------------------------- decoding


def test_decoded_packet_keeps_wire_order_with_vendor_triples() -> None:
    packet = codec.decode(_vector("access-request-typical-bras").datagram)
    kinds = [attr[0] if len(attr) == 2 else ("vsa", attr[0], attr[1]) for attr in packet.attributes]
    assert kinds == [80, 1, 2, 4, 5, 6, 7, 30, 31, 32, 61, 87, ("vsa", 3561, 1), ("vsa", 3561, 2), 44]
    assert packet.get_vendor(3561, 1) == b"olt-7 eth 1/1/4:100"
    assert packet.get_vendor(3561, 9) is None
    assert packet.get(26) is None  # Vendor-Specific is split, never kept raw
    assert packet.get(9) is None  # vendor id 9 (Cisco) is not attribute type 9


def test_trailing_padding_is_not_part_of_raw() -> None:
    vector = _vector("access-request-trailing-padding")
    packet = codec.decode(vector.datagram)
    assert len(vector.datagram) == 52
    assert packet.raw == vector.datagram[:44]


def test_decode_accepts_bytearray_and_memoryview() -> None:
    datagram = _vector("access-request-pap").datagram
    assert codec.decode(bytearray(datagram)) == codec.decode(datagram)
    assert codec.decode(memoryview(datagram)).raw == datagram


def test_packet_is_immutable() -> None:
    packet = codec.decode(_vector("access-request-pap").datagram)
    with pytest.raises(dataclasses.FrozenInstanceError):
        packet.code = 2  # type: ignore[misc]
    assert isinstance(packet.attributes, tuple)


def test_code_is_an_int_enum_and_unknown_codes_stay_ints() -> None:
    assert Code.COA_NAK == 45 and Code.STATUS_SERVER == 12
    assert codec.decode(_vector("coa-request").datagram).code is Code.COA_REQUEST
    unknown = bytes((250, 1, 0, 20)) + bytes(16)
    assert codec.decode(unknown).code == 250


def test_malformed_packet_reason_and_message() -> None:
    with pytest.raises(MalformedPacket) as caught:
        codec.decode(b"\x01\x02\x00")
    assert caught.value.reason is Defect.PACKET_TOO_SHORT
    assert isinstance(caught.value.reason, str)
    assert str(caught.value) == "packet-too-short: 3 octets, a header is 20"
    assert isinstance(caught.value, codec.CodecError)


@given(st.binary(min_size=0, max_size=300))
def test_decode_raises_only_malformed_packet(datagram: bytes) -> None:
    try:
        packet = codec.decode(datagram)
    except MalformedPacket:
        return
    assert packet.raw == datagram[: len(packet.raw)]


@given(st.binary(min_size=0, max_size=120))
def test_decode_of_random_attribute_area_raises_only_malformed_packet(attributes: bytes) -> None:
    datagram = bytes((1, 7)) + (20 + len(attributes)).to_bytes(2, "big") + bytes(16) + attributes
    with contextlib.suppress(MalformedPacket):
        codec.decode(datagram)


_ATTRIBUTE = st.one_of(
    st.tuples(
        st.integers(1, 255).filter(lambda t: t not in (codec.VENDOR_SPECIFIC, codec.MESSAGE_AUTHENTICATOR)),
        st.binary(max_size=253),
    ),
    st.tuples(st.integers(0, 0xFFFFFF), st.integers(0, 255), st.binary(max_size=247)),
)


@given(st.lists(_ATTRIBUTE, max_size=12), st.integers(0, 255))
def test_encode_decode_round_trip(attributes: list[codec.Attribute], identifier: int) -> None:
    size = 20 + 18 + sum(len(a[-1]) + (2 if len(a) == 2 else 8) for a in attributes)  # type: ignore[arg-type]
    if size > codec.MAX_PACKET_LENGTH:
        with pytest.raises(EncodeError):
            codec.encode_request(Code.ACCESS_REQUEST, identifier, attributes, SECRET)
        return
    raw = codec.encode_request(Code.ACCESS_REQUEST, identifier, attributes, SECRET)
    packet = codec.decode(raw)
    assert packet.identifier == identifier
    assert packet.attributes[0][0] == codec.MESSAGE_AUTHENTICATOR
    assert list(packet.attributes[1:]) == [tuple(a) for a in attributes]
    assert codec.verify_message_authenticator(packet, SECRET)


# --------------------------------------------------------------------------- encoding


def _request(name: str = "access-request-pap") -> RadiusPacket:
    return codec.decode(_vector(name).datagram)


def test_rfc2865_example_reply_is_reproduced_exactly() -> None:
    vector = _vector("rfc2865-7.1-access-accept")
    request = codec.decode(vector.request)
    reply = codec.encode_reply(
        request,
        Code.ACCESS_ACCEPT,
        [
            (6, codec.encode_value("integer", 1)),
            (15, codec.encode_value("integer", 0)),
            (14, codec.encode_value("ipaddr", "192.168.1.3")),
        ],
        b"xyzzy5461",
        message_authenticator=False,
    )
    assert reply == vector.datagram


def test_reply_to_access_request_has_message_authenticator_first() -> None:
    request = _request("access-request-chap-authenticator-challenge")  # carries none itself
    reply_raw = codec.encode_reply(request, Code.ACCESS_ACCEPT, [(27, b"\x00\x00\x0e\x10")], SECRET)
    reply = codec.decode(reply_raw)
    assert reply.attributes[0][0] == codec.MESSAGE_AUTHENTICATOR
    assert reply.identifier == request.identifier
    assert codec.verify_response_authenticator(reply, request, SECRET)
    assert codec.verify_message_authenticator(reply, SECRET, request)
    assert not codec.verify_message_authenticator(reply, b"other", request)
    assert not codec.verify_response_authenticator(reply, request, b"other")


def test_reply_to_accounting_request_has_no_message_authenticator_unless_request_had() -> None:
    plain = _request("accounting-request-start")
    reply = codec.decode(codec.encode_reply(plain, Code.ACCOUNTING_RESPONSE, [], SECRET))
    assert not reply.has_message_authenticator
    assert codec.verify_response_authenticator(reply, plain, SECRET)

    signed = _request("accounting-request-message-authenticator")
    reply = codec.decode(codec.encode_reply(signed, Code.ACCOUNTING_RESPONSE, [], SECRET))
    assert reply.has_message_authenticator
    assert codec.verify_message_authenticator(reply, SECRET, signed)
    forced = codec.encode_reply(plain, Code.ACCOUNTING_RESPONSE, [], SECRET, message_authenticator=True)
    assert codec.verify_message_authenticator(codec.decode(forced), SECRET, plain)


def test_reply_copies_proxy_state_in_order() -> None:
    raw = codec.encode_request(
        Code.ACCESS_REQUEST, 9, [(1, b"alice"), (33, b"first"), (33, b"second")], SECRET
    )
    request = codec.decode(raw)
    reply = codec.decode(codec.encode_reply(request, Code.ACCESS_REJECT, [(18, b"no")], SECRET))
    assert reply.get_all(33) == (b"first", b"second")
    assert reply.get(18) == b"no"
    with pytest.raises(EncodeError):
        codec.encode_reply(request, Code.ACCESS_REJECT, [(33, b"mine")], SECRET)


def test_reply_code_must_answer_the_request() -> None:
    with pytest.raises(ValueError, match="does not answer"):
        codec.encode_reply(_request(), Code.ACCOUNTING_RESPONSE, [], SECRET)
    with pytest.raises(ValueError):
        codec.encode_reply(_request("coa-request"), Code.DISCONNECT_ACK, [], SECRET)


def test_message_authenticator_is_never_passed_as_an_attribute() -> None:
    with pytest.raises(EncodeError, match="message_authenticator=True"):
        codec.encode_reply(_request(), Code.ACCESS_ACCEPT, [(80, bytes(16))], SECRET)


@pytest.mark.parametrize(
    ("request_code", "reply_code"),
    [
        (Code.COA_REQUEST, Code.COA_ACK),
        (Code.COA_REQUEST, Code.COA_NAK),
        (Code.DISCONNECT_REQUEST, Code.DISCONNECT_ACK),
        (Code.DISCONNECT_REQUEST, Code.DISCONNECT_NAK),
        (Code.STATUS_SERVER, Code.ACCESS_ACCEPT),
        (Code.STATUS_SERVER, Code.ACCOUNTING_RESPONSE),
    ],
)
def test_requests_and_replies_of_every_code_verify(request_code: Code, reply_code: Code) -> None:
    raw = codec.encode_request(request_code, 77, [(44, b"sess-1")], SECRET, message_authenticator=True)
    request = codec.decode(raw)
    if request_code in (Code.COA_REQUEST, Code.DISCONNECT_REQUEST):
        assert codec.verify_request_authenticator(request, SECRET)
    assert codec.verify_message_authenticator(request, SECRET)
    reply = codec.decode(codec.encode_reply(request, reply_code, [(101, b"\x00\x00\x01\x93")], SECRET))
    assert reply.attributes[0][0] == codec.MESSAGE_AUTHENTICATOR
    assert codec.verify_response_authenticator(reply, request, SECRET)
    assert codec.verify_message_authenticator(reply, SECRET, request)


def test_verification_needs_decoded_packets_and_the_request_for_replies() -> None:
    built = RadiusPacket(Code.ACCOUNTING_REQUEST, 1, bytes(16), ((1, b"x"),))
    with pytest.raises(ValueError, match="not decoded"):
        codec.verify_request_authenticator(built, SECRET)
    reply = codec.decode(codec.encode_reply(_request(), Code.ACCESS_ACCEPT, [], SECRET))
    with pytest.raises(ValueError, match="pass the request"):
        codec.verify_message_authenticator(reply, SECRET)
    with pytest.raises(ValueError):
        codec.verify_request_authenticator(_request(), SECRET)  # Access-Request: random authenticator


def test_response_from_another_identifier_does_not_verify() -> None:
    request = _request()
    reply = codec.decode(codec.encode_reply(request, Code.ACCESS_ACCEPT, [], SECRET))
    other = dataclasses.replace(request, identifier=request.identifier + 1)
    assert not codec.verify_response_authenticator(reply, other, SECRET)


def test_encoding_limits() -> None:
    with pytest.raises(EncodeError):
        codec.encode_attributes([(1, b"x" * 254)])
    with pytest.raises(EncodeError):
        codec.encode_attributes([(14988, 8, b"x" * 248)])
    with pytest.raises(EncodeError):
        codec.encode_attributes([(0, b"x")])
    with pytest.raises(EncodeError):
        codec.encode_attributes([(1 << 24, 1, b"x")])
    with pytest.raises(EncodeError, match="at most 4096"):
        codec.encode_request(Code.ACCOUNTING_REQUEST, 1, [(18, b"x" * 253)] * 17, SECRET)
    with pytest.raises(EncodeError):
        codec.encode_request(Code.ACCESS_REQUEST, 256, [], SECRET)
    with pytest.raises(ValueError):
        codec.encode_request(Code.ACCOUNTING_REQUEST, 1, [], SECRET, authenticator=bytes(16))
    assert codec.encode_attributes([(14988, 8, b"1M")]) == bytes.fromhex("1a0a00003a8c0804314d")


# --------------------------------------------------------------------------- passwords


@pytest.mark.parametrize("password", [b"", b"a", b"x" * 15, b"y" * 16, b"z" * 17, b"p" * 128])
def test_user_password_round_trip(password: bytes) -> None:
    authenticator = codec.new_authenticator()
    hidden = codec.encrypt_user_password(password, SECRET, authenticator)
    assert len(hidden) == max(16, -(-len(password) // 16) * 16)
    assert codec.decrypt_user_password(hidden, SECRET, authenticator) == password


def test_user_password_limits() -> None:
    with pytest.raises(EncodeError):
        codec.encrypt_user_password(b"p" * 129, SECRET, bytes(16))
    for length in (0, 15, 17, 144):
        with pytest.raises(MalformedPacket) as caught:
            codec.decrypt_user_password(bytes(length), SECRET, bytes(16))
        assert caught.value.reason is Defect.USER_PASSWORD_LENGTH


def test_chap_password_of_wrong_length_is_malformed() -> None:
    raw = codec.encode_request(Code.ACCESS_REQUEST, 1, [(codec.CHAP_PASSWORD, b"\x01" + bytes(15))], SECRET)
    with pytest.raises(MalformedPacket) as caught:
        codec.verify_chap_password(codec.decode(raw), b"pw")
    assert caught.value.reason is Defect.CHAP_PASSWORD_LENGTH
    assert not codec.verify_chap_password(_request(), b"s3cret")  # PAP request: no CHAP-Password


def test_chap_password_value() -> None:
    challenge = bytes(range(16))
    value = codec.chap_password(5, b"pw", challenge)
    assert value == b"\x05" + hashlib.md5(b"\x05pw" + challenge).digest()


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("data_type", "value", "octets"),
    [
        ("string", "Grüße", "Grüße".encode()),
        ("octets", b"\x00\xff", b"\x00\xff"),
        ("integer", 4294967295, b"\xff\xff\xff\xff"),
        ("signed", -2, b"\xff\xff\xff\xfe"),
        ("short", 513, b"\x02\x01"),
        ("byte", 7, b"\x07"),
        ("integer64", 2**40 + 1, (2**40 + 1).to_bytes(8, "big")),
        ("date", datetime(2025, 11, 25, tzinfo=UTC), (1764028800).to_bytes(4, "big")),
        ("ipaddr", IPv4Address("192.0.2.1"), b"\xc0\x00\x02\x01"),
        ("ipv6addr", IPv6Address("2001:db8::1"), IPv6Address("2001:db8::1").packed),
        ("ipv6prefix", IPv6Network("2001:db8::/32"), bytes.fromhex("00202001 0db8")),
        ("ipv6prefix", IPv6Network("2001:db8:0:1::/64"), bytes.fromhex("0040 20010db800000001")),
        ("ipv6prefix", IPv6Network("::/0"), b"\x00\x00"),
        ("ether", "00:11:22:aa:bb:cc", bytes.fromhex("001122aabbcc")),
        ("ifid", b"\x02\x00\x5e\xff\xfe\x00\x53\x01", b"\x02\x00\x5e\xff\xfe\x00\x53\x01"),
        ("abinary", b"\x01\x01", b"\x01\x01"),
    ],
)
def test_values_round_trip(data_type: str, value: codec.Value, octets: bytes) -> None:
    assert codec.encode_value(data_type, value) == octets
    assert codec.decode_value(data_type, octets) == value


def test_value_conveniences() -> None:
    assert codec.encode_value("ipaddr", "10.0.0.1") == b"\x0a\x00\x00\x01"
    assert codec.encode_value("ipv6prefix", "2001:db8::/48") == bytes.fromhex("0030 20010db80000")
    assert codec.encode_value("date", 1) == b"\x00\x00\x00\x01"
    assert codec.encode_value("string", b"raw") == b"raw"
    # a full 16-octet prefix field, as some NASes send, is accepted
    assert codec.decode_value("ipv6prefix", b"\x00\x20" + IPv6Address("2001:db8::").packed) == IPv6Network(
        "2001:db8::/32"
    )
    assert codec.decode_value("date", b"\x00\x00\x00\x00").tzinfo is UTC  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data_type", "octets", "defect"),
    [
        ("integer", b"\x00\x01", Defect.VALUE_LENGTH),
        ("integer", b"\x00\x00\x00\x00\x01", Defect.VALUE_LENGTH),
        ("ipaddr", b"\x01\x02\x03", Defect.VALUE_LENGTH),
        ("ipv6addr", bytes(15), Defect.VALUE_LENGTH),
        ("date", bytes(8), Defect.VALUE_LENGTH),
        ("ether", bytes(5), Defect.VALUE_LENGTH),
        ("short", bytes(4), Defect.VALUE_LENGTH),
        ("string", b"\xff\xfe", Defect.VALUE_NOT_UTF8),
        ("ipv6prefix", b"\x00", Defect.VALUE_LENGTH),
        ("ipv6prefix", b"\x00\x81" + bytes(16), Defect.VALUE_INVALID),  # /129
        ("ipv6prefix", b"\x00\x40\x20\x01", Defect.VALUE_INVALID),  # /64 in 2 octets
        ("ipv6prefix", b"\x00\x10\x20\x01\x0d", Defect.VALUE_INVALID),  # bits past /16
    ],
)
def test_malformed_values(data_type: str, octets: bytes, defect: Defect) -> None:
    with pytest.raises(MalformedPacket) as caught:
        codec.decode_value(data_type, octets)
    assert caught.value.reason is defect


@pytest.mark.parametrize(
    ("data_type", "value"),
    [
        ("integer", -1),
        ("integer", 2**32),
        ("byte", 256),
        ("integer", "12"),
        ("ipaddr", "300.1.1.1"),
        ("ether", "00:11"),
        ("date", datetime(2025, 1, 1)),  # naive
        ("octets", "text"),
        ("ifid", b"\x01"),
    ],
)
def test_unencodable_values(data_type: str, value: codec.Value) -> None:
    with pytest.raises(EncodeError):
        codec.encode_value(data_type, value)


def test_tagged_values() -> None:
    assert codec.encode_value("string", "svc(10M)", tag=1) == b"\x01svc(10M)"
    assert codec.decode_tagged("string", b"\x01svc(10M)") == (1, "svc(10M)")
    assert codec.decode_tagged("string", b"svc") == (0, "svc")
    assert codec.encode_value("integer", 600, tag=2) == b"\x02\x00\x02\x58"
    assert codec.decode_tagged("integer", b"\x02\x00\x02\x58") == (2, 600)
    with pytest.raises(EncodeError):
        codec.encode_value("integer", 2**24, tag=1)
    with pytest.raises(EncodeError):
        codec.encode_value("string", "x", tag=32)


# --------------------------------------------------------------------------- pyrad cross-check


@pytest.fixture(scope="module")
def pyrad_dictionary() -> PyradDictionary:
    return PyradDictionary(str(DICTIONARY_FILE))


def test_pyrad_access_request_decodes_and_verifies(pyrad_dictionary: PyradDictionary) -> None:
    request = pyrad_packet.AuthPacket(id=17, secret=SECRET, dict=pyrad_dictionary)
    request["User-Name"] = "alice@isp.example"
    request["User-Password"] = request.PwCrypt("correct horse battery staple")
    request["NAS-IP-Address"] = "192.0.2.1"
    request["Calling-Station-Id"] = "00-11-22-33-44-55"
    request["Agent-Circuit-Id"] = b"olt-7 eth 1/1/4:100"
    request["Framed-IPv6-Prefix"] = "2001:db8:1::/48"
    request.add_message_authenticator()
    raw = request.RequestPacket()

    packet = codec.decode(raw)
    assert packet.code is Code.ACCESS_REQUEST and packet.identifier == 17
    assert packet.attributes[0][0] == codec.MESSAGE_AUTHENTICATOR
    assert codec.verify_message_authenticator(packet, SECRET)
    assert not codec.verify_message_authenticator(packet, b"wrong")
    hidden = packet.get(codec.USER_PASSWORD)
    assert hidden is not None
    password = codec.decrypt_user_password(hidden, SECRET, packet.authenticator)
    assert password == b"correct horse battery staple"
    assert packet.get_vendor(3561, 1) == b"olt-7 eth 1/1/4:100"
    assert codec.decode_value("ipv6prefix", packet.get(97) or b"") == IPv6Network("2001:db8:1::/48")

    # our reply verifies with pyrad, Message-Authenticator enforced
    reply_raw = codec.encode_reply(
        packet,
        Code.ACCESS_ACCEPT,
        [(14988, 8, b"10M/20M"), (27, codec.encode_value("integer", 3600)), (9, 1, b"ip:addr-pool=p1")],
        SECRET,
    )
    reply = request.CreateReply(packet=reply_raw)
    assert request.VerifyReply(reply, reply_raw, enforce_ma=True)
    assert reply.verify_message_authenticator(
        secret=SECRET, original_authenticator=packet.authenticator, original_code=packet.code
    )
    assert reply["Mikrotik-Rate-Limit"] == ["10M/20M"]
    assert reply["Session-Timeout"] == [3600]
    assert reply["Cisco-AVPair"] == ["ip:addr-pool=p1"]
    reject_raw = codec.encode_reply(packet, Code.ACCESS_REJECT, [], b"wrong")
    assert not request.VerifyReply(request.CreateReply(packet=reject_raw), reject_raw)


def test_pyrad_chap_request_verifies(pyrad_dictionary: PyradDictionary) -> None:
    request = pyrad_packet.AuthPacket(id=3, secret=SECRET, dict=pyrad_dictionary)
    request.authenticator = request.CreateAuthenticator()
    request["User-Name"] = "bob"
    request["CHAP-Password"] = codec.chap_password(9, b"pa55", request.authenticator)
    packet = codec.decode(request.RequestPacket())
    assert codec.verify_chap_password(packet, b"pa55")
    assert not codec.verify_chap_password(packet, b"pa56")
    assert request.VerifyChapPasswd("pa55")


def test_pyrad_accounting_request_decodes_and_verifies(pyrad_dictionary: PyradDictionary) -> None:
    request = pyrad_packet.AcctPacket(id=200, secret=SECRET, dict=pyrad_dictionary)
    request["Acct-Status-Type"] = "Interim-Update"
    request["Acct-Session-Id"] = "8100a3c9"
    request["Acct-Input-Octets"] = 123456789
    request["Acct-Input-Gigawords"] = 2
    request["Event-Timestamp"] = 1764028800
    request["Huawei-Input-Average-Rate"] = 10_000_000
    raw = request.RequestPacket()

    packet = codec.decode(raw)
    assert packet.code is Code.ACCOUNTING_REQUEST
    assert codec.verify_request_authenticator(packet, SECRET)
    assert not codec.verify_request_authenticator(packet, b"wrong")
    assert codec.decode_value("integer", packet.get(40) or b"") == 3
    assert codec.decode_value("date", packet.get(55) or b"") == datetime(2025, 11, 25, tzinfo=UTC)
    assert codec.decode_value("integer", packet.get_vendor(2011, 2) or b"") == 10_000_000

    reply_raw = codec.encode_reply(packet, Code.ACCOUNTING_RESPONSE, [], SECRET)
    assert request.VerifyReply(request.CreateReply(packet=reply_raw), reply_raw)


def test_pyrad_accounting_request_with_message_authenticator(pyrad_dictionary: PyradDictionary) -> None:
    request = pyrad_packet.AcctPacket(id=201, secret=SECRET, dict=pyrad_dictionary)
    request["Acct-Status-Type"] = "Stop"
    request["Acct-Session-Id"] = "8100a3c9"
    request.add_message_authenticator()
    packet = codec.decode(request.RequestPacket())
    assert codec.verify_request_authenticator(packet, SECRET)
    assert codec.verify_message_authenticator(packet, SECRET)
    reply_raw = codec.encode_reply(packet, Code.ACCOUNTING_RESPONSE, [], SECRET)
    reply = request.CreateReply(packet=reply_raw)
    assert codec.decode(reply_raw).has_message_authenticator
    assert request.VerifyReply(reply, reply_raw)


def test_pyrad_coa_request_verifies(pyrad_dictionary: PyradDictionary) -> None:
    request = pyrad_packet.CoAPacket(id=5, secret=SECRET, dict=pyrad_dictionary)
    request["Acct-Session-Id"] = "8100a3c9"
    request["Mikrotik-Rate-Limit"] = "1M/1M"
    packet = codec.decode(request.RequestPacket())
    assert packet.code is Code.COA_REQUEST
    assert codec.verify_request_authenticator(packet, SECRET)
    reply_raw = codec.encode_reply(packet, Code.COA_ACK, [], SECRET)
    assert request.VerifyReply(request.CreateReply(packet=reply_raw), reply_raw)


def test_our_requests_verify_with_pyrad(pyrad_dictionary: PyradDictionary) -> None:
    authenticator = codec.new_authenticator()
    hidden = codec.encrypt_user_password(b"s3cret", SECRET, authenticator)
    raw = codec.encode_request(
        Code.ACCESS_REQUEST, 8, [(1, b"alice"), (2, hidden)], SECRET, authenticator=authenticator
    )
    parsed = pyrad_packet.AuthPacket(packet=raw, secret=SECRET, dict=pyrad_dictionary)
    assert parsed.verify_message_authenticator()
    assert parsed.PwDecrypt(parsed["User-Password"][0]) == "s3cret"

    raw = codec.encode_request(Code.ACCOUNTING_REQUEST, 9, [(40, b"\x00\x00\x00\x01"), (44, b"s1")], SECRET)
    parsed = pyrad_packet.AcctPacket(packet=raw, secret=SECRET, dict=pyrad_dictionary)
    assert parsed.VerifyAcctRequest()
    assert parsed["Acct-Status-Type"] == ["Start"]
