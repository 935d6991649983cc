"""``billing-admin tariff``: import (dry run, refusals, no-op), export, list, show, permissions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cli

EXAMPLE = Path(__file__).resolve().parents[2] / "conf" / "tariffs" / "example.toml"
CATALOG_TABLES = ("tariffs", "tariff_versions", "bundles", "promotions", "catalog_imports", "audit_log")


@pytest.fixture
def priced(populated: Cli) -> Cli:
    """``populated`` plus the dictionary values the example catalog names (rural, city)."""
    populated.ok("dict", "add", "region", "rural", "Rural")
    populated.ok("dict", "add", "region", "city", "City")
    return populated


def test_import_dry_run_then_import_then_no_op(priced: Cli) -> None:
    before = priced.counts(*CATALOG_TABLES)
    dry = priced.json("tariff", "import", str(EXAMPLE), "--dry-run")
    assert dry["dry_run"] and dry["counts"]["tariffs_added"] == 11 and dry["import_id"] is None
    assert priced.counts(*CATALOG_TABLES) == before
    done = priced.ok("tariff", "import", str(EXAMPLE))
    assert "11 tariffs added, 12 versions added, 2 bundles added, 3 promotions added" in done.stdout
    assert 'speed profile "100M"' in done.stderr
    assert priced.count("tariff_versions") == 12 and priced.count("catalog_imports") == 1
    assert priced.count("audit_log", "WHERE action = 'tariff.import'") == 1
    after = priced.counts(*CATALOG_TABLES)
    again = priced.json("tariff", "import", str(EXAMPLE))
    assert not again["changed"] and again["unchanged_versions"] == 12
    assert priced.counts(*CATALOG_TABLES) == after


def test_bad_input_exits_1_listing_every_problem(priced: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "tariffs.toml"
    bad.write_text(
        EXAMPLE.read_text(encoding="utf-8")
        .replace('region = "rural"', 'region = "nort"', 1)
        .replace('fee = "27.00"', "fee = 27.5")
        .replace('category = "business"', 'category = "vip"', 1),
        encoding="utf-8",
    )
    before = priced.counts(*CATALOG_TABLES)
    refused = priced("tariff", "import", str(bad))
    assert refused.exit_code == 1
    assert "3 problems, nothing imported" in refused.output
    region = (
        'tariffs[0].versions[0].prices[1].region: unknown region "nort" (known: city, north, rural, south)'
    )
    assert f"{bad}: {region}" in refused.output
    assert f'{bad}: tariffs[0].versions[0].prices[0].category: unknown category "vip"' in refused.output
    assert f"{bad}: tariffs[0].versions[1].fee: expected a decimal amount" in refused.output
    assert priced.counts(*CATALOG_TABLES) == before


def test_export_list_show(priced: Cli, tmp_path: Path) -> None:
    priced.ok("tariff", "import", str(EXAMPLE))
    target = tmp_path / "out.toml"
    priced.ok("tariff", "export", "-o", str(target))
    assert priced.ok("tariff", "export").stdout == target.read_text(encoding="utf-8")
    assert not priced.json("tariff", "import", str(target))["changed"]

    rows = {r["code"]: r for r in priced.json("tariff", "list", "--at", "2025-06-01")}
    assert rows["HOME-100"]["current_version"] == 1 and rows["HOME-100"]["fee"] == "25.00"
    assert "YEAR-300" in priced.ok("tariff", "list").stdout

    shown = priced.json(
        "tariff", "show", "HOME-100", "--at", "2025-07-01", "--category", "business", "--region", "rural"
    )
    assert [v["number"] for v in shown["versions"]] == [1, 2]
    assert (
        shown["price"]["match"] == "category_and_region" and shown["price"]["recurring"]["amount"] == "32.00"
    )
    assert (
        "37.00"
        in priced.ok("tariff", "show", "HOME-100", "--at", "2026-02-01", "--category", "business").stdout
    )
    unknown = priced("tariff", "show", "NOPE")
    assert unknown.exit_code == 1 and "unknown tariff 'NOPE'" in unknown.output
    bad_region = priced("tariff", "show", "HOME-100", "--region", "mars")
    assert bad_region.exit_code == 1 and 'unknown region "mars"' in bad_region.output


def test_permissions(priced: Cli) -> None:
    assert priced("tariff", "import", str(EXAMPLE), user="helpdesk").exit_code == 3
    assert priced.count("tariffs") == 0
    assert priced.count("audit_log", "WHERE outcome = 'denied'") == 1
    priced.ok("tariff", "import", str(EXAMPLE), user="clerk")
    assert priced.json("tariff", "list", user="helpdesk")[0]["code"] == "HOME-100"
