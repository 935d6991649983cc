"""``billing-admin charge``: run, dry run, re-run, runs/show, bad input, permissions."""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session

from billing import accounts
from billing.catalog import assign_tariff
from billing.db.services import Service
from billing.permissions import resolve_actor

if TYPE_CHECKING:
    from conftest import Cli

CATALOG = Path(__file__).resolve().parents[1] / "golden" / "charges" / "catalog.toml"
RUN_TABLES = (
    "charges",
    "charge_runs",
    "charge_run_errors",
    "charge_marks",
    "ledger_transactions",
    "audit_log",
)
DAY = "2027-01-01"


@pytest.fixture
def subscribed(populated: Cli) -> Cli:
    """``populated`` plus the golden charge catalog and two M-PRE services from 2027-01-01.

    Each service owes, on that day, the installation fee (50.00) and January (31.00).
    """
    populated.ok("tariff", "import", str(CATALOG))
    populated.ok(
        "subscribers", "create", "--name", "Bo Chan", "--category", "residential", "--region", "north"
    )
    with Session(populated.engine) as s, s.begin():
        actor = resolve_actor(s, getpass.getuser(), source="test")
        for number in ("100001", "100002"):
            service = Service(account_id=accounts.find(s, number).id, kind="internet", status="active")
            s.add(service)
            s.flush()
            assign_tariff(s, actor, service.id, "M-PRE", date(2027, 1, 1))
    return populated


def test_dry_run_writes_nothing_then_run_then_re_run_posts_nothing(subscribed: Cli) -> None:
    before = subscribed.counts(*RUN_TABLES)
    dry = subscribed.json("charge", "run", "--date", DAY, "--dry-run")
    assert dry["dry_run"] and dry["run_id"] is None
    assert (dry["services_seen"], dry["charges_posted"], dry["totals"]) == (2, 4, {"EUR": "162.00"})
    assert len(dry["would_post"]) == 4
    assert subscribed.counts(*RUN_TABLES) == before
    table = subscribed.ok("charge", "run", "--date", DAY, "--dry-run").stdout
    assert "dry run (nothing written)" in table and "would post" in table
    assert subscribed.counts(*RUN_TABLES) == before

    done = subscribed.json("charge", "run", "--date", DAY)
    assert not done["dry_run"] and done["run_id"]
    assert (done["services_charged"], done["charges_posted"], done["errors"]) == (2, 4, [])
    assert subscribed.count("charges") == 4 and subscribed.count("charge_marks") == 2
    assert subscribed.count("ledger_transactions", "WHERE kind = 'charge'") == 4
    assert subscribed.count("audit_log", "WHERE action = 'charges.run'") == 1

    after = subscribed.counts("charges", "ledger_transactions", "charge_marks")
    again = subscribed.ok("charge", "run", "--date", DAY).stdout
    assert "charges posted" in again
    rerun = subscribed.json("charge", "runs")[0]
    assert (rerun["charges_posted"], rerun["services_skipped"], rerun["services_seen"]) == (0, 2, 2)
    assert subscribed.counts("charges", "ledger_transactions", "charge_marks") == after


def test_runs_and_show(subscribed: Cli) -> None:
    first = subscribed.json("charge", "run", "--date", DAY)["run_id"]
    second = subscribed.json("charge", "run", "--date", "2027-01-02", "--subscribers", "account=100001")[
        "run_id"
    ]
    runs = subscribed.json("charge", "runs")
    assert [r["id"] for r in runs] == [second, first]
    assert runs[1]["status"] == "completed" and runs[1]["totals"] == {"EUR": "162.00"}
    assert runs[0]["subscribers"] == "account=100001" and runs[0]["services_seen"] == 1
    listed = subscribed.ok("charge", "runs").stdout
    assert "charge runs" in listed and "EUR 162.00" in listed
    shown = subscribed.json("charge", "show", str(first))
    assert (shown["as_of"], shown["charges_posted"], shown["error_rows"]) == (DAY, 4, [])
    text = subscribed.ok("charge", "show", str(first)).stdout
    assert f"charge run {first}" in text and "completed" in text
    missing = subscribed("charge", "show", "9999")
    assert missing.exit_code == 1 and "run_id: no charge run 9999" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2027-02-30"], "--date: expected a date YYYY-MM-DD, got '2027-02-30'"),
        (["--date", "tomorrow"], "--date: expected a date YYYY-MM-DD, got 'tomorrow'"),
        (["--date", DAY, "--subscribers", "customer=1"], "subscribers: expected service=ID[,ID]"),
        (["--date", DAY, "--subscribers", "service=one"], "subscribers: service ids are numbers"),
        (["--date", DAY, "--batch-size", "0"], "batch_size: expected 1 or more, got 0"),
    ],
)
def test_bad_input_exits_1_naming_the_problem_and_writes_nothing(
    subscribed: Cli, args: list[str], message: str
) -> None:
    before = subscribed.counts(*RUN_TABLES)
    refused = subscribed("charge", "run", *args)
    assert refused.exit_code == 1, refused.output
    assert message in refused.output
    assert subscribed.counts(*RUN_TABLES) == before


def test_permissions(subscribed: Cli) -> None:
    before = subscribed.counts("charges", "charge_runs", "charge_marks", "ledger_transactions")
    refused = subscribed("charge", "run", "--date", DAY, user="helpdesk")
    assert refused.exit_code == 3
    assert subscribed.counts("charges", "charge_runs", "charge_marks", "ledger_transactions") == before
    assert subscribed.count("audit_log", "WHERE action = 'permission.denied' AND outcome = 'denied'") == 1
    assert subscribed("charge", "runs", user="helpdesk").exit_code == 0  # support may look
    assert subscribed("charge", "run", "--date", DAY, user="nobody").exit_code == 3
    assert subscribed.json("charge", "run", "--date", DAY, user="clerk")["charges_posted"] == 4
