"""The layout and the direction of imports (DESIGN.md, "Layers and the direction of imports").

`rating` imports nothing of ours; `aaa`, `nms_adapters` and `cas_adapters` never import `billing`;
nothing imports `tests` or `simulators` (only tests and simulators themselves may).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"aaa", "rating", "billing", "nms_adapters", "cas_adapters", "simulators", "tests", "bench"}
ALLOWED_TOP_LEVEL = {
    "aaa", "rating", "billing", "nms_adapters", "cas_adapters", "conf", "systemd", "setup.py", "tests",
    "simulators", "bench", "Makefile", "README.md", ".ci",
    # tool configuration and housekeeping
    "setup.cfg", "ruff.toml", ".gitignore",
}  # fmt: skip
FORBIDDEN = {
    "rating": OURS - {"rating"},
    "aaa": {"billing", "tests", "simulators", "bench"},
    "nms_adapters": {"billing", "tests", "simulators", "bench"},
    "cas_adapters": {"billing", "tests", "simulators", "bench"},
    "billing": {"tests", "simulators", "bench"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(_imports(path) & FORBIDDEN[package]):
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_the_import_rules(package: str) -> None:
    if not (ROOT / package).is_dir():
        pytest.skip(f"{package}/ has no code yet")
    assert _violations(package) == []


def test_the_rule_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import os\nfrom billing.ledger import post\nimport rating.money\n")
    assert _imports(sample) == {"os", "billing", "rating"}


def test_top_level_holds_only_the_agreed_layout() -> None:
    tracked = {p.name for p in ROOT.iterdir() if not p.name.startswith((".venv", ".git", "var"))}
    tracked -= {".git", ".pytest_cache", ".ruff_cache", ".hypothesis", "build", "dist"}
    tracked = {n for n in tracked if not n.endswith(".egg-info")}
    assert tracked <= ALLOWED_TOP_LEVEL, sorted(tracked - ALLOWED_TOP_LEVEL)


@pytest.mark.parametrize("package", ["aaa", "rating", "billing", "simulators"])
def test_tests_import_the_real_packages_not_the_test_folders_of_the_same_name(package: str) -> None:
    """tests/aaa and tests/rating have no __init__.py; the packages must still be ours, not them."""
    module = __import__(package)
    assert module.__file__ == str(ROOT / package / "__init__.py")
