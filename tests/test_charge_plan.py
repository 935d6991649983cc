"""The pure charge plan: golden cases as data (tests/golden/charges/*.toml) and its laws."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.charge_plan import ChargeFacts, ChargeKind, PlanCache, plan_charges
from rating.catalog import Catalog, load_catalog

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
