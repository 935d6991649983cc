"""Phases of a subscription (trial, promo, retention, regular) and which one applies on a date.

A subscription's price over time is a list of :class:`Phase` values, each lasting some days,
calendar months, years or billing periods and overriding the list price (free, percent off,
a fixed price). "14 days free, then 3 months at 50 %, then the list price" is three phases; a
retention offer granted in month 14 is a finite ``regular`` phase of 14 months followed by a
``retention`` phase. The catalog ships such lists as named :class:`Promotion` offers.

Month arithmetic (documented, because every billing system answers it differently):

- ``add_months`` keeps the day of month and clamps it to the month's last day:
  Jan 31 + 1 month = Feb 28 (Feb 29 in a leap year), Jan 31 + 2 months = Mar 31.
- Consecutive month- or year-long phases form a run whose boundaries are all computed from the
  run's first day by the total number of months so far, so a boundary clamped to Feb 28 does
  not drag the next one to the 28th: phases of 1 and 1 months from Jan 31 end on Feb 28 and
  Mar 31, exactly like one phase of 2 months would. A year is 12 months (Feb 29 + 1 year =
  Feb 28). A phase in days ends a run; days are added as they are.
- Phases are half-open ``[start, end)``: the day a phase ends is the first day of the next one.
- A duration in ``periods`` means billing periods of the tariff: daily = days, monthly =
  months, annual = years; it needs the tariff's period (``phase_at(..., period=...)``).
- After the last finite phase the subscription is in the implicit open-ended :data:`REGULAR`
  phase (list price).

Pure: no clock; ``as_of`` is a parameter.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from rating.money import STORAGE_PLACES
from rating.periods import Period

__all__ = [
    "LIST_PRICE",
    "REGULAR",
    "Duration",
    "DurationUnit",
    "Phase",
    "PhaseKind",
    "PhaseSpan",
    "PriceKind",
    "PriceOverride",
    "Promotion",
    "add_months",
    "phase_at",
    "phase_price",
    "phase_spans",
]

_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)
_HUNDRED = Decimal(100)


class PhaseKind(StrEnum):
    """Why a phase exists; only :attr:`REGULAR` means "list price, nothing special"."""

    TRIAL = "trial"
    PROMO = "promo"
    RETENTION = "retention"
    REGULAR = "regular"


class DurationUnit(StrEnum):
    """What a phase's length is counted in."""

    DAYS = "days"
    MONTHS = "months"
    YEARS = "years"
    PERIODS = "periods"
    """Billing periods of the tariff the phase applies to."""


class PriceKind(StrEnum):
    """How a phase changes the list price."""

    LIST = "list"
    FREE = "free"
    PERCENT_OFF = "percent_off"
    FIXED = "fixed"


@dataclass(frozen=True)
class Duration:
    """A phase length: ``count`` (at least 1) ``unit`` s."""

    count: int
    unit: DurationUnit

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a phase lasts at least 1 {self.unit}, got {self.count}")


@dataclass(frozen=True)
class PriceOverride:
    """The price during a phase: the list price, free, ``value`` percent off, or ``value`` flat."""

    kind: PriceKind
    value: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.value is None) != (self.kind in (PriceKind.LIST, PriceKind.FREE)):
            raise ValueError(
                f"price override {self.kind} {'takes no' if self.value is not None else 'needs a'} value"
            )
        if self.kind is PriceKind.PERCENT_OFF and self.value is not None and not 0 < self.value <= _HUNDRED:
            raise ValueError(f"percent off must be in (0, 100], got {self.value}")
        if self.kind is PriceKind.FIXED and self.value is not None and self.value < 0:
            raise ValueError(f"a fixed price cannot be negative, got {self.value}")


LIST_PRICE = PriceOverride(PriceKind.LIST)


@dataclass(frozen=True)
class Phase:
    """One stretch of a subscription; ``duration`` ``None`` means open-ended (last phase only)."""

    kind: PhaseKind
    duration: Duration | None
    price: PriceOverride = LIST_PRICE


REGULAR = Phase(PhaseKind.REGULAR, None)
"""The phase after every finite phase has ended: list price, for ever."""


@dataclass(frozen=True)
class PhaseSpan:
    """A phase placed on the calendar: ``[start, end)``, ``end`` ``None`` when open-ended."""

    phase: Phase
    start: date
    end: date | None

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True)
class Promotion:
    """A named offer: phases a new (or retained) subscription of eligible tariffs goes through.

    ``available_from`` / ``available_until`` (half-open) say when it may be granted, not how
    long it lasts (that is the phases'). ``currency`` is set when a phase has a fixed price.
    """

    code: str
    name: str
    tariffs: tuple[str, ...]
    phases: tuple[Phase, ...]
    available_from: date | None = None
    available_until: date | None = None
    currency: str | None = None

    def available_on(self, day: date) -> bool:
        """Whether the offer may be granted on ``day``."""
        after_start = self.available_from is None or self.available_from <= day
        return after_start and (self.available_until is None or day < self.available_until)


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months, the day of month clamped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


_PERIOD_UNITS = {
    Period.DAILY: DurationUnit.DAYS,
    Period.MONTHLY: DurationUnit.MONTHS,
    Period.ANNUAL: DurationUnit.YEARS,
}


def _calendar_length(duration: Duration, period: Period | None) -> tuple[DurationUnit, int]:
    """The duration as days or months (a year is 12 months; periods follow the tariff)."""
    unit, count = duration.unit, duration.count
    if unit is DurationUnit.PERIODS:
        if period is None:
            raise ValueError("a phase counted in billing periods needs the tariff's period (period=...)")
        unit = _PERIOD_UNITS[Period(period)]
    if unit is DurationUnit.YEARS:
        return DurationUnit.MONTHS, count * 12
    return unit, count


def phase_spans(
    subscription_start: date, phases: Sequence[Phase], *, period: Period | None = None
) -> tuple[PhaseSpan, ...]:
    """Place ``phases`` on the calendar from ``subscription_start`` (see the module docstring).

    The result always ends with an open-ended span: the last phase when it has no duration,
    otherwise :data:`REGULAR`. Raises ``ValueError`` if an open-ended phase is not last.
    """
    spans: list[PhaseSpan] = []
    cursor = subscription_start
    run_start: date | None = None
    run_months = 0
    for index, phase in enumerate(phases):
        if phase.duration is None:
            if index != len(phases) - 1:
                raise ValueError(f"phase {index} has no duration but is not the last phase")
            return (*spans, PhaseSpan(phase, cursor, None))
        unit, count = _calendar_length(phase.duration, period)
        if unit is DurationUnit.DAYS:
            end = cursor + timedelta(days=count)
            run_start = None
        else:
            if run_start is None:
                run_start, run_months = cursor, 0
            run_months += count
            end = add_months(run_start, run_months)
        spans.append(PhaseSpan(phase, cursor, end))
        cursor = end
    return (*spans, PhaseSpan(REGULAR, cursor, None))


def phase_at(
    subscription_start: date, phases: Sequence[Phase], as_of: date, *, period: Period | None = None
) -> Phase:
    """The phase a subscription started on ``subscription_start`` is in on ``as_of``.

    Raises ``ValueError`` when ``as_of`` is before the start (there is no phase yet).
    """
    if as_of < subscription_start:
        raise ValueError(f"as_of {as_of} is before the subscription start {subscription_start}")
    for span in phase_spans(subscription_start, phases, period=period):
        if as_of in span:
            return span.phase
    raise AssertionError("phase_spans always ends with an open-ended span")  # pragma: no cover


def phase_price(phase: Phase, list_price: Decimal) -> Decimal:
    """The price during ``phase`` of something listed at ``list_price``.

    Percent off is computed exactly and kept to the storage precision (six fraction digits,
    half up); rounding to the currency's minor unit happens later, once, on the invoice line.
    """
    override = phase.price
    if override.kind is PriceKind.LIST:
        return list_price
    if override.kind is PriceKind.FREE:
        return Decimal(0)
    assert override.value is not None
    if override.kind is PriceKind.FIXED:
        return override.value
    kept = list_price * (_HUNDRED - override.value) / _HUNDRED
    return kept.quantize(_QUANTUM, rounding=ROUND_HALF_UP)
