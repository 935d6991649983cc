"""Tests of aaa.auth_methods: the RFC 2759 and RFC 3079 vectors, PAP and CHAP requests built
by pyrad's client, MS-CHAPv2 requests built here from the RFC algorithms (a client-side
implementation independent of the module's), MPPE keys decrypted back, and failures that
come back as reasons, never as exceptions."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from pathlib import Path

import pytest
from Crypto.Cipher import DES
from Crypto.Hash import MD4
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.client import Client as PyradClient
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa import auth_methods, codec
from aaa.auth_methods import (
    MICROSOFT,
    MS_CHAP2_RESPONSE,
    MS_CHAP2_SUCCESS,
    MS_CHAP_CHALLENGE,
    MS_CHAP_ERROR,
    MS_MPPE_ENCRYPTION_POLICY,
    MS_MPPE_ENCRYPTION_TYPES,
    MS_MPPE_RECV_KEY,
    MS_MPPE_SEND_KEY,
    AuthOutcome,
    Credential,
    CredentialError,
    CredentialScheme,
    EncryptionPolicy,
    EncryptionTypes,
    Method,
    Reason,
    authenticate,
    detect_method,
)
from aaa.codec import Code, RadiusPacket
from aaa.dictionary import load_dictionaries

DICTIONARIES = Path(__file__).parents[2] / "conf" / "dictionaries"
SECRET = b"testing123"
USER_NAME = 1
USER_PASSWORD = 2
CHAP_PASSWORD = 3
CHAP_CHALLENGE = 60

# RFC 2759 §9.2 / RFC 3079 §3.5.3
RFC_USER = b"User"
RFC_PASSWORD = "clientPass"
RFC_AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
RFC_PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
RFC_CHALLENGE = bytes.fromhex("D02E4386BCE91226")
RFC_PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
RFC_PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
RFC_NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
RFC_AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
RFC_MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
RFC_SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")


# --------------------------------------------------------------------------- an independent client


def client_des_key(seven: bytes) -> bytes:
    """RFC 2759 §8.6 DesEncrypt key: 7 octets -> 8, bit by bit (a different way from the module)."""
    bits = "".join(f"{b:08b}" for b in seven)
    return bytes(int(bits[i : i + 7] + "0", 2) for i in range(0, 56, 7))


def client_nt_response(auth_challenge: bytes, peer_challenge: bytes, user: bytes, password: str) -> bytes:
    """RFC 2759 §8.1 GenerateNTResponse, as a client computes it."""
    password_hash = MD4.new(password.encode("utf-16-le")).digest()
    challenge = hashlib.sha1(peer_challenge + auth_challenge + user).digest()[:8]
    padded = password_hash.ljust(21, b"\0")
    return b"".join(
        DES.new(client_des_key(padded[k : k + 7]), DES.MODE_ECB).encrypt(challenge) for k in range(0, 21, 7)
    )


def client_authenticator_response(
    password: str, nt_response: bytes, peer_challenge: bytes, auth_challenge: bytes, user: bytes
) -> bytes:
    """RFC 2759 §8.7, as a client computes it to check the server's MS-CHAP2-Success."""
    hash_hash = MD4.new(MD4.new(password.encode("utf-16-le")).digest()).digest()
    digest = hashlib.sha1(hash_hash + nt_response + b"Magic server to client signing constant").digest()
    challenge = hashlib.sha1(peer_challenge + auth_challenge + user).digest()[:8]
    digest = hashlib.sha1(digest + challenge + b"Pad to make it do more than one iteration").digest()
    return b"S=" + digest.hex().upper().encode()


def client_mppe_keys(password: str, nt_response: bytes) -> tuple[bytes, bytes]:
    """RFC 3079 §3.4 (send, receive) start keys as the CLIENT sees them (IsServer = FALSE)."""
    hash_hash = MD4.new(MD4.new(password.encode("utf-16-le")).digest()).digest()
    master = hashlib.sha1(hash_hash + nt_response + b"This is the MPPE Master Key").digest()[:16]
    magic2 = b"On the client side, this is the send key; on the server side, it is the receive key."
    magic3 = b"On the client side, this is the receive key; on the server side, it is the send key."

    def start(magic: bytes) -> bytes:
        return hashlib.sha1(master + b"\0" * 40 + magic + b"\xf2" * 40).digest()[:16]

    return start(magic2), start(magic3)


def decrypt_mppe_key(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """RFC 2548 §2.4.2/2.4.3 decryption of MS-MPPE-Send-Key / -Recv-Key."""
    salt, cipher = value[:2], value[2:]
    assert salt[0] & 0x80, "the salt's high bit must be set"
    assert cipher and len(cipher) % 16 == 0
    plain = b""
    previous = request_authenticator + salt
    for k in range(0, len(cipher), 16):
        block = cipher[k : k + 16]
        pad = hashlib.md5(secret + previous).digest()
        plain += bytes(x ^ y for x, y in zip(block, pad, strict=True))
        previous = block
    length = plain[0]
    assert not any(plain[1 + length :]), "padding must be zeros"
    return plain[1 : 1 + length]


def mschapv2_request(
    password: str,
    user: bytes = b"alice",
    *,
    ident: int = 7,
    auth_challenge: bytes | None = None,
    peer_challenge: bytes | None = None,
    authenticator: bytes | None = None,
) -> tuple[RadiusPacket, bytes, bytes]:
    """An encoded and decoded Access-Request with MS-CHAPv2 attributes; also returns the
    challenge and the NT-Response."""
    auth_challenge = os.urandom(16) if auth_challenge is None else auth_challenge
    peer_challenge = os.urandom(16) if peer_challenge is None else peer_challenge
    name = user.rpartition(b"\\")[2]
    response = client_nt_response(auth_challenge, peer_challenge, name, password)
    value = bytes((ident, 0)) + peer_challenge + bytes(8) + response
    datagram = codec.encode_request(
        Code.ACCESS_REQUEST,
        42,
        [
            (USER_NAME, user),
            (MICROSOFT, MS_CHAP_CHALLENGE, auth_challenge),
            (MICROSOFT, MS_CHAP2_RESPONSE, value),
        ],
        SECRET,
        authenticator=authenticator,
    )
    return codec.decode(datagram), auth_challenge, response


def test_independent_client_matches_the_rfc_vectors() -> None:
    """The test's own client must be right before it judges the module."""
    assert (
        client_nt_response(RFC_AUTH_CHALLENGE, RFC_PEER_CHALLENGE, RFC_USER, RFC_PASSWORD) == RFC_NT_RESPONSE
    )
    assert (
        client_authenticator_response(
            RFC_PASSWORD, RFC_NT_RESPONSE, RFC_PEER_CHALLENGE, RFC_AUTH_CHALLENGE, RFC_USER
        )
        == RFC_AUTHENTICATOR_RESPONSE.encode()
    )
    client_send, client_recv = client_mppe_keys(RFC_PASSWORD, RFC_NT_RESPONSE)
    assert client_recv == RFC_SEND_START_KEY_128  # the server's send key is the client's receive key
    assert client_send != client_recv


# --------------------------------------------------------------------------- RFC vectors


def test_rfc2759_vectors() -> None:
    password_hash = auth_methods.nt_password_hash(RFC_PASSWORD)
    assert password_hash == RFC_PASSWORD_HASH
    assert MD4.new(password_hash).digest() == RFC_PASSWORD_HASH_HASH
    assert auth_methods.challenge_hash(RFC_PEER_CHALLENGE, RFC_AUTH_CHALLENGE, RFC_USER) == RFC_CHALLENGE
    assert (
        auth_methods.nt_response(RFC_AUTH_CHALLENGE, RFC_PEER_CHALLENGE, RFC_USER, password_hash)
        == RFC_NT_RESPONSE
    )
    assert (
        auth_methods.authenticator_response(
            RFC_PASSWORD_HASH_HASH, RFC_NT_RESPONSE, RFC_PEER_CHALLENGE, RFC_AUTH_CHALLENGE, RFC_USER
        )
        == RFC_AUTHENTICATOR_RESPONSE
    )


def test_rfc3079_vectors() -> None:
    master = auth_methods.master_key(RFC_PASSWORD_HASH_HASH, RFC_NT_RESPONSE)
    assert master == RFC_MASTER_KEY
    send_key, recv_key = auth_methods.mppe_start_keys(master)
    assert send_key == RFC_SEND_START_KEY_128
    assert recv_key == client_mppe_keys(RFC_PASSWORD, RFC_NT_RESPONSE)[0]


def test_rfc2759_vector_through_a_whole_request() -> None:
    request, _, _ = mschapv2_request(
        RFC_PASSWORD,
        RFC_USER,
        ident=0x2A,
        auth_challenge=RFC_AUTH_CHALLENGE,
        peer_challenge=RFC_PEER_CHALLENGE,
    )
    outcome = authenticate(request, SECRET, Credential.parse(RFC_PASSWORD))
    assert outcome.ok and outcome.reason is Reason.ACCEPTED
    success = request_value(outcome, MS_CHAP2_SUCCESS)
    assert success == b"\x2a" + RFC_AUTHENTICATOR_RESPONSE.encode()
    send = decrypt_mppe_key(request_value(outcome, MS_MPPE_SEND_KEY), SECRET, request.authenticator)
    assert send == RFC_SEND_START_KEY_128


def request_value(outcome: AuthOutcome, vendor_type: int) -> bytes:
    values = [a[2] for a in outcome.reply_attributes if len(a) == 3 and a[:2] == (MICROSOFT, vendor_type)]
    assert len(values) == 1, f"{vendor_type}: {values}"
    return values[0]  # type: ignore[return-value]


# --------------------------------------------------------------------------- PAP and CHAP via pyrad


@pytest.fixture(scope="module")
def pyrad_client() -> PyradClient:
    return PyradClient(
        server="127.0.0.1", secret=SECRET, dict=PyradDictionary(str(DICTIONARIES / "dictionary"))
    )


def pyrad_pap(client: PyradClient, password: str | bytes, user: str = "alice") -> RadiusPacket:
    request = client.CreateAuthPacket(User_Name=user)
    request["User-Password"] = request.PwCrypt(password)
    return codec.decode(request.RequestPacket())


def pyrad_chap(
    client: PyradClient, password: bytes, *, chap_id: int = 9, challenge: bytes | None = None
) -> RadiusPacket:
    request = client.CreateAuthPacket(User_Name="alice")
    request.authenticator = request.CreateAuthenticator()
    if challenge is not None:
        request["CHAP-Challenge"] = challenge
    used = request.authenticator if challenge is None else challenge
    ident = bytes((chap_id,))
    request["CHAP-Password"] = ident + hashlib.md5(ident + password + used).digest()
    assert request.VerifyChapPasswd(password)  # pyrad agrees the request is right
    return codec.decode(request.RequestPacket())


@pytest.mark.parametrize("password", ["s3cret", "", "x" * 16, "ü€😀" * 8, "p" * 128])
def test_pap_round_trip(pyrad_client: PyradClient, password: str) -> None:
    request = pyrad_pap(pyrad_client, password)
    assert detect_method(request) is Method.PAP
    outcome = authenticate(request, SECRET, Credential.parse(password))
    assert outcome == AuthOutcome(True, Method.PAP, (), Reason.ACCEPTED)


def test_pap_wrong_password_and_wrong_secret(pyrad_client: PyradClient) -> None:
    request = pyrad_pap(pyrad_client, "s3cret")
    assert authenticate(request, SECRET, Credential.parse("s3cret!")).reason is Reason.BAD_PASSWORD
    assert authenticate(request, SECRET, Credential.parse("s3cre")).reason is Reason.BAD_PASSWORD
    wrong_secret = authenticate(request, b"other", Credential.parse("s3cret"))
    assert wrong_secret == AuthOutcome(False, Method.PAP, (), Reason.BAD_PASSWORD)


def salted(scheme: str, password: bytes, salt: bytes) -> str:
    digest = hashlib.new(scheme, password + salt).digest()
    return "{S" + scheme.upper() + "}" + base64.b64encode(digest + salt).decode()


@pytest.mark.parametrize(
    "stored",
    [
        salted("sha512", b"s3cret", b"NaCl-salt"),
        salted("sha256", b"s3cret", b"\x00\x01\x02\x03"),
        "{ssha512}" + salted("sha512", b"s3cret", b"pepper")[9:],
        "{NT}" + MD4.new("s3cret".encode("utf-16-le")).hexdigest(),
        "{Cleartext}s3cret",
    ],
)
def test_pap_against_stored_hashes(pyrad_client: PyradClient, stored: str) -> None:
    credential = Credential.parse(stored)
    assert authenticate(pyrad_pap(pyrad_client, "s3cret"), SECRET, credential).ok
    assert authenticate(pyrad_pap(pyrad_client, "s3cre7"), SECRET, credential).reason is Reason.BAD_PASSWORD


def test_credential_parsing() -> None:
    assert Credential.parse("plain").scheme is CredentialScheme.CLEARTEXT
    assert Credential.parse("{CLEARTEXT}{SSHA512}x").value == b"{SSHA512}x"
    assert Credential.parse("{NT}" + "AB" * 16).nt_hash == bytes([0xAB]) * 16
    assert Credential.parse("{not a scheme").value == b"{not a scheme"
    assert "s3cret" not in repr(Credential.parse("s3cret"))
    for bad in ["{MD5}abc", "{NT}1234", "{NT}zz" + "0" * 30, "{SSHA512}!!", "{SSHA256}" + "QUJD"]:
        with pytest.raises(CredentialError):
            Credential.parse(bad)


@pytest.mark.parametrize("challenge", [None, os.urandom(16), b"12345", os.urandom(100)])
def test_chap_round_trip(pyrad_client: PyradClient, challenge: bytes | None) -> None:
    request = pyrad_chap(pyrad_client, b"s3cret", challenge=challenge)
    assert detect_method(request) is Method.CHAP
    assert authenticate(request, SECRET, Credential.parse("s3cret")) == AuthOutcome(True, Method.CHAP)
    assert authenticate(request, SECRET, Credential.parse("S3cret")).reason is Reason.BAD_PASSWORD


def test_chap_failures(pyrad_client: PyradClient) -> None:
    request = pyrad_chap(pyrad_client, b"s3cret")
    hashed = Credential.parse(salted("sha512", b"s3cret", b"salt"))
    assert authenticate(request, SECRET, hashed).reason is Reason.CREDENTIAL_UNUSABLE
    short = replace_attributes(request, [(USER_NAME, b"alice"), (CHAP_PASSWORD, b"\x01" * 16)])
    assert authenticate(short, SECRET, Credential.parse("s3cret")) == AuthOutcome(
        False, Method.CHAP, (), Reason.MALFORMED_CHAP_PASSWORD
    )
    tiny_challenge = replace_attributes(request, [*request.attributes, (CHAP_CHALLENGE, b"1234")])
    assert (
        authenticate(tiny_challenge, SECRET, Credential.parse("s3cret")).reason
        is Reason.MALFORMED_CHAP_CHALLENGE
    )


def replace_attributes(packet: RadiusPacket, attributes: list[codec.Attribute]) -> RadiusPacket:
    return RadiusPacket(packet.code, packet.identifier, packet.authenticator, tuple(attributes))


# --------------------------------------------------------------------------- MS-CHAPv2


@pytest.mark.parametrize(
    ("password", "user"),
    [("s3cret", b"alice"), ("пароль €", b"bob@isp.example"), ("x" * 64, b"CORP\\carol")],
)
def test_mschapv2_round_trip(password: str, user: bytes) -> None:
    request, challenge, nt_response = mschapv2_request(password, user, ident=0x33)
    assert detect_method(request) is Method.MSCHAPV2
    outcome = authenticate(request, SECRET, Credential.parse(password))
    assert outcome.ok and outcome.method is Method.MSCHAPV2 and outcome.reason is Reason.ACCEPTED

    name = user.rpartition(b"\\")[2]
    peer_challenge = request.get_vendor(MICROSOFT, MS_CHAP2_RESPONSE)[2:18]  # type: ignore[index]
    expected_success = b"\x33" + client_authenticator_response(
        password, nt_response, peer_challenge, challenge, name
    )
    assert request_value(outcome, MS_CHAP2_SUCCESS) == expected_success

    client_send, client_recv = client_mppe_keys(password, nt_response)
    send = request_value(outcome, MS_MPPE_SEND_KEY)
    recv = request_value(outcome, MS_MPPE_RECV_KEY)
    assert len(send) == len(recv) == 34 and send[:2] != recv[:2]
    assert decrypt_mppe_key(send, SECRET, request.authenticator) == client_recv
    assert decrypt_mppe_key(recv, SECRET, request.authenticator) == client_send
    assert request_value(outcome, MS_MPPE_ENCRYPTION_POLICY) == struct.pack("!I", 1)
    assert request_value(outcome, MS_MPPE_ENCRYPTION_TYPES) == struct.pack("!I", 6)

    # the reply encodes, and pyrad (an independent decoder) reads the same keys back
    reply = codec.encode_reply(request, Code.ACCESS_ACCEPT, outcome.reply_attributes, SECRET)
    parsed = pyrad_packet.AuthPacket(
        packet=reply, secret=SECRET, dict=PyradDictionary(str(DICTIONARIES / "dictionary"))
    )
    parsed.request_authenticator = request.authenticator
    # pyrad salt-decrypts encrypt=2 attributes on access, with the request's authenticator
    assert parsed["MS-MPPE-Send-Key"] == [client_recv]
    assert parsed["MS-MPPE-Recv-Key"] == [client_send]
    assert parsed["MS-CHAP2-Success"][0] == expected_success


def test_mschapv2_with_nt_hash_credential_and_options() -> None:
    request, _, nt_response = mschapv2_request("s3cret")
    credential = Credential.parse("{NT}" + MD4.new("s3cret".encode("utf-16-le")).hexdigest())
    outcome = authenticate(
        request,
        SECRET,
        credential,
        policy=EncryptionPolicy.ENCRYPTION_REQUIRED,
        types=EncryptionTypes.RC4_128,
        salts=(b"\x80\x01", b"\x80\x02"),
    )
    assert outcome.ok
    assert request_value(outcome, MS_MPPE_RECV_KEY)[:2] == b"\x80\x02"
    assert request_value(outcome, MS_MPPE_SEND_KEY)[:2] == b"\x80\x01"
    assert request_value(outcome, MS_MPPE_ENCRYPTION_POLICY) == struct.pack("!I", 2)
    assert request_value(outcome, MS_MPPE_ENCRYPTION_TYPES) == struct.pack("!I", 4)
    assert (
        decrypt_mppe_key(request_value(outcome, MS_MPPE_SEND_KEY), SECRET, request.authenticator)
        == (client_mppe_keys("s3cret", nt_response)[1])
    )


def test_mschapv2_wrong_password_gives_ms_chap_error() -> None:
    request, challenge, _ = mschapv2_request("s3cret", ident=0x05)
    outcome = authenticate(request, SECRET, Credential.parse("s3cret2"))
    assert not outcome.ok and outcome.method is Method.MSCHAPV2 and outcome.reason is Reason.BAD_PASSWORD
    error = b"\x05E=691 R=0 C=" + challenge.hex().upper().encode() + b" V=3"
    assert outcome.reply_attributes == ((MICROSOFT, MS_CHAP_ERROR, error),)
    # the user name is part of the hash
    renamed = replace_attributes(
        request, [(USER_NAME, b"mallory"), *(a for a in request.attributes if a[0] != USER_NAME)]
    )
    assert authenticate(renamed, SECRET, Credential.parse("s3cret")).reason is Reason.BAD_PASSWORD


def test_mschapv2_needs_an_nt_hash() -> None:
    request, _, _ = mschapv2_request("s3cret")
    outcome = authenticate(request, SECRET, Credential.parse(salted("sha512", b"s3cret", b"salt")))
    assert outcome.reason is Reason.CREDENTIAL_UNUSABLE and not outcome.ok
    latin1 = Credential.cleartext(b"\xff\xfe")  # not UTF-8: no NT hash
    assert authenticate(request, SECRET, latin1).reason is Reason.CREDENTIAL_UNUSABLE


@pytest.mark.parametrize("length", [0, 1, 2, 26, 49, 51, 247])
def test_mschapv2_truncated_or_overlong_response(length: int) -> None:
    request, challenge, _ = mschapv2_request("s3cret", ident=0x11)
    response = request.get_vendor(MICROSOFT, MS_CHAP2_RESPONSE)
    assert response is not None
    changed = (response * 5)[:length]
    attributes = [
        (MICROSOFT, MS_CHAP2_RESPONSE, changed) if a[:2] == (MICROSOFT, MS_CHAP2_RESPONSE) else a
        for a in request.attributes
    ]
    outcome = authenticate(replace_attributes(request, attributes), SECRET, Credential.parse("s3cret"))
    assert (outcome.ok, outcome.method, outcome.reason) == (
        False,
        Method.MSCHAPV2,
        Reason.MALFORMED_MS_CHAP2_RESPONSE,
    )
    # an Ident to answer with: the client is told E=691; none: nothing to say
    expected = b"\x11E=691 R=0 C=" + challenge.hex().upper().encode() + b" V=3"
    assert outcome.reply_attributes == (((MICROSOFT, MS_CHAP_ERROR, expected),) if length else ())


def test_mschapv2_missing_or_bad_challenge_and_user_name() -> None:
    request, challenge, _ = mschapv2_request("s3cret")
    user = (USER_NAME, request.get(USER_NAME))
    response = (MICROSOFT, MS_CHAP2_RESPONSE, request.get_vendor(MICROSOFT, MS_CHAP2_RESPONSE))
    credential = Credential.parse("s3cret")
    cases = {
        Reason.NO_MS_CHAP_CHALLENGE: [user, response],
        Reason.MALFORMED_MS_CHAP_CHALLENGE: [user, (MICROSOFT, MS_CHAP_CHALLENGE, challenge[:8]), response],
        Reason.NO_USER_NAME: [(MICROSOFT, MS_CHAP_CHALLENGE, challenge), response],
    }
    for reason, attributes in cases.items():
        outcome = authenticate(replace_attributes(request, attributes), SECRET, credential)
        assert (outcome.ok, outcome.method, outcome.reason) == (False, Method.MSCHAPV2, reason)
        assert [a[:2] for a in outcome.reply_attributes] == [(MICROSOFT, MS_CHAP_ERROR)]


# --------------------------------------------------------------------------- dispatch


def test_missing_conflicting_and_unsupported_attributes() -> None:
    base = RadiusPacket(Code.ACCESS_REQUEST, 1, bytes(16), ((USER_NAME, b"alice"),))
    credential = Credential.parse("s3cret")
    assert detect_method(base) is None
    assert authenticate(base, SECRET, credential) == AuthOutcome(
        False, None, (), Reason.NO_PASSWORD_ATTRIBUTES
    )

    both = replace_attributes(
        base, [*base.attributes, (USER_PASSWORD, bytes(16)), (CHAP_PASSWORD, bytes(17))]
    )
    assert detect_method(both) is None
    assert authenticate(both, SECRET, credential).reason is Reason.CONFLICTING_PASSWORD_ATTRIBUTES

    for extra in [(MICROSOFT, 1, bytes(50)), (79, b"\x02\x01\x00\x05\x01")]:
        unsupported = replace_attributes(base, [*base.attributes, extra])
        assert authenticate(unsupported, SECRET, credential).reason is Reason.UNSUPPORTED_METHOD

    for bad in [b"", b"x" * 15, b"x" * 17, b"x" * 144]:
        pap = replace_attributes(base, [*base.attributes, (USER_PASSWORD, bad)])
        assert authenticate(pap, SECRET, credential) == AuthOutcome(
            False, Method.PAP, (), Reason.MALFORMED_USER_PASSWORD
        )


def test_constants_match_the_shipped_dictionary() -> None:
    radius_dict = load_dictionaries(DICTIONARIES)
    assert radius_dict.vendor_id("Microsoft") == MICROSOFT
    for name, vendor_type in [
        ("MS-CHAP-Error", MS_CHAP_ERROR),
        ("MS-MPPE-Encryption-Policy", MS_MPPE_ENCRYPTION_POLICY),
        ("MS-MPPE-Encryption-Types", MS_MPPE_ENCRYPTION_TYPES),
        ("MS-CHAP-Challenge", MS_CHAP_CHALLENGE),
        ("MS-MPPE-Send-Key", MS_MPPE_SEND_KEY),
        ("MS-MPPE-Recv-Key", MS_MPPE_RECV_KEY),
        ("MS-CHAP2-Response", MS_CHAP2_RESPONSE),
        ("MS-CHAP2-Success", MS_CHAP2_SUCCESS),
    ]:
        assert radius_dict[name].key == (MICROSOFT, vendor_type), name
    assert radius_dict["MS-MPPE-Send-Key"].encrypt == 2
    assert radius_dict["MS-MPPE-Encryption-Policy"].values["Encryption-Required"] == 2


# --------------------------------------------------------------------------- never raises

_password_attribute = st.one_of(
    st.tuples(st.just(USER_PASSWORD), st.binary(max_size=253)),
    st.tuples(st.just(CHAP_PASSWORD), st.binary(max_size=253)),
    st.tuples(st.just(CHAP_CHALLENGE), st.binary(max_size=253)),
    st.tuples(st.just(USER_NAME), st.binary(max_size=253)),
    st.tuples(st.just(79), st.binary(max_size=20)),
    st.tuples(
        st.just(MICROSOFT),
        st.sampled_from([1, MS_CHAP_CHALLENGE, MS_CHAP2_RESPONSE]),
        st.one_of(
            st.binary(max_size=247), st.binary(min_size=16, max_size=16), st.binary(min_size=50, max_size=50)
        ),
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    attributes=st.lists(_password_attribute, max_size=6),
    authenticator=st.binary(min_size=16, max_size=16),
    stored=st.sampled_from(["s3cret", "", "{NT}" + "00" * 16, salted("sha256", b"s3cret", b"salt")]),
)
def test_random_password_attributes_never_raise(
    attributes: list[codec.Attribute], authenticator: bytes, stored: str
) -> None:
    packet = RadiusPacket(Code.ACCESS_REQUEST, 1, authenticator, tuple(attributes))
    outcome = authenticate(packet, SECRET, Credential.parse(stored))
    assert isinstance(outcome, AuthOutcome)
    assert isinstance(outcome.reason, Reason)
    assert outcome.ok == (outcome.reason is Reason.ACCEPTED)
    assert outcome.method in (None, detect_method(packet))
    codec.encode_attributes(outcome.reply_attributes)  # whatever we return fits a packet
