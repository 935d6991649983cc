"""Ledger throughput on PostgreSQL: two-leg transactions/s from 1 and 4 threads, and the batch API.

Not a test: it prints figures (median of --repeat runs) and the ratio against the issue's goals.
Each run uses a fresh database that is dropped afterwards. Usage:
    .venv/bin/python bench/ledger.py [--pg-url URL] [--seconds 5] [--batch 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from sqlalchemy.engine import make_url

from billing import ledger
from billing.db.engine import make_engine, session_factory
from billing.db.migrate import upgrade
from billing.invariants import check_ledger
from billing.ledger import Leg, TransactionRequest
from billing.ledger_poster import LedgerPoster

GOAL_SINGLE_4T = 3000.0
GOAL_BATCH = 30000.0


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(False), autocommit=True
    ) as c:
        c.execute(sql)


class Fixture:
    """A fresh database with ``n`` subscriber ledger accounts and revenue/clearing books."""

    def __init__(self, admin_url: str, n: int) -> None:
        self.admin_url = admin_url
        self.name = f"bench_ledger_{os.getpid()}_{random.randrange(10**6)}"
        _admin(admin_url, f"CREATE DATABASE {self.name}")
        self.engine = make_engine(
            make_url(admin_url).set(database=self.name).render_as_string(False), pool_size=8
        )
        upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        with self.sessions.begin() as s:
            self.subs = [
                ledger.open_account(s, code=f"acct:{i}", name=f"S{i}", kind="subscriber", currency="EUR")
                for i in range(n)
            ]
            self.revenue = ledger.open_account(
                s, code="revenue", name="Revenue", kind="revenue", currency="EUR"
            )
        self.counter = 0
        self.lock = threading.Lock()

    def next_key(self) -> str:
        with self.lock:
            self.counter += 1
            return f"k{self.counter}"

    def request(self) -> TransactionRequest:
        amount = Decimal(random.randrange(1, 10_000)) / 100
        sub = random.choice(self.subs)
        legs = (Leg(sub, amount), Leg(self.revenue, -amount))
        return TransactionRequest(self.next_key(), "charge", legs, datetime.now(UTC))

    def close(self) -> None:
        """Check the ledger's invariants, then drop the database whatever happened."""
        try:
            with self.sessions() as s:
                violations = check_ledger(s)
            if violations:
                raise SystemExit(f"invariants broken after the benchmark: {violations[:3]}")
        finally:
            self.engine.dispose()
            _admin(self.admin_url, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def _threads_posting(threads: int, seconds: float, post_one: Callable[[], object]) -> float:
    """Transactions/s when ``threads`` threads call ``post_one`` in a loop for ``seconds``."""
    done = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        while time.perf_counter() < deadline:
            post_one()
            done[slot] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def single_posts(fx: Fixture, threads: int, seconds: float) -> float:
    """Each post its own DB transaction and commit."""

    def post_one() -> None:
        with fx.sessions.begin() as s:
            ledger.post(s, fx.request())

    return _threads_posting(threads, seconds, post_one)


def grouped_posts(fx: Fixture, threads: int, seconds: float) -> float:
    """Every thread posts through one group-committing writer (:class:`LedgerPoster`)."""
    with LedgerPoster(fx.sessions) as poster:
        return _threads_posting(threads, seconds, lambda: poster.post(fx.request()))


def batch_post(fx: Fixture, size: int) -> float:
    """Transactions/s of one ``post_batch`` of ``size`` requests (building them not timed)."""
    requests = [fx.request() for _ in range(size)]
    started = time.perf_counter()
    with fx.sessions.begin() as s:
        ledger.post_batch(s, requests)
    return size / (time.perf_counter() - started)


def measure(name: str, runs: int, fn: Callable[[], float], goal: float) -> None:
    figures = [fn() for _ in range(runs)]
    median = statistics.median(figures)
    spread = ", ".join(f"{f:,.0f}" for f in figures)
    ratio = median / goal
    print(
        f"{name:<28} median {median:>8,.0f} tx/s   goal {goal:>6,.0f}   ratio {ratio:5.2f}   runs [{spread}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BILLING_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each single-post run")
    parser.add_argument("--batch", type=int, default=100_000, help="transactions in the batch run")
    parser.add_argument("--accounts", type=int, default=10_000, help="subscriber ledger accounts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is quoted")
    args = parser.parse_args()

    fx = Fixture(args.pg_url, args.accounts)
    try:
        print(
            f"PostgreSQL ledger benchmark: {args.accounts:,} subscriber accounts, one shared revenue account"
        )
        measure(
            "single post, 1 thread",
            args.repeat,
            lambda: single_posts(fx, 1, args.seconds),
            GOAL_SINGLE_4T / 4,
        )
        measure(
            "single post, 4 threads", args.repeat, lambda: single_posts(fx, 4, args.seconds), GOAL_SINGLE_4T
        )
        measure(
            "group commit, 4 threads", args.repeat, lambda: grouped_posts(fx, 4, args.seconds), GOAL_SINGLE_4T
        )
        measure(
            "group commit, 16 threads",
            args.repeat,
            lambda: grouped_posts(fx, 16, args.seconds),
            GOAL_SINGLE_4T,
        )
        measure(f"batch of {args.batch:,}", args.repeat, lambda: batch_post(fx, args.batch), GOAL_BATCH)
    finally:
        fx.close()


if __name__ == "__main__":
    main()
