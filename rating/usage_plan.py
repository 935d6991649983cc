"""The usage part of a tariff version, checked whole when it is built.

Why apart: the rules that span its parts (every priced class in both directions, one price per
instant, a default class that is priced, overage prices for exactly the counted traffic) are
checked once here, so :func:`rating.usage.rate_usage` and the catalog can trust any plan they get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rating.allowance import Allowance, OverageCharge
from rating.time_bands import TimeBand
from rating.traffic import INTERNET, Direction, TrafficClass
from rating.usage_checks import UsageError, check_name, freeze_sequence
from rating.usage_prices import PriceSchedule, TimePrice, UsagePrice, price_schedule, volume_schedules

__all__ = ["UsagePlan"]


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
        bands = freeze_sequence(self, "bands", TimeBand, "bands")
        freeze_sequence(self, "prices", UsagePrice, "prices")
        freeze_sequence(self, "time_prices", TimePrice, "time_prices")
        by_name = {band.name: band for band in bands}
        if len(by_name) != len(bands):
            raise UsageError(f"bands: names must be unique, got {[band.name for band in bands]}")
        if not self.prices and not self.time_prices:
            raise UsageError("usage plan: expected volume prices, time prices or both")
        volume = volume_schedules(self.prices, by_name, "prices for")
        self._check_classes(volume)
        if self.time_prices:
            price_schedule(self.time_prices, by_name, "time prices")
        if self.allowance is not None:
            self._check_allowance(self.allowance, volume, by_name)

    def _check_classes(
        self, volume: Mapping[tuple[TrafficClass, Direction], PriceSchedule[UsagePrice]]
    ) -> None:
        classes = {traffic_class for traffic_class, _ in volume}
        for traffic_class in sorted(classes):
            for direction in Direction:
                if (traffic_class, direction) not in volume:
                    raise UsageError(f"prices for {traffic_class}: no price for direction '{direction}'")
        if self.default_class is not None:
            check_name(self.default_class, "default_class")
            if volume and self.default_class not in classes:
                raise UsageError(
                    f"default_class: {self.default_class!r} has no prices (priced: {sorted(classes)})"
                )

    def _check_allowance(
        self,
        allowance: Allowance,
        volume: Mapping[tuple[TrafficClass, Direction], PriceSchedule[UsagePrice]],
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
            overage = volume_schedules(allowance.overage.prices, bands, "overage prices for")
            counted = {(c, d) for c in allowance.classes for d in allowance.directions}
            if missing := sorted(counted - set(overage)):
                raise UsageError(f"overage prices: no price for {[f'{c}/{d}' for c, d in missing]}")
            if extra := sorted(set(overage) - counted):
                raise UsageError(
                    f"overage prices: {[f'{c}/{d}' for c, d in extra]} do not count against the allowance"
                )
