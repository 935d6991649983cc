"""Recurring fees for whole and partial billing periods: proration, rounded once, summing exactly.

Why: a subscription that starts, stops, is suspended or changes tariff mid-period pays part of
a period's fee, and the parts of one fee must add up to the whole fee to the cent, or invoices
and the ledger disagree with the price list.

How a share is computed (exactly, as a ``Fraction``; never float, never an early rounding):

    share = fee * counted_days(active) / counted_days(period)

with ``counted_days`` per :class:`~rating.periods.ProrationRule`:

* ``ACTUAL_DAYS``: calendar days; a month has 28..31, a year 365 or 366.
* ``THIRTY_DAY_MONTH`` (the 30/360 convention): every calendar month counts exactly 30 days.
  Days 1..30 count 1 each, a 31st counts 0, and February's last day counts the rest up to 30
  (3 on Feb 28 in a common year, 2 on Feb 29 in a leap year). So a monthly period has 30,
  whatever its anchor, and a year 360. Formally, a date sits at position
  ``360*year + 30*(month - 1) + day - 1`` and an interval counts ``position(end) - position(start)``.
* ``NONE``: no proration; any part of a period costs the whole fee.

A part equal to the whole period always costs the whole fee (so a daily period, or a 31st
alone under the 30-day rule, is never divided by zero).

Where rounding happens: once, in :func:`split_fee`. The exact total of all parts is rounded with
the tariff's :class:`~rating.money.RoundingRule`; each part gets its exact share rounded down to
the rule's step, and the steps still missing to reach the rounded total go one each to the parts
with the largest remainders (largest-remainder method). Ties go to the earlier part. So every
line is its exact share rounded down or up (never further off), and the lines over a partition
of a period at one fee add up to the rounded whole fee exactly. :func:`prorate` is the one-part
case. Fees must be non-negative: a credit is its own line, not a negative fee.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from rating.money import RoundingRule, parse_amount
from rating.periods import BillingPeriod, ProrationRule


class ProrationError(ValueError):
    """Parts that do not fit their period, a negative or invalid fee, or a rule that cannot split."""


@dataclass(frozen=True, slots=True)
class ProratedCharge:
    """One charge line: the part ``active`` of ``period`` billed at ``fee`` for the whole period."""

    period: BillingPeriod
    """The whole billing period the fee is for."""
    active: BillingPeriod
    """The days ``[start, end)`` this line charges for; within ``period``."""
    fee: Decimal
    """The fee basis: the price of the whole period for this part's tariff or state."""
    rule: ProrationRule
    days: int
    """Days of ``active`` counted under ``rule`` (calendar days for ``NONE``)."""
    period_days: int
    """Days of ``period`` counted under ``rule``: the denominator of the share."""
    amount: Decimal
    """The charge, rounded to the tariff's step (``places`` fraction digits)."""


def counted_days(interval: BillingPeriod, rule: ProrationRule) -> int:
    """Days of ``interval`` that count under ``rule`` (see the module docstring)."""
    if ProrationRule(rule) is ProrationRule.THIRTY_DAY_MONTH:
        return _thirty_day_position(interval.end) - _thirty_day_position(interval.start)
    return (interval.end - interval.start).days


def prorate(
    fee: Decimal, period: BillingPeriod, active: BillingPeriod, rule: ProrationRule, rounding: RoundingRule
) -> Decimal:
    """The part of ``fee`` (for the whole ``period``) due for the days ``active``, rounded once.

    ``active`` must lie within ``period``; clip it first with :meth:`BillingPeriod.intersection`.
    """
    return split_fee(period, [(active, fee)], rule, rounding)[0].amount


def split_fee(
    period: BillingPeriod,
    parts: Sequence[tuple[BillingPeriod, Decimal]],
    rule: ProrationRule,
    rounding: RoundingRule,
) -> list[ProratedCharge]:
    """One charge line per part ``(active, fee)`` of ``period``, in order, summing exactly.

    ``parts`` follow each other without gap or overlap within ``period`` (a tariff change at
    midnight ends one part and starts the next; a suspension is a part at its reduced fee,
    maybe 0). They need not cover the whole period (a start or stop mid-period). The lines add
    up to the rounded exact total; see the module docstring for the rounding. Under
    ``ProrationRule.NONE`` a period is billed whole at one fee, so only one part is accepted.
    """
    rule = ProrationRule(rule)
    _check_parts(period, parts, rule)
    fees = [_check_fee(fee) for _, fee in parts]
    shares = [_share(fee, period, active, rule) for (active, _), fee in zip(parts, fees, strict=True)]
    amounts = _largest_remainder(shares, rounding)
    period_days = counted_days(period, rule)
    return [
        ProratedCharge(period, active, fee, rule, counted_days(active, rule), period_days, amount)
        for (active, _), fee, amount in zip(parts, fees, amounts, strict=True)
    ]


def _share(fee: Decimal, period: BillingPeriod, active: BillingPeriod, rule: ProrationRule) -> Fraction:
    """The exact, unrounded part of ``fee`` for ``active``."""
    if rule is ProrationRule.NONE or active == period:
        return Fraction(fee)
    return Fraction(fee) * counted_days(active, rule) / counted_days(period, rule)


def _largest_remainder(shares: list[Fraction], rounding: RoundingRule) -> list[Decimal]:
    """Round ``shares`` so each moves by less than one step and they sum to their rounded total.

    With non-negative shares the missing steps never outnumber the shares with a remainder, so
    no exact share is ever pushed up.
    """
    scale = 10**rounding.places
    total_steps = int(rounding.apply_fraction(sum(shares, Fraction(0))).scaleb(rounding.places))
    steps = [math.floor(share * scale) for share in shares]
    missing = total_steps - sum(steps)
    by_remainder = sorted(range(len(shares)), key=lambda i: (steps[i] - shares[i] * scale, i))
    for i in by_remainder[:missing]:
        steps[i] += 1
    return [Decimal(n).scaleb(-rounding.places).quantize(rounding.quantum) for n in steps]


def _check_parts(
    period: BillingPeriod, parts: Sequence[tuple[BillingPeriod, Decimal]], rule: ProrationRule
) -> None:
    if not parts:
        raise ProrationError(f"parts of {period}: expected at least one (active, fee) part")
    if rule is ProrationRule.NONE and len(parts) > 1:
        raise ProrationError(f"rule {rule}: a period is billed whole at one fee; got {len(parts)} parts")
    previous: BillingPeriod | None = None
    for active, _ in parts:
        if not isinstance(active, BillingPeriod):
            raise ProrationError(f"part of {period}: expected a BillingPeriod, got {active!r}")
        if not period.covers(active):
            raise ProrationError(f"part {active} lies outside the period {period}")
        if previous is not None and previous.end != active.start:
            raise ProrationError(f"parts must follow each other without gap or overlap: {previous}, {active}")
        previous = active


def _check_fee(fee: Decimal) -> Decimal:
    value = parse_amount(fee, field="fee")  # MoneyError for floats, NaN, over six fraction digits
    if value < 0:
        raise ProrationError(f"fee: expected 0 or more (a credit is its own line), got {value}")
    return value


def _thirty_day_position(day: date) -> int:
    """Position of a date on the 30/360 calendar: a 31st shares its place with the next 1st."""
    return 360 * day.year + 30 * (day.month - 1) + day.day - 1
