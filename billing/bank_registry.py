"""A bank's daily registry: its own list of the payments it made to us on one day.

What: :func:`record_registry` stores the registry of (bank, day), whoever brings it (the banks'
SOAP registry upload, ``billing-admin registry import FILE``); :func:`show` reads it back.
:mod:`billing.reconciliation` compares it with the payments billing recorded for that bank and day.

Rules:
- one registry per (bank, day), unique in the database. A new upload for the same day replaces
  the lines (the bank corrected its registry) and counts the replacement; the same lines again
  change nothing (a bank retrying its upload), so a retry is harmless, even after the day closed;
- once the day's reconciliation is final (``reconciled``, or ``closed`` with discrepancies) the
  registry is what it was reconciled against: a new upload is refused (:class:`DayClosed`);
- a registry is all or nothing: a bad line (empty id, non-positive amount, naive time, a
  transaction id twice, mixed currencies) refuses the whole upload naming the line, because a
  reconciliation against half a registry would report the other half as missing.
Every stored or replaced registry is audited (``payments.registry``) with the old and new totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit
from billing.audit import Actor
from billing.db.reconciliation import (
    FINAL_STATES,
    REGISTRY_ORIGINS,
    BankRegistry,
    BankRegistryLine,
    Reconciliation,
)
from billing.db.types import utcnow
from billing.payments import SOURCE, PaymentError
from rating.money import MoneyError, normalize, parse_amount

ACCOUNT_MAX = 64
TXN_ID_MAX = 100

_Row = tuple[int, str, str, Decimal, datetime, str | None]
"""A checked line: (line_no, txn_id, account, amount, paid_at, currency)."""


class RegistryError(PaymentError):
    """A registry refused: bad line or bad request; nothing stored changes."""


class DayClosed(RegistryError):
    """The day's reconciliation is final; its registry can no longer be replaced."""


class UnknownRegistry(RegistryError):
    """No registry for that bank and day."""


@dataclass(frozen=True)
class RegistryLine:
    """One payment as the bank lists it: its transaction id, the account, amount and time.

    ``currency`` is optional (the SOAP upload does not send one); when given, every line of a
    registry must have the same one. Errors name ``line_no``.
    """

    txn_id: str
    account: str
    amount: Decimal
    paid_at: datetime
    currency: str | None = None
    line_no: int | None = None
    """Where the line is in its file (default: its position in the upload, from 1)."""


@dataclass(frozen=True)
class RegistryInfo:
    """A stored registry with its lines (line numbers as uploaded)."""

    id: int
    bank: str
    day: date
    origin: str
    line_count: int
    total: Decimal
    received_at: datetime
    replaced: int
    lines: tuple[RegistryLine, ...]


def _checked(lines: Sequence[RegistryLine]) -> list[_Row]:
    """Each line validated and normalised, or a :class:`RegistryError` naming the first bad one."""
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    currencies: set[str] = set()
    for position, line in enumerate(lines, 1):
        line_no = line.line_no or position
        where = f"line {line_no}"
        txn_id = (line.txn_id or "").strip()
        if not txn_id or len(txn_id) > TXN_ID_MAX:
            raise RegistryError(
                f"{where}: txn_id: expected 1 to {TXN_ID_MAX} characters, got {line.txn_id!r}"
            )
        if txn_id in seen:
            raise RegistryError(f"{where}: txn_id: {txn_id!r} is also on line {seen[txn_id]}")
        seen[txn_id] = line_no
        account = (line.account or "").strip()
        if not account or len(account) > ACCOUNT_MAX:
            raise RegistryError(
                f"{where}: account: expected 1 to {ACCOUNT_MAX} characters, got {line.account!r}"
            )
        try:
            amount = parse_amount(line.amount, field=f"{where}: amount")
        except MoneyError as exc:
            raise RegistryError(str(exc)) from None
        if amount <= 0:
            raise RegistryError(f"{where}: amount: must be positive, got {amount}")
        if not isinstance(line.paid_at, datetime) or line.paid_at.tzinfo is None:
            raise RegistryError(f"{where}: paid_at: must be a timezone-aware time")
        if line.currency is not None:
            currencies.add(line.currency)
            if len(currencies) > 1:
                raise RegistryError(
                    f"{where}: currency: a registry holds one currency, got {', '.join(sorted(currencies))}"
                )
        rows.append((line_no, txn_id, account, normalize(amount), line.paid_at, line.currency))
    return rows


def lines_from_file(parsed: Any, time_zone: tzinfo, day: date | None) -> tuple[date, list[RegistryLine]]:
    """The registry lines of a parsed ``registry`` file (:func:`billing.payment_files.parse`), and its day.

    The day is ``day`` when given, else the one day all lines were booked on. A file with bad
    lines is refused naming them (see the module docstring). A line without a time of payment is
    put at the start of its local day.
    """
    if parsed.bad:
        listed = "; ".join(f"line {b.line_no}: {b.reason}" for b in parsed.bad[:20])
        more = f" (and {len(parsed.bad) - 20} more)" if len(parsed.bad) > 20 else ""
        raise RegistryError(f"registry: {len(parsed.bad)} bad line(s), nothing stored: {listed}{more}")
    if day is None:
        days = sorted({line.booked_on for line in parsed.lines})
        if len(days) != 1:
            found = ", ".join(map(str, days[:5])) or "none"
            raise RegistryError(f"--date: the file's lines are of {len(days)} days ({found}); give --date")
        day = days[0]
    lines = [
        RegistryLine(
            line.key,
            line.account or line.contract or "",
            line.amount,
            line.paid_at or datetime.combine(line.booked_on, time(0), tzinfo=time_zone),
            line.currency,
            line.line_no,
        )
        for line in parsed.lines
    ]
    return day, lines


def record_registry(
    session: Session,
    actor: Actor,
    bank: str,
    day: date,
    lines: Sequence[RegistryLine],
    *,
    origin: str,
) -> int:
    """Store the bank's registry of ``day`` (see the module docstring) and return its id."""
    if not SOURCE.match(bank or ""):
        raise RegistryError(f"bank: expected 1 to 32 letters, digits, '_', '.', '-', got {bank!r}")
    if origin not in REGISTRY_ORIGINS:
        raise RegistryError(f"origin: expected one of {', '.join(REGISTRY_ORIGINS)}, got {origin!r}")
    if not isinstance(day, date) or isinstance(day, datetime):
        raise RegistryError(f"day: expected a date, got {day!r}")
    rows = _checked(lines)
    total = sum((row[3] for row in rows), Decimal(0))
    registry = _locked(session, bank, day)
    if registry is not None and _stored_rows(session, registry.id) == rows:
        return registry.id  # the same registry again (a retried upload): nothing changes, even if final
    final = session.scalar(
        select(Reconciliation.state).where(
            Reconciliation.bank == bank, Reconciliation.day == day, Reconciliation.state.in_(FINAL_STATES)
        )
    )
    if final is not None:
        raise DayClosed(f"day: {bank} {day} is {final}; its registry can no longer be replaced")
    now = utcnow()
    created = registry is None
    if registry is None:
        registry, created = _created(session, bank, day, origin, now, actor)
        if not created and _stored_rows(session, registry.id) == rows:
            return registry.id  # a concurrent upload of the same registry stored it first
    before = None
    if not created:
        before = {"origin": registry.origin, "line_count": registry.line_count, "total": registry.total}
        session.execute(delete(BankRegistryLine).where(BankRegistryLine.registry_id == registry.id))
        registry.replaced += 1
    registry.origin, registry.line_count, registry.total = origin, len(rows), total
    registry.received_at, registry.operator_id = now, actor.operator_id
    session.add_all(
        BankRegistryLine(
            registry_id=registry.id,
            line_no=line_no,
            txn_id=txn_id,
            account=account,
            amount=amount,
            currency=currency,
            paid_at=paid_at,
        )
        for line_no, txn_id, account, amount, paid_at, currency in rows
    )
    session.flush()
    audit.record(
        session, actor, "payments.registry", "bank_registry", registry.id, before=before,
        after={"bank": bank, "day": day, "origin": origin, "line_count": len(rows), "total": total,
               "replaced": registry.replaced},
    )  # fmt: skip
    return registry.id


def _locked(session: Session, bank: str, day: date) -> BankRegistry | None:
    return session.scalar(
        select(BankRegistry).where(BankRegistry.bank == bank, BankRegistry.day == day).with_for_update()
    )


def _created(
    session: Session, bank: str, day: date, origin: str, now: datetime, actor: Actor
) -> tuple[BankRegistry, bool]:
    """A new registry row (True), or the one a concurrent upload made first, locked (False)."""
    registry = BankRegistry(
        bank=bank, day=day, origin=origin, line_count=0, total=Decimal(0), received_at=now,
        operator_id=actor.operator_id, replaced=0,
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(registry)
            session.flush()
    except IntegrityError:
        found = _locked(session, bank, day)
        if found is None:
            raise
        return found, False
    return registry, True


def _stored_rows(session: Session, registry_id: int) -> list[_Row]:
    rows = session.execute(
        select(
            BankRegistryLine.line_no,
            BankRegistryLine.txn_id,
            BankRegistryLine.account,
            BankRegistryLine.amount,
            BankRegistryLine.paid_at,
            BankRegistryLine.currency,
        )
        .where(BankRegistryLine.registry_id == registry_id)
        .order_by(BankRegistryLine.line_no)
    )
    return [(n, t, a, normalize(m), p, c) for n, t, a, m, p, c in rows]


def show(session: Session, bank: str, day: date) -> RegistryInfo:
    """The stored registry of (bank, day) with its lines."""
    registry = session.scalar(select(BankRegistry).where(BankRegistry.bank == bank, BankRegistry.day == day))
    if registry is None:
        raise UnknownRegistry(f"day: no registry from {bank} for {day}")
    lines = tuple(
        RegistryLine(txn_id, account, amount, paid_at, currency, line_no)
        for line_no, txn_id, account, amount, paid_at, currency in _stored_rows(session, registry.id)
    )
    return RegistryInfo(
        registry.id,
        registry.bank,
        registry.day,
        registry.origin,
        registry.line_count,
        normalize(registry.total),
        registry.received_at,
        registry.replaced,
        lines,
    )
