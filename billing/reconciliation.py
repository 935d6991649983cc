"""Payment verification: one bank's day as the bank reports it against the payments billing recorded.

What: :func:`reconcile` compares the bank's lines for a day (its stored registry, see
:mod:`billing.bank_registry`, or the credit lines of a bank statement) with the payments recorded
for that bank (``payments.source`` = the bank's code) whose ``paid_at`` falls on that day in the
operator's time zone (``[local midnight, next local midnight)``) and that are not cancelled. They
are matched by the bank's transaction id (``payments.external_id`` = registry ``txn_id`` /
statement line key). Each bank transaction id ends in one category:

- ``matched``: both sides have it with the same amount (and account, when the bank names one);
- ``missing_in_billing``: the bank paid it, billing has no payment under that id (or cancelled
  it): money the bank will settle that no subscriber has been credited with;
- ``missing_at_bank``: billing credited it on that day, the bank does not list it;
- ``amount_differs`` / ``account_differs``: both have it, with another amount / account;
- ``other_day``: the bank lists it, billing recorded it on another local day (a cut-off
  difference): not missing, but it belongs to the other day's figures.

The result is stored, one row per (bank, day), with the counts and sums and every discrepancy as
a row, and audited: ``reconciled`` when there is no discrepancy, ``open`` when there are some,
``closed`` when an operator closes a day with discrepancies, which needs a reason
(:class:`ReasonRequired`). ``reconciled`` and ``closed`` are final: reconciling such a day again
returns the stored result and changes nothing, and its registry can no longer be replaced. An
``open`` day may be re-run (after a corrected registry, a late payment, a cancel): the new result
replaces the old one.

Suspense (what the accountant sees): the bank's clearing account (``clearing:{bank}:{currency}``)
is debited by every payment from that bank and should equal what the bank settles. Money the bank
says it paid for which billing has no payment would leave it short. When a day is closed with
discrepancies, each ``missing_in_billing`` amount is posted **clearing debit / suspense credit**
(``suspense:{currency}``, money received that belongs to someone not yet known), dated at the
bank's payment time, under the ledger key ``reconcile:{bank}:{txn_id}``: a bank transaction enters
suspense at most once, even if the bank lists it on two days (the second day links the first
posting). The money then sits in suspense until an operator pays it to an account (a later
tool: suspense debit, subscriber credit). The other discrepancies post nothing: a payment
credited with a wrong amount or to a wrong account, or one the bank never made, is corrected on
the payment itself (cancel and pay again), because the subscriber's balance is wrong, not the
bank's settlement. An ``open`` day posts nothing; a reconciled day has nothing to post.

A reconciliation covers one currency (the operator's by default): bank lines in another currency
are refused, payments in another currency are not part of it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, ledger
from billing.audit import Actor
from billing.books import book_account
from billing.db.customers import Account
from billing.db.ledger import LedgerTransaction
from billing.db.payments import Payment
from billing.db.reconciliation import (
    DISCREPANCY_KINDS,
    FINAL_STATES,
    BankRegistry,
    BankRegistryLine,
    Reconciliation,
    ReconciliationItem,
)
from billing.db.types import utcnow
from billing.payments import SOURCE, PaymentError
from rating.money import format_amount, normalize

CATEGORIES = ("matched", *DISCREPANCY_KINDS)
"""Every category in the order they are shown."""

CATEGORY_TITLES = {
    "matched": "matched",
    "missing_in_billing": "missing in billing",
    "missing_at_bank": "missing at bank",
    "amount_differs": "amount differs",
    "account_differs": "account differs",
    "other_day": "in billing on another day",
}


class ReconciliationError(PaymentError):
    """A reconciliation refused (bad input, nothing to compare with); nothing stored changes."""


class UnknownReconciliation(ReconciliationError):
    """No reconciliation for that bank and day."""


class ReasonRequired(Exception):
    """Closing a day with discrepancies needs a reason; nothing stored changes.

    Not a :class:`ReconciliationError`: the CLI reports it as a usage error (exit 2), since the
    operator forgot an option rather than asking for something refused.
    """


@dataclass(frozen=True)
class BankLine:
    """One payment as the bank reports it (a registry line or a statement's credit line)."""

    line_no: int
    txn_id: str
    account: str | None
    amount: Decimal
    paid_at: datetime | None
    currency: str | None = None


@dataclass(frozen=True)
class StatementInput:
    """A bank statement's credit lines of the day, to reconcile against instead of a registry."""

    sha256: str
    lines: tuple[BankLine, ...]
    ignored: int = 0
    """Lines left out: debits, and credits booked on other days."""


@dataclass(frozen=True)
class Discrepancy:
    """One bank transaction id that did not match, with both sides' view of it."""

    kind: str
    txn_id: str
    line_no: int | None
    bank_amount: Decimal | None
    billing_amount: Decimal | None
    bank_account: str | None
    billing_account: str | None
    payment_id: int | None
    bank_paid_at: datetime | None
    billing_paid_at: datetime | None
    note: str
    suspense_entry_id: int | None = None


@dataclass(frozen=True)
class CategoryTotal:
    """How many bank transactions fell in a category, and their sums on each side."""

    category: str
    count: int
    bank_total: Decimal
    billing_total: Decimal


@dataclass(frozen=True)
class ReconciliationResult:
    """A stored reconciliation; ``changed`` is False when a final one was only shown."""

    id: int
    bank: str
    day: date
    currency: str
    source: str
    state: str
    bank_count: int
    bank_total: Decimal
    billing_count: int
    billing_total: Decimal
    difference: Decimal
    categories: tuple[CategoryTotal, ...]
    discrepancies: tuple[Discrepancy, ...]
    suspense_total: Decimal
    reason: str | None
    operator: str
    reconciled_at: datetime
    closed_at: datetime | None
    runs: int
    registry_id: int | None
    statement_sha256: str | None
    changed: bool = True


def day_bounds(day: date, time_zone: tzinfo) -> tuple[datetime, datetime]:
    """The local day ``[midnight, next midnight)`` as UTC instants (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(0), tzinfo=time_zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=time_zone).astimezone(UTC)
    return start, end


def statement_input(parsed: Any, day: date) -> StatementInput:
    """The credit lines booked on ``day`` of a parsed statement (:func:`billing.payment_files.parse`).

    A statement with bad lines is refused naming them: reconciling against part of a statement
    would report the rest as missing. The line's key (the bank's reference) is the transaction id.
    """
    if parsed.bad:
        listed = "; ".join(f"line {b.line_no}: {b.reason}" for b in parsed.bad[:20])
        more = f" (and {len(parsed.bad) - 20} more)" if len(parsed.bad) > 20 else ""
        raise ReconciliationError(f"statement: {len(parsed.bad)} bad line(s): {listed}{more}")
    lines, ignored = [], 0
    for line in parsed.lines:
        if line.amount <= 0 or line.booked_on != day:
            ignored += 1
            continue
        lines.append(
            BankLine(
                line.line_no,
                line.key,
                line.account,  # a contract number is not comparable with an account number
                line.amount,
                getattr(line, "paid_at", None),
                line.currency,
            )
        )
    return StatementInput(parsed.sha256, tuple(lines), ignored)


def reconcile(
    session: Session,
    actor: Actor,
    bank: str,
    day: date,
    *,
    time_zone: tzinfo,
    currency: str,
    statement: StatementInput | None = None,
    close: bool = False,
    reason: str | None = None,
    known_banks: Collection[str] = (),
) -> ReconciliationResult:
    """Compare, store and audit one bank's day; close it if asked (see the module docstring).

    With a statement, ``bank`` must be in ``known_banks`` (the configured banks) or have payments
    or registries in billing: a mistyped code would report the whole statement as missing in
    billing (and closing it would move all of it to suspense).
    """
    if not SOURCE.match(bank or ""):
        raise ReconciliationError(f"bank: expected 1 to 32 letters, digits, '_', '.', '-', got {bank!r}")
    if statement is not None and bank not in known_banks and not _known(session, bank):
        raise ReconciliationError(f"bank: {bank!r} is not configured and has no payments or registries")
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > 300:
        raise ReconciliationError("reason: at most 300 characters")
    stored, created = _claimed(session, actor, bank, day, currency)
    if not created and stored.state in FINAL_STATES:
        return _result(session, stored, changed=False)
    registry_id, bank_lines = _bank_lines(session, bank, day, statement)
    for line in bank_lines:
        if line.currency is not None and line.currency != currency:
            raise ReconciliationError(
                f"line {line.line_no}: currency: the reconciliation is in {currency}, got {line.currency}"
            )
    matched_count, matched_total, items, billing = _compare(
        session, bank, day, time_zone, currency, bank_lines
    )
    state = "reconciled" if not items else ("closed" if close else "open")
    if state == "closed" and reason is None:
        raise ReasonRequired(
            f"reason: {bank} {day} has {len(items)} discrepancy(ies); closing it needs --reason "
            "(run without --close to see them)"
        )
    now = utcnow()
    before = None if created else _summary(session, stored)
    if not created:
        session.execute(delete(ReconciliationItem).where(ReconciliationItem.reconciliation_id == stored.id))
        stored.runs += 1
    stored.currency = currency
    stored.source = "registry" if statement is None else "statement"
    stored.registry_id = registry_id
    stored.statement_sha256 = None if statement is None else statement.sha256
    stored.state = state
    stored.bank_count = len(bank_lines)
    stored.bank_total = sum((line.amount for line in bank_lines), Decimal(0))
    stored.billing_count = len(billing)
    stored.billing_total = sum((p.amount for p in billing), Decimal(0))
    stored.matched_count, stored.matched_total = matched_count, matched_total
    stored.discrepancy_count = len(items)
    stored.reason = reason
    stored.operator_id, stored.operator_login = actor.operator_id, actor.login
    stored.reconciled_at = now
    stored.closed_at = now if state in FINAL_STATES else None
    session.flush()
    if state == "closed":
        items = [_to_suspense(session, actor, bank, day, currency, item, time_zone) for item in items]
    session.add_all(_item_row(stored.id, item) for item in items)
    session.flush()
    result = _result(session, stored)
    audit.record(
        session,
        actor,
        "payments.reconcile_close" if state == "closed" else "payments.reconcile",
        "reconciliation",
        stored.id,
        before=before,
        after=_summary(session, stored),
    )
    return result


def _known(session: Session, bank: str) -> bool:
    """Whether billing has any payment or registry from ``bank``."""
    return (
        session.scalar(select(Payment.id).where(Payment.source == bank).limit(1)) is not None
        or session.scalar(select(BankRegistry.id).where(BankRegistry.bank == bank).limit(1)) is not None
    )


def show(session: Session, bank: str, day: date) -> ReconciliationResult:
    """The stored reconciliation of (bank, day), as last computed."""
    stored = session.scalar(
        select(Reconciliation).where(Reconciliation.bank == bank, Reconciliation.day == day)
    )
    if stored is None:
        raise UnknownReconciliation(f"day: {bank} {day} has not been reconciled")
    return _result(session, stored, changed=False)


def _locked(session: Session, bank: str, day: date) -> Reconciliation | None:
    return session.scalar(
        select(Reconciliation).where(Reconciliation.bank == bank, Reconciliation.day == day).with_for_update()
    )


def _claimed(
    session: Session, actor: Actor, bank: str, day: date, currency: str
) -> tuple[Reconciliation, bool]:
    """The day's row, locked: the stored one (False) or a new one (True) that the caller fills.

    Two first reconciliations of a day at once: the unique (bank, day) makes the second insert
    wait for the first transaction and fail; the second then works on the first's row.
    """
    found = _locked(session, bank, day)
    if found is not None:
        return found, False
    row = Reconciliation(
        bank=bank, day=day, currency=currency, source="registry", state="open", bank_count=0,
        bank_total=Decimal(0), billing_count=0, billing_total=Decimal(0), matched_count=0,
        matched_total=Decimal(0), discrepancy_count=0, operator_id=actor.operator_id,
        operator_login=actor.login, reconciled_at=utcnow(), runs=1,
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = _locked(session, bank, day)
        if found is None:
            raise
        return found, False
    return row, True


def _bank_lines(
    session: Session, bank: str, day: date, statement: StatementInput | None
) -> tuple[int | None, list[BankLine]]:
    """The bank's side: the statement's lines, or the stored registry's (locked against a replace)."""
    if statement is not None:
        seen: dict[str, int] = {}
        for line in statement.lines:
            if line.txn_id in seen:
                raise ReconciliationError(
                    f"line {line.line_no}: the bank's reference {line.txn_id!r} is also on line "
                    f"{seen[line.txn_id]}"
                )
            seen[line.txn_id] = line.line_no
        return None, list(statement.lines)
    registry = session.scalar(
        select(BankRegistry).where(BankRegistry.bank == bank, BankRegistry.day == day).with_for_update()
    )
    if registry is None:
        raise ReconciliationError(
            f"day: no registry from {bank} for {day}: import one ('registry import') or give a statement"
        )
    rows = session.scalars(
        select(BankRegistryLine)
        .where(BankRegistryLine.registry_id == registry.id)
        .order_by(BankRegistryLine.line_no)
    )
    return registry.id, [
        BankLine(r.line_no, r.txn_id, r.account, normalize(r.amount), r.paid_at, r.currency) for r in rows
    ]


@dataclass(frozen=True)
class _Paid:
    id: int
    external_id: str
    account: str
    amount: Decimal
    paid_at: datetime
    state: str


def _payments(session: Session, *conditions: Any) -> list[_Paid]:
    rows = session.execute(
        select(Payment, Account.number).join(Account, Account.id == Payment.account_id).where(*conditions)
    )
    return [_Paid(p.id, p.external_id, number, normalize(p.amount), p.paid_at, p.state) for p, number in rows]


def _compare(
    session: Session, bank: str, day: date, time_zone: tzinfo, currency: str, lines: Sequence[BankLine]
) -> tuple[int, Decimal, list[Discrepancy], list[_Paid]]:
    """Match the bank's lines to the day's payments by transaction id: (matched, total, items, billing)."""
    start, end = day_bounds(day, time_zone)
    billing = _payments(
        session,
        Payment.source == bank,
        Payment.currency == currency,
        Payment.state == "posted",
        Payment.paid_at >= start,
        Payment.paid_at < end,
    )
    by_id = {p.external_id: p for p in billing}
    unmatched_ids = [line.txn_id for line in lines if line.txn_id not in by_id]
    elsewhere: dict[str, _Paid] = {}
    for i in range(0, len(unmatched_ids), 500):
        chunk = unmatched_ids[i : i + 500]
        found = _payments(session, Payment.source == bank, Payment.external_id.in_(chunk))
        elsewhere.update((p.external_id, p) for p in found)
    matched_count, matched_total = 0, Decimal(0)
    items: list[Discrepancy] = []
    for line in lines:
        ours = by_id.pop(line.txn_id, None)
        if ours is not None:
            kind, note = None, ""
            if ours.amount != line.amount:
                kind, note = (
                    "amount_differs",
                    (
                        f"bank {format_amount(line.amount)}, billing {format_amount(ours.amount)} "
                        f"(bank - billing {format_amount(line.amount - ours.amount)})"
                    ),
                )
            elif line.account and line.account.strip() != ours.account:
                kind, note = "account_differs", f"bank names account {line.account.strip()}"
            if kind is None:
                matched_count, matched_total = matched_count + 1, matched_total + line.amount
                continue
            items.append(_item(kind, line, ours, note))
            continue
        other = elsewhere.get(line.txn_id)
        if other is not None and other.state == "posted":
            local = other.paid_at.astimezone(time_zone).date()
            items.append(_item("other_day", line, other, f"recorded in billing on {local}"))
        elif other is not None:
            items.append(
                _item("missing_in_billing", line, other, f"cancelled in billing (payment {other.id})")
            )
        else:
            items.append(_item("missing_in_billing", line, None, "no payment with this id"))
    for ours in sorted(by_id.values(), key=lambda p: (p.paid_at, p.id)):
        items.append(
            Discrepancy(
                "missing_at_bank", ours.external_id, None, None, ours.amount, None, ours.account,
                ours.id, None, ours.paid_at, "not in the bank's list",
            )
        )  # fmt: skip
    return matched_count, matched_total, items, billing


def _item(kind: str, line: BankLine, ours: _Paid | None, note: str) -> Discrepancy:
    counted = ours is not None and kind != "other_day" and ours.state == "posted"
    return Discrepancy(
        kind,
        line.txn_id,
        line.line_no,
        line.amount,
        ours.amount if counted and ours is not None else None,
        line.account,
        ours.account if ours is not None else None,
        ours.id if ours is not None else None,
        line.paid_at,
        ours.paid_at if ours is not None else None,
        note,
    )


def suspense_key(bank: str, txn_id: str) -> str:
    """The ledger key that moves one bank transaction's money to suspense (once per bank and id)."""
    return f"reconcile:{bank}:{txn_id}"


def _to_suspense(
    session: Session, actor: Actor, bank: str, day: date, currency: str, item: Discrepancy, time_zone: tzinfo
) -> Discrepancy:
    """Post a missing-in-billing amount clearing debit / suspense credit, exactly once per bank id."""
    if item.kind != "missing_in_billing" or item.bank_amount is None:
        return item
    from billing.payment_import import unmatched_key

    key = suspense_key(bank, item.txn_id)
    held = (key, unmatched_key(bank, item.txn_id))  # this day's earlier close, or an unmatched file line
    prior = session.scalar(
        select(LedgerTransaction.id)
        .where(LedgerTransaction.idempotency_key.in_(held))
        .order_by(LedgerTransaction.id)
    )
    if prior is not None:  # held in suspense since an earlier day or import: the money is there once
        note = f"{item.note}; already in suspense (ledger transaction {prior})"
        return replace(item, suspense_entry_id=prior, note=note[:300])
    now = utcnow()
    at = item.bank_paid_at or day_bounds(day, time_zone)[0]
    clearing = book_account(session, "clearing", currency, bank)
    suspense = book_account(session, "suspense", currency)
    posted = ledger.post(
        session,
        ledger.TransactionRequest(
            idempotency_key=key,
            kind="suspense",
            legs=(ledger.Leg(clearing, item.bank_amount), ledger.Leg(suspense, -item.bank_amount)),
            effective_at=min(at, now),
            description=f"reconciliation {bank} {day}: {item.txn_id} paid by the bank, not in billing"[:500],
            operator_id=actor.operator_id,
        ),
    )
    return replace(item, suspense_entry_id=posted.id)


def _item_row(reconciliation_id: int, item: Discrepancy) -> ReconciliationItem:
    return ReconciliationItem(
        reconciliation_id=reconciliation_id,
        kind=item.kind,
        txn_id=item.txn_id,
        line_no=item.line_no,
        bank_amount=item.bank_amount,
        billing_amount=item.billing_amount,
        bank_account=None if item.bank_account is None else item.bank_account[:64],
        billing_account=item.billing_account,
        payment_id=item.payment_id,
        bank_paid_at=item.bank_paid_at,
        billing_paid_at=item.billing_paid_at,
        note=item.note[:300],
        suspense_entry_id=item.suspense_entry_id,
    )


def _items(session: Session, reconciliation_id: int) -> list[Discrepancy]:
    rows = session.scalars(
        select(ReconciliationItem)
        .where(ReconciliationItem.reconciliation_id == reconciliation_id)
        .order_by(ReconciliationItem.id)
    )
    return [
        Discrepancy(
            r.kind,
            r.txn_id,
            r.line_no,
            None if r.bank_amount is None else normalize(r.bank_amount),
            None if r.billing_amount is None else normalize(r.billing_amount),
            r.bank_account,
            r.billing_account,
            r.payment_id,
            r.bank_paid_at,
            r.billing_paid_at,
            r.note,
            r.suspense_entry_id,
        )
        for r in rows
    ]


def _categories(stored: Reconciliation, items: Iterable[Discrepancy]) -> tuple[CategoryTotal, ...]:
    counts = {c: [0, Decimal(0), Decimal(0)] for c in CATEGORIES}
    counts["matched"] = [
        stored.matched_count,
        normalize(stored.matched_total),
        normalize(stored.matched_total),
    ]
    for item in items:
        entry = counts[item.kind]
        entry[0] += 1
        entry[1] += item.bank_amount or Decimal(0)
        entry[2] += item.billing_amount or Decimal(0)
    return tuple(CategoryTotal(c, int(n), normalize(b), normalize(p)) for c, (n, b, p) in counts.items())


def _result(session: Session, stored: Reconciliation, *, changed: bool = True) -> ReconciliationResult:
    items = _items(session, stored.id)
    bank_total, billing_total = normalize(stored.bank_total), normalize(stored.billing_total)
    suspense = sum(
        (i.bank_amount or Decimal(0) for i in items if i.suspense_entry_id is not None), Decimal(0)
    )
    return ReconciliationResult(
        stored.id,
        stored.bank,
        stored.day,
        stored.currency,
        stored.source,
        stored.state,
        stored.bank_count,
        bank_total,
        stored.billing_count,
        billing_total,
        normalize(bank_total - billing_total),
        _categories(stored, items),
        tuple(items),
        normalize(suspense),
        stored.reason,
        stored.operator_login,
        stored.reconciled_at,
        stored.closed_at,
        stored.runs,
        stored.registry_id,
        stored.statement_sha256,
        changed,
    )


def _summary(session: Session, stored: Reconciliation) -> dict[str, Any]:
    """What the audit log keeps of a result: state, totals and the per-category figures."""
    result = _result(session, stored)
    return {
        "bank": result.bank,
        "day": result.day,
        "source": result.source,
        "state": result.state,
        "reason": result.reason,
        "bank_side": (result.bank_count, result.bank_total),
        "billing_side": (result.billing_count, result.billing_total),
        "categories": {c.category: (c.count, c.bank_total, c.billing_total) for c in result.categories},
        "suspense_total": result.suspense_total,
        "suspense_entries": [i.suspense_entry_id for i in result.discrepancies if i.suspense_entry_id],
    }
