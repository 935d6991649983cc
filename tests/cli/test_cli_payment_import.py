"""``billing-admin payment import`` and ``unmatched list/assign``: reports, exit codes, permissions, audit."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli

DAY = (date.today() - timedelta(days=1)).isoformat()
HEADER = "reference,date,amount,currency,account,contract,payer,purpose\n"


def statement(tmp_path: Path, *rows: str, name: str = "statement.csv") -> str:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return str(path)


def test_an_import_posts_matched_lines_queues_the_rest_and_a_second_import_posts_nothing(
    populated: Cli, tmp_path: Path
) -> None:
    cli = populated
    path = statement(
        tmp_path,
        f"TX-1,{DAY},25.00,EUR,100001,,Ann,Internet",
        f'TX-2,{DAY},5.00,EUR,,,Bo,"л/с 100001 и л/с 999999"',
        f"TX-3,{DAY},7.00,EUR,,,Cy,thanks",
    )
    report = cli.json("payment", "import", path, "--bank", "bank1", "--format", "generic-csv", user="clerk")
    assert (report["posted"], report["unmatched"], report["bad"], report["already_imported"]) == (
        2,
        1,
        0,
        False,
    )
    assert report["posted_total"] == "30.000000" and report["unmatched_total"] == "7.000000"
    assert cli.json("ledger", "balance", "100001")["balance"] == "30.000000"
    again = cli.ok("payment", "import", path, "--bank", "bank1", "--format", "generic-csv", user="clerk")
    assert f"already imported as file {report['file_id']}" in again.stdout
    assert cli.counts("payments", "payment_files", "unmatched_payments") == {
        "payments": 2, "payment_files": 1, "unmatched_payments": 1,
    }  # fmt: skip
    assert cli.count("audit_log", "WHERE action = 'payments.import'") == 1
    listed = cli.json("unmatched", "list", "--bank", "bank1", "--open", user="clerk")
    assert [(u["line_key"], u["reason"]) for u in listed] == [
        ("TX-3", "no account or contract number in the line")
    ]
    assigned = cli.json("unmatched", "assign", str(listed[0]["id"]), "--account", "100001", user="clerk")
    assert (assigned["state"], assigned["account_number"]) == ("assigned", "100001")
    assert cli.json("ledger", "balance", "100001")["balance"] == "37.000000"
    twice = cli("unmatched", "assign", str(listed[0]["id"]), "--account", "100001", user="clerk")
    assert twice.exit_code == 1 and "was assigned before" in twice.stderr
    assert cli.json("unmatched", "list", "--open") == []
    assert cli.count("audit_log", "WHERE action = 'payments.unmatched.assign'") == 1


def test_bad_lines_are_named_on_stderr_and_exit_4_while_good_lines_post(
    populated: Cli, tmp_path: Path
) -> None:
    cli = populated
    path = statement(
        tmp_path,
        f"TX-1,{DAY},25.00,EUR,100001,,Ann,Internet",
        f"TX-2,{DAY},-5.00x,EUR,100001,,Ann,Internet",
        f"TX-3,{DAY},5.00,XYZ,100001,,Ann,Internet",
    )
    result = cli("payment", "import", path, "--bank", "bank1", "--format", "generic-csv")
    assert result.exit_code == 4, result.output
    assert "bad: line 3: amount" in result.stderr and "bad: line 4: currency" in result.stderr
    assert cli.json("ledger", "balance", "100001")["balance"] == "25.000000"
    again = cli("payment", "import", path, "--bank", "bank1", "--format", "generic-csv")
    assert again.exit_code == 0 and "already imported" in again.stdout  # nothing was done now
    assert "bad (first import): line 3: amount" in again.stderr


def test_a_dry_run_shows_each_line_and_writes_nothing(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    path = statement(tmp_path, f"TX-1,{DAY},25.00,EUR,100001,,Ann,Internet", f"TX-2,{DAY},5.00,EUR,,,Bo,?")
    shown = cli.ok(
        "payment", "import", path, "--bank", "bank1", "--format", "generic-csv", "--dry-run"
    ).stdout
    assert "line 2: would be posted 25.00 EUR to account 100001" in shown
    assert "line 3: would be unmatched 5.00 EUR" in shown
    assert cli.counts("payments", "payment_files", "ledger_transactions", "unmatched_payments") == {
        "payments": 0, "payment_files": 0, "ledger_transactions": 0, "unmatched_payments": 0,
    }  # fmt: skip


def test_a_refused_file_exits_1_and_support_may_not_import(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    path = statement(tmp_path, f"TX-1,{DAY},25.00,EUR,100001,,Ann,Internet")
    unknown = cli("payment", "import", path, "--bank", "bank1", "--format", "nope")
    assert unknown.exit_code == 1 and "format: expected one of" in unknown.stderr
    bad_bank = cli("payment", "import", path, "--bank", "bank one", "--format", "generic-csv")
    assert bad_bank.exit_code == 1 and "bank: expected" in bad_bank.stderr
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "x"\nfield = "account"\npattern = "("\n', encoding="utf-8")
    broken = cli(
        "payment", "import", path, "--bank", "bank1", "--format", "generic-csv", "--rules", str(rules)
    )
    assert broken.exit_code == 1 and "rule[0].pattern: expected a regular expression" in broken.stderr
    denied = cli("payment", "import", path, "--bank", "bank1", "--format", "generic-csv", user="helpdesk")
    assert denied.exit_code == 3 and "payments.import" in denied.stderr
    assert cli("unmatched", "list", user="helpdesk").exit_code == 3
    assert cli.count("payment_files") == 0
