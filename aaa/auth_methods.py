"""Password authentication methods of an Access-Request: PAP, CHAP and MS-CHAPv2.

What: given a decoded Access-Request (``aaa.codec.RadiusPacket``), the NAS's shared secret
and the subscriber's stored ``Credential``, decide whether the password attributes prove
the subscriber's identity, and produce the reply attributes the method needs
(MS-CHAP2-Success and the MPPE keys on success, MS-CHAP-Error on failure).

Why a module of its own: the handler decides *whether* to accept (service status, money,
policy); this module only answers "does this request prove it knows the password?", so
it is pure (no I/O, no clock, no database), small, and tested against the RFC vectors.
Randomness is its only other input: the MPPE key salts (pass ``salts=`` to fix them).

Methods and the RFCs they follow:

- PAP: User-Password hidden with the secret and the Request Authenticator (RFC 2865 §5.2).
- CHAP: CHAP-Password = CHAP Ident + MD5(Ident + password + challenge), the challenge
  being CHAP-Challenge or else the Request Authenticator (RFC 1994, RFC 2865 §2.2).
- MS-CHAPv2 (RFC 2759) carried in Microsoft (vendor 311) attributes (RFC 2548):
  MS-CHAP-Challenge (11) and MS-CHAP2-Response (25) in the request; MS-CHAP2-Success (26)
  = Ident + "S=" + 40 hex digits, MS-MPPE-Send-Key (16) / MS-MPPE-Recv-Key (17) (RFC 3079
  keys, salt-encrypted per RFC 2548 §2.4.2-2.4.3), MS-MPPE-Encryption-Policy (7) and
  MS-MPPE-Encryption-Types (8) in the Access-Accept; MS-CHAP-Error (2)
  = Ident + "E=691 R=0 C=<challenge> V=3" in the Access-Reject.  The user name in the
  challenge hash is User-Name with any "DOMAIN\\" prefix removed, as Windows clients hash
  it (FreeRADIUS's ``with_ntdomain_hack``).  The Flags and reserved octets of
  MS-CHAP2-Response are not checked.

Stored credentials (``Credential.parse``): a scheme prefix, as FreeRADIUS and OpenLDAP
write them, and otherwise cleartext:

- ``{CLEARTEXT}secret`` or plain ``secret``: works with every method.  CHAP and
  MS-CHAPv2 need it (or an NT hash): the server must compute what the client computed.
- ``{NT}<32 hex digits>``: MD4 of the UTF-16LE password; PAP and MS-CHAPv2.
- ``{SSHA512}`` / ``{SSHA256}`` + base64(digest + salt), digest = SHA-2(password + salt):
  PAP only.  (A fast hash: it hides the password from a reader of the database, not from
  a brute-force search.  Nothing slower is offered, because CHAP and MS-CHAPv2 cannot use
  one.)

Malformed client data never raises: every outcome is an ``AuthOutcome`` whose ``reason``
(a ``Reason``, a ``str`` enum) says why.  A malformed *stored* credential is our data, not
the client's: ``Credential.parse`` raises ``CredentialError`` when the snapshot is loaded.
All secret comparisons use ``hmac.compare_digest``.

MD4 and DES come from pycryptodome: OpenSSL 3 here has no MD4 (LIBRARY-NOTES.md).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag, StrEnum

from Crypto.Cipher import DES
from Crypto.Hash import MD4

from aaa.codec import (
    AUTHENTICATOR_LENGTH,
    CHAP_CHALLENGE,
    CHAP_PASSWORD,
    MAX_USER_PASSWORD_LENGTH,
    USER_PASSWORD,
    Attribute,
    RadiusPacket,
    chap_password,
    decrypt_user_password,
)

__all__ = [
    "EAP_MESSAGE",
    "MICROSOFT",
    "MS_CHAP2_RESPONSE",
    "MS_CHAP2_SUCCESS",
    "MS_CHAP_CHALLENGE",
    "MS_CHAP_ERROR",
    "MS_CHAP_RESPONSE",
    "MS_MPPE_ENCRYPTION_POLICY",
    "MS_MPPE_ENCRYPTION_TYPES",
    "MS_MPPE_RECV_KEY",
    "MS_MPPE_SEND_KEY",
    "USER_NAME",
    "AuthOutcome",
    "Credential",
    "CredentialError",
    "CredentialScheme",
    "EncryptionPolicy",
    "EncryptionTypes",
    "Method",
    "Reason",
    "authenticate",
    "authenticator_response",
    "challenge_hash",
    "detect_method",
    "encrypt_mppe_key",
    "master_key",
    "mppe_start_keys",
    "nt_password_hash",
    "nt_response",
    "verify_chap",
    "verify_mschapv2",
    "verify_pap",
]

USER_NAME = 1
EAP_MESSAGE = 79

MICROSOFT = 311  # vendor id, RFC 2548
MS_CHAP_RESPONSE = 1  # MS-CHAP v1: not supported
MS_CHAP_ERROR = 2
MS_MPPE_ENCRYPTION_POLICY = 7
MS_MPPE_ENCRYPTION_TYPES = 8
MS_CHAP_CHALLENGE = 11
MS_MPPE_SEND_KEY = 16
MS_MPPE_RECV_KEY = 17
MS_CHAP2_RESPONSE = 25
MS_CHAP2_SUCCESS = 26

_CHAP_PASSWORD_LENGTH = 17  # Ident + MD5
_MIN_CHAP_CHALLENGE_LENGTH = 5  # RFC 2865 §5.40: Length >= 7
_MS_CHAP_CHALLENGE_LENGTH = 16  # RFC 2759 §4: the Authenticator Challenge
_MS_CHAP2_RESPONSE_LENGTH = 50  # Ident, Flags, Peer-Challenge 16, Reserved 8, NT-Response 24
_MPPE_KEY_LENGTH = 16  # 128-bit start keys; the NAS reduces them for 40/56-bit RC4


class Method(StrEnum):
    """The password method an Access-Request uses."""

    PAP = "PAP"
    CHAP = "CHAP"
    MSCHAPV2 = "MS-CHAPv2"


class Reason(StrEnum):
    """Why an ``AuthOutcome`` is what it is (``ACCEPTED`` when ``ok``)."""

    ACCEPTED = "accepted"
    BAD_PASSWORD = "bad password"
    NO_PASSWORD_ATTRIBUTES = "no password attributes"
    CONFLICTING_PASSWORD_ATTRIBUTES = "several password methods in one request"
    UNSUPPORTED_METHOD = "unsupported method (MS-CHAPv1 or EAP)"
    CREDENTIAL_UNUSABLE = "stored credential cannot verify this method"
    MALFORMED_USER_PASSWORD = "malformed User-Password"
    MALFORMED_CHAP_PASSWORD = "malformed CHAP-Password"
    MALFORMED_CHAP_CHALLENGE = "malformed CHAP-Challenge"
    NO_MS_CHAP_CHALLENGE = "no MS-CHAP-Challenge"
    MALFORMED_MS_CHAP_CHALLENGE = "malformed MS-CHAP-Challenge"
    MALFORMED_MS_CHAP2_RESPONSE = "malformed MS-CHAP2-Response"
    NO_USER_NAME = "no User-Name"


class EncryptionPolicy(IntEnum):
    """MS-MPPE-Encryption-Policy values (RFC 2548 §2.4.4)."""

    ENCRYPTION_ALLOWED = 1
    ENCRYPTION_REQUIRED = 2


class EncryptionTypes(IntFlag):
    """MS-MPPE-Encryption-Types bits (RFC 2548 §2.4.5)."""

    RC4_40 = 0x2
    RC4_128 = 0x4


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """The verdict on a request's password and the reply attributes the method needs.

    ``reply_attributes`` go into the Access-Accept when ``ok``, into the Access-Reject
    otherwise (MS-CHAP-Error).  ``method`` is None when no method could be determined.
    """

    ok: bool
    method: Method | None
    reply_attributes: tuple[Attribute, ...] = ()
    reason: Reason = Reason.ACCEPTED


# --------------------------------------------------------------------------- credentials


class CredentialError(ValueError):
    """A stored credential is not in a form ``Credential.parse`` understands."""


class CredentialScheme(StrEnum):
    """How a stored credential holds the password."""

    CLEARTEXT = "CLEARTEXT"
    NT = "NT"
    SSHA256 = "SSHA256"
    SSHA512 = "SSHA512"


_SALTED = {CredentialScheme.SSHA256: (hashlib.sha256, 32), CredentialScheme.SSHA512: (hashlib.sha512, 64)}


@dataclass(frozen=True, slots=True)
class Credential:
    """A subscriber's stored password, parsed once when the snapshot is loaded.

    ``value`` is the cleartext (UTF-8) for CLEARTEXT and the digest otherwise; :attr:`nt_hash`
    is MD4(UTF-16LE(password)) when it can be known (CLEARTEXT of valid UTF-8, NT), for
    MS-CHAPv2.  ``repr`` shows only the scheme.
    """

    scheme: CredentialScheme
    value: bytes = field(repr=False)
    salt: bytes = field(default=b"", repr=False)

    @property
    def nt_hash(self) -> bytes | None:
        """Computed on first MS-CHAPv2 use and cached, not at load: most subscribers never
        need it, and a million MD4s would add seconds to every snapshot load."""
        if self.scheme is CredentialScheme.NT:
            return self.value
        if self.scheme is CredentialScheme.CLEARTEXT:
            return _cleartext_nt_hash(self.value)
        return None

    @classmethod
    def cleartext(cls, password: str | bytes) -> Credential:
        """A cleartext credential."""
        raw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
        return cls(CredentialScheme.CLEARTEXT, raw)

    @classmethod
    def parse(cls, stored: str) -> Credential:
        """Parse ``{SCHEME}data`` (schemes case-insensitive) or plain cleartext.

        Raises ``CredentialError`` for a known scheme with bad data; an unknown ``{...}``
        prefix is an error too, so that a hash is never taken for a cleartext password.
        """
        if not stored.startswith("{") or "}" not in stored:
            return cls.cleartext(stored)
        prefix, _, data = stored[1:].partition("}")
        try:
            scheme = CredentialScheme(prefix.upper())
        except ValueError:
            raise CredentialError(
                f"unknown password scheme {{{prefix}}}; known: "
                + ", ".join(f"{{{s}}}" for s in CredentialScheme)
            ) from None
        if scheme is CredentialScheme.CLEARTEXT:
            return cls.cleartext(data)
        if scheme is CredentialScheme.NT:
            try:
                digest = bytes.fromhex(data)
            except ValueError:
                digest = b""
            if len(digest) != 16:
                raise CredentialError("{NT} needs 32 hex digits")
            return cls(scheme, digest)
        try:
            decoded = base64.b64decode(data, validate=True)
        except binascii.Error:
            raise CredentialError(f"{{{scheme}}} needs base64 of digest + salt") from None
        size = _SALTED[scheme][1]
        if len(decoded) <= size:
            raise CredentialError(f"{{{scheme}}} needs a {size}-octet digest and a salt")
        return cls(scheme, decoded[:size], salt=decoded[size:])

    def matches(self, password: bytes) -> bool:
        """Does the cleartext ``password`` match?  Constant time in the password's value."""
        if self.scheme is CredentialScheme.CLEARTEXT:
            # compare digests so that the time does not even depend on the lengths
            return hmac.compare_digest(hashlib.sha256(password).digest(), hashlib.sha256(self.value).digest())
        if self.scheme is CredentialScheme.NT:
            try:
                candidate = nt_password_hash(password.decode("utf-8"))
            except UnicodeDecodeError:
                return False
            return hmac.compare_digest(candidate, self.value)
        hash_function = _SALTED[self.scheme][0]
        return hmac.compare_digest(hash_function(password + self.salt).digest(), self.value)


@functools.lru_cache(maxsize=65_536)
def _cleartext_nt_hash(raw: bytes) -> bytes | None:
    try:
        return nt_password_hash(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None


# --------------------------------------------------------------------------- dispatch


def detect_method(packet: RadiusPacket) -> Method | None:
    """The method the request uses, or None if it carries none or several.

    MS-CHAP2-Response means MS-CHAPv2, CHAP-Password CHAP, User-Password PAP.  RFC 2865
    §5.2/§5.3 forbid User-Password with CHAP-Password; a request with more than one of
    the three is ambiguous and gets None (``authenticate`` says why).
    """
    found = _methods_present(packet)
    return found[0] if len(found) == 1 else None


def _methods_present(packet: RadiusPacket) -> list[Method]:
    found = []
    if packet.get(USER_PASSWORD) is not None:
        found.append(Method.PAP)
    if packet.get(CHAP_PASSWORD) is not None:
        found.append(Method.CHAP)
    if packet.get_vendor(MICROSOFT, MS_CHAP2_RESPONSE) is not None:
        found.append(Method.MSCHAPV2)
    return found


def authenticate(
    request: RadiusPacket,
    secret: bytes,
    credential: Credential,
    *,
    policy: EncryptionPolicy = EncryptionPolicy.ENCRYPTION_ALLOWED,
    types: EncryptionTypes = EncryptionTypes.RC4_40 | EncryptionTypes.RC4_128,
    salts: tuple[bytes, bytes] | None = None,
) -> AuthOutcome:
    """Verify the request's password by whichever method it uses.

    ``policy``, ``types`` and ``salts`` only matter for MS-CHAPv2 (see ``verify_mschapv2``).
    """
    found = _methods_present(request)
    if len(found) > 1:
        return AuthOutcome(False, None, reason=Reason.CONFLICTING_PASSWORD_ATTRIBUTES)
    if not found:
        unsupported = (
            request.get_vendor(MICROSOFT, MS_CHAP_RESPONSE) is not None
            or request.get(EAP_MESSAGE) is not None
        )
        reason = Reason.UNSUPPORTED_METHOD if unsupported else Reason.NO_PASSWORD_ATTRIBUTES
        return AuthOutcome(False, None, reason=reason)
    if found[0] is Method.PAP:
        return verify_pap(request, secret, credential)
    if found[0] is Method.CHAP:
        return verify_chap(request, credential)
    return verify_mschapv2(request, secret, credential, policy=policy, types=types, salts=salts)


# --------------------------------------------------------------------------- PAP and CHAP


def verify_pap(request: RadiusPacket, secret: bytes, credential: Credential) -> AuthOutcome:
    """PAP: recover User-Password (RFC 2865 §5.2) and check it against the credential."""
    hidden = request.get(USER_PASSWORD)
    if hidden is None:
        return _fail(Method.PAP, Reason.NO_PASSWORD_ATTRIBUTES)
    if not hidden or len(hidden) % 16 or len(hidden) > MAX_USER_PASSWORD_LENGTH:
        return _fail(Method.PAP, Reason.MALFORMED_USER_PASSWORD)
    if len(request.get_all(USER_PASSWORD)) > 1:
        return _fail(Method.PAP, Reason.MALFORMED_USER_PASSWORD)
    password = decrypt_user_password(hidden, secret, request.authenticator)
    if not credential.matches(password):
        return _fail(Method.PAP, Reason.BAD_PASSWORD)
    return AuthOutcome(True, Method.PAP)


def verify_chap(request: RadiusPacket, credential: Credential) -> AuthOutcome:
    """CHAP (RFC 1994, RFC 2865 §2.2): needs a cleartext credential."""
    value = request.get(CHAP_PASSWORD)
    if value is None:
        return _fail(Method.CHAP, Reason.NO_PASSWORD_ATTRIBUTES)
    if len(value) != _CHAP_PASSWORD_LENGTH or len(request.get_all(CHAP_PASSWORD)) > 1:
        return _fail(Method.CHAP, Reason.MALFORMED_CHAP_PASSWORD)
    challenges = request.get_all(CHAP_CHALLENGE)
    if len(challenges) > 1 or (challenges and len(challenges[0]) < _MIN_CHAP_CHALLENGE_LENGTH):
        return _fail(Method.CHAP, Reason.MALFORMED_CHAP_CHALLENGE)
    if credential.scheme is not CredentialScheme.CLEARTEXT:
        return _fail(Method.CHAP, Reason.CREDENTIAL_UNUSABLE)
    challenge = challenges[0] if challenges else request.authenticator
    expected = chap_password(value[0], credential.value, challenge)
    if not hmac.compare_digest(expected, value):
        return _fail(Method.CHAP, Reason.BAD_PASSWORD)
    return AuthOutcome(True, Method.CHAP)


def _fail(method: Method | None, reason: Reason, reply: tuple[Attribute, ...] = ()) -> AuthOutcome:
    return AuthOutcome(False, method, reply, reason)


# --------------------------------------------------------------------------- MS-CHAPv2


def verify_mschapv2(
    request: RadiusPacket,
    secret: bytes,
    credential: Credential,
    *,
    policy: EncryptionPolicy = EncryptionPolicy.ENCRYPTION_ALLOWED,
    types: EncryptionTypes = EncryptionTypes.RC4_40 | EncryptionTypes.RC4_128,
    salts: tuple[bytes, bytes] | None = None,
) -> AuthOutcome:
    """MS-CHAPv2 (RFC 2759 over RFC 2548): check the NT-Response, build the Accept's attributes.

    On success the reply carries MS-CHAP2-Success, MS-MPPE-Send-Key, MS-MPPE-Recv-Key
    (the server's 128-bit start keys, RFC 3079 §3.4, encrypted with ``secret`` and the
    Request Authenticator), MS-MPPE-Encryption-Policy ``policy`` and
    MS-MPPE-Encryption-Types ``types``.  ``salts``: the two 2-octet salts of the keys
    (high bit set, different), random when None.  A bad password's reply carries
    MS-CHAP-Error "E=691 R=0 C=<the challenge> V=3" (no retry: R=0).
    """
    response = request.get_vendor(MICROSOFT, MS_CHAP2_RESPONSE)
    if response is None:
        return _fail(Method.MSCHAPV2, Reason.NO_PASSWORD_ATTRIBUTES)
    challenge = request.get_vendor(MICROSOFT, MS_CHAP_CHALLENGE)
    if len(response) != _MS_CHAP2_RESPONSE_LENGTH:
        return _fail(Method.MSCHAPV2, Reason.MALFORMED_MS_CHAP2_RESPONSE, _ms_chap_error(response, challenge))
    if challenge is None:
        return _fail(Method.MSCHAPV2, Reason.NO_MS_CHAP_CHALLENGE, _ms_chap_error(response, challenge))
    if len(challenge) != _MS_CHAP_CHALLENGE_LENGTH:
        return _fail(Method.MSCHAPV2, Reason.MALFORMED_MS_CHAP_CHALLENGE, _ms_chap_error(response, challenge))
    user_name = request.get(USER_NAME)
    if user_name is None:
        return _fail(Method.MSCHAPV2, Reason.NO_USER_NAME, _ms_chap_error(response, challenge))
    password_hash = credential.nt_hash
    if password_hash is None:
        return _fail(Method.MSCHAPV2, Reason.CREDENTIAL_UNUSABLE, _ms_chap_error(response, challenge))

    ident = response[:1]
    peer_challenge = response[2:18]
    received = response[26:50]
    user = _strip_nt_domain(user_name)
    expected = nt_response(challenge, peer_challenge, user, password_hash)
    if not hmac.compare_digest(expected, received):
        return _fail(Method.MSCHAPV2, Reason.BAD_PASSWORD, _ms_chap_error(response, challenge))

    password_hash_hash = MD4.new(password_hash).digest()
    success = ident + authenticator_response(
        password_hash_hash, received, peer_challenge, challenge, user
    ).encode("ascii")
    send_key, recv_key = mppe_start_keys(master_key(password_hash_hash, received))
    send_salt, recv_salt = _salts() if salts is None else salts
    reply: tuple[Attribute, ...] = (
        (MICROSOFT, MS_CHAP2_SUCCESS, success),
        (MICROSOFT, MS_MPPE_RECV_KEY, encrypt_mppe_key(recv_key, secret, request.authenticator, recv_salt)),
        (MICROSOFT, MS_MPPE_SEND_KEY, encrypt_mppe_key(send_key, secret, request.authenticator, send_salt)),
        (MICROSOFT, MS_MPPE_ENCRYPTION_POLICY, int(policy).to_bytes(4, "big")),
        (MICROSOFT, MS_MPPE_ENCRYPTION_TYPES, int(types).to_bytes(4, "big")),
    )
    return AuthOutcome(True, Method.MSCHAPV2, reply)


def _strip_nt_domain(user_name: bytes) -> bytes:
    """ "DOMAIN\\user" -> "user": the name the client put into the challenge hash."""
    return user_name.rpartition(b"\\")[2]


def _ms_chap_error(response: bytes, challenge: bytes | None) -> tuple[Attribute, ...]:
    """MS-CHAP-Error for a failure (RFC 2759 §6, RFC 2548 §2.1.5); none if there is no Ident."""
    if not response:
        return ()
    shown = challenge if challenge is not None and len(challenge) == _MS_CHAP_CHALLENGE_LENGTH else bytes(16)
    message = b"E=691 R=0 C=" + shown.hex().upper().encode("ascii") + b" V=3"
    return ((MICROSOFT, MS_CHAP_ERROR, response[:1] + message),)


def _salts() -> tuple[bytes, bytes]:
    first = 0x8000 | secrets.randbits(15)
    return first.to_bytes(2, "big"), (first ^ 1).to_bytes(2, "big")  # unique within the packet


# RFC 2759 §8 primitives -----------------------------------------------------------


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash: MD4 of the UTF-16LE password (RFC 2759 §8.3)."""
    return MD4.new(password.encode("utf-16-le")).digest()


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, user_name: bytes) -> bytes:
    """ChallengeHash: first 8 octets of SHA-1(PeerChallenge + AuthenticatorChallenge + UserName)."""
    return hashlib.sha1(peer_challenge + authenticator_challenge + user_name).digest()[:8]


def _des_key(seven: bytes) -> bytes:
    """Spread 56 key bits over 8 octets (the parity bits are ignored by DES)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, user_name: bytes, password_hash: bytes
) -> bytes:
    """GenerateNTResponse (RFC 2759 §8.1): ChallengeResponse of the challenge hash, 24 octets."""
    challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name)
    z_hash = password_hash + bytes(5)
    return b"".join(DES.new(_des_key(z_hash[i : i + 7]), DES.MODE_ECB).encrypt(challenge) for i in (0, 7, 14))


_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"


def authenticator_response(
    password_hash_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user_name: bytes,
) -> str:
    """GenerateAuthenticatorResponse (RFC 2759 §8.7): "S=" + 40 upper-case hex digits."""
    digest = hashlib.sha1(password_hash_hash + nt_response + _MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name)
    digest = hashlib.sha1(digest + challenge + _MAGIC2).digest()
    return "S=" + digest.hex().upper()


# RFC 3079 §3.4 MPPE keys ------------------------------------------------------------

_KEY_MAGIC1 = b"This is the MPPE Master Key"
_KEY_MAGIC2 = b"On the client side, this is the send key; on the server side, it is the receive key."
_KEY_MAGIC3 = b"On the client side, this is the receive key; on the server side, it is the send key."
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 §3.4): 16 octets."""
    return hashlib.sha1(password_hash_hash + nt_response + _KEY_MAGIC1).digest()[:16]


def mppe_start_keys(master: bytes) -> tuple[bytes, bytes]:
    """The server's (send, receive) 128-bit start keys: GetAsymmetricStartKey, RFC 3079 §3.4.

    The server's send key is the client's receive key (Magic3) and vice versa (Magic2).
    """

    def start_key(magic: bytes) -> bytes:
        return hashlib.sha1(master + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:_MPPE_KEY_LENGTH]

    return start_key(_KEY_MAGIC3), start_key(_KEY_MAGIC2)


def encrypt_mppe_key(key: bytes, secret: bytes, request_authenticator: bytes, salt: bytes) -> bytes:
    """MS-MPPE-Send-Key / -Recv-Key value (RFC 2548 §2.4.2): Salt + encrypted String.

    The plaintext is Key-Length + Key, zero-padded to 16-octet blocks; b(1) = MD5(secret +
    Request Authenticator + Salt), b(i) = MD5(secret + c(i-1)), c(i) = p(i) xor b(i).
    """
    if len(salt) != 2 or not salt[0] & 0x80:
        raise ValueError("an MPPE key salt is 2 octets with the high bit set")
    if len(request_authenticator) != AUTHENTICATOR_LENGTH:
        raise ValueError("the Request Authenticator is 16 octets")
    plain = bytes((len(key),)) + key
    plain += bytes(-len(plain) % 16)
    out = []
    previous = request_authenticator + salt
    for i in range(0, len(plain), 16):
        pad = hashlib.md5(secret + previous).digest()
        block = (int.from_bytes(plain[i : i + 16], "big") ^ int.from_bytes(pad, "big")).to_bytes(16, "big")
        out.append(block)
        previous = block
    return salt + b"".join(out)
