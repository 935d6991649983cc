"""Time bands on the operator's wall clock, and how a usage delta is split over them.

A tariff prices by band ("night" 01:00-07:00); :func:`band_segments` cuts an interval where the
wall clock enters or leaves a band and :func:`allocate` shares a delta's counts over the pieces.
Kept apart from prices because the hard part is time (DST, weekdays, midnight), not money.

* **Time bands are wall-clock.** An instant is in a band when the operator's clock, in ``tz``, shows
  a time inside the band's window on a day the band applies to. So a 01:00-07:00 night band lasts
  5 h of real time on the night clocks spring forward and 7 h on the night they fall back, and a
  wall-clock hour that happens twice is in the band both times.
* **Splitting a delta.** A delta's octets and seconds are taken to flow at a constant rate over its
  ``[start, end)``. The delta is cut where the wall clock enters or leaves a band (also by jumping
  at a DST change), and every count is shared over the pieces in proportion to their duration,
  in whole units, by the largest-remainder method (:func:`allocate`): each piece first gets the
  floor of its exact share, and the units still left go one each to the pieces with the largest
  remainders (ties: the earlier piece). The shares sum exactly to the input. A zero-length delta
  lies wholly in the bands of its instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Final
from zoneinfo import ZoneInfo

from rating.usage_checks import UsageError, check_instant, check_int, check_name

__all__ = ["BandSegment", "TimeBand", "allocate", "band_segments"]


_MICROS_PER_SECOND: Final = 1_000_000
_MICROS_PER_DAY: Final = 86_400 * _MICROS_PER_SECOND
_MICROS_PER_WEEK: Final = 7 * _MICROS_PER_DAY
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


def micros(span: timedelta) -> int:
    """``span`` in whole microseconds."""
    return span // _ONE_MICROSECOND


def _micros_of_day(moment: time) -> int:
    seconds = (moment.hour * 60 + moment.minute) * 60 + moment.second
    return seconds * _MICROS_PER_SECOND + moment.microsecond


@dataclass(frozen=True, slots=True)
class TimeBand:
    """A named wall-clock window of the operator's day, such as "night" 01:00-07:00.

    ``[start, end)`` is local wall-clock time; ``end`` before ``start`` wraps midnight (22:00-06:00)
    and ``start == end`` is the whole day. ``days`` (Monday 0 .. Sunday 6, as ``date.weekday()``)
    limits the days on which the window *starts*: a Friday 22:00-06:00 window runs into Saturday.
    ``None`` is every day.
    """

    name: str
    start: time
    end: time
    days: frozenset[int] | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "time band name")
        for attribute in ("start", "end"):
            value = getattr(self, attribute)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise UsageError(
                    f"time band {self.name!r}: {attribute}: expected a local time without time zone, "
                    f"got {value!r}"
                )
        if self.days is not None:
            days = frozenset(self.days) if isinstance(self.days, Iterable) else self.days
            if not isinstance(days, frozenset) or not days:
                raise UsageError(f"time band {self.name!r}: days: expected weekdays 0..6, got {self.days!r}")
            for day in days:
                check_int(day, f"time band {self.name!r}: days", minimum=0)
                if day > 6:
                    raise UsageError(f"time band {self.name!r}: days: expected 0 (Monday) .. 6, got {day}")
            object.__setattr__(self, "days", days)

    @property
    def duration(self) -> timedelta:
        """Wall-clock length of the window (real time differs on DST change days)."""
        return timedelta(microseconds=self._length())

    def _length(self) -> int:
        length = (_micros_of_day(self.end) - _micros_of_day(self.start)) % _MICROS_PER_DAY
        return length or _MICROS_PER_DAY

    def covers(self, wall: datetime) -> bool:
        """Whether the wall-clock reading ``wall`` (a local date and time) lies in this band."""
        offset = _micros_of_day(wall.time()) - _micros_of_day(self.start)
        started = wall.date() if offset >= 0 else wall.date() - timedelta(days=1)
        return offset % _MICROS_PER_DAY < self._length() and (
            self.days is None or started.weekday() in self.days
        )

    def weekly_intervals(self) -> tuple[tuple[int, int], ...]:
        """The band as half-open intervals of microseconds since Monday 00:00 of a wall-clock week."""
        intervals = []
        for day in sorted(self.days if self.days is not None else range(7)):
            first = day * _MICROS_PER_DAY + _micros_of_day(self.start)
            last = first + self._length()
            if last <= _MICROS_PER_WEEK:
                intervals.append((first, last))
            else:
                intervals += [(first, _MICROS_PER_WEEK), (0, last - _MICROS_PER_WEEK)]
        return tuple(intervals)


def bands_overlap(one: TimeBand, other: TimeBand) -> bool:
    """Whether the two bands share any instant of the wall-clock week."""
    return any(
        a_start < b_end and b_start < a_end
        for a_start, a_end in one.weekly_intervals()
        for b_start, b_end in other.weekly_intervals()
    )


def bands_cover_week(bands: Iterable[TimeBand]) -> bool:
    """Whether ``bands`` together cover every instant of the wall-clock week."""
    reached = 0
    for first, last in sorted(interval for band in bands for interval in band.weekly_intervals()):
        if first > reached:
            return False
        reached = max(reached, last)
    return reached >= _MICROS_PER_WEEK


@dataclass(frozen=True, slots=True)
class BandSegment:
    """A piece ``[start, end)`` (UTC) of a delta during which the wall clock stays in ``bands``."""

    start: datetime
    end: datetime
    bands: frozenset[str]

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def band_segments(
    start: datetime, end: datetime, bands: Sequence[TimeBand], tz: ZoneInfo
) -> tuple[BandSegment, ...]:
    """Cut ``[start, end)`` where the wall clock in ``tz`` enters or leaves any of ``bands``.

    The pieces are consecutive, cover ``[start, end)`` exactly, and neighbours differ in their set
    of bands. A zero-length interval gives one zero-length piece in the bands of its instant.
    """
    start = check_instant(start, "start")
    end = check_instant(end, "end")
    if end < start:
        raise UsageError(f"end: {end.isoformat()} is before start {start.isoformat()}")
    if start == end or not bands:
        return (BandSegment(start, end, _bands_at(start, bands, tz)),)
    inside = {cut for cut in _wall_clock_cuts(start, end, bands, tz) if start < cut < end}
    segments: list[BandSegment] = []
    for first, last in pairwise(sorted({start, end, *inside})):
        active = _bands_at(first, bands, tz)
        if segments and segments[-1].bands == active:
            segments[-1] = BandSegment(segments[-1].start, last, active)
        else:
            segments.append(BandSegment(first, last, active))
    return tuple(segments)


def _bands_at(instant: datetime, bands: Iterable[TimeBand], tz: ZoneInfo) -> frozenset[str]:
    wall = instant.astimezone(tz)
    return frozenset(band.name for band in bands if band.covers(wall))


def _wall_clock_cuts(
    start: datetime, end: datetime, bands: Sequence[TimeBand], tz: ZoneInfo
) -> Iterator[datetime]:
    """Every instant near ``[start, end]`` at which the wall clock may enter or leave a band.

    For each local day and each boundary time (band starts and ends; a band belongs to the day it
    starts, so midnight is no boundary), both readings of the time (``fold`` 0 and 1) and, when
    they differ (the time is skipped or repeated), the UTC-offset change between them. Between
    two consecutive cuts the wall clock runs continuously and crosses no boundary, so the reading
    at the start of the piece classifies all of it.
    """
    boundaries = sorted({*(band.start for band in bands), *(band.end for band in bands)})
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last_day:
        for boundary in boundaries:
            yield from _instants_showing(day, boundary, tz)
        day += timedelta(days=1)


def _instants_showing(day: date, boundary: time, tz: ZoneInfo) -> tuple[datetime, ...]:
    first = datetime.combine(day, boundary, tzinfo=tz).astimezone(UTC)
    second = datetime.combine(day, boundary, tzinfo=tz).replace(fold=1).astimezone(UTC)
    if first == second:
        return (first,)
    return (first, second, _offset_change(min(first, second), max(first, second), tz))


def _offset_change(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in ``(low, high]`` with ``high``'s UTC offset (bisection to the microsecond)."""
    before = low.astimezone(tz).utcoffset()
    while high - low > _ONE_MICROSECOND:
        middle = low + (high - low) // 2
        if middle.astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def allocate(total: int, weights: Sequence[int]) -> tuple[int, ...]:
    """Share ``total`` whole units in proportion to ``weights`` by the largest-remainder method.

    Each share is the floor or the ceiling of its exact share ``total * weight / sum(weights)``;
    the shares sum to ``total`` exactly. The units left after the floors go one each to the
    largest remainders, ties to the earlier weight. All-zero weights give everything to the first.
    """
    check_int(total, "total to allocate", minimum=0)
    if not weights:
        raise UsageError("weights: expected at least one weight")
    for weight in weights:
        check_int(weight, "weight", minimum=0)
    whole = sum(weights)
    if whole == 0:
        return (total, *(0 for _ in weights[1:]))
    shares = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    left = total - sum(shares)
    for position in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        shares[position] += 1
    return tuple(shares)
