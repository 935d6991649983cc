"""BRAS simulator: a real RADIUS peer (NAS side) that brings subscribers online, for tests and demos.

What it does, as a BRAS would: authenticates PPPoE subscribers (PAP or CHAP) and IPoE
subscribers (MAC in User-Name / Calling-Station-Id, DHCP Option 82 as the RFC 4679
Agent-Circuit-Id / Agent-Remote-Id), every Access-Request with a Message-Authenticator;
on Access-Accept sends Accounting Start, then Interim-Updates with growing counters
(Acct-*-Gigawords once a counter passes 4 GiB), Stop with an Acct-Terminate-Cause;
"reboots" (Accounting-On, then everyone authenticates again); and listens on its own CoA
port for CoA-Request and Disconnect-Request (RFC 5176), which it verifies, acts on and
answers with ACK or NAK (Error-Cause 503 for a session it does not have).  How verified
requests for a session it has are answered is configurable, separately for CoA and
Disconnect (``coa_answer`` / ``disconnect_answer``): "ack" (act, then ACK), "nak" (do
nothing, NAK with ``nak_error_cause``, by default 501 Administratively-Prohibited: the RFC
5176 §3.6 cause for a NAS configured not to honour such requests) or "silent" (no answer at
all, for every request, as a NAS that is down or overloaded).  An ACKed Disconnect ends the
session with an Accounting Stop (Acct-Terminate-Cause Admin-Reset); an ACKed CoA records its
attributes on the session (``Session.coa`` accumulates, ``BrasSimulator.last_coa`` returns
the last one's).

Why this shape (simple on purpose, it is a test peer, not a product):

- Client side: pyrad builds the requests (dictionary names, User-Password hiding,
  Message-Authenticator, accounting authenticators) and verifies the replies (Response
  Authenticator, Message-Authenticator, Proxy-State).  The send/retry loop is ours, on one
  blocking UDP socket per worker thread of a small ``ThreadPoolExecutor``: pyrad's
  ``Client.SendPacket`` lets ``ConnectionRefusedError`` escape its retry loop, cannot be
  bounded by a deadline, keeps the Identifier when Acct-Delay-Time changes (RFC 5080
  §2.2.1 wants a new one), and has no public way to close its socket.
- CoA side: a plain UDP socket read by one thread, decoded with our strict ``aaa.codec``
  (it verifies the Request Authenticator with ``hmac.compare_digest``; pyrad does not).
  No Twisted: the simulator must be usable from plain pytest and a CLI without a reactor.
- Bounded: every request has at most ``retries`` sends of ``timeout`` seconds and never
  outlives the run's deadline; ``close()`` stops the CoA thread and the pool and closes every
  socket, so nothing is left behind.

Programmatic use::

    with BrasSimulator(config) as bras:
        bras.authenticate(sub); bras.start(sub); bras.interim(sub); bras.stop(sub)
    # or
    stats = BrasSimulator(config).run(duration=10.0)   # closes itself
"""

from __future__ import annotations

import contextlib
import csv
import ipaddress
import logging
import random
import re
import socket
import threading
import time
import tomllib
from collections import Counter, OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Literal

from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa import codec
from aaa.codec import Code, MalformedPacket, RadiusPacket
from aaa.dictionary import RadiusDictionary, compile_dictionary

__all__ = [
    "DEFAULT_DICTIONARY",
    "BrasConfig",
    "BrasSimulator",
    "CoaAnswer",
    "ErrorCause",
    "Outcome",
    "Session",
    "Stats",
    "Subscriber",
    "SubscriberSpecError",
    "TerminateCause",
    "generate_subscribers",
    "load_subscribers",
    "take",
]

_log = logging.getLogger(__name__)

DEFAULT_DICTIONARY = Path(__file__).resolve().parents[1] / "conf" / "dictionaries" / "dictionary"
"""The project's FreeRADIUS-format dictionary (``$INCLUDE``s the RFC and vendor files)."""

_GIGAWORD = 1 << 32
_MAX_DATAGRAM = 4096
_RECENT_COA_REPLIES = 4096  # duplicate CoA/Disconnect requests are answered from this cache
_COA_RECEIVE_BUFFER = 4 * 1024 * 1024  # SO_RCVBUF of the CoA socket (the kernel may cap it)

# RFC 5176 §3: attributes that identify the session a CoA/Disconnect-Request is about
_ACCT_SESSION_ID = 44
_USER_NAME = 1
_FRAMED_IP_ADDRESS = 8
_CALLING_STATION_ID = 31
_NAS_IP_ADDRESS = 4
_ERROR_CAUSE = 101
_SESSION_KEYS = (_ACCT_SESSION_ID, _USER_NAME, _FRAMED_IP_ADDRESS, _CALLING_STATION_ID)
# not recorded as "new attributes" of a CoA: they identify, they do not change anything
_NOT_RECORDED = frozenset({*_SESSION_KEYS, _NAS_IP_ADDRESS, 32, 30, 5, 87, codec.MESSAGE_AUTHENTICATOR})


class TerminateCause(IntEnum):
    """Acct-Terminate-Cause values (RFC 2866 §5.10) the simulator uses."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    PORT_ERROR = 8
    NAS_REQUEST = 10


class ErrorCause(IntEnum):
    """Error-Cause values (RFC 5176 §3.6) the CoA listener answers with (or may be told to)."""

    UNSUPPORTED_ATTRIBUTE = 401
    MISSING_ATTRIBUTE = 402
    NAS_IDENTIFICATION_MISMATCH = 403
    INVALID_REQUEST = 404
    UNSUPPORTED_SERVICE = 405
    INVALID_ATTRIBUTE_VALUE = 407
    ADMINISTRATIVELY_PROHIBITED = 501
    SESSION_CONTEXT_NOT_FOUND = 503
    SESSION_CONTEXT_NOT_REMOVABLE = 504
    RESOURCES_UNAVAILABLE = 506
    MULTIPLE_SESSION_SELECTION_UNSUPPORTED = 508


class CoaAnswer(StrEnum):
    """How the CoA listener answers verified requests for a session it has (per request kind)."""

    ACK = "ack"  # act on it (change the session / end it), then ACK
    NAK = "nak"  # leave the session alone, NAK with BrasConfig.nak_error_cause
    SILENT = "silent"  # no answer at all (to any verified request): a NAS down or overloaded


class Outcome(StrEnum):
    """What became of one request sent by the simulator."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CHALLENGED = "challenged"  # Access-Challenge: the simulator does not answer challenges
    ACKNOWLEDGED = "acknowledged"  # Accounting-Response received
    TIMEOUT = "timeout"  # no valid reply after every try (or the deadline came first)
    NO_SESSION = "no-session"  # interim/stop for a subscriber that is not online
    SKIPPED = "skipped"  # never sent: the deadline passed (or the simulator closed) while it waited


class _NotSent(Exception):
    """The request was never sent: its deadline passed or the simulator closed first."""


# --------------------------------------------------------------------------- subscribers


class SubscriberSpecError(ValueError):
    """A subscriber file or ``--generate`` spec that cannot be used; the message says where."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One simulated subscriber line.

    PPPoE needs ``login`` (and ``password``); IPoE needs ``mac`` or Option 82 (``circuit_id``,
    optionally ``remote_id``).  An IPoE subscriber without ``login`` sends its MAC as
    User-Name; without ``password`` it sends no password at all (authorize by identity).
    Circuit and remote ids are text, or ``0x`` + hex for binary sub-option values.
    """

    login: str = ""
    password: str = ""
    method: Literal["pap", "chap"] = "pap"
    kind: Literal["pppoe", "ipoe"] = "pppoe"
    mac: str = ""
    circuit_id: str = ""
    remote_id: str = ""

    def __post_init__(self) -> None:
        if self.method not in ("pap", "chap"):
            raise SubscriberSpecError(f"method {self.method!r}: expected pap or chap")
        if self.kind not in ("pppoe", "ipoe"):
            raise SubscriberSpecError(f"kind {self.kind!r}: expected pppoe or ipoe")
        if self.kind == "pppoe" and not self.login:
            raise SubscriberSpecError("a pppoe subscriber needs a login")
        if self.kind == "ipoe" and not (self.login or self.mac or self.circuit_id):
            raise SubscriberSpecError("an ipoe subscriber needs a mac, a circuit_id or a login")
        if self.mac and not re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", self.mac):
            raise SubscriberSpecError(f"mac {self.mac!r}: expected six hex octets like 02:00:00:00:00:01")
        for name in ("circuit_id", "remote_id"):
            value = getattr(self, name)
            if value.startswith("0x"):
                try:
                    bytes.fromhex(value[2:])
                except ValueError:
                    raise SubscriberSpecError(f"{name} {value!r}: bad hex after 0x") from None

    @property
    def key(self) -> str:
        """What the simulator keys its session table by: the login, else the MAC, else the circuit."""
        return self.login or self.mac.lower() or f"circuit:{self.circuit_id}"

    @property
    def user_name(self) -> str:
        return self.login or self.mac.lower() or self.circuit_id


_FIELDS = tuple(f.name for f in fields(Subscriber))


def _subscriber(row: dict[str, Any], where: str) -> Subscriber:
    unknown = set(row) - set(_FIELDS)
    if unknown:
        raise SubscriberSpecError(f"{where}: unknown keys {sorted(unknown)}; known: {', '.join(_FIELDS)}")
    values = {k: str(v).strip() for k, v in row.items() if v is not None and str(v).strip() != ""}
    try:
        return Subscriber(**values)  # type: ignore[arg-type]
    except SubscriberSpecError as exc:
        raise SubscriberSpecError(f"{where}: {exc}") from None


def load_subscribers(path: Path) -> tuple[Subscriber, ...]:
    """Read subscribers from a CSV file (header row) or a TOML file (``[[subscriber]]`` tables).

    Columns / keys: login, password, method (pap|chap), kind (pppoe|ipoe), mac, circuit_id,
    remote_id; empty ones take the defaults of ``Subscriber``.
    """
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SubscriberSpecError(f"{path}: {exc}") from None
        rows = data.get("subscriber", [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SubscriberSpecError(f"{path}: expected [[subscriber]] tables")
        subs = tuple(_subscriber(r, f"{path}: subscriber #{i + 1}") for i, r in enumerate(rows))
    else:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            subs = tuple(_subscriber(dict(r), f"{path}:{reader.line_num}") for r in reader)
    if not subs:
        raise SubscriberSpecError(f"{path}: no subscribers")
    return subs


_GENERATE = re.compile(
    r"^(?P<login>[^:]+):(?P<password>[^:]*):(?P<first>\d+)-(?P<last>\d+)(?::(?P<opts>.*))?$"
)


def generate_subscribers(spec: str) -> tuple[Subscriber, ...]:
    """Subscribers from ``LOGIN_FMT:PASSWORD_FMT:FIRST-LAST[:OPTION,...]``.

    The formats take the number with ``%`` (``user%05d:pw%05d:1-1000``).  Options: ``pap`` or
    ``chap`` (the method, default pap), ``pppoe`` or ``ipoe`` (the kind, default pppoe).
    Every subscriber gets a locally administered MAC derived from its number; an IPoE one
    also an Option 82 circuit id ``eth 0/<n // 48>/<n % 48 + 1>:100`` and remote id
    ``bras-sim``.
    """
    match = _GENERATE.match(spec)
    if match is None:
        raise SubscriberSpecError(
            f"{spec!r}: expected LOGIN_FMT:PASSWORD_FMT:FIRST-LAST[:pap|chap,pppoe|ipoe]"
        )
    first, last = int(match["first"]), int(match["last"])
    if first > last or last - first >= 1_000_000:
        raise SubscriberSpecError(f"{spec!r}: range {first}-{last} is empty or over a million")
    method, kind = "pap", "pppoe"
    for opt in filter(None, (match["opts"] or "").split(",")):
        if opt in ("pap", "chap"):
            method = opt
        elif opt in ("pppoe", "ipoe"):
            kind = opt
        else:
            raise SubscriberSpecError(f"{spec!r}: unknown option {opt!r} (pap, chap, pppoe, ipoe)")
    subs = []
    for n in range(first, last + 1):
        try:
            login, password = match["login"] % n, match["password"] % n if match["password"] else ""
        except (TypeError, ValueError) as exc:
            raise SubscriberSpecError(f"{spec!r}: {exc}") from None
        mac = ":".join(f"{b:02x}" for b in (2, 0, *n.to_bytes(4, "big")))
        extra = {"circuit_id": f"eth 0/{n // 48}/{n % 48 + 1}:100", "remote_id": "bras-sim"}
        subs.append(
            Subscriber(login, password, method, kind, mac, **(extra if kind == "ipoe" else {}))  # type: ignore[arg-type]
        )
    return tuple(subs)


# --------------------------------------------------------------------------- configuration, state


@dataclass(frozen=True)
class BrasConfig:
    """Everything a simulator run needs; the CLI builds one from its options."""

    subscribers: tuple[Subscriber, ...]
    secret: bytes = field(default=b"testing123", repr=False)
    server: str = "127.0.0.1"
    auth_port: int = 1812
    acct_port: int = 1813
    nas_ip: str = "127.0.0.1"  # NAS-IP-Address, and the address our sockets bind to
    nas_identifier: str = "bras-sim"
    coa_port: int | None = 3799  # 0: any free port (see BrasSimulator.coa_address); None: no listener
    interim: float = 60.0  # seconds between Interim-Updates of a session
    timeout: float = 2.0  # seconds to wait for a reply to each send
    retries: int = 3  # sends per request, the first one included
    workers: int = 8  # client threads, each with its own socket
    download_rate: int = 1_250_000  # octets/s to the subscriber (Acct-Output-Octets), ~10 Mbit/s
    upload_rate: int = 125_000  # octets/s from the subscriber (Acct-Input-Octets)
    churn: float = 0.0  # chance, at each interim, that a session ends (random cause) and logs in again
    reboot_after: float | None = None  # seconds into run(): Accounting-On, then everyone logs in again
    login_rate: float = 0.0  # new logins per second at the start of run(); 0: all at once
    stop_at_end: bool = True  # run() ends every session with a Stop (NAS-Request)
    require_message_authenticator: bool = True  # drop Access replies without one (BlastRADIUS)
    coa_answer: CoaAnswer = CoaAnswer.ACK  # how CoA-Requests for a known session are answered
    disconnect_answer: CoaAnswer = CoaAnswer.ACK  # the same for Disconnect-Requests
    nak_error_cause: int = ErrorCause.ADMINISTRATIVELY_PROHIBITED  # Error-Cause of a "nak" answer
    dictionary: Path = DEFAULT_DICTIONARY
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.subscribers:
            raise ValueError("no subscribers")
        if self.retries < 1 or self.timeout <= 0 or self.workers < 1 or self.interim <= 0:
            raise ValueError("retries and workers must be >= 1, timeout and interim > 0")
        keys = [sub.key for sub in self.subscribers]
        if len(set(keys)) != len(keys):
            twice = sorted(k for k, n in Counter(keys).items() if n > 1)
            raise ValueError(f"subscribers listed twice: {', '.join(twice[:5])}")
        if not 0.0 <= self.churn <= 1.0:
            raise ValueError(f"churn {self.churn}: expected 0..1")
        ipaddress.ip_address(self.nas_ip)  # ValueError if not an address
        for name in ("coa_answer", "disconnect_answer"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, CoaAnswer(value))
            except ValueError:
                choices = ", ".join(a.value for a in CoaAnswer)
                raise ValueError(f"{name} {value!r}: expected one of {choices}") from None
        if not 400 <= self.nak_error_cause <= 599:
            raise ValueError(f"nak_error_cause {self.nak_error_cause}: a NAK's Error-Cause is 400-599")


@dataclass(frozen=True)
class Stats:
    """Counts of what happened; ``BrasSimulator.stats`` returns a snapshot."""

    access_requests: int = 0
    accepted: int = 0
    rejected: int = 0
    challenged: int = 0
    auth_timeouts: int = 0
    acct_requests: int = 0
    acct_acknowledged: int = 0
    acct_timeouts: int = 0
    starts: int = 0
    interims: int = 0
    stops: int = 0
    accounting_ons: int = 0
    retransmissions: int = 0
    coa_acked: int = 0
    coa_naked: int = 0
    disconnect_acked: int = 0
    disconnect_naked: int = 0
    coa_dropped: int = 0  # bad authenticator, malformed, or not a CoA/Disconnect-Request
    coa_duplicates: int = 0  # answered from the reply cache
    coa_silenced: int = 0  # verified CoA-Requests left unanswered on purpose (coa_answer "silent")
    disconnect_silenced: int = 0  # the same for Disconnect-Requests
    skipped: int = 0  # requests never sent: their deadline passed while they waited for a worker

    @property
    def timeouts(self) -> int:
        return self.auth_timeouts + self.acct_timeouts

    def summary(self) -> str:
        return "\n".join(
            [
                f"access:     requests {self.access_requests}, accepted {self.accepted}, "
                f"rejected {self.rejected}, challenged {self.challenged}, timeouts {self.auth_timeouts}",
                f"accounting: requests {self.acct_requests}, acknowledged {self.acct_acknowledged}, "
                f"timeouts {self.acct_timeouts} (start {self.starts}, interim {self.interims}, "
                f"stop {self.stops}, accounting-on {self.accounting_ons})",
                f"coa:        acked {self.coa_acked}, naked {self.coa_naked}; disconnect: acked "
                f"{self.disconnect_acked}, naked {self.disconnect_naked}; dropped {self.coa_dropped}, "
                f"duplicates {self.coa_duplicates}, unanswered on purpose {self.coa_silenced} CoA, "
                f"{self.disconnect_silenced} disconnect",
                f"retransmissions {self.retransmissions}, timeouts {self.timeouts}, "
                f"skipped at the deadline {self.skipped}",
            ]
        )


@dataclass
class Session:
    """An online session on the simulated BRAS (mutated under the simulator's lock)."""

    subscriber: Subscriber
    acct_session_id: str
    nas_port: int
    framed_ip: str
    started: float  # time.monotonic()
    reply: dict[str, list[Any]] = field(default_factory=dict)  # Access-Accept attributes, by name
    coa: dict[str, Any] = field(default_factory=dict)  # attributes set by CoA-Requests, by name
    last_coa: dict[str, Any] = field(default_factory=dict)  # attributes of the last ACKed CoA-Request
    input_octets: int = 0
    output_octets: int = 0
    last_update: float = 0.0
    interim_count: int = 0
    active: bool = True  # False once stopped or disconnected

    def add_usage(self, input_octets: int, output_octets: int) -> None:
        self.input_octets += input_octets
        self.output_octets += output_octets


# --------------------------------------------------------------------------- the simulator


class BrasSimulator:
    """The simulated BRAS.  Thread-safe; use as a context manager or call ``close()``."""

    def __init__(self, config: BrasConfig) -> None:
        self.config = config
        self.dictionary = PyradDictionary(str(config.dictionary))
        self._names: RadiusDictionary = compile_dictionary(self.dictionary)
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._stats = Stats()
        self._sessions: dict[str, Session] = {}
        self._accepts: dict[str, dict[str, list[Any]]] = {}  # Access-Accept attributes until start()
        self._relogin_at: dict[str, float] = {}  # run(): when a subscriber logs in again
        self._session_seq = 0
        self._boot = int(time.time()) & 0xFFFF
        self._ports = {sub.key: i + 1 for i, sub in enumerate(config.subscribers)}
        self._local = threading.local()
        self._sockets: list[socket.socket] = []
        self._pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="bras-client")
        self._closed = threading.Event()
        self._coa_replies: OrderedDict[tuple[Any, int, bytes], bytes] = OrderedDict()
        self._by_session_id: dict[bytes, Session] = {}  # CoA lookups; see _candidates
        self._coa_socket: socket.socket | None = None
        self._coa_thread: threading.Thread | None = None
        self._coa_bound: tuple[str, int] | None = None
        if config.coa_port is not None:
            sock = socket.socket(
                socket.AF_INET6 if ":" in config.nas_ip else socket.AF_INET, socket.SOCK_DGRAM
            )
            try:
                sock.bind((config.nas_ip, config.coa_port))
            except OSError:
                sock.close()
                self._pool.shutdown()
                raise
            sock.settimeout(0.1)  # how often the listener looks at _closed
            # a burst of requests (hundreds in flight from one client) must not overflow the queue
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _COA_RECEIVE_BUFFER)
            self._coa_socket = sock
            self._coa_bound = sock.getsockname()[:2]
            self._coa_thread = threading.Thread(target=self._coa_loop, name="bras-coa", daemon=True)
            self._coa_thread.start()

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> BrasSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the CoA listener and the client pool, join their threads, close every socket."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._coa_thread is not None:
            self._coa_thread.join()
        if self._coa_socket is not None:
            self._coa_socket.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    @property
    def coa_address(self) -> tuple[str, int] | None:
        """Where the CoA listener is bound (the port is the real one when configured as 0)."""
        return self._coa_bound

    @property
    def stats(self) -> Stats:
        with self._lock:
            return replace(self._stats)

    def session(self, sub: Subscriber) -> Session | None:
        """The subscriber's online session, if any (the live object: read, or ``add_usage``)."""
        with self._lock:
            return self._sessions.get(sub.key)

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def last_coa(self, sub: Subscriber) -> dict[str, Any] | None:
        """A copy of the attributes of the last CoA-Request ACKed for the subscriber's session.

        By dictionary name (``{"Mikrotik-Rate-Limit": "10M/50M"}``); ``{}`` if none was ACKed
        yet; None if the subscriber is not online.
        """
        with self._lock:
            session = self._sessions.get(sub.key)
            return None if session is None else dict(session.last_coa)

    def _count(self, **increments: int) -> None:
        with self._lock:
            self._stats = replace(
                self._stats, **{k: getattr(self._stats, k) + v for k, v in increments.items()}
            )

    # ------------------------------------------------------------------ client side

    def authenticate(self, sub: Subscriber, *, deadline: float | None = None) -> Outcome:
        """Send the subscriber's Access-Request; on Accept, remember the reply for ``start``."""
        pkt = self._access_request(sub)
        try:
            reply = self._exchange(pkt, self.config.auth_port, deadline)
        except _NotSent:
            self._count(skipped=1)
            return Outcome.SKIPPED
        self._count(access_requests=1)
        if reply is None:
            self._count(auth_timeouts=1)
            return Outcome.TIMEOUT
        if reply.code == pyrad_packet.AccessAccept:
            self._count(accepted=1)
            attrs = {str(k): list(reply[k]) for k in reply.keys() if k != "Message-Authenticator"}  # noqa: SIM118
            with self._lock:
                self._accepts[sub.key] = attrs
            return Outcome.ACCEPTED
        if reply.code == pyrad_packet.AccessChallenge:
            self._count(challenged=1)
            return Outcome.CHALLENGED
        self._count(rejected=1)
        return Outcome.REJECTED

    def start(self, sub: Subscriber, *, deadline: float | None = None) -> Session:
        """Open the session (after an Accept) and send Accounting Start; returns the session.

        The session is online whatever the Start's fate (a BRAS does not wait for accounting);
        ``stats`` counts whether it was acknowledged.
        """
        now = time.monotonic()
        with self._lock:
            reply = self._accepts.pop(sub.key, {})
            self._session_seq += 1
            port = self._ports.get(sub.key, 0)
            framed = reply.get("Framed-IP-Address", [None])[0] or str(
                ipaddress.IPv4Address(int(ipaddress.IPv4Address("100.64.0.0")) + port)
            )
            session = Session(
                subscriber=sub,
                acct_session_id=f"{self._boot:04X}{self._session_seq:08X}",
                nas_port=port,
                framed_ip=str(framed),
                started=now,
                reply=reply,
                last_update=now,
            )
            self._sessions[sub.key] = session
        self._accounting(session, "Start", deadline)
        return session

    def interim(self, sub: Subscriber, *, deadline: float | None = None) -> Outcome:
        """Send an Interim-Update; counters first grow by the configured rates for the time passed."""
        session = self.session(sub)
        if session is None:
            return Outcome.NO_SESSION
        now = time.monotonic()
        with self._lock:
            elapsed = max(0.0, now - session.last_update)
            session.add_usage(
                int(elapsed * self.config.upload_rate), int(elapsed * self.config.download_rate)
            )
            session.last_update = now
            session.interim_count += 1
        return self._accounting(session, "Interim-Update", deadline)

    def stop(
        self,
        sub: Subscriber,
        cause: TerminateCause = TerminateCause.USER_REQUEST,
        *,
        deadline: float | None = None,
    ) -> Outcome:
        """End the session and send Accounting Stop with ``cause``."""
        with self._lock:
            session = self._sessions.pop(sub.key, None)
            if session is not None:
                session.active = False
        if session is None:
            return Outcome.NO_SESSION
        return self._accounting(session, "Stop", deadline, cause=cause)

    def accounting_on(self, *, deadline: float | None = None) -> Outcome:
        """Reboot: forget every session (a rebooted NAS sends no Stops) and send Accounting-On."""
        with self._lock:
            for session in self._sessions.values():
                session.active = False
            self._sessions.clear()
            self._boot = (self._boot + 1) & 0xFFFF
        pkt = self._acct_packet("Accounting-On")
        pkt["Acct-Session-Id"] = f"{self._boot:04X}00000000"
        return self._send_accounting(pkt, deadline, "accounting_ons")

    def reboot(self, *, deadline: float | None = None) -> Outcome:
        """Accounting-On, then every subscriber that was online logs in again (auth + Start)."""
        was_online = [s.subscriber for s in self.sessions()]
        outcome = self.accounting_on(deadline=deadline)
        for future in [self._pool.submit(self._login, sub, deadline) for sub in was_online]:
            future.result()
        return outcome

    def _login(self, sub: Subscriber, deadline: float | None) -> Outcome:
        outcome = self.authenticate(sub, deadline=deadline)
        if outcome is Outcome.ACCEPTED:
            self.start(sub, deadline=deadline)
        return outcome

    def _access_request(self, sub: Subscriber) -> pyrad_packet.AuthPacket:
        pkt = pyrad_packet.AuthPacket(
            dict=self.dictionary, secret=self.config.secret, message_authenticator=True
        )
        pkt["User-Name"] = sub.user_name
        if sub.password:
            if sub.method == "chap":
                challenge = self._rng.randbytes(16)
                pkt["CHAP-Challenge"] = challenge
                pkt["CHAP-Password"] = codec.chap_password(
                    self._rng.randrange(256), sub.password.encode(), challenge
                )
            else:
                pkt["User-Password"] = pkt.PwCrypt(sub.password)
        self._describe_line(pkt, sub, self._ports.get(sub.key, 0))
        return pkt

    def _describe_line(self, pkt: pyrad_packet.Packet, sub: Subscriber, port: int) -> None:
        """The NAS and line attributes common to Access- and Accounting-Requests."""
        self._nas_attributes(pkt)
        pkt["NAS-Port"] = port
        pkt["NAS-Port-Id"] = (
            sub.circuit_id
            if sub.circuit_id and not sub.circuit_id.startswith("0x")
            else (f"{sub.kind}-{port}")
        )
        pkt["NAS-Port-Type"] = "Virtual" if sub.kind == "pppoe" else "Ethernet"
        pkt["Service-Type"] = "Framed-User"
        if sub.kind == "pppoe":
            pkt["Framed-Protocol"] = "PPP"
        if sub.mac:
            pkt["Calling-Station-Id"] = sub.mac.lower().replace("-", ":")
        if sub.circuit_id:
            pkt["Agent-Circuit-Id"] = _option82_value(sub.circuit_id)
        if sub.remote_id:
            pkt["Agent-Remote-Id"] = _option82_value(sub.remote_id)

    def _nas_attributes(self, pkt: pyrad_packet.Packet) -> None:
        if ":" in self.config.nas_ip:
            pkt["NAS-IPv6-Address"] = self.config.nas_ip
        else:
            pkt["NAS-IP-Address"] = self.config.nas_ip
        pkt["NAS-Identifier"] = self.config.nas_identifier

    def _acct_packet(self, status: str) -> pyrad_packet.AcctPacket:
        pkt = pyrad_packet.AcctPacket(dict=self.dictionary, secret=self.config.secret)
        pkt["Acct-Status-Type"] = status
        self._nas_attributes(pkt)
        pkt["Event-Timestamp"] = int(time.time())
        pkt["Acct-Delay-Time"] = 0
        return pkt

    def _accounting(
        self, session: Session, status: str, deadline: float | None, *, cause: TerminateCause | None = None
    ) -> Outcome:
        sub = session.subscriber
        pkt = self._acct_packet(status)
        pkt["User-Name"] = sub.user_name
        pkt["Acct-Session-Id"] = session.acct_session_id
        pkt["Acct-Authentic"] = "RADIUS"
        pkt["Framed-IP-Address"] = session.framed_ip
        self._describe_line(pkt, sub, session.nas_port)
        if "Class" in session.reply:
            pkt["Class"] = session.reply["Class"]  # RFC 2865 §5.25: echoed unmodified
        if status != "Start":
            with self._lock:
                in_octets, out_octets = session.input_octets, session.output_octets
            pkt["Acct-Session-Time"] = int(time.monotonic() - session.started)
            pkt["Acct-Input-Octets"] = in_octets % _GIGAWORD
            pkt["Acct-Output-Octets"] = out_octets % _GIGAWORD
            if in_octets >= _GIGAWORD:
                pkt["Acct-Input-Gigawords"] = in_octets // _GIGAWORD
            if out_octets >= _GIGAWORD:
                pkt["Acct-Output-Gigawords"] = out_octets // _GIGAWORD
            pkt["Acct-Input-Packets"] = (in_octets // 1000) % _GIGAWORD
            pkt["Acct-Output-Packets"] = (out_octets // 1000) % _GIGAWORD
        if cause is not None:
            pkt["Acct-Terminate-Cause"] = int(cause)
        kind = {"Start": "starts", "Interim-Update": "interims", "Stop": "stops"}[status]
        return self._send_accounting(pkt, deadline, kind)

    def _send_accounting(self, pkt: pyrad_packet.AcctPacket, deadline: float | None, kind: str) -> Outcome:
        try:
            reply = self._exchange(pkt, self.config.acct_port, deadline)
        except _NotSent:
            self._count(skipped=1)
            return Outcome.SKIPPED
        if reply is None:
            self._count(acct_requests=1, acct_timeouts=1, **{kind: 1})
            return Outcome.TIMEOUT
        self._count(acct_requests=1, acct_acknowledged=1, **{kind: 1})
        return Outcome.ACKNOWLEDGED

    def _socket(self) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            family = socket.AF_INET6 if ":" in self.config.nas_ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((self.config.nas_ip, 0))
            with self._lock:
                if self._closed.is_set():
                    sock.close()
                    raise _NotSent("simulator is closed")
                self._sockets.append(sock)
            self._local.sock = sock
        return sock

    def _exchange(
        self, pkt: pyrad_packet.Packet, port: int, deadline: float | None
    ) -> pyrad_packet.Packet | None:
        """Send ``pkt`` up to ``retries`` times; the first valid reply, or None after the last try.

        Never waits past ``deadline`` (a ``time.monotonic()`` value); raises ``_NotSent`` if
        the deadline passed (or the simulator closed) before the first send.  A retransmitted
        Access-Request is the same packet; a retransmitted Accounting-Request gets the time
        waited added to Acct-Delay-Time and so a new Identifier (RFC 5080 §2.2.1).
        """
        sock = self._socket()
        first_sent = time.monotonic()
        for attempt in range(self.config.retries):
            now = time.monotonic()
            if self._closed.is_set() or (deadline is not None and now >= deadline):
                if not attempt:
                    raise _NotSent
                break
            if attempt:
                self._count(retransmissions=1)
                if pkt.code == pyrad_packet.AccountingRequest:
                    pkt["Acct-Delay-Time"] = int(now - first_sent)
                    pkt.id = pyrad_packet.CreateID()
            raw = pkt.RequestPacket()
            wait_until = now + self.config.timeout
            if deadline is not None:
                wait_until = min(wait_until, deadline)
            with contextlib.suppress(OSError):  # e.g. no route: counts as a lost try
                sock.sendto(raw, (self.config.server, port))
            reply = self._await_reply(sock, pkt, wait_until)
            if reply is not None:
                return reply
        return None

    def _await_reply(
        self, sock: socket.socket, pkt: pyrad_packet.Packet, wait_until: float
    ) -> pyrad_packet.Packet | None:
        while (remaining := wait_until - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except TimeoutError:
                return None
            except OSError:  # ICMP port unreachable reported on the socket: keep waiting
                time.sleep(min(remaining, 0.01))
                continue
            try:
                reply = pkt.CreateReply(packet=data)
                valid = pkt.VerifyReply(reply, data, enforce_ma=self.config.require_message_authenticator)
            except Exception as exc:  # pyrad raises assorted exceptions on garbage
                _log.warning("dropping undecodable reply: %s", exc)
                continue
            if valid:
                return reply
            _log.debug("dropping a reply that does not answer request %d", pkt.id)
        return None

    # ------------------------------------------------------------------ run

    def run(self, duration: float) -> Stats:
        """Bring every subscriber online, keep them busy for ``duration`` seconds, then close.

        Logins go out at ``login_rate`` per second (all at once when 0); each online session
        sends an Interim-Update every ``interim`` seconds; with ``churn`` a session may end at
        an interim (random cause) and log in again one interval later; a subscriber whose
        login timed out tries again one interval later; ``reboot_after`` reboots the NAS once.
        Requests never outlive the deadline.  With ``stop_at_end`` the online sessions get a
        Stop (NAS-Request) in a final phase bounded by ``retries * timeout`` seconds.
        """
        cfg = self.config
        begin = time.monotonic()
        deadline = begin + duration
        tick = min(0.05, cfg.interim / 10)
        pending: dict[str, Future[Any]] = {}
        reboot_at = None if cfg.reboot_after is None else begin + cfg.reboot_after
        with self._lock:
            for i, sub in enumerate(cfg.subscribers):
                self._relogin_at[sub.key] = begin + (i / cfg.login_rate if cfg.login_rate > 0 else 0.0)
        try:
            while (now := time.monotonic()) < deadline and not self._closed.is_set():
                for key in [k for k, f in pending.items() if f.done()]:
                    pending.pop(key).result()  # re-raise a bug in a worker
                if reboot_at is not None and now >= reboot_at:
                    reboot_at = None
                    self._wait(pending)
                    self.accounting_on(deadline=deadline)
                    with self._lock:
                        for sub in cfg.subscribers:
                            self._relogin_at.setdefault(sub.key, time.monotonic())
                    continue
                for sub in cfg.subscribers:
                    if sub.key not in pending and (job := self._due(sub, now, deadline)) is not None:
                        pending[sub.key] = job
                time.sleep(tick)
            self._wait(pending)
            if cfg.stop_at_end:
                final = time.monotonic() + cfg.retries * cfg.timeout
                jobs = [
                    self._pool.submit(self.stop, s.subscriber, TerminateCause.NAS_REQUEST, deadline=final)
                    for s in self.sessions()
                ]
                for job in jobs:
                    job.result()
            return self.stats
        finally:
            self.close()

    @staticmethod
    def _wait(pending: dict[str, Future[Any]]) -> None:
        for future in pending.values():
            future.result()
        pending.clear()

    def _due(self, sub: Subscriber, now: float, deadline: float) -> Future[Any] | None:
        """The job due now for this subscriber, submitted to the pool, or None."""
        cfg = self.config
        with self._lock:
            session = self._sessions.get(sub.key)
            relogin = self._relogin_at.get(sub.key)
            if session is None:
                if relogin is None or now < relogin:
                    return None
                del self._relogin_at[sub.key]
            elif now < session.last_update + cfg.interim:
                return None
        if session is None:
            return self._pool.submit(self._login_in_run, sub, deadline)
        if cfg.churn and self._rng.random() < cfg.churn:
            cause = self._rng.choice(
                [TerminateCause.USER_REQUEST, TerminateCause.LOST_CARRIER, TerminateCause.IDLE_TIMEOUT]
            )
            with self._lock:
                self._relogin_at[sub.key] = now + cfg.interim
            return self._pool.submit(self.stop, sub, cause, deadline=deadline)
        return self._pool.submit(self.interim, sub, deadline=deadline)

    def _login_in_run(self, sub: Subscriber, deadline: float) -> None:
        if self._login(sub, deadline) is Outcome.TIMEOUT:
            with self._lock:
                self._relogin_at[sub.key] = time.monotonic() + self.config.interim

    # ------------------------------------------------------------------ CoA / Disconnect (RFC 5176)

    def _coa_loop(self) -> None:
        assert self._coa_socket is not None
        sock = self._coa_socket
        while not self._closed.is_set():
            try:
                data, peer = sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                continue
            try:
                answer = self._coa_answer(data, peer)
            except Exception:  # a bug must not kill the listener; the request goes unanswered
                _log.exception("CoA request from %s failed", peer)
                continue
            if answer is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(answer, peer)

    def _coa_answer(self, data: bytes, peer: Any) -> bytes | None:
        """The reply datagram for one received datagram, or None to drop it."""
        secret = self.config.secret
        try:
            req = codec.decode(data)
        except MalformedPacket as exc:
            _log.warning("dropping CoA datagram from %s: %s", peer, exc.reason)
            self._count(coa_dropped=1)
            return None
        if req.code not in (
            Code.COA_REQUEST,
            Code.DISCONNECT_REQUEST,
        ) or not codec.verify_request_authenticator(req, secret):
            _log.warning(
                "dropping code %d from %s: not a CoA/Disconnect or bad authenticator", req.code, peer
            )
            self._count(coa_dropped=1)
            return None
        if req.has_message_authenticator and not codec.verify_message_authenticator(req, secret):
            _log.warning("dropping code %d from %s: bad Message-Authenticator", req.code, peer)
            self._count(coa_dropped=1)
            return None
        cache_key = (peer, req.identifier, req.authenticator)
        with self._lock:
            cached = self._coa_replies.get(cache_key)
        if cached is not None:
            self._count(coa_duplicates=1)
            return cached
        disconnect = req.code == Code.DISCONNECT_REQUEST
        mode = self.config.disconnect_answer if disconnect else self.config.coa_answer
        if mode is CoaAnswer.SILENT:
            _log.debug("not answering code %d from %s (answer mode silent)", req.code, peer)
            self._count(**{"disconnect_silenced" if disconnect else "coa_silenced": 1})
            return None
        error, session = self._coa_target(req)
        if error is None and mode is CoaAnswer.NAK:
            error = self.config.nak_error_cause
        if error is None and session is not None:
            if disconnect:
                self._disconnect(session)
            else:
                self._change(session, req)
            code = Code.DISCONNECT_ACK if disconnect else Code.COA_ACK
            attrs: list[codec.Attribute] = []
            self._count(**{"disconnect_acked" if disconnect else "coa_acked": 1})
        else:
            code = Code.DISCONNECT_NAK if disconnect else Code.COA_NAK
            attrs = [(_ERROR_CAUSE, int(error or ErrorCause.SESSION_CONTEXT_NOT_FOUND).to_bytes(4, "big"))]
            self._count(**{"disconnect_naked" if disconnect else "coa_naked": 1})
        answer = codec.encode_reply(req, code, attrs, secret)
        with self._lock:
            self._coa_replies[cache_key] = answer
            while len(self._coa_replies) > _RECENT_COA_REPLIES:
                self._coa_replies.popitem(last=False)
        return answer

    def _candidates(self, acct_session_id: bytes | None) -> list[Session]:
        """The sessions a CoA could mean (under the lock): by Acct-Session-Id when it names one.

        The index is rebuilt when it misses or is stale, so a request for a known session costs a
        dictionary lookup, not a scan of every session (which, with thousands online, made the
        simulator the bottleneck of any client measured against it).
        """
        if acct_session_id is None:
            return list(self._sessions.values())
        session = self._by_session_id.get(acct_session_id)
        if session is None or self._sessions.get(session.subscriber.key) is not session:
            self._by_session_id = {s.acct_session_id.encode(): s for s in self._sessions.values()}
            session = self._by_session_id.get(acct_session_id)
        return [] if session is None else [session]

    def _coa_target(self, req: RadiusPacket) -> tuple[int | None, Session | None]:
        """RFC 5176 §3: the one session matching every identification attribute, or why not."""
        nas_ip = req.get(_NAS_IP_ADDRESS)
        if nas_ip is not None and nas_ip != ipaddress.ip_address(self.config.nas_ip).packed:
            return ErrorCause.NAS_IDENTIFICATION_MISMATCH, None
        wanted = {key: req.get(key) for key in _SESSION_KEYS if req.get(key) is not None}
        if not wanted:
            return ErrorCause.MISSING_ATTRIBUTE, None
        with self._lock:
            found = [
                s
                for s in self._candidates(req.get(_ACCT_SESSION_ID))
                if _identity(s).items() >= wanted.items()
            ]
        if not found:
            return ErrorCause.SESSION_CONTEXT_NOT_FOUND, None
        if len(found) > 1:
            return ErrorCause.MULTIPLE_SESSION_SELECTION_UNSUPPORTED, None
        return None, found[0]

    def _disconnect(self, session: Session) -> None:
        """End the session now; its Stop (Admin-Reset) goes out from the pool, the ACK without waiting."""
        key = session.subscriber.key
        with self._lock:
            if self._sessions.get(key) is not session:
                return
            del self._sessions[key]
            session.active = False
            self._relogin_at[key] = time.monotonic() + self.config.interim
        with contextlib.suppress(RuntimeError):  # pool shut down: closing, the Stop is not sent
            self._pool.submit(self._accounting, session, "Stop", None, cause=TerminateCause.ADMIN_RESET)

    def _change(self, session: Session, req: RadiusPacket) -> None:
        """Record the CoA's attributes on the session by dictionary name (a BRAS would apply them)."""
        changes: dict[str, Any] = {}
        for attr in req.attributes:
            key: int | tuple[int, int] = attr[0] if len(attr) == 2 else (attr[0], attr[1])  # type: ignore[misc]
            if key in _NOT_RECORDED:
                continue
            definition = self._names.lookup(key)
            raw: bytes = attr[-1]  # type: ignore[assignment]
            if definition is None:
                changes[str(key)] = raw
                continue
            try:
                value: Any = codec.decode_value(definition.data_type, raw)
            except MalformedPacket:
                value = raw
            if isinstance(value, int) and value in definition.value_names:
                value = definition.value_names[value]
            changes[definition.name] = value
        with self._lock:
            session.coa.update(changes)
            session.last_coa = changes


def _identity(session: Session) -> dict[int, bytes]:
    sub = session.subscriber
    ident = {
        _ACCT_SESSION_ID: session.acct_session_id.encode(),
        _USER_NAME: sub.user_name.encode(),
        _FRAMED_IP_ADDRESS: ipaddress.ip_address(session.framed_ip).packed,
    }
    if sub.mac:
        ident[_CALLING_STATION_ID] = sub.mac.lower().replace("-", ":").encode()
    return ident


def _option82_value(text: str) -> bytes:
    return bytes.fromhex(text[2:]) if text.startswith("0x") else text.encode()


def take(subscribers: Sequence[Subscriber], count: int | None) -> tuple[Subscriber, ...]:
    """The first ``count`` subscribers (all when None); an error if there are fewer."""
    if count is None:
        return tuple(subscribers)
    if count < 1 or count > len(subscribers):
        raise SubscriberSpecError(f"--count {count}: there are {len(subscribers)} subscribers")
    return tuple(subscribers[:count])
