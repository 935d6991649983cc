"""Prepaid quota for metered tariffs: reserve, commit used, release the rest (DESIGN.md, "hot path").

What: a session of a metered prepaid tariff holds money from its account (:func:`reserve`),
each interim charges its rated usage to the ledger and tops the hold up (:func:`commit_usage`),
and the Stop charges the last usage and frees the hold (:func:`release`). When a session has
nothing left to spend, one provisioning task tells the network to throttle it (CoA to the
tariff's throttle profile) or end it (Disconnect). The maths is :mod:`rating.quota`; the rows
are ``quota_reservations`` (:mod:`billing.db.quota`) and ``provisioning_tasks``.

Why it cannot spend money twice: every reserve and commit runs with the account's ledger
account row locked (``FOR NO KEY UPDATE``, the lock and order :mod:`billing.ledger` uses), and
reads the balance and the account's open holds under that lock, so two sessions, two threads
or two daemons on one account take turns, each seeing what the previous one committed. A charge
is capped at the session's hold plus the unheld funds (the rest stays due as ``unbilled``), so
``balance + credit_limit - open holds`` never goes below zero through quota.

Idempotency: a commit happens only when the session's counters passed the high-water mark
stored on its reservation, and its ledger key is ``usage:<acct_unique_id>:<in>:<out>:<seconds>``
(the counters): a retransmitted interim charges nothing, twice over. Provisioning tasks are
keyed ``quota:<acct_unique_id>:<throttle|disconnect>``: at most one of each per session.

The accounting hook: :class:`PrepaidQuotaGate` implements :class:`aaa.quota_gate.QuotaGate`;
``billingd`` gives it to the accounting store, which calls it inside each group's transaction.
Sessions whose service is not on a prepaid account with a metered prepaid tariff pass through
after one indexed query per group. Flat-rate prepaid (a daily fee) has no reservation: the
charge run and the lifecycle rules handle it.

Allowance per billing period: a tariff's included volume is shared by the sessions of a service
in each billing period (the tariff's recurring period with the service's anchors, in the
operator's zone), and usage counts in the period in which it was used: an interim's delta
belongs to the period containing its recorded time, the rule the charge run applies to postpaid
usage. A session that runs past a period's end starts on the new period's allowance; its usage
is rated per period, and what it counted in each is kept (``quota_period_use``); see
:func:`allowance_used_before`.

Quota unit: how much usage one reservation pays for is the tariff version's (``quota`` in the
catalog), :data:`rating.quota.DEFAULT_QUOTA_UNIT` if it sets none (:class:`CatalogPlans`).

Late usage (counters that grow after the reservation closed) is charged once from free funds:
see :func:`commit_usage`. Holds of sessions closed without a Stop are freed after each reaper
pass (:func:`release_holds_of_closed_sessions`, the daemon's ``after_reap`` hook).

Lock order: the store has locked the group's sessions (by ``acct_unique_id``); the gate then
locks the group's subscriber ledger accounts by id, and the ledger post locks the revenue book
last: sessions, subscriber accounts, books, as everywhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from aaa.quota_gate import SessionChange
from billing import ledger
from billing.books import book_account
from billing.db.customers import Account
from billing.db.ledger import LedgerAccount
from billing.db.quota import QuotaPeriodUse, QuotaReservation
from billing.db.services import Service
from billing.db.sessions import RadiusSession, SessionUsage
from billing.ledger import Leg, TransactionRequest
from billing.provisioning_outbox import write_task
from rating.allowance import Throttle
from rating.catalog import Catalog
from rating.periods import BillingMode, Period, local_date, period_containing
from rating.quota import (
    DEFAULT_QUOTA_UNIT,
    Disconnect,
    ExhaustedAction,
    MeteredPlan,
    QuotaUnit,
    Settlement,
    available_funds,
    grant,
    session_cost,
    settle,
    unit_price,
)
from rating.tariff import VersionNotFound
from rating.traffic import INTERNET, ClassOctets, UsageDelta

__all__ = [
    "DEFAULT_QUOTA_UNIT",
    "AllowancePeriod",
    "CatalogPlans",
    "Counters",
    "FundsHolder",
    "PeriodLookup",
    "PlanLookup",
    "PrepaidQuotaGate",
    "QuotaOutcome",
    "allowance_used_before",
    "commit_usage",
    "deltas_from_rows",
    "lock_funds",
    "release",
    "release_closed_sessions",
    "release_holds_of_closed_sessions",
    "reserve",
]

_log = logging.getLogger(__name__)

_ZERO = Decimal(0)
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

PlanLookup = Callable[[Session, str | None, datetime], MeteredPlan | None]
"""``(session, tariff_code, as_of) -> MeteredPlan | None``: the metered prepaid plan of a
tariff at an instant, or ``None`` (not metered, not prepaid, unknown)."""

PeriodLookup = Callable[[Session, str | None, datetime], Period | None]
"""``(session, tariff_code, as_of) -> Period | None``: the recurring period of a tariff's version
at an instant (``None``: none, e.g. purely metered; the allowance is then monthly)."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Counters:
    """A session's cumulative counters: ``input_octets`` (upload), ``output_octets`` (download)."""

    input_octets: int
    output_octets: int
    seconds: int

    def passed(self, other: Counters) -> bool:
        """Whether any counter is beyond ``other``'s (the high-water mark moved)."""
        return (
            self.input_octets > other.input_octets
            or self.output_octets > other.output_octets
            or self.seconds > other.seconds
        )


@dataclass(frozen=True, slots=True)
class AllowancePeriod:
    """How a service's billing periods fall: where the period an allowance is counted in starts.

    ``kind`` is the recurring period of the service's tariff version (monthly for a purely
    metered tariff, which has none); ``anchor_day`` the service's ``billing_anchor_day`` and
    ``anchor_month`` the month of its ``activated_on`` (1 if unknown), as
    :mod:`billing.charge_plan` anchors its charge periods, so the allowance renews when the
    recurring fee does.
    """

    kind: Period = Period.MONTHLY
    anchor_day: int = 1
    anchor_month: int = 1

    def first_day(self, at: datetime, tz: ZoneInfo) -> date:
        """The first local day of the period containing ``at``'s local date (in ``tz``)."""
        period = period_containing(
            self.kind, local_date(at, tz), anchor_day=self.anchor_day, anchor_month=self.anchor_month
        )
        return period.start


@dataclass
class FundsHolder:
    """An account's money as seen under its ledger lock, kept current while the lock is held.

    ``available`` = natural balance + credit limit - open holds (:func:`rating.quota.available_funds`).
    """

    account_id: int
    ledger_account_id: int
    currency: str
    available: Decimal


@dataclass(frozen=True, slots=True)
class QuotaOutcome:
    """What a reserve, commit or release did to one session."""

    acct_unique_id: str
    charge: Decimal
    reserved: Decimal
    committed: Decimal
    unbilled: Decimal
    exhausted: bool
    task_id: int | None
    """The provisioning task written by this call (None: none, or one existed already)."""


# --------------------------------------------------------------------------- locking


def lock_funds(session: Session, account_ids: Iterable[int]) -> dict[int, FundsHolder]:
    """Lock the accounts' ledger accounts (id order) and read their unheld funds.

    ``FOR NO KEY UPDATE`` as :func:`billing.db.ledger_writes.add_to_balances` takes it (and in
    its order: subscriber accounts by id), so a concurrent post, payment or reservation on the
    same account waits here. SQLite serialises writers (``BEGIN IMMEDIATE``) instead.
    """
    accounts = {
        row.id: row
        for row in session.execute(
            select(Account.id, Account.ledger_account_id, Account.credit_limit, Account.currency).where(
                Account.id.in_(sorted(set(account_ids)))
            )
        )
    }
    by_ledger = {row.ledger_account_id: row for row in accounts.values()}
    balances = {
        row.id: ledger.natural_balance(row.kind, row.balance)
        for row in session.execute(
            select(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.balance)
            .where(LedgerAccount.id.in_(sorted(by_ledger)))
            .order_by(LedgerAccount.id)
            .with_for_update(key_share=True)
        )
    }
    held: dict[int, Decimal] = dict.fromkeys(accounts, _ZERO)
    for account_id, reserved, committed in session.execute(
        select(QuotaReservation.account_id, QuotaReservation.reserved, QuotaReservation.committed).where(
            QuotaReservation.account_id.in_(sorted(accounts)), QuotaReservation.state == "open"
        )
    ):
        held[account_id] += reserved - committed
    return {
        account_id: FundsHolder(
            account_id,
            row.ledger_account_id,
            row.currency,
            available_funds(balances[row.ledger_account_id], row.credit_limit, held[account_id]),
        )
        for account_id, row in accounts.items()
    }


# --------------------------------------------------------------------------- use cases


def reserve(
    session: Session,
    funds: FundsHolder,
    *,
    acct_unique_id: str,
    service_id: int,
    plan: MeteredPlan,
    at: datetime,
) -> QuotaOutcome:
    """Open the session's reservation with one quota unit's worth of money (at most what is free).

    ``funds`` must come from :func:`lock_funds` in this transaction. A session that has a
    reservation already (a retransmitted Start) keeps it unchanged. A session that gets
    nothing (no funds) is exhausted at once: its provisioning task is written.
    """
    existing = _reservation(session, acct_unique_id)
    if existing is not None:
        return _outcome(existing, _ZERO, None)
    price = unit_price(plan, at)
    amount = grant(price, funds.available)
    row = QuotaReservation(
        acct_unique_id=acct_unique_id,
        account_id=funds.account_id,
        service_id=service_id,
        tariff_code=plan.tariff_code,
        state="open",
        reserved=amount,
        committed=_ZERO,
        unbilled=_ZERO,
        input_octets=0,
        output_octets=0,
        seconds=0,
        opened_at=at,
        updated_at=at,
    )
    session.add(row)
    session.flush()
    funds.available -= amount
    task_id = None
    if amount == 0 and price > 0:
        task_id = _exhaust(session, row, plan, at, plan.on_exhausted)
    return _outcome(row, _ZERO, task_id)


def commit_usage(
    session: Session,
    funds: FundsHolder,
    *,
    acct_unique_id: str,
    counters: Counters,
    deltas: Sequence[UsageDelta],
    plan: MeteredPlan,
    revenue_account_id: int,
    at: datetime,
    closing: bool = False,
    allowance_period: AllowancePeriod | None = None,
) -> QuotaOutcome:
    """Charge the session's usage so far and top its hold up (or, ``closing``, close it).

    ``deltas`` are all of the session's usage deltas (the cost is cumulative, see
    :mod:`rating.quota`); ``counters`` its counters after them. Nothing is charged unless the
    counters passed the reservation's high-water mark, except that closing also charges what
    was left unbilled if funds now allow. The charge goes to the ledger (subscriber debit,
    ``revenue_account_id`` credit) with key ``usage:<session>:<in>:<out>:<seconds>``, plus
    ``:stop`` when closing (a Stop may carry the last interim's counters).

    Allowance: with ``allowance_period`` (the gate always gives it), the tariff's allowance is
    per billing period of the service, not per session, and each delta counts in the period
    containing its end (the interim's recorded time): see :func:`_rate` and
    :func:`allowance_used_before`. Without it (direct callers), each session starts with the
    whole allowance.

    Late usage: a record with higher counters for a session whose reservation is closed already
    (a late or reordered interim after the Stop, or the session was reaped or closed by
    Accounting-On/Off but the NAS still counts) is charged once, from free funds only (the
    session has no hold any more), with key ``usage:<session>:<in>:<out>:<seconds>:late``; its
    cost is cumulative like any other, so only what the Stop did not settle is charged. The
    reservation stays closed; its high-water mark moves, so a retransmission charges nothing.
    """
    row = _reservation(session, acct_unique_id)
    if row is None:
        raise LookupError(f"no quota reservation for session {acct_unique_id}")
    late = row.state != "open"
    moved = counters.passed(Counters(row.input_octets, row.output_octets, row.seconds))
    if late and not moved:
        return _outcome(row, _ZERO, None)
    before = row.reserved
    charge = _ZERO
    allowance_out = False
    if moved or closing:
        if moved:
            rated = _rate(session, row, deltas, plan, allowance_period)
            cost, allowance_out, allowance_used = rated.cost, rated.allowance_out, rated.allowance_used
            _keep_period_use(session, row, rated.by_period)
        else:
            cost, allowance_used = row.committed + row.unbilled, row.allowance_used
        result: Settlement = settle(
            cost=cost,
            # a closed reservation holds nothing: late usage is paid from free funds only
            reserved=row.committed if late else row.reserved,
            committed=row.committed,
            available=funds.available,
            unit_amount=_ZERO if late else unit_price(plan, at),
            closing=closing or late,
        )
        charge = result.charge
        if charge > 0:
            suffix = ":late" if late else ":stop" if closing else ""
            ledger.post(
                session,
                TransactionRequest(
                    idempotency_key=(
                        f"usage:{acct_unique_id}:{counters.input_octets}:"
                        f"{counters.output_octets}:{counters.seconds}{suffix}"
                    ),
                    kind="usage",
                    legs=(Leg(funds.ledger_account_id, charge), Leg(revenue_account_id, -charge)),
                    effective_at=at,
                    description=f"usage {plan.tariff_code}" + (" (late)" if late else ""),
                ),
            )
        row.committed, row.unbilled = result.committed, result.unbilled
        row.reserved = max(row.reserved, result.committed) if late else result.reserved
        row.allowance_used = allowance_used
        if moved:
            row.input_octets, row.output_octets = counters.input_octets, counters.output_octets
            row.seconds = counters.seconds
        exhausted = result.exhausted
    else:
        exhausted = False
    if late:
        funds.available -= charge
    else:
        funds.available -= row.reserved - before
        if closing:
            funds.available += row.reserved - row.committed
            row.state, row.closed_at = "closed", at
    row.updated_at = at
    session.flush()
    actions: list[ExhaustedAction] = []
    if allowance_out:  # the tariff's allowance is used up: its Throttle or Block, funds or not
        actions.append(plan.on_exhausted)
    if exhausted:  # nothing left to spend: the tariff's throttle profile, else (or then) a disconnect
        actions.append(Disconnect() if allowance_out else plan.on_exhausted)
    task_id = None
    for action in actions:  # late usage too: a reaped session may still be up on the NAS
        task_id = _exhaust(session, row, plan, at, action) or task_id
    return _outcome(row, charge, task_id)


@dataclass(frozen=True, slots=True)
class _Rated:
    """A session's usage rated: its cost and the volume it counted against the allowance.

    ``allowance_used`` is the total, ``by_period`` the same by first day of billing period (empty
    when the allowance is not counted per period); ``allowance_out``: the allowance ran out in
    the latest period the session used.
    """

    cost: Decimal
    allowance_out: bool
    allowance_used: int
    by_period: dict[date, int]


def _rate(
    session: Session,
    row: QuotaReservation,
    deltas: Sequence[UsageDelta],
    plan: MeteredPlan,
    period: AllowancePeriod | None,
) -> _Rated:
    """Rate all of the session's usage; with an allowance per billing period, period by period.

    Without an allowance (or without ``period``: direct callers) the session is rated whole, so
    increments round once per line for the whole session. With one, each delta belongs to the
    period containing its end, the time its interim was recorded (as the charge run assigns
    postpaid usage), and each period's deltas are rated with what the service had used of that
    period's allowance before this session: a session crossing a period's end starts on the
    new period's allowance. A period's deltas only grow, and so does what earlier sessions used
    of it, so each period's part of the cost, and the session's cost, never goes down.
    """
    if period is None or plan.usage.allowance is None:
        rating = session_cost(deltas, plan)
        return _Rated(rating.total, rating.overage_action is not None, rating.allowance_used_after, {})
    groups: dict[date, list[UsageDelta]] = {}
    for delta in deltas:
        groups.setdefault(period.first_day(delta.end, plan.tz), []).append(delta)
    cost, allowance_out, by_period = _ZERO, False, {}
    for first_day in sorted(groups):
        used_before = allowance_used_before(session, row, first_day)
        rating = session_cost(groups[first_day], plan, allowance_used_before=used_before)
        cost += rating.total
        allowance_out = rating.overage_action is not None  # the latest period's says what to do now
        by_period[first_day] = rating.allowance_used_after - used_before
    return _Rated(cost, allowance_out, sum(by_period.values()), by_period)


def _keep_period_use(session: Session, row: QuotaReservation, by_period: dict[date, int]) -> None:
    """Store what the session counted in each billing period (``quota_period_use``), in place."""
    if not by_period:
        return
    kept = {
        use.period_start: use
        for use in session.scalars(select(QuotaPeriodUse).where(QuotaPeriodUse.reservation_id == row.id))
    }
    for first_day, used in by_period.items():
        use = kept.get(first_day)
        if use is not None:
            use.allowance_used = used
        elif used:
            session.add(
                QuotaPeriodUse(
                    reservation_id=row.id,
                    period_start=first_day,
                    service_id=row.service_id,
                    allowance_used=used,
                )
            )


def allowance_used_before(session: Session, row: QuotaReservation, first_day: date) -> int:
    """The allowance volume the service used in the billing period from ``first_day`` before this session.

    The tariff's allowance (``included_bytes``) is per billing period of the service, and usage
    counts in the period it was recorded in (:func:`_rate`), whenever its session began. What
    is summed is the volume each of the service's sessions counted in that period
    (``quota_period_use``, stored at each commit), for the sessions that began *before* this
    one (by ``opened_at``, then id), whatever their state: one range of
    ``ix_quota_period_use_service_period``. Not called for a tariff without an allowance.

    Why only earlier sessions: the allowance is consumed in the order sessions began. Counting
    the overlapping later sessions as well would charge the shared volume as overage twice
    (each session would see the other's use as coming first). With this rule each session's
    figure only grows while it runs (earlier sessions only add usage), so its cumulative cost
    never goes down; the error it allows in an overlap is in the customer's favour: an earlier
    session that keeps running after a later one has settled does not make the later one dearer.
    A session that began in an earlier period and runs into this one is earlier than every
    session that began in this one, so it takes the new allowance first.
    """
    u, q = QuotaPeriodUse, QuotaReservation
    earlier = or_(q.opened_at < row.opened_at, and_(q.opened_at == row.opened_at, q.id < row.id))
    used = session.scalar(
        select(func.coalesce(func.sum(u.allowance_used), 0))
        .select_from(u)
        .join(q, q.id == u.reservation_id)
        .where(u.service_id == row.service_id, u.period_start == first_day, earlier)
    )
    return int(used or 0)


def release(
    session: Session,
    funds: FundsHolder,
    *,
    acct_unique_id: str,
    counters: Counters,
    deltas: Sequence[UsageDelta],
    plan: MeteredPlan,
    revenue_account_id: int,
    at: datetime,
) -> QuotaOutcome:
    """Stop: charge the last usage (as :func:`commit_usage`), then close the reservation and free its hold."""
    return commit_usage(
        session,
        funds,
        acct_unique_id=acct_unique_id,
        counters=counters,
        deltas=deltas,
        plan=plan,
        revenue_account_id=revenue_account_id,
        at=at,
        closing=True,
    )


def release_closed_sessions(session: Session, at: datetime) -> int:
    """Close the open reservations of sessions that ended without a Stop; return how many.

    Accounting-On/Off of a NAS and the reaper close sessions with one set-based UPDATE that the
    quota gate does not see, so their holds would stay taken. Their usage was committed at
    their last interim; this only frees the holds (which only raises what others may use, so it
    needs no account lock). ``billingd`` runs it after each reaper pass
    (:func:`release_holds_of_closed_sessions`); usage that still arrives for such a session is
    charged by :func:`commit_usage` as late usage.
    """
    rs = RadiusSession
    result = session.execute(
        update(QuotaReservation)
        .where(
            QuotaReservation.state == "open",
            QuotaReservation.acct_unique_id.in_(
                select(rs.acct_unique_id).where(rs.status == "closed").scalar_subquery()
            ),
        )
        .values(state="closed", closed_at=at, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def release_holds_of_closed_sessions(engine: Engine, at: datetime) -> int:
    """:func:`release_closed_sessions` in a transaction of its own; returns how many were released.

    The daemon's ``after_reap`` hook (``aaa.service.AaaService``, which logs the count):
    blocking, run in its thread pool.
    """
    with Session(engine) as session, session.begin():
        return release_closed_sessions(session, at)


def _reservation(session: Session, acct_unique_id: str) -> QuotaReservation | None:
    return session.scalar(select(QuotaReservation).where(QuotaReservation.acct_unique_id == acct_unique_id))


def _outcome(row: QuotaReservation, charge: Decimal, task_id: int | None) -> QuotaOutcome:
    return QuotaOutcome(
        row.acct_unique_id,
        charge,
        row.reserved,
        row.committed,
        row.unbilled,
        row.exhausted_at is not None,
        task_id,
    )


def _exhaust(
    session: Session, row: QuotaReservation, plan: MeteredPlan, at: datetime, action: ExhaustedAction
) -> int | None:
    """Record the exhaustion and write the session's task for ``action`` once (unique key)."""
    name = "throttle" if isinstance(action, Throttle) else "disconnect"
    if row.exhausted_at is None or (row.action == "throttle" and name == "disconnect"):
        row.exhausted_at, row.action = at, name
        session.flush()
    task_id, written = write_task(
        session,
        f"quota:{row.acct_unique_id}:{name}",
        row.service_id,
        "allow" if isinstance(action, Throttle) else "deny",
        tariff_code=plan.tariff_code,
        session_key=row.acct_unique_id,
        speed_profile=action.speed_profile if isinstance(action, Throttle) else None,
        created_at=at,
    )
    return task_id if written else None


# --------------------------------------------------------------------------- usage deltas


def deltas_from_rows(
    started_at: datetime, rows: Iterable[tuple[datetime, int, int, int]]
) -> list[UsageDelta]:
    """A session's ``session_usage`` rows ``(recorded_at, input, output, seconds)`` as rating deltas.

    Each row covers ``[previous row's time (or the session start), its own time)``; RADIUS
    carries no traffic class, so all octets are ``internet``: download (``IN``) is the NAS's
    output counter, upload (``OUT``) its input counter (:mod:`rating.traffic`).
    """
    deltas = []
    previous = started_at
    for recorded_at, input_octets, output_octets, seconds in sorted(rows, key=lambda r: r[0]):
        start = min(previous, recorded_at)
        deltas.append(
            UsageDelta(
                start=start,
                end=recorded_at,
                traffic=(ClassOctets(INTERNET, octets_in=output_octets, octets_out=input_octets),),
                session_seconds=seconds,
            )
        )
        previous = max(previous, recorded_at)
    return deltas


def _session_deltas(session: Session, change: SessionChange) -> list[UsageDelta]:
    su = SessionUsage
    rows = session.execute(
        select(su.recorded_at, su.input_octets, su.output_octets, su.seconds)
        .where(su.session_id == change.session_id)
        .order_by(su.recorded_at, su.id)
    )
    return deltas_from_rows(change.started_at, [tuple(r) for r in rows])  # type: ignore[misc]


# --------------------------------------------------------------------------- plans from the catalog


class CatalogPlans:
    """A :data:`PlanLookup` over the stored tariff catalog, reloaded every ``refresh_s`` seconds.

    A tariff is metered prepaid when its version in effect on the local date of ``as_of`` (in
    ``tz``, the operator's zone) is prepaid and has usage prices. The quota unit is the
    version's (``quota`` in the catalog), else ``unit`` (default
    :data:`rating.quota.DEFAULT_QUOTA_UNIT`). ``load`` is
    ``billing.catalog.load_stored_catalog``; ``clock`` a monotonic clock (injected for tests).
    """

    def __init__(
        self,
        load: Callable[[Session], Catalog],
        *,
        unit: QuotaUnit = DEFAULT_QUOTA_UNIT,
        tz: ZoneInfo,
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.load = load
        self.unit = unit
        self.tz = tz
        self.refresh_s = refresh_s
        self.clock = clock
        self._catalog: Catalog | None = None
        self._loaded_at = 0.0
        self._plans: dict[tuple[str, int], MeteredPlan | None] = {}
        self._any_metered = False

    def may_meter(self, conn: Connection) -> bool:
        """False when no tariff has a metered prepaid version: the gate then has nothing to do.

        Most groups of most operators are flat-rate sessions; this keeps their cost at one
        attribute read instead of a savepoint and a query per accounting group.
        """
        if self._catalog is None or self.clock() - self._loaded_at >= self.refresh_s:
            with Session(bind=conn) as session:
                self._fresh(session)
        return self._any_metered

    def _fresh(self, session: Session) -> Catalog:
        now = self.clock()
        if self._catalog is None or now - self._loaded_at >= self.refresh_s:
            self._catalog, self._loaded_at, self._plans = self.load(session), now, {}
            self._any_metered = any(
                v.billing_mode is BillingMode.PREPAID and v.usage is not None
                for t in self._catalog.tariffs
                for v in t.versions
            )
        return self._catalog

    def period(self, session: Session, tariff_code: str | None, as_of: datetime) -> Period | None:
        """A :data:`PeriodLookup`: the recurring period of the tariff's version in effect at ``as_of``."""
        if tariff_code is None:
            return None
        try:
            version = self._fresh(session).tariff(tariff_code).version_at(as_of.astimezone(self.tz).date())
        except (KeyError, VersionNotFound):
            return None
        return version.recurring.period if version.recurring is not None else None

    def __call__(self, session: Session, tariff_code: str | None, as_of: datetime) -> MeteredPlan | None:
        if tariff_code is None:
            return None
        catalog = self._fresh(session)
        try:
            tariff = catalog.tariff(tariff_code)
            version = tariff.version_at(as_of.astimezone(self.tz).date())
        except (KeyError, VersionNotFound):
            return None
        key = (tariff_code, version.number)
        if key not in self._plans:
            metered = version.billing_mode is BillingMode.PREPAID and version.usage is not None
            self._plans[key] = (
                MeteredPlan(
                    tariff_code,
                    version.usage,
                    version.rounding,
                    version.currency,
                    version.quota or self.unit,
                    self.tz,
                )
                if metered and version.usage is not None
                else None
            )
        return self._plans[key]


# --------------------------------------------------------------------------- the accounting hook


@dataclass(frozen=True, slots=True)
class _Metered:
    change: SessionChange
    service_id: int
    account_id: int
    plan: MeteredPlan
    period: AllowancePeriod


class PrepaidQuotaGate:
    """:class:`aaa.quota_gate.QuotaGate` for prepaid quota (see the module docstring).

    ``plans`` says which tariffs are metered prepaid (:class:`CatalogPlans` in the daemon; a
    function giving a plan directly in tests). ``periods`` gives a tariff's recurring period,
    which with the service's anchors sets the billing period its allowance is counted in
    (default: ``plans.period`` if ``plans`` has one, as :class:`CatalogPlans` does, else monthly).

    Errors: a deadlock, a serialisation failure or an unreachable database propagate (the
    store retries or journals the group); anything else (a broken tariff, a bug) is logged and
    the quota work of the group is rolled back to a savepoint, so accounting is still recorded.
    Costs are cumulative, so the next interim of those sessions charges what this one did not.
    """

    def __init__(self, plans: PlanLookup, *, periods: PeriodLookup | None = None) -> None:
        self.plans = plans
        self.periods: PeriodLookup | None = periods or getattr(plans, "period", None)
        self._may_meter: Callable[[Connection], bool] | None = getattr(plans, "may_meter", None)

    def wants_changes(self, conn: Connection) -> bool:
        return self._worth_a_look(conn)

    def on_group(self, conn: Connection, changes: Sequence[SessionChange]) -> None:
        with_service = [c for c in changes if c.service_id is not None]
        if not with_service:
            return
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            self._on_group(session, with_service)
            session.commit()  # releases the savepoint; the store commits the transaction
        except Exception as exc:
            session.rollback()
            if _must_propagate(exc):
                raise
            _log.exception("prepaid quota skipped for a group of %d sessions", len(with_service))
        finally:
            session.close()

    def _worth_a_look(self, conn: Connection) -> bool:
        """False when the plans say no tariff is metered; a catalog that fails to load skips the group."""
        if self._may_meter is None:
            return True
        try:
            return self._may_meter(conn)
        except Exception as exc:
            if _must_propagate(exc):
                raise
            _log.exception("prepaid quota skipped: the tariff catalog could not be read")
            return False

    def _on_group(self, session: Session, changes: Sequence[SessionChange]) -> None:
        metered = self._metered(session, changes)
        if not metered:
            return
        funds = lock_funds(session, {m.account_id for m in metered})
        revenue: dict[str, int] = {}  # per group: a book created in a rolled-back group is gone
        for item in metered:  # in acct_unique_id order, as the store gives them
            holder = funds[item.account_id]
            change, plan = item.change, item.plan
            at = change.event_time
            if change.started or _reservation(session, change.acct_unique_id) is None:
                reserve(
                    session,
                    holder,
                    acct_unique_id=change.acct_unique_id,
                    service_id=item.service_id,
                    plan=plan,
                    at=at,
                )
            if change.usage.is_empty and not change.stopped:
                continue
            counters = Counters(
                change.totals.input_octets, change.totals.output_octets, change.totals.seconds
            )
            commit_usage(
                session,
                holder,
                acct_unique_id=change.acct_unique_id,
                counters=counters,
                deltas=_session_deltas(session, change) if not change.usage.is_empty else [],
                plan=plan,
                revenue_account_id=_revenue_account(session, revenue, holder.currency),
                at=at,
                closing=change.stopped,
                allowance_period=item.period,
            )

    def _metered(self, session: Session, changes: Sequence[SessionChange]) -> list[_Metered]:
        """The changes of sessions on prepaid accounts whose tariff is metered prepaid."""
        service_ids = sorted({c.service_id for c in changes if c.service_id is not None})
        rows = {
            row.id: row
            for row in session.execute(
                select(
                    Service.id,
                    Service.account_id,
                    Service.tariff_code,
                    Service.billing_anchor_day,
                    Service.activated_on,
                )
                .join(Account, Account.id == Service.account_id)
                .where(Service.id.in_(service_ids), Account.billing_mode == "prepaid")
            )
        }
        metered = []
        for change in changes:
            row = rows.get(change.service_id)  # type: ignore[arg-type]
            if row is None:
                continue
            plan = self.plans(session, row.tariff_code, change.event_time)
            if plan is not None:
                kind = self.periods(session, row.tariff_code, change.event_time) if self.periods else None
                period = AllowancePeriod(
                    kind or Period.MONTHLY,
                    row.billing_anchor_day,
                    row.activated_on.month if row.activated_on is not None else 1,
                )
                metered.append(_Metered(change, row.id, row.account_id, plan, period))
        return metered


def _revenue_account(session: Session, known: dict[str, int], currency: str) -> int:
    """The usage revenue book (created on first use; a concurrent creator wins harmlessly)."""
    if currency not in known:
        try:
            with session.begin_nested():
                known[currency] = book_account(session, "revenue", currency, "internet")
        except sa_exc.IntegrityError:
            known[currency] = book_account(session, "revenue", currency, "internet")
    return known[currency]


def _must_propagate(exc: BaseException) -> bool:
    """Errors the accounting store handles itself: retry (deadlock) or journal (database down)."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES
    return False
