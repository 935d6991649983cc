"""Group commit: items queued during a write go in the next group; callers learn their fate."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.python.failure import Failure

from aaa import systemd
from aaa.group_commit import GroupCommitter


class ManualPool:
    """A thread pool stand-in whose jobs run when the test says so."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., None], Callable[..., Any], tuple[Any, ...]]] = []

    def callInThreadWithCallback(
        self, on_result: Callable[..., None], f: Callable[..., Any], *args: Any
    ) -> None:
        self.jobs.append((on_result, f, args))

    def run_next(self) -> None:
        on_result, f, args = self.jobs.pop(0)
        try:
            on_result(True, f(*args))
        except Exception:
            on_result(False, Failure())


class ImmediateReactor:
    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


def test_items_arriving_during_a_write_go_together_in_the_next_group() -> None:
    pool, groups = ManualPool(), []
    committer: GroupCommitter[int] = GroupCommitter(ImmediateReactor(), pool, groups.append, max_in_flight=1)  # type: ignore[arg-type]
    fired: list[int] = []
    committer.submit(1).addCallback(lambda _: fired.append(1))
    for n in (2, 3, 4):
        committer.submit(n).addCallback(lambda _, n=n: fired.append(n))
    assert committer.pending == 4
    pool.run_next()
    assert groups == [[1]] and fired == [1]
    pool.run_next()
    assert groups == [[1], [2, 3, 4]] and fired == [1, 2, 3, 4]
    assert committer.pending == 0 and not pool.jobs


def test_up_to_max_in_flight_groups_are_written_at_once_and_the_rest_wait_together() -> None:
    pool, groups = ManualPool(), []
    committer: GroupCommitter[int] = GroupCommitter(ImmediateReactor(), pool, groups.append, max_in_flight=2)  # type: ignore[arg-type]
    fired: list[int] = []
    for n in (1, 2, 3, 4, 5):
        committer.submit(n).addCallback(lambda _, n=n: fired.append(n))
    assert len(pool.jobs) == 2 and committer.pending == 3 + 2
    pool.run_next()  # [1] is durable; [3, 4, 5] go as one group next to [2]
    assert groups == [[1]] and fired == [1] and len(pool.jobs) == 2
    pool.run_next()
    pool.run_next()
    assert groups == [[1], [2], [3, 4, 5]] and fired == [1, 2, 3, 4, 5]
    assert committer.pending == 0 and not pool.jobs


def test_max_in_flight_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        GroupCommitter(ImmediateReactor(), ManualPool(), lambda items: None, max_in_flight=0)  # type: ignore[arg-type]


def test_drained_waits_for_every_group_in_flight() -> None:
    pool = ManualPool()
    committer: GroupCommitter[int] = GroupCommitter(ImmediateReactor(), pool, lambda items: None)  # type: ignore[arg-type]
    committer.submit(1)
    committer.submit(2)
    drained: list[bool] = []
    committer.drained().addCallback(lambda _: drained.append(True))
    pool.run_next()
    assert not drained
    pool.run_next()
    assert drained == [True]


def test_a_failed_write_fails_every_caller_of_that_group_only() -> None:
    pool = ManualPool()
    calls: list[Sequence[str]] = []

    def write(items: Sequence[str]) -> None:
        calls.append(items)
        if "bad" in items:
            raise OSError("disk full")

    committer: GroupCommitter[str] = GroupCommitter(ImmediateReactor(), pool, write)  # type: ignore[arg-type]
    outcomes: dict[str, str] = {}
    for item in ("bad", "later"):
        committer.submit(item).addCallbacks(
            lambda _, i=item: outcomes.__setitem__(i, "ok"),
            lambda f, i=item: outcomes.__setitem__(i, "failed"),
        )
    pool.run_next()
    pool.run_next()
    assert outcomes == {"bad": "failed", "later": "ok"}


def test_drained_fires_when_the_last_group_is_durable() -> None:
    pool = ManualPool()
    committer: GroupCommitter[int] = GroupCommitter(ImmediateReactor(), pool, lambda items: None)  # type: ignore[arg-type]
    committer.submit(1)
    drained: list[bool] = []
    committer.drained().addCallback(lambda _: drained.append(True))
    assert not drained
    pool.run_next()
    assert drained == [True]


def test_sd_notify_sends_states_to_the_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify("READY=1", "STATUS=serving")
        assert listener.recv(1024) == b"READY=1\nSTATUS=serving"


def test_sd_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval_s() == 5.0


def test_drained_fires_at_once_when_idle() -> None:
    committer: GroupCommitter[int] = GroupCommitter(ImmediateReactor(), ManualPool(), lambda items: None)  # type: ignore[arg-type]
    drained: list[bool] = []
    committer.drained().addCallback(lambda _: drained.append(True))
    assert drained == [True]
