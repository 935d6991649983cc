"""``billing-admin service``: actions, scheduling, history, evaluate, bad input and permissions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session

from billing import accounts
from billing.db.services import Service
from billing.db.tariffs import TariffRow

if TYPE_CHECKING:
    from conftest import Cli

LIFECYCLE_TABLES = (
    "service_status_changes",
    "scheduled_service_changes",
    "voluntary_suspensions",
    "provisioning_tasks",
    "audit_log",
)


@pytest.fixture
def service(populated: Cli) -> int:
    """An active Internet service on account 100001."""
    with Session(populated.engine) as s, s.begin():
        row = Service(
            account_id=accounts.find(s, "100001").id,
            kind="internet",
            status="active",
            created_at=datetime.now(UTC) - timedelta(days=30),
        )
        s.add(row)
        s.add_all(TariffRow(code=code, name=code, kind="internet") for code in ("home-100", "home-200"))
        s.flush()
        return row.id


def test_block_unblock_and_history(populated: Cli, service: int) -> None:
    out = populated.json("service", "block", str(service), "--reason", "customer_request")
    assert out["status"] == "blocked" and out["changes"][0]["provisioning_task_id"]
    populated.ok("service", "unblock", str(service), "--reason", "customer_request")
    found = populated.json("service", "history", str(service))
    assert [(c["event"], c["to_status"]) for c in found["changes"]] == [
        ("block", "blocked"),
        ("unblock", "active"),
    ]
    assert populated.count("provisioning_tasks") == 2
    table = populated.ok("service", "history", str(service)).stdout
    assert "unblock" in table and "customer_request" in table


def test_unknown_reason_exits_1_naming_the_field_and_valid_codes(populated: Cli, service: int) -> None:
    before = populated.counts(*LIFECYCLE_TABLES)
    result = populated("service", "block", str(service), "--reason", "whim")
    assert result.exit_code == 1
    assert "reason: 'whim'" in result.output and "non_payment" in result.output
    assert populated.counts(*LIFECYCLE_TABLES) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("resume", "{id}", "--reason", "customer_request"), "not suspended voluntarily"),
        (
            ("block", "{id}", "--reason", "customer_request", "--at", "2001-01-01"),
            "at: 2001-01-01 is in the past",
        ),
        (("block", "{id}", "--reason", "customer_request", "--at", "soon"), "--at: expected a date"),
        (("block", "999", "--reason", "customer_request"), "service_id: no service 999"),
        (("suspend", "{id}", "--reason", "customer_request", "--until", "2001-01-01"), "must end after"),
    ],
)
def test_bad_input_exits_1_and_writes_nothing(
    populated: Cli, service: int, args: tuple[str, ...], message: str
) -> None:
    before = populated.counts(*LIFECYCLE_TABLES)
    result = populated("service", *(a.format(id=service) for a in args))
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert populated.counts(*LIFECYCLE_TABLES) == before


def test_future_dated_change_is_scheduled_and_evaluate_applies_it(populated: Cli, service: int) -> None:
    effective = date.today() + timedelta(days=3)
    out = populated.json(
        "service",
        "change-tariff",
        str(service),
        "home-200",
        "--reason",
        "customer_request",
        "--at",
        effective.isoformat(),
    )
    assert out["changes"] == [] and out["scheduled"][0]["effective"] == effective.isoformat()
    assert populated.json("service", "evaluate")["changes"] == []
    report = populated.json("service", "evaluate", "--as-of", f"{effective.isoformat()}T12:00")
    assert [(c["event"], c["tariff_code"]) for c in report["changes"]] == [("change_tariff", "home-200")]
    again = populated.json("service", "evaluate", "--as-of", f"{effective.isoformat()}T12:00")
    assert again["changes"] == [] and again["services_checked"] == 1
    assert populated.json("service", "history", str(service))["tariff_code"] == "home-200"


def test_voluntary_suspension_from_the_cli(populated: Cli, service: int) -> None:
    until = date.today() + timedelta(days=14)
    out = populated.json(
        "service", "suspend", str(service), "--reason", "customer_request", "--until", until.isoformat()
    )
    assert out["status"] == "suspended_voluntary"
    assert out["scheduled"][0]["event"] == "resume" and out["scheduled"][0]["effective"] == until.isoformat()
    assert populated.count("voluntary_suspensions") == 1


def test_permissions(populated: Cli, service: int) -> None:
    denied = populated("service", "block", str(service), "--reason", "customer_request", user="helpdesk")
    assert denied.exit_code == 3 and "services.change_status" in denied.output
    assert populated("service", "history", str(service), "--json", user="helpdesk").exit_code == 0
    assert populated("service", "evaluate", user="helpdesk").exit_code == 3
    populated.ok("service", "block", str(service), "--reason", "customer_request", user="clerk")
    assert populated.count("audit_log", "WHERE action = 'permission.denied'") == 2
