"""The pure charge plan: golden cases as data (tests/golden/charges/*.toml) and its laws."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from billing.charge_plan import ChargeFacts, ChargeKind, PlanCache, plan_charges, usage_windows
from rating.catalog import Catalog, load_catalog
from rating.traffic import INTERNET, ClassOctets, UsageDelta

GOLDEN = Path(__file__).parent / "golden" / "charges"
CATALOG = load_catalog((GOLDEN / "catalog.toml").read_text(), source="catalog.toml")
CASES = tomllib.loads((GOLDEN / "cases.toml").read_text())["cases"]


def facts_of(case: dict[str, Any], catalog: Catalog = CATALOG) -> ChargeFacts:
    return ChargeFacts(
        service_id=1,
        service_kind="internet",
        tariffs=tuple((date.fromisoformat(d), catalog.tariff(code)) for d, code in case["tariffs"]),
        statuses=tuple((date.fromisoformat(d), status) for d, status in case["statuses"]),
        activated_on=case["activated_on"],
        anchor_day=case.get("anchor_day", 1),
        promotion=catalog.promotion(case["promotion"]) if "promotion" in case else None,
    )


def daily_clock(facts: ChargeFacts, start: date, end: date) -> list[tuple[str, str, str]]:
    """Move a test clock day by day, keeping each line the first day it is due (as a run would)."""
    seen: dict[str, tuple[str, str, str]] = {}
    day = start
    while day < end:
        for line in plan_charges(facts, day):
            if line.idempotency_key not in seen:
                assert line.due_on <= day
                seen[line.idempotency_key] = (
                    str(day),
                    line.idempotency_key.split(":", 2)[2],
                    str(line.amount),
                )
        day += timedelta(days=1)
    return list(seen.values())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_plan_cache_gives_each_service_the_plan_of_its_own_facts(case: dict[str, Any]) -> None:
    """A cached plan reused for another service equals that service's own plan, key for key."""
    cache = PlanCache()
    first = facts_of(case)
    rules = first.rules
    for day in (date(2027, 1, 1), date(2027, 1, 20), date(2027, 2, 1), date(2027, 3, 15)):
        for service_id in (1, 7, 1234, 1):
            facts = replace(first, service_id=service_id, rules=rules)
            assert cache.plan(facts, day) == plan_charges(facts, day)
    assert (cache.misses, cache.hits) == (4, 12)
    other = replace(first, service_id=7, rules=rules, anchor_day=2)  # another case: priced afresh
    assert cache.plan(other, date(2027, 2, 1)) == plan_charges(other, date(2027, 2, 1))
    assert cache.misses == 5


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(case: dict[str, Any]) -> None:
    facts = facts_of(case)
    until = case.get("until", date(2027, 4, 2))
    got = daily_clock(facts, date(2026, 12, 25), until)
    assert got == [tuple(line) for line in case["due"]]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_late_run_catches_up_with_the_same_lines(case: dict[str, Any]) -> None:
    """Running only every tenth day plans exactly the lines of a daily run (same keys, same amounts)."""
    facts = facts_of(case)
    until = case.get("until", date(2027, 4, 2))
    daily = {k: (k, a) for _, k, a in daily_clock(facts, date(2026, 12, 25), until)}
    sparse: dict[str, tuple[str, str]] = {}
    day = date(2026, 12, 25)
    while day < until + timedelta(days=10):
        for line in plan_charges(facts, min(day, until - timedelta(days=1))):
            sparse.setdefault(line.idempotency_key, (line.idempotency_key.split(":", 2)[2], str(line.amount)))
        day += timedelta(days=10)
    assert sorted(sparse.values()) == sorted(daily.values())


def test_lines_of_a_period_sum_to_its_actual_cost() -> None:
    """Advance plus adjustments of a period equal the prorated cost of what really happened."""
    case = next(c for c in CASES if c["name"].startswith("voluntary"))
    lines = [
        line for d in range(0, 70) for line in plan_charges(facts_of(case), date(2027, 1, 1) + timedelta(d))
    ]
    unique = {line.idempotency_key: line for line in lines}.values()
    january = sum(
        (
            x.amount
            for x in unique
            if x.period_start == date(2027, 1, 1) and x.kind is not ChargeKind.ONE_TIME
        ),
        Decimal(0),
    )
    assert january == Decimal("10.00")  # 10 active days of 31 at 31.00


def test_nothing_before_activation_and_nothing_for_a_service_never_activated() -> None:
    case = CASES[0]
    assert plan_charges(facts_of(case), date(2027, 1, 9)) == []
    never = ChargeFacts(1, "internet", ((date(2027, 1, 1), CATALOG.tariff("M-PRE")),), (), None)
    assert plan_charges(never, date(2027, 3, 1)) == []


def test_keys_are_one_per_subscription_period_and_version() -> None:
    lines = plan_charges(facts_of(CASES[0]), date(2027, 2, 1))
    assert [line.idempotency_key for line in lines] == [
        "charge:1:one_time:installation:2027-01-10",
        "charge:1:recurring:2027-01-01:M-PRE:1",
        "charge:1:recurring:2027-02-01:M-PRE:1",
    ]
    assert {line.fingerprint for line in lines} == {
        CATALOG.fingerprint(CATALOG.tariff("M-PRE"), CATALOG.tariff("M-PRE").version(1))
    }


# --------------------------------------------------------------------------- rated usage (postpaid)


def delta(recorded: str, seconds: int, down_gb: str, up_gb: str) -> UsageDelta:
    """A session_usage row as the run turns it into a delta: ``[recorded - seconds, recorded)``."""
    end = datetime.fromisoformat(recorded).replace(tzinfo=UTC)
    gb = Decimal(10**9)
    return UsageDelta(
        start=end - timedelta(seconds=seconds),
        end=end,
        traffic=(ClassOctets(INTERNET, int(Decimal(down_gb) * gb), int(Decimal(up_gb) * gb)),),
        session_seconds=seconds,
    )


USAGE = (
    delta("2027-01-05T12:00:00", 3600, "8", "1"),  # day: 9 GB of the 10 GB allowance
    delta("2027-01-10T04:00:00", 3600, "50", "1"),  # night: download free; upload uses the last GB
    delta("2027-01-20T12:00:00", 3600, "3", "0.5"),  # past the allowance: overage 1.00 / GB
    delta("2027-01-31T23:59:59", 7200, "1.5", "0"),  # still January in UTC
    delta("2027-02-01T00:00:00", 60, "7", "7"),  # recorded at February's first instant: February
)


def usage_facts(time_zone: str = "UTC", usage: tuple[UsageDelta, ...] = USAGE) -> ChargeFacts:
    return ChargeFacts(
        service_id=1,
        service_kind="internet",
        tariffs=((date(2027, 1, 1), CATALOG.tariff("U-POST")),),
        statuses=((date(2027, 1, 1), "active"),),
        activated_on=date(2027, 1, 1),
        usage=usage,
        time_zone=ZoneInfo(time_zone),
    )


def test_postpaid_usage_is_rated_per_period_and_due_with_the_fee_in_arrears() -> None:
    """Allowance, free night band, overage increments on the period's totals: one line, exact."""
    got = daily_clock(usage_facts(), date(2027, 1, 1), date(2027, 3, 2))
    # January: in overage 3 + 1.5 = 4.5 GB -> 5 GB x 1.00, out overage 0.5 GB -> 1 GB x 1.00.
    # February starts a fresh 10 GB allowance: 7 + 7 GB counted, 10 GB shared 5/5, 2 + 2 GB over.
    assert got == [
        ("2027-02-01", "recurring:2027-01-01:U-POST:1", "20.00"),
        ("2027-02-01", "usage:2027-01-01:U-POST:1", "6.00"),
        ("2027-03-01", "recurring:2027-02-01:U-POST:1", "20.00"),
        ("2027-03-01", "usage:2027-02-01:U-POST:1", "4.00"),
    ]
    line = next(x for x in plan_charges(usage_facts(), date(2027, 2, 1)) if x.kind is ChargeKind.USAGE)
    tariff = CATALOG.tariff("U-POST")
    assert (line.due_on, line.period_start, line.period_end) == (
        date(2027, 2, 1),
        date(2027, 1, 1),
        date(2027, 2, 1),
    )
    assert line.fingerprint == CATALOG.fingerprint(tariff, tariff.version(1))
    assert "internet" in line.description


def test_usage_periods_are_local_days_of_the_operator_time_zone() -> None:
    """In Berlin January ends at 23:00 UTC: the last evening's usage is February's."""
    got = daily_clock(usage_facts("Europe/Berlin"), date(2027, 1, 1), date(2027, 2, 2))
    assert ("2027-02-01", "usage:2027-01-01:U-POST:1", "4.00") in got
    windows = usage_windows(usage_facts("Europe/Berlin"), date(2027, 2, 1))
    assert [(w.period_start, w.due_on, w.start, w.end) for w in windows] == [
        (
            date(2027, 1, 1),
            date(2027, 2, 1),
            datetime(2026, 12, 31, 23, tzinfo=UTC),
            datetime(2027, 1, 31, 23, tzinfo=UTC),
        )
    ]
    assert usage_windows(usage_facts(), date(2027, 2, 1), after=date(2027, 2, 1)) == []
    assert usage_windows(usage_facts(), date(2027, 1, 31)) == []


def test_no_usage_line_when_the_usage_costs_nothing() -> None:
    """Within the allowance or at night the rating is zero: no line, only the fee."""
    cheap = (delta("2027-01-05T12:00:00", 3600, "8", "1"), delta("2027-01-10T04:00:00", 3600, "90", "0"))
    lines = plan_charges(usage_facts(usage=cheap), date(2027, 2, 1))
    assert [line.kind for line in lines] == [ChargeKind.RECURRING]


def test_plan_cache_never_shares_a_plan_with_usage() -> None:
    """Usage differs per service: such facts are planned on their own, never cached or served."""
    cache = PlanCache()
    day = date(2027, 2, 1)
    plain = usage_facts(usage=())
    assert cache.plan(plain, day) == plan_charges(plain, day)  # the fee only: cached
    metered = replace(plain, service_id=2, usage=USAGE)
    assert cache.plan(metered, day) == plan_charges(metered, day)
    assert [line.kind for line in cache.plan(metered, day)] == [ChargeKind.RECURRING, ChargeKind.USAGE]
    other = replace(plain, service_id=3)
    assert [line.idempotency_key for line in cache.plan(other, day)] == [
        "charge:3:recurring:2027-01-01:U-POST:1"
    ]
    assert (cache.misses, cache.hits, cache.individual) == (1, 1, 2)
