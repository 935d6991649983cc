"""Database fixtures: every DB test runs on SQLite, and again on PostgreSQL when one is reachable.

Each test gets its own freshly migrated database, cloned from a template migrated once per run
(a file copy for SQLite, ``CREATE DATABASE ... TEMPLATE`` for PostgreSQL), and the ledger's
invariant check runs after it. ``BILLING_TEST_PG=required`` turns an unreachable PostgreSQL into
a failure instead of a skip; ``BILLING_TEST_PG_URL`` names the server.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from billing.db.engine import make_engine, session_factory
from billing.db.migrate import upgrade
from billing.invariants import check_ledger

# Property tests: CI runs a fixed, reproducible set of examples (HYPOTHESIS_PROFILE=ci, set by
# .ci/run); a developer's run explores new ones each time.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

PG_URL = os.environ.get("BILLING_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_REQUIRED = os.environ.get("BILLING_TEST_PG", "").lower() == "required"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corrupts_ledger: the test breaks the ledger on purpose; skip the check"
    )
    config.addinivalue_line("markers", "postgresql_only: the test needs PostgreSQL (row locks, races)")


def _pg_conninfo(database: str | None = None) -> str:
    url = make_url(PG_URL)
    if database:
        url = url.set(database=database)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_admin(sql: str) -> None:
    with psycopg.connect(_pg_conninfo(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


class Templates:
    """Migrated template databases, made on first use and dropped at the end of the run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sqlite_template: Path | None = None
        self.pg_template: str | None = None
        self.pg_error: str | None = None

    def sqlite(self) -> str:
        if self.sqlite_template is None:
            path = self.workdir / "template.db"
            engine = make_engine(f"sqlite:///{path}")
            upgrade(engine)
            engine.dispose()
            self.sqlite_template = path
        target = self.workdir / f"test-{uuid.uuid4().hex[:12]}.db"
        shutil.copyfile(self.sqlite_template, target)
        return f"sqlite:///{target}"

    def postgresql(self) -> str:
        if self.pg_template is None and self.pg_error is None:
            name = f"billing_tpl_{os.getpid()}"
            try:
                _pg_admin(f"DROP DATABASE IF EXISTS {name}")
                _pg_admin(f"CREATE DATABASE {name}")
            except psycopg.Error as exc:
                self.pg_error = f"PostgreSQL at {PG_URL} is not reachable: {exc}".strip()
            else:
                engine = make_engine(_pg_conninfo(name))
                upgrade(engine)
                engine.dispose()
                self.pg_template = name
        if self.pg_error:
            if PG_REQUIRED:
                pytest.fail(f"BILLING_TEST_PG=required but {self.pg_error}")
            pytest.skip(self.pg_error)
        name = f"billing_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        _pg_admin(f"CREATE DATABASE {name} TEMPLATE {self.pg_template}")
        return _pg_conninfo(name)

    def drop(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
        else:
            _pg_admin(f"DROP DATABASE IF EXISTS {parsed.database} WITH (FORCE)")

    def close(self) -> None:
        if self.pg_template:
            _pg_admin(f"DROP DATABASE IF EXISTS {self.pg_template} WITH (FORCE)")


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("db"))
    yield made
    made.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, templates: Templates) -> Iterator[str]:
    """URL of a fresh, migrated database of each backend; dropped after the test."""
    url = templates.sqlite() if request.param == "sqlite" else templates.postgresql()
    yield url
    templates.drop(url)


@pytest.fixture
def pg_url(templates: Templates) -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database (for races that SQLite serialises anyway)."""
    url = templates.postgresql()
    yield url
    templates.drop(url)


def _checked_engine(url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    engine = make_engine(url, pool_size=8)
    yield engine
    try:
        if request.node.get_closest_marker("corrupts_ledger") is None:
            with Session(engine) as session:
                violations = check_ledger(session)
            assert not violations, "ledger invariants broken:\n" + "\n".join(map(str, violations))
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Engine on a fresh database; the ledger invariant check runs after the test."""
    yield from _checked_engine(db_url, request)


@pytest.fixture
def pg_engine(pg_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Engine on a fresh PostgreSQL database; the ledger invariant check runs after the test."""
    yield from _checked_engine(pg_url, request)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
