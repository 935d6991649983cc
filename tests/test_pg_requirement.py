"""The PostgreSQL switch of the test suite: skipped when unreachable, a failure when required."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1


def _run_pg_variant(required: bool) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BILLING_TEST_PG_URL": UNREACHABLE,
        "BILLING_TEST_PG": "required" if required else "",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "tests/test_schema.py::test_upgrade_is_idempotent[postgresql]",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("required", [False, True])
def test_unreachable_postgresql_skips_unless_required(required: bool) -> None:
    run = _run_pg_variant(required)
    if required:
        assert run.returncode != 0, run.stdout
        assert "BILLING_TEST_PG=required but PostgreSQL" in run.stdout
    else:
        assert run.returncode == 0, run.stdout
        assert "1 skipped" in run.stdout
