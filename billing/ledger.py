"""The double-entry ledger: post transactions (one or a batch), reverse them, read balances.

Rules this module enforces:
- a transaction has at least two legs, and its legs sum to zero per currency;
- postings are append-only; a correction is a reversing transaction linked to the original;
- each transaction has an idempotency key, unique in the database: the same key with the same
  content (kind, legs, reversed transaction) returns the first result, with other content it
  raises :class:`IdempotencyConflict`; description and effective time are the first post's;
- each ledger account's cached balance changes in the same database transaction as its postings,
  by ``balance = balance + delta`` on rows locked in id order (no lost update, no deadlock).

Amounts are signed, debit positive. :func:`natural_balance` turns that into the figure people
expect (a subscriber's funds, revenue earned) from the account kind's normal side.
The caller owns the database transaction: these functions never commit.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import NamedTuple

from sqlalchemy import and_, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from billing.db import ledger_writes as writes
from billing.db.ledger import LEDGER_ACCOUNT_KINDS, LedgerAccount, LedgerTransaction, Posting
from billing.db.types import utcnow
from rating.money import MoneyError, from_micros, to_micros

_CHUNK = 1000
_CHECK_VIOLATION = "23514"
"""SQLSTATE the postings trigger raises for a transaction unbalanced in some currency."""
_KEY_MAX = 200


class LedgerError(Exception):
    """A posting request the ledger refuses; nothing of it is written."""


class UnbalancedTransaction(LedgerError):
    """Fewer than two legs, a zero leg, or legs that do not sum to zero per currency."""


class UnknownLedgerAccount(LedgerError):
    """A leg names a ledger account that does not exist."""


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before for a transaction with different content."""


class AlreadyReversed(LedgerError):
    """The transaction was reversed before (a reversal is itself reversed by a new one)."""


@dataclass(frozen=True)
class Leg:
    """One posting to be made: ``amount`` is debit positive, credit negative."""

    ledger_account_id: int
    amount: Decimal


@dataclass(frozen=True)
class TransactionRequest:
    """A transaction to post; ``idempotency_key`` names the business event (e.g. ``pay:bank1:778``)."""

    idempotency_key: str
    kind: str
    legs: tuple[Leg, ...]
    effective_at: datetime
    description: str = ""
    reverses_id: int | None = None
    operator_id: int | None = None

    @cached_property
    def content_hash(self) -> str:
        """What makes two requests "the same"; see :func:`content_hash`."""
        return content_hash(
            self.kind, self.reverses_id, [(g.ledger_account_id, to_micros(g.amount)) for g in self.legs]
        )


class PostedTransaction(NamedTuple):
    """Result of a post: ``created`` is False when the key had been posted before."""

    id: int
    idempotency_key: str
    created: bool


@dataclass(frozen=True)
class StatementLine:
    """A posting on a statement, signed the natural way for the account kind."""

    transaction_id: int
    effective_at: datetime
    kind: str
    description: str
    amount: Decimal
    balance_after: Decimal


@dataclass(frozen=True)
class Statement:
    """Movements of one ledger account over the half-open period ``[start, end)``."""

    ledger_account_id: int
    code: str
    currency: str
    start: datetime
    end: datetime
    opening: Decimal
    closing: Decimal
    lines: tuple[StatementLine, ...] = field(default_factory=tuple)


def content_hash(kind: str, reverses_id: int | None, legs: Iterable[tuple[int, int]]) -> str:
    """SHA-256 over kind, reversed transaction and the (account, amount in millionths) legs.

    Stored on the transaction: it decides idempotent replays, and the invariant check recomputes
    it from the stored postings to prove that none was changed, added or removed.
    """
    text = f"{kind}|{reverses_id}|" + ";".join(f"{a}:{m}" for a, m in sorted(legs))
    return hashlib.sha256(text.encode()).hexdigest()


def natural_balance(kind: str, raw: Decimal) -> Decimal:
    """Raw (debit-positive) sum shown with the account kind's normal sign."""
    return raw if LEDGER_ACCOUNT_KINDS[kind] == "debit" else -raw


def open_account(session: Session, *, code: str, name: str, kind: str, currency: str) -> int:
    """Create a ledger account with a zero balance and return its id."""
    if kind not in LEDGER_ACCOUNT_KINDS:
        raise LedgerError(f"kind: expected one of {', '.join(LEDGER_ACCOUNT_KINDS)}, got {kind!r}")
    account = LedgerAccount(code=code, name=name, kind=kind, currency=currency, balance=Decimal(0))
    session.add(account)
    session.flush()
    return account.id


def post(session: Session, request: TransactionRequest) -> PostedTransaction:
    """Post one transaction (idempotently); see the module docstring for the rules."""
    return post_batch(session, [request])[0]


def post_batch(session: Session, requests: Sequence[TransactionRequest]) -> list[PostedTransaction]:
    """Post many transactions in the caller's DB transaction; results are in request order.

    Any error means the caller must roll back (what was checked in Python is checked before
    anything is written; what the database checks aborts its transaction). Balance updates are
    summed per account and applied once each.
    """
    if not requests:
        return []
    unique = _dedupe(requests)
    new = {request.idempotency_key: _validated(request) for request in unique}
    currencies = _checked_currencies(session, new) if writes.needs_currencies(session, len(new)) else None
    try:
        inserted = writes.insert_transactions(session, list(new.values()), utcnow(), currencies)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _CHECK_VIOLATION:  # the postings trigger
            raise UnbalancedTransaction(str(exc.orig).splitlines()[0]) from None
        raise
    existing = _load_existing(session, [key for key in new if key not in inserted])
    deltas: dict[int, int] = defaultdict(int)  # in millionths: int sums are exact and fast
    results: dict[str, PostedTransaction] = {}
    for key, txn in new.items():
        if key in inserted:
            results[key] = PostedTransaction(inserted[key], key, True)
            for posting in txn.postings:
                deltas[posting.ledger_account_id] += to_micros(posting.amount)
        elif key in existing:
            txn_id, recorded_hash = existing[key]
            if recorded_hash != txn.content_hash:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was posted before as transaction {txn_id} with other content"
                )
            results[key] = PostedTransaction(txn_id, key, False)
        else:  # neither inserted nor there: skipped by the database for an unknown account
            _known_currencies(session, {p.ledger_account_id for p in txn.postings})  # raises, naming it
            raise LedgerError(f"{key}: refused by the database")
    writes.add_to_balances(session, {a: from_micros(m) for a, m in deltas.items()})
    if len(results) == len(requests):
        return [results[r.idempotency_key] for r in requests]
    answered: set[str] = set()
    out = []
    for request in requests:  # a key repeated in the batch was created once: later copies say so
        result = results[request.idempotency_key]
        if request.idempotency_key in answered and result.created:
            result = result._replace(created=False)
        answered.add(request.idempotency_key)
        out.append(result)
    return out


def reverse(
    session: Session,
    transaction_id: int,
    *,
    idempotency_key: str,
    effective_at: datetime,
    description: str = "",
    operator_id: int | None = None,
) -> PostedTransaction:
    """Post the exact opposite of a transaction, linked to it; a second reversal is refused."""
    original = session.get(LedgerTransaction, transaction_id)
    if original is None:
        raise LedgerError(f"transaction {transaction_id} does not exist")
    rows = session.execute(
        select(Posting.ledger_account_id, Posting.amount).where(Posting.transaction_id == transaction_id)
    ).all()
    request = TransactionRequest(
        idempotency_key=idempotency_key,
        kind="reversal",
        legs=tuple(Leg(account_id, -amount) for account_id, amount in rows),
        effective_at=effective_at,
        description=description or f"reversal of transaction {transaction_id}",
        reverses_id=transaction_id,
        operator_id=operator_id,
    )
    prior = session.scalar(
        select(LedgerTransaction.id).where(LedgerTransaction.reverses_id == transaction_id)
    )
    if prior is not None:
        replay = session.scalar(
            select(LedgerTransaction.idempotency_key).where(LedgerTransaction.id == prior)
        )
        if replay != idempotency_key:
            raise AlreadyReversed(f"transaction {transaction_id} was already reversed by transaction {prior}")
    return post(session, request)


def raw_balance(session: Session, ledger_account_id: int) -> Decimal:
    """The cached balance (debit positive) of a ledger account."""
    value = session.scalar(select(LedgerAccount.balance).where(LedgerAccount.id == ledger_account_id))
    if value is None:
        raise UnknownLedgerAccount(f"ledger account {ledger_account_id} does not exist")
    return value


def statement(session: Session, ledger_account_id: int, start: datetime, end: datetime) -> Statement:
    """Opening balance, each posting in ``[start, end)`` with the running balance, and closing."""
    if end <= start:
        raise LedgerError(f"period: end {end.isoformat()} must be after start {start.isoformat()}")
    account = session.get(LedgerAccount, ledger_account_id)
    if account is None:
        raise UnknownLedgerAccount(f"ledger account {ledger_account_id} does not exist")
    joined = and_(
        Posting.transaction_id == LedgerTransaction.id, Posting.ledger_account_id == ledger_account_id
    )
    opening_raw = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .select_from(Posting)
        .join(LedgerTransaction, joined)
        .where(LedgerTransaction.effective_at < start)
    )
    opening = natural_balance(account.kind, Decimal(opening_raw or 0))
    running = opening
    lines = []
    rows = session.execute(
        select(
            LedgerTransaction.id,
            LedgerTransaction.effective_at,
            LedgerTransaction.kind,
            LedgerTransaction.description,
            Posting.amount,
        )
        .join(LedgerTransaction, joined)
        .where(LedgerTransaction.effective_at >= start, LedgerTransaction.effective_at < end)
        .order_by(LedgerTransaction.effective_at, LedgerTransaction.id, Posting.leg)
    )
    for txn_id, effective_at, kind, description, amount in rows:
        signed = natural_balance(account.kind, amount)
        running += signed
        lines.append(StatementLine(txn_id, effective_at, kind, description, signed, running))
    return Statement(account.id, account.code, account.currency, start, end, opening, running, tuple(lines))


def _dedupe(requests: Sequence[TransactionRequest]) -> list[TransactionRequest]:
    """One request per key; a key repeated in one batch with other content is a conflict."""
    seen: dict[str, TransactionRequest] = {}
    for request in requests:
        first = seen.setdefault(request.idempotency_key, request)
        if first is not request and first.content_hash != request.content_hash:
            raise IdempotencyConflict(
                f"idempotency key {request.idempotency_key!r} appears twice in the batch "
                "with different content"
            )
    return list(seen.values())


def _validated(request: TransactionRequest) -> writes.NewTransaction:
    """Check a request's shape and amounts and turn it into rows to insert (hot path: one pass).

    The legs must sum to zero; per currency is checked where currencies are known: by
    :func:`_checked_currencies`, or by the database's postings trigger on PostgreSQL.
    """
    key = request.idempotency_key
    if not key or len(key) > _KEY_MAX:
        raise LedgerError(f"idempotency_key: expected 1 to {_KEY_MAX} characters, got {len(key)}")
    if request.effective_at.tzinfo is None:
        raise LedgerError(f"{key}: effective_at must be timezone-aware")
    if len(request.legs) < 2:
        raise UnbalancedTransaction(f"{key}: a transaction needs at least two legs, got {len(request.legs)}")
    total = 0
    postings = []
    hashed = []
    for leg in request.legs:
        if type(leg.amount) is not Decimal:
            raise LedgerError(f"{key}: amount must be Decimal, got {type(leg.amount).__name__}")
        try:
            micros = to_micros(leg.amount)
        except MoneyError as exc:
            raise LedgerError(f"{key}: {exc}") from None
        if not micros:
            raise UnbalancedTransaction(f"{key}: a leg of zero on ledger account {leg.ledger_account_id}")
        total += micros
        hashed.append((leg.ledger_account_id, micros))
        postings.append(writes.NewPosting(len(postings) + 1, leg.ledger_account_id, leg.amount))
    if total:
        raise UnbalancedTransaction(f"{key}: legs do not sum to zero (off by {from_micros(total):+})")
    return writes.NewTransaction(
        key,
        request.kind,
        request.description,
        request.effective_at,
        request.reverses_id,
        request.operator_id,
        content_hash(request.kind, request.reverses_id, hashed),
        tuple(postings),
    )


def _checked_currencies(session: Session, new: dict[str, writes.NewTransaction]) -> dict[int, str]:
    """Currencies of every account posted to, refusing unknown accounts and per-currency imbalance.

    The legs' total is already zero, so a transaction within one currency balances; only
    transactions across currencies need their sums taken.
    """
    currencies = _known_currencies(session, {p.ledger_account_id for t in new.values() for p in t.postings})
    for key, txn in new.items():
        if len({currencies[p.ledger_account_id] for p in txn.postings}) == 1:
            continue
        sums: dict[str, int] = defaultdict(int)
        for p in txn.postings:
            sums[currencies[p.ledger_account_id]] += to_micros(p.amount)
        unbalanced = {c: from_micros(m) for c, m in sums.items() if m}
        if unbalanced:
            detail = ", ".join(f"{c} {s:+}" for c, s in sorted(unbalanced.items()))
            raise UnbalancedTransaction(f"{key}: legs do not sum to zero per currency ({detail})")
    return currencies


def _known_currencies(session: Session, account_ids: set[int]) -> dict[int, str]:
    """Currencies of the given ledger accounts; an unknown one is an error naming it."""
    ordered = sorted(account_ids)
    currencies = writes.account_currencies(session, ordered)
    unknown = [a for a in ordered if a not in currencies]
    if unknown:
        raise UnknownLedgerAccount(f"ledger account(s) {', '.join(map(str, unknown))} do not exist")
    return currencies


def _load_existing(session: Session, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for i in range(0, len(keys), _CHUNK):
        rows = session.execute(
            select(
                LedgerTransaction.idempotency_key, LedgerTransaction.id, LedgerTransaction.content_hash
            ).where(LedgerTransaction.idempotency_key.in_(keys[i : i + _CHUNK]))
        )
        found.update((key, (txn_id, content_hash)) for key, txn_id, content_hash in rows)
    return found
