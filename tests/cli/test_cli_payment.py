"""``billing-admin payment``: a cashier's payment (idempotent by receipt), cancel, show, list, permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli


def test_a_desk_payment_credits_once_per_receipt_and_can_be_cancelled_today(populated: Cli) -> None:
    cli = populated
    paid = cli.json(
        "payment", "add", "--account", "100001", "--amount", "25.00", "--receipt", "R-1", user="clerk"
    )
    again = cli.json(
        "payment", "add", "--account", "100001", "--amount", "25.00", "--receipt", "R-1", user="clerk"
    )
    assert (paid["created"], again["created"], again["id"]) == (True, False, paid["id"])
    assert (paid["source"], paid["channel"], paid["amount"], paid["state"]) == (
        "cashier",
        "cashier",
        "25.000000",
        "posted",
    )
    assert cli.json("ledger", "balance", "100001")["balance"] == "25.000000"
    shown = cli.ok("payment", "show", str(paid["id"])).stdout
    assert "R-1" in shown and "posted" in shown
    cancelled = cli.json("payment", "cancel", str(paid["id"]), "--reason", "wrong account", user="clerk")
    assert (cancelled["state"], cancelled["cancel_reason"]) == ("cancelled", "wrong account")
    assert cli.json("ledger", "balance", "100001")["balance"] == "0.000000"
    assert cli.count("audit_log", "WHERE action IN ('payments.pay', 'payments.cancel')") == 2


def test_bad_input_exits_1_naming_it_and_writes_nothing(populated: Cli) -> None:
    cli = populated
    cli.ok("payment", "add", "--account", "100001", "--amount", "5", "--receipt", "R-1")
    for args, message in [
        (["--amount", "-5", "--receipt", "R-2"], "amount: must be positive"),
        (["--amount", "1.001", "--receipt", "R-2"], "at most 2 decimal places"),
        (["--amount", "6", "--receipt", "R-1"], "R-1 was used for another account or amount"),
        (["--amount", "5", "--receipt", "R-2", "--paid-at", "tomorrow"], "--paid-at: expected"),
    ]:
        result = cli("payment", "add", "--account", "100001", *args)
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
    unknown = cli("payment", "add", "--account", "999999", "--amount", "5", "--receipt", "R-3")
    assert unknown.exit_code == 1 and "no account '999999'" in unknown.stderr
    assert cli.count("payments") == 1
    missing = cli("payment", "show", "404")
    assert missing.exit_code == 1 and "no payment 404" in missing.stderr


def test_list_is_newest_first_and_support_may_look_but_not_pay(populated: Cli) -> None:
    cli = populated
    cli.ok("subscribers", "create", "--name", "Bo Chan", "--category", "residential", "--region", "north")
    for receipt, account in [("R-1", "100001"), ("R-2", "100002"), ("R-3", "100001")]:
        cli.ok("payment", "add", "--account", account, "--amount", "5", "--receipt", receipt)
    assert [p["external_id"] for p in cli.json("payment", "list", user="helpdesk")] == ["R-3", "R-2", "R-1"]
    assert [p["external_id"] for p in cli.json("payment", "list", "--account", "100001")] == ["R-3", "R-1"]
    assert "R-2" in cli.ok("payment", "list").stdout
    denied = cli(
        "payment", "add", "--account", "100001", "--amount", "5", "--receipt", "R-9", user="helpdesk"
    )
    assert denied.exit_code == 3 and "payments.post" in denied.stderr
    assert cli("payment", "cancel", "1", "--reason", "x", user="helpdesk").exit_code == 3
    assert cli.count("payments") == 3
