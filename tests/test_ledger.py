"""The double-entry ledger on SQLite and PostgreSQL: balance, idempotency, reversal, append-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from billing import ledger
from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.ledger import Leg, TransactionRequest

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
INSERT = "INSERT INTO postings (transaction_id, leg, ledger_account_id, amount, currency) VALUES "


def _accounts(sessions: sessionmaker[Session], currency: str = "EUR") -> tuple[int, int]:
    with sessions.begin() as s:
        sub = ledger.open_account(
            s, code=f"acct:1:{currency}", name="Subscriber", kind="subscriber", currency=currency
        )
        rev = ledger.open_account(
            s, code=f"rev:{currency}", name="Revenue", kind="revenue", currency=currency
        )
    return sub, rev


def _charge(key: str, sub: int, rev: int, amount: str, at: datetime = T0) -> TransactionRequest:
    value = Decimal(amount)
    return TransactionRequest(key, "charge", (Leg(sub, value), Leg(rev, -value)), at, f"charge {key}")


def test_post_updates_both_cached_balances_and_natural_signs(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    with sessions.begin() as s:
        posted = ledger.post(s, _charge("c1", sub, rev, "10.50"))
    assert posted.created
    with sessions() as s:
        assert ledger.raw_balance(s, sub) == Decimal("10.50")
        assert ledger.natural_balance("subscriber", ledger.raw_balance(s, sub)) == Decimal("-10.50")
        assert ledger.natural_balance("revenue", ledger.raw_balance(s, rev)) == Decimal("10.50")
        assert s.scalar(select(func.count()).select_from(Posting)) == 2


def test_same_key_same_content_returns_first_result_and_posts_nothing(
    sessions: sessionmaker[Session],
) -> None:
    sub, rev = _accounts(sessions)
    with sessions.begin() as s:
        first = ledger.post(s, _charge("c1", sub, rev, "5"))
    later = T0 + timedelta(hours=3)
    with sessions.begin() as s:
        again = ledger.post(s, _charge("c1", sub, rev, "5.000000", at=later))
    assert (again.id, again.created) == (first.id, False)
    with sessions() as s:
        assert ledger.raw_balance(s, sub) == Decimal(5)
        assert s.scalar(select(func.count()).select_from(LedgerTransaction)) == 1


def test_same_key_other_content_is_refused(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    with sessions.begin() as s:
        ledger.post(s, _charge("c1", sub, rev, "5"))
    with pytest.raises(ledger.IdempotencyConflict, match="c1"), sessions.begin() as s:
        ledger.post(s, _charge("c1", sub, rev, "6"))
    with sessions() as s:
        assert ledger.raw_balance(s, sub) == Decimal(5)


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ([("sub", "1")], "at least two legs"),
        ([("sub", "1"), ("rev", "-0.99")], "do not sum to zero"),
        ([("sub", "0"), ("rev", "0")], "zero"),
        ([("sub", "0.0000001"), ("rev", "-0.0000001")], "fraction digits"),
        ([("sub", "1"), ("usd", "-1")], "do not sum to zero"),
        ([("sub", "1"), ("missing", "-1")], "do not exist"),
    ],
)
def test_invalid_transactions_are_refused_and_write_nothing(
    sessions: sessionmaker[Session], legs: list[tuple[str, str]], message: str
) -> None:
    sub, rev = _accounts(sessions)
    usd, _ = _accounts(sessions, "USD")
    ids = {"sub": sub, "rev": rev, "usd": usd, "missing": 999_999}
    request = TransactionRequest("bad", "charge", tuple(Leg(ids[a], Decimal(m)) for a, m in legs), T0)
    with pytest.raises(ledger.LedgerError, match=message), sessions.begin() as s:
        ledger.post(s, request)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LedgerTransaction)) == 0
        assert s.scalar(select(func.sum(LedgerAccount.balance))) in (None, 0)


def test_float_amount_is_refused(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    request = TransactionRequest("f", "charge", (Leg(sub, 0.1), Leg(rev, -0.1)), T0)  # type: ignore[arg-type]
    with pytest.raises(ledger.LedgerError, match="Decimal"), sessions.begin() as s:
        ledger.post(s, request)


def test_multi_currency_transaction_balances_per_currency(sessions: sessionmaker[Session]) -> None:
    eur_sub, eur_rev = _accounts(sessions, "EUR")
    usd_sub, usd_rev = _accounts(sessions, "USD")
    legs = (
        Leg(eur_sub, Decimal(3)),
        Leg(eur_rev, Decimal(-3)),
        Leg(usd_sub, Decimal(4)),
        Leg(usd_rev, Decimal(-4)),
    )
    with sessions.begin() as s:
        assert ledger.post(s, TransactionRequest("fx", "charge", legs, T0)).created


def test_reversal_negates_links_and_cannot_repeat(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    with sessions.begin() as s:
        original = ledger.post(s, _charge("c1", sub, rev, "7.25"))
    with sessions.begin() as s:
        reversal = ledger.reverse(s, original.id, idempotency_key="rev:c1", effective_at=T0)
    with sessions.begin() as s:  # a retry of the same reversal is idempotent
        assert ledger.reverse(s, original.id, idempotency_key="rev:c1", effective_at=T0).id == reversal.id
    with pytest.raises(ledger.AlreadyReversed), sessions.begin() as s:
        ledger.reverse(s, original.id, idempotency_key="rev:c1:again", effective_at=T0)
    with sessions() as s:
        assert ledger.raw_balance(s, sub) == 0
        row = s.get(LedgerTransaction, reversal.id)
        assert row is not None and row.reverses_id == original.id and row.kind == "reversal"


def test_batch_posts_all_updates_balances_once_and_replays_idempotently(
    sessions: sessionmaker[Session],
) -> None:
    sub, rev = _accounts(sessions)
    batch = [_charge(f"b{i}", sub, rev, "0.01") for i in range(2500)]
    with sessions.begin() as s:
        results = ledger.post_batch(s, batch)
    assert all(r.created for r in results) and len({r.id for r in results}) == 2500
    with sessions.begin() as s:
        again = ledger.post_batch(s, [*batch[:10], _charge("b-new", sub, rev, "1")])
    assert [r.created for r in again] == [False] * 10 + [True]
    assert [r.id for r in again[:10]] == [r.id for r in results[:10]]
    with sessions() as s:
        assert ledger.raw_balance(s, sub) == Decimal("26.00")


def test_batch_with_one_bad_request_writes_nothing(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    batch = [_charge("ok", sub, rev, "1"), TransactionRequest("bad", "charge", (Leg(sub, Decimal(1)),), T0)]
    with pytest.raises(ledger.UnbalancedTransaction), sessions.begin() as s:
        ledger.post_batch(s, batch)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LedgerTransaction)) == 0


def test_batch_repeating_a_key_with_other_content_is_refused(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    with pytest.raises(ledger.IdempotencyConflict), sessions.begin() as s:
        ledger.post_batch(s, [_charge("k", sub, rev, "1"), _charge("k", sub, rev, "2")])


def test_statement_has_opening_running_and_closing_balances(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    days = [T0 + timedelta(days=d) for d in range(4)]
    with sessions.begin() as s:
        for i, day in enumerate(days):
            ledger.post(s, _charge(f"d{i}", sub, rev, str(i + 1), at=day))
    with sessions() as s:
        st = ledger.statement(s, sub, days[1], days[3])
    assert st.opening == Decimal(-1)
    assert [line.amount for line in st.lines] == [Decimal(-2), Decimal(-3)]
    assert [line.balance_after for line in st.lines] == [Decimal(-3), Decimal(-6)]
    assert st.closing == Decimal(-6)
    with pytest.raises(ledger.LedgerError, match="end"), sessions() as s:
        ledger.statement(s, sub, days[3], days[1])


@pytest.mark.parametrize("statement", ["UPDATE postings SET amount = 1", "DELETE FROM postings"])
def test_postings_are_append_only_in_the_database(sessions: sessionmaker[Session], statement: str) -> None:
    sub, rev = _accounts(sessions)
    with sessions.begin() as s:
        ledger.post(s, _charge("c1", sub, rev, "5"))
    with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as s:
        s.execute(text(statement))


def test_ledger_transactions_are_append_only_in_the_database(sessions: sessionmaker[Session]) -> None:
    sub, rev = _accounts(sessions)
    with sessions.begin() as s:
        ledger.post(s, _charge("c1", sub, rev, "5"))
    with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as s:
        s.execute(text("UPDATE ledger_transactions SET description = 'x'"))


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            INSERT + "(:t, 3, :a, 1, 'USD')",
            "currency|kept in",
        ),
        (
            INSERT + "(:t, 3, 999999, 1, 'EUR')",
            "missing|kept in",
        ),
        (
            INSERT + "(999999, 1, :a, 1, 'EUR')",
            "missing",
        ),
        ("DELETE FROM ledger_accounts WHERE id = :a", "never deleted"),
        ("UPDATE ledger_accounts SET currency = 'USD' WHERE id = :a", "never deleted"),
    ],
)
def test_database_refuses_postings_without_their_references(
    sessions: sessionmaker[Session], statement: str, message: str
) -> None:
    """Triggers stand in for foreign keys: a posting needs its transaction and an account in its currency."""
    sub, rev = _accounts(sessions)
    with sessions.begin() as s:
        txn = ledger.post(s, _charge("c1", sub, rev, "5"))
    with pytest.raises(DBAPIError, match=message), sessions.begin() as s:
        s.execute(text(statement), {"t": txn.id, "a": sub})


@pytest.mark.parametrize("size", [3, 250])
def test_batch_refuses_unknown_accounts_and_per_currency_imbalance(
    sessions: sessionmaker[Session], size: int
) -> None:
    """Both batch paths (a few transactions, and a charge-run-sized batch) apply the same rules."""
    sub, rev = _accounts(sessions)
    _, usd_rev = _accounts(sessions, "USD")
    good = [_charge(f"g{i}", sub, rev, "1") for i in range(size - 1)]
    cross = TransactionRequest("x", "fx", (Leg(sub, Decimal(2)), Leg(usd_rev, Decimal(-2))), T0)
    unknown = TransactionRequest("u", "charge", (Leg(sub, Decimal(2)), Leg(424242, Decimal(-2))), T0)
    with pytest.raises(ledger.UnbalancedTransaction, match="per currency"), sessions.begin() as s:
        ledger.post_batch(s, [*good, cross])
    with pytest.raises(ledger.UnknownLedgerAccount, match="424242"), sessions.begin() as s:
        ledger.post_batch(s, [*good, unknown])
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LedgerTransaction)) == 0
        assert ledger.raw_balance(s, sub) == 0
