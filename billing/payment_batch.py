"""Payments posted as a group in one DB transaction, with a few statements for the whole group.

What: :func:`pay_many` does the writing of :func:`billing.payments.pay` (which checks one request,
then calls it with a group of one) for each request (post the
ledger transaction under the key ``payment:{source}:{id}``, record the payment, resume services
suspended for debt, queue the notification, audit), but with one query per kind of row for the
group instead of a dozen round trips per payment. Any refusal (unknown or closed account, bad
amount, an id reused with other details) raises, and the caller retries each request alone with
:func:`billing.payments.pay`, which names the one at fault.

Why: the payment API's group commit (:class:`billing.group_poster.GroupPoster` in the gateway)
hands it what queued up while the previous group was committing, so the bank's clearing
account, which every payment of the bank updates, is locked once per group, not per payment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from billing import ledger, payments
from billing.audit import Actor, json_safe
from billing.books import book_account
from billing.db.audit import AuditEntry
from billing.db.customers import Account
from billing.db.ledger import LedgerAccount
from billing.db.payments import Notification, Payment
from billing.db.services import Service
from billing.db.types import utcnow
from billing.lifecycle_rules import LifecycleRules
from billing.payments import PaymentError, PaymentInfo, PaymentRequest
from rating.money import normalize


def pay_many(
    session: Session,
    items: Sequence[tuple[Actor, PaymentRequest]],
    *,
    rules: LifecycleRules,
    debit_book: int | None = None,
) -> list[PaymentInfo]:
    """Post each ``(actor, request)`` (see the module docstring); results in request order.

    The money comes from each source's clearing account, or from ``debit_book`` when given.
    """
    now = utcnow()
    numbers = sorted({request.account_number for _, request in items})
    found = {a.number: a for a in session.scalars(select(Account).where(Account.number.in_(numbers)))}
    amounts: list[Decimal] = []
    for _, request in items:
        account = found.get(request.account_number)
        if account is None or account.status != "active":
            raise PaymentError(f"account: {request.account_number!r} cannot be paid; see payments.pay")
        amounts.append(payments.checked_amount(request, account.currency, now))
    books = {
        (request.source, found[request.account_number].currency): 0 for _, request in items
    }  # fmt: skip
    for source, currency in books:
        books[source, currency] = debit_book or book_account(session, "clearing", currency, source)
    requests = [
        payments.ledger_request(
            actor, request, found[request.account_number], amount,
            books[request.source, found[request.account_number].currency], now,
        )
        for (actor, request), amount in zip(items, amounts, strict=True)
    ]  # fmt: skip
    try:
        posted = ledger.post_batch(session, requests)
    except ledger.IdempotencyConflict as exc:
        raise payments.PaymentConflict(f"external_id: {exc}") from None
    fresh = [i for i, p in enumerate(posted) if p.created]
    rows = [
        {
            "source": items[i][1].source,
            "external_id": items[i][1].external_id,
            "channel": items[i][1].channel,
            "account_id": found[items[i][1].account_number].id,
            "amount": amounts[i],
            "currency": found[items[i][1].account_number].currency,
            "paid_at": items[i][1].paid_at,
            "received_at": now,
            "purpose": items[i][1].purpose.strip(),
            "state": "posted",
            "transaction_id": posted[i].id,
            "operator_id": items[i][0].operator_id,
        }
        for i in fresh
    ]
    ids = (
        list(session.scalars(insert(Payment).returning(Payment.id, sort_by_parameter_order=True), rows))
        if rows
        else []
    )
    results: dict[int, PaymentInfo] = {}
    for i, row, payment_id in zip(fresh, rows, ids, strict=True):
        results[i] = _info(payment_id, row, items[i][1].account_number)
    replays = [i for i in range(len(items)) if i not in results]
    if replays:
        _replayed(session, items, amounts, found, replays, results)
    _resumed(session, items, found, fresh, results, rules)
    _notify_and_audit(session, items, found, fresh, results, now)
    return [results[i] for i in range(len(items))]


def _info(payment_id: int, row: dict[str, object], number: str) -> PaymentInfo:
    return PaymentInfo(
        payment_id, str(row["source"]), str(row["external_id"]), str(row["channel"]), number,
        normalize(row["amount"]), str(row["currency"]), row["paid_at"], row["received_at"],  # type: ignore[arg-type]
        str(row["purpose"]), "posted", int(row["transaction_id"]), None, None, None,  # type: ignore[call-overload]
    )  # fmt: skip


def _replayed(
    session: Session,
    items: Sequence[tuple[Actor, PaymentRequest]],
    amounts: list[Decimal],
    found: dict[str, Account],
    replays: list[int],
    results: dict[int, PaymentInfo],
) -> None:
    """Requests whose key was posted before (or earlier in this group): the recorded payment."""
    pairs = {(items[i][1].source, items[i][1].external_id) for i in replays}
    query = select(Payment).where(tuple_(Payment.source, Payment.external_id).in_(pairs))
    recorded = {(p.source, p.external_id): p for p in session.scalars(query)}
    for i in replays:
        request = items[i][1]
        payment = recorded[request.source, request.external_id]
        if payment.account_id != found[request.account_number].id or payment.amount != amounts[i]:
            raise payments.PaymentConflict(f"external_id: {request.source} {request.external_id} reused")
        results[i] = payments.payment_info(payment, request.account_number, created=False)


def _resumed(
    session: Session,
    items: Sequence[tuple[Actor, PaymentRequest]],
    found: dict[str, Account],
    fresh: list[int],
    results: dict[int, PaymentInfo],
    rules: LifecycleRules,
) -> None:
    """Accounts of the group with services suspended for debt are evaluated (they are few)."""
    by_account = {found[items[i][1].account_number].id: i for i in fresh}
    if not by_account:
        return
    suspended = set(
        session.scalars(
            select(Service.account_id)
            .where(Service.account_id.in_(by_account), Service.status == "suspended_involuntary")
            .distinct()
        )
    )
    for account_id in sorted(suspended):
        i = by_account[account_id]
        actor, request = items[i]
        at = max(results[i].received_at, request.paid_at)
        changes = payments.resume_services(session, actor, found[request.account_number], at, rules)
        results[i] = replace(results[i], lifecycle_changes=changes)


def _notify_and_audit(
    session: Session,
    items: Sequence[tuple[Actor, PaymentRequest]],
    found: dict[str, Account],
    fresh: list[int],
    results: dict[int, PaymentInfo],
    now: object,
) -> None:
    """One notification and one audit row per new payment, each kind in one statement."""
    if not fresh:
        return
    ledger_ids = {found[items[i][1].account_number].ledger_account_id for i in fresh}
    balances = {
        account_id: normalize(ledger.natural_balance(kind, raw))
        for account_id, kind, raw in session.execute(
            select(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.balance).where(
                LedgerAccount.id.in_(ledger_ids)
            )
        )
    }
    notes, entries = [], []
    for i in fresh:
        actor, request = items[i]
        account, info = found[request.account_number], results[i]
        balance = balances[account.ledger_account_id]
        notes.append({
            "key": f"payment:{info.id}", "account_id": account.id, "kind": "payment_received",
            "payload": {"amount": str(info.amount), "currency": info.currency, "balance": str(balance)},
            "state": "pending", "created_at": now,
        })  # fmt: skip
        entries.append({
            "at": now, "operator_id": actor.operator_id, "operator_login": actor.login,
            "impersonated_by": actor.impersonated_by, "action": "payments.pay", "object_type": "payment",
            "object_id": str(info.id), "outcome": "ok", "before": None,
            "after": json_safe({"payment": info, "balance": balance}), "source": actor.source,
        })  # fmt: skip
    session.execute(insert(Notification), notes)
    session.execute(insert(AuditEntry), entries)
