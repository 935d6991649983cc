"""Durable accounting: groups of ``AccountingRecord`` into the database, or the journal if it is down.

Why group commit: an Accounting-Response may only go out once its record is durable, and a
BRAS sends thousands of interims a minute; one transaction (one fsync on the database) per
group of records, not per record, is what keeps up.  The daemon collects the records that
arrived while the previous group was being written and hands them to ``store`` together.

One group, one transaction (``AccountingStore.store``):

1. lock the group's sessions that exist: ``SELECT ... WHERE acct_unique_id IN (...) ORDER BY
   acct_unique_id FOR UPDATE`` (always the same order, so two stores rarely deadlock; on
   SQLite the engine's ``BEGIN IMMEDIATE`` serialises writers instead);
2. create the missing ones: ``INSERT ... ON CONFLICT (acct_unique_id) DO NOTHING RETURNING``,
   in key order, from their first record of the group, with ``service_id`` from the record
   or else from ``services.login`` = User-Name; then ``SELECT ... FOR UPDATE`` those too, so
   a session another store created meanwhile is locked and used, never a failure;
3. run the records through ``aaa.accounting.advance`` in arrival order, in memory;
   Accounting-On/Off close the loaded sessions of their NAS in memory and the others with one
   ``UPDATE``;
4. write each changed session once (one ``UPDATE``) and one ``session_usage`` row per
   positive delta (one ``INSERT``).

The statements themselves are in ``aaa.session_writes``: SQLAlchemy Core on SQLite, fixed
statements with array parameters on PostgreSQL (a group costs the same few statements whatever
its size).

A deadlock or serialisation failure retries the group (``retries`` times).  If the database
is unreachable (``OperationalError``: connection refused, server gone, timeout; a pool
timeout; a broken connection), the group is appended to the journal instead and ``store``
returns normally: the records are durable, the NAS may be answered.  Other errors (a bug, a
constraint the parser should have prevented) propagate: the caller does not answer, the NAS
retransmits, and the log says why.

Journal format (``encode_record`` / ``decode_record``), one journal record per accounting
record, a group per ``append``: UTF-8 JSON array, version first, compact separators::

    [1, status, nas_address, acct_session_id, acct_unique_id, event_time_us, received_at_us,
     nas_port_id, username, calling_station_id, framed_ip, session_time_s, input_octets,
     output_octets, input_packets, output_packets, terminate_cause, interim_interval_s,
     service_id]

with times as integer microseconds since the Unix epoch (UTC) and absent values as ``null``.
About 250 octets a record.

Replay (``replay``) writes pending journal records in order, in groups, and marks each group
replayed after its commit.  It is idempotent: sessions are found by the unique
``acct_unique_id`` and counters only move forward, so a record written twice (a crash between
commit and ``mark_replayed``, or a replay run twice) adds no usage.  Records stored directly
while older ones wait in the journal do not need ordering either, for the same reason.

The reaper (``reap``) closes open sessions not heard of for more than ``factor`` times their
interim interval, with stop time = when they were last heard of and terminate cause
``Stale-Session`` (not an RFC 2866 value on purpose: reports can tell a session the server
gave up on from one the NAS ended).  Usage is never deleted.

Every method blocks (SQLAlchemy sync engine, fsync'd journal): the daemon calls them from a
thread pool, never from the reactor thread.  One store may be shared by several threads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy import exc as sa_exc

from aaa.accounting import (
    NAS_REBOOT_CAUSE,
    AccountingRecord,
    SessionState,
    SessionStatus,
    StatusType,
    Usage,
    advance,
    close_for_nas,
)
from aaa.journal import Journal
from aaa.quota_gate import QuotaGate, SessionChange
from aaa.schema import radius_sessions
from aaa.session_writes import NewSession, UsageRow, session_writes_for

__all__ = [
    "STALE_SESSION_CAUSE",
    "AccountingStore",
    "decode_record",
    "encode_record",
]

_log = logging.getLogger(__name__)

STALE_SESSION_CAUSE = "Stale-Session"
"""Terminate cause the reaper writes on the sessions it closes."""

JOURNAL_FORMAT_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected

_rs = radius_sessions


# --------------------------------------------------------------------------- journal format


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def encode_record(record: AccountingRecord) -> bytes:
    """Serialise a record for the journal (format in the module docstring)."""
    r = record
    return json.dumps(
        [
            JOURNAL_FORMAT_VERSION,
            int(r.status),
            r.nas_address,
            r.acct_session_id,
            r.acct_unique_id,
            _micros(r.event_time),
            _micros(r.received_at),
            r.nas_port_id,
            r.username,
            r.calling_station_id,
            r.framed_ip,
            r.session_time_s,
            r.input_octets,
            r.output_octets,
            r.input_packets,
            r.output_packets,
            r.terminate_cause,
            r.interim_interval_s,
            r.service_id,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def decode_record(data: bytes) -> AccountingRecord:
    """Inverse of ``encode_record``; ``ValueError`` for an unknown version or shape."""
    fields = json.loads(data)
    if not isinstance(fields, list) or not fields or fields[0] != JOURNAL_FORMAT_VERSION or len(fields) != 19:
        raise ValueError(f"not a version {JOURNAL_FORMAT_VERSION} accounting journal record: {data[:60]!r}")
    (_, status, nas, session_id, unique_id, event_us, received_us, *rest) = fields
    (port, user, calling, framed, seconds, in_o, out_o, in_p, out_p, cause, interval, service) = rest
    return AccountingRecord(
        status=StatusType(status),
        nas_address=nas,
        acct_session_id=session_id,
        acct_unique_id=unique_id,
        event_time=_from_micros(event_us),
        received_at=_from_micros(received_us),
        nas_port_id=port,
        username=user,
        calling_station_id=calling,
        framed_ip=framed,
        session_time_s=seconds,
        input_octets=in_o,
        output_octets=out_o,
        input_packets=in_p,
        output_packets=out_p,
        terminate_cause=cause,
        interim_interval_s=interval,
        service_id=service,
    )


# --------------------------------------------------------------------------- errors


def _database_unavailable(exc: BaseException) -> bool:
    """Errors that mean "the database cannot be reached now", not "this data is wrong"."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def _retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


# --------------------------------------------------------------------------- quota gate


def _session_changes(
    records: Sequence[AccountingRecord],
    uids: Sequence[str],
    ids: dict[str, int],
    states: dict[str, SessionState],
    before: dict[str, SessionState],
    created: dict[int, Usage],
    first_index: dict[str, int],
) -> list[SessionChange]:
    """What the group did to each of its sessions, for the quota gate (in key order).

    ``before`` holds the states as loaded, before the group's records moved them. A session
    the group created counts all its counters as the group's usage. A session is reported when
    the group created it, moved its counters or closed it.
    """
    last_event: dict[str, datetime] = {}
    for record in records:
        if record.status.is_session:
            uid = record.acct_unique_id
            last_event[uid] = max(last_event.get(uid, record.event_time), record.event_time)
    changes = []
    for uid in uids:
        end = states[uid]
        totals = Usage(end.input_octets, end.output_octets, end.session_time_s)
        is_new = first_index[uid] in created
        if is_new:
            delta, was_closed = totals, False
        else:
            start = before[uid]
            delta = Usage(
                totals.input_octets - start.input_octets,
                totals.output_octets - start.output_octets,
                totals.seconds - start.session_time_s,
            )
            was_closed = start.status is SessionStatus.CLOSED
        stopped = end.status is SessionStatus.CLOSED and not was_closed
        if is_new or stopped or not delta.is_empty:
            changes.append(
                SessionChange(uid, ids[uid], end.service_id, end.started_at, last_event[uid], delta, totals,
                              started=is_new, stopped=stopped)
            )  # fmt: skip
    return changes


# --------------------------------------------------------------------------- the store


_ANALYZE_FIRST = 500
_ANALYZE_AFTER = 5_000
"""Records stored between two ANALYZE runs of the accounting tables (PostgreSQL): 500 the
first time, doubling up to this."""


class AccountingStore:
    """Writes accounting records to the database in groups; falls back to the journal.

    ``engine`` must serialise SQLite writers (``BEGIN IMMEDIATE``) if it is SQLite; on
    PostgreSQL row locks do it.  ``retries``: how many times a group that hit a deadlock or
    serialisation failure is retried before it is treated as unstorable now (journaled).
    ``replay_group``: records per transaction during replay.  ``quota_gate`` (optional) is told
    each group's session changes inside the group's transaction (``aaa.quota_gate``).  All
    methods block: call them from a thread pool.
    """

    def __init__(
        self,
        engine: Engine,
        journal: Journal,
        *,
        retries: int = 3,
        replay_group: int = 500,
        quota_gate: QuotaGate | None = None,
    ) -> None:
        if replay_group < 1:
            raise ValueError(f"replay_group must be positive, got {replay_group!r}")
        self.engine = engine
        self.journal = journal
        self.retries = retries
        self.replay_group = replay_group
        self.quota_gate = quota_gate
        self._grown = 0  # records stored since the last ANALYZE
        self._analyze_after = _ANALYZE_FIRST  # soon at first (plans made on empty tables), then less often
        self._writes = session_writes_for(engine.dialect.name)

    # ------------------------------------------------------------------ public API

    def store(self, records: Sequence[AccountingRecord]) -> None:
        """Make ``records`` durable: one database transaction, or the journal if the DB is down.

        Returns once the whole group is committed or fsync'd in the journal; raises if
        neither happened (then do not answer the NAS).
        """
        if not records:
            return
        try:
            self._write(records)
        except Exception as exc:
            if not _database_unavailable(exc):
                raise
            _log.warning("database unavailable, journaling %d accounting records: %s", len(records), exc)
            self.journal.append([encode_record(r) for r in records])
            return
        self._grown += len(records)
        if self._grown >= self._analyze_after and self.engine.dialect.name == "postgresql":
            self.analyze()
            self._analyze_after = min(self._analyze_after * 2, _ANALYZE_AFTER)

    def analyze(self) -> None:
        """Fresh planner statistics for the accounting tables.

        Long-lived connections cache plans (foreign-key checks included) made while the tables
        were small; until statistics change they keep sequential scans, and each group gets
        slower as sessions accumulate (measured here: 28 ms per group of 128 Starts at 2.5k
        sessions, 200 ms at 20k; 21 ms flat with fresh statistics). Autovacuum does this where
        it is on and keeping up; this makes the store independent of it. ANALYZE samples, so
        it stays cheap on big tables.
        """
        self._grown = 0
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE radius_sessions, session_usage")
        except sa_exc.DBAPIError as exc:
            _log.warning("ANALYZE of the accounting tables failed: %s", exc)

    def replay(self) -> int:
        """Move journaled records into the database, in order; return how many were moved.

        Stops (without raising) at the first group the database cannot take while it is
        unavailable; those records stay pending for the next call.  Idempotent.
        """
        replayed = 0
        group: list[AccountingRecord] = []
        last_seq = 0
        try:
            for seq, data in self.journal.pending():
                group.append(decode_record(data))
                last_seq = seq
                if len(group) >= self.replay_group:
                    self._write(group)
                    self.journal.mark_replayed(last_seq)
                    replayed += len(group)
                    group = []
            if group:
                self._write(group)
                self.journal.mark_replayed(last_seq)
                replayed += len(group)
        except Exception as exc:
            if not _database_unavailable(exc):
                raise
            _log.warning("database unavailable, replay paused after %d records: %s", replayed, exc)
        return replayed

    def reap(self, now: datetime, factor: float, *, default_interval_s: int | None = None) -> int:
        """Close open sessions silent for more than ``factor`` x their interim interval.

        A session without a known interval uses ``default_interval_s`` (what the daemon sends
        as Acct-Interim-Interval); if that is None too, such sessions are left alone.  Closed
        sessions get ``stopped_at`` = when last heard of and cause ``Stale-Session``.
        Returns how many were closed.
        """
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor!r}")
        closed = 0
        with self.engine.begin() as conn:
            intervals = conn.execute(
                select(_rs.c.interim_interval_s).distinct().where(_rs.c.status == SessionStatus.OPEN.value)
            ).scalars()
            for interval in list(intervals):
                effective = interval or default_interval_s
                if not effective:
                    continue
                same_interval = (
                    _rs.c.interim_interval_s.is_(None)
                    if interval is None
                    else _rs.c.interim_interval_s == interval
                )
                result = conn.execute(
                    update(_rs)
                    .where(
                        _rs.c.status == SessionStatus.OPEN.value,
                        same_interval,
                        _rs.c.updated_at < now - timedelta(seconds=factor * effective),
                    )
                    .values(
                        status=SessionStatus.CLOSED.value,
                        stopped_at=_rs.c.updated_at,
                        terminate_cause=STALE_SESSION_CAUSE,
                    )
                )
                closed += result.rowcount
        if closed:
            _log.info("reaped %d stale sessions", closed)
        return closed

    # ------------------------------------------------------------------ internals

    def _write(self, records: Sequence[AccountingRecord]) -> None:
        attempt = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    self._write_group(conn, records)
                return
            except sa_exc.DBAPIError as exc:
                if not _retryable(exc) or attempt >= self.retries:
                    raise
                attempt += 1
                _log.info("accounting group of %d hit %s, retry %d", len(records), exc.orig, attempt)

    def _write_group(self, conn: Connection, records: Sequence[AccountingRecord]) -> None:
        first_index: dict[str, int] = {}
        for index, record in enumerate(records):
            if record.status.is_session:
                first_index.setdefault(record.acct_unique_id, index)
        uids = sorted(first_index)

        ids: dict[str, int] = {}
        states: dict[str, SessionState] = {}
        nas_of: dict[str, str] = {}
        created: dict[int, Usage] = {}  # index of a creating record -> its usage
        if uids:
            self._lock(conn, uids, ids, states, nas_of)
            missing = [uid for uid in uids if uid not in ids]
            if missing:
                created = self._create(conn, records, missing, first_index)
                self._lock(conn, missing, ids, states, nas_of)
        gate = self.quota_gate
        if gate is not None and not gate.wants_changes(conn):
            gate = None  # nothing metered: skip copying states and working out the changes
        before = dict(states) if gate is not None else {}

        changed: set[str] = set()
        usage_rows: list[UsageRow] = []
        for index, record in enumerate(records):
            if not record.status.is_session:
                self._close_for_nas(conn, record, ids, states, nas_of, changed, created, first_index, index)
                continue
            uid = record.acct_unique_id
            usage = created.get(index)
            if usage is None:
                transition = advance(states[uid], record)
                if transition.changed:
                    states[uid] = transition.state
                    changed.add(uid)
                usage = transition.usage
            if not usage.is_empty:
                usage_rows.append(
                    UsageRow(
                        ids[uid],
                        states[uid].service_id,
                        record.event_time,
                        usage.input_octets,
                        usage.output_octets,
                        usage.seconds,
                    )
                )

        if changed:
            self._writes.update(conn, [(ids[uid], states[uid]) for uid in sorted(changed)])
        if usage_rows:
            self._writes.add_usage(conn, usage_rows)
        if gate is not None and uids:
            gate_changes = _session_changes(records, uids, ids, states, before, created, first_index)
            if gate_changes:
                gate.on_group(conn, gate_changes)

    def _lock(
        self,
        conn: Connection,
        uids: Sequence[str],
        ids: dict[str, int],
        states: dict[str, SessionState],
        nas_of: dict[str, str],
    ) -> None:
        """Load and lock the existing sessions among ``uids`` (in key order)."""
        for loaded in self._writes.lock(conn, uids):
            ids[loaded.acct_unique_id] = loaded.id
            nas_of[loaded.acct_unique_id] = loaded.nas_address
            states[loaded.acct_unique_id] = loaded.state

    def _create(
        self,
        conn: Connection,
        records: Sequence[AccountingRecord],
        missing: Sequence[str],
        first_index: dict[str, int],
    ) -> dict[int, Usage]:
        """Insert the missing sessions from their first record; return the usage of those we made."""
        logins = {
            records[first_index[uid]].username
            for uid in missing
            if records[first_index[uid]].service_id is None and records[first_index[uid]].username
        }
        service_ids = self._writes.service_ids(conn, sorted(logins)) if logins else {}
        sessions: list[NewSession] = []
        usages: dict[str, tuple[int, Usage]] = {}
        for uid in missing:  # sorted: concurrent inserters wait on each other in one order
            index = first_index[uid]
            record = records[index]
            if record.service_id is None:
                record = replace(record, service_id=service_ids.get(record.username))
            transition = advance(None, record)
            usages[uid] = (index, transition.usage)
            sessions.append(
                NewSession(
                    record.acct_unique_id,
                    record.acct_session_id,
                    record.nas_address,
                    record.nas_port_id,
                    record.username,
                    record.calling_station_id,
                    record.framed_ip,
                    transition.state,
                )
            )
        inserted = self._writes.create(conn, sessions)
        return {usages[uid][0]: usages[uid][1] for _id, uid in inserted}

    @staticmethod
    def _close_for_nas(
        conn: Connection,
        record: AccountingRecord,
        ids: dict[str, int],
        states: dict[str, SessionState],
        nas_of: dict[str, str],
        changed: set[str],
        created: dict[int, Usage],
        first_index: dict[str, int],
        index: int,
    ) -> None:
        """Accounting-On/Off at position ``index`` of the group: close the NAS's open sessions."""
        loaded: list[int] = []
        for uid, state in states.items():
            if nas_of[uid] != record.nas_address:
                continue
            loaded.append(ids[uid])
            if first_index[uid] > index and first_index[uid] in created:
                continue  # created by a later record of this group: not there yet
            new = close_for_nas(state, record.event_time)
            if new is not state:
                states[uid] = new
                changed.add(uid)
        conn.execute(
            update(_rs)
            .where(
                _rs.c.nas_address == record.nas_address,
                _rs.c.status == SessionStatus.OPEN.value,
                _rs.c.started_at < record.event_time,
                _rs.c.id.not_in(loaded),
            )
            .values(
                status=SessionStatus.CLOSED.value,
                stopped_at=record.event_time,
                terminate_cause=NAS_REBOOT_CAUSE,
            )
        )
        _log.info("%s from %s: open sessions closed", record.status.name, record.nas_address)
