"""Ledger under concurrency: racing duplicate posts and concurrent postings to one account.

Run on both backends; PostgreSQL is the one that matters (row locks and a real unique index
under concurrent transactions), SQLite shows the embedded default serialises correctly.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import ledger
from billing.db.ledger import LedgerTransaction
from billing.ledger import Leg, PostedTransaction, TransactionRequest

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _open(sessions: sessionmaker[Session], n_subscribers: int = 1) -> tuple[list[int], int]:
    with sessions.begin() as s:
        subs = [
            ledger.open_account(s, code=f"acct:{i}", name=f"S{i}", kind="subscriber", currency="EUR")
            for i in range(n_subscribers)
        ]
        rev = ledger.open_account(s, code="rev", name="Revenue", kind="revenue", currency="EUR")
    return subs, rev


def test_two_threads_racing_the_same_key_post_exactly_once(sessions: sessionmaker[Session]) -> None:
    (sub,), rev = _open(sessions)
    rounds = 15
    barrier = threading.Barrier(2)

    def racer(key: str) -> PostedTransaction:
        request = TransactionRequest(key, "payment", (Leg(rev, Decimal(1)), Leg(sub, Decimal(-1))), T0)
        barrier.wait(timeout=10)
        with sessions.begin() as s:
            return ledger.post(s, request)

    with ThreadPoolExecutor(2) as pool:
        for i in range(rounds):
            a, b = pool.map(racer, [f"pay:{i}", f"pay:{i}"])
            assert a.id == b.id
            assert sorted([a.created, b.created]) == [False, True]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LedgerTransaction)) == rounds
        assert ledger.raw_balance(s, sub) == Decimal(-rounds)


def test_concurrent_postings_to_one_account_lose_no_update(sessions: sessionmaker[Session]) -> None:
    subs, rev = _open(sessions, n_subscribers=4)
    threads, per_thread = 4, 40

    def worker(t: int) -> None:
        for i in range(per_thread):
            sub = subs[(t + i) % len(subs)]  # different pairs, always the shared revenue account
            with sessions.begin() as s:
                ledger.post(
                    s,
                    TransactionRequest(
                        f"c:{t}:{i}", "charge", (Leg(sub, Decimal("0.10")), Leg(rev, Decimal("-0.10"))), T0
                    ),
                )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    with sessions() as s:
        assert ledger.raw_balance(s, rev) == Decimal("-0.10") * threads * per_thread
        assert sum(ledger.raw_balance(s, sub) for sub in subs) == Decimal("0.10") * threads * per_thread
