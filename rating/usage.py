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

The rules that decide money are each stated where they are implemented: direction in
:mod:`rating.traffic`, wall-clock time bands and splitting a delta in :mod:`rating.time_bands`, the
allowance in :mod:`rating.allowance`, one price per instant in :mod:`rating.usage_plan`, and here:

* **Increments** are applied once per line of a rating: the volume (or time) of one class,
  direction, band and kind, summed over all the deltas given, is rounded up to the increment.
  How a session was cut into interim deltas therefore does not change what it costs; rating two
  halves in two separate calls can cost at most one increment more per line.
* **One rounding point.** Line amounts are exact (``unit_price x billable / unit``); the total is
  their exact sum rounded once with the tariff's rule (:meth:`RoundingRule.apply_fraction`, so a
  per-second share of a per-minute price, 0.01/60, is not rounded before the rule rounds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo

from rating.allowance import OverageAction, OverageCharge, overage_action, use_allowance
from rating.money import RoundingRule
from rating.time_bands import BandSegment, allocate, band_segments, micros
from rating.traffic import Direction, TrafficClass, UsageDelta, delta_order
from rating.usage_checks import UsageError, check_int
from rating.usage_plan import UsagePlan
from rating.usage_prices import TimePrice, UsagePrice, price_schedule, volume_schedules

__all__ = ["LineKind", "Measure", "UsageLine", "UsageRating", "rate_usage"]


_SECONDS_PER_MINUTE: Final = 60
_WIDE = Context(prec=60)
"""Room for exact products of prices and volumes (the default 28 digits could round them)."""
_SHOWN = Context(prec=30)
"""Digits shown for a line amount that has no finite decimal form (0.01 x 1 s / 60 s)."""


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
        self.volume = volume_schedules(plan.prices, bands, "prices for")
        self.time = price_schedule(plan.time_prices, bands, "time prices") if plan.time_prices else None
        allowance = plan.allowance
        self.overage = (
            volume_schedules(allowance.overage.prices, bands, "overage prices for")
            if allowance is not None and isinstance(allowance.overage, OverageCharge)
            else {}
        )
        self.used = allowance_used
        self.exhausted_at: datetime | None = None
        self.quantities: dict[_LineKey, int] = {}
        self.prices: dict[_LineKey, UsagePrice | TimePrice] = {}

    def add(self, delta: UsageDelta) -> None:
        segments = band_segments(delta.start, delta.end, self.plan.bands, self.tz)
        weights = [micros(segment.duration) for segment in segments]
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
        use = use_allowance(self.plan.allowance, self.used, segment, [octets for _, octets in counted])
        if use.exhausted_at is not None:
            self.exhausted_at = use.exhausted_at
        self.used += sum(octets for _, octets in counted)
        for (price, octets), inside in zip(counted, use.included, strict=True):
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
        return overage_action(self.plan.allowance, self.used)


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
    check_int(allowance_used_before, "allowance_used_before", minimum=0)
    if not isinstance(rounding, RoundingRule):
        raise UsageError(f"rounding: expected the tariff's RoundingRule, got {rounding!r}")
    ordered = list(deltas)
    for position, delta in enumerate(ordered):
        if not isinstance(delta, UsageDelta):
            raise UsageError(f"deltas[{position}]: expected a UsageDelta, got a {type(delta).__name__}")
    rater = _Rater(plan, tz, allowance_used_before)
    for delta in sorted(ordered, key=delta_order):
        rater.add(delta)
    lines = rater.lines()
    total = rounding.apply_fraction(sum((line.exact_amount for line in lines), start=Fraction(0)))
    return UsageRating(lines, total, rater.used, rater.exhausted_at, rater.action())
