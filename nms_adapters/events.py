"""Provisioning events for an NMS, and their CSV and JSON forms (pure functions, no I/O).

What: :class:`NetworkEvent` is one enforced (or attempted) provisioning change, as the outbox
worker reports it; :func:`events_to_json` / :func:`events_to_csv` render a batch, and
:func:`events_from_json` / :func:`events_from_csv` read one back (receivers, tests).

Why pure and fixed: the text is an interface other people's code parses, so the format is
stable and documented (README "NMS export"): fields always in :data:`FIELDS` order, times ISO-8601
in UTC with microseconds and a ``Z`` (``2026-12-03T15:45:15.000000Z``), ``targets`` a list in
JSON and ``;``-joined in CSV (a ``%`` or ``;`` inside a target written ``%25`` / ``%3B``, so any
name survives), a missing value ``null`` in JSON and empty in CSV. The JSON document
is ``{"version": 1, "events": [...]}`` (compact, UTF-8); CSV is RFC 4180 (CRLF line ends, quoting
only where needed) with exactly one header line. Golden strings in the tests pin both.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

__all__ = [
    "ACTIONS",
    "FIELDS",
    "JSON_VERSION",
    "OUTCOMES",
    "NetworkEvent",
    "events_from_csv",
    "events_from_json",
    "events_to_csv",
    "events_to_json",
    "format_time",
    "parse_time",
]

FIELDS: tuple[str, ...] = (
    "task_id",
    "service_id",
    "account",
    "action",
    "speed_profile",
    "outcome",
    "at",
    "targets",
)
"""The field order of every serialisation (JSON keys, CSV columns)."""

ACTIONS: tuple[str, ...] = ("allow", "walled_garden", "deny", "throttle", "release")
"""The actions known today (documentation; not enforced, so a new action needs no change here)."""
OUTCOMES: tuple[str, ...] = ("done", "unknown", "dead")
"""The outcomes known today (documentation; not enforced)."""
JSON_VERSION = 1
TARGET_SEPARATOR = ";"


@dataclass(frozen=True)
class NetworkEvent:
    """One enforced (or attempted) provisioning change (interfaces section C).

    ``at`` must carry a time zone (it is rendered in UTC); ``targets`` name what was touched,
    e.g. ``"nas:bras1"``, ``"switch:sw1:Gi0/3"``.
    """

    task_id: int
    service_id: int
    account: str | None
    action: str
    speed_profile: str | None
    outcome: str
    at: datetime
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"task {self.task_id}: at={self.at!r} has no time zone")
        if not self.action or not self.outcome:
            raise ValueError(f"task {self.task_id}: action and outcome must not be empty")
        if not isinstance(self.targets, tuple):
            object.__setattr__(self, "targets", tuple(self.targets))


def format_time(at: datetime) -> str:
    """``at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width: sorts as text, parses anywhere)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with an offset or ``Z`` (as :func:`format_time` writes), as an aware datetime."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if at.tzinfo is None:
        raise ValueError(f"{text!r}: no time zone")
    return at.astimezone(UTC)


def _csv_target(target: str) -> str:
    return target.replace("%", "%25").replace(TARGET_SEPARATOR, "%3B")


def _as_dict(event: NetworkEvent) -> dict[str, Any]:
    return {
        "task_id": event.task_id,
        "service_id": event.service_id,
        "account": event.account,
        "action": event.action,
        "speed_profile": event.speed_profile,
        "outcome": event.outcome,
        "at": format_time(event.at),
        "targets": list(event.targets),
    }


def events_to_json(events: Sequence[NetworkEvent]) -> bytes:
    """The batch as the JSON document ``{"version": 1, "events": [...]}``, compact UTF-8."""
    document = {"version": JSON_VERSION, "events": [_as_dict(e) for e in events]}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def events_to_csv(events: Sequence[NetworkEvent]) -> bytes:
    """The batch as RFC 4180 CSV, UTF-8: one header line, then one line per event."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for event in events:
        row = _as_dict(event)
        row["targets"] = TARGET_SEPARATOR.join(_csv_target(t) for t in event.targets)
        writer.writerow("" if row[f] is None else row[f] for f in FIELDS)
    return out.getvalue().encode()


def _event(row: dict[str, Any]) -> NetworkEvent:
    return NetworkEvent(
        task_id=int(row["task_id"]),
        service_id=int(row["service_id"]),
        account=row["account"],
        action=row["action"],
        speed_profile=row["speed_profile"],
        outcome=row["outcome"],
        at=parse_time(row["at"]),
        targets=tuple(row["targets"]),
    )


def events_from_json(data: bytes | str) -> list[NetworkEvent]:
    """Read a document :func:`events_to_json` wrote (``ValueError``/``KeyError`` if it is not one)."""
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("version") != JSON_VERSION:
        raise ValueError(f"not a version {JSON_VERSION} events document")
    return [_event(row) for row in document["events"]]


def events_from_csv(data: bytes | str) -> list[NetworkEvent]:
    """Read a file :func:`events_to_csv` wrote; empty cells of account/speed_profile are ``None``."""
    text = data.decode() if isinstance(data, bytes) else data
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if tuple(reader.fieldnames or ()) != FIELDS:
        raise ValueError(f"CSV header is {reader.fieldnames}, expected {list(FIELDS)}")
    rows: Iterable[dict[str, str]] = reader
    return [
        _event(
            {
                **row,
                "account": row["account"] or None,
                "speed_profile": row["speed_profile"] or None,
                "targets": [unquote(t) for t in row["targets"].split(TARGET_SEPARATOR)]
                if row["targets"]
                else [],
            }
        )
        for row in rows
    ]
