"""Charge run benchmark (not a test): N subscriptions on mixed tariffs, monthly runs, re-runs.

On PostgreSQL (``BILLING_TEST_PG_URL``), seeded set-based by :class:`bench.radius_seed.BenchDatabase`
(N customers/accounts/services, funded through the ledger), then given tariffs set-based
(``UPDATE services``: monthly prepaid 60 %, monthly postpaid 20 %, a bigger monthly 15 %,
annual 5 %, all anchored on the 1st, activated on 2026-02-01).

Why the previous month is posted first (untimed): a run posts every line due in its 35-day
catch-up window, so the first run on 2027-02-01 of a fresh database would also post January.
In production the monthly run follows the run of the day before, so the bench posts
2027-01-01 first, then times ``ROUNDS`` consecutive monthly runs (02-01, 03-01, 04-01), each
followed by a timed re-run of the same day. For each it measures:

- the monthly run (lifecycle evaluation off: see the README's "Charge runs");
- the re-run of the same day (marks: nothing is priced again);
- the longest time a payment (``billing.ledger.post`` in a thread, to random accounts) waited.

Then the same on SQLite at a smaller size. Prints each round and the medians against the goal
(run <= 30 s, re-run <= 5 s, payment wait <= 1 s).

Usage: ``python bench/charge_run.py [N] [N_SQLITE] [ROUNDS]`` (defaults 1,000,000 / 100,000 / 3).
"""

from __future__ import annotations

import random
import statistics
import sys
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).parent))

from radius_seed import DEFAULT_ADMIN_URL, BenchDatabase

from billing import ledger, operators
from billing.audit import Actor
from billing.books import book_account
from billing.catalog import import_catalog
from billing.charge_run import run_charges
from billing.db.engine import make_engine, session_factory
from billing.db.migrate import upgrade
from billing.permissions import resolve_actor

PREVIOUS = date(2027, 1, 1)
MONTHS = (date(2027, 2, 1), date(2027, 3, 1), date(2027, 4, 1), date(2027, 5, 1), date(2027, 6, 1))
CATALOG = (
    (Path(__file__).parent.parent / "tests" / "golden" / "charges" / "catalog.toml")
    .read_text()
    .replace("2027-01-01", "2026-01-01")
)
MIX = (
    "CASE WHEN id % 20 < 12 THEN 'M-PRE' WHEN id % 20 < 16 THEN 'M-POST'"
    " WHEN id % 20 < 19 THEN 'M-BIG' ELSE 'Y-PRE' END"
)


def prepare(engine: Engine) -> Actor:
    """An operator, the golden catalog (dated a year earlier), tariffs on every service."""
    factory = session_factory(engine)
    with factory.begin() as s:
        operators.bootstrap(s, Actor(None, "bench", None, "bench"), "bench", "Bench")
        actor = resolve_actor(s, "bench", source="bench")
        import_catalog(s, CATALOG, "catalog.toml", actor, today=date(2026, 1, 1))
        s.execute(
            text(
                f"UPDATE services SET tariff_code = {MIX}, activated_on = '2026-02-01',"
                " billing_anchor_day = 1"
            )
        )
    return actor


def payments(
    factory: sessionmaker[Session],
    account_ids: list[int],
    clearing: int,
    stop: threading.Event,
    waits: list[float],
) -> None:
    """Post a payment to a random account every 5 ms until ``stop``; record how long each took."""
    rng = random.Random(1)
    n = 0
    while not stop.is_set():
        account = rng.choice(account_ids)
        n += 1
        request = ledger.TransactionRequest(
            f"pay:bench:{n}:{time.time_ns()}",
            "payment",
            (ledger.Leg(clearing, Decimal("10")), ledger.Leg(account, Decimal("-10"))),
            datetime.now(UTC),
        )
        started = time.perf_counter()
        with factory.begin() as s:
            ledger.post(s, request)
        waits.append(time.perf_counter() - started)
        time.sleep(0.005)


def measure(engine: Engine, actor: Actor, label: str, rounds: int) -> None:
    """Post the previous month untimed, then time ``rounds`` monthly runs and re-runs."""
    factory = session_factory(engine)
    with factory.begin() as s:
        clearing = book_account(s, "clearing", "EUR", "bench")
        account_ids = list(s.scalars(text("SELECT ledger_account_id FROM accounts")))
    started = time.perf_counter()
    warm = run_charges(factory, PREVIOUS, actor, evaluate=False)
    print(
        f"{label}: {warm.services_seen:,} services; {PREVIOUS} posted first (untimed, "
        f"{time.perf_counter() - started:.1f} s, {warm.charges_posted:,} charges)"
    )
    run_s, rerun_s, wait_s = [], [], []
    for as_of in MONTHS[:rounds]:
        stop, waits = threading.Event(), []
        payer = threading.Thread(target=payments, args=(factory, account_ids, clearing, stop, waits))
        payer.start()
        started = time.perf_counter()
        result = run_charges(factory, as_of, actor, evaluate=False)
        run_s.append(time.perf_counter() - started)
        stop.set()
        payer.join()
        started = time.perf_counter()
        again = run_charges(factory, as_of, actor, evaluate=False)
        rerun_s.append(time.perf_counter() - started)
        wait_s.append(max(waits, default=0.0))
        print(
            f"  {as_of}: run {run_s[-1]:6.1f} s ({result.charges_posted:,} charges, "
            f"{result.already_posted:,} already posted, {len(result.errors)} errors), "
            f"re-run {rerun_s[-1]:5.2f} s (posted {again.charges_posted}), "
            f"longest payment wait {wait_s[-1]:.3f} s of {len(waits)} payments"
        )
    run_m, rerun_m, wait_m = (statistics.median(x) for x in (run_s, rerun_s, wait_s))
    print(f"  median of {rounds}:")
    print(f"  monthly run   {run_m:8.1f} s   goal <= 30 s   ratio {run_m / 30:.2f}")
    print(f"  re-run        {rerun_m:8.2f} s   goal <= 5 s    ratio {rerun_m / 5:.2f}")
    print(f"  payment wait  {wait_m:8.3f} s   goal <= 1 s    ratio {wait_m:.2f}")


def seed_sqlite(engine: Engine, n: int) -> None:
    """Customers, ledger accounts, accounts and services, set-based with a recursive CTE."""
    series = f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})"
    now = "'2026-12-01 00:00:00'"
    statements = [
        "INSERT INTO customers (id, kind, name, category_id, region_id, status, created_at)"
        f" SELECT i, 'person', 'c' || i, 1, 2, 'active', {now} FROM s",
        "INSERT INTO ledger_accounts (id, code, name, kind, currency, balance, created_at)"
        f" SELECT i, 'sub:' || i, 's', 'subscriber', 'EUR', 0, {now} FROM s",
        "INSERT INTO accounts (id, number, customer_id, currency, billing_mode, credit_limit, status,"
        f" ledger_account_id, created_at) SELECT i, 'B' || i, i, 'EUR', 'prepaid', 0, 'active', i, {now}"
        " FROM s",
        "INSERT INTO services (id, account_id, kind, status, created_at, updated_at, billing_anchor_day)"
        f" SELECT i, i, 'internet', 'active', {now}, {now}, 1 FROM s",
    ]
    with engine.begin() as c:
        for kind, code in (("subscriber_category", "residential"), ("region", "north")):
            c.execute(
                text(
                    "INSERT INTO dictionary_entries (kind, code, name, active, sort_order)"
                    f" VALUES ('{kind}', '{code}', '{code}', 1, 0)"
                )
            )
        for statement in statements:
            c.execute(text(f"{series} {statement}"))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_sqlite = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if n > 0:
        started = time.perf_counter()
        db = BenchDatabase(DEFAULT_ADMIN_URL, n, prefix="bench_charge", fund=True)
        try:
            assert db.engine is not None
            actor = prepare(db.engine)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            print(f"PostgreSQL seeded in {time.perf_counter() - started:.0f} s")
            measure(db.engine, actor, f"PostgreSQL, {n:,} subscriptions", rounds)
        finally:
            db.close()
    if n_sqlite > 0:
        path = Path(f"/tmp/bench_charge_{n_sqlite}.db")
        path.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{path}")
        try:
            upgrade(engine)
            seed_sqlite(engine, n_sqlite)
            actor = prepare(engine)
            measure(engine, actor, f"SQLite, {n_sqlite:,} subscriptions", rounds)
        finally:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
