"""Tests of aaa.accounting_store on SQLite and PostgreSQL: sessions and usage rows through
Start/Interim/Stop and their odd orders, Accounting-On, the reaper, group commit, the journal
when the database is down and its idempotent replay, and two stores racing on PostgreSQL."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from aaa.accounting import NAS_REBOOT_CAUSE, AccountingRecord, StatusType, acct_unique_id, parse_accounting
from aaa.accounting_store import STALE_SESSION_CAUSE, AccountingStore, decode_record, encode_record
from aaa.codec import Code, RadiusPacket
from aaa.journal import Journal
from aaa.schema import radius_sessions, session_usage
from billing import accounts, dictionaries, subscribers
from billing.audit import Actor
from billing.db.services import Service

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
NAS = "10.0.0.1"
OTHER_NAS = "10.0.0.2"
START, INTERIM, STOP = StatusType.START, StatusType.INTERIM_UPDATE, StatusType.STOP


def _rec(
    status: StatusType,
    session: str = "s1",
    *,
    at: int = 0,
    seconds: int | None = None,
    inp: int = 0,
    out: int = 0,
    nas: str = NAS,
    user: str = "alice",
    cause: str | None = None,
    interval: int | None = None,
    service_id: int | None = None,
) -> AccountingRecord:
    """A record ``at`` seconds after T0; session time defaults to ``at``."""
    when = T0 + timedelta(seconds=at)
    return AccountingRecord(
        status=status,
        nas_address=nas,
        acct_session_id=session if status.is_session else "",
        acct_unique_id=acct_unique_id(nas, session, None) if status.is_session else "",
        event_time=when,
        received_at=when,
        username=user,
        session_time_s=at if seconds is None else seconds,
        input_octets=inp,
        output_octets=out,
        input_packets=inp // 1000,
        output_packets=out // 1000,
        terminate_cause=cause,
        interim_interval_s=interval,
        service_id=service_id,
    )


def _uid(session: str = "s1", nas: str = NAS) -> str:
    return acct_unique_id(nas, session, None)


def _row(engine: Engine, session: str = "s1", nas: str = NAS) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(radius_sessions).where(radius_sessions.c.acct_unique_id == _uid(session, nas))
        ).one()


def _usage(engine: Engine, session: str = "s1", nas: str = NAS) -> tuple[int, int, int, int]:
    """(rows, input, output, seconds) of a session's usage."""
    row = _row(engine, session, nas)
    with engine.connect() as conn:
        found = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(session_usage.c.input_octets), 0),
                func.coalesce(func.sum(session_usage.c.output_octets), 0),
                func.coalesce(func.sum(session_usage.c.seconds), 0),
            ).where(session_usage.c.session_id == row.id)
        ).one()
    return (found[0], int(found[1]), int(found[2]), int(found[3]))


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        sessions = conn.execute(select(func.count()).select_from(radius_sessions)).scalar_one()
        usage = conn.execute(select(func.count()).select_from(session_usage)).scalar_one()
    return sessions, usage


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal") as opened:
        yield opened


@pytest.fixture
def store(engine: Engine, journal: Journal) -> AccountingStore:
    return AccountingStore(engine, journal)


def _seed_service(engine: Engine, login: str) -> int:
    actor = Actor(None, "tester", None, "test")
    with Session(engine) as session, session.begin():
        dictionaries.add(session, actor, "subscriber_category", "residential", "Residential")
        dictionaries.add(session, actor, "region", "north", "North")
        info = subscribers.create(
            session, actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        account = accounts.find(session, info.accounts[0].number)
        service = Service(account_id=account.id, kind="internet", status="active", login=login)
        session.add(service)
        session.flush()
        return service.id


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(
    "text",
    ['a"b\\c', "x,{y}", "NULL", "", " lead and trail ", "ünï\u2603 ☃", "\\", '"'],
)
def test_strings_with_array_syntax_round_trip_exactly(
    engine: Engine, store: AccountingStore, text: str
) -> None:
    """NAS-chosen strings (session ids, logins, ports) never read as array syntax on PostgreSQL."""
    strings = {"username": text, "calling_station_id": text, "nas_port_id": text}
    first = dataclasses.replace(_rec(START, text), **strings)
    store.store([first])
    store.store([dataclasses.replace(_rec(INTERIM, text, at=60, inp=500), **strings)])
    uid = radius_sessions.c.acct_unique_id
    with engine.connect() as conn:
        row = conn.execute(select(radius_sessions).where(uid == first.acct_unique_id)).one()
    assert (row.acct_session_id, row.username, row.calling_station_id, row.nas_port_id) == (text,) * 4
    assert row.input_octets == 500


def test_start_interim_stop(engine: Engine, store: AccountingStore) -> None:
    service_id = _seed_service(engine, "alice")
    store.store([_rec(START, interval=300)])
    row = _row(engine)
    assert (row.status, row.started_at, row.service_id, row.interim_interval_s) == (
        "open",
        T0,
        service_id,
        300,
    )
    assert _usage(engine) == (0, 0, 0, 0)

    store.store([_rec(INTERIM, at=300, inp=1000, out=5000)])
    store.store([_rec(INTERIM, at=600, inp=3000, out=9000)])
    store.store([_rec(STOP, at=700, inp=3500, out=9100, cause="User-Request")])
    row = _row(engine)
    assert row.status == "closed"
    assert row.stopped_at == T0 + timedelta(seconds=700)
    assert row.terminate_cause == "User-Request"
    assert (row.session_time_s, row.input_octets, row.output_octets) == (700, 3500, 9100)
    assert (row.input_packets, row.output_packets) == (3, 9)
    assert _usage(engine) == (3, 3500, 9100, 700)
    with engine.connect() as conn:
        services = set(conn.execute(select(session_usage.c.service_id)).scalars())
        recorded = sorted(conn.execute(select(session_usage.c.recorded_at)).scalars())
    assert services == {service_id}
    assert recorded == [T0 + timedelta(seconds=s) for s in (300, 600, 700)]


def test_unknown_login_leaves_service_empty_and_record_service_id_wins(
    engine: Engine, store: AccountingStore
) -> None:
    service_id = _seed_service(engine, "alice")
    store.store([_rec(START, "s1", user="nobody"), _rec(START, "s2", user="nobody", service_id=service_id)])
    assert _row(engine, "s1").service_id is None
    assert _row(engine, "s2").service_id == service_id


def test_interim_without_start_creates_an_open_session(engine: Engine, store: AccountingStore) -> None:
    store.store([_rec(INTERIM, at=900, seconds=600, inp=100, out=200)])
    row = _row(engine)
    assert row.status == "open"
    assert row.started_at == T0 + timedelta(seconds=300)
    assert _usage(engine) == (1, 100, 200, 600)
    store.store([_rec(START, at=300, seconds=0)])  # the lost Start arrives late: nothing moves
    assert _row(engine) == row
    assert _usage(engine) == (1, 100, 200, 600)


def test_stop_without_start_creates_a_closed_session(engine: Engine, store: AccountingStore) -> None:
    store.store([_rec(STOP, at=500, inp=10, out=20, cause="Lost-Carrier")])
    row = _row(engine)
    assert (row.status, row.started_at, row.stopped_at, row.terminate_cause) == (
        "closed",
        T0,
        T0 + timedelta(seconds=500),
        "Lost-Carrier",
    )
    assert _usage(engine) == (1, 10, 20, 500)


def test_retransmits_add_no_usage(engine: Engine, store: AccountingStore) -> None:
    interim = _rec(INTERIM, at=300, inp=1000, out=2000)
    stop = _rec(STOP, at=400, inp=1500, out=2500, cause="User-Request")
    store.store([_rec(START), interim, interim])
    store.store([interim])
    store.store([stop, stop])
    before = _row(engine)
    store.store([stop])
    assert _row(engine) == before
    assert _usage(engine) == (2, 1500, 2500, 400)


def test_late_interim_adds_nothing(engine: Engine, store: AccountingStore) -> None:
    store.store([_rec(START), _rec(INTERIM, at=600, inp=6000, out=600)])
    store.store([_rec(INTERIM, at=300, inp=3000, out=300)])
    row = _row(engine)
    assert (row.session_time_s, row.input_octets, row.output_octets) == (600, 6000, 600)
    assert _usage(engine) == (1, 6000, 600, 600)
    store.store([_rec(STOP, at=700, inp=7000, out=700), _rec(INTERIM, at=650, inp=6500, out=650)])
    assert _usage(engine) == (2, 7000, 700, 700)
    assert _row(engine).stopped_at == T0 + timedelta(seconds=700)


def test_one_group_may_hold_a_whole_session(engine: Engine, store: AccountingStore) -> None:
    store.store(
        [
            _rec(START),
            _rec(INTERIM, at=60, inp=10, out=10),
            _rec(START, "s2"),
            _rec(INTERIM, at=120, inp=30, out=20),
            _rec(STOP, at=150, inp=40, out=25),
        ]
    )
    assert _row(engine).status == "closed"
    assert _usage(engine) == (3, 40, 25, 150)
    assert _row(engine, "s2").status == "open"


# --------------------------------------------------------------------------- Accounting-On / Off


@pytest.mark.parametrize("status", [StatusType.ACCOUNTING_ON, StatusType.ACCOUNTING_OFF])
def test_accounting_on_off_closes_only_that_nas_open_sessions(
    engine: Engine, store: AccountingStore, status: StatusType
) -> None:
    store.store(
        [
            _rec(START, "a", at=0),
            _rec(START, "b", at=10),
            _rec(STOP, "c", at=20, cause="User-Request"),
            _rec(START, "x", at=0, nas=OTHER_NAS),
        ]
    )
    store.store([_rec(status, at=1000)])
    store.store([_rec(START, "new", at=1000)])  # same second as the restart: its new life
    reboot = T0 + timedelta(seconds=1000)
    for session in ("a", "b"):
        row = _row(engine, session)
        assert (row.status, row.stopped_at, row.terminate_cause) == ("closed", reboot, NAS_REBOOT_CAUSE)
    stopped = _row(engine, "c")
    assert (stopped.stopped_at, stopped.terminate_cause) == (T0 + timedelta(seconds=20), "User-Request")
    assert _row(engine, "x", OTHER_NAS).status == "open"
    assert _row(engine, "new").status == "open"


def test_accounting_on_inside_a_group_applies_in_order(engine: Engine, store: AccountingStore) -> None:
    store.store([_rec(START, "old", at=0), _rec(START, "kept", at=0)])
    store.store(
        [
            _rec(INTERIM, "old", at=100, inp=50),  # loaded by this group, closed in memory
            _rec(StatusType.ACCOUNTING_ON, at=200),  # "kept" is closed by the UPDATE
            _rec(START, "after", at=210),  # created after the On: stays open
            _rec(INTERIM, "old", at=300, inp=80),  # late interim of a closed session
        ]
    )
    old = _row(engine, "old")
    assert (old.status, old.stopped_at, old.input_octets) == ("closed", T0 + timedelta(seconds=200), 80)
    assert _row(engine, "kept").status == "closed"
    assert _row(engine, "after").status == "open"


# --------------------------------------------------------------------------- reaper


def test_reaper_closes_silent_sessions_and_keeps_usage(engine: Engine, store: AccountingStore) -> None:
    store.store(
        [
            _rec(START, "silent", interval=300),
            _rec(INTERIM, "silent", at=100, inp=5, interval=300),
            _rec(START, "talking", interval=300),
            _rec(INTERIM, "talking", at=800, inp=5),
            _rec(START, "no-interval"),
            _rec(STOP, "stopped", at=50, interval=300),
        ]
    )
    now = T0 + timedelta(seconds=1001)
    assert store.reap(now, 3) == 1  # silent for 901 s > 3 x 300 s; talking for 201 s
    silent = _row(engine, "silent")
    assert (silent.status, silent.stopped_at, silent.terminate_cause) == (
        "closed",
        T0 + timedelta(seconds=100),
        STALE_SESSION_CAUSE,
    )
    assert _usage(engine, "silent") == (1, 5, 0, 100)
    assert _row(engine, "talking").status == "open"
    assert _row(engine, "no-interval").status == "open"
    assert _row(engine, "stopped").terminate_cause is None
    assert store.reap(now, 3) == 0
    assert store.reap(now, 3, default_interval_s=60) == 1
    assert _row(engine, "no-interval").status == "closed"


# --------------------------------------------------------------------------- group commit


def test_a_group_of_500_is_one_transaction(engine: Engine, store: AccountingStore) -> None:
    store.store([_rec(START, f"s{i}") for i in range(250)])
    transactions: list[list[str]] = []

    def begin(connection: object) -> None:
        transactions.append([])

    def statement(conn: object, cursor: object, sql: str, *args: object) -> None:
        if not sql.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE is issued inside "begin"
            transactions[-1].append(sql)

    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", statement)
    try:
        group = [_rec(INTERIM, f"s{i}", at=300, inp=i, out=1) for i in range(250)]
        group += [_rec(INTERIM, f"n{i}", at=300, inp=i, out=1) for i in range(250)]
        store.store(group)
    finally:
        event.remove(engine, "begin", begin)
        event.remove(engine, "before_cursor_execute", statement)
    writes = [t for t in transactions if not all(sql.startswith("ANALYZE") for sql in t)]
    assert len(writes) == 1  # the group; a statistics refresh may follow in its own transaction
    sessions, usage = _counts(engine)
    assert (sessions, usage) == (500, 500)
    assert _usage(engine, "s7") == (1, 7, 1, 300)


# --------------------------------------------------------------------------- journal and replay


def _database_down(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("connect", None, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(engine, "begin", refuse)


SESSION_LIFE = [
    _rec(START, "j1"),
    _rec(INTERIM, "j1", at=300, inp=100, out=200),
    _rec(START, "j2", at=10, seconds=0),
    _rec(STOP, "j1", at=400, inp=150, out=250, cause="User-Request"),
    _rec(INTERIM, "j2", at=310, seconds=300, inp=7, out=8),
]


def test_database_down_journals_then_replay_writes(
    engine: Engine, store: AccountingStore, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _database_down(monkeypatch, engine)
    store.store(SESSION_LIFE[:2])
    store.store(SESSION_LIFE[2:])
    assert journal.depth() == 5
    assert store.replay() == 0  # still down: nothing moves, nothing raised
    assert journal.depth() == 5
    monkeypatch.undo()
    assert _counts(engine) == (0, 0)

    assert store.replay() == 5
    assert journal.depth() == 0
    row = _row(engine, "j1")
    assert (row.status, row.input_octets, row.stopped_at) == ("closed", 150, T0 + timedelta(seconds=400))
    assert _usage(engine, "j1") == (2, 150, 250, 400)
    assert _usage(engine, "j2") == (1, 7, 8, 300)
    assert store.replay() == 0


def test_replaying_the_same_records_twice_changes_nothing(
    engine: Engine, store: AccountingStore, journal: Journal
) -> None:
    # a crash between the commit and mark_replayed replays records already in the database
    journal.append([encode_record(r) for r in SESSION_LIFE])
    assert store.replay() == 5
    with engine.connect() as conn:
        sessions = conn.execute(select(radius_sessions).order_by(radius_sessions.c.id)).all()
        usage = conn.execute(select(session_usage).order_by(session_usage.c.id)).all()
    journal.append([encode_record(r) for r in SESSION_LIFE])
    assert store.replay() == 5
    with engine.connect() as conn:
        assert conn.execute(select(radius_sessions).order_by(radius_sessions.c.id)).all() == sessions
        assert conn.execute(select(session_usage).order_by(session_usage.c.id)).all() == usage


def test_replay_goes_in_groups(engine: Engine, journal: Journal) -> None:
    store = AccountingStore(engine, journal, replay_group=2)
    journal.append([encode_record(r) for r in SESSION_LIFE])
    assert store.replay() == 5
    assert _usage(engine, "j1") == (2, 150, 250, 400)


def test_data_errors_are_not_journaled(engine: Engine, store: AccountingStore, journal: Journal) -> None:
    with pytest.raises(IntegrityError):
        store.store([_rec(START, service_id=999_999)])  # no such service: a caller's bug
    assert journal.depth() == 0


def test_journal_record_round_trip() -> None:
    packet = RadiusPacket(
        code=Code.ACCOUNTING_REQUEST,
        identifier=1,
        authenticator=bytes(16),
        attributes=(
            (40, (2).to_bytes(4, "big")),
            (44, "séance-1".encode()),
            (1, b"alice"),
            (87, b"eth0/1"),
            (31, b"aa:bb:cc:dd:ee:ff"),
            (8, bytes([100, 64, 0, 1])),
            (42, (5).to_bytes(4, "big")),
            (52, (2).to_bytes(4, "big")),
            (49, (1).to_bytes(4, "big")),
            (85, (300).to_bytes(4, "big")),
        ),
    )
    received = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
    record = parse_accounting(packet, source_address="2001:db8::7", received_at=received)
    for value in (record, _rec(StatusType.ACCOUNTING_OFF), _rec(INTERIM, service_id=4)):
        data = encode_record(value)
        assert decode_record(data) == value
        assert len(data) < 400
    with pytest.raises(ValueError, match="version"):
        decode_record(b'[2,"x"]')


# --------------------------------------------------------------------------- concurrency


@pytest.mark.postgresql_only
def test_two_stores_racing_end_with_exact_totals(pg_engine: Engine, tmp_path: Path) -> None:
    sessions = [f"r{i}" for i in range(40)]
    rounds = 30
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(worker: int, journal: Journal) -> None:
        store = AccountingStore(pg_engine, journal)
        rng = random.Random(worker)
        try:
            barrier.wait()
            # both create every session at once, then send overlapping interims in any order
            for n in range(rounds):
                at = 60 * (n + 1)
                group = [_rec(INTERIM, s, at=at, inp=at * 10 + i, out=at) for i, s in enumerate(sessions)]
                if n % 2 == worker:
                    group += [_rec(INTERIM, s, at=at - 60, inp=(at - 60) * 10) for s in sessions[::3]]
                rng.shuffle(group)
                store.store(group)
        except BaseException as exc:
            errors.append(exc)

    journals = [Journal(tmp_path / f"j{w}") for w in range(2)]
    threads = [threading.Thread(target=run, args=(w, journals[w])) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert [j.depth() for j in journals] == [0, 0]  # nothing fell back to the journal
    for j in journals:
        j.close()

    final = 60 * rounds
    assert _counts(pg_engine)[0] == len(sessions)
    for i, s in enumerate(sessions):
        row = _row(pg_engine, s)
        assert (row.input_octets, row.output_octets, row.session_time_s) == (final * 10 + i, final, final)
        _rows, inp, out, seconds = _usage(pg_engine, s)
        assert (inp, out, seconds) == (row.input_octets, row.output_octets, row.session_time_s)
