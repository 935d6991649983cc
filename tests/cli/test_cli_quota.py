"""``billing-admin quota``: list reservations (by account, open only), show one, bad input, permissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from billing import accounts
from billing.books import book_account
from billing.db.services import Service
from billing.quota import (
    AllowancePeriod,
    Counters,
    commit_usage,
    deltas_from_rows,
    lock_funds,
    release,
    reserve,
)
from rating.allowance import Allowance, Throttle
from rating.money import RoundingRule
from rating.quota import MeteredPlan, QuotaUnit
from rating.traffic import MB, Direction
from rating.usage_plan import UsagePlan
from rating.usage_prices import UsagePrice

if TYPE_CHECKING:
    from conftest import Cli

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
PER_MB = tuple(UsagePrice(direction=d, price=Decimal("0.01")) for d in Direction)
PLAN = MeteredPlan(
    "PAYG", UsagePlan(prices=PER_MB), RoundingRule(), "EUR", QuotaUnit(octets=100 * MB), ZoneInfo("UTC")
)
CAPPED = MeteredPlan(
    "CAPPED",
    UsagePlan(prices=PER_MB, allowance=Allowance(included_bytes=50 * MB, overage=Throttle("slow-64k"))),
    RoundingRule(),
    "EUR",
    QuotaUnit(octets=100 * MB),
    ZoneInfo("UTC"),
)
"""50 MB a month included, then 0.01 per MB and a CoA to slow-64k."""


def _session(s: Session, number: str, uid: str, plan: MeteredPlan, at: datetime, usage: list[int]) -> None:
    """Reserve for session ``uid`` at ``at``, then commit each cumulative download in ``usage`` (MB)."""
    account = accounts.find(s, number)
    service = Service(account_id=account.id, kind="internet", status="active")
    s.add(service)
    s.flush()
    funds = lock_funds(s, [account.id])[account.id]
    reserve(s, funds, acct_unique_id=uid, service_id=service.id, plan=plan, at=at)
    revenue = book_account(s, "revenue", "EUR", "internet")
    rows: list[tuple[datetime, int, int, int]] = []
    for n, megabytes in enumerate(usage, start=1):
        recorded = at + timedelta(minutes=5 * n)
        rows.append((recorded, 0, megabytes * MB - sum(r[2] for r in rows), 300))
        commit_usage(
            s,
            funds,
            acct_unique_id=uid,
            counters=Counters(0, megabytes * MB, 300 * n),
            deltas=deltas_from_rows(at, rows),
            plan=plan,
            revenue_account_id=revenue,
            at=recorded,
            allowance_period=AllowancePeriod(),
        )


@pytest.fixture
def reserved(populated: Cli) -> Cli:
    """Three sessions, oldest first.

    ``ann-1`` (account 100001, 1.50 to spend): 150 MB, then 200 MB at its Stop: charged 1.50, 0.50
    left unbilled, disconnected, closed. ``ann-2`` (after 2.00 more): 80 MB on the 50 MB plan:
    0.30 charged, throttled, open with a hold of 1.00. ``bo-1`` (account 100002): open, unused.
    """
    cli = populated
    cli.ok("subscribers", "create", "--name", "Bo Chan", "--category", "residential", "--region", "north")
    cli.ok("ledger", "adjust", "100001", "1.50", "--reason", "goodwill")
    cli.ok("ledger", "adjust", "100002", "5", "--reason", "goodwill")
    with Session(cli.engine) as s, s.begin():
        _session(s, "100001", "ann-1", PLAN, T0, [150])
        account = accounts.find(s, "100001")
        funds = lock_funds(s, [account.id])[account.id]
        stop = T0 + timedelta(minutes=15)
        release(
            s,
            funds,
            acct_unique_id="ann-1",
            counters=Counters(0, 200 * MB, 900),
            deltas=deltas_from_rows(
                T0, [(T0 + timedelta(minutes=5), 0, 150 * MB, 300), (stop, 0, 50 * MB, 600)]
            ),
            plan=PLAN,
            revenue_account_id=book_account(s, "revenue", "EUR", "internet"),
            at=stop,
        )
    cli.ok("ledger", "adjust", "100001", "2.00", "--reason", "goodwill")
    with Session(cli.engine) as s, s.begin():
        _session(s, "100001", "ann-2", CAPPED, T0 + timedelta(hours=1), [80])
        _session(s, "100002", "bo-1", PLAN, T0 + timedelta(hours=2), [])
    return cli


def test_list_is_newest_first_and_filters_by_account_and_open(reserved: Cli) -> None:
    everything = reserved.json("quota", "list")
    assert [r["session"] for r in everything] == ["bo-1", "ann-2", "ann-1"]
    ann_1 = everything[2]
    assert (ann_1["account"], ann_1["tariff_code"], ann_1["state"], ann_1["action"]) == (
        "100001",
        "PAYG",
        "closed",
        "disconnect",
    )
    assert (ann_1["reserved"], ann_1["committed"], ann_1["hold"], ann_1["unbilled"]) == (
        "1.500000",
        "1.500000",
        "0.000000",
        "0.500000",
    )
    assert [r["session"] for r in reserved.json("quota", "list", "--account", "100001")] == ["ann-2", "ann-1"]
    assert [r["session"] for r in reserved.json("quota", "list", "--open")] == ["bo-1", "ann-2"]
    assert [r["session"] for r in reserved.json("quota", "list", "--account", "100001", "--open")] == [
        "ann-2"
    ]
    assert [r["session"] for r in reserved.json("quota", "list", "--limit", "1")] == ["bo-1"]
    table = reserved.ok("quota", "list").stdout
    assert "Quota reservations (3)" in table and "ann-1" in table and "disconnect" in table


def test_show_has_the_money_the_high_water_mark_the_periods_and_the_tasks(reserved: Cli) -> None:
    shown = reserved.json("quota", "show", "ann-2")
    r = shown["reservation"]
    assert (r["account"], r["tariff_code"], r["state"], r["action"]) == (
        "100001",
        "CAPPED",
        "open",
        "throttle",
    )
    assert (r["reserved"], r["committed"], r["hold"], r["unbilled"]) == (
        "1.300000",
        "0.300000",
        "1.000000",
        "0.000000",
    )
    assert (shown["input_octets"], shown["output_octets"], shown["seconds"]) == (0, 80 * MB, 300)
    assert shown["allowance_used"] == 80 * MB
    assert shown["periods"] == [{"period_start": "2026-12-01", "allowance_used": 80 * MB}]
    assert shown["exhausted_at"] == "2026-12-01T11:05:00Z"
    [task] = shown["tasks"]
    assert (task["idempotency_key"], task["network"], task["speed_profile"], task["state"]) == (
        "quota:ann-2:throttle",
        "allow",
        "slow-64k",
        "pending",
    )
    closed = reserved.json("quota", "show", "ann-1")
    assert closed["reservation"]["closed_at"] == "2026-12-01T10:15:00Z" and closed["periods"] == []
    assert [t["network"] for t in closed["tasks"]] == ["deny"]
    assert reserved.json("quota", "show", "bo-1")["tasks"] == []
    text = reserved.ok("quota", "show", "ann-2").stdout
    for expected in (
        "quota reservation of session ann-2",
        "usage high-water mark",
        "80000000 octets (download)",
        "allowance used per billing period",
        "provisioning tasks",
        "quota:ann-2:throttle",
        "slow-64k",
    ):
        assert expected in text  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "session_id: no quota reservation for session 'nope'"),
        (["list", "--account", "999999"], "account_number: no account '999999'"),
    ],
)
def test_an_unknown_session_or_account_exits_1_naming_it(
    reserved: Cli, args: list[str], message: str
) -> None:
    refused = reserved("quota", *args)
    assert refused.exit_code == 1, refused.output
    assert message in refused.output


def test_reading_reservations_needs_quota_read(reserved: Cli) -> None:
    assert reserved.json("quota", "list", user="helpdesk")[0]["session"] == "bo-1"  # support may look
    assert reserved("quota", "show", "ann-2", user="clerk").exit_code == 0  # billing staff too
    reserved.ok("operators", "revoke", "helpdesk", "support")
    denied = reserved("quota", "show", "ann-2", user="helpdesk")
    assert denied.exit_code == 3 and "quota.read" in denied.stderr and "quota show" in denied.stderr
    assert (
        reserved.count("audit_log", "WHERE action = 'permission.denied' AND operator_login = 'helpdesk'") == 1
    )
    assert reserved("quota", "list", user="nobody").exit_code == 3
