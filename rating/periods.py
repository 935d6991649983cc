"""Billing periods as explicit half-open ``[start, end)`` intervals of local calendar dates.

Why: recurring fees are charged per period, and every off-by-one in billing comes from hidden
period maths (STYLE.md). Here a period is a value with a start and an end, never a month number
or a "days left" integer, and the end is exclusive: January is ``[2024-01-01, 2024-02-01)``.

Dates are *local calendar dates* in the operator's time zone. A daily fee is per calendar day,
so a DST change (a 23 h or 25 h day) never changes it; :func:`local_day_bounds` gives the UTC
instants of a local day for the code that must match timestamps (usage, sessions) to days.

Anchors: a monthly period starts on ``anchor_day`` (1..28) of every month; an annual period on
``anchor_day`` of ``anchor_month`` every year. Days 29..31 are refused as anchors because they
do not exist in every month: subscriptions starting then are anchored on the 28th or the 1st by
policy, outside this module. Pure: no I/O, no clock (the day is always a parameter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

MAX_ANCHOR_DAY = 28
"""Last day of month usable as an anchor: the last one every month has."""


class PeriodError(ValueError):
    """An invalid period or anchor (empty interval, datetime instead of date, anchor out of range)."""


class Period(StrEnum):
    """How long a billing period is."""

    DAILY = "daily"
    MONTHLY = "monthly"
    ANNUAL = "annual"


class ProrationRule(StrEnum):
    """How a fee is split when a service is active for part of a period (see ``rating.proration``)."""

    ACTUAL_DAYS = "actual_days"
    """By calendar days: 28..31 for a month, 365/366 for a year."""
    THIRTY_DAY_MONTH = "thirty_day_month"
    """Every month counts 30 days (a 31st counts 0, February's last day makes up the rest)."""
    NONE = "none"
    """The whole fee for any part of a period."""


class BillingMode(StrEnum):
    """Whether a period's fee is charged at its start (prepaid) or after its end (postpaid)."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """The local calendar days ``[start, end)``: ``start`` included, ``end`` excluded, never empty."""

    start: date
    end: date

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, datetime) or not isinstance(value, date):
                raise PeriodError(f"period {name}: expected a calendar date, got {value!r}")
        if self.start >= self.end:
            raise PeriodError(f"empty period: start {self.start} must be before end {self.end}")

    def __str__(self) -> str:
        return f"[{self.start}, {self.end})"

    def contains(self, day: date) -> bool:
        """Whether the local calendar ``day`` lies in this period."""
        return self.start <= day < self.end

    def covers(self, other: BillingPeriod) -> bool:
        """Whether ``other`` lies entirely within this period."""
        return self.start <= other.start and other.end <= self.end

    def intersection(self, other: BillingPeriod) -> BillingPeriod | None:
        """The days in both periods, or ``None`` when they do not overlap."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return BillingPeriod(start, end) if start < end else None


def days_in(billing_period: BillingPeriod) -> int:
    """Number of calendar days in ``billing_period`` (its end excluded)."""
    return (billing_period.end - billing_period.start).days


def period_containing(
    period: Period, day: date, *, anchor_day: int = 1, anchor_month: int = 1
) -> BillingPeriod:
    """The billing period of kind ``period`` that contains the local calendar ``day``.

    ``anchor_day`` (1..28) is the day of month a monthly or annual period starts on;
    ``anchor_month`` (1..12) the month an annual period starts in. Anchors that do not apply
    to ``period`` (both for daily, the month for monthly) are ignored but must still be valid.
    """
    _check_anchor(anchor_day, anchor_month)
    day = _as_date(day, "day")
    match Period(period):
        case Period.DAILY:
            return BillingPeriod(day, day + timedelta(days=1))
        case Period.MONTHLY:
            start = date(day.year, day.month, anchor_day)
            if day < start:
                start = _add_months(start, -1)
            return BillingPeriod(start, _add_months(start, 1))
        case Period.ANNUAL:
            start = date(day.year, anchor_month, anchor_day)
            if day < start:
                start = start.replace(year=start.year - 1)
            return BillingPeriod(start, start.replace(year=start.year + 1))


def next_period(period: Period, current: BillingPeriod) -> BillingPeriod:
    """The period of kind ``period`` right after ``current``, keeping its anchor.

    ``current`` must be a whole period of that kind (as :func:`period_containing` returns);
    the anchor is read from its start.
    """
    period = Period(period)
    start = current.start
    anchors = {} if period is Period.DAILY else {"anchor_day": start.day, "anchor_month": start.month}
    anchorable = not anchors or start.day <= MAX_ANCHOR_DAY
    if not anchorable or current != period_containing(period, start, **anchors):
        raise PeriodError(f"{current} is not a whole {period} period with an anchor day 1..28")
    return period_containing(period, current.end, **anchors)


def periods_between(
    period: Period, start: date, end: date, *, anchor_day: int = 1, anchor_month: int = 1
) -> list[BillingPeriod]:
    """The whole billing periods of kind ``period`` that overlap the days ``[start, end)``, in order.

    The first may begin before ``start`` and the last end after ``end``: clip them with
    :meth:`BillingPeriod.intersection` to get the active part of each.
    """
    span = BillingPeriod(start, end)
    current = period_containing(period, span.start, anchor_day=anchor_day, anchor_month=anchor_month)
    periods = [current]
    while current.end < span.end:
        current = period_containing(period, current.end, anchor_day=anchor_day, anchor_month=anchor_month)
        periods.append(current)
    return periods


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The aware UTC instants ``[start, end)`` of the local calendar ``day`` in ``tz``.

    The span is 24 h except on DST change days (23 h in spring, 25 h in autumn in Europe). A
    local midnight skipped by a DST jump maps to the instant the day really starts.
    """
    day = _as_date(day, "day")
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The local calendar date in ``tz`` of an aware ``instant`` (naive datetimes are refused)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise PeriodError(f"instant: expected an aware datetime, got naive {instant.isoformat()}")
    return instant.astimezone(tz).date()


def _check_anchor(anchor_day: int, anchor_month: int) -> None:
    if not _is_int_in(anchor_day, 1, MAX_ANCHOR_DAY):
        raise PeriodError(f"anchor_day: expected 1..{MAX_ANCHOR_DAY}, got {anchor_day!r}")
    if not _is_int_in(anchor_month, 1, 12):
        raise PeriodError(f"anchor_month: expected 1..12, got {anchor_month!r}")


def _is_int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _as_date(value: date, name: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise PeriodError(f"{name}: expected a calendar date, got {value!r}")
    return value


def _add_months(day: date, months: int) -> date:
    """``day`` moved by whole months; only called with day-of-month <= 28, which every month has."""
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1)
