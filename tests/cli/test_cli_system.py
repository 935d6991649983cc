"""``config check``, ``db``, ``check`` and the installed ``billing-admin`` entry point."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from billing.cli.main import cli as root
from billing.db.migrate import head_revision

if TYPE_CHECKING:
    from conftest import Cli

SECRET = "hunter2-pa55"
GOOD = f"""
[isp]
name = "Test ISP"
currency = "EUR"
time_zone = "Europe/Berlin"

[database]
url = "postgresql://billing:{SECRET}@db.example.net/billing"
"""
BAD = f"""
[isp]
name = "Test ISP"
currency = "EURO"
time_zone = "Mars/Olympus"

[database]
url = "mysql://billing:{SECRET}@db.example.net/billing"
pool_size = 0
colour = "blue"
"""


def _check(tmp_path: Path, content: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "billing.toml"
    path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(root, ["config", "check", "--config", str(path), *args])
    return result.exit_code, result.stdout, result.stderr


def test_config_check_ok_masks_secrets(tmp_path: Path) -> None:
    code, out, err = _check(tmp_path, GOOD)
    assert code == 0 and out.startswith("OK: ") and "EUR" in out and "postgresql" in out
    assert SECRET not in out + err
    code, out, _ = _check(tmp_path, GOOD, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["problems"] == []
    assert report["config"]["database"]["url"] == "********" and SECRET not in out
    # the global --config is used when the subcommand has none
    path = tmp_path / "billing.toml"
    assert CliRunner().invoke(root, ["--config", str(path), "config", "check"]).stdout.startswith("OK: ")


def test_config_check_lists_every_problem_without_secrets(tmp_path: Path) -> None:
    code, out, err = _check(tmp_path, BAD)
    assert code == 1
    lines = err.strip().splitlines()
    for key in ("isp.currency", "isp.time_zone", "database.url", "database.pool_size", "database.colour"):
        assert sum(key in line for line in lines) == 1, (key, lines)
    assert SECRET not in out + err
    code, out, err = _check(tmp_path, BAD, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["config"] is None
    assert len(report["problems"]) == 5 and SECRET not in out + err


def test_config_check_malformed_toml(tmp_path: Path) -> None:
    code, _, err = _check(tmp_path, "[isp\nname = 1\n")
    assert code == 1 and "invalid TOML at line 1" in err
    missing = CliRunner().invoke(root, ["config", "check", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1 and "cannot read config file" in missing.stderr


def test_commands_on_a_bad_config_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD, encoding="utf-8")
    result = CliRunner().invoke(root, ["--config", str(path), "subscribers", "list"])
    assert result.exit_code == 1 and "isp.currency" in result.stderr and SECRET not in result.output


def test_db_upgrade_current_need_no_operator(cli: Cli) -> None:
    head = head_revision()
    upgraded = cli.json("db", "upgrade", user="stranger")
    assert upgraded == {"from": head, "to": head}
    assert cli.json("db", "current", user="stranger") == {"current": head, "head": head, "up_to_date": True}
    assert "up to date" in cli.ok("db", "current").stdout


def test_db_upgrade_fresh_database(tmp_path: Path) -> None:
    path = tmp_path / "billing.toml"
    path.write_text(GOOD.replace(f"postgresql://billing:{SECRET}@db.example.net/billing",
                                 f"sqlite:///{tmp_path / 'fresh.db'}"), encoding="utf-8")  # fmt: skip
    result = CliRunner().invoke(root, ["--config", str(path), "db", "upgrade"])
    assert result.exit_code == 0 and f"schema at {head_revision()} (was empty)" in result.stdout


def test_bootstrap_only_once(cli: Cli) -> None:
    [entry] = cli.json("audit", "search", "--action", "operator.bootstrap")
    assert entry["object_id"] == getpass.getuser() and entry["after"]["roles"] == ["admin"]
    before = cli.count("operators")
    again = cli("db", "bootstrap", "intruder", user="intruder")
    assert again.exit_code == 3 and "ask an admin" in again.stderr
    assert cli.count("operators") == before
    assert cli.count("audit_log", "WHERE outcome = 'denied' AND operator_login = 'intruder'") == 1


def test_check_ok(populated: Cli) -> None:
    populated.ok("ledger", "adjust", "100001", "5", "--reason", "goodwill")
    assert "OK" in populated.ok("check").stdout
    assert populated.json("check") == {"ok": True, "violations": []}


@pytest.mark.corrupts_ledger
def test_check_names_a_corrupted_posting(populated: Cli) -> None:
    cli = populated
    cli.ok("ledger", "adjust", "100001", "5", "--reason", "goodwill")
    with cli.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER postings_no_update"))
        else:
            connection.execute(text("ALTER TABLE postings DISABLE TRIGGER postings_append_only"))
        txn_id = connection.execute(text("SELECT min(transaction_id) FROM postings")).scalar_one()
        connection.execute(
            text("UPDATE postings SET amount = amount * 2 WHERE transaction_id = :t AND leg = 1"),
            {"t": txn_id},
        )
    result = cli("check")
    assert result.exit_code == 1
    assert f"ledger_transactions id={txn_id}" in result.stdout and "transaction content" in result.stdout
    report = json.loads(cli("check", "--json").stdout)
    assert report["ok"] is False
    assert {"table": "ledger_transactions", "row_id": txn_id}.items() <= report["violations"][-1].items()


def test_installed_entry_point(cli: Cli) -> None:
    """The console script really runs: exit codes and output of the installed billing-admin."""
    script = Path(sys.executable).with_name("billing-admin")
    run = [str(script), "--config", str(cli.config)]
    shown = subprocess.run([*run, "roles", "list", "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert {r["name"] for r in json.loads(shown.stdout)} == {"admin", "billing", "support", "auditor"}
    bad = subprocess.run([*run, "ledger", "balance", "404"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "account_number" in bad.stderr
    usage = subprocess.run([*run, "ledger", "balance"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "Exit codes" in helped.stdout and "permission denied" in helped.stdout


def test_help_is_fast_and_has_examples() -> None:
    probe = (
        "import sys; from click.testing import CliRunner; from billing.cli.main import cli; "
        "r = CliRunner().invoke(cli, ['subscribers', 'create', '--help']); "
        "assert 'Examples' in r.output, r.output; "
        "assert 'sqlalchemy' not in sys.modules and 'rich' not in sys.modules, 'heavy import at start-up'"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
    runner = CliRunner()
    for path in (
        ["ledger", "adjust"],
        ["dict", "add"],
        ["operators", "create"],
        ["audit", "search"],
        ["check"],
    ):
        assert "Example" in runner.invoke(root, [*path, "--help"]).output, path
