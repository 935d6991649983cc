"""Tests of aaa.journal: order across segments, torn tails at every offset, CRC damage,
durable replay progress across reopening, where fsync is called, and a property over any
sequence of append / mark / reopen."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aaa import journal as journal_module
from aaa.journal import MAX_RECORD_BYTES, Journal, JournalCorrupt, JournalError


def records(n: int, start: int = 0) -> list[bytes]:
    return [f"acct-{i:04d}".encode() for i in range(start, start + n)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def pending(journal: Journal) -> list[tuple[int, bytes]]:
    return list(journal.pending())


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def journal(jdir: Path) -> Iterator[Journal]:
    with Journal(jdir) as opened:
        yield opened


# --------------------------------------------------------------------------- order


def test_empty_journal(journal: Journal) -> None:
    assert pending(journal) == []
    assert journal.depth() == 0
    assert journal.last_seq == 0
    journal.append([])  # no group, no segment
    assert segments(journal.directory) == []


def test_append_then_pending_in_order_with_seq(journal: Journal) -> None:
    journal.append(records(3))
    journal.append(records(2, start=3))
    assert pending(journal) == list(enumerate(records(5), start=1))
    assert journal.depth() == 5
    assert journal.last_seq == 5


def test_order_across_segments_and_rotation(jdir: Path) -> None:
    with Journal(jdir, segment_bytes=64) as journal:
        for i in range(10):
            journal.append(records(2, start=2 * i))
        assert len(segments(jdir)) > 3
        assert pending(journal) == list(enumerate(records(20), start=1))
        # a segment is named by its first seq and never splits a group
        firsts = [int(p.stem) for p in segments(jdir)]
        assert firsts[0] == 1
        assert all(first % 2 == 1 for first in firsts)


def test_binary_and_empty_records(journal: Journal) -> None:
    batch = [b"", bytes(range(256)), b"\x00" * 10]
    journal.append(batch)
    assert [r for _, r in journal.pending()] == batch


def test_oversized_record_rejected(journal: Journal) -> None:
    with pytest.raises(ValueError):
        journal.append([b"x" * (MAX_RECORD_BYTES + 1)])
    assert journal.depth() == 0


# --------------------------------------------------------------------------- replay progress


def test_mark_replayed_hides_records_and_deletes_full_segments(jdir: Path) -> None:
    with Journal(jdir, segment_bytes=64) as journal:
        for i in range(6):
            journal.append(records(2, start=2 * i))
        before = segments(jdir)
        journal.mark_replayed(5)
        assert pending(journal) == list(enumerate(records(7, start=5), start=6))
        assert journal.depth() == 7
        after = segments(jdir)
        assert len(after) < len(before)
        assert all(int(p.stem) >= 5 for p in after)  # the segment holding 5..8 stays
        journal.mark_replayed(3)  # backwards: nothing happens
        assert journal.depth() == 7
        journal.mark_replayed(12)
        assert pending(journal) == []
        assert segments(jdir) == []
        journal.append([b"after"])  # a new segment, seq continues
        assert pending(journal) == [(13, b"after")]


def test_mark_beyond_last_seq_rejected(journal: Journal) -> None:
    journal.append(records(2))
    with pytest.raises(ValueError):
        journal.mark_replayed(3)


def test_mark_replayed_survives_reopen(jdir: Path) -> None:
    with Journal(jdir) as journal:
        journal.append(records(5))
        journal.mark_replayed(3)
    with Journal(jdir) as journal:
        assert pending(journal) == [(4, b"acct-0003"), (5, b"acct-0004")]
        assert journal.depth() == 2
        journal.append([b"more"])
        assert pending(journal)[-1] == (6, b"more")


def test_seq_never_reused_after_everything_replayed_and_deleted(jdir: Path) -> None:
    with Journal(jdir) as journal:
        journal.append(records(4))
        journal.mark_replayed(4)
    assert segments(jdir) == []
    with Journal(jdir) as journal:
        assert journal.last_seq == 4
        journal.append([b"new"])
        assert pending(journal) == [(5, b"new")]  # not hidden behind the checkpoint


def test_leftover_segments_of_a_crash_during_deletion_are_removed(jdir: Path) -> None:
    with Journal(jdir, segment_bytes=16) as journal:
        journal.append(records(1))
        journal.append(records(1, start=1))
        kept = segments(jdir)[0].read_bytes()
        journal.mark_replayed(1)
    (jdir / f"{1:020d}.seg").write_bytes(kept)  # as if the crash came before the unlink
    with Journal(jdir) as journal:
        assert pending(journal) == [(2, b"acct-0001")]
    assert [p.stem for p in segments(jdir)] == [f"{2:020d}"]


def test_pending_while_appending_sees_a_snapshot(journal: Journal) -> None:
    journal.append(records(2))
    iterator = journal.pending()
    assert next(iterator) == (1, b"acct-0000")
    journal.append([b"late"])
    assert list(iterator) == [(2, b"acct-0001")]
    assert pending(journal)[-1] == (3, b"late")


def test_corrupt_checkpoint_is_an_error(jdir: Path) -> None:
    Journal(jdir).close()
    (jdir / "replayed").write_text("garbage")
    with pytest.raises(JournalCorrupt):
        Journal(jdir)


def test_second_opener_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError):
        Journal(journal.directory)


def test_closed_journal_refuses_work(journal: Journal) -> None:
    journal.close()
    journal.close()
    with pytest.raises(JournalError):
        journal.append([b"x"])


# --------------------------------------------------------------------------- crashes


def _write_then_tear(jdir: Path, cut: int) -> tuple[list[bytes], int]:
    """Append three groups, then cut the file ``cut`` bytes into the last group."""
    with Journal(jdir) as journal:
        journal.append(records(2))
        journal.append(records(1, start=2))
        good_size = segments(jdir)[0].stat().st_size
        journal.append([b"torn-record-payload"])
    with segments(jdir)[0].open("r+b") as f:
        f.truncate(good_size + cut)
    return records(3), good_size


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 7, 8, 9, 15, 26])  # frame is 8 + 19 = 27 bytes
def test_torn_tail_is_dropped_and_appending_continues(jdir: Path, cut: int) -> None:
    good, good_size = _write_then_tear(jdir, cut)
    with Journal(jdir) as journal:
        assert journal.torn_bytes == cut
        assert pending(journal) == list(enumerate(good, start=1))
        assert segments(jdir)[0].stat().st_size == good_size
        journal.append([b"after-crash"])
    with Journal(jdir) as journal:
        assert journal.torn_bytes == 0
        assert pending(journal) == [*enumerate(good, start=1), (4, b"after-crash")]


def test_torn_tail_at_every_offset(jdir: Path) -> None:
    """Every cut inside any frame keeps exactly the frames wholly before it."""
    with Journal(jdir) as journal:
        journal.append(records(4))
    (path,) = segments(jdir)
    whole = path.read_bytes()
    frame = len(whole) // 4
    for cut in range(len(whole) + 1):
        path.write_bytes(whole[:cut])  # (an empty segment is deleted on opening)
        with Journal(jdir) as journal:
            assert pending(journal) == list(enumerate(records(cut // frame), start=1))


def test_zero_filled_tail_is_torn(jdir: Path) -> None:
    with Journal(jdir) as journal:
        journal.append(records(2))
    with segments(jdir)[0].open("ab") as f:
        f.write(bytes(64))  # what some file systems show after a crash
    with Journal(jdir) as journal:
        assert journal.torn_bytes == 64
        assert pending(journal) == list(enumerate(records(2), start=1))


@pytest.mark.parametrize("where", ["length", "crc", "payload"])
def test_crc_corruption_in_last_segment_detected(jdir: Path, where: str) -> None:
    with Journal(jdir) as journal:
        journal.append(records(3))
    path = segments(jdir)[0]
    data = bytearray(path.read_bytes())
    frame = len(data) // 3
    offset = frame + {"length": 0, "crc": 5, "payload": 10}[where]  # inside the second frame
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with Journal(jdir) as journal:
        assert pending(journal) == [(1, b"acct-0000")]
        assert journal.torn_bytes == 2 * frame


def test_damage_in_a_sealed_segment_is_skipped_and_reported(jdir: Path) -> None:
    with Journal(jdir, segment_bytes=30) as journal:
        for i in range(3):
            journal.append(records(2, start=2 * i))  # 34 bytes: one group per segment
    first = segments(jdir)[0]
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF  # the second record of the first segment
    first.write_bytes(bytes(data))
    with Journal(jdir, segment_bytes=30) as journal:
        assert [seq for seq, _ in journal.pending()] == [1, 3, 4, 5, 6]
        assert journal.depth() == 5
        assert len(journal.damage) == 1
        assert journal.damage[0].segment == first.name
        assert journal.damage[0].after_seq == 1
        assert journal.torn_bytes == 0
        journal.mark_replayed(6)
    assert segments(jdir) == []


def test_bit_rot_after_open_raises(journal: Journal) -> None:
    journal.append(records(2))
    path = segments(journal.directory)[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        pending(journal)


def test_failed_write_is_cut_back(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    journal.append(records(1))
    real_write = os.write

    def short_then_fail(fd: int, data: bytes) -> int:
        monkeypatch.setattr(os, "write", failing_write)
        return real_write(fd, bytes(data)[:5])

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_fail)
    with pytest.raises(OSError):
        journal.append([b"lost"])
    monkeypatch.setattr(os, "write", real_write)
    journal.append([b"kept"])
    assert pending(journal) == [(1, b"acct-0000"), (2, b"kept")]


def test_failed_fsync_stops_appending(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    journal.append(records(1))

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        journal.append([b"unknown"])
    monkeypatch.undo()
    with pytest.raises(JournalError):
        journal.append([b"refused"])
    with Journal(journal.directory) as reopened:  # reopening re-verifies every frame
        assert [seq for seq, _ in reopened.pending()][:1] == [1]


# --------------------------------------------------------------------------- fsync


class FsyncLog:
    def __init__(self) -> None:
        self.files = 0
        self.dirs = 0

    def __call__(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            self.dirs += 1
        else:
            self.files += 1
        real_fsync(fd)

    def take(self) -> tuple[int, int]:
        taken = (self.files, self.dirs)
        self.files = self.dirs = 0
        return taken


real_fsync = os.fsync


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> FsyncLog:
    log = FsyncLog()
    monkeypatch.setattr(journal_module.os, "fsync", log)
    return log


def test_fsync_once_per_group_and_on_directory_changes(jdir: Path, fsyncs: FsyncLog) -> None:
    with Journal(jdir, segment_bytes=100) as journal:
        assert fsyncs.take() == (0, 0)
        journal.append(records(3))  # creates the first segment
        assert fsyncs.take() == (1, 1)
        journal.append(records(1))  # same segment (3*17+17 < 100)
        assert fsyncs.take() == (1, 0)
        journal.append(records(100))  # one group of 100: still one fsync
        assert fsyncs.take() == (1, 0)
        journal.append(records(1))  # segment full: rotation creates a new file
        assert fsyncs.take() == (1, 1)
        journal.mark_replayed(105)  # checkpoint file + its rename, then the deletion
        assert fsyncs.take() == (1, 2)
        journal.mark_replayed(105)  # nothing to do
        assert fsyncs.take() == (0, 0)


# --------------------------------------------------------------------------- property

steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.binary(max_size=24), max_size=5)),
        st.tuples(st.just("mark"), st.integers(0, 10**6)),
        st.tuples(st.just("reopen"), st.none()),
        st.tuples(st.just("tear"), st.integers(1, 40)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps, segment_bytes=st.integers(1, 120))
def test_any_history_keeps_exactly_the_unreplayed_records(
    tmp_path: Path, steps: list[tuple[str, object]], segment_bytes: int
) -> None:
    directory = tmp_path / os.urandom(8).hex()
    model: list[tuple[int, bytes]] = []  # acknowledged, unreplayed
    last_seq = 0
    journal = Journal(directory, segment_bytes=segment_bytes)
    try:
        for op, arg in steps:
            if op == "append":
                assert isinstance(arg, list)
                journal.append(arg)
                model += [(last_seq + i, r) for i, r in enumerate(arg, start=1)]
                last_seq += len(arg)
            elif op == "mark":
                assert isinstance(arg, int)
                up_to = arg % (last_seq + 1)
                journal.mark_replayed(up_to)
                model = [(seq, r) for seq, r in model if seq > up_to]
            elif op == "reopen":
                journal.close()
                journal = Journal(directory, segment_bytes=segment_bytes)
            else:
                # a crash mid-append: garbage after the last acknowledged group
                assert isinstance(arg, int)
                journal.close()
                tail = segments(directory)
                if tail:
                    with tail[-1].open("ab") as f:
                        f.write(b"\xff" * arg)
                journal = Journal(directory, segment_bytes=segment_bytes)
            assert journal.last_seq == last_seq
            assert pending(journal) == model
            assert journal.depth() == len(model)
    finally:
        journal.close()
