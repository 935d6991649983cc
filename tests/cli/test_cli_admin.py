"""``dict``, ``operators``, ``roles`` and ``audit search``: happy paths, audit rows, bad input."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cli


def test_dictionaries(cli: Cli) -> None:
    added = cli.json("dict", "add", "region", "north", "North")
    assert added == {"kind": "region", "code": "north", "name": "North", "active": True, "sort_order": 0}
    cli.ok("dict", "add", "region", "south", "South", "--sort-order", "5")
    renamed = cli.json("dict", "rename", "region", "north", "Northern district")
    assert renamed["name"] == "Northern district"
    assert cli.json("dict", "deactivate", "region", "south")["active"] is False
    assert [v["code"] for v in cli.json("dict", "list", "region")] == ["north", "south"]
    assert "Northern district" in cli.ok("dict", "list").stdout
    entries = cli.json("audit", "search", "--action", "dictionary.*")
    assert [e["action"] for e in entries] == [
        "dictionary.deactivate",
        "dictionary.rename",
        "dictionary.add",
        "dictionary.add",
    ]
    assert entries[1]["before"]["name"] == "North" and entries[1]["after"]["name"] == "Northern district"
    # a deactivated value is refused for new records, naming the kind and the valid codes
    cli.ok("dict", "add", "subscriber_category", "residential", "Residential")
    result = cli("subscribers", "create", "--name", "X", "--category", "residential", "--region", "south")
    assert result.exit_code == 1 and "region" in result.stderr and "north" in result.stderr


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["dict", "add", "colour", "red", "Red"], "kind"),
        (["dict", "add", "region", "Bad Code", "X"], "code"),
        (["dict", "rename", "region", "nowhere", "X"], "code"),
        (["operators", "create", "jdoe", "--name", "J", "--role", "wizard"], "role"),
        (["operators", "create", getpass.getuser(), "--name", "Again", "--role", "admin"], "login"),
        (["operators", "grant", "ghost", "admin"], "login"),
    ],
)
def test_bad_admin_input(cli: Cli, args: list[str], field: str) -> None:
    before = cli.counts("dictionary_entries", "operators", "operator_roles", "audit_log")
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {field}:"), result.stderr
    assert cli.counts("dictionary_entries", "operators", "operator_roles", "audit_log") == before


def test_operators_and_roles(cli: Cli) -> None:
    created = cli.json("operators", "create", "jdoe", "--name", "Jane Doe", "--role", "support")
    assert created["roles"] == ["support"] and "ledger.read" in created["permissions"]
    assert cli.json("operators", "grant", "jdoe", "billing")["roles"] == ["billing", "support"]
    assert cli.json("operators", "revoke", "jdoe", "support")["roles"] == ["billing"]
    assert cli("operators", "revoke", "jdoe", "support").exit_code == 1
    assert cli.json("operators", "disable", "jdoe")["active"] is False
    assert cli.json("operators", "show", "jdoe")["full_name"] == "Jane Doe"
    assert {o["login"] for o in cli.json("operators", "list")} == {getpass.getuser(), "jdoe"}
    assert "Jane Doe" in cli.ok("operators", "list").stdout
    roles = {r["name"]: r["permissions"] for r in cli.json("roles", "list")}
    assert set(roles) == {"admin", "billing", "support", "auditor"}
    assert "operators.impersonate" in roles["admin"] and "audit.read" in roles["auditor"]
    assert "check.run" in cli.ok("roles", "list").stdout
    actions = [
        e["action"] for e in cli.json("audit", "search", "--object-type", "operator", "--object-id", "jdoe")
    ]
    assert actions == ["operator.disable", "operator.revoke", "operator.grant", "operator.create"]


def test_audit_search_filters(populated: Cli) -> None:
    cli = populated
    me = getpass.getuser()
    assert all(e["operator_login"] == me for e in cli.json("audit", "search", "--operator", me))
    assert cli.json("audit", "search", "--since", "2999-01-01") == []
    assert len(cli.json("audit", "search", "--until", "2999-01-01T00:00+00:00", "--limit", "2")) == 2
    assert "subscriber.create" in cli.ok("audit", "search", "--object-type", "account").stdout
    bad = cli("audit", "search", "--since", "yesterday")
    assert bad.exit_code == 1 and "--since" in bad.stderr
