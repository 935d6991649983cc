"""Who may run what: permission denied is exit 3 and audited; impersonation only with permission."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli


def test_denied_is_exit_3_audited_and_writes_nothing_else(populated: Cli) -> None:
    cli = populated
    before = cli.counts("customers", "audit_log")
    result = cli("subscribers", "create", "--name", "X", "--category", "residential", "--region", "north",
                 user="helpdesk")  # fmt: skip
    assert result.exit_code == 3
    assert "helpdesk" in result.stderr and "subscribers.write" in result.stderr
    assert "subscribers create" in result.stderr
    assert cli.count("customers") == before["customers"]
    assert cli.count("audit_log") == before["audit_log"] + 1
    [denial] = cli.json("audit", "search", "--outcome", "denied")
    assert denial["operator_login"] == "helpdesk" and denial["outcome"] == "denied"
    assert denial["after"]["permission"] == "subscribers.write"


def test_reads_and_writes_follow_roles(populated: Cli) -> None:
    cli = populated
    assert cli("subscribers", "show", "100001", user="helpdesk").exit_code == 0  # support reads
    assert cli("ledger", "balance", "100001", user="helpdesk").exit_code == 0
    assert cli("ledger", "adjust", "100001", "5", "--reason", "goodwill", user="helpdesk").exit_code == 3
    assert cli("ledger", "adjust", "100001", "5", "--reason", "goodwill", user="clerk").exit_code == 0
    assert (
        cli("dict", "add", "region", "east", "East", user="clerk").exit_code == 3
    )  # billing reads dicts only
    assert cli("operators", "list", user="clerk").exit_code == 3
    assert cli("audit", "search", user="clerk").exit_code == 3
    assert cli("check", user="helpdesk").exit_code == 3
    assert cli("check", user="clerk").exit_code == 0


def test_unknown_login_is_told_how_to_get_an_operator(populated: Cli) -> None:
    result = populated("subscribers", "list", user="stranger")
    assert result.exit_code == 3
    assert "stranger" in result.stderr and "db bootstrap" in result.stderr and "ask an admin" in result.stderr
    assert populated.count("audit_log", "WHERE outcome = 'denied' AND operator_login = 'stranger'") == 1


def test_disabled_operator_is_refused(populated: Cli) -> None:
    populated.ok("operators", "disable", "clerk")
    assert populated("subscribers", "list", user="clerk").exit_code == 3


def test_admin_may_impersonate_and_audit_records_both(populated: Cli) -> None:
    cli = populated
    me = getpass.getuser()
    cli.ok("--as", "clerk", "ledger", "adjust", "100001", "7", "--reason", "goodwill")
    [entry] = cli.json("audit", "search", "--action", "ledger.adjust")
    assert entry["operator_login"] == "clerk" and entry["impersonated_by"] == me
    # acting as helpdesk means helpdesk's permissions: support may not post
    denied = cli("--as", "helpdesk", "ledger", "adjust", "100001", "7", "--reason", "goodwill")
    assert denied.exit_code == 3 and "impersonated by" in denied.stderr
    [denial] = cli.json("audit", "search", "--outcome", "denied")
    assert denial["operator_login"] == "helpdesk" and denial["impersonated_by"] == me


def test_others_may_not_impersonate(populated: Cli) -> None:
    cli = populated
    result = cli("--as", "helpdesk", "subscribers", "list", user="clerk")
    assert result.exit_code == 3
    assert "clerk" in result.stderr and "operators.impersonate" in result.stderr
    [denial] = cli.json("audit", "search", "--outcome", "denied")
    assert denial["operator_login"] == "clerk" and denial["after"]["permission"] == "operators.impersonate"
    assert cli("--as", "nobody", "subscribers", "list").exit_code == 3  # admin, unknown target
