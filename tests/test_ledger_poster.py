"""Group commit: many threads post through one writer; each caller gets its own outcome."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import ledger
from billing.db.ledger import LedgerTransaction
from billing.ledger import Leg, TransactionRequest
from billing.ledger_poster import LedgerPoster

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _open(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions.begin() as s:
        sub = ledger.open_account(s, code="acct:1", name="S", kind="subscriber", currency="EUR")
        rev = ledger.open_account(s, code="rev", name="R", kind="revenue", currency="EUR")
    return sub, rev


def _charge(key: str, sub: int, rev: int, amount: str = "1") -> TransactionRequest:
    value = Decimal(amount)
    return TransactionRequest(key, "charge", (Leg(sub, value), Leg(rev, -value)), T0)


def test_threads_posting_through_the_poster_all_commit(sessions: sessionmaker[Session]) -> None:
    sub, rev = _open(sessions)
    with LedgerPoster(sessions) as poster, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: poster.post(_charge(f"k{i}", sub, rev)), range(400)))
    assert all(r.created for r in results) and len({r.id for r in results}) == 400
    with sessions() as s:
        assert ledger.raw_balance(s, sub) == Decimal(400)


def test_a_bad_request_fails_only_its_own_caller(sessions: sessionmaker[Session]) -> None:
    sub, rev = _open(sessions)
    with sessions.begin() as s:
        ledger.post(s, _charge("taken", sub, rev, "5"))
    with LedgerPoster(sessions) as poster:
        futures = [poster.submit(_charge(f"k{i}", sub, rev)) for i in range(50)]
        clash = poster.submit(_charge("taken", sub, rev, "6"))
        replay = poster.submit(_charge("taken", sub, rev, "5"))
        futures += [poster.submit(_charge(f"m{i}", sub, rev)) for i in range(50)]
        assert all(f.result(30).created for f in futures)
        with pytest.raises(ledger.IdempotencyConflict):
            clash.result(30)
        assert not replay.result(30).created
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LedgerTransaction)) == 101
        assert ledger.raw_balance(s, sub) == Decimal(105)


def test_the_same_key_twice_in_one_group_is_created_once(sessions: sessionmaker[Session]) -> None:
    sub, rev = _open(sessions)
    with sessions.begin() as s:
        first, second = ledger.post_batch(s, [_charge("dup", sub, rev), _charge("dup", sub, rev)])
    assert first.id == second.id and (first.created, second.created) == (True, False)


def test_closed_poster_refuses_new_work(sessions: sessionmaker[Session]) -> None:
    sub, rev = _open(sessions)
    poster = LedgerPoster(sessions)
    with poster:
        poster.post(_charge("a", sub, rev))
    with pytest.raises(RuntimeError, match="closed"):
        poster.submit(_charge("b", sub, rev))
