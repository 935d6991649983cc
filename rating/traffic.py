"""What usage rating is given: traffic classes, directions, octet units and the usage deltas.

A :class:`UsageDelta` is what RADIUS accounting recorded for a service between two instants:
octets per traffic class and direction (:class:`ClassOctets`) and session seconds. These words
are shared by every usage module and by the callers that build deltas (the charge run, quotas);
they carry no prices.

* **Direction.** ``IN`` is download, octets sent *to* the subscriber: RADIUS ``Acct-Output-Octets``
  (plus ``Acct-Output-Gigawords`` x 2**32), because the NAS counts from its own port's point of
  view. ``OUT`` is upload: ``Acct-Input-Octets`` / ``Acct-Input-Gigawords``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeAlias

from rating.usage_checks import UsageError, check_instant, check_int, check_name, freeze_sequence

__all__ = [
    "GB",
    "GIB",
    "INTERNET",
    "MB",
    "MIB",
    "RADIUS_GIGAWORDS_ATTRIBUTE",
    "RADIUS_OCTETS_ATTRIBUTE",
    "ClassOctets",
    "Direction",
    "TrafficClass",
    "UsageDelta",
]


TrafficClass: TypeAlias = str
"""Name of a traffic class ("internet", "local", "peering" ...), as the traffic classifier reports it."""

INTERNET: Final[TrafficClass] = "internet"
"""The default traffic class."""

MB: Final = 1_000_000
MIB: Final = 1 << 20
GB: Final = 1_000_000_000
GIB: Final = 1 << 30


class Direction(StrEnum):
    """Which way traffic flows, seen from the subscriber."""

    IN = "in"
    """Download, octets sent to the subscriber: RADIUS Acct-Output-Octets (the NAS's output)."""
    OUT = "out"
    """Upload, octets sent by the subscriber: RADIUS Acct-Input-Octets (the NAS's input)."""


RADIUS_OCTETS_ATTRIBUTE: Final[Mapping[Direction, str]] = MappingProxyType(
    {Direction.IN: "Acct-Output-Octets", Direction.OUT: "Acct-Input-Octets"}
)
"""The RADIUS counter (RFC 2866) that measures each direction."""

RADIUS_GIGAWORDS_ATTRIBUTE: Final[Mapping[Direction, str]] = MappingProxyType(
    {Direction.IN: "Acct-Output-Gigawords", Direction.OUT: "Acct-Input-Gigawords"}
)
"""The RADIUS counter (RFC 2869) of 2**32 wraps of :data:`RADIUS_OCTETS_ATTRIBUTE`."""


def check_direction(value: object, field: str) -> Direction:
    """``value`` as a :class:`Direction`, or :class:`UsageError` naming ``field``."""
    try:
        return Direction(value)
    except ValueError:
        raise UsageError(f"{field}: expected one of {', '.join(Direction)}, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class ClassOctets:
    """Octets of one traffic class in a delta: ``octets_in`` downloaded, ``octets_out`` uploaded."""

    traffic_class: TrafficClass
    octets_in: int = 0
    octets_out: int = 0

    def __post_init__(self) -> None:
        check_name(self.traffic_class, "traffic_class")
        check_int(self.octets_in, f"{self.traffic_class}: octets_in", minimum=0)
        check_int(self.octets_out, f"{self.traffic_class}: octets_out", minimum=0)

    def octets(self, direction: Direction) -> int:
        return self.octets_in if direction is Direction.IN else self.octets_out


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageDelta:
    """Usage measured between two accounting records of a session, over ``[start, end)``.

    ``start`` and ``end`` are aware datetimes, stored in UTC; ``traffic`` holds at most one entry
    per class (kept sorted by class); ``session_seconds`` is the session time in the interval
    (the Acct-Session-Time difference).
    """

    start: datetime
    end: datetime
    traffic: tuple[ClassOctets, ...] = ()
    session_seconds: int = 0

    def __post_init__(self) -> None:
        start = check_instant(self.start, "usage delta: start")
        end = check_instant(self.end, "usage delta: end")
        if end < start:
            raise UsageError(f"usage delta: end {end.isoformat()} is before start {start.isoformat()}")
        where = f"usage delta {start.isoformat()}..{end.isoformat()}"
        traffic = tuple(
            sorted(freeze_sequence(self, "traffic", ClassOctets, f"{where}: traffic"), key=_class_key)
        )
        classes = [entry.traffic_class for entry in traffic]
        if len(set(classes)) != len(classes):
            raise UsageError(f"{where}: traffic: one entry per class, got {classes}")
        check_int(self.session_seconds, f"{where}: session_seconds", minimum=0)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "traffic", traffic)

    @property
    def label(self) -> str:
        return f"usage delta {self.start.isoformat()}..{self.end.isoformat()}"


def _class_key(entry: ClassOctets) -> str:
    return entry.traffic_class


def delta_order(delta: UsageDelta) -> tuple:
    """A total order on deltas: the input order never matters."""
    traffic = tuple((entry.traffic_class, entry.octets_in, entry.octets_out) for entry in delta.traffic)
    return (delta.start, delta.end, delta.session_seconds, traffic)
