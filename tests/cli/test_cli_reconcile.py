"""``billing-admin registry`` and ``reconcile``: import, totals, discrepancies, closing, permissions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli

DAY = "2026-11-20"  # the test config's time zone is Europe/Berlin: UTC+1 that day
HEADER = "txn_id;paid_at;account;amount;currency\n"
CAMT053 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>M-1</MsgId><CreDtTm>2026-11-22T06:00:00+01:00</CreDtTm></GrpHdr>
<Stmt><Id>S-1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
<Ntry><Amt Ccy="EUR">4.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>2026-11-21</Dt></BookgDt><AcctSvcrRef>CAMT-1</AcctSvcrRef></Ntry>
</Stmt></BkToCstmrStmt></Document>
"""


def pay(cli: Cli, txn: str, amount: str, paid_at: str = f"{DAY}T12:00", account: str = "100001") -> None:
    cli.ok("payment", "add", "--account", account, "--amount", amount, "--receipt", txn,
           "--source", "demobank", "--paid-at", paid_at)  # fmt: skip


def registry_file(tmp_path: Path, *lines: str, name: str = "registry.csv") -> str:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def test_a_day_that_agrees_is_reconciled_and_shown_again_unchanged(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    pay(cli, "T1", "25.00")
    pay(cli, "T2", "5.00", paid_at=f"{DAY}T23:59")
    pay(cli, "T3", "7.00", paid_at="2026-11-21T00:01")  # the next local day (23:01 UTC of DAY)
    path = registry_file(
        tmp_path, f"T1;{DAY}T12:00:00+01:00;100001;25.00;EUR", f"T2;{DAY}T23:59:00+01:00;100001;5.00;EUR"
    )
    imported = cli.json("registry", "import", path, "--bank", "demobank", user="clerk")
    assert (imported["day"], imported["line_count"], imported["total"]) == (DAY, 2, "30.000000")
    shown = cli.ok("reconcile", "--bank", "demobank", "--date", DAY, user="clerk").stdout
    assert "reconciled" in shown and "difference 0.00 EUR" in shown
    assert "bank 30.00 EUR (2) vs billing 30.00 EUR (2)" in shown
    again = cli("reconcile", "--bank", "demobank", "--date", DAY, "--json")
    assert again.exit_code == 0 and "stored result is shown, nothing changed" in again.stderr
    assert '"runs": 1' in again.stdout and '"state": "reconciled"' in again.stdout
    assert cli.count("audit_log", "WHERE action IN ('payments.registry', 'payments.reconcile')") == 2


def test_discrepancies_are_printed_with_totals_and_closing_needs_a_reason(
    populated: Cli, tmp_path: Path
) -> None:
    cli = populated
    pay(cli, "T1", "25.00")
    pay(cli, "T2", "20.00")  # the bank says 30.00
    pay(cli, "T4", "8.00")  # not in the bank's registry
    path = registry_file(
        tmp_path,
        f"T1;{DAY}T12:00:00+01:00;100001;25.00;EUR",
        f"T2;{DAY}T12:00:00+01:00;100001;30.00;EUR",
        f"T3;{DAY}T12:00:00+01:00;100001;12.00;EUR",  # not in billing
    )
    cli.ok("registry", "import", path, "--bank", "demobank", "--date", DAY)
    shown = cli.ok("reconcile", "--bank", "demobank", "--date", DAY).stdout
    summary = "bank 67.00 EUR (3) vs billing 53.00 EUR (3): difference 14.00 EUR; 3 discrepancy(ies)"
    for text in ("missing in billing", "missing at bank", "amount differs", "state open", summary):
        assert text in shown, text
    result = cli.json("reconcile", "--bank", "demobank", "--date", DAY)
    totals = {c["category"]: (c["count"], c["bank_total"], c["billing_total"]) for c in result["categories"]}
    assert totals["missing_in_billing"] == (1, "12.000000", "0.000000")
    assert totals["amount_differs"] == (1, "30.000000", "20.000000")
    assert (result["state"], result["runs"]) == ("open", 2)

    refused = cli("reconcile", "--bank", "demobank", "--date", DAY, "--close")
    assert refused.exit_code == 2 and "closing it needs --reason" in refused.stderr
    assert cli.count("reconciliations", "WHERE state = 'open'") == 1
    closed = cli.json(
        "reconcile", "--bank", "demobank", "--date", DAY, "--close", "--reason", "bank confirms"
    )
    assert (closed["state"], closed["reason"], closed["suspense_total"]) == (
        "closed",
        "bank confirms",
        "12.000000",
    )
    again = cli.json("reconcile", "--bank", "demobank", "--date", DAY, "--close", "--reason", "twice")
    assert (again["changed"], again["reason"]) == (False, "bank confirms")
    assert cli.count("ledger_transactions", "WHERE idempotency_key LIKE 'reconcile:%'") == 1
    assert cli.json("registry", "import", path, "--bank", "demobank")["replaced"] == 0  # the same, retried
    with open(path, "a", encoding="utf-8") as file:
        file.write(f"T9;{DAY}T12:00:00+01:00;100001;1.00;EUR\n")
    replaced = cli("registry", "import", path, "--bank", "demobank", "--date", DAY)
    assert replaced.exit_code == 1 and "is closed; its registry can no longer be replaced" in replaced.stderr
    assert cli.json("ledger", "balance", "100001")["balance"] == "53.000000"


def test_a_statement_file_can_stand_in_for_the_registry(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    pay(cli, "S1", "10.00")
    path = registry_file(tmp_path, f"S1;{DAY}T09:00:00+01:00;100001;10.00;EUR", name="statement.csv")
    result = cli.json(
        "reconcile", "--bank", "demobank", "--date", DAY, "--statement", path, "--format", "registry"
    )
    assert (result["source"], result["state"], result["statement_sha256"] is not None) == (
        "statement", "reconciled", True,
    )  # fmt: skip
    camt = tmp_path / "statement.xml"
    camt.write_text(CAMT053, encoding="utf-8")
    day_after = cli.json(
        "reconcile",
        "--bank",
        "demobank",
        "--date",
        "2026-11-21",
        "--statement",
        str(camt),
        "--format",
        "camt053",
    )
    assert [(d["kind"], d["txn_id"]) for d in day_after["discrepancies"]] == [
        ("missing_in_billing", "CAMT-1")
    ]
    alone = cli("reconcile", "--bank", "demobank", "--date", DAY, "--statement", path)
    assert alone.exit_code == 2 and "--statement and --format go together" in alone.stderr


def test_bad_input_exits_1_naming_it_and_stores_nothing(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    path = registry_file(
        tmp_path, f"T1;{DAY}T12:00:00+01:00;100001;25.00;EUR", f"T2;{DAY}T12:00:00+01:00;100001;-1;EUR"
    )
    bad = cli("registry", "import", path, "--bank", "demobank")
    assert bad.exit_code == 1 and "line 3: amount: must be positive" in bad.stderr
    assert cli.count("bank_registries") == 0
    missing = cli("reconcile", "--bank", "demobank", "--date", DAY)
    assert missing.exit_code == 1 and "no registry from demobank for 2026-11-20" in missing.stderr
    assert cli("reconcile", "--bank", "demobank", "--date", "yesterday").exit_code == 1
    assert cli.count("reconciliations") == 0


def test_support_may_look_at_a_result_but_not_reconcile(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    path = registry_file(tmp_path, f"T1;{DAY}T12:00:00+01:00;100001;25.00;EUR")
    denied = cli("registry", "import", path, "--bank", "demobank", user="helpdesk")
    assert denied.exit_code == 3 and "payments.reconcile" in denied.stderr
    cli.ok("registry", "import", path, "--bank", "demobank")
    assert cli("reconcile", "--bank", "demobank", "--date", DAY, user="helpdesk").exit_code == 3
    cli.ok("reconcile", "--bank", "demobank", "--date", DAY)
    shown = cli.json("reconcile", "--bank", "demobank", "--date", DAY, "--show", user="helpdesk")
    assert [d["kind"] for d in shown["discrepancies"]] == ["missing_in_billing"]
    assert "T1" in cli.ok("registry", "show", "--bank", "demobank", "--date", DAY, user="helpdesk").stdout
