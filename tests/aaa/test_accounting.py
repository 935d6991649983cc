"""Tests of aaa.accounting: records parsed from real Accounting-Requests (built by pyrad's
client, decoded by aaa.codec), 64-bit counters, event times, the unique id, the reasons a
packet is dropped, and every (state, status type) pair of the session state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa import codec
from aaa.accounting import (
    NAS_REBOOT_CAUSE,
    AccountingRecord,
    BadAccounting,
    Problem,
    SessionState,
    SessionStatus,
    StatusType,
    Usage,
    acct_unique_id,
    advance,
    close_for_nas,
    parse_accounting,
)
from aaa.codec import RadiusPacket

DICTIONARY_FILE = Path(__file__).parents[2] / "conf" / "dictionaries" / "dictionary"
SECRET = b"testing123"
RECEIVED = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
SOURCE = IPv4Address("192.0.2.99")


@pytest.fixture(scope="module")
def pyrad_dictionary() -> PyradDictionary:
    return PyradDictionary(str(DICTIONARY_FILE))


def _acct(pyrad_dictionary: PyradDictionary, *attributes: tuple[str, object]) -> RadiusPacket:
    """An Accounting-Request built by pyrad's client, as datagram bytes, decoded by our codec."""
    request = pyrad_packet.AcctPacket(id=7, secret=SECRET, dict=pyrad_dictionary)
    for name, value in attributes:
        request.AddAttribute(name, value)
    return codec.decode(request.RequestPacket())


def _parse(packet: RadiusPacket) -> AccountingRecord:
    return parse_accounting(packet, source_address=SOURCE, received_at=RECEIVED)


# --------------------------------------------------------------------------- parsing


def test_interim_update_with_every_attribute(pyrad_dictionary: PyradDictionary) -> None:
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Interim-Update"),
        ("NAS-IP-Address", "10.0.0.1"),
        ("NAS-Port-Id", "ge-0/0/1.100"),
        ("Acct-Session-Id", "81a00001"),
        ("User-Name", "alice"),
        ("Calling-Station-Id", "aa:bb:cc:dd:ee:ff"),
        ("Framed-IP-Address", "100.64.0.10"),
        ("Acct-Session-Time", 600),
        ("Acct-Input-Octets", 1000),
        ("Acct-Output-Octets", 2000),
        ("Acct-Input-Packets", 10),
        ("Acct-Output-Packets", 20),
        ("Acct-Interim-Interval", 300),
        ("Event-Timestamp", int(RECEIVED.timestamp()) - 5),
    )
    record = _parse(packet)
    assert record == AccountingRecord(
        status=StatusType.INTERIM_UPDATE,
        nas_address="10.0.0.1",
        acct_session_id="81a00001",
        acct_unique_id=acct_unique_id("10.0.0.1", "81a00001", "ge-0/0/1.100"),
        event_time=RECEIVED - timedelta(seconds=5),
        received_at=RECEIVED,
        nas_port_id="ge-0/0/1.100",
        username="alice",
        calling_station_id="aa:bb:cc:dd:ee:ff",
        framed_ip="100.64.0.10",
        session_time_s=600,
        input_octets=1000,
        output_octets=2000,
        input_packets=10,
        output_packets=20,
        terminate_cause=None,
        interim_interval_s=300,
    )


def test_start_with_minimal_attributes_uses_source_and_receive_time(
    pyrad_dictionary: PyradDictionary,
) -> None:
    record = _parse(_acct(pyrad_dictionary, ("Acct-Status-Type", "Start"), ("Acct-Session-Id", "s1")))
    assert record.status is StatusType.START
    assert record.nas_address == "192.0.2.99"
    assert record.event_time == RECEIVED
    assert record.username == ""
    assert record.nas_port_id is None
    assert (record.input_octets, record.output_octets, record.session_time_s) == (0, 0, 0)
    assert record.acct_unique_id == acct_unique_id("192.0.2.99", "s1", "")


def test_nas_ipv6_address(pyrad_dictionary: PyradDictionary) -> None:
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Start"),
        ("Acct-Session-Id", "s1"),
        ("NAS-IPv6-Address", "2001:db8:0:0::1"),
    )
    assert _parse(packet).nas_address == "2001:db8::1"


def test_nas_ip_address_wins_over_ipv6_and_source(pyrad_dictionary: PyradDictionary) -> None:
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Start"),
        ("Acct-Session-Id", "s1"),
        ("NAS-IPv6-Address", "2001:db8::1"),
        ("NAS-IP-Address", "10.0.0.1"),
    )
    assert _parse(packet).nas_address == "10.0.0.1"


@pytest.mark.parametrize(
    ("gigawords", "octets", "total"),
    [
        (0, 0, 0),
        (0, 2**32 - 1, 2**32 - 1),
        (1, 0, 2**32),
        (1, 5, 2**32 + 5),
        (3, 123, 3 * 2**32 + 123),
        (2**32 - 1, 2**32 - 1, 2**64 - 1),
    ],
)
def test_gigawords_make_64_bit_counters(
    pyrad_dictionary: PyradDictionary, gigawords: int, octets: int, total: int
) -> None:
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Interim-Update"),
        ("Acct-Session-Id", "s1"),
        ("Acct-Input-Octets", octets),
        ("Acct-Input-Gigawords", gigawords),
        ("Acct-Output-Octets", octets),
        ("Acct-Output-Gigawords", gigawords),
    )
    record = _parse(packet)
    assert record.input_octets == total
    assert record.output_octets == total


def test_delay_time_is_subtracted_from_receive_time(pyrad_dictionary: PyradDictionary) -> None:
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Interim-Update"),
        ("Acct-Session-Id", "s1"),
        ("Acct-Delay-Time", 30),
    )
    assert _parse(packet).event_time == RECEIVED - timedelta(seconds=30)


def test_event_timestamp_is_not_shifted_by_delay_time(pyrad_dictionary: PyradDictionary) -> None:
    # Event-Timestamp already says when the event happened (RFC 2869 §5.3)
    event = int(RECEIVED.timestamp()) - 100
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Stop"),
        ("Acct-Session-Id", "s1"),
        ("Acct-Delay-Time", 30),
        ("Event-Timestamp", event),
    )
    assert _parse(packet).event_time == datetime.fromtimestamp(event, UTC)


@pytest.mark.parametrize(
    ("cause", "name"),
    [("User-Request", "User-Request"), ("Lost-Carrier", "Lost-Carrier"), ("NAS-Reboot", "NAS-Reboot")],
)
def test_terminate_cause_is_named(pyrad_dictionary: PyradDictionary, cause: str, name: str) -> None:
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Stop"),
        ("Acct-Session-Id", "s1"),
        ("Acct-Terminate-Cause", cause),
    )
    assert _parse(packet).terminate_cause == name


def test_unknown_terminate_cause_kept_as_number(pyrad_dictionary: PyradDictionary) -> None:
    packet = _acct(
        pyrad_dictionary,
        ("Acct-Status-Type", "Stop"),
        ("Acct-Session-Id", "s1"),
        ("Acct-Terminate-Cause", 99),
    )
    assert _parse(packet).terminate_cause == "99"


@pytest.mark.parametrize("status", ["Accounting-On", "Accounting-Off"])
def test_accounting_on_off_need_no_session(pyrad_dictionary: PyradDictionary, status: str) -> None:
    packet = _acct(pyrad_dictionary, ("Acct-Status-Type", status), ("NAS-IP-Address", "10.0.0.1"))
    record = _parse(packet)
    assert record.status in (StatusType.ACCOUNTING_ON, StatusType.ACCOUNTING_OFF)
    assert not record.status.is_session
    assert (record.nas_address, record.acct_unique_id, record.event_time) == ("10.0.0.1", "", RECEIVED)


def test_unique_id_is_deterministic_and_separates_its_parts() -> None:
    uid = acct_unique_id("10.0.0.1", "abc", "port1")
    assert uid == acct_unique_id("10.0.0.1", "abc", "port1")
    assert len(uid) == 64 and int(uid, 16) >= 0
    assert acct_unique_id("10.0.0.1", "abc", None) == acct_unique_id("10.0.0.1", "abc", "")
    assert uid != acct_unique_id("10.0.0.2", "abc", "port1")
    assert uid != acct_unique_id("10.0.0.1", "abd", "port1")
    assert acct_unique_id("10.0.0.1", "ab", "cport1") != acct_unique_id("10.0.0.1", "abc", "port1")


def test_retransmit_gives_the_same_unique_id(pyrad_dictionary: PyradDictionary) -> None:
    attributes = (("Acct-Status-Type", "Start"), ("Acct-Session-Id", "s1"), ("NAS-IP-Address", "10.0.0.1"))
    first = _parse(_acct(pyrad_dictionary, *attributes))
    again = parse_accounting(
        _acct(pyrad_dictionary, *attributes, ("Acct-Delay-Time", 3)),
        source_address="10.9.9.9",
        received_at=RECEIVED + timedelta(seconds=3),
    )
    assert first.acct_unique_id == again.acct_unique_id


# --------------------------------------------------------------------------- dropped packets


def _raw_packet(*attributes: tuple[int, bytes], code: int = codec.Code.ACCOUNTING_REQUEST) -> RadiusPacket:
    return RadiusPacket(code=code, identifier=1, authenticator=bytes(16), attributes=attributes)


STATUS_START = (40, (1).to_bytes(4, "big"))
SESSION = (44, b"s1")


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (_raw_packet(STATUS_START, SESSION, code=codec.Code.ACCESS_REQUEST), Problem.NOT_ACCOUNTING_REQUEST),
        (_raw_packet(SESSION), Problem.NO_STATUS_TYPE),
        (_raw_packet((40, (15).to_bytes(4, "big")), SESSION), Problem.UNSUPPORTED_STATUS_TYPE),
        (_raw_packet((40, b"\x00\x01"), SESSION), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START), Problem.NO_SESSION_ID),
        (_raw_packet(STATUS_START, (44, b"")), Problem.NO_SESSION_ID),
        (_raw_packet(STATUS_START, (44, b"\xff\xfe")), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START, (44, b"a\x00b")), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START, (44, b"x" * 129)), Problem.VALUE_TOO_LONG),
        (_raw_packet(STATUS_START, SESSION, (87, b"p" * 65)), Problem.VALUE_TOO_LONG),
        (_raw_packet(STATUS_START, SESSION, (1, b"u" * 129)), Problem.VALUE_TOO_LONG),
        (_raw_packet(STATUS_START, SESSION, (4, b"\x0a\x00\x00")), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START, SESSION, (95, b"\x20\x01")), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START, SESSION, (8, b"\x01")), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START, SESSION, (42, b"\x00\x00\x01")), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START, SESSION, (52, b"\x00")), Problem.MALFORMED_VALUE),
        (_raw_packet(STATUS_START, SESSION, (46, b"\xff\xff\xff\xff")), Problem.VALUE_TOO_LONG),
        (_raw_packet(STATUS_START, SESSION, (55, b"\x00")), Problem.MALFORMED_VALUE),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_packets_are_refused_with_a_reason(packet: RadiusPacket, reason: Problem) -> None:
    with pytest.raises(BadAccounting) as caught:
        _parse(packet)
    assert caught.value.reason is reason


@given(st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=40)), max_size=12))
def test_any_attributes_give_a_record_or_bad_accounting(attributes: list[tuple[int, bytes]]) -> None:
    packet = _raw_packet(STATUS_START, SESSION, *attributes)
    try:
        record = _parse(packet)
    except BadAccounting as exc:
        assert isinstance(exc.reason, Problem)
    else:
        assert record.acct_session_id == "s1"  # the first of repeated attributes counts


def test_naive_receive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_accounting(
            _raw_packet(STATUS_START, SESSION), source_address=SOURCE, received_at=datetime(2026, 1, 1)
        )


# --------------------------------------------------------------------------- state machine

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def _record(
    status: StatusType,
    *,
    at: int,
    seconds: int = 0,
    inp: int = 0,
    out: int = 0,
    cause: str | None = None,
    service_id: int | None = None,
) -> AccountingRecord:
    """A record ``at`` seconds after T0 (event and receive time alike)."""
    when = T0 + timedelta(seconds=at)
    return AccountingRecord(
        status=status,
        nas_address="10.0.0.1",
        acct_session_id="s1",
        acct_unique_id=acct_unique_id("10.0.0.1", "s1", None),
        event_time=when,
        received_at=when,
        session_time_s=seconds,
        input_octets=inp,
        output_octets=out,
        input_packets=inp // 100,
        output_packets=out // 100,
        terminate_cause=cause,
        service_id=service_id,
    )


def _state(
    status: SessionStatus,
    *,
    seconds: int = 100,
    inp: int = 1000,
    out: int = 2000,
    stopped_at: datetime | None = None,
    cause: str | None = None,
) -> SessionState:
    return SessionState(
        status=status,
        started_at=T0,
        updated_at=T0 + timedelta(seconds=seconds),
        stopped_at=stopped_at,
        terminate_cause=cause,
        service_id=5,
        session_time_s=seconds,
        input_octets=inp,
        output_octets=out,
        input_packets=inp // 100,
        output_packets=out // 100,
    )


START, INTERIM, STOP = StatusType.START, StatusType.INTERIM_UPDATE, StatusType.STOP
OPEN = _state(SessionStatus.OPEN)
CLOSED = _state(SessionStatus.CLOSED, stopped_at=T0 + timedelta(seconds=100), cause="User-Request")
AT = T0 + timedelta(seconds=200)

# (state before, record, state after, usage delta): every (state, status type) pair of the
# table in aaa.accounting, plus the forward-only cases (retransmit, late interim).
TRANSITIONS = [
    pytest.param(
        None,
        _record(START, at=0),
        SessionState(SessionStatus.OPEN, started_at=T0, updated_at=T0),
        Usage(),
        id="none+start=open",
    ),
    pytest.param(
        None,
        _record(INTERIM, at=600, seconds=600, inp=10, out=20),
        SessionState(
            SessionStatus.OPEN,
            started_at=T0,
            updated_at=T0 + timedelta(seconds=600),
            session_time_s=600,
            input_octets=10,
            output_octets=20,
        ),
        Usage(10, 20, 600),
        id="none+interim=open-started-back-dated",
    ),
    pytest.param(
        None,
        _record(STOP, at=600, seconds=600, inp=10, out=20, cause="Lost-Carrier"),
        SessionState(
            SessionStatus.CLOSED,
            started_at=T0,
            updated_at=T0 + timedelta(seconds=600),
            stopped_at=T0 + timedelta(seconds=600),
            terminate_cause="Lost-Carrier",
            session_time_s=600,
            input_octets=10,
            output_octets=20,
        ),
        Usage(10, 20, 600),
        id="none+stop=closed",
    ),
    pytest.param(
        OPEN,
        _record(START, at=0),
        OPEN,
        Usage(),
        id="open+start(retransmit)=unchanged",
    ),
    pytest.param(
        OPEN,
        _record(INTERIM, at=200, seconds=200, inp=1500, out=2100),
        _state(SessionStatus.OPEN, seconds=200, inp=1500, out=2100),
        Usage(500, 100, 100),
        id="open+interim=open-forward",
    ),
    pytest.param(
        OPEN,
        _record(INTERIM, at=100, seconds=100, inp=1000, out=2000),
        OPEN,
        Usage(),
        id="open+interim(retransmit)=unchanged",
    ),
    pytest.param(
        _state(SessionStatus.OPEN, seconds=300, inp=3000, out=4000),
        _record(INTERIM, at=200, seconds=200, inp=1500, out=2100),
        _state(SessionStatus.OPEN, seconds=300, inp=3000, out=4000),
        Usage(),
        id="open+late-interim=unchanged",
    ),
    pytest.param(
        OPEN,
        _record(INTERIM, at=200, seconds=200, inp=900, out=2500),
        SessionState(
            SessionStatus.OPEN,
            started_at=T0,
            updated_at=AT,
            service_id=5,
            session_time_s=200,
            input_octets=1000,
            output_octets=2500,
            input_packets=10,
            output_packets=25,
        ),
        Usage(0, 500, 100),
        id="open+interim-mixed=each-counter-forward",
    ),
    pytest.param(
        OPEN,
        _record(STOP, at=200, seconds=200, inp=1500, out=2100, cause="User-Request"),
        SessionState(
            SessionStatus.CLOSED,
            started_at=T0,
            updated_at=AT,
            stopped_at=AT,
            terminate_cause="User-Request",
            service_id=5,
            session_time_s=200,
            input_octets=1500,
            output_octets=2100,
            input_packets=15,
            output_packets=21,
        ),
        Usage(500, 100, 100),
        id="open+stop=closed",
    ),
    pytest.param(
        CLOSED,
        _record(START, at=0),
        CLOSED,
        Usage(),
        id="closed+late-start=unchanged",
    ),
    pytest.param(
        CLOSED,
        _record(INTERIM, at=50, seconds=50, inp=500, out=500),
        CLOSED,
        Usage(),
        id="closed+late-interim=unchanged",
    ),
    pytest.param(
        CLOSED,
        _record(STOP, at=100, seconds=100, inp=1000, out=2000, cause="User-Request"),
        CLOSED,
        Usage(),
        id="closed+stop(retransmit)=unchanged",
    ),
    pytest.param(
        CLOSED,
        _record(STOP, at=200, seconds=200, inp=1500, out=2000, cause="Admin-Reset"),
        SessionState(
            SessionStatus.CLOSED,
            started_at=T0,
            updated_at=T0 + timedelta(seconds=100),
            stopped_at=T0 + timedelta(seconds=100),
            terminate_cause="User-Request",
            service_id=5,
            session_time_s=200,
            input_octets=1500,
            output_octets=2000,
            input_packets=15,
            output_packets=20,
        ),
        Usage(500, 0, 100),
        id="closed+stop(after-nas-close)=counters-forward-close-kept",
    ),
]


@pytest.mark.parametrize(("before", "record", "after", "usage"), TRANSITIONS)
def test_transition(
    before: SessionState | None, record: AccountingRecord, after: SessionState, usage: Usage
) -> None:
    transition = advance(before, record)
    assert transition.state == after
    assert transition.usage == usage
    assert transition.changed == (after != before)


def test_every_state_and_status_pair_is_in_the_table() -> None:
    seen = {
        (None if p.values[0] is None else p.values[0].status, p.values[1].status)  # type: ignore[union-attr]
        for p in TRANSITIONS
    }
    states = (None, SessionStatus.OPEN, SessionStatus.CLOSED)
    assert seen == {(s, t) for s in states for t in (START, INTERIM, STOP)}


def test_record_service_id_fills_a_missing_one_only() -> None:
    without = SessionState(SessionStatus.OPEN, started_at=T0, updated_at=T0)
    assert advance(without, _record(INTERIM, at=10, service_id=9)).state.service_id == 9
    assert advance(OPEN, _record(INTERIM, at=10, service_id=9)).state.service_id == 5


def test_on_off_is_not_a_session_transition() -> None:
    with pytest.raises(ValueError, match="close_for_nas"):
        advance(OPEN, _record(StatusType.ACCOUNTING_ON, at=10))


@pytest.mark.parametrize(
    ("state", "event", "closed"),
    [
        (OPEN, AT, True),
        (OPEN, T0, False),  # started in the same second as the NAS's restart: its new life
        (OPEN, T0 - timedelta(seconds=1), False),
        (CLOSED, AT, False),
    ],
)
def test_close_for_nas(state: SessionState, event: datetime, closed: bool) -> None:
    after = close_for_nas(state, event)
    if closed:
        assert (after.status, after.stopped_at, after.terminate_cause) == (
            SessionStatus.CLOSED,
            event,
            NAS_REBOOT_CAUSE,
        )
        assert after.input_octets == state.input_octets
    else:
        assert after is state


@given(
    st.lists(
        st.tuples(
            st.sampled_from([START, INTERIM, STOP]),
            st.integers(0, 10_000),
            st.integers(0, 2**40),
            st.integers(0, 2**40),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_usage_sums_to_the_final_totals_in_any_order(records: list[tuple[StatusType, int, int, int]]) -> None:
    state: SessionState | None = None
    total = Usage()
    for status, seconds, inp, out in records:
        transition = advance(state, _record(status, at=seconds, seconds=seconds, inp=inp, out=out))
        state = transition.state
        total = Usage(
            total.input_octets + transition.usage.input_octets,
            total.output_octets + transition.usage.output_octets,
            total.seconds + transition.usage.seconds,
        )
    assert state is not None
    assert total == Usage(state.input_octets, state.output_octets, state.session_time_s)
    assert state.input_octets == max(r[2] for r in records)
    # replaying everything again adds nothing
    for status, seconds, inp, out in records:
        assert advance(state, _record(status, at=seconds, seconds=seconds, inp=inp, out=out)).usage.is_empty
