"""The volume allowance of a billing period, what happens past it, and how usage consumes it.

Why apart: the allowance is the one piece of rating with memory across ratings (the volume used
so far in the period), and what follows it (charge, throttle or block) drives the network.

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from rating.time_bands import BandSegment, allocate, micros
from rating.traffic import INTERNET, Direction, TrafficClass, check_direction
from rating.usage_checks import UsageError, check_int, check_name, freeze_sequence
from rating.usage_prices import UsagePrice

__all__ = [
    "Allowance",
    "AllowanceUse",
    "Block",
    "Overage",
    "OverageAction",
    "OverageCharge",
    "Throttle",
    "overage_action",
    "use_allowance",
]


@dataclass(frozen=True, slots=True)
class OverageCharge:
    """Past the allowance, counted traffic is charged with this price list (same shape as the plan's)."""

    prices: tuple[UsagePrice, ...]

    def __post_init__(self) -> None:
        prices = freeze_sequence(self, "prices", UsagePrice, "overage prices")
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
        check_name(self.speed_profile, "throttle: speed_profile")


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
        check_int(self.included_bytes, "allowance: included_bytes", minimum=0)
        if not isinstance(self.overage, OverageCharge | Throttle | Block):
            raise UsageError(
                f"allowance: overage: expected OverageCharge, Throttle or Block, got {self.overage!r}"
            )
        if isinstance(self.classes, str) or isinstance(self.directions, str):
            raise UsageError("allowance: classes and directions: expected sets, got a single string")
        classes = frozenset(check_name(name, "allowance: classes") for name in self.classes)
        directions = frozenset(check_direction(value, "allowance: directions") for value in self.directions)
        if not classes or not directions:
            raise UsageError("allowance: expected at least one class and one direction to count")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "directions", directions)

    def counts(self, traffic_class: TrafficClass, direction: Direction) -> bool:
        """Whether traffic of this class and direction uses the allowance (outside free bands)."""
        return traffic_class in self.classes and direction in self.directions


@dataclass(frozen=True, slots=True)
class AllowanceUse:
    """How the counted traffic of one band segment uses the allowance.

    ``included`` holds, per counted stream, the octets inside the allowance (the rest is past it);
    ``exhausted_at`` is the instant the allowance ran out within the segment, or ``None``.
    """

    included: tuple[int, ...]
    exhausted_at: datetime | None


def use_allowance(
    allowance: Allowance, used: int, segment: BandSegment, octets: Sequence[int]
) -> AllowanceUse:
    """Share what is left of ``allowance`` (``used`` so far) over the counted ``octets`` of ``segment``."""
    volume = sum(octets)
    remaining = max(allowance.included_bytes - used, 0)
    exhausted_at = None
    if 0 < remaining <= volume:
        exhausted_at = segment.start + timedelta(
            microseconds=-(-micros(segment.duration) * remaining // volume)
        )
    return AllowanceUse(allocate(min(remaining, volume), octets), exhausted_at)


def overage_action(allowance: Allowance | None, used: int) -> OverageAction | None:
    """The network action the tariff asks for once ``used`` octets have counted: a level, not an edge."""
    if allowance is None or isinstance(allowance.overage, OverageCharge):
        return None
    return allowance.overage if used >= allowance.included_bytes else None
