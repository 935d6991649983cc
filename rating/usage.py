"""Usage rating of an Internet tariff: measured traffic and online time in, priced lines and one total out.

What: given the usage deltas RADIUS accounting recorded for a service (octets per traffic class and
direction, session seconds, each between two instants), the tariff's :class:`UsagePlan`, the
operator's time zone and how much of the period's allowance was already used, :func:`rate_usage`
says what the usage costs, line by line, how much allowance it used, whether the allowance ran out
(and at which instant) and what the tariff then asks for (throttle or block). It decides; it never
acts.

Why here and this way: rating is the pure core (DESIGN.md, "Layers"): no I/O, no database and no
clock (time arrives inside the deltas), so the same function serves interim rating, invoices and
dry runs, and is tested exhaustively. Money is ``Decimal`` (floats are refused) and is rounded
once, with the tariff's own :class:`~rating.money.RoundingRule` (STYLE.md, "Rating and billing").

The rules that decide money, each also stated where it is implemented:

* **Direction.** ``IN`` is download, octets sent *to* the subscriber: RADIUS ``Acct-Output-Octets``
  (plus ``Acct-Output-Gigawords`` x 2**32), because the NAS counts from its own port's point of
  view. ``OUT`` is upload: ``Acct-Input-Octets`` / ``Acct-Input-Gigawords``.
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
* **Increments** are applied once per line of a rating: the volume (or time) of one class,
  direction, band and kind, summed over all the deltas given, is rounded up to the increment.
  How a session was cut into interim deltas therefore does not change what it costs; rating two
  halves in two separate calls can cost at most one increment more per line.
* **One rounding point.** Line amounts are exact (``unit_price x billable / unit``); the total is
  their exact sum rounded once with the tariff's rule (:meth:`RoundingRule.apply_fraction`, so a
  per-second share of a per-minute price, 0.01/60, is not rounded before the rule rounds).
* **Allowance.** Counted traffic (the allowance's classes and directions, outside free bands) uses
  the allowance in delta order (deltas are sorted, so their order in the input never matters) and,
  within a delta, in time order. Traffic inside the allowance is ``INCLUDED`` (not charged). In the
  piece of a delta where the allowance runs out, the remaining allowance is shared over the counted
  streams of that piece by largest remainder, and the instant it ran out is interpolated at the
  constant rate (rounded up to the microsecond). Past the allowance, counted traffic is charged at
  the overage price list if the policy is :class:`OverageCharge`, and at the plan's own price
  otherwise (:class:`Throttle`, :class:`Block`: usually zero, since the action is the consequence).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal
from enum import StrEnum
from fractions import Fraction
from itertools import combinations, pairwise
from types import MappingProxyType
from typing import Final, Generic, TypeAlias, TypeVar
from zoneinfo import ZoneInfo

from rating.money import RoundingRule

__all__ = [
    "GB",
    "GIB",
    "INTERNET",
    "MB",
    "MIB",
    "RADIUS_GIGAWORDS_ATTRIBUTE",
    "RADIUS_OCTETS_ATTRIBUTE",
    "Allowance",
    "BandSegment",
    "Block",
    "ClassOctets",
    "Direction",
    "LineKind",
    "Measure",
    "Overage",
    "OverageAction",
    "OverageCharge",
    "Throttle",
    "TimeBand",
    "TimePrice",
    "TrafficClass",
    "UsageDelta",
    "UsageError",
    "UsageLine",
    "UsagePlan",
    "UsagePrice",
    "UsageRating",
    "allocate",
    "band_segments",
    "rate_usage",
]

TrafficClass: TypeAlias = str
"""Name of a traffic class ("internet", "local", "peering" ...), as the traffic classifier reports it."""

INTERNET: Final[TrafficClass] = "internet"
"""The default traffic class."""

MB: Final = 1_000_000
MIB: Final = 1 << 20
GB: Final = 1_000_000_000
GIB: Final = 1 << 30

_MICROS_PER_SECOND: Final = 1_000_000
_MICROS_PER_DAY: Final = 86_400 * _MICROS_PER_SECOND
_MICROS_PER_WEEK: Final = 7 * _MICROS_PER_DAY
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_SECONDS_PER_MINUTE: Final = 60
_WIDE = Context(prec=60)
"""Room for exact products of prices and volumes (the default 28 digits could round them)."""
_SHOWN = Context(prec=30)
"""Digits shown for a line amount that has no finite decimal form (0.01 x 1 s / 60 s)."""


class UsageError(ValueError):
    """Usage, a usage plan or a rating argument that is not valid; the message names what and where."""


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


class Measure(StrEnum):
    """What a line counts."""

    VOLUME = "volume"
    """Octets of one traffic class and direction."""
    TIME = "time"
    """Seconds of session time."""


class LineKind(StrEnum):
    """Why a line costs what it costs."""

    FREE = "free"
    """In a free band: not charged, not counted against the allowance."""
    INCLUDED = "included"
    """Within the allowance: counted, not charged."""
    CHARGED = "charged"
    """Charged at the plan's own price."""
    OVERAGE = "overage"
    """Past the allowance, charged at the overage price list."""


_KIND_ORDER: Final = {kind: position for position, kind in enumerate(LineKind)}


# -- checks shared by the constructors -------------------------------------------------------------


def _check_int(value: object, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{field}: expected an integer, got a {type(value).__name__} ({value!r})")
    if value < minimum:
        raise UsageError(f"{field}: expected at least {minimum}, got {value}")
    return value


def _check_price(value: object, field: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise UsageError(f"{field}: expected a Decimal, got a {type(value).__name__} ({value!r})")
    if not value.is_finite() or value < 0:
        raise UsageError(f"{field}: expected a finite amount of at least 0, got {value}")
    return value


def _check_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise UsageError(f"{field}: expected a non-empty name without surrounding spaces, got {value!r}")
    return value


def _check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{field}: expected true or false, got {value!r}")
    return value


def _check_instant(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise UsageError(f"{field}: expected an aware UTC datetime, got a {type(value).__name__}")
    if value.utcoffset() is None:
        raise UsageError(f"{field}: expected an aware UTC datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _check_direction(value: object, field: str) -> Direction:
    try:
        return Direction(value)
    except ValueError:
        raise UsageError(f"{field}: expected one of {', '.join(Direction)}, got {value!r}") from None


def _freeze(obj: object, attribute: str, kind: type, field: str) -> tuple:
    """Store a sequence attribute as a tuple of ``kind`` (a frozen dataclass stays hashable)."""
    value = getattr(obj, attribute)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise UsageError(f"{field}: expected a sequence of {kind.__name__}, got {value!r}")
    items = tuple(value)
    for position, item in enumerate(items):
        if not isinstance(item, kind):
            raise UsageError(f"{field}[{position}]: expected a {kind.__name__}, got {item!r}")
    object.__setattr__(obj, attribute, items)
    return items


def _micros(span: timedelta) -> int:
    return span // _ONE_MICROSECOND


def _micros_of_day(moment: time) -> int:
    seconds = (moment.hour * 60 + moment.minute) * 60 + moment.second
    return seconds * _MICROS_PER_SECOND + moment.microsecond


# -- time bands -------------------------------------------------------------------------------------


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
        _check_name(self.name, "time band name")
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
                _check_int(day, f"time band {self.name!r}: days", minimum=0)
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


def _bands_overlap(one: TimeBand, other: TimeBand) -> bool:
    return any(
        a_start < b_end and b_start < a_end
        for a_start, a_end in one.weekly_intervals()
        for b_start, b_end in other.weekly_intervals()
    )


def _bands_cover_week(bands: Iterable[TimeBand]) -> bool:
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
    start = _check_instant(start, "start")
    end = _check_instant(end, "end")
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
    _check_int(total, "total to allocate", minimum=0)
    if not weights:
        raise UsageError("weights: expected at least one weight")
    for weight in weights:
        _check_int(weight, "weight", minimum=0)
    whole = sum(weights)
    if whole == 0:
        return (total, *(0 for _ in weights[1:]))
    shares = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    left = total - sum(shares)
    for position in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        shares[position] += 1
    return tuple(shares)


# -- prices and the plan ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UsagePrice:
    """The price of one traffic class and direction in one band (``band=None``: at any other time).

    ``price`` is per ``unit_bytes`` (``MB`` = 10**6 or ``MIB`` = 2**20 ...). Before pricing, a
    line's volume is rounded up to a multiple of ``increment_units`` units. A ``free`` band is
    neither charged nor counted against the allowance (its ``price`` must be 0).
    """

    traffic_class: TrafficClass = INTERNET
    direction: Direction
    band: str | None = None
    price: Decimal = Decimal(0)
    unit_bytes: int = MB
    increment_units: int = 1
    free: bool = False

    def __post_init__(self) -> None:
        _check_name(self.traffic_class, "usage price: traffic_class")
        object.__setattr__(self, "direction", _check_direction(self.direction, "usage price: direction"))
        where = f"usage price {self.label}"
        if self.band is not None:
            _check_name(self.band, f"{where}: band")
        _check_price(self.price, f"{where}: price")
        _check_int(self.unit_bytes, f"{where}: unit_bytes", minimum=1)
        _check_int(self.increment_units, f"{where}: increment_units", minimum=1)
        if _check_bool(self.free, f"{where}: free") and self.price != 0:
            raise UsageError(f"{where}: a free band has no price, got price {self.price}")

    @property
    def label(self) -> str:
        """``class/direction/band`` for messages."""
        return f"{self.traffic_class}/{self.direction}/{self.band or '(any time)'}"

    @property
    def increment_bytes(self) -> int:
        """Volume is billed in multiples of this many bytes."""
        return self.unit_bytes * self.increment_units


@dataclass(frozen=True, slots=True, kw_only=True)
class TimePrice:
    """The price of a minute of session time in one band (``band=None``: at any other time).

    Time is billed in multiples of ``increment_seconds`` (60 for "60/60", 1 for "1/1") and priced
    at ``price_per_minute`` per 60 seconds. A ``free`` band is not charged (its price must be 0).
    """

    band: str | None = None
    price_per_minute: Decimal = Decimal(0)
    increment_seconds: int = 60
    free: bool = False

    def __post_init__(self) -> None:
        where = f"time price {self.label}"
        if self.band is not None:
            _check_name(self.band, "time price: band")
        _check_price(self.price_per_minute, f"{where}: price_per_minute")
        _check_int(self.increment_seconds, f"{where}: increment_seconds", minimum=1)
        if _check_bool(self.free, f"{where}: free") and self.price_per_minute != 0:
            raise UsageError(f"{where}: a free band has no price, got price {self.price_per_minute}")

    @property
    def label(self) -> str:
        """``time/band`` for messages."""
        return f"time/{self.band or '(any time)'}"


@dataclass(frozen=True, slots=True)
class OverageCharge:
    """Past the allowance, counted traffic is charged with this price list (same shape as the plan's)."""

    prices: tuple[UsagePrice, ...]

    def __post_init__(self) -> None:
        prices = _freeze(self, "prices", UsagePrice, "overage prices")
        if not prices:
            raise UsageError("overage prices: expected at least one price")
        for price in prices:
            if price.free:
                raise UsageError(f"overage price {price.label}: cannot be free (use price 0)")


@dataclass(frozen=True, slots=True)
class Throttle:
    """Past the allowance, the service drops to the named speed profile."""

    speed_profile: str

    def __post_init__(self) -> None:
        _check_name(self.speed_profile, "throttle: speed_profile")


@dataclass(frozen=True, slots=True)
class Block:
    """Past the allowance, the service is blocked until the next period (or a top-up)."""


Overage: TypeAlias = OverageCharge | Throttle | Block
"""What a tariff does once its allowance is used up."""

OverageAction: TypeAlias = Throttle | Block
"""What a rating asks the caller to do to the network (the caller acts, the rating does not)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Allowance:
    """Volume included per billing period, and what happens past it.

    Traffic of a class in ``classes`` and a direction in ``directions`` counts, except in a free
    band. ``included_bytes`` may be 0 (everything is overage).
    """

    included_bytes: int
    overage: Overage
    classes: frozenset[TrafficClass] = frozenset({INTERNET})
    directions: frozenset[Direction] = frozenset(Direction)

    def __post_init__(self) -> None:
        _check_int(self.included_bytes, "allowance: included_bytes", minimum=0)
        if not isinstance(self.overage, OverageCharge | Throttle | Block):
            raise UsageError(
                f"allowance: overage: expected OverageCharge, Throttle or Block, got {self.overage!r}"
            )
        if isinstance(self.classes, str) or isinstance(self.directions, str):
            raise UsageError("allowance: classes and directions: expected sets, got a single string")
        classes = frozenset(_check_name(name, "allowance: classes") for name in self.classes)
        directions = frozenset(_check_direction(value, "allowance: directions") for value in self.directions)
        if not classes or not directions:
            raise UsageError("allowance: expected at least one class and one direction to count")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "directions", directions)

    def counts(self, traffic_class: TrafficClass, direction: Direction) -> bool:
        """Whether traffic of this class and direction uses the allowance (outside free bands)."""
        return traffic_class in self.classes and direction in self.directions


P = TypeVar("P", UsagePrice, TimePrice)


@dataclass(frozen=True, slots=True)
class _Schedule(Generic[P]):
    """The prices of one class and direction (or of time): at most one per instant."""

    by_band: Mapping[str, P]
    anytime: P | None

    def pick(self, bands: frozenset[str]) -> P:
        for name in bands:
            if name in self.by_band:
                return self.by_band[name]
        if self.anytime is None:  # unreachable for a validated plan: its bands cover the week
            raise UsageError(f"no price for the bands {sorted(bands)}")
        return self.anytime


def _schedule(prices: Sequence[P], bands: Mapping[str, TimeBand], what: str) -> _Schedule[P]:
    """Index the prices of one schedule, refusing unknown bands, duplicates, overlaps and gaps."""
    by_band: dict[str, P] = {}
    anytime: P | None = None
    for price in prices:
        if price.band is None:
            if anytime is not None:
                raise UsageError(f"{what}: two prices for any time ({price.label})")
            anytime = price
        elif price.band not in bands:
            raise UsageError(
                f"{price.label}: band {price.band!r} is not one of the plan's bands {sorted(bands)}"
            )
        elif price.band in by_band:
            raise UsageError(f"{what}: two prices for band {price.band!r}")
        else:
            by_band[price.band] = price
    for one, other in combinations(sorted(by_band), 2):
        if _bands_overlap(bands[one], bands[other]):
            raise UsageError(f"{what}: bands {one!r} and {other!r} overlap; one price per instant")
    if anytime is None and not _bands_cover_week([bands[name] for name in by_band]):
        raise UsageError(
            f"{what}: the bands {sorted(by_band)} leave times unpriced; add a price for any time"
        )
    return _Schedule(MappingProxyType(by_band), anytime)


def _volume_schedules(
    prices: Sequence[UsagePrice], bands: Mapping[str, TimeBand], what: str
) -> dict[tuple[TrafficClass, Direction], _Schedule[UsagePrice]]:
    grouped: dict[tuple[TrafficClass, Direction], list[UsagePrice]] = {}
    for price in prices:
        grouped.setdefault((price.traffic_class, price.direction), []).append(price)
    return {
        key: _schedule(group, bands, f"{what} {key[0]}/{key[1]}") for key, group in sorted(grouped.items())
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class UsagePlan:
    """The usage part of a tariff version: bands, volume and time prices, and an optional allowance.

    A plan rates volume when it has ``prices``, session time when it has ``time_prices``, or both.
    Every priced class is priced in both directions, and in each class and direction (and for
    time) exactly one price applies at every instant: named bands must not overlap, and either a
    ``band=None`` price covers the rest or the bands cover the whole week. Traffic of a class the
    plan does not price is rated as ``default_class`` (``None``: refused with :class:`UsageError`).
    """

    bands: tuple[TimeBand, ...] = ()
    prices: tuple[UsagePrice, ...] = ()
    time_prices: tuple[TimePrice, ...] = ()
    allowance: Allowance | None = None
    default_class: TrafficClass | None = INTERNET

    def __post_init__(self) -> None:
        bands = _freeze(self, "bands", TimeBand, "bands")
        _freeze(self, "prices", UsagePrice, "prices")
        _freeze(self, "time_prices", TimePrice, "time_prices")
        by_name = {band.name: band for band in bands}
        if len(by_name) != len(bands):
            raise UsageError(f"bands: names must be unique, got {[band.name for band in bands]}")
        if not self.prices and not self.time_prices:
            raise UsageError("usage plan: expected volume prices, time prices or both")
        volume = _volume_schedules(self.prices, by_name, "prices for")
        self._check_classes(volume)
        if self.time_prices:
            _schedule(self.time_prices, by_name, "time prices")
        if self.allowance is not None:
            self._check_allowance(self.allowance, volume, by_name)

    def _check_classes(self, volume: Mapping[tuple[TrafficClass, Direction], _Schedule[UsagePrice]]) -> None:
        classes = {traffic_class for traffic_class, _ in volume}
        for traffic_class in sorted(classes):
            for direction in Direction:
                if (traffic_class, direction) not in volume:
                    raise UsageError(f"prices for {traffic_class}: no price for direction '{direction}'")
        if self.default_class is not None:
            _check_name(self.default_class, "default_class")
            if volume and self.default_class not in classes:
                raise UsageError(
                    f"default_class: {self.default_class!r} has no prices (priced: {sorted(classes)})"
                )

    def _check_allowance(
        self,
        allowance: Allowance,
        volume: Mapping[tuple[TrafficClass, Direction], _Schedule[UsagePrice]],
        bands: Mapping[str, TimeBand],
    ) -> None:
        if not isinstance(allowance, Allowance):
            raise UsageError(f"allowance: expected an Allowance, got {allowance!r}")
        if not volume:
            raise UsageError("allowance: the plan has no volume prices to count")
        priced = {traffic_class for traffic_class, _ in volume}
        if unpriced := sorted(allowance.classes - priced):
            raise UsageError(f"allowance: classes {unpriced} have no prices (priced: {sorted(priced)})")
        if isinstance(allowance.overage, OverageCharge):
            overage = _volume_schedules(allowance.overage.prices, bands, "overage prices for")
            counted = {(c, d) for c in allowance.classes for d in allowance.directions}
            if missing := sorted(counted - set(overage)):
                raise UsageError(f"overage prices: no price for {[f'{c}/{d}' for c, d in missing]}")
            if extra := sorted(set(overage) - counted):
                raise UsageError(
                    f"overage prices: {[f'{c}/{d}' for c, d in extra]} do not count against the allowance"
                )


# -- usage in ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassOctets:
    """Octets of one traffic class in a delta: ``octets_in`` downloaded, ``octets_out`` uploaded."""

    traffic_class: TrafficClass
    octets_in: int = 0
    octets_out: int = 0

    def __post_init__(self) -> None:
        _check_name(self.traffic_class, "traffic_class")
        _check_int(self.octets_in, f"{self.traffic_class}: octets_in", minimum=0)
        _check_int(self.octets_out, f"{self.traffic_class}: octets_out", minimum=0)

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
        start = _check_instant(self.start, "usage delta: start")
        end = _check_instant(self.end, "usage delta: end")
        if end < start:
            raise UsageError(f"usage delta: end {end.isoformat()} is before start {start.isoformat()}")
        where = f"usage delta {start.isoformat()}..{end.isoformat()}"
        traffic = tuple(sorted(_freeze(self, "traffic", ClassOctets, f"{where}: traffic"), key=_class_key))
        classes = [entry.traffic_class for entry in traffic]
        if len(set(classes)) != len(classes):
            raise UsageError(f"{where}: traffic: one entry per class, got {classes}")
        _check_int(self.session_seconds, f"{where}: session_seconds", minimum=0)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "traffic", traffic)

    @property
    def label(self) -> str:
        return f"usage delta {self.start.isoformat()}..{self.end.isoformat()}"


def _class_key(entry: ClassOctets) -> str:
    return entry.traffic_class


def _delta_order(delta: UsageDelta) -> tuple:
    """A total order on deltas: the input order never matters."""
    traffic = tuple((entry.traffic_class, entry.octets_in, entry.octets_out) for entry in delta.traffic)
    return (delta.start, delta.end, delta.session_seconds, traffic)


# -- rating out -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One priced line: a class, direction, band and kind of volume, or a band of session time.

    ``quantity`` is what was measured (octets, or seconds for ``Measure.TIME``, where class and
    direction are ``None``); ``billable`` is it rounded up to the increment (0 when not charged);
    ``unit_price`` is per ``unit`` octets or seconds. ``amount`` is ``unit_price x billable / unit``,
    exact (a share of a per-minute price that has no finite decimal form shows 30 digits; the
    rating's total uses :attr:`exact_amount`). ``band`` ``None`` is the plan's any-time price.
    """

    measure: Measure
    traffic_class: TrafficClass | None
    direction: Direction | None
    band: str | None
    kind: LineKind
    quantity: int
    billable: int
    unit: int
    unit_price: Decimal
    amount: Decimal

    @property
    def exact_amount(self) -> Fraction:
        return Fraction(self.unit_price) * self.billable / self.unit

    @property
    def billable_units(self) -> Fraction:
        """Billable volume in units (whole for volume; minutes, possibly fractional, for time)."""
        return Fraction(self.billable, self.unit)


@dataclass(frozen=True, slots=True)
class UsageRating:
    """The result of :func:`rate_usage`.

    ``total`` is the sum of the line amounts rounded once with the tariff's rule.
    ``allowance_used_after`` is the counted volume of the period so far (it may exceed the
    included volume). ``allowance_exhausted_at`` is the instant the allowance ran out if it ran
    out within these deltas. ``overage_action`` is the tariff's :class:`Throttle` or
    :class:`Block` whenever the allowance is used up after this rating, also when it ran out in an
    earlier rating (a level, not an edge: a caller that lost a CoA sees it again); ``None`` without
    an allowance, before it is used up, or with :class:`OverageCharge` (charging is in the lines).
    """

    lines: tuple[UsageLine, ...]
    total: Decimal
    allowance_used_after: int
    allowance_exhausted_at: datetime | None
    overage_action: OverageAction | None


_LineKey: TypeAlias = tuple[Measure, TrafficClass | None, Direction | None, str | None, LineKind]


def _line_order(key: _LineKey) -> tuple:
    measure, traffic_class, direction, band, kind = key
    return (measure != Measure.VOLUME, traffic_class or "", direction or "", band or "", _KIND_ORDER[kind])


class _Rater:
    """Accumulates one rating: quantities per line, allowance use. Private and short-lived."""

    def __init__(self, plan: UsagePlan, tz: ZoneInfo, allowance_used: int) -> None:
        self.plan = plan
        self.tz = tz
        bands = {band.name: band for band in plan.bands}
        self.volume = _volume_schedules(plan.prices, bands, "prices for")
        self.time = _schedule(plan.time_prices, bands, "time prices") if plan.time_prices else None
        allowance = plan.allowance
        self.overage = (
            _volume_schedules(allowance.overage.prices, bands, "overage prices for")
            if allowance is not None and isinstance(allowance.overage, OverageCharge)
            else {}
        )
        self.used = allowance_used
        self.exhausted_at: datetime | None = None
        self.quantities: dict[_LineKey, int] = {}
        self.prices: dict[_LineKey, UsagePrice | TimePrice] = {}

    def add(self, delta: UsageDelta) -> None:
        segments = band_segments(delta.start, delta.end, self.plan.bands, self.tz)
        weights = [_micros(segment.duration) for segment in segments]
        streams = self._streams(delta)
        shares = [allocate(octets, weights) for _, _, octets in streams]
        seconds = allocate(delta.session_seconds, weights)
        for position, segment in enumerate(segments):
            portions = [(c, d, share[position]) for (c, d, _), share in zip(streams, shares, strict=True)]
            self._rate_volume(segment, portions)
            if self.time is not None and seconds[position]:
                price = self.time.pick(segment.bands)
                kind = LineKind.FREE if price.free else LineKind.CHARGED
                self._count((Measure.TIME, None, None, price.band, kind), seconds[position], price)

    def _streams(self, delta: UsageDelta) -> list[tuple[TrafficClass, Direction, int]]:
        if not self.volume:
            return []
        priced = {traffic_class for traffic_class, _ in self.volume}
        streams = []
        for entry in delta.traffic:
            rated_as = entry.traffic_class if entry.traffic_class in priced else self.plan.default_class
            if rated_as is None:
                raise UsageError(
                    f"{delta.label}: traffic class {entry.traffic_class!r} has no price in this plan and the "
                    f"plan has no default class (priced: {sorted(priced)})"
                )
            streams += [(rated_as, direction, entry.octets(direction)) for direction in Direction]
        return streams

    def _rate_volume(self, segment: BandSegment, portions: list[tuple[TrafficClass, Direction, int]]) -> None:
        allowance = self.plan.allowance
        counted: list[tuple[UsagePrice, int]] = []
        for traffic_class, direction, octets in portions:
            if not octets:
                continue
            price = self.volume[(traffic_class, direction)].pick(segment.bands)
            if price.free:
                self._count_volume(price, LineKind.FREE, octets)
            elif allowance is not None and allowance.counts(traffic_class, direction):
                counted.append((price, octets))
            else:
                self._count_volume(price, LineKind.CHARGED, octets)
        if counted:
            self._use_allowance(segment, counted)

    def _use_allowance(self, segment: BandSegment, counted: list[tuple[UsagePrice, int]]) -> None:
        """Counted traffic of one segment: included while the allowance lasts, then over it."""
        assert self.plan.allowance is not None
        limit = self.plan.allowance.included_bytes
        volume = sum(octets for _, octets in counted)
        remaining = max(limit - self.used, 0)
        if 0 < remaining <= volume:
            self.exhausted_at = segment.start + timedelta(
                microseconds=-(-_micros(segment.duration) * remaining // volume)
            )
        self.used += volume
        included = allocate(min(remaining, volume), [octets for _, octets in counted])
        for (price, octets), inside in zip(counted, included, strict=True):
            if inside:
                self._count_volume(price, LineKind.INCLUDED, inside)
            if octets > inside:
                self._count_over(segment, price, octets - inside)

    def _count_over(self, segment: BandSegment, price: UsagePrice, octets: int) -> None:
        if self.overage:
            overage_price = self.overage[(price.traffic_class, price.direction)].pick(segment.bands)
            self._count_volume(overage_price, LineKind.OVERAGE, octets)
        else:
            self._count_volume(price, LineKind.CHARGED, octets)

    def _count_volume(self, price: UsagePrice, kind: LineKind, octets: int) -> None:
        self._count((Measure.VOLUME, price.traffic_class, price.direction, price.band, kind), octets, price)

    def _count(self, key: _LineKey, quantity: int, price: UsagePrice | TimePrice) -> None:
        self.quantities[key] = self.quantities.get(key, 0) + quantity
        self.prices[key] = price

    def lines(self) -> tuple[UsageLine, ...]:
        return tuple(
            _line(key, self.quantities[key], self.prices[key])
            for key in sorted(self.quantities, key=_line_order)
        )

    def action(self) -> OverageAction | None:
        allowance = self.plan.allowance
        if allowance is None or isinstance(allowance.overage, OverageCharge):
            return None
        return allowance.overage if self.used >= allowance.included_bytes else None


def _line(key: _LineKey, quantity: int, price: UsagePrice | TimePrice) -> UsageLine:
    """Round a line's quantity up to its increment and price it (exactly: no money rounding here)."""
    measure, traffic_class, direction, band, kind = key
    if isinstance(price, UsagePrice):
        unit, step, unit_price = price.unit_bytes, price.increment_bytes, price.price
    else:
        unit, step, unit_price = _SECONDS_PER_MINUTE, price.increment_seconds, price.price_per_minute
    if kind in (LineKind.FREE, LineKind.INCLUDED):
        billable, unit_price = 0, Decimal(0)
    else:
        billable = -(-quantity // step) * step
    if billable % unit == 0:
        amount = _WIDE.multiply(unit_price, Decimal(billable // unit))
    else:
        amount = _SHOWN.divide(_WIDE.multiply(unit_price, Decimal(billable)), Decimal(unit))
    return UsageLine(
        measure, traffic_class, direction, band, kind, quantity, billable, unit, unit_price, amount
    )


def rate_usage(
    deltas: Iterable[UsageDelta],
    plan: UsagePlan,
    *,
    tz: ZoneInfo,
    allowance_used_before: int,
    rounding: RoundingRule,
) -> UsageRating:
    """Price ``deltas`` under ``plan``, bands read on the wall clock of ``tz``.

    ``allowance_used_before`` is the counted volume of the billing period before these deltas
    (0 at the start of a period; ignored, passed on, by a plan without allowance). The deltas are
    rated in their sorted order, so the input order never matters. The total is rounded once,
    here, with ``rounding`` (the tariff's rule), from the exact sum of the lines.
    """
    if not isinstance(plan, UsagePlan):
        raise UsageError(f"plan: expected a UsagePlan, got a {type(plan).__name__}")
    if not isinstance(tz, ZoneInfo):
        raise UsageError(f"tz: expected a zoneinfo.ZoneInfo (the operator's time zone), got {tz!r}")
    _check_int(allowance_used_before, "allowance_used_before", minimum=0)
    if not isinstance(rounding, RoundingRule):
        raise UsageError(f"rounding: expected the tariff's RoundingRule, got {rounding!r}")
    ordered = list(deltas)
    for position, delta in enumerate(ordered):
        if not isinstance(delta, UsageDelta):
            raise UsageError(f"deltas[{position}]: expected a UsageDelta, got a {type(delta).__name__}")
    rater = _Rater(plan, tz, allowance_used_before)
    for delta in sorted(ordered, key=_delta_order):
        rater.add(delta)
    lines = rater.lines()
    total = rounding.apply_fraction(sum((line.exact_amount for line in lines), start=Fraction(0)))
    return UsageRating(lines, total, rater.used, rater.exhausted_at, rater.action())
