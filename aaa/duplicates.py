"""Duplicate detection and the reply cache of RFC 5080 §2.2.2.

A NAS retransmits a request it got no answer to, with the same source address and port,
Identifier and Request Authenticator.  Processing a retransmission again would, for
accounting, count usage twice, and for authentication, may give a different answer (the
balance moved); RFC 5080 §2.2.2 says to detect duplicates on exactly those fields and to
answer them with the reply already sent.  The key also holds the Code, so an
Access-Request and an Accounting-Request that happen to share the rest are never confused.
The authenticator is part of the key: a NAS reuses an Identifier for a *new* request as soon
as the 8-bit space wraps, and only the authenticator tells the two apart.

Per key the cache walks this small state machine (every pair written down):

    (absent,      receive)  -> in_progress, verdict NEW          the caller processes it
    (in_progress, receive)  -> in_progress, verdict IN_PROGRESS  drop silently; the NAS
                                                                 retransmits again later
    (answered,    receive)  -> answered,    verdict ANSWERED     resend ``verdict.reply``
    (any,         answer)   -> answered (reply bytes stored)
    (any,         forget)   -> absent      no reply was sent (e.g. accounting that could not
                                           be stored): the next retransmission is NEW again
    (any,         window_s elapses since the last transition) -> absent

The window restarts when a request is answered, so a reply stays available for ``window_s``
after it was sent.  An entry still ``in_progress`` after ``window_s`` expires too (a handler
that never answers must not swallow retransmissions for ever); the next retransmission is
then processed again, which the idempotent handlers behind us tolerate.

Memory is bounded: at most ``max_entries`` keys, the oldest one evicted first (counted in
``evictions`` for a metric).  Every operation is O(1) amortised: an ``OrderedDict`` kept in
expiry order, pruned from its head.  Time comes from an injected clock (a callable returning
monotonic seconds, or anything with ``seconds()`` such as the reactor or, in tests,
``twisted.internet.task.Clock``).  Not thread-safe: it lives on the reactor thread.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_WINDOW_S",
    "EXPIRE_STEP",
    "ReplyCache",
    "RequestKey",
    "State",
    "Verdict",
]

DEFAULT_WINDOW_S = 30.0
DEFAULT_MAX_ENTRIES = 100_000
EXPIRE_STEP = 256
"""Expired entries removed per call at most. After a lull the whole window expires at once
(100,000 entries at 5,000/s); removing them in one go stalled the reactor for tens of
milliseconds, the p99 of the requests behind it. Steps of this size drain the backlog at up
to 512 entries per request, far faster than entries arrive; an expired entry still present is
never answered from (``receive`` checks its expiry)."""


class SecondsClock(Protocol):
    """The part of Twisted's ``IReactorTime`` we use."""

    def seconds(self) -> float: ...


class RequestKey(NamedTuple):
    """What makes two datagrams the same request (RFC 5080 §2.2.2), plus the Code."""

    src_ip: str
    src_port: int
    code: int
    identifier: int
    authenticator: bytes


class State(enum.StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with an arriving request: process it, drop it, or resend ``reply``."""

    state: State
    reply: bytes | None = None


_NEW = Verdict(State.NEW)
_IN_PROGRESS = Verdict(State.IN_PROGRESS)


_Entry = tuple[float, bytes | None]
"""(expiry, reply); a reply of None means the request is still in progress.

Keys and entries are stored as plain tuples of atoms, which CPython's collector stops
tracking: at 5,000 requests/s a 30-s window holds 150,000 entries, and as tracked objects
(named tuples, small classes) every full collection walked them all, pausing the reactor
for tens of milliseconds.
"""


class ReplyCache:
    """Requests seen within ``window_s`` seconds, and the exact bytes each was answered with."""

    def __init__(
        self,
        clock: Callable[[], float] | SecondsClock,
        window_s: float = DEFAULT_WINDOW_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s!r}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries!r}")
        seconds = getattr(clock, "seconds", None)
        if callable(seconds):
            self._now: Callable[[], float] = seconds
        elif callable(clock):
            self._now = clock
        else:
            raise TypeError(f"clock must be callable or have seconds(), got {clock!r}")
        self.window_s = float(window_s)
        self.max_entries = max_entries
        self.evictions = 0
        # Insertion order == expiry order: every (re)insertion moves the key to the end with
        # expires_at = now + window_s, and the clock is monotonic.
        self._entries: OrderedDict[RequestKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def receive(self, key: RequestKey) -> Verdict:
        """Record an arrival of ``key`` and say what to do with it.

        ``State.NEW``: process it, then call ``answer`` or ``forget``.  ``State.IN_PROGRESS``:
        drop it silently.  ``State.ANSWERED``: send ``verdict.reply`` again, unchanged.
        """
        now = self._now()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > now:
                reply = entry[1]
                return _IN_PROGRESS if reply is None else Verdict(State.ANSWERED, reply)
            del self._entries[key]  # expired, not collected yet: a new request
        self._insert(key, (now + self.window_s, None))
        return _NEW

    def answer(self, key: RequestKey, reply: bytes) -> None:
        """Store the reply sent for ``key``; retransmissions within the window get it back."""
        now = self._now()
        self._expire(now)
        self._entries.pop(key, None)
        self._insert(key, (now + self.window_s, bytes(reply)))

    def forget(self, key: RequestKey) -> None:
        """Drop ``key`` (no reply was sent): the NAS's next retransmission is processed anew."""
        self._entries.pop(key, None)

    def _insert(self, key: RequestKey, entry: _Entry) -> None:
        entries = self._entries
        while len(entries) >= self.max_entries:
            entries.popitem(last=False)
            self.evictions += 1
        entries[tuple(key)] = entry  # a plain tuple, not the named one: see _Entry

    def _expire(self, now: float) -> None:
        entries = self._entries
        for _ in range(EXPIRE_STEP):
            if not entries:
                return
            oldest = next(iter(entries.values()))
            if oldest[0] > now:
                return
            entries.popitem(last=False)
