"""RADIUS accounting as pure functions: Accounting-Request -> ``AccountingRecord`` -> session state.

Why pure: the rules (which attributes count, how 64-bit counters are rebuilt, how a record
moves a session) are where accounting bugs hide, so they live here with no database, no
sockets and no clock (the receive time is a parameter) and are tested table by table.
``aaa.accounting_store`` does the I/O with exactly these functions.

Parsing (``parse_accounting``) follows RFC 2866 and RFC 2869:

- the NAS is NAS-IP-Address, else NAS-IPv6-Address, else the datagram's source address;
- octet counters are 64-bit: ``Acct-*-Gigawords * 2**32 + Acct-*-Octets`` (RFC 2869 §5.1);
- the event time is Event-Timestamp when present (the NAS says when it happened), else the
  receive time minus Acct-Delay-Time (how long the NAS has been retrying, RFC 2866 §5.2);
- ``acct_unique_id`` is a SHA-256 hex digest of (NAS address, Acct-Session-Id, NAS-Port-Id
  or ""), each length-prefixed so no two triples collide; FreeRADIUS's ``acctuniqueid``
  idea, so a retransmit or a late record finds the same session row;
- a malformed value, an unsupported Acct-Status-Type, a missing Acct-Session-Id on a
  session record, or a value too long for its column raises ``BadAccounting``: the handler
  drops the packet (no Accounting-Response) and logs ``reason``.

The session state machine (``advance``), for the three session status types.  A state is
``None`` (no row yet), ``open`` or ``closed``; counters are running totals that only move
forward: each new total is ``max(stored, reported)`` and the usage delta is
``max(0, reported - stored)`` per counter, so a retransmit or a late interim adds nothing.

=========  ==============  ======================================================================
state      status type     result
=========  ==============  ======================================================================
None       Start           open; started_at = event - Acct-Session-Time; delta = reported totals
None       Interim-Update  open (Interim without Start); started_at = event - Acct-Session-Time;
                           delta = reported totals
None       Stop            closed (Stop without Start); started_at as above, stopped_at = event,
                           terminate_cause; delta = reported totals
open       Start           open (a retransmit, or a duplicate Start); counters forward-only
open       Interim-Update  open; counters forward-only
open       Stop            closed; stopped_at = event, terminate_cause; counters forward-only
closed     Start           closed, unchanged except counters forward-only (a late Start
                           reports zeros: nothing changes)
closed     Interim-Update  closed; counters forward-only (a late interim after a Stop adds
                           nothing; after a close by Accounting-On or the reaper it adds the
                           usage the NAS did report)
closed     Stop            closed; stopped_at and terminate_cause kept (the first close wins);
                           counters forward-only (a retransmitted Stop changes nothing)
=========  ==============  ======================================================================

For an open session (and a new one) ``updated_at``, when we last heard of it by our receive
time (the reaper compares it with our clock, not the NAS's), becomes ``max(stored,
received_at)``; a closed session keeps it.  ``service_id`` is filled in if the session had
none and the record carries one; a non-zero ``interim_interval_s`` on the record replaces the
stored one.

Accounting-On and Accounting-Off carry no session: they mean "this NAS (re)started / is
going down", so every session of that NAS still open and started before the event is closed
at the event time with terminate cause ``NAS-Reboot`` (``close_for_nas``).  Sessions started
in the same second or later are spared: they belong to the NAS's new life.  That is one
set-based operation in the store, not a per-session transition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address

from aaa.codec import Code, MalformedPacket, RadiusPacket, decode_value

__all__ = [
    "NAS_REBOOT_CAUSE",
    "TERMINATE_CAUSES",
    "AccountingRecord",
    "BadAccounting",
    "Problem",
    "SessionState",
    "SessionStatus",
    "StatusType",
    "Transition",
    "Usage",
    "acct_unique_id",
    "advance",
    "close_for_nas",
    "parse_accounting",
]

# attribute types (RFC 2865, 2866, 2869, 3162)
USER_NAME = 1
NAS_IP_ADDRESS = 4
FRAMED_IP_ADDRESS = 8
CALLING_STATION_ID = 31
ACCT_STATUS_TYPE = 40
ACCT_DELAY_TIME = 41
ACCT_INPUT_OCTETS = 42
ACCT_OUTPUT_OCTETS = 43
ACCT_SESSION_ID = 44
ACCT_SESSION_TIME = 46
ACCT_INPUT_PACKETS = 47
ACCT_OUTPUT_PACKETS = 48
ACCT_TERMINATE_CAUSE = 49
ACCT_INPUT_GIGAWORDS = 52
ACCT_OUTPUT_GIGAWORDS = 53
EVENT_TIMESTAMP = 55
ACCT_INTERIM_INTERVAL = 85
NAS_PORT_ID = 87
NAS_IPV6_ADDRESS = 95

# column widths of radius_sessions (aaa.schema): longer values are refused at parse time,
# so that one odd record can never fail the database transaction of a whole group
MAX_ACCT_SESSION_ID = 128
MAX_USERNAME = 128
MAX_NAS_PORT_ID = 64
MAX_CALLING_STATION_ID = 64
MAX_SESSION_TIME_S = 2**31 - 1  # INTEGER column

TERMINATE_CAUSES: dict[int, str] = {
    1: "User-Request",
    2: "Lost-Carrier",
    3: "Lost-Service",
    4: "Idle-Timeout",
    5: "Session-Timeout",
    6: "Admin-Reset",
    7: "Admin-Reboot",
    8: "Port-Error",
    9: "NAS-Error",
    10: "NAS-Request",
    11: "NAS-Reboot",
    12: "Port-Unneeded",
    13: "Port-Preempted",
    14: "Port-Suspended",
    15: "Service-Unavailable",
    16: "Callback",
    17: "User-Error",
    18: "Host-Request",
}
"""Acct-Terminate-Cause names (RFC 2866 §5.10), as ``conf/dictionaries/dictionary.rfc2866``
spells them.  An unknown number is kept as its decimal string."""

NAS_REBOOT_CAUSE = "NAS-Reboot"
"""Terminate cause of sessions closed by their NAS's Accounting-On or Accounting-Off."""


class StatusType(IntEnum):
    """Acct-Status-Type values we handle (RFC 2866 §5.1)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8

    @property
    def is_session(self) -> bool:
        """Start, Stop and Interim-Update concern one session; On/Off concern the whole NAS."""
        return self in _SESSION_TYPES


_SESSION_TYPES = frozenset({StatusType.START, StatusType.STOP, StatusType.INTERIM_UPDATE})
_STATUS_TYPES = {int(s): s for s in StatusType}


class Problem(StrEnum):
    """Why an Accounting-Request is dropped: the ``reason`` of ``BadAccounting``."""

    NOT_ACCOUNTING_REQUEST = "not-accounting-request"
    NO_STATUS_TYPE = "no-acct-status-type"
    UNSUPPORTED_STATUS_TYPE = "unsupported-acct-status-type"
    NO_SESSION_ID = "no-acct-session-id"
    MALFORMED_VALUE = "malformed-value"
    VALUE_TOO_LONG = "value-too-long"


class BadAccounting(Exception):
    """An Accounting-Request we cannot record; drop it (no reply) and log ``reason``."""

    def __init__(self, reason: Problem, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else str(reason))


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    """One Accounting-Request, reduced to what accounting stores.

    For Accounting-On/Off only ``status``, ``nas_address``, ``event_time`` and
    ``received_at`` mean anything (``acct_session_id`` and ``acct_unique_id`` are "").
    ``service_id`` is not on the wire: the handler may set it (``dataclasses.replace``) when
    it knows the service; otherwise the store resolves it from ``services.login`` = User-Name
    when it creates the session.  ``interim_interval_s`` is Acct-Interim-Interval if the NAS
    echoes it, or what the handler told the NAS in Access-Accept; the reaper uses it.
    """

    status: StatusType
    nas_address: str
    acct_session_id: str
    acct_unique_id: str
    event_time: datetime
    received_at: datetime
    nas_port_id: str | None = None
    username: str = ""
    calling_station_id: str | None = None
    framed_ip: str | None = None
    session_time_s: int = 0
    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0
    terminate_cause: str | None = None
    interim_interval_s: int | None = None
    service_id: int | None = None


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the state machine needs of a ``radius_sessions`` row (and all it may change)."""

    status: SessionStatus
    started_at: datetime
    updated_at: datetime
    stopped_at: datetime | None = None
    terminate_cause: str | None = None
    service_id: int | None = None
    interim_interval_s: int | None = None
    session_time_s: int = 0
    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """A forward move of a session's counters: one ``session_usage`` row when not empty."""

    input_octets: int = 0
    output_octets: int = 0
    seconds: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.input_octets or self.output_octets or self.seconds)


@dataclass(frozen=True, slots=True)
class Transition:
    """Result of ``advance``: the new state, the usage to append, whether the row changes."""

    state: SessionState
    usage: Usage
    changed: bool


# --------------------------------------------------------------------------- parsing


def acct_unique_id(nas_address: str, acct_session_id: str, nas_port_id: str | None) -> str:
    """Deterministic session key: SHA-256 hex (64 chars) of the length-prefixed triple."""
    digest = hashlib.sha256()
    for part in (nas_address, acct_session_id, nas_port_id or ""):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.hexdigest()


def parse_accounting(
    packet: RadiusPacket,
    *,
    source_address: IPv4Address | IPv6Address | str,
    received_at: datetime,
) -> AccountingRecord:
    """Turn a decoded (and already authenticated) Accounting-Request into a record.

    ``source_address`` is the datagram's source, used when the packet names no NAS address;
    ``received_at`` (aware) is when we received it.  Raises ``BadAccounting``.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be an aware datetime")
    if packet.code != Code.ACCOUNTING_REQUEST:
        raise BadAccounting(Problem.NOT_ACCOUNTING_REQUEST, f"code {packet.code}")
    raw_status = _integer(packet, ACCT_STATUS_TYPE, "Acct-Status-Type")
    if raw_status is None:
        raise BadAccounting(Problem.NO_STATUS_TYPE)
    status = _STATUS_TYPES.get(raw_status)
    if status is None:
        raise BadAccounting(Problem.UNSUPPORTED_STATUS_TYPE, str(raw_status))

    nas_address = _nas_address(packet, source_address)
    event_time = _event_time(packet, received_at)
    if not status.is_session:
        return AccountingRecord(
            status=status,
            nas_address=nas_address,
            acct_session_id="",
            acct_unique_id="",
            event_time=event_time,
            received_at=received_at,
        )

    session_id = _string(packet, ACCT_SESSION_ID, "Acct-Session-Id", MAX_ACCT_SESSION_ID)
    if not session_id:
        raise BadAccounting(Problem.NO_SESSION_ID)
    nas_port_id = _string(packet, NAS_PORT_ID, "NAS-Port-Id", MAX_NAS_PORT_ID)
    framed = packet.get(FRAMED_IP_ADDRESS)
    session_time = _integer(packet, ACCT_SESSION_TIME, "Acct-Session-Time") or 0
    if session_time > MAX_SESSION_TIME_S:
        raise BadAccounting(Problem.VALUE_TOO_LONG, f"Acct-Session-Time {session_time}")
    cause = _integer(packet, ACCT_TERMINATE_CAUSE, "Acct-Terminate-Cause")
    return AccountingRecord(
        status=status,
        nas_address=nas_address,
        acct_session_id=session_id,
        acct_unique_id=acct_unique_id(nas_address, session_id, nas_port_id),
        event_time=event_time,
        received_at=received_at,
        nas_port_id=nas_port_id,
        username=_string(packet, USER_NAME, "User-Name", MAX_USERNAME) or "",
        calling_station_id=_string(packet, CALLING_STATION_ID, "Calling-Station-Id", MAX_CALLING_STATION_ID),
        framed_ip=None if framed is None else str(_value("ipaddr", framed, "Framed-IP-Address")),
        session_time_s=session_time,
        input_octets=_octets(packet, ACCT_INPUT_OCTETS, ACCT_INPUT_GIGAWORDS, "Input"),
        output_octets=_octets(packet, ACCT_OUTPUT_OCTETS, ACCT_OUTPUT_GIGAWORDS, "Output"),
        input_packets=_integer(packet, ACCT_INPUT_PACKETS, "Acct-Input-Packets") or 0,
        output_packets=_integer(packet, ACCT_OUTPUT_PACKETS, "Acct-Output-Packets") or 0,
        terminate_cause=None if cause is None else TERMINATE_CAUSES.get(cause, str(cause)),
        interim_interval_s=_integer(packet, ACCT_INTERIM_INTERVAL, "Acct-Interim-Interval") or None,
    )


def _value(data_type: str, raw: bytes, name: str) -> object:
    try:
        return decode_value(data_type, raw)
    except MalformedPacket as exc:
        raise BadAccounting(Problem.MALFORMED_VALUE, f"{name}: {exc}") from None


def _integer(packet: RadiusPacket, attr_type: int, name: str) -> int | None:
    raw = packet.get(attr_type)
    if raw is None:
        return None
    value = _value("integer", raw, name)
    assert isinstance(value, int)
    return value


def _string(packet: RadiusPacket, attr_type: int, name: str, max_length: int) -> str | None:
    raw = packet.get(attr_type)
    if raw is None:
        return None
    value = _value("string", raw, name)
    assert isinstance(value, str)
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise BadAccounting(Problem.MALFORMED_VALUE, f"{name} contains NUL")
    if len(value) > max_length:
        raise BadAccounting(Problem.VALUE_TOO_LONG, f"{name} of {len(value)} characters, max {max_length}")
    return value


def _octets(packet: RadiusPacket, octets_type: int, gigawords_type: int, direction: str) -> int:
    octets = _integer(packet, octets_type, f"Acct-{direction}-Octets") or 0
    gigawords = _integer(packet, gigawords_type, f"Acct-{direction}-Gigawords") or 0
    return gigawords * 2**32 + octets


def _nas_address(packet: RadiusPacket, source_address: IPv4Address | IPv6Address | str) -> str:
    raw = packet.get(NAS_IP_ADDRESS)
    if raw is not None:
        return str(_value("ipaddr", raw, "NAS-IP-Address"))
    raw = packet.get(NAS_IPV6_ADDRESS)
    if raw is not None:
        return str(_value("ipv6addr", raw, "NAS-IPv6-Address"))
    return ip_address(source_address).compressed


def _event_time(packet: RadiusPacket, received_at: datetime) -> datetime:
    raw = packet.get(EVENT_TIMESTAMP)
    if raw is not None:
        value = _value("date", raw, "Event-Timestamp")
        assert isinstance(value, datetime)
        return value
    delay = _integer(packet, ACCT_DELAY_TIME, "Acct-Delay-Time") or 0
    return (received_at - timedelta(seconds=delay)).astimezone(UTC)


# --------------------------------------------------------------------------- state machine


def advance(state: SessionState | None, record: AccountingRecord) -> Transition:
    """Apply a Start, Interim-Update or Stop record to a session state (see the table above)."""
    if not record.status.is_session:
        raise ValueError(f"{record.status.name} is not a session record: use close_for_nas")
    if state is None:
        started_at = record.event_time - timedelta(seconds=record.session_time_s)
        stopped = record.status is StatusType.STOP
        new = SessionState(
            status=SessionStatus.CLOSED if stopped else SessionStatus.OPEN,
            started_at=started_at,
            updated_at=record.received_at,
            stopped_at=record.event_time if stopped else None,
            terminate_cause=record.terminate_cause if stopped else None,
            service_id=record.service_id,
            interim_interval_s=record.interim_interval_s,
            session_time_s=record.session_time_s,
            input_octets=record.input_octets,
            output_octets=record.output_octets,
            input_packets=record.input_packets,
            output_packets=record.output_packets,
        )
        usage = Usage(record.input_octets, record.output_octets, record.session_time_s)
        return Transition(new, usage, changed=True)

    usage = Usage(
        input_octets=max(0, record.input_octets - state.input_octets),
        output_octets=max(0, record.output_octets - state.output_octets),
        seconds=max(0, record.session_time_s - state.session_time_s),
    )
    is_open = state.status is SessionStatus.OPEN
    new = replace(
        state,
        updated_at=max(state.updated_at, record.received_at) if is_open else state.updated_at,
        service_id=state.service_id if state.service_id is not None else record.service_id,
        interim_interval_s=record.interim_interval_s or state.interim_interval_s,
        session_time_s=max(state.session_time_s, record.session_time_s),
        input_octets=max(state.input_octets, record.input_octets),
        output_octets=max(state.output_octets, record.output_octets),
        input_packets=max(state.input_packets, record.input_packets),
        output_packets=max(state.output_packets, record.output_packets),
    )
    if is_open and record.status is StatusType.STOP:
        new = replace(
            new,
            status=SessionStatus.CLOSED,
            stopped_at=record.event_time,
            terminate_cause=record.terminate_cause,
        )
    return Transition(new, usage, changed=new != state)


def close_for_nas(state: SessionState, nas_event_time: datetime) -> SessionState:
    """What Accounting-On/Off of the session's NAS at ``nas_event_time`` does to one session.

    The store applies the same rule as one UPDATE to the sessions it has not loaded; this is
    the rule for the ones it has (and the reference the tests check the UPDATE against).
    """
    if state.status is SessionStatus.OPEN and state.started_at < nas_event_time:
        return replace(
            state, status=SessionStatus.CLOSED, stopped_at=nas_event_time, terminate_cause=NAS_REBOOT_CAUSE
        )
    return state
