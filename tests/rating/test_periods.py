"""Billing periods: half-open local-date intervals, anchored months and years, local day bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.periods import (
    BillingPeriod,
    Period,
    PeriodError,
    days_in,
    local_date,
    local_day_bounds,
    next_period,
    period_containing,
    periods_between,
)

BERLIN = ZoneInfo("Europe/Berlin")
bounded = settings(max_examples=200, deadline=None)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
anchor_days = st.integers(min_value=1, max_value=28)
anchor_months = st.integers(min_value=1, max_value=12)


def test_billing_period_includes_its_start_and_excludes_its_end() -> None:
    january = BillingPeriod(date(2024, 1, 1), date(2024, 2, 1))
    assert january.contains(date(2024, 1, 1))
    assert january.contains(date(2024, 1, 31))
    assert not january.contains(date(2024, 2, 1))
    assert str(january) == "[2024-01-01, 2024-02-01)"


@pytest.mark.parametrize(
    ("start", "end"), [(date(2024, 1, 5), date(2024, 1, 5)), (date(2024, 1, 6), date(2024, 1, 5))]
)
def test_empty_or_reversed_period_is_refused_naming_both_dates(start: date, end: date) -> None:
    with pytest.raises(PeriodError, match=rf"empty period: start {start} must be before end {end}"):
        BillingPeriod(start, end)


def test_datetime_bounds_are_refused_because_periods_are_calendar_dates() -> None:
    with pytest.raises(PeriodError, match="period start: expected a calendar date"):
        BillingPeriod(datetime(2024, 1, 1, tzinfo=UTC), date(2024, 2, 1))


def test_intersection_is_the_shared_days_or_none() -> None:
    january = BillingPeriod(date(2024, 1, 1), date(2024, 2, 1))
    span = BillingPeriod(date(2024, 1, 20), date(2024, 3, 1))
    assert january.intersection(span) == BillingPeriod(date(2024, 1, 20), date(2024, 2, 1))
    assert january.intersection(BillingPeriod(date(2024, 2, 1), date(2024, 3, 1))) is None
    assert january.covers(BillingPeriod(date(2024, 1, 20), date(2024, 2, 1)))
    assert not january.covers(span)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2023, 2, 1), date(2023, 3, 1), 28),
        (date(2024, 2, 1), date(2024, 3, 1), 29),
        (date(2100, 2, 1), date(2100, 3, 1), 28),
        (date(2024, 1, 1), date(2025, 1, 1), 366),
        (date(2025, 1, 1), date(2026, 1, 1), 365),
        (date(2024, 3, 31), date(2024, 4, 1), 1),
    ],
)
def test_days_in_counts_calendar_days_end_excluded(start: date, end: date, expected: int) -> None:
    assert days_in(BillingPeriod(start, end)) == expected


def test_daily_period_is_the_day_itself() -> None:
    assert period_containing(Period.DAILY, date(2024, 3, 31)) == BillingPeriod(
        date(2024, 3, 31), date(2024, 4, 1)
    )


@pytest.mark.parametrize(
    ("day", "anchor_day", "expected"),
    [
        (date(2024, 1, 31), 1, (date(2024, 1, 1), date(2024, 2, 1))),
        (date(2024, 1, 14), 15, (date(2023, 12, 15), date(2024, 1, 15))),
        (date(2024, 1, 15), 15, (date(2024, 1, 15), date(2024, 2, 15))),
        (date(2024, 2, 29), 28, (date(2024, 2, 28), date(2024, 3, 28))),
        (date(2023, 12, 31), 28, (date(2023, 12, 28), date(2024, 1, 28))),
    ],
)
def test_monthly_period_runs_from_anchor_day_to_anchor_day(
    day: date, anchor_day: int, expected: tuple[date, date]
) -> None:
    assert period_containing(Period.MONTHLY, day, anchor_day=anchor_day) == BillingPeriod(*expected)


@pytest.mark.parametrize(
    ("day", "anchor_month", "anchor_day", "expected"),
    [
        (date(2028, 2, 29), 1, 1, (date(2028, 1, 1), date(2029, 1, 1))),
        (date(2028, 2, 29), 3, 1, (date(2027, 3, 1), date(2028, 3, 1))),
        (date(2028, 3, 1), 3, 1, (date(2028, 3, 1), date(2029, 3, 1))),
        (date(2024, 6, 10), 6, 15, (date(2023, 6, 15), date(2024, 6, 15))),
    ],
)
def test_annual_period_runs_from_anchor_date_to_anchor_date(
    day: date, anchor_month: int, anchor_day: int, expected: tuple[date, date]
) -> None:
    found = period_containing(Period.ANNUAL, day, anchor_day=anchor_day, anchor_month=anchor_month)
    assert found == BillingPeriod(*expected)


@pytest.mark.parametrize(
    ("anchors", "message"),
    [
        ({"anchor_day": 29}, "anchor_day: expected 1..28, got 29"),
        ({"anchor_day": 31}, "anchor_day: expected 1..28, got 31"),
        ({"anchor_day": 0}, "anchor_day: expected 1..28, got 0"),
        ({"anchor_day": True}, "anchor_day: expected 1..28, got True"),
        ({"anchor_month": 13}, "anchor_month: expected 1..12, got 13"),
    ],
)
def test_anchor_out_of_range_is_refused_naming_it(anchors: dict[str, int], message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        period_containing(Period.MONTHLY, date(2024, 1, 1), **anchors)


def test_unknown_period_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'weekly' is not a valid Period"):
        period_containing("weekly", date(2024, 1, 1))  # type: ignore[arg-type]


def test_next_period_keeps_the_anchor() -> None:
    current = BillingPeriod(date(2024, 1, 15), date(2024, 2, 15))
    assert next_period(Period.MONTHLY, current) == BillingPeriod(date(2024, 2, 15), date(2024, 3, 15))
    leap_year = BillingPeriod(date(2027, 3, 1), date(2028, 3, 1))
    assert next_period(Period.ANNUAL, leap_year) == BillingPeriod(date(2028, 3, 1), date(2029, 3, 1))


@pytest.mark.parametrize(
    "current",
    [
        BillingPeriod(date(2024, 1, 15), date(2024, 2, 14)),
        BillingPeriod(date(2024, 1, 31), date(2024, 2, 29)),
    ],
)
def test_next_period_refuses_a_period_that_is_not_a_whole_anchored_one(current: BillingPeriod) -> None:
    with pytest.raises(
        PeriodError, match=rf"\[{current.start}, {current.end}\) is not a whole monthly period"
    ):
        next_period(Period.MONTHLY, current)


def test_periods_between_lists_the_whole_periods_overlapping_the_span() -> None:
    found = periods_between(Period.MONTHLY, date(2024, 1, 31), date(2024, 3, 1))
    assert found == [
        BillingPeriod(date(2024, 1, 1), date(2024, 2, 1)),
        BillingPeriod(date(2024, 2, 1), date(2024, 3, 1)),
    ]


def test_periods_between_refuses_an_empty_span() -> None:
    with pytest.raises(PeriodError, match="empty period"):
        periods_between(Period.DAILY, date(2024, 1, 2), date(2024, 1, 2))


@bounded
@given(st.sampled_from(Period), days, anchor_days, anchor_months)
def test_period_containing_contains_the_day_and_next_period_follows_it(
    kind: Period, day: date, anchor_day: int, anchor_month: int
) -> None:
    found = period_containing(kind, day, anchor_day=anchor_day, anchor_month=anchor_month)
    assert found.contains(day)
    assert {Period.DAILY: {1}, Period.MONTHLY: {28, 29, 30, 31}, Period.ANNUAL: {365, 366}}[kind] >= {
        days_in(found)
    }
    following = next_period(kind, found)
    assert following.start == found.end
    assert following == period_containing(kind, found.end, anchor_day=anchor_day, anchor_month=anchor_month)


@bounded
@given(st.sampled_from(Period), days, st.integers(min_value=1, max_value=800), anchor_days, anchor_months)
def test_periods_between_are_contiguous_and_cover_the_span(
    kind: Period, start: date, length: int, anchor_day: int, anchor_month: int
) -> None:
    end = start + timedelta(days=length)
    found = periods_between(kind, start, end, anchor_day=anchor_day, anchor_month=anchor_month)
    assert found[0].contains(start)
    assert found[-1].contains(end - timedelta(days=1))
    assert all(earlier.end == later.start for earlier, later in pairwise(found))


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2024, 3, 31), 23),  # last Sunday of March: clocks jump 02:00 -> 03:00
        (date(2024, 10, 27), 25),  # last Sunday of October: clocks fall back 03:00 -> 02:00
        (date(2025, 3, 30), 23),
        (date(2025, 10, 26), 25),
        (date(2024, 3, 30), 24),
        (date(2024, 10, 28), 24),
    ],
)
def test_local_day_lasts_23_or_25_hours_on_berlin_dst_days(day: date, hours: int) -> None:
    start, end = local_day_bounds(day, BERLIN)
    assert end - start == timedelta(hours=hours)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert local_date(start, BERLIN) == day
    assert local_date(end, BERLIN) == day + timedelta(days=1)


def test_local_day_bounds_are_the_utc_instants_of_local_midnight() -> None:
    assert local_day_bounds(date(2024, 3, 31), BERLIN) == (
        datetime(2024, 3, 30, 23, tzinfo=UTC),
        datetime(2024, 3, 31, 22, tzinfo=UTC),
    )


def test_a_midnight_skipped_by_dst_starts_the_day_at_the_jump() -> None:
    # Santiago (Chile) moved clocks from 00:00 to 01:00 on 2022-09-11: that day starts at 04:00 UTC.
    start, end = local_day_bounds(date(2022, 9, 11), ZoneInfo("America/Santiago"))
    assert start == datetime(2022, 9, 11, 4, tzinfo=UTC)
    assert end - start == timedelta(hours=23)


@bounded
@given(days)
def test_consecutive_local_days_tile_utc_time_without_gap(day: date) -> None:
    _, end = local_day_bounds(day, BERLIN)
    next_start, _ = local_day_bounds(day + timedelta(days=1), BERLIN)
    assert end == next_start


def test_local_date_refuses_a_naive_datetime() -> None:
    with pytest.raises(PeriodError, match="expected an aware datetime, got naive 2024-01-01T00:00:00"):
        local_date(datetime(2024, 1, 1), BERLIN)
