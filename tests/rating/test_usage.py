"""Usage rating: golden cases from TOML files, the rules one by one, and properties of the maths.

Golden cases live in ``golden/usage/*.toml``, one case a file with a comment saying what it shows
and how the expected figures come about. Prices there are quoted strings (parsed as ``Decimal``).
"""

from __future__ import annotations

import tomllib
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.allowance import Allowance, Block, OverageCharge, Throttle
from rating.money import RoundingRule
from rating.time_bands import TimeBand, allocate, band_segments
from rating.traffic import (
    INTERNET,
    MB,
    MIB,
    RADIUS_GIGAWORDS_ATTRIBUTE,
    RADIUS_OCTETS_ATTRIBUTE,
    ClassOctets,
    Direction,
    UsageDelta,
)
from rating.usage import LineKind, Measure, UsageRating, rate_usage
from rating.usage_checks import UsageError
from rating.usage_plan import UsagePlan
from rating.usage_prices import TimePrice, UsagePrice

GOLDEN = Path(__file__).parent / "golden" / "usage"
BERLIN = ZoneInfo("Europe/Berlin")
HALF_UP = RoundingRule()
IN, OUT = Direction.IN, Direction.OUT
NIGHT = TimeBand("night", time(1), time(7))
EARLY = TimeBand("early", time(6), time(9))
PROPERTY = settings(max_examples=200, deadline=None)


def at(text: str) -> datetime:
    """An aware UTC instant from ``2024-01-15T11:00:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def delta(start: str, end: str, octets_in: int = 0, octets_out: int = 0, **more: Any) -> UsageDelta:
    traffic = (ClassOctets(INTERNET, octets_in, octets_out),)
    return UsageDelta(start=at(start), end=at(end), traffic=more.pop("traffic", traffic), **more)


def prices(in_price: str, out_price: str | None = None, **more: Any) -> tuple[UsagePrice, ...]:
    """A price for each direction (the same unless ``out_price`` is given)."""
    return (
        UsagePrice(direction=IN, price=Decimal(in_price), **more),
        UsagePrice(direction=OUT, price=Decimal(out_price or in_price), **more),
    )


def free_at_night(traffic_class: str = INTERNET) -> tuple[UsagePrice, ...]:
    return tuple(
        UsagePrice(traffic_class=traffic_class, direction=d, band="night", free=True) for d in Direction
    )


CHARGE_IN_ONLY = OverageCharge((UsagePrice(direction=IN, price=Decimal("0.1")),))


def early_prices(price: str) -> tuple[UsagePrice, ...]:
    return tuple(UsagePrice(direction=d, band="early", price=Decimal(price)) for d in Direction)


def rate(deltas: list[UsageDelta], plan: UsagePlan, used: int = 0, tz: ZoneInfo = BERLIN) -> UsageRating:
    return rate_usage(deltas, plan, tz=tz, allowance_used_before=used, rounding=HALF_UP)


# -- golden cases -----------------------------------------------------------------------------------


def _golden_price(table: dict[str, Any]) -> UsagePrice:
    return UsagePrice(
        traffic_class=table.get("class", INTERNET),
        direction=Direction(table["direction"]),
        band=table.get("band"),
        price=Decimal(table.get("price", "0")),
        unit_bytes=table.get("unit_bytes", MB),
        increment_units=table.get("increment_units", 1),
        free=table.get("free", False),
    )


def _golden_time_price(table: dict[str, Any]) -> TimePrice:
    return TimePrice(
        band=table.get("band"),
        price_per_minute=Decimal(table.get("price_per_minute", "0")),
        increment_seconds=table.get("increment_seconds", 60),
        free=table.get("free", False),
    )


def _golden_allowance(table: dict[str, Any]) -> Allowance:
    overage = {
        "charge": lambda: OverageCharge(tuple(_golden_price(p) for p in table["overage_prices"])),
        "throttle": lambda: Throttle(table["speed_profile"]),
        "block": Block,
    }[table["overage"]]()
    return Allowance(
        included_bytes=table["included_bytes"],
        overage=overage,
        classes=frozenset(table.get("classes", [INTERNET])),
        directions=frozenset(Direction(d) for d in table.get("directions", ["in", "out"])),
    )


def _golden_plan(table: dict[str, Any]) -> UsagePlan:
    return UsagePlan(
        bands=tuple(
            TimeBand(b["name"], b["start"], b["end"], frozenset(b["days"]) if "days" in b else None)
            for b in table.get("bands", [])
        ),
        prices=tuple(_golden_price(p) for p in table.get("prices", [])),
        time_prices=tuple(_golden_time_price(p) for p in table.get("time_prices", [])),
        allowance=_golden_allowance(table["allowance"]) if "allowance" in table else None,
        default_class=table.get("default_class", INTERNET),
    )


def _golden_delta(table: dict[str, Any]) -> UsageDelta:
    traffic = tuple(
        ClassOctets(t["class"], t.get("in", 0), t.get("out", 0)) for t in table.get("traffic", [])
    )
    return UsageDelta(
        start=table["start"],
        end=table["end"],
        traffic=traffic,
        session_seconds=table.get("session_seconds", 0),
    )


def _expected_line(table: dict[str, Any]) -> dict[str, Any]:
    volume = table.get("measure", "volume") == "volume"
    line = {
        "measure": table.get("measure", "volume"),
        "class": table.get("class", INTERNET if volume else None),
        "direction": table.get("direction"),
        "band": table.get("band"),
        "kind": table["kind"],
        "quantity": table["quantity"],
        "billable": table["billable"],
        "unit_price": Decimal(table["unit_price"]),
    }
    if "exact_amount" in table:
        line["exact_amount"] = Fraction(table["exact_amount"])
    else:
        line["amount"] = Decimal(table["amount"])
    return line


def _actual_line(line: Any, expected: dict[str, Any]) -> dict[str, Any]:
    view = {
        "measure": line.measure.value,
        "class": line.traffic_class,
        "direction": line.direction and line.direction.value,
        "band": line.band,
        "kind": line.kind.value,
        "quantity": line.quantity,
        "billable": line.billable,
        "unit_price": line.unit_price,
    }
    if "exact_amount" in expected:
        view["exact_amount"] = line.exact_amount
    else:
        view["amount"] = line.amount
    return view


def _action_text(rating: UsageRating) -> str | None:
    action = rating.overage_action
    if isinstance(action, Throttle):
        return f"throttle:{action.speed_profile}"
    return "block" if isinstance(action, Block) else None


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.toml")), ids=lambda p: p.stem)
def test_golden_case(path: Path) -> None:
    case = tomllib.loads(path.read_text())
    rounding = RoundingRule(**case.get("rounding", {}))
    rating = rate_usage(
        [_golden_delta(d) for d in case["deltas"]],
        _golden_plan(case["plan"]),
        tz=ZoneInfo(case["tz"]),
        allowance_used_before=case["allowance_used_before"],
        rounding=rounding,
    )
    expected = case["expected"]
    expected_lines = [_expected_line(line) for line in expected["lines"]]
    actual_lines = [
        _actual_line(line, want) for line, want in zip(rating.lines, expected_lines, strict=False)
    ]
    assert actual_lines == expected_lines
    assert len(rating.lines) == len(expected_lines)
    assert rating.total == Decimal(expected["total"])
    assert str(rating.total) == expected["total"]
    assert rating.allowance_used_after == expected["allowance_used_after"]
    assert rating.allowance_exhausted_at == expected.get("allowance_exhausted_at")
    assert _action_text(rating) == expected.get("action")


def test_there_is_a_golden_case_for_each_rule() -> None:
    assert {path.stem for path in GOLDEN.glob("*.toml")} >= {
        "night_band_free",
        "split_across_0700",
        "dst_spring_forward_berlin",
        "dst_fall_back_berlin",
        "allowance_runs_out_mid_delta_overage_charged",
        "allowance_throttle",
        "increment_rounds_up",
        "time_per_minute",
        "local_class_cheaper",
        "upload_priced_differently",
    }


# -- directions, bands and the split ----------------------------------------------------------------


def test_download_is_what_the_nas_sends_to_the_subscriber() -> None:
    assert RADIUS_OCTETS_ATTRIBUTE[Direction.IN] == "Acct-Output-Octets"
    assert RADIUS_OCTETS_ATTRIBUTE[Direction.OUT] == "Acct-Input-Octets"
    assert RADIUS_GIGAWORDS_ATTRIBUTE[Direction.IN] == "Acct-Output-Gigawords"


@pytest.mark.parametrize(
    ("day", "real_hours"),
    [("2024-03-31", 5), ("2024-10-27", 7), ("2024-01-14", 6)],
    ids=["spring-forward", "fall-back", "ordinary"],
)
def test_a_band_is_wall_clock_so_its_real_length_follows_dst(day: str, real_hours: int) -> None:
    start = at(f"{day}T00:00:00") - timedelta(hours=6)
    segments = band_segments(start, start + timedelta(hours=24), [NIGHT], BERLIN)
    night = [s for s in segments if s.bands == {"night"}]
    assert [s.duration for s in night] == [timedelta(hours=real_hours)]


def test_a_band_across_midnight_covers_both_days() -> None:
    late = TimeBand("late", time(22), time(6))
    segments = band_segments(at("2024-01-15T20:00:00"), at("2024-01-16T06:00:00"), [late], BERLIN)
    assert [(s.start.hour, s.end.hour, set(s.bands)) for s in segments] == [
        (20, 21, set()),
        (21, 5, {"late"}),
        (5, 6, set()),
    ]


def test_a_band_on_some_days_applies_from_the_day_it_starts() -> None:
    friday_night = TimeBand("friday night", time(22), time(6), days=frozenset({4}))
    # Thursday 2024-01-18 22:00 Berlin is not covered; Friday 2024-01-19 22:00 runs into Saturday.
    assert not friday_night.covers(datetime(2024, 1, 18, 23, 0))
    assert friday_night.covers(datetime(2024, 1, 19, 23, 0))
    assert friday_night.covers(datetime(2024, 1, 20, 5, 59))
    assert not friday_night.covers(datetime(2024, 1, 20, 6, 0))


def test_a_band_with_the_same_start_and_end_is_the_whole_day() -> None:
    weekend = TimeBand("weekend", time(0), time(0), days=frozenset({5, 6}))
    assert weekend.duration == timedelta(days=1)
    assert weekend.covers(datetime(2024, 1, 21, 23, 59))
    assert not weekend.covers(datetime(2024, 1, 22, 0, 0))


def test_a_repeated_wall_clock_hour_is_in_the_band_both_times() -> None:
    repeated = TimeBand("two to three", time(2), time(3))
    segments = band_segments(at("2024-10-26T23:00:00"), at("2024-10-27T03:00:00"), [repeated], BERLIN)
    assert [(s.start, s.duration) for s in segments if s.bands] == [
        (at("2024-10-27T00:00:00"), timedelta(hours=2))
    ]


def test_a_band_starting_in_the_skipped_hour_starts_when_the_clock_jumps() -> None:
    from_half_two = TimeBand("from 02:30", time(2, 30), time(4))
    segments = band_segments(at("2024-03-30T23:00:00"), at("2024-03-31T03:00:00"), [from_half_two], BERLIN)
    # 02:30 CET never shows: the clock jumps from 02:00 CET (01:00 UTC) to 03:00 CEST, inside the band.
    assert [(s.start, s.end) for s in segments if s.bands] == [
        (at("2024-03-31T01:00:00"), at("2024-03-31T02:00:00"))
    ]


def test_a_zero_length_delta_lies_in_the_band_of_its_instant() -> None:
    plan = UsagePlan(bands=(NIGHT,), prices=prices("0.05") + free_at_night())
    rating = rate([delta("2024-01-15T02:00:00", "2024-01-15T02:00:00", 5 * MB)], plan)
    assert [(line.band, line.kind, line.quantity) for line in rating.lines] == [
        ("night", LineKind.FREE, 5 * MB)
    ]


def test_allocate_gives_leftover_units_to_the_largest_remainders_then_the_earliest() -> None:
    assert allocate(10, [1, 1, 1]) == (4, 3, 3)
    assert allocate(100, [2, 1]) == (67, 33)
    assert allocate(1, [1, 2]) == (0, 1)
    assert allocate(5, [0, 0]) == (5, 0)


# -- prices, increments, rounding -------------------------------------------------------------------


def test_the_increment_applies_to_the_line_not_to_each_delta() -> None:
    plan = UsagePlan(prices=prices("1.00"))
    halves = [
        delta("2024-01-15T11:00:00", "2024-01-15T11:05:00", MB // 2),
        delta("2024-01-15T11:05:00", "2024-01-15T11:10:00", MB // 2),
    ]
    assert rate(halves, plan).total == Decimal("1.00")


def test_the_total_is_rounded_once_with_the_tariffs_rule() -> None:
    plan = UsagePlan(prices=prices("0.004", unit_bytes=1000))
    deltas = [
        delta("2024-01-15T11:00:00", "2024-01-15T11:01:00", 1000),
        delta("2024-01-15T11:01:00", "2024-01-15T11:02:00", 0, 1000),
    ]

    def total(rounding: RoundingRule) -> Decimal:
        return rate_usage(deltas, plan, tz=BERLIN, allowance_used_before=0, rounding=rounding).total

    assert [line.amount for line in rate(deltas, plan).lines] == [Decimal("0.004"), Decimal("0.004")]
    assert total(HALF_UP) == Decimal("0.01")  # 0.008, not 0.00 + 0.00 nor 0.01 + 0.01
    assert total(RoundingRule(2, "down")) == Decimal("0.00")
    assert total(RoundingRule(3)) == Decimal("0.008")


def test_nothing_to_rate_costs_nothing() -> None:
    rating = rate([], UsagePlan(prices=prices("0.05")), used=7)
    assert (rating.lines, rating.total, rating.allowance_used_after) == ((), Decimal("0.00"), 7)


def test_a_time_only_plan_does_not_rate_octets() -> None:
    plan = UsagePlan(time_prices=(TimePrice(price_per_minute=Decimal("0.60"), increment_seconds=1),))
    rating = rate([delta("2024-01-15T11:00:00", "2024-01-15T11:00:10", 10**9, session_seconds=10)], plan)
    assert [(line.measure, line.quantity) for line in rating.lines] == [(Measure.TIME, 10)]
    assert rating.total == Decimal("0.10")


# -- allowance -------------------------------------------------------------------------------------


def bundle(included: int, overage: OverageCharge | Throttle | Block, **more: Any) -> UsagePlan:
    return UsagePlan(
        bands=(NIGHT,),
        prices=prices("0") + free_at_night(),
        allowance=Allowance(included_bytes=included, overage=overage, **more),
    )


def test_free_bands_do_not_count_against_the_allowance() -> None:
    rating = rate(
        [delta("2024-01-15T02:00:00", "2024-01-15T03:00:00", 50 * MB)], bundle(MB, Block()), used=10
    )
    assert rating.allowance_used_after == 10
    assert rating.overage_action is None


def test_block_is_returned_once_the_allowance_is_used_up() -> None:
    rating = rate([delta("2024-01-15T11:00:00", "2024-01-15T11:10:00", 2 * MB)], bundle(MB, Block()))
    assert rating.overage_action == Block()
    assert rating.allowance_exhausted_at == at("2024-01-15T11:05:00")


def test_an_allowance_used_up_exactly_runs_out_at_the_end_of_the_traffic() -> None:
    rating = rate([delta("2024-01-15T11:00:00", "2024-01-15T11:10:00", MB)], bundle(MB, Throttle("1M")))
    assert rating.allowance_exhausted_at == at("2024-01-15T11:10:00")
    assert rating.overage_action == Throttle("1M")
    assert {line.kind for line in rating.lines} == {LineKind.INCLUDED}


def test_an_allowance_used_up_earlier_keeps_its_action_but_no_new_instant() -> None:
    rating = rate(
        [delta("2024-01-15T11:00:00", "2024-01-15T11:10:00", MB)], bundle(MB, Throttle("1M")), used=MB
    )
    assert rating.overage_action == Throttle("1M")
    assert rating.allowance_exhausted_at is None
    assert rating.allowance_used_after == 2 * MB


def test_the_instant_the_allowance_ran_out_is_rounded_up_to_the_microsecond() -> None:
    # 3 octets in one second; the single octet left lasts until 1/3 s, reached at 333_334 µs.
    rating = rate([delta("2024-01-15T11:00:00", "2024-01-15T11:00:01", 3)], bundle(1, Block()))
    assert rating.allowance_exhausted_at == at("2024-01-15T11:00:00.333334")


def test_only_the_allowances_classes_and_directions_count() -> None:
    plan = UsagePlan(
        prices=prices("0") + prices("0.01", traffic_class="local"),
        allowance=Allowance(included_bytes=MB, overage=Block(), directions=frozenset({IN})),
    )
    traffic = (ClassOctets(INTERNET, 3 * MB, 5 * MB), ClassOctets("local", 7 * MB, 0))
    rating = rate([delta("2024-01-15T11:00:00", "2024-01-15T11:10:00", traffic=traffic)], plan)
    assert rating.allowance_used_after == 3 * MB
    assert rating.total == Decimal("0.07")


def test_overage_past_the_allowance_can_be_cheaper_at_night() -> None:
    overage = OverageCharge(
        prices("0.10")
        + tuple(UsagePrice(direction=d, band="night", price=Decimal("0.01")) for d in Direction)
    )
    plan = UsagePlan(
        bands=(NIGHT,), prices=prices("0"), allowance=Allowance(included_bytes=0, overage=overage)
    )
    rating = rate([delta("2024-01-15T05:00:00", "2024-01-15T07:00:00", 2 * MB)], plan)
    assert [(line.band, line.kind, line.quantity) for line in rating.lines] == [
        (None, LineKind.OVERAGE, MB),
        ("night", LineKind.OVERAGE, MB),
    ]
    assert rating.total == Decimal("0.11")


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: UsageDelta(start=datetime(2024, 1, 15), end=at("2024-01-15T11:00:00")), "start: .*naive"),
        (lambda: delta("2024-01-15T11:00:00", "2024-01-15T10:00:00"), "end .* is before start"),
        (
            lambda: delta("2024-01-15T11:00:00", "2024-01-15T12:00:00", -1),
            "internet: octets_in: .*at least 0",
        ),
        (lambda: delta("2024-01-15T11:00:00", "2024-01-15T12:00:00", 1.5), "octets_in: expected an integer"),
        (
            lambda: UsagePrice(direction=IN, price=0.05),
            "internet/in/.*price: expected a Decimal, got a float",
        ),
        (lambda: TimePrice(price_per_minute=0.02), "price_per_minute: expected a Decimal, got a float"),
        (lambda: UsagePrice(direction=IN, price=Decimal("-1")), "price: expected a finite amount"),
        (lambda: UsagePrice(direction=IN, price=Decimal(1), free=True), "free band has no price"),
        (lambda: UsagePrice(direction="up"), "direction: expected one of in, out"),
        (lambda: TimeBand("night", time(1), time(7), days=frozenset({7})), "days: .*got 7"),
        (lambda: Allowance(included_bytes=MB, overage="throttle"), "overage: expected OverageCharge"),
    ],
)
def test_bad_values_are_refused_naming_the_field(make: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make()


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            dict(bands=(NIGHT, EARLY), prices=prices("0.05") + free_at_night() + early_prices("0.01")),
            "internet/in: bands 'early' and 'night' overlap",
        ),
        (dict(prices=prices("0.05") + free_at_night()), "band 'night' is not one of the plan's bands"),
        (dict(bands=(NIGHT,), prices=free_at_night()), "leave times unpriced"),
        (dict(prices=prices("0.05")[:1]), "no price for direction 'out'"),
        (dict(prices=prices("0.05") + prices("0.06")), "two prices for any time"),
        (dict(prices=prices("0.05"), default_class="local"), "default_class: 'local' has no prices"),
        (dict(), "expected volume prices, time prices or both"),
        (dict(prices=prices("0.05"), bands=[NIGHT, NIGHT]), "names must be unique"),
        (
            dict(prices=prices("0"), allowance=Allowance(included_bytes=1, overage=Block(), classes={"x"})),
            r"classes \['x'\] have no prices",
        ),
        (
            dict(prices=prices("0"), allowance=Allowance(included_bytes=1, overage=CHARGE_IN_ONLY)),
            r"overage prices: no price for \['internet/out'\]",
        ),
        (
            dict(time_prices=(TimePrice(),), allowance=Allowance(included_bytes=1, overage=Block())),
            "no volume prices to count",
        ),
    ],
    ids=[
        "overlapping bands",
        "unknown band",
        "gap without any-time price",
        "one direction only",
        "duplicate price",
        "default class unpriced",
        "nothing priced",
        "duplicate band name",
        "allowance class unpriced",
        "overage incomplete",
        "allowance without volume",
    ],
)
def test_inconsistent_plans_are_refused_saying_what_is_wrong(plan: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        UsagePlan(**plan)


def test_overlapping_bands_are_fine_for_different_classes() -> None:
    local = prices("0.01", traffic_class="local")
    local_free_early = tuple(
        UsagePrice(traffic_class="local", direction=d, band="early", free=True) for d in Direction
    )
    plan = UsagePlan(bands=(NIGHT, EARLY), prices=prices("0.05") + free_at_night() + local + local_free_early)
    traffic = (ClassOctets(INTERNET, 2 * MB), ClassOctets("local", 2 * MB))
    rating = rate([delta("2024-01-15T05:00:00", "2024-01-15T07:00:00", traffic=traffic)], plan)
    # 06:00-08:00 Berlin: internet is free in the night band until 07:00; local in "early" (06:00-09:00).
    assert [(line.traffic_class, line.band, line.kind, line.quantity) for line in rating.lines] == [
        (INTERNET, None, LineKind.CHARGED, MB),
        (INTERNET, "night", LineKind.FREE, MB),
        ("local", "early", LineKind.FREE, 2 * MB),
    ]


def test_an_unknown_class_is_refused_when_the_plan_has_no_default() -> None:
    plan = UsagePlan(prices=prices("0.05"), default_class=None)
    traffic = (ClassOctets("peering", 1, 0),)
    with pytest.raises(UsageError, match=r"traffic class 'peering' has no price .* no default class"):
        rate([delta("2024-01-15T11:00:00", "2024-01-15T12:00:00", traffic=traffic)], plan)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(tz="Europe/Berlin"), "tz: expected a zoneinfo.ZoneInfo"),
        (dict(allowance_used_before=-1), "allowance_used_before: expected at least 0"),
        (dict(allowance_used_before=1.0), "allowance_used_before: expected an integer"),
        (dict(rounding=2), "rounding: expected the tariff's RoundingRule"),
    ],
)
def test_bad_rating_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    given_arguments = dict(tz=BERLIN, allowance_used_before=0, rounding=HALF_UP) | arguments
    with pytest.raises(UsageError, match=message):
        rate_usage([], UsagePlan(prices=prices("0.05")), **given_arguments)


def test_a_delta_is_kept_in_utc_and_its_classes_sorted() -> None:
    start = datetime(2024, 1, 15, 12, 0, tzinfo=BERLIN)
    made = UsageDelta(start=start, end=start, traffic=[ClassOctets("local"), ClassOctets(INTERNET)])
    assert made.start.tzinfo is UTC and made.start == start
    assert [entry.traffic_class for entry in made.traffic] == [INTERNET, "local"]


# -- properties ------------------------------------------------------------------------------------

DST_CHANGES: dict[str, tuple[str, ...]] = {
    "UTC": (),
    "Asia/Kolkata": (),  # +05:30 all year
    "Europe/Berlin": ("2024-03-31T01:00:00", "2024-10-27T01:00:00"),
    "America/New_York": ("2024-03-10T07:00:00", "2024-11-03T06:00:00"),
    "Australia/Lord_Howe": ("2024-04-06T15:00:00", "2024-10-05T15:30:00"),  # a half-hour DST
    "America/Santiago": ("2024-04-07T03:00:00", "2024-09-08T04:00:00"),  # at local midnight
}
"""The zones the properties run in, with the UTC instants of their 2024 DST changes."""
zones = st.sampled_from(sorted(DST_CHANGES))
CLASSES = [INTERNET, "local"]
DST_HOURS = [*range(0, 12_600 + 1, 900), *range(82_800, 86_400, 900)]
"""Quarter hours from 23:00 to 03:30, when clocks change: band edges drawn from them fall in skipped
and repeated wall-clock times."""


@st.composite
def intervals(
    draw: st.DrawFn, zone: str, *, step: timedelta = timedelta(microseconds=1)
) -> tuple[datetime, datetime]:
    """``[start, end)`` in 2024, bounds on multiples of ``step``. In a zone with DST, half of them
    span one of its changes (by up to 12 h each side); the others start anywhere, last up to 3 days."""
    steps_a_day = timedelta(days=1) // step
    if DST_CHANGES[zone] and draw(st.booleans()):
        change = at(draw(st.sampled_from(DST_CHANGES[zone])))
        before, after = (draw(st.integers(0, steps_a_day // 2)) for _ in range(2))
        return change - step * before, change + step * after
    start = at("2024-01-01T00:00:00") + step * draw(st.integers(0, 365 * steps_a_day))
    return start, start + step * draw(st.integers(0, 3 * steps_a_day))


@st.composite
def partition_bands(draw: st.DrawFn) -> tuple[TimeBand, ...]:
    """Bands that cut the day into consecutive windows (so never overlap), some on some days only."""
    cuts = sorted(draw(st.sets(st.integers(0, 86_399) | st.sampled_from(DST_HOURS), min_size=1, max_size=4)))
    bands = []
    for position, first in enumerate(cuts):
        last = cuts[(position + 1) % len(cuts)]
        days = draw(st.none() | st.frozensets(st.integers(0, 6), min_size=1))
        bands.append(TimeBand(f"b{position}", _clock(first), _clock(last), days))
    return tuple(bands)


def _clock(seconds: int) -> time:
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60)


money = st.decimals(min_value=0, max_value=Decimal(2), places=4)


@st.composite
def usage_prices(
    draw: st.DrawFn,
    bands: tuple[TimeBand, ...],
    traffic_class: str,
    direction: Direction,
    *,
    free_allowed: bool = True,
) -> list[UsagePrice]:
    unit = draw(st.sampled_from([1, 1000, MB, MIB]))
    increment = draw(st.integers(1, 10))

    def price(band: str | None) -> UsagePrice:
        free = free_allowed and band is not None and draw(st.booleans())
        return UsagePrice(
            traffic_class=traffic_class,
            direction=direction,
            band=band,
            price=Decimal(0) if free else draw(money),
            unit_bytes=unit,
            increment_units=increment,
            free=free,
        )

    chosen = draw(st.lists(st.sampled_from(bands), unique=True)) if bands else []
    return [price(None), *(price(band.name) for band in chosen)]


@st.composite
def plans(draw: st.DrawFn, *, allowance: bool = True) -> UsagePlan:
    bands = draw(st.just(()) | partition_bands())
    volume = [p for c in CLASSES for d in Direction for p in draw(usage_prices(bands, c, d))]
    time_prices = []
    if draw(st.booleans()):
        time_prices = [TimePrice(price_per_minute=draw(money), increment_seconds=draw(st.integers(1, 90)))]
        time_prices += [
            TimePrice(
                band=band.name, price_per_minute=draw(money), increment_seconds=draw(st.integers(1, 90))
            )
            for band in draw(
                st.lists(st.sampled_from(bands), unique=True, max_size=2) if bands else st.just([])
            )
        ]
    limit = None
    if allowance and draw(st.booleans()):
        classes = draw(st.frozensets(st.sampled_from(CLASSES), min_size=1))
        directions = draw(st.frozensets(st.sampled_from(list(Direction)), min_size=1))
        overage = draw(st.sampled_from(["charge", "throttle", "block"]))
        if overage == "charge":
            counted = [(c, d) for c in sorted(classes) for d in sorted(directions)]
            policy: Any = OverageCharge(
                tuple(p for c, d in counted for p in draw(usage_prices(bands, c, d, free_allowed=False)))
            )
        else:
            policy = Throttle("256k") if overage == "throttle" else Block()
        limit = Allowance(
            included_bytes=draw(st.integers(0, 50 * MB)),
            overage=policy,
            classes=classes,
            directions=directions,
        )
    return UsagePlan(bands=bands, prices=tuple(volume), time_prices=tuple(time_prices), allowance=limit)


@st.composite
def usage_deltas(draw: st.DrawFn, zone: str) -> UsageDelta:
    start, end = draw(intervals(zone))
    length = end - start
    classes = draw(st.lists(st.sampled_from([*CLASSES, "peering"]), unique=True, max_size=3))
    octets = st.integers(0, 10**10)
    traffic = tuple(ClassOctets(c, draw(octets), draw(octets)) for c in classes)
    seconds = draw(st.integers(0, int(length.total_seconds())))
    return UsageDelta(start=start, end=start + length, traffic=traffic, session_seconds=seconds)


@PROPERTY
@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**9), min_size=1, max_size=20))
def test_allocation_is_exact_and_each_share_within_one_of_its_exact_share(
    total: int, weights: list[int]
) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total
    if sum(weights):
        for share, weight in zip(shares, weights, strict=True):
            assert abs(share - Fraction(total * weight, sum(weights))) < 1


@PROPERTY
@given(zones, partition_bands(), st.data())
def test_segments_tile_the_interval_and_each_stays_in_one_set_of_bands(
    zone: str, bands: tuple[TimeBand, ...], data: st.DataObject
) -> None:
    """Checked at both ends of every piece, against :meth:`TimeBand.covers` of the wall clock."""
    tz = ZoneInfo(zone)
    start, end = data.draw(intervals(zone))
    segments = band_segments(start, end, bands, tz)
    assert segments[0].start == start and segments[-1].end == end
    for before, after in pairwise(segments):
        assert before.end == after.start and before.bands != after.bands
    for segment in segments:
        for instant in (segment.start, max(segment.start, segment.end - timedelta(microseconds=1))):
            wall = instant.astimezone(tz)
            assert segment.bands == {band.name for band in bands if band.covers(wall)}


@PROPERTY
@given(plans(), zones, st.integers(0, 60 * MB), st.data())
def test_splitting_over_bands_conserves_octets_and_seconds_exactly(
    plan: UsagePlan, zone: str, used: int, data: st.DataObject
) -> None:
    deltas = data.draw(st.lists(usage_deltas(zone), min_size=1, max_size=4))
    rating = rate(deltas, plan, used, ZoneInfo(zone))
    measured: Counter[tuple[Any, ...]] = Counter()
    for one in deltas:
        for entry in one.traffic:
            rated_as = entry.traffic_class if entry.traffic_class in CLASSES else INTERNET
            for direction in Direction:
                measured[(Measure.VOLUME, rated_as, direction)] += entry.octets(direction)
        if plan.time_prices:
            measured[(Measure.TIME, None, None)] += one.session_seconds
    rated: Counter[tuple[Any, ...]] = Counter()
    for line in rating.lines:
        rated[(line.measure, line.traffic_class, line.direction)] += line.quantity
    assert +rated == +measured


@PROPERTY
@given(plans(), zones, st.data())
def test_the_order_of_the_deltas_changes_nothing(plan: UsagePlan, zone: str, data: st.DataObject) -> None:
    deltas = data.draw(st.lists(usage_deltas(zone), min_size=2, max_size=5))
    shuffled = data.draw(st.permutations(deltas))
    assert rate(shuffled, plan, 0, ZoneInfo(zone)) == rate(deltas, plan, 0, ZoneInfo(zone))


@PROPERTY
@given(plans(), zones, st.integers(0, 60 * MB), st.data())
def test_amounts_are_never_negative(plan: UsagePlan, zone: str, used: int, data: st.DataObject) -> None:
    deltas = data.draw(st.lists(usage_deltas(zone), max_size=4))
    rating = rate(deltas, plan, used, ZoneInfo(zone))
    assert rating.total >= 0
    assert all(line.amount >= 0 and line.exact_amount >= 0 for line in rating.lines)


@st.composite
def steady_usage(draw: st.DrawFn, zone: str) -> tuple[UsageDelta, UsageDelta, UsageDelta]:
    """One delta at a constant whole rate per second, and the same cut in two at a whole second.

    With whole-second band boundaries every piece's exact share is a whole number of octets, so
    the split itself introduces no rounding: any difference would be the rating's.
    """
    start, end = draw(intervals(zone, step=timedelta(seconds=1)))
    seconds = max(2, int((end - start).total_seconds()))
    cut = draw(st.integers(1, seconds - 1))
    rates = {c: (draw(st.integers(0, 10_000)), draw(st.integers(0, 10_000))) for c in CLASSES}

    def piece(first: int, last: int) -> UsageDelta:
        length = last - first
        traffic = tuple(ClassOctets(c, r_in * length, r_out * length) for c, (r_in, r_out) in rates.items())
        return UsageDelta(
            start=start + timedelta(seconds=first),
            end=start + timedelta(seconds=last),
            traffic=traffic,
            session_seconds=length,
        )

    return piece(0, seconds), piece(0, cut), piece(cut, seconds)


@PROPERTY
@given(plans(), zones, st.integers(0, 60 * MB), st.data())
def test_cutting_a_delta_in_two_changes_nothing_when_both_halves_are_rated_together(
    plan: UsagePlan, zone: str, used: int, data: st.DataObject
) -> None:
    whole, first, second = data.draw(steady_usage(zone))
    tz = ZoneInfo(zone)
    assert rate([first, second], plan, used, tz) == rate([whole], plan, used, tz)


@PROPERTY
@given(plans(), zones, st.integers(0, 60 * MB), st.data())
def test_rating_the_halves_separately_adds_at_most_one_increment_per_line(
    plan: UsagePlan, zone: str, used: int, data: st.DataObject
) -> None:
    """Exactly: per line key, the halves' quantities sum to the whole's, and their billable volumes
    sum to the whole's billable volume or to that plus one increment (ceil(a) + ceil(b) - ceil(a + b)
    is 0 or 1 increment). The allowance carries over from the first call to the second."""
    whole, first, second = data.draw(steady_usage(zone))
    tz = ZoneInfo(zone)
    together = rate([whole], plan, used, tz)
    early = rate([first], plan, used, tz)
    late = rate([second], plan, early.allowance_used_after, tz)
    assert late.allowance_used_after == together.allowance_used_after
    assert (early.allowance_exhausted_at or late.allowance_exhausted_at) == together.allowance_exhausted_at
    keyed = {_key(line): line for line in together.lines}
    halves: dict[tuple[Any, ...], list[Any]] = {}
    for line in early.lines + late.lines:
        halves.setdefault(_key(line), []).append(line)
    assert set(halves) == set(keyed)
    for key, parts in halves.items():
        assert sum(part.quantity for part in parts) == keyed[key].quantity
        extra = sum(part.billable for part in parts) - keyed[key].billable
        assert extra in (0, _increment(plan, keyed[key]))


def _key(line: Any) -> tuple[Any, ...]:
    return (line.measure, line.traffic_class, line.direction, line.band, line.kind)


def _increment(plan: UsagePlan, line: Any) -> int:
    """The increment of the price behind ``line`` (0 for lines that are not billed)."""
    if line.kind in (LineKind.FREE, LineKind.INCLUDED):
        return 0
    if line.measure is Measure.TIME:
        return next(p.increment_seconds for p in plan.time_prices if p.band == line.band)
    price_list = plan.prices
    if line.kind is LineKind.OVERAGE:
        assert plan.allowance is not None and isinstance(plan.allowance.overage, OverageCharge)
        price_list = plan.allowance.overage.prices
    return next(
        p.increment_bytes
        for p in price_list
        if (p.traffic_class, p.direction, p.band) == (line.traffic_class, line.direction, line.band)
    )
