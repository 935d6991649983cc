"""What a provisioning task asks of the network, and what its answers mean: pure functions.

A task states where the network must end up (allow with a speed profile, walled garden, deny);
:func:`steps_for` turns it into requests at each target the task reaches now: a CoA-Request or
Disconnect-Request per open RADIUS session (each to its own NAS), and block / unblock / rate
changes per switch port that billing controls. :func:`verdict` turns the answers of one try into
the task's next state. No I/O, no clock: the worker (:mod:`billing.provisioning_worker`) does
the talking and the tests check every rule here directly.

========================  ==========================================  =====================
network                   each open session                           each controlled port
========================  ==========================================  =====================
allow                     CoA with the speed profile (no profile:     unblock, then the
                          Disconnect, the next login decides)         profile's rate limit
walled_garden             CoA with the walled-garden profile          unblock
deny (or release)         Disconnect                                  block
========================  ==========================================  =====================

A session task (prepaid quota: ``session_key`` set) reaches only that session.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aaa.vendor_profiles import SpeedProfile
from billing.provisioning_outbox import AttemptRecord, PortRef, SessionRef, Work
from nms_adapters.switches import RATE_CAPABLE_DEVICE_TYPES

__all__ = [
    "TRANSIENT_ERROR_CAUSES",
    "Failure",
    "Step",
    "StepKind",
    "Verdict",
    "backoff",
    "classify",
    "due_at",
    "steps_for",
    "verdict",
]

SESSION_CONTEXT_NOT_FOUND = 503
"""RFC 5176 Error-Cause: the NAS has no such session. A Disconnect wants exactly that; a CoA's
change is then moot (the next login is authorized with the new state)."""
TRANSIENT_ERROR_CAUSES = frozenset({506})
"""Error-Causes worth trying again (506 Resources Unavailable); any other NAK is a refusal."""


class StepKind(StrEnum):
    COA = "coa"
    DISCONNECT = "disconnect"
    BLOCK = "block"
    UNBLOCK = "unblock"
    SET_RATE = "set_rate"


@dataclass(frozen=True, slots=True)
class Step:
    """One request to one target: a session (CoA, Disconnect) or a switch port."""

    kind: StepKind
    session: SessionRef | None = None
    port: PortRef | None = None
    profile: SpeedProfile | None = None
    kbps: int | None = None


def steps_for(work: Work, walled_garden: SpeedProfile) -> list[Step]:
    """The requests that bring every target of ``work`` to its desired state (see the table)."""
    network = "deny" if work.release else work.network
    steps: list[Step] = []
    for session in work.sessions:
        if network == "deny":
            steps.append(Step(StepKind.DISCONNECT, session=session))
        elif network == "walled_garden":
            steps.append(Step(StepKind.COA, session=session, profile=walled_garden))
        elif work.profile is None:
            steps.append(Step(StepKind.DISCONNECT, session=session))
        else:
            steps.append(Step(StepKind.COA, session=session, profile=work.profile))
    for port in work.ports:
        if port.device_type is None:
            continue  # a switch billing knows (Option 82) but does not control
        if network == "deny":
            steps.append(Step(StepKind.BLOCK, port=port))
            continue
        steps.append(Step(StepKind.UNBLOCK, port=port))
        if network == "allow" and work.profile is not None and port.device_type in RATE_CAPABLE_DEVICE_TYPES:
            steps.append(Step(StepKind.SET_RATE, port=port, kbps=work.profile.down_kbps))
    return steps


class Failure(StrEnum):
    """How a step failed: a refusal ends the task, silence and errors are tried again."""

    TIMEOUT = "timeout"
    ERROR = "error"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str
    outcome: str
    retry_in_s: float | None = None


def classify(record: AttemptRecord) -> Failure | None:
    """None if the attempt reached its goal, else how it failed."""
    if record.result in ("ack", "ok", "gone"):
        return None
    if record.result == "timeout":
        return Failure.TIMEOUT
    if record.result == "nak":
        return Failure.ERROR if record.error_cause in TRANSIENT_ERROR_CAUSES else Failure.REFUSED
    return Failure.ERROR


def verdict(
    outcomes: Sequence[Sequence[AttemptRecord]],
    attempt: int,
    max_attempts: int,
    backoff_s: float,
    backoff_max_s: float,
    jitter: Callable[[], float] = random.random,
) -> Verdict:
    """The task's next state from each step's attempts, one sequence per step (its last decides).

    All reached: done. A refusal (a NAK that no fallback fixed): dead at once, trying again
    would be refused again. Otherwise try again after a backoff; after the last try, unknown
    if every failure was silence (the network may have done it: the reconciler finds out),
    dead if something answered with an error.
    """
    if not outcomes:
        return Verdict("done", "nothing to reach now: no open session, no controlled port")
    failures = [records[-1] for records in outcomes if classify(records[-1]) is not None]
    if not failures:
        return Verdict("done", f"{len(outcomes)} target(s) confirmed")
    summary = "; ".join(_describe(record) for record in failures[:3])
    if len(failures) > 3:
        summary += f"; and {len(failures) - 3} more"
    kinds = {classify(record) for record in failures}
    if Failure.REFUSED in kinds:
        return Verdict("dead", f"refused: {summary}")
    if attempt >= max_attempts:
        state = "unknown" if kinds == {Failure.TIMEOUT} else "dead"
        return Verdict(state, f"after {attempt} tries: {summary}")
    delay = backoff(attempt, backoff_s, backoff_max_s, jitter)
    return Verdict("pending", f"try {attempt} failed: {summary}", delay)


def backoff(attempt: int, base_s: float, max_s: float, jitter: Callable[[], float] = random.random) -> float:
    """Seconds before try ``attempt + 1``: ``base_s`` doubling per try, capped, 0-20 % jitter added."""
    delay = min(max_s, base_s * 2 ** max(attempt - 1, 0))
    return delay * (1.0 + 0.2 * jitter())


def due_at(now: datetime, verdict_: Verdict) -> datetime | None:
    return None if verdict_.retry_in_s is None else now + timedelta(seconds=verdict_.retry_in_s)


def _describe(record: AttemptRecord) -> str:
    text = f"{record.target}: {record.action} {record.result}"
    if record.error_cause is not None:
        text += f" (Error-Cause {record.error_cause})"
    if record.detail:
        text += f": {record.detail}"
    return text
