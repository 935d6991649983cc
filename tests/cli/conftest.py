"""Fixtures for driving ``billing-admin`` in-process with click's CliRunner.

Each test gets a config file in ``tmp_path`` pointing at the ``db_url`` fixture's fresh
database (SQLite and PostgreSQL), the OS login bootstrapped as admin, and helpers to run
commands as another login and to count rows.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from billing.cli.main import cli as root

CONFIG = """\
[isp]
name = "Test ISP"
currency = "EUR"
time_zone = "Europe/Berlin"

[database]
url = {url}
"""


@dataclass
class Cli:
    """Runs commands against one test database, as the OS login or as another ``user``."""

    config: Path
    engine: Engine
    monkeypatch: pytest.MonkeyPatch
    runner: CliRunner

    def __call__(self, *args: str, user: str | None = None) -> Result:
        with self.monkeypatch.context() as patch:
            if user is not None:
                patch.setattr(getpass, "getuser", lambda: user)
            return self.runner.invoke(root, ["--config", str(self.config), *args], catch_exceptions=False)

    def ok(self, *args: str, user: str | None = None) -> Result:
        result = self(*args, user=user)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, user: str | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", user=user).stdout)

    def count(self, table: str, where: str = "") -> int:
        with self.engine.connect() as connection:
            return connection.execute(text(f"SELECT count(*) FROM {table} {where}")).scalar_one()

    def counts(self, *tables: str) -> dict[str, int]:
        return {table: self.count(table) for table in tables}


def write_config(path: Path, url: str) -> Path:
    path.write_text(CONFIG.format(url=json.dumps(url)), encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path, db_url: str) -> Path:
    return write_config(tmp_path / "billing.toml", db_url)


@pytest.fixture
def cli(config_file: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """A CLI on a fresh database whose OS login is bootstrapped as admin."""
    runner = Cli(config_file, engine, monkeypatch, CliRunner())
    runner.ok("db", "bootstrap", getpass.getuser(), "--name", "Test Admin")
    yield runner


@pytest.fixture
def populated(cli: Cli) -> Cli:
    """Dictionaries filled, a clerk (billing), a helpdesk operator (support), one subscriber."""
    for kind, code, name in [
        ("subscriber_category", "residential", "Residential"),
        ("subscriber_category", "business", "Business"),
        ("region", "north", "North"),
        ("region", "south", "South"),
        ("adjustment_reason", "goodwill", "Goodwill credit"),
        ("adjustment_reason", "correction", "Correction"),
    ]:
        cli.ok("dict", "add", kind, code, name)
    cli.ok("operators", "create", "clerk", "--name", "Clerk", "--role", "billing")
    cli.ok("operators", "create", "helpdesk", "--name", "Help Desk", "--role", "support")
    cli.ok(
        "subscribers", "create", "--name", "Ann Lee", "--category", "residential", "--region", "north",
        "--email", "ann@example.net", "--phone", "+49 30 1234567",
    )  # fmt: skip
    return cli
