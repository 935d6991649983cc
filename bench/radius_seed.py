"""Fresh PostgreSQL databases with N PPPoE subscribers, for the RADIUS and snapshot benchmarks.

Not a test. ``BenchDatabase(admin_url, n)`` creates a database, brings it to the billing schema
(``billing.db.migrate.upgrade``) and seeds, set-based, ``n`` customers / ledger accounts /
accounts / active Internet services with logins ``user000001..`` and passwords ``pw000001..``
(``INSERT .. SELECT FROM generate_series``, one statement per table), then funds every account
through the real ledger (``billing.ledger.post_batch``, in batches) so the balances, postings and
NOTIFY triggers are the ones the daemon would see. ``close()`` drops the database.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from billing import ledger
from billing.books import book_account
from billing.db.engine import make_engine, session_factory
from billing.db.migrate import upgrade
from billing.ledger import Leg, TransactionRequest

DEFAULT_ADMIN_URL = os.environ.get("BILLING_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
USER_FORMAT = "user%06d"
PASSWORD_FORMAT = "pw%06d"
FUND_BATCH = 10_000

# Like Python's "%06d": at least 6 digits, never truncated (lpad alone cuts 1000000 to 100000).
_SQL_DIGITS = "lpad(i::text, greatest(6, length(i::text)), '0')"
_SQL_USER = f"'user' || {_SQL_DIGITS}"
_SQL_PASSWORD = f"'pw' || {_SQL_DIGITS}"
_SQL_NUMBER = "'B' || lpad(i::text, greatest(7, length(i::text)), '0')"

# Row-level NOTIFY triggers for the AAA snapshot: nobody listens while seeding, and a million
# queued notifications in one transaction only slow the load down.  Re-enabled afterwards.
_NOTIFY_TRIGGERS = (("services", "services_notify_aaa"), ("accounts", "accounts_notify_aaa"))


def admin_execute(admin_url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the admin database."""
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


class BenchDatabase:
    """A database of its own with ``n`` funded subscribers; drop it with :meth:`close`."""

    def __init__(self, admin_url: str, n: int, *, prefix: str = "bench_radius", fund: bool = True) -> None:
        self.admin_url = admin_url
        self.n = n
        self.name = f"{prefix}_{os.getpid()}_{random.randrange(10**6)}"
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)
        self.timings: dict[str, float] = {}
        admin_execute(admin_url, f"CREATE DATABASE {self.name}")
        self.engine: Engine | None = None
        try:
            self.engine = make_engine(self.url, statement_timeout_ms=0)
            started = time.perf_counter()
            upgrade(self.engine)
            self.timings["schema_s"] = time.perf_counter() - started
            started = time.perf_counter()
            self._insert_rows(self.engine, n)
            self.timings["insert_s"] = time.perf_counter() - started
            if fund:
                started = time.perf_counter()
                self._fund(self.engine, n)
                self.timings["fund_s"] = time.perf_counter() - started
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _insert_rows(engine: Engine, n: int) -> None:
        now = datetime.now(UTC)
        with engine.begin() as conn:
            for table, trigger in _NOTIFY_TRIGGERS:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
            ids = {}
            for kind, code in (("subscriber_category", "residential"), ("region", "bench"),
                               ("adjustment_reason", "goodwill")):  # fmt: skip
                ids[kind] = conn.execute(
                    text(
                        "INSERT INTO dictionary_entries (kind, code, name, active, sort_order)"
                        " VALUES (:k, :c, :n, true, 0) RETURNING id"
                    ),
                    {"k": kind, "c": code, "n": code.title()},
                ).scalar_one()
            profile = conn.execute(
                text(
                    "INSERT INTO speed_profiles (name, down_kbps, up_kbps)"
                    " VALUES ('home-100', 100000, 20000) RETURNING id"
                )
            ).scalar_one()
            params = {
                "n": n,
                "now": now,
                "cat": ids["subscriber_category"],
                "reg": ids["region"],
                "p": profile,
            }
            # Fresh database: ids 1..n in every table, so the rows refer to each other by i.
            conn.execute(
                text(
                    "INSERT INTO customers (id, kind, name, category_id, region_id, status, created_at)"
                    " SELECT i, 'person', 'Bench subscriber ' || i, :cat, :reg, 'active', :now"
                    " FROM generate_series(1, :n) i"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO ledger_accounts (id, code, name, kind, currency, balance, created_at)"
                    f" SELECT i, 'acct:' || {_SQL_NUMBER}, 'Bench subscriber ' || i,"
                    " 'subscriber', 'EUR', 0, :now FROM generate_series(1, :n) i"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (id, number, customer_id, currency, billing_mode, credit_limit,"
                    " status, ledger_account_id, created_at)"
                    f" SELECT i, {_SQL_NUMBER}, i, 'EUR', 'prepaid', 0, 'active', i, :now"
                    " FROM generate_series(1, :n) i"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO services (id, account_id, kind, status, speed_profile_id, login, password,"
                    " framed_pool, created_at, updated_at)"
                    f" SELECT i, i, 'internet', 'active', :p, {_SQL_USER}, {_SQL_PASSWORD}, 'main',"
                    " :now, :now"
                    " FROM generate_series(1, :n) i"
                ),
                params,
            )
            for table in ("customers", "ledger_accounts", "accounts", "services"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT max(id) FROM {table}))"
                    )
                )
            for table, trigger in _NOTIFY_TRIGGERS:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))

    @staticmethod
    def _fund(engine: Engine, n: int) -> None:
        """Credit 100.00 + (i % 50) EUR to every account, FUND_BATCH transactions per DB transaction."""
        sessions = session_factory(engine)
        with sessions.begin() as s:
            book = book_account(s, "adjustments", "EUR")
        now = datetime.now(UTC)
        for start in range(1, n + 1, FUND_BATCH):
            requests = []
            for i in range(start, min(n, start + FUND_BATCH - 1) + 1):
                amount = Decimal(100 + i % 50)
                requests.append(
                    TransactionRequest(
                        f"bench-fund:{i}", "adjustment", (Leg(i, -amount), Leg(book, amount)), now
                    )
                )
            with sessions.begin() as s:
                ledger.post_batch(s, requests)

    def close(self) -> None:
        """Dispose of the engine and drop the database, whatever happened before."""
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
        admin_execute(self.admin_url, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


if __name__ == "__main__":  # a quick self-check: seed, count, drop
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    db = BenchDatabase(DEFAULT_ADMIN_URL, size)
    try:
        assert db.engine is not None
        with db.engine.connect() as c:
            row = c.execute(
                text(
                    "SELECT count(*), min(s.login), max(s.login), sum(-l.balance) FROM services s"
                    " JOIN accounts a ON a.id = s.account_id"
                    " JOIN ledger_accounts l ON l.id = a.ledger_account_id"
                )
            ).one()
        print(db.name, tuple(row), {k: round(v, 2) for k, v in db.timings.items()})
    finally:
        db.close()
