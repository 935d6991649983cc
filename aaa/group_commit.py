"""Group commit on the reactor: requests queue up while writes are in flight, then go together.

Accounting must be durable before the NAS gets its Accounting-Response, and one commit (a WAL
flush, or an fsync of the journal) per record caps throughput at the disk's flush rate. Here
records arriving while groups are being written wait for the next group; each caller gets a
Deferred that fires when its group is durable, or fails with the group. The blocking write runs
in a thread pool: the reactor never waits on I/O.

Up to ``max_in_flight`` groups are written at once (default 2): while one group waits on the
database, the next is prepared, so a group's round trips overlap another's work instead of
adding up.  Two groups in flight may reach the database in either order; the accounting store
does not depend on order (counters only move forward and a closed session stays closed, see
``aaa.accounting.advance``), and it locks sessions in key order, so concurrent groups do not
deadlock on them.  ``max_in_flight=1`` gives strict arrival order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class GroupCommitter(Generic[T]):
    """Batches items for ``write(items)`` (blocking, run in ``pool``); see the module docstring."""

    def __init__(
        self,
        reactor: IReactorFromThreads,
        pool: ThreadPool,
        write: Callable[[Sequence[T]], None],
        max_group: int = 1000,
        max_in_flight: int = 2,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight!r}")
        self._reactor = reactor
        self._pool = pool
        self._write = write
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[T, Deferred[None]]] = []
        self._in_flight = 0
        self._idle: list[Deferred[None]] = []

    @property
    def pending(self) -> int:
        """Items waiting, plus groups being written."""
        return len(self._queue) + self._in_flight

    def submit(self, item: T) -> Deferred[None]:
        """Queue ``item``; the Deferred fires once it is durable (reactor thread only)."""
        done: Deferred[None] = Deferred()
        self._queue.append((item, done))
        if self._in_flight < self._max_in_flight:
            self._flush()
        return done

    def drained(self) -> Deferred[None]:
        """Fires when nothing is queued or in flight (for a clean shutdown)."""
        if not self._in_flight and not self._queue:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle.append(waiter)
        return waiter

    def _flush(self) -> None:
        group, self._queue = self._queue[: self._max_group], self._queue[self._max_group :]
        if not group:
            if not self._in_flight:
                idle, self._idle = self._idle, []
                for waiter in idle:
                    waiter.callback(None)
            return
        self._in_flight += 1
        written = deferToThreadPool(self._reactor, self._pool, self._write, [item for item, _ in group])
        written.addCallbacks(self._succeeded, self._failed, callbackArgs=(group,), errbackArgs=(group,))

    def _succeeded(self, _: object, group: list[tuple[T, Deferred[None]]]) -> None:
        self._in_flight -= 1
        for _item, done in group:
            done.callback(None)
        self._flush()

    def _failed(self, failure: Failure, group: list[tuple[T, Deferred[None]]]) -> None:
        self._in_flight -= 1
        for _item, done in group:
            done.errback(failure)
        self._flush()
