"""Prices of usage: a volume price per class, direction and band, a time price per band.

A :class:`PriceSchedule` indexes the prices of one class and direction (or of session time) and
picks the one in force for a piece of usage from the bands it lies in. A plan's prices and an
overage price list have the same shape, so both are indexed and checked here, the same way:
unknown bands, duplicates, overlapping bands and unpriced times are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from types import MappingProxyType
from typing import Generic, TypeVar

from rating.time_bands import TimeBand, bands_cover_week, bands_overlap
from rating.traffic import INTERNET, MB, Direction, TrafficClass, check_direction
from rating.usage_checks import UsageError, check_bool, check_int, check_name, check_price

__all__ = ["PriceSchedule", "TimePrice", "UsagePrice"]


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
        check_name(self.traffic_class, "usage price: traffic_class")
        object.__setattr__(self, "direction", check_direction(self.direction, "usage price: direction"))
        where = f"usage price {self.label}"
        if self.band is not None:
            check_name(self.band, f"{where}: band")
        check_price(self.price, f"{where}: price")
        check_int(self.unit_bytes, f"{where}: unit_bytes", minimum=1)
        check_int(self.increment_units, f"{where}: increment_units", minimum=1)
        if check_bool(self.free, f"{where}: free") and self.price != 0:
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
            check_name(self.band, "time price: band")
        check_price(self.price_per_minute, f"{where}: price_per_minute")
        check_int(self.increment_seconds, f"{where}: increment_seconds", minimum=1)
        if check_bool(self.free, f"{where}: free") and self.price_per_minute != 0:
            raise UsageError(f"{where}: a free band has no price, got price {self.price_per_minute}")

    @property
    def label(self) -> str:
        """``time/band`` for messages."""
        return f"time/{self.band or '(any time)'}"


P = TypeVar("P", UsagePrice, TimePrice)


@dataclass(frozen=True, slots=True)
class PriceSchedule(Generic[P]):
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


def price_schedule(prices: Sequence[P], bands: Mapping[str, TimeBand], what: str) -> PriceSchedule[P]:
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
        if bands_overlap(bands[one], bands[other]):
            raise UsageError(f"{what}: bands {one!r} and {other!r} overlap; one price per instant")
    if anytime is None and not bands_cover_week([bands[name] for name in by_band]):
        raise UsageError(
            f"{what}: the bands {sorted(by_band)} leave times unpriced; add a price for any time"
        )
    return PriceSchedule(MappingProxyType(by_band), anytime)


def volume_schedules(
    prices: Sequence[UsagePrice], bands: Mapping[str, TimeBand], what: str
) -> dict[tuple[TrafficClass, Direction], PriceSchedule[UsagePrice]]:
    """One schedule per class and direction of ``prices`` (see :func:`price_schedule`)."""
    grouped: dict[tuple[TrafficClass, Direction], list[UsagePrice]] = {}
    for price in prices:
        grouped.setdefault((price.traffic_class, price.direction), []).append(price)
    return {
        key: price_schedule(group, bands, f"{what} {key[0]}/{key[1]}")
        for key, group in sorted(grouped.items())
    }
