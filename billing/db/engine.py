"""Engines and sessions for PostgreSQL (production) and SQLite (the embedded default).

SQLite gets the settings a money database needs: foreign keys on, WAL, full fsync, a busy
timeout, and ``BEGIN IMMEDIATE`` so two writers queue instead of failing on lock upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout_s: float = 30.0,
    statement_timeout_ms: int = 30_000,
    echo: bool = False,
    pre_ping: bool = False,
) -> Engine:
    """Create an engine for ``url`` with the per-backend settings described above.

    ``pre_ping`` tests each pooled connection before use: a round trip per checkout, worth it
    for the daemon (few, infrequent checkouts; the database may restart under it), not for
    the ledger's hot path.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=echo)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={statement_timeout_ms}"
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_s,
        # Pre-ping costs a round trip per checkout (a quarter of a ledger post), so it is opt-in.
        # Without it, a connection broken by a server restart fails its first statement, which
        # makes SQLAlchemy discard the whole pool; callers retry what they must.
        pool_pre_ping=pre_ping,
        pool_recycle=3600,
        connect_args=connect_args,
        echo=echo,
    )


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, echo=echo)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (pysqlite's is deferred)
        cursor = dbapi_connection.cursor()
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (results outlive their transaction)."""
    return sessionmaker(engine, expire_on_commit=False)
