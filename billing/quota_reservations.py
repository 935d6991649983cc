"""Prepaid quota reservations as operators look at them: ``billing-admin quota list`` and ``show``.

What: a page of reservations (newest first, optionally one account's, optionally only open
ones) and one session's reservation in full: its money (reserved, committed, the hold still
taken, what is unbilled), its usage high-water mark, the allowance it counted per billing
period, and the provisioning tasks prepaid quota wrote for it. Read-only; the rows are
written by :mod:`billing.quota` (see ``billing.db.quota`` for what each column means).

Why a module of its own: :mod:`billing.quota` is the accounting store's hot path; this is
the operator's view of its rows, with the account number and tasks joined in, and amounts in
the six-fraction-digit form the other read commands print (the same on SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import accounts
from billing.db.customers import Account
from billing.db.lifecycle import ProvisioningTask
from billing.db.quota import QuotaPeriodUse, QuotaReservation
from rating.money import normalize

__all__ = [
    "PeriodUse",
    "ReservationInfo",
    "ReservationRow",
    "SessionTask",
    "UnknownReservation",
    "list_reservations",
    "show_reservation",
]


class UnknownReservation(LookupError):
    """No reservation has the given session id."""


@dataclass(frozen=True)
class ReservationRow:
    """One reservation in a list. ``hold`` is ``reserved - committed`` while open, 0 once closed."""

    session: str
    account: str
    service_id: int
    tariff_code: str
    state: str
    reserved: Decimal
    committed: Decimal
    hold: Decimal
    unbilled: Decimal
    action: str | None
    opened_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class PeriodUse:
    """The allowance volume the session counted in the billing period starting ``period_start``."""

    period_start: date
    allowance_used: int


@dataclass(frozen=True)
class SessionTask:
    """A provisioning task prepaid quota wrote for the session (a CoA to ``speed_profile``, or deny)."""

    id: int
    idempotency_key: str
    network: str
    speed_profile: str | None
    state: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class ReservationInfo:
    """One session's reservation in full: the row, its usage high-water mark, periods and tasks."""

    reservation: ReservationRow
    input_octets: int
    output_octets: int
    seconds: int
    allowance_used: int
    exhausted_at: datetime | None
    updated_at: datetime
    periods: tuple[PeriodUse, ...]
    tasks: tuple[SessionTask, ...]


def list_reservations(
    session: Session, *, account_number: str | None = None, only_open: bool = False, limit: int = 50
) -> list[ReservationRow]:
    """At most ``limit`` reservations, newest first; one account's (by number) and/or open ones only."""
    query = (
        select(QuotaReservation, Account.number)
        .join(Account, Account.id == QuotaReservation.account_id)
        .order_by(QuotaReservation.opened_at.desc(), QuotaReservation.id.desc())
        .limit(limit)
    )
    if account_number is not None:
        query = query.where(QuotaReservation.account_id == accounts.find(session, account_number).id)
    if only_open:
        query = query.where(QuotaReservation.state == "open")
    return [_row(reservation, number) for reservation, number in session.execute(query)]


def show_reservation(session: Session, acct_unique_id: str) -> ReservationInfo:
    """The reservation of session ``acct_unique_id`` with its billing periods and provisioning tasks."""
    found = session.execute(
        select(QuotaReservation, Account.number)
        .join(Account, Account.id == QuotaReservation.account_id)
        .where(QuotaReservation.acct_unique_id == acct_unique_id)
    ).one_or_none()
    if found is None:
        raise UnknownReservation(f"session_id: no quota reservation for session {acct_unique_id!r}")
    reservation, number = found
    periods = session.execute(
        select(QuotaPeriodUse.period_start, QuotaPeriodUse.allowance_used)
        .where(QuotaPeriodUse.reservation_id == reservation.id)
        .order_by(QuotaPeriodUse.period_start)
    )
    task = ProvisioningTask
    tasks = session.execute(
        select(
            task.id,
            task.idempotency_key,
            task.network,
            task.speed_profile,
            task.state,
            task.attempts,
            task.created_at,
        )
        .where(task.service_id == reservation.service_id, task.session_key == acct_unique_id)
        .order_by(task.id)
    )
    return ReservationInfo(
        reservation=_row(reservation, number),
        input_octets=reservation.input_octets,
        output_octets=reservation.output_octets,
        seconds=reservation.seconds,
        allowance_used=reservation.allowance_used,
        exhausted_at=reservation.exhausted_at,
        updated_at=reservation.updated_at,
        periods=tuple(PeriodUse(*row) for row in periods),
        tasks=tuple(SessionTask(*row) for row in tasks),
    )


def _row(reservation: QuotaReservation, account_number: str) -> ReservationRow:
    hold = reservation.reserved - reservation.committed if reservation.state == "open" else Decimal(0)
    return ReservationRow(
        session=reservation.acct_unique_id,
        account=account_number,
        service_id=reservation.service_id,
        tariff_code=reservation.tariff_code,
        state=reservation.state,
        reserved=normalize(reservation.reserved),
        committed=normalize(reservation.committed),
        hold=normalize(hold),
        unbilled=normalize(reservation.unbilled),
        action=reservation.action,
        opened_at=reservation.opened_at,
        closed_at=reservation.closed_at,
    )
