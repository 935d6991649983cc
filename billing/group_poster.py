"""Group commit for blocking callers: many threads submit, one writer commits them together.

A commit costs a WAL flush, and a hot row (a bank's clearing account, a revenue book) is locked
from its update until the commit, so one transaction per request serializes every writer on it.
Callers hand their request to a :class:`GroupPoster` and wait; the writer thread takes
everything that queued up while the previous group was being written and passes it to
``write_group`` in one DB transaction. A caller is answered only after the commit, so an answer
still means "durable". If a group fails, each request is retried alone with ``write_alone``, so
one bad request (an idempotency conflict, an unknown account) fails only its own caller.

Used by :class:`billing.ledger_poster.LedgerPoster` (ledger transactions) and the payment API's
gateway (payments: ``billing.payment_batch``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar

from sqlalchemy.orm import Session, sessionmaker

R = TypeVar("R")
T = TypeVar("T")


@dataclass
class _Pending(Generic[R, T]):
    request: R
    future: Future[T] = field(default_factory=Future)


class GroupPoster(Generic[R, T]):
    """A writer thread that writes queued requests in groups; use as a context manager."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        write_group: Callable[[Session, Sequence[R]], Sequence[T]],
        write_alone: Callable[[Session, R], T],
        *,
        max_group: int = 1000,
        name: str = "group-poster",
    ) -> None:
        self._sessions = sessions
        self._write_group = write_group
        self._write_one = write_alone
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Pending[R, T] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, request: R) -> Future[T]:
        """Queue a request; the future resolves once it is committed (or fails)."""
        if self._closed:
            raise RuntimeError(f"{self._thread.name} is closed")
        pending: _Pending[R, T] = _Pending(request)
        self._queue.put(pending)
        return pending.future

    def post(self, request: R, timeout: float | None = 60.0) -> T:
        """Submit and wait for the commit; raises what ``write_alone`` would raise."""
        return self.submit(request).result(timeout)

    def close(self) -> None:
        """Finish what is queued, then stop the writer."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            if self._thread.is_alive():
                self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._write(group)
            if stop:
                return

    def _write(self, group: list[_Pending[R, T]]) -> None:
        try:
            with self._sessions.begin() as session:
                results = self._write_group(session, [p.request for p in group])
        except Exception:
            for pending in group:
                self._write_alone(pending)
            return
        for pending, result in zip(group, results, strict=True):
            pending.future.set_result(result)

    def _write_alone(self, pending: _Pending[R, T]) -> None:
        try:
            with self._sessions.begin() as session:
                result = self._write_one(session, pending.request)
        except Exception as exc:  # handed to the caller, who decides
            pending.future.set_exception(exc)
        else:
            pending.future.set_result(result)
