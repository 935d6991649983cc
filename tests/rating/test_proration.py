"""Proration: golden cases from TOML files, the rules and errors, and the exact-sum properties."""

from __future__ import annotations

import tomllib
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.money import MoneyError, RoundingMode, RoundingRule
from rating.periods import (
    BillingPeriod,
    Period,
    PeriodError,
    ProrationRule,
    local_day_bounds,
    period_containing,
    periods_between,
)
from rating.proration import ProratedCharge, ProrationError, counted_days, prorate, split_fee

GOLDEN = Path(__file__).parent / "golden" / "proration"
CENTS = RoundingRule()
bounded = settings(max_examples=200, deadline=None)


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _span(start: str, end: str) -> BillingPeriod:
    return BillingPeriod(_d(start), _d(end))


# --- golden cases -------------------------------------------------------------------------------


def _golden_cases() -> list[Any]:
    cases = []
    for path in sorted(GOLDEN.glob("*.toml")):
        for case in tomllib.loads(path.read_text())["case"]:
            cases.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return cases


def _charge_lines(case: dict[str, Any]) -> list[ProratedCharge]:
    """Clip the case's parts to each billing period they touch and split each period's fee."""
    anchors = {key: case[key] for key in ("anchor_day", "anchor_month") if key in case}
    rounding = RoundingRule(**case.get("rounding", {}))
    parts = [(BillingPeriod(part["start"], part["end"]), Decimal(part["fee"])) for part in case["parts"]]
    lines = []
    for period in periods_between(Period(case["kind"]), parts[0][0].start, parts[-1][0].end, **anchors):
        clipped = [(active, fee) for part, fee in parts if (active := period.intersection(part))]
        lines += split_fee(period, clipped, ProrationRule(case["rule"]), rounding)
    return lines


@pytest.mark.parametrize("case", _golden_cases())
def test_golden_case_gives_the_expected_lines(case: dict[str, Any]) -> None:
    found = [
        {
            "period": [line.period.start, line.period.end],
            "start": line.active.start,
            "end": line.active.end,
            "days": line.days,
            "period_days": line.period_days,
            "amount": str(line.amount),
        }
        for line in _charge_lines(case)
    ]
    assert found == case["expected"]


@pytest.mark.parametrize("case", [c for c in _golden_cases() if "day_bounds" in c.values[0]])
def test_golden_dst_day_has_the_expected_utc_bounds(case: dict[str, Any]) -> None:
    bounds = case["day_bounds"]
    start, end = local_day_bounds(bounds["day"], ZoneInfo(bounds["tz"]))
    assert (start, end) == (bounds["start_utc"], bounds["end_utc"])
    assert end - start == timedelta(hours=bounds["hours"])


def test_every_golden_file_covers_at_least_one_case() -> None:
    files = sorted(GOLDEN.glob("*.toml"))
    assert len(files) >= 8
    assert all(tomllib.loads(path.read_text())["case"] for path in files)


# --- counted days and single shares --------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2024-01-01", "2024-02-01", 30),  # a 31-day month is 30
        ("2024-02-01", "2024-03-01", 30),  # a leap February is 30
        ("2023-02-01", "2023-03-01", 30),  # a common February is 30
        ("2024-01-31", "2024-02-01", 0),  # the 31st counts 0
        ("2024-01-30", "2024-01-31", 1),
        ("2023-02-28", "2023-03-01", 3),  # February's last day makes up the month
        ("2024-02-29", "2024-03-01", 2),
        ("2024-02-28", "2024-02-29", 1),
        ("2024-01-15", "2024-02-15", 30),  # any anchored month is 30
        ("2024-01-01", "2025-01-01", 360),
    ],
)
def test_thirty_day_rule_counts_every_month_as_thirty_days(start: str, end: str, expected: int) -> None:
    assert counted_days(_span(start, end), ProrationRule.THIRTY_DAY_MONTH) == expected


def test_actual_days_rule_counts_calendar_days() -> None:
    assert counted_days(_span("2024-02-01", "2024-03-01"), ProrationRule.ACTUAL_DAYS) == 29
    assert counted_days(_span("2028-01-01", "2029-01-01"), ProrationRule.ACTUAL_DAYS) == 366


def test_the_whole_period_costs_the_rounded_fee_under_every_rule() -> None:
    period = _span("2024-01-31", "2024-02-01")  # a daily period on a 31st: 0 days under 30/360
    for rule in ProrationRule:
        assert prorate(Decimal("9.995"), period, period, rule, CENTS) == Decimal("10.00")


def test_no_proration_rule_charges_the_whole_fee_for_one_day() -> None:
    period = _span("2024-01-01", "2024-02-01")
    assert prorate(Decimal("30"), period, _span("2024-01-31", "2024-02-01"), ProrationRule.NONE, CENTS) == 30


def test_amount_always_has_the_rule_s_fraction_digits() -> None:
    period = _span("2024-04-01", "2024-05-01")
    amount = prorate(Decimal(30), period, _span("2024-04-01", "2024-04-16"), ProrationRule.ACTUAL_DAYS, CENTS)
    assert str(amount) == "15.00"


def test_charge_line_records_basis_days_and_amount() -> None:
    period = _span("2024-01-01", "2024-02-01")
    [line] = split_fee(period, [(_span("2024-01-22", "2024-02-01"), Decimal("31.00"))], "actual_days", CENTS)
    assert line == ProratedCharge(
        period=period,
        active=_span("2024-01-22", "2024-02-01"),
        fee=Decimal("31.00"),
        rule=ProrationRule.ACTUAL_DAYS,
        days=10,
        period_days=31,
        amount=Decimal("10.00"),
    )


# --- errors -------------------------------------------------------------------------------------

JANUARY = _span("2024-01-01", "2024-02-01")


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([], r"parts of \[2024-01-01, 2024-02-01\): expected at least one"),
        ([(_span("2023-12-31", "2024-01-02"), Decimal(1))], r"part \[2023-12-31, 2024-01-02\) lies outside"),
        (
            [
                (_span("2024-01-01", "2024-01-10"), Decimal(1)),
                (_span("2024-01-11", "2024-02-01"), Decimal(1)),
            ],
            r"without gap or overlap: \[2024-01-01, 2024-01-10\), \[2024-01-11, 2024-02-01\)",
        ),
        (
            [
                (_span("2024-01-01", "2024-01-12"), Decimal(1)),
                (_span("2024-01-11", "2024-02-01"), Decimal(1)),
            ],
            "without gap or overlap",
        ),
        ([(_span("2024-01-01", "2024-01-12"), Decimal("-1.00"))], "fee: expected 0 or more .* got -1.00"),
        ([("2024-01-01", Decimal(1))], "part of .*: expected a BillingPeriod, got '2024-01-01'"),
    ],
)
def test_bad_parts_are_refused_naming_what_is_wrong(parts: list[Any], message: str) -> None:
    with pytest.raises(ProrationError, match=message):
        split_fee(JANUARY, parts, ProrationRule.ACTUAL_DAYS, CENTS)


def test_no_proration_rule_refuses_to_split_a_period() -> None:
    parts = [(_span("2024-01-01", "2024-01-11"), Decimal(1)), (_span("2024-01-11", "2024-02-01"), Decimal(2))]
    with pytest.raises(ProrationError, match="rule none: a period is billed whole at one fee; got 2 parts"):
        split_fee(JANUARY, parts, ProrationRule.NONE, CENTS)


def test_float_fee_is_refused() -> None:
    with pytest.raises(MoneyError, match="fee: expected a decimal number, got a float"):
        prorate(30.0, JANUARY, JANUARY, ProrationRule.ACTUAL_DAYS, CENTS)  # type: ignore[arg-type]


def test_zero_length_active_period_is_refused_before_any_maths() -> None:
    with pytest.raises(PeriodError, match="empty period: start 2024-01-10 must be before end 2024-01-10"):
        prorate(Decimal(30), JANUARY, _span("2024-01-10", "2024-01-10"), ProrationRule.ACTUAL_DAYS, CENTS)


# --- rounding rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("half_up", "0.125", "0.13"),
        ("half_even", "0.125", "0.12"),
        ("half_even", "0.135", "0.14"),
        ("up", "0.121", "0.13"),
        ("down", "0.129", "0.12"),
        ("half_up", "-0.125", "-0.13"),
    ],
)
def test_rounding_rule_applies_its_mode(mode: str, value: str, expected: str) -> None:
    assert str(RoundingRule(2, RoundingMode(mode)).apply(Decimal(value))) == expected


@pytest.mark.parametrize(("places", "mode"), [(-1, "half_up"), (7, "half_up"), (2, "ceiling")])
def test_rounding_rule_out_of_range_is_refused(places: int, mode: str) -> None:
    with pytest.raises(MoneyError, match=r"rounding (places|mode)"):
        RoundingRule(places, mode)  # type: ignore[arg-type]


def _reference_rounding(value: Fraction, places: int, mode: RoundingMode) -> Decimal:
    """Rounding of an exact rational written from the definitions of the modes, as an oracle."""
    units = value * 10**places
    toward_zero = int(units)  # int() truncates towards zero
    away = toward_zero if units == toward_zero else toward_zero + (1 if units > 0 else -1)
    distance = abs(units - toward_zero)
    if mode is RoundingMode.DOWN or (mode is not RoundingMode.UP and distance < Fraction(1, 2)):
        chosen = toward_zero
    elif mode is RoundingMode.UP or distance > Fraction(1, 2) or mode is RoundingMode.HALF_UP:
        chosen = away
    else:  # HALF_EVEN on a tie
        chosen = toward_zero if toward_zero % 2 == 0 else away
    return Decimal(chosen).scaleb(-places)


@bounded
@given(
    st.fractions(min_value=-(10**9), max_value=10**9, max_denominator=10**4),
    st.integers(min_value=0, max_value=6),
    st.sampled_from(RoundingMode),
)
def test_rounding_a_fraction_follows_the_definition_of_each_mode(
    value: Fraction, places: int, mode: RoundingMode
) -> None:
    assert RoundingRule(places, mode).apply_fraction(value) == _reference_rounding(value, places, mode)


@pytest.mark.parametrize("mode", list(RoundingMode))
@pytest.mark.parametrize("value", ["0.125", "-0.125", "0.135", "2.5", "0.121", "0.129", "7"])
def test_rounding_a_fraction_agrees_with_rounding_the_same_decimal(mode: RoundingMode, value: str) -> None:
    rule = RoundingRule(2, mode)
    assert rule.apply_fraction(Fraction(value)) == rule.apply(Decimal(value))


# --- properties ---------------------------------------------------------------------------------

kinds = st.sampled_from(Period)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
fees = st.decimals(min_value=0, max_value=Decimal("100000.00"), places=2)
roundings = st.builds(RoundingRule, st.integers(min_value=0, max_value=6), st.sampled_from(RoundingMode))
splitting_rules = st.sampled_from([ProrationRule.ACTUAL_DAYS, ProrationRule.THIRTY_DAY_MONTH])


@st.composite
def billing_periods(draw: st.DrawFn) -> BillingPeriod:
    kind, day = draw(kinds), draw(days)
    anchors = {"anchor_day": draw(st.integers(1, 28)), "anchor_month": draw(st.integers(1, 12))}
    return period_containing(kind, day, **anchors)


@st.composite
def partitions(draw: st.DrawFn, period: BillingPeriod) -> list[BillingPeriod]:
    length = (period.end - period.start).days
    cuts = draw(st.sets(st.integers(min_value=1, max_value=length - 1), max_size=6)) if length > 1 else set()
    bounds = [period.start, *(period.start + timedelta(days=cut) for cut in sorted(cuts)), period.end]
    return [BillingPeriod(start, end) for start, end in pairwise(bounds)]


@bounded
@given(st.data(), billing_periods(), fees, splitting_rules, roundings)
def test_parts_of_a_partition_sum_to_the_rounded_whole_fee_exactly(
    data: st.DataObject, period: BillingPeriod, fee: Decimal, rule: ProrationRule, rounding: RoundingRule
) -> None:
    parts = data.draw(partitions(period))
    lines = split_fee(period, [(part, fee) for part in parts], rule, rounding)
    assert sum(line.amount for line in lines) == rounding.apply(fee)
    assert all(line.amount >= 0 for line in lines)
    assert sum(line.days for line in lines) == lines[0].period_days


@bounded
@given(st.data(), billing_periods(), splitting_rules, roundings)
def test_each_line_is_its_exact_share_rounded_down_or_up_and_all_sum_to_the_rounded_total(
    data: st.DataObject, period: BillingPeriod, rule: ProrationRule, rounding: RoundingRule
) -> None:
    parts = data.draw(partitions(period))
    part_fees = data.draw(st.lists(fees, min_size=len(parts), max_size=len(parts)))
    lines = split_fee(period, list(zip(parts, part_fees, strict=True)), rule, rounding)
    whole = counted_days(period, rule)
    shares = [
        Fraction(line.fee) * (1 if line.active == period else Fraction(line.days, whole)) for line in lines
    ]
    for line, share in zip(lines, shares, strict=True):
        assert abs(Fraction(line.amount) - share) < Fraction(rounding.quantum)
    assert sum(line.amount for line in lines) == rounding.apply_fraction(sum(shares, Fraction(0)))


@st.composite
def nested_spans(draw: st.DrawFn, period: BillingPeriod) -> tuple[BillingPeriod, BillingPeriod]:
    """Two sub-intervals of ``period``, the first inside the second."""
    length = (period.end - period.start).days
    b = draw(st.integers(0, length - 1))
    c = draw(st.integers(b + 1, length))
    a, d = draw(st.integers(0, b)), draw(st.integers(c, length))
    at = [period.start + timedelta(days=offset) for offset in (a, b, c, d)]
    return BillingPeriod(at[1], at[2]), BillingPeriod(at[0], at[3])


@bounded
@given(st.data(), billing_periods(), fees, st.sampled_from(ProrationRule), roundings)
def test_prorate_never_decreases_when_the_active_days_grow(
    data: st.DataObject, period: BillingPeriod, fee: Decimal, rule: ProrationRule, rounding: RoundingRule
) -> None:
    inner, outer = data.draw(nested_spans(period))
    smaller, larger = (prorate(fee, period, span, rule, rounding) for span in (inner, outer))
    assert 0 <= smaller <= larger <= rounding.apply(fee)


@bounded
@given(st.data(), billing_periods(), fees, st.sampled_from(ProrationRule), roundings)
def test_more_counted_days_never_cost_less_wherever_they_fall(
    data: st.DataObject, period: BillingPeriod, fee: Decimal, rule: ProrationRule, rounding: RoundingRule
) -> None:
    first, _ = data.draw(nested_spans(period))
    second, _ = data.draw(nested_spans(period))
    short, long = sorted((first, second), key=lambda span: counted_days(span, rule))
    assert prorate(fee, period, short, rule, rounding) <= prorate(fee, period, long, rule, rounding)


@bounded
@given(days, st.integers(min_value=-400, max_value=0))
def test_zero_length_or_reversed_periods_are_always_refused(start: date, offset: int) -> None:
    with pytest.raises(PeriodError, match="empty period"):
        BillingPeriod(start, start + timedelta(days=offset))
