"""``billing-admin subscribers``: create, show, list, update, close; bad input writes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cli

TABLES = ("customers", "contacts", "accounts", "ledger_accounts", "audit_log")


def test_create_show_list_update_close(populated: Cli) -> None:
    cli = populated
    created = cli.json(
        "subscribers", "create", "--kind", "company", "--name", "ACME GmbH", "--tax-id", "DE123",
        "--category", "business", "--region", "south", "--address", "Main St 1", "--credit-limit", "150.50",
        "--billing-mode", "postpaid",
    )  # fmt: skip
    [account] = created["accounts"]
    assert account["number"] == "100002"  # the fixture's subscriber got 100001
    assert account["currency"] == "EUR" and account["credit_limit"] == "150.500000"
    assert account["balance"] == "0.000000" and account["available"] == "150.500000"
    assert created["contacts"] == [{"kind": "address", "value": "Main St 1"}]
    assert created["created_at"].endswith("Z")
    assert cli.count("ledger_accounts", "WHERE code = 'acct:100002' AND kind = 'subscriber'") == 1

    shown = cli.ok("subscribers", "show", "100001").stdout
    assert "Ann Lee" in shown and "ann@example.net" in shown and "100001" in shown

    listed = cli.json("subscribers", "list", "--category", "business")
    assert [r["account_number"] for r in listed] == ["100002"]
    assert [r["name"] for r in cli.json("subscribers", "list", "--name", "acme")] == ["ACME GmbH"]
    assert len(cli.json("subscribers", "list", "--limit", "1")) == 1
    assert "ACME GmbH" in cli.ok("subscribers", "list").stdout

    updated = cli.json("subscribers", "update", "100002", "--region", "north", "--credit-limit", "0")
    assert updated["region"] == "north" and updated["accounts"][0]["credit_limit"] == "0.000000"
    [entry] = cli.json("audit", "search", "--action", "subscriber.update")
    assert entry["before"]["region"] == "south" and entry["after"]["region"] == "north"
    assert entry["object_id"] == "100002" and entry["operator_login"]

    closed = cli.json("subscribers", "close", "100002")
    assert closed["status"] == "closed" and closed["accounts"][0]["status"] == "closed"
    assert closed["accounts"][0]["closed_at"]
    assert [r["account_number"] for r in cli.json("subscribers", "list", "--status", "closed")] == ["100002"]


def test_given_account_number_and_every_mutation_audited(populated: Cli) -> None:
    cli = populated
    before = cli.count("audit_log", "WHERE action = 'subscriber.create'")
    cli.ok("subscribers", "create", "--name", "Bo", "--category", "residential", "--region", "north",
           "--account-number", "A-77")  # fmt: skip
    assert cli.count("audit_log", "WHERE action = 'subscriber.create'") == before + 1
    [entry] = cli.json("audit", "search", "--object-id", "A-77")
    assert entry["action"] == "subscriber.create" and entry["before"] is None
    assert entry["after"]["accounts"][0]["number"] == "A-77" and entry["source"] == "cli"


def test_close_refuses_nonzero_balance_unless_forced(populated: Cli) -> None:
    cli = populated
    cli.ok("ledger", "adjust", "100001", "5.00", "--reason", "goodwill")
    refused = cli("subscribers", "close", "100001")
    assert refused.exit_code == 1
    assert "balance" in refused.stderr and "5.000000 EUR" in refused.stderr and "--force" in refused.stderr
    assert cli.count("accounts", "WHERE status = 'closed'") == 0
    assert cli("subscribers", "close", "100001", "--force").exit_code == 1  # no reason
    closed = cli.json("subscribers", "close", "100001", "--force", "--reason", "write-off")
    assert closed["accounts"][0]["status"] == "closed"
    [entry] = cli.json("audit", "search", "--action", "subscriber.close")
    assert entry["after"]["forced"] is True and entry["after"]["reason"] == "write-off"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--credit-limit", "-5"], "credit_limit"),
        (["--credit-limit", "lots"], "credit_limit"),
        (["--category", "vip"], "category"),
        (["--region", "west"], "region"),
        (["--account-number", "100001"], "account_number"),
        (["--email", "not-an-address"], "email"),
    ],
)
def test_bad_create_input_names_the_field_and_writes_nothing(
    populated: Cli, args: list[str], field: str
) -> None:
    cli = populated
    before = cli.counts(*TABLES)
    base = {"--name": "Cy", "--category": "residential", "--region": "north"}
    for option, value in zip(args[::2], args[1::2], strict=True):
        base[option] = value
    result = cli("subscribers", "create", *[x for pair in base.items() for x in pair])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {field}:"), result.stderr
    assert cli.counts(*TABLES) == before
