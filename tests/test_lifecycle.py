"""The service lifecycle: the whole table against a matrix, day-by-day scenarios, rules and errors."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import product
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import lifecycle
from billing.db.services import SERVICE_KINDS, SERVICE_STATUSES
from billing.lifecycle import (
    TABLE,
    Event,
    Go,
    LifecycleError,
    Reason,
    Refuse,
    ServiceStatus,
    TransitionRefused,
    target,
)
from billing.lifecycle_facts import (
    AccountFacts,
    DatePeriod,
    ProvisioningIntent,
    ScheduledChange,
    ServiceFacts,
    Transition,
    VoluntarySuspension,
)
from billing.lifecycle_rules import (
    ANY_CATEGORY,
    DEFAULT_RULES,
    Charging,
    LifecycleRules,
    NetworkAccess,
    ReducedFee,
    ServiceKind,
    ServiceRules,
)
from billing.lifecycle_transitions import assess, evaluate, request_event, request_voluntary_suspension
from billing.status_meaning import STATUS_MEANING, meaning

ROOT = Path(__file__).resolve().parents[1]
S, E = ServiceStatus, Event
JUN_1, JUL_1 = date(2025, 6, 1), date(2025, 7, 1)

RULES = LifecycleRules(
    default=ServiceRules(
        grace_days=5,
        churn_after_days=30,
        voluntary_min_days=7,
        voluntary_max_days=30,
        voluntary_days_per_year=60,
        voluntary_fee=ReducedFee.fixed_amount(Decimal("2.00")),
    )
)


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def days(first: date, last: date) -> Iterator[date]:
    """Every day of ``[first, last]``, the way a nightly job sees them."""
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def service(
    status: ServiceStatus = S.ACTIVE, since: date = date(2025, 1, 1), **changes: object
) -> ServiceFacts:
    base = ServiceFacts(1, ServiceKind.INTERNET, status, at(since), tariff_code="home-100")
    return replace(base, **changes)


def funds(
    balance: str = "10", negative_since: date | None = None, category: str = "residential"
) -> AccountFacts:
    return AccountFacts(
        category, Decimal(balance), negative_since=None if negative_since is None else at(negative_since)
    )


def run_days(
    facts: ServiceFacts,
    account_on: Callable[[date], AccountFacts],
    first: date,
    last: date,
    rules: LifecycleRules,
) -> tuple[ServiceFacts, list[tuple[date, Transition]]]:
    """Evaluate every day, apply the result, and check the same day again finds nothing new."""
    log: list[tuple[date, Transition]] = []
    for day in days(first, last):
        account = account_on(day)
        transitions = evaluate(facts, account, rules, at(day))
        facts = facts.after(transitions)
        assert evaluate(facts, account, rules, at(day, hour=23)) == []
        log += [(day, t) for t in transitions]
    return facts, log


# ---------------------------------------------------------------------------------------------------
# The table

EXPECTED = """
            activate suspend_voluntary resume  suspend_for_debt debt_paid block unblock churn change_tariff
pending     act|inv  .                 .       .                .         .     .       chu   pen
active      .        vol               .       inv              .         blk   .       chu   act
voluntary   .        .                 act|inv inv              .         blk   .       chu   vol
involuntary .        .                 .       .                act       blk   .       chu   inv
blocked     .        .                 .       .                .         .     act|inv chu   .
churned     .        .                 .       .                .         .     .       .     .
"""
SHORT = {
    "pending": S.PENDING, "active": S.ACTIVE, "voluntary": S.SUSPENDED_VOLUNTARY,
    "involuntary": S.SUSPENDED_INVOLUNTARY, "blocked": S.BLOCKED, "churned": S.CHURNED,
    "pen": S.PENDING, "act": S.ACTIVE, "vol": S.SUSPENDED_VOLUNTARY, "inv": S.SUSPENDED_INVOLUNTARY,
    "blk": S.BLOCKED, "chu": S.CHURNED,
}  # fmt: skip


def expected_matrix() -> dict[tuple[ServiceStatus, Event], Go | None]:
    header, *rows = EXPECTED.strip().splitlines()
    events = [Event(name) for name in header.split()]
    matrix: dict[tuple[ServiceStatus, Event], Go | None] = {}
    for row in rows:
        name, *cells = row.split()
        for event, cell in zip(events, cells, strict=True):
            to, _, in_debt = cell.partition("|")
            matrix[(SHORT[name], event)] = None if cell == "." else Go(SHORT[to], SHORT.get(in_debt))
    return matrix


def test_every_status_event_pair_matches_the_expected_matrix() -> None:
    expected = expected_matrix()
    assert set(expected) == set(product(ServiceStatus, Event)) == set(TABLE)
    for pair, entry in TABLE.items():
        if expected[pair] is None:
            assert isinstance(entry, Refuse) and entry.reason, pair
        else:
            assert entry == expected[pair], pair


def test_the_table_in_the_module_docstring_is_the_table() -> None:
    doc = lifecycle.__doc__ or ""
    block = doc[doc.index("The machine") : doc.index("What a status means")]
    short = {"pending": "pen", "active": "act", "active*": "act|inv", "vol": "vol", "invol": "inv"}
    short |= {"blocked": "blk", "churned": "chu", ".": "."}
    shown = {}
    for line in block.splitlines():
        name, *cells = line.split() or [""]
        if line.startswith("  ") and name in set(ServiceStatus):
            shown[ServiceStatus(name)] = [short[cell] for cell in cells]
    matrix = expected_matrix()
    assert shown == {s: [cell(matrix[(s, e)]) for e in Event] for s in ServiceStatus}


def cell(entry: Go | None) -> str:
    """An entry in the short form of EXPECTED."""
    if entry is None:
        return "."
    short = {status: code for code, status in SHORT.items() if len(code) == 3}
    return short[entry.to] + (f"|{short[entry.in_debt]}" if entry.in_debt else "")


def test_statuses_and_kinds_are_the_databases() -> None:
    assert tuple(ServiceStatus) == SERVICE_STATUSES
    assert tuple(ServiceKind) == SERVICE_KINDS


def test_target_follows_the_debt_branch_and_refuses_with_the_reason() -> None:
    assert target(S.BLOCKED, E.UNBLOCK) is S.ACTIVE
    assert target(S.BLOCKED, E.UNBLOCK, in_debt=True) is S.SUSPENDED_INVOLUNTARY
    assert target(S.ACTIVE, E.BLOCK, in_debt=True) is S.BLOCKED
    with pytest.raises(
        TransitionRefused, match="churn refused for a churned service: churned is terminal"
    ) as err:
        target(S.CHURNED, E.CHURN)
    assert (err.value.status, err.value.event) == (S.CHURNED, E.CHURN)


def test_each_status_carries_its_charging_and_network_meaning() -> None:
    walled, denied = ServiceRules(), ServiceRules(debt_network=NetworkAccess.DENY)
    shown = {s: (meaning(s, walled).charging, meaning(s, walled).network) for s in ServiceStatus}
    assert shown == {
        S.PENDING: (Charging.NONE, NetworkAccess.DENY),
        S.ACTIVE: (Charging.FULL, NetworkAccess.ALLOW),
        S.SUSPENDED_VOLUNTARY: (Charging.REDUCED, NetworkAccess.DENY),
        S.SUSPENDED_INVOLUNTARY: (Charging.NONE, NetworkAccess.WALLED_GARDEN),
        S.BLOCKED: (Charging.NONE, NetworkAccess.DENY),
        S.CHURNED: (Charging.NONE, NetworkAccess.DENY),
    }
    assert meaning(S.SUSPENDED_INVOLUNTARY, denied).network is NetworkAccess.DENY
    assert set(STATUS_MEANING) == set(ServiceStatus)
    fee = meaning(S.SUSPENDED_VOLUNTARY, RULES.default).reduced_fee
    assert fee is not None and fee.amount(Decimal("25.00")) == Decimal("2.00")
    assert ReducedFee.share(Decimal("0.2")).amount(Decimal("25.00")) == Decimal("5.000")
    assert meaning(S.ACTIVE, walled).reduced_fee is None


# ---------------------------------------------------------------------------------------------------
# Purity


def test_importing_the_lifecycle_pulls_in_no_database_or_io_library() -> None:
    code = (
        "import sys, billing.lifecycle\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'sqlalchemy', 'psycopg', 'twisted'}"
        " or m.startswith('billing.db'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", ["billing/lifecycle.py", "billing/lifecycle_rules.py"])
def test_the_lifecycle_imports_only_the_standard_library_and_its_rules(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
    assert ours <= {"billing.lifecycle_rules"}


# ---------------------------------------------------------------------------------------------------
# Rules


def test_rule_lookup_is_exact_then_kind_wide_then_default() -> None:
    exact, kind_wide, default = ServiceRules(grace_days=15), ServiceRules(grace_days=10), ServiceRules()
    rules = LifecycleRules(
        default=default,
        overrides={
            (ServiceKind.INTERNET, "business"): exact,
            (ServiceKind.INTERNET, ANY_CATEGORY): kind_wide,
        },
    )
    assert rules.lookup(ServiceKind.INTERNET, "business") is exact
    assert rules.lookup("internet", "residential") is kind_wide
    assert rules.lookup(ServiceKind.TV, "business") is default
    assert DEFAULT_RULES.lookup("tv", "vip").debt_network is NetworkAccess.DENY
    assert not DEFAULT_RULES.lookup("one_time", "residential").voluntary_offered


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LifecycleRules(overrides={("radio", "*"): ServiceRules()}), "unknown service kind 'radio'"),
        (lambda: LifecycleRules(overrides={("tv", ""): ServiceRules()}), "empty category"),
        (lambda: ServiceRules(grace_days=-1), "grace_days"),
        (lambda: ServiceRules(churn_after_days=0), "churn_after_days"),
        (lambda: ServiceRules(debt_network=NetworkAccess.ALLOW), "debt_network"),
        (lambda: ServiceRules(voluntary_min_days=40, voluntary_max_days=30), "min <= max"),
        (lambda: ServiceRules(voluntary_min_days=0), "voluntary_min_days: expected >= 1"),
        (lambda: ServiceRules(voluntary_days_per_year=-1), "voluntary_days_per_year"),
        (lambda: ReducedFee(), "exactly one"),
        (lambda: ReducedFee(fixed=Decimal(1), fraction=Decimal(0)), "exactly one"),
        (lambda: ReducedFee.share(Decimal("1.5")), "0 to 1"),
        (lambda: ReducedFee.fixed_amount(Decimal(-1)), ">= 0"),
        (lambda: ReducedFee.fixed_amount(0.5), "Decimal"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------------------------------------------
# Money scenarios, day by day


def test_non_payment_grace_suspension_then_payment_resumes_automatically() -> None:
    def account_on(day: date) -> AccountFacts:
        return funds("-4.50", date(2025, 3, 3)) if date(2025, 3, 3) <= day < date(2025, 3, 20) else funds("1")

    facts, log = run_days(service(), account_on, date(2025, 3, 1), date(2025, 4, 30), RULES)
    assert [(day, t.event, t.from_status, t.to_status) for day, t in log] == [
        (date(2025, 3, 8), E.SUSPEND_FOR_DEBT, S.ACTIVE, S.SUSPENDED_INVOLUNTARY),  # 5 days' grace: 3..7
        (date(2025, 3, 20), E.DEBT_PAID, S.SUSPENDED_INVOLUNTARY, S.ACTIVE),
    ]
    suspended, resumed = (t for _, t in log)
    assert (suspended.reason, suspended.operator, suspended.when) == (
        Reason.NON_PAYMENT,
        None,
        at(date(2025, 3, 8)),
    )
    assert suspended.provisioning == ProvisioningIntent(1, NetworkAccess.WALLED_GARDEN)
    assert resumed.reason == Reason.PAYMENT_RECEIVED
    assert resumed.provisioning == ProvisioningIntent(1, NetworkAccess.ALLOW, "home-100")
    assert facts.status is S.ACTIVE


def test_non_payment_churns_after_n_days_in_involuntary_suspension_and_cancels_what_was_scheduled() -> None:
    later = ScheduledChange(
        date(2025, 6, 1), E.CHANGE_TARIFF, "customer_request", "alice", tariff_code="home-300"
    )
    start = service(scheduled=(later,))
    facts, log = run_days(
        start, lambda day: funds("-30", date(2025, 3, 3)), date(2025, 3, 1), date(2025, 6, 30), RULES
    )
    assert [(day, t.event) for day, t in log] == [
        (date(2025, 3, 8), E.SUSPEND_FOR_DEBT),
        (date(2025, 4, 7), E.CHURN),  # 30 days in suspension: 8 March .. 6 April
    ]
    churn = log[-1][1]
    assert churn.provisioning == ProvisioningIntent(1, NetworkAccess.DENY, release=True)
    assert churn.cancels == (later,)
    assert (facts.status, facts.scheduled) == (S.CHURNED, ())


def test_without_automatic_resume_an_operator_applies_debt_paid_once_funds_cover_the_debt() -> None:
    manual = LifecycleRules(default=ServiceRules(auto_resume_on_payment=False, churn_after_days=10))
    suspended = service(S.SUSPENDED_INVOLUNTARY, since=date(2025, 3, 8))
    _, log = run_days(suspended, lambda day: funds("5"), date(2025, 3, 8), date(2025, 4, 30), manual)
    assert log == []  # paid, so neither resumed nor churned
    in_debt = funds("-1", date(2025, 3, 1))
    with pytest.raises(LifecycleError, match=r"debt_paid: funds are -1; the debt is not paid"):
        request_event(
            suspended, in_debt, manual, E.DEBT_PAID, at(date(2025, 3, 9)), reason="p", operator="al"
        )
    t = request_event(
        suspended, funds("5"), manual, E.DEBT_PAID, at(date(2025, 3, 9)), reason="payment", operator="bob"
    )
    assert (t.to_status, t.operator, t.reason) == (S.ACTIVE, "bob", "payment")


def test_the_day_is_the_operators_local_day() -> None:
    plus3 = LifecycleRules(default=RULES.default, time_zone=timezone(timedelta(hours=3)))
    account = funds("-1", date(2025, 3, 3))  # negative since 3 March 10:00 UTC = 13:00 local
    assert evaluate(service(), account, plus3, datetime(2025, 3, 7, 20, 59, tzinfo=UTC)) == []
    assert [t.event for t in evaluate(service(), account, plus3, datetime(2025, 3, 7, 21, tzinfo=UTC))] == [
        E.SUSPEND_FOR_DEBT
    ]


# ---------------------------------------------------------------------------------------------------
# Operator events


def test_a_transition_records_from_to_event_when_reason_and_operator() -> None:
    t = request_event(
        service(), funds(), RULES, E.BLOCK, at(date(2025, 5, 1)), reason="fraud", operator="alice"
    )
    assert (t.service_id, t.from_status, t.to_status, t.event) == (1, S.ACTIVE, S.BLOCKED, E.BLOCK)
    assert (t.when, t.reason, t.operator) == (at(date(2025, 5, 1)), "fraud", "alice")
    assert t.provisioning == ProvisioningIntent(1, NetworkAccess.DENY)


@pytest.mark.parametrize(
    ("negative_since", "expected", "network"),
    [
        (None, S.ACTIVE, NetworkAccess.ALLOW),
        (date(2025, 4, 28), S.ACTIVE, NetworkAccess.ALLOW),  # in debt, still in grace
        (date(2025, 4, 1), S.SUSPENDED_INVOLUNTARY, NetworkAccess.WALLED_GARDEN),  # grace expired
    ],
)
def test_unblock_returns_to_active_or_to_debt_suspension(
    negative_since: date | None, expected: ServiceStatus, network: NetworkAccess
) -> None:
    account = funds("5") if negative_since is None else funds("-5", negative_since)
    blocked = service(S.BLOCKED, since=date(2025, 4, 20))
    t = request_event(
        blocked, account, RULES, E.UNBLOCK, at(date(2025, 5, 1)), reason="cleared", operator="alice"
    )
    assert t.to_status is expected
    assert t.provisioning is not None and t.provisioning.network is network
    assert evaluate(blocked.after([t]), account, RULES, at(date(2025, 5, 1))) == []


def test_activation_of_an_account_long_in_debt_lands_in_debt_suspension() -> None:
    pending = service(S.PENDING)
    in_debt = funds("-9", date(2025, 1, 2))
    t = request_event(
        pending, in_debt, RULES, E.ACTIVATE, at(date(2025, 2, 1)), reason="done", operator="tech"
    )
    assert t.to_status is S.SUSPENDED_INVOLUNTARY
    assert t.provisioning == ProvisioningIntent(1, NetworkAccess.WALLED_GARDEN)


@pytest.mark.parametrize(
    ("status", "event", "kwargs", "message"),
    [
        (S.CHURNED, E.ACTIVATE, {}, "activate refused for a churned service: churned is terminal"),
        (S.ACTIVE, E.SUSPEND_VOLUNTARY, {}, "use request_voluntary_suspension"),
        (S.ACTIVE, E.CHANGE_TARIFF, {}, "change_tariff: the new tariff_code is required"),
        (S.ACTIVE, E.CHANGE_TARIFF, {"tariff_code": "home-100"}, "already on tariff home-100"),
        (S.ACTIVE, E.BLOCK, {"tariff_code": "x"}, "block: tariff_code is only for change_tariff"),
        (S.ACTIVE, E.BLOCK, {"reason": ""}, "a reason code from the status_reason dictionary is required"),
        (S.SUSPENDED_INVOLUNTARY, E.RESUME, {}, "it ends with debt_paid"),
    ],
)
def test_refused_operator_events_name_the_rule(
    status: ServiceStatus, event: Event, kwargs: dict[str, str], message: str
) -> None:
    arguments: dict[str, str | None] = {"reason": "r", "operator": "alice", **kwargs}
    with pytest.raises(LifecycleError, match=message):
        request_event(service(status), funds(), RULES, event, at(date(2025, 5, 1)), **arguments)  # type: ignore[arg-type]


def test_naive_times_and_inconsistent_facts_are_refused() -> None:
    with pytest.raises(LifecycleError, match="as_of: expected an aware datetime"):
        evaluate(service(), funds(), RULES, datetime(2025, 5, 1))
    with pytest.raises(LifecycleError, match="negative_since: must be set exactly when funds are below zero"):
        AccountFacts("residential", Decimal("-1"))
    with pytest.raises(LifecycleError, match="negative_since"):
        funds("0", date(2025, 5, 1))
    with pytest.raises(LifecycleError, match="balance: expected a Decimal"):
        AccountFacts("residential", 1.5)  # type: ignore[arg-type]
    with pytest.raises(LifecycleError, match="suspend_for_debt follows the balance and cannot be scheduled"):
        ScheduledChange(date(2025, 5, 1), E.SUSPEND_FOR_DEBT, "r", None)


# ---------------------------------------------------------------------------------------------------
# Voluntary suspension


def test_voluntary_suspension_without_an_end_returns_automatically_at_the_maximum() -> None:
    request = suspend(service(), JUN_1, JUN_1, None)
    assert request.period == DatePeriod(JUN_1, JUL_1)  # 30 days, the maximum
    assert request.transition is not None and request.transition.to_status is S.SUSPENDED_VOLUNTARY
    assert request.transition.provisioning == ProvisioningIntent(1, NetworkAccess.DENY)
    assert request.scheduled == (ScheduledChange(JUL_1, E.RESUME, Reason.VOLUNTARY_SUSPENSION_END, None),)
    facts = service().after([request.transition])
    facts = replace(facts, scheduled=request.scheduled, voluntary_periods=(request.period,))
    facts, log = run_days(facts, lambda day: funds(), date(2025, 6, 1), date(2025, 7, 31), RULES)
    assert [(day, t.event, t.reason, t.operator) for day, t in log] == [
        (date(2025, 7, 1), E.RESUME, Reason.VOLUNTARY_SUSPENSION_END, None)
    ]
    assert log[0][1].provisioning == ProvisioningIntent(1, NetworkAccess.ALLOW, "home-100")
    assert (facts.status, facts.scheduled) == (S.ACTIVE, ())


def test_a_voluntary_suspension_with_no_scheduled_return_ends_at_the_maximum_anyway() -> None:
    facts = service(S.SUSPENDED_VOLUNTARY, since=date(2025, 6, 1))
    _, log = run_days(facts, lambda day: funds(), date(2025, 6, 1), date(2025, 7, 31), RULES)
    assert [(day, t.event, t.reason) for day, t in log] == [
        (date(2025, 7, 1), E.RESUME, Reason.VOLUNTARY_SUSPENSION_MAX)
    ]


def test_a_future_voluntary_suspension_is_scheduled_and_happens_on_its_days() -> None:
    request = request_voluntary_suspension(
        service(),
        funds(),
        RULES,
        at(JUN_1),
        start=date(2025, 6, 10),
        end=date(2025, 6, 20),
        reason="v",
        operator="alice",
    )
    assert request.transition is None
    assert [(c.effective, c.event) for c in request.scheduled] == [
        (date(2025, 6, 10), E.SUSPEND_VOLUNTARY),
        (date(2025, 6, 20), E.RESUME),
    ]
    facts = service(scheduled=request.scheduled, voluntary_periods=(request.period,))
    _, log = run_days(facts, lambda day: funds(), date(2025, 6, 1), date(2025, 6, 30), RULES)
    assert [(day, t.event, t.operator) for day, t in log] == [
        (date(2025, 6, 10), E.SUSPEND_VOLUNTARY, "alice"),
        (date(2025, 6, 20), E.RESUME, None),
    ]


def test_an_early_return_records_the_days_taken_and_cancels_the_scheduled_return() -> None:
    period = DatePeriod(date(2025, 6, 1), date(2025, 7, 1))
    back = ScheduledChange(period.end, E.RESUME, Reason.VOLUNTARY_SUSPENSION_END, None)
    facts = service(S.SUSPENDED_VOLUNTARY, since=period.start, scheduled=(back,), voluntary_periods=(period,))
    t = request_event(facts, funds(), RULES, E.RESUME, at(date(2025, 6, 11)), reason="back", operator="alice")
    assert t.voluntary_taken == DatePeriod(date(2025, 6, 1), date(2025, 6, 11))
    assert t.cancels == (back,)
    after = facts.after([t])
    assert (after.scheduled, after.voluntary_periods) == ((), (t.voluntary_taken,))


def test_debt_during_a_voluntary_suspension_suspends_for_debt_and_ends_the_voluntary_one() -> None:
    period = DatePeriod(date(2025, 6, 1), date(2025, 7, 1))
    back = ScheduledChange(period.end, E.RESUME, Reason.VOLUNTARY_SUSPENSION_END, None)
    facts = service(S.SUSPENDED_VOLUNTARY, since=period.start, scheduled=(back,), voluntary_periods=(period,))
    facts, log = run_days(
        facts, lambda day: funds("-2", date(2025, 6, 5)), date(2025, 6, 1), date(2025, 6, 30), RULES
    )
    assert [(day, t.event) for day, t in log] == [(date(2025, 6, 10), E.SUSPEND_FOR_DEBT)]
    assert facts.scheduled == () and facts.voluntary_periods == (DatePeriod(period.start, date(2025, 6, 10)),)


def yearly(*periods: tuple[date, date]) -> ServiceFacts:
    return service(voluntary_periods=tuple(DatePeriod(a, b) for a, b in periods))


def suspend(facts: ServiceFacts, today: date, start: date, end: date | None) -> VoluntarySuspension:
    return request_voluntary_suspension(
        facts, funds(), RULES, at(today), start=start, end=end, reason="vacation", operator=None
    )


def test_the_yearly_cap_is_counted_per_calendar_year_across_the_boundary() -> None:
    # 2025: 30 + 21 = 51 of 60 days taken, 9 left.
    facts = yearly((date(2025, 10, 1), date(2025, 10, 31)), (date(2025, 11, 10), date(2025, 12, 1)))
    message = "^only 9 of 60 days of voluntary suspension left this year; the request needs 12$"
    with pytest.raises(LifecycleError, match=message):
        suspend(facts, date(2025, 12, 15), date(2025, 12, 20), date(2026, 1, 10))
    request = suspend(
        facts, date(2025, 12, 15), date(2025, 12, 23), date(2026, 1, 12)
    )  # 9 in 2025, 11 in 2026
    assert request.period.days == 20
    # The return across the boundary, day by day.
    facts = replace(
        facts, scheduled=request.scheduled, voluntary_periods=(*facts.voluntary_periods, request.period)
    )
    _, log = run_days(facts, lambda day: funds(), date(2025, 12, 15), date(2026, 1, 31), RULES)
    assert [(day, t.event) for day, t in log] == [
        (date(2025, 12, 23), E.SUSPEND_VOLUNTARY),
        (date(2026, 1, 12), E.RESUME),
    ]


def test_the_yearly_cap_of_next_year_names_that_year() -> None:
    facts = yearly(
        (date(2026, 1, 15), date(2026, 2, 14)), (date(2026, 3, 1), date(2026, 3, 26))
    )  # 55 in 2026
    message = "only 5 of 60 days of voluntary suspension left in 2026; the request needs 9"
    with pytest.raises(LifecycleError, match=message):
        suspend(facts, date(2025, 12, 15), date(2025, 12, 24), date(2026, 1, 10))


@pytest.mark.parametrize(
    ("facts", "account", "start", "end", "message"),
    [
        (service(), funds(), JUN_1, date(2025, 9, 29), "of 120 days exceeds the maximum of 30 days"),
        (service(), funds(), JUN_1, date(2025, 6, 4), "of 3 days is below the minimum of 7 days"),
        (
            service(),
            funds(),
            date(2025, 5, 30),
            None,
            "cannot start in the past: 2025-05-30 is before 2025-06-01",
        ),
        (service(), funds(), date(2025, 6, 5), date(2025, 6, 5), "must end after it starts"),
        (service(S.BLOCKED), funds(), JUN_1, None, "suspend_voluntary refused for a blocked service"),
        (service(), funds("-1", date(2025, 5, 1)), JUN_1, None, "funds are -1 past the grace period"),
        (
            yearly((date(2025, 6, 20), JUL_1)),
            funds(),
            JUN_1,
            None,
            r"overlaps the one of \[2025-06-20, 2025-07-01\)",
        ),
        (service(kind=ServiceKind.ONE_TIME), funds(), JUN_1, None, "not offered for one_time services"),
    ],
)
def test_a_voluntary_suspension_request_names_the_broken_rule(
    facts: ServiceFacts, account: AccountFacts, start: date, end: date | None, message: str
) -> None:
    no_suspension = ServiceRules(voluntary_min_days=0, voluntary_max_days=0)
    rules = replace(RULES, overrides={(ServiceKind.ONE_TIME, ANY_CATEGORY): no_suspension})
    with pytest.raises(LifecycleError, match=message):
        request_voluntary_suspension(
            facts, account, rules, at(JUN_1), start=start, end=end, reason="vacation", operator="alice"
        )


# ---------------------------------------------------------------------------------------------------
# Scheduled changes


def test_a_scheduled_tariff_change_happens_on_its_day_and_reprovisions_when_allowed() -> None:
    change = ScheduledChange(
        date(2025, 4, 1), E.CHANGE_TARIFF, "customer_request", "alice", tariff_code="home-300"
    )
    facts, log = run_days(
        service(scheduled=(change,)), lambda day: funds(), date(2025, 3, 25), date(2025, 4, 10), RULES
    )
    assert [(day, t.event, t.from_status, t.to_status, t.tariff_code) for day, t in log] == [
        (date(2025, 4, 1), E.CHANGE_TARIFF, S.ACTIVE, S.ACTIVE, "home-300")
    ]
    assert log[0][1].scheduled == change and log[0][1].operator == "alice"
    assert log[0][1].provisioning == ProvisioningIntent(1, NetworkAccess.ALLOW, "home-300")
    assert (facts.tariff_code, facts.scheduled) == ("home-300", ())
    # While suspended the network has nothing to change; the new profile comes with the resume.
    suspended = service(S.SUSPENDED_VOLUNTARY, since=date(2025, 3, 25), scheduled=(change,))
    assert [t.provisioning for t in evaluate(suspended, funds(), RULES, at(date(2025, 4, 1)))] == [None]


def test_a_due_change_the_table_refuses_is_reported_and_consumed() -> None:
    change = ScheduledChange(date(2025, 4, 1), E.ACTIVATE, "installation", "tech")
    facts = service(S.BLOCKED, scheduled=(change,))
    result = assess(facts, funds(), RULES, at(date(2025, 4, 2)))
    assert result.transitions == ()
    assert [(r.change, r.status, r.reason) for r in result.refused] == [
        (change, S.BLOCKED, "blocked: unblock first (unblock checks the debt)")
    ]
    assert facts.after(result.transitions, result.refused).scheduled == ()


# ---------------------------------------------------------------------------------------------------
# Properties

SCHEDULABLE = [e for e in Event if e not in (E.SUSPEND_FOR_DEBT, E.DEBT_PAID)]
TODAY = date(2025, 6, 15)


@st.composite
def scheduled_changes(draw: st.DrawFn) -> ScheduledChange:
    event = draw(st.sampled_from(SCHEDULABLE))
    tariff = draw(st.sampled_from(["home-200", "home-300"])) if event is E.CHANGE_TARIFF else None
    effective = TODAY + timedelta(days=draw(st.integers(-40, 5)))
    return ScheduledChange(effective, event, "r", draw(st.sampled_from([None, "alice"])), tariff)


@st.composite
def situations(draw: st.DrawFn) -> tuple[ServiceFacts, AccountFacts, LifecycleRules]:
    since = TODAY - timedelta(days=draw(st.integers(0, 120)))
    period = None
    if draw(st.booleans()):
        start = TODAY - timedelta(days=draw(st.integers(-5, 40)))
        period = DatePeriod(start, start + timedelta(days=draw(st.integers(0, 40))))
    facts = ServiceFacts(
        7,
        draw(st.sampled_from(ServiceKind)),
        draw(st.sampled_from(ServiceStatus)),
        at(since),
        "home-100",
        scheduled=tuple(draw(st.lists(scheduled_changes(), max_size=4))),
        voluntary_periods=() if period is None else (period,),
    )
    balance = draw(st.sampled_from(["-20", "-0.01", "0", "15"]))
    negative = TODAY - timedelta(days=draw(st.integers(0, 60))) if Decimal(balance) < 0 else None
    rules = ServiceRules(
        grace_days=draw(st.one_of(st.none(), st.integers(0, 10))),
        churn_after_days=draw(st.one_of(st.none(), st.integers(1, 60))),
        auto_resume_on_payment=draw(st.booleans()),
        debt_network=draw(st.sampled_from([NetworkAccess.WALLED_GARDEN, NetworkAccess.DENY])),
        voluntary_min_days=1,
        voluntary_max_days=draw(st.integers(1, 40)),
    )
    return facts, funds(balance, negative), LifecycleRules(default=rules)


@settings(max_examples=200, deadline=None)
@given(situations(), st.integers(0, 23))
def test_assess_is_consistent_and_idempotent(
    situation: tuple[ServiceFacts, AccountFacts, LifecycleRules], hour: int
) -> None:
    facts, account, rules = situation
    as_of = at(TODAY, hour)
    result = assess(facts, account, rules, as_of)
    status = facts.status
    for t in result.transitions:
        assert t.from_status is status and status is not S.CHURNED
        assert isinstance(TABLE[(t.from_status, t.event)], Go)
        assert t.to_status in (target(status, t.event), target(status, t.event, in_debt=True))
        status = t.to_status
    settled = facts.after(result.transitions, result.refused)
    assert assess(settled, account, rules, as_of) == assess(settled, account, rules, at(TODAY, 23))
    assert evaluate(settled, account, rules, as_of) == []
    assert assess(settled, account, rules, as_of).refused == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(Event), st.booleans()), max_size=30))
def test_random_event_sequences_stay_in_the_table_and_never_leave_churned(
    events: list[tuple[Event, bool]],
) -> None:
    status = S.PENDING
    for event, in_debt in events:
        entry = TABLE[(status, event)]  # every pair is defined
        if status is S.CHURNED:
            assert isinstance(entry, Refuse)
        try:
            status = target(status, event, in_debt=in_debt)
        except TransitionRefused as refused:
            assert isinstance(entry, Refuse) and refused.reason == entry.reason
        assert status in ServiceStatus
