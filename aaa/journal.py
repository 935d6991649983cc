"""Local append-only journal of accounting records, for when the database is down.

Why: an Accounting-Response tells the NAS it may forget a record, so it is sent only once the
record is durable: committed to the database, or, while the database is unreachable, written
here and fsync'd.  The records are replayed into the database when it comes back.

On disk, in ``directory``:

- ``<first_seq:020d>.seg``: segment files, named by the sequence number of their first
  record.  A segment is a run of frames ``length (u32 LE) | crc32 (u32 LE) | payload``,
  where the CRC covers the four length octets and the payload, so a tail of zeros (what some
  file systems show after a crash) or a torn length is caught as well as a torn payload.
  Sequence numbers start at 1, are contiguous inside a segment and never reused.  The active
  segment is rotated once it holds ``segment_bytes``; a group is never split.
- ``replayed``: the highest sequence number replayed, replaced atomically (write, fsync,
  rename, fsync the directory).  Segments wholly at or below it are then deleted.
- ``lock``: an ``flock`` so that two daemons never share a journal.

Durability: ``append`` writes a group of records with one ``write`` and one ``fsync``
(group commit); a new segment's directory entry is fsync'd before the group is acknowledged,
and so are deletions.  After a crash, only the last group of the last segment can be torn:
on opening, the last segment is cut back to its last complete, CRC-valid frame (the bytes
cut are counted in ``torn_bytes``) and appending continues from there.  A bad frame in an
older segment is bit rot, not a torn write: the frames from it to that segment's end are
skipped and reported in ``damage`` (the daemon logs them) rather than refusing to start.

Replay is at-least-once: a crash between writing a record to the database and
``mark_replayed`` replays it again after restart, so whatever consumes ``pending`` must be
idempotent (accounting is, through the unique ``acct_unique_id`` and the usage idempotency
key; see DESIGN.md).

All I/O here is blocking: the daemon calls this from a thread pool, never the reactor
thread.  Methods take an internal lock so an appending thread and a replaying thread can
share one ``Journal``; ``pending`` reads a snapshot taken when it starts.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "MAX_RECORD_BYTES",
    "Damage",
    "Journal",
    "JournalCorrupt",
    "JournalError",
]

DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # an accounting record is a few hundred octets

_HEADER = struct.Struct("<II")
_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")
_CHECKPOINT = "replayed"
_CHECKPOINT_TMP = "replayed.tmp"
_LOCK = "lock"


class JournalError(Exception):
    """The journal cannot be used (locked by another process, closed, or failed I/O)."""


class JournalCorrupt(JournalError):
    """Content that was written atomically or verified before no longer reads back."""


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes skipped in a sealed segment: from ``offset`` to its end, after seq ``after_seq``."""

    segment: str
    offset: int
    skipped_bytes: int
    after_seq: int


@dataclass(slots=True)
class _Segment:
    path: Path
    first_seq: int
    count: int  # valid records
    size: int  # bytes of valid records

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1


def _frame(record: bytes) -> bytes:
    length = len(record).to_bytes(4, "little")
    return _HEADER.pack(len(record), zlib.crc32(record, zlib.crc32(length))) + record


def _scan(data: bytes) -> tuple[int, int]:
    """Count the valid frames at the start of ``data``; return (count, bytes they take)."""
    offset = count = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if length > MAX_RECORD_BYTES or end > len(data):
            break
        if zlib.crc32(data[offset + _HEADER.size : end], zlib.crc32(data[offset : offset + 4])) != crc:
            break
        offset = end
        count += 1
    return count, offset


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Fsync'd, append-only, segmented record journal with durable replay progress.

    ``append(records)`` returns only once the records are on disk; ``pending()`` yields
    ``(seq, record)`` not yet replayed, in order; ``mark_replayed(up_to_seq)`` durably
    records progress and deletes segments no longer needed; ``depth()`` counts pending
    records.  Replay is at-least-once: the consumer must be idempotent.  Blocking I/O:
    call from a thread pool.
    """

    def __init__(self, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, got {segment_bytes!r}")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.torn_bytes = 0
        self.damage: tuple[Damage, ...] = ()
        self._mutex = threading.Lock()
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # active (last) segment, opened for append
        self._closed = False

        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalError(f"journal {self.directory} is in use by another process") from None
        try:
            self._open()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # ------------------------------------------------------------------ opening

    def _open(self) -> None:
        (self.directory / _CHECKPOINT_TMP).unlink(missing_ok=True)
        self._replayed = self._read_checkpoint()
        names = sorted(p for p in self.directory.iterdir() if _SEGMENT_NAME.match(p.name))
        damage: list[Damage] = []
        for index, path in enumerate(names):
            first_seq = int(path.name[:20])
            data = path.read_bytes()
            count, size = _scan(data)
            segment = _Segment(path, first_seq, count, size)
            if size < len(data):
                if index == len(names) - 1:
                    self.torn_bytes = len(data) - size
                    with path.open("r+b") as f:
                        f.truncate(size)
                        os.fsync(f.fileno())
                else:
                    damage.append(Damage(path.name, size, len(data) - size, segment.last_seq))
            self._segments.append(segment)
        self.damage = tuple(damage)
        last = self._segments[-1] if self._segments else None
        self._next_seq = max(self._replayed + 1, last.last_seq + 1 if last else 1)
        # A crash between writing the checkpoint and deleting segments leaves some behind.
        self._delete_replayed_segments()

    def _read_checkpoint(self) -> int:
        try:
            text = (self.directory / _CHECKPOINT).read_text("ascii")
        except FileNotFoundError:
            return 0
        if not re.fullmatch(r"\d+\n", text):
            raise JournalCorrupt(f"{self.directory / _CHECKPOINT}: unreadable checkpoint {text!r}")
        return int(text)

    # ------------------------------------------------------------------ public API

    def append(self, records: Sequence[bytes]) -> None:
        """Write ``records`` as one group and fsync it; on return they are durable.

        On an error nothing of the group is acknowledged.  A failed write is cut back off the
        file; a failed fsync leaves the page cache in an unknown state, so the journal refuses
        further appends until it is reopened (which re-verifies every frame).
        """
        if not records:
            return
        for record in records:
            if len(record) > MAX_RECORD_BYTES:
                raise ValueError(f"record of {len(record)} bytes exceeds {MAX_RECORD_BYTES}")
        payload = b"".join(_frame(bytes(record)) for record in records)
        with self._mutex:
            self._check_usable()
            segment = self._active_segment()
            assert self._fd is not None
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                try:
                    os.ftruncate(self._fd, segment.size)
                except OSError:
                    self._poison()
                raise
            try:
                os.fsync(self._fd)
            except OSError:
                self._poison()
                raise
            segment.count += len(records)
            segment.size += len(payload)
            self._next_seq += len(records)

    def pending(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, record)`` for every record not yet replayed, in order.

        Reads the records present when iteration starts; records appended meanwhile come
        with the next call.  Raises ``JournalCorrupt`` if a verified frame no longer reads
        back the same (the disk changed under us).
        """
        with self._mutex:
            self._check_usable()
            replayed = self._replayed
            snapshot = [
                (s.path, s.first_seq, s.count, s.size) for s in self._segments if s.last_seq > replayed
            ]
        for path, first_seq, count, size in snapshot:
            try:
                with path.open("rb") as f:
                    data = f.read(size)
            except FileNotFoundError:
                continue  # marked replayed and deleted while we iterated
            valid, valid_size = _scan(data)
            if valid < count or valid_size != size:
                raise JournalCorrupt(f"{path}: {count} records verified on open, {valid} read back")
            offset = 0
            for seq in range(first_seq, first_seq + count):
                length, _ = _HEADER.unpack_from(data, offset)
                start = offset + _HEADER.size
                offset = start + length
                if seq > replayed:
                    yield seq, data[start:offset]

    def mark_replayed(self, up_to_seq: int) -> None:
        """Durably record that every record with seq <= ``up_to_seq`` is in the database.

        Going backwards is a no-op; beyond the last appended record is an error.  Segments
        now wholly replayed are deleted (after the checkpoint is durable).
        """
        with self._mutex:
            self._check_usable()
            if up_to_seq >= self._next_seq:
                raise ValueError(f"seq {up_to_seq} was never appended (last is {self._next_seq - 1})")
            if up_to_seq <= self._replayed:
                return
            tmp = self.directory / _CHECKPOINT_TMP
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, f"{up_to_seq}\n".encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.directory / _CHECKPOINT)
            _fsync_dir(self.directory)
            self._replayed = up_to_seq
            self._delete_replayed_segments()

    def depth(self) -> int:
        """How many records are pending replay (for a gauge)."""
        with self._mutex:
            replayed = self._replayed
            return sum(s.count - max(0, min(s.count, replayed - s.first_seq + 1)) for s in self._segments)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last record appended (0 if none ever was)."""
        return self._next_seq - 1

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            os.close(self._lock_fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _check_usable(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.directory} is closed")

    def _poison(self) -> None:
        """After an I/O error whose effect on disk is unknown: stop appending until reopened."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._closed = True
        os.close(self._lock_fd)

    def _active_segment(self) -> _Segment:
        """The segment to append to, rotating to a new one when the last is full or gone."""
        last = self._segments[-1] if self._segments else None
        if last is not None and last.size < self.segment_bytes and last.last_seq + 1 == self._next_seq:
            if self._fd is None:
                self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
            return last
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        path = self.directory / f"{self._next_seq:020d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        _fsync_dir(self.directory)
        segment = _Segment(path, self._next_seq, 0, 0)
        self._segments.append(segment)
        return segment

    def _delete_replayed_segments(self) -> None:
        doomed = [s for s in self._segments if s.last_seq <= self._replayed]
        if not doomed:
            return
        active = self._segments[-1]
        for segment in doomed:
            if segment is active and self._fd is not None:
                os.close(self._fd)
                self._fd = None
            segment.path.unlink(missing_ok=True)
        self._segments = [s for s in self._segments if s not in doomed]
        _fsync_dir(self.directory)
