"""``billing-admin ledger``: adjust, balance, statement, reverse; bad input writes nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cli

TABLES = ("ledger_transactions", "postings", "audit_log")


def test_adjust_balance_statement_reverse(populated: Cli) -> None:
    cli = populated
    cli.ok("subscribers", "update", "100001", "--credit-limit", "20")
    credit = cli.json("ledger", "adjust", "100001", "25.00", "--reason", "goodwill", "--key", "t-1")
    assert credit["created"] is True and credit["amount"] == "25.000000" and credit["balance"] == "25.000000"
    again = cli.json("ledger", "adjust", "100001", "25.00", "--reason", "goodwill", "--key", "t-1")
    assert again["created"] is False and again["transaction_id"] == credit["transaction_id"]
    debit = cli.json("ledger", "adjust", "100001", "-10", "--reason", "correction", "--description", "fix")
    assert debit["balance"] == "15.000000"
    assert "balance 5.00 EUR" in cli.ok("ledger", "adjust", "100001", "-10", "--reason", "correction").stdout

    balance = cli.json("ledger", "balance", "100001")
    assert balance == {
        "account_number": "100001",
        "currency": "EUR",
        "balance": "5.000000",
        "credit_limit": "20.000000",
        "available": "25.000000",
    }
    assert "available" in cli.ok("ledger", "balance", "100001").stdout

    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    start = (date.today() - timedelta(days=2)).isoformat()
    statement = cli.json("ledger", "statement", "100001", "--from", start, "--to", tomorrow)
    assert statement["opening"] == "0.000000" and statement["closing"] == "5.000000"
    assert [line["balance_after"] for line in statement["lines"]] == ["25.000000", "15.000000", "5.000000"]
    assert [line["description"] for line in statement["lines"]][1] == "fix"
    later = cli.json("ledger", "statement", "100001", "--from", tomorrow, "--to", "2999-01-01")
    assert later["opening"] == "5.000000" and later["lines"] == []
    assert "closing balance" in cli.ok("ledger", "statement", "100001").stdout

    reversal = cli.json("ledger", "reverse", str(debit["transaction_id"]), "--reason", "wrong account")
    assert reversal["reverses_id"] == debit["transaction_id"]
    assert cli.json("ledger", "balance", "100001")["balance"] == "15.000000"
    twice = cli("ledger", "reverse", str(debit["transaction_id"]), "--reason", "again")
    assert twice.exit_code == 1 and "already reversed" in twice.stderr

    audited = cli.json("audit", "search", "--action", "ledger.*")
    assert [e["action"] for e in audited] == [
        "ledger.reverse",
        "ledger.adjust",
        "ledger.adjust",
        "ledger.adjust",
    ]
    assert audited[-1]["before"] == {"balance": "0.000000"} and audited[-1]["after"]["balance"] == "25.000000"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["ledger", "adjust", "100001", "0", "--reason", "goodwill"], "amount"),
        (["ledger", "adjust", "100001", "ten", "--reason", "goodwill"], "amount"),
        (["ledger", "adjust", "100001", "1.001", "--reason", "goodwill"], "amount"),
        (["ledger", "adjust", "999999", "5", "--reason", "goodwill"], "account_number"),
        (["ledger", "adjust", "100001", "5", "--reason", "bribe"], "reason"),
        (["ledger", "statement", "100001", "--from", "2025-13-01"], "--from"),
        (["ledger", "statement", "100001", "--from", "2025-02-01", "--to", "2025-01-01"], "--to"),
        (["ledger", "balance", "nope"], "account_number"),
        (["ledger", "reverse", "12345", "--reason", "x"], "transaction_id"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(populated: Cli, args: list[str], field: str) -> None:
    cli = populated
    before = cli.counts(*TABLES)
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {field}:"), result.stderr
    assert cli.counts(*TABLES) == before


def test_unknown_reason_lists_valid_codes(populated: Cli) -> None:
    result = populated("ledger", "adjust", "100001", "5", "--reason", "bribe")
    assert (
        "adjustment_reason" in result.stderr and "goodwill" in result.stderr and "correction" in result.stderr
    )
