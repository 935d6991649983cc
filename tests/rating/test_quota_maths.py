"""Prepaid quota maths (rating.quota): grants, settlements, unit prices, and the no-overdraw property.

The property tests play random reserve / commit / close sequences of several sessions on one
account through the same functions ``billing.quota`` uses, and check after every step that
the committed money plus the open holds never exceed the funds the account had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.allowance import Allowance, Block, OverageCharge, Throttle
from rating.money import RoundingRule
from rating.quota import (
    Disconnect,
    MeteredPlan,
    QuotaError,
    QuotaUnit,
    available_funds,
    exhausted_action,
    grant,
    session_cost,
    settle,
    unit_price,
)
from rating.time_bands import TimeBand
from rating.traffic import MB, ClassOctets, Direction, UsageDelta
from rating.usage_plan import UsagePlan
from rating.usage_prices import TimePrice, UsagePrice

UTC_ZONE = ZoneInfo("UTC")
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=300, deadline=None)
D = Decimal
ZERO = Decimal(0)


def _prices(price: str, *, band: str | None = None, free: bool = False) -> tuple[UsagePrice, ...]:
    return tuple(
        UsagePrice(direction=direction, band=band, price=D(price), free=free) for direction in Direction
    )


UNIT_100MB = QuotaUnit(octets=100 * MB)


def _plan(usage: UsagePlan, unit: QuotaUnit = UNIT_100MB) -> MeteredPlan:
    return MeteredPlan("metered", usage, RoundingRule(), "EUR", unit, UTC_ZONE)


PER_MB = _plan(UsagePlan(prices=_prices("0.01")))  # 1.00 per 100 MB


# --------------------------------------------------------------------------- examples


def test_grant_is_one_unit_never_more_than_available_never_negative() -> None:
    assert grant(D("1.00"), D("5")) == D("1.00")
    assert grant(D("1.00"), D("0.40")) == D("0.40")
    assert grant(D("1.00"), D("-3")) == 0
    with pytest.raises(QuotaError):
        grant(D("-1"), D("5"))


def test_available_is_funds_less_open_holds() -> None:
    assert available_funds(D("10"), D("5"), D("3")) == D("12")
    with pytest.raises(QuotaError):
        available_funds(D("10"), D("0"), D("-1"))


def test_unit_price_prices_the_unit_in_the_dearest_direction_and_band() -> None:
    night = TimeBand("night", time(0), time(6))
    plan = UsagePlan(
        bands=(night,),
        prices=(
            UsagePrice(direction=Direction.IN, price=D("0.01")),
            UsagePrice(direction=Direction.OUT, price=D("0.02")),
            UsagePrice(direction=Direction.IN, band="night", free=True),
            UsagePrice(direction=Direction.OUT, band="night", free=True),
        ),
    )
    assert unit_price(_plan(plan), T0) == D("2.00")  # upload is dearer by day
    assert unit_price(_plan(plan), T0.replace(hour=2)) == 0  # free at night


def test_unit_price_of_time_and_of_an_allowance_past_its_end() -> None:
    timed = UsagePlan(time_prices=(TimePrice(price_per_minute=D("0.05")),))
    assert unit_price(_plan(timed, QuotaUnit(seconds=600)), T0) == D("0.50")
    allowance = Allowance(included_bytes=10**12, overage=Throttle("slow"))
    capped = UsagePlan(prices=_prices("0.01"), allowance=allowance)
    assert unit_price(_plan(capped), T0) == D("1.00")  # the allowance is taken as used up


def test_exhausted_action_follows_the_tariff_overage() -> None:
    assert exhausted_action(UsagePlan(prices=_prices("0.01"))) == Disconnect()
    throttle = Allowance(included_bytes=0, overage=Throttle("64k"))
    assert exhausted_action(UsagePlan(prices=_prices("0.01"), allowance=throttle)) == Throttle("64k")
    block = Allowance(included_bytes=0, overage=Block())
    assert exhausted_action(UsagePlan(prices=_prices("0.01"), allowance=block)) == Disconnect()
    charge = Allowance(included_bytes=0, overage=OverageCharge(_prices("0.02")))
    assert exhausted_action(UsagePlan(prices=_prices("0.01"), allowance=charge)) == Disconnect()


def test_settle_draws_the_hold_down_then_tops_it_up() -> None:
    result = settle(
        cost=D("0.30"), reserved=D("1.00"), committed=D(0), available=D("5"), unit_amount=D("1.00")
    )
    assert (result.charge, result.committed, result.reserved, result.unbilled) == (
        D("0.30"),
        D("0.30"),
        D("1.30"),
        D(0),
    )
    assert result.hold == D("1.00") and not result.exhausted


def test_settle_caps_the_charge_at_hold_plus_available_and_exhausts() -> None:
    result = settle(
        cost=D("3.00"), reserved=D("1.00"), committed=D(0), available=D("0.50"), unit_amount=D("1.00")
    )
    assert (result.charge, result.unbilled, result.hold, result.exhausted) == (
        D("1.50"),
        D("1.50"),
        D(0),
        True,
    )


def test_settle_when_closing_releases_instead_of_topping_up() -> None:
    result = settle(
        cost=D("0.30"),
        reserved=D("1.00"),
        committed=D(0),
        available=D("5"),
        unit_amount=D("1.00"),
        closing=True,
    )
    assert (result.charge, result.reserved, result.exhausted) == (D("0.30"), D("1.00"), False)


def test_free_usage_does_not_exhaust_a_session_without_hold() -> None:
    result = settle(cost=D(0), reserved=D(0), committed=D(0), available=D(0), unit_amount=D(0))
    assert not result.exhausted


def test_settle_refuses_inconsistent_figures() -> None:
    with pytest.raises(QuotaError):
        settle(cost=D(1), reserved=D(0), committed=D(1), available=D(0), unit_amount=D(1))
    with pytest.raises(QuotaError):
        settle(cost=D(1), reserved=D(1), committed=D(2), available=D(0), unit_amount=D(1))


def test_session_cost_is_cumulative_so_increments_round_once_per_session() -> None:
    plan = _plan(UsagePlan(prices=(UsagePrice(direction=Direction.IN, price=D("0.10"), increment_units=1),
                                   UsagePrice(direction=Direction.OUT, price=D("0.10")))))  # fmt: skip
    half = MB // 2
    deltas = [
        UsageDelta(
            start=T0, end=T0 + timedelta(minutes=5), traffic=(ClassOctets("internet", octets_in=half),)
        ),
        UsageDelta(
            start=T0 + timedelta(minutes=5),
            end=T0 + timedelta(minutes=10),
            traffic=(ClassOctets("internet", octets_in=half),),
        ),
    ]
    assert session_cost(deltas, plan).total == D("0.10")  # 1 MB, not 2 x (0.5 MB rounded up)


# --------------------------------------------------------------------------- the property


@dataclass
class _Session:
    reserved: Decimal = ZERO
    committed: Decimal = ZERO
    cost: Decimal = ZERO
    open: bool = True


_money = st.decimals(min_value=0, max_value=20, places=2)
_op = st.tuples(st.sampled_from(["start", "use", "stop"]), st.integers(0, 5), _money)


@PROPERTY
@given(
    funds=st.decimals(min_value=-5, max_value=30, places=2),
    unit=st.decimals(min_value=0, max_value=5, places=2),
    ops=st.lists(_op, max_size=60),
)
def test_committed_plus_open_holds_never_exceed_the_funds(
    funds: Decimal, unit: Decimal, ops: list[tuple[str, int, Decimal]]
) -> None:
    """Σ committed + Σ open holds ≤ funds when reserved, whatever the sessions do, in any order."""
    sessions: dict[int, _Session] = {}

    def available() -> Decimal:
        committed = sum((s.committed for s in sessions.values()), D(0))
        held = sum((s.reserved - s.committed for s in sessions.values() if s.open), D(0))
        return available_funds(funds - committed, D(0), held)

    for op, key, amount in ops:
        before = available()
        if op == "start":
            if key in sessions:
                continue
            sessions[key] = _Session(reserved=grant(unit, before))
        else:
            session = sessions.get(key)
            if session is None or not session.open:
                continue
            if op == "use":
                session.cost += amount  # usage only ever adds cost
            result = settle(
                cost=session.cost,
                reserved=session.reserved,
                committed=session.committed,
                available=before,
                unit_amount=unit,
                closing=op == "stop",
            )
            assert result.charge >= 0 and result.committed + result.unbilled == max(
                session.cost, session.committed
            )
            session.reserved, session.committed = result.reserved, result.committed
            session.open = op != "stop"
        after = available()
        committed = sum((s.committed for s in sessions.values()), D(0))
        held = sum((s.reserved - s.committed for s in sessions.values() if s.open), D(0))
        if funds >= 0:
            assert committed + held <= funds
            assert after >= 0
        else:  # no funds at all: nothing is reserved or charged
            assert committed == 0 and held == 0
