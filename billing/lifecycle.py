"""The service lifecycle: one explicit state machine, pure (no database, no I/O, no clock).

A service (not an account) has a status. Events move it; :data:`TABLE` writes down every
(status, event) pair: a target status, or a refusal with its reason. Time is a parameter
(``as_of``, an aware datetime; days are counted in ``LifecycleRules.time_zone``). The numbers
(grace, churn, voluntary suspension) are data in :mod:`billing.lifecycle_rules`. A service layer
reads the facts, calls this module, and writes the result in one transaction: the transition, its
audit entry, and an outbox row for each :class:`ProvisioningIntent`.

The machine (``.`` = refused, the reason is in TABLE; ``active*`` = active, or
suspended_involuntary when a debt suspension is due, so nothing goes live only to be cut off)::

                         activate  suspend_   resume   suspend_   debt_   block    unblock  churn    change_
                                   voluntary           for_debt   paid                               tariff
  pending                active*   .          .        .          .       .        .        churned  pending
  active                 .         vol        .        invol      .       blocked  .        churned  active
  suspended_voluntary    .         .          active*  invol      .       blocked  .        churned  vol
  suspended_involuntary  .         .          .        .          active  blocked  .        churned  invol
  blocked                .         .          .        .          .       .        active*  churned  .
  churned                .         .          .        .          .       .        .        .        .

What a status means (:func:`meaning`)::

  status                 charging          network
  pending                none              deny
  active                 full              allow (the tariff's profile)
  suspended_voluntary    reduced (rules)   deny
  suspended_involuntary  none              rules.debt_network: walled_garden or deny
  blocked                none              deny
  churned                none              deny, and the network may release the service

Words: *funds* = balance + credit limit. A *debt suspension is due* when funds have been below
zero since a day at least ``grace_days`` days ago. :func:`evaluate` returns the automatic events
due on a day, checked in this order and repeated until nothing more is due:

1. ``debt_paid``         suspended_involuntary, funds >= 0, ``auto_resume_on_payment``
2. ``churn``             suspended_involuntary, funds < 0, ``churn_after_days`` days in the status
3. ``suspend_for_debt``  active or suspended_voluntary, a debt suspension is due
4. scheduled changes     effective on or before the day, earliest first; one the table refuses
                         is reported in :attr:`Assessment.refused`; either way it is consumed
5. ``resume``            suspended_voluntary for ``voluntary_max_days`` (a safety net: requests
                         schedule their own return)

Decisions: unblock, activate and resume land in suspended_involuntary when a debt suspension is
due; a debt suspends a voluntarily suspended service too (its reduced fee is owed); there is no
"restore despite debt": an operator grants a promised payment (credit limit), and funds >= 0
resume the service (with ``auto_resume_on_payment`` off, an operator applies ``debt_paid``, refused
while funds < 0). Pending and blocked services move only by an operator or a scheduled change; the
churn clock counts days in the current debt suspension. A transition leaving a voluntary
suspension before its planned end records the days actually taken and cancels the scheduled
return; churn cancels every scheduled change. Voluntary suspensions go through
:func:`request_voluntary_suspension`, which checks the durations and schedules the return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from billing.lifecycle_rules import (
    Charging,
    LifecycleRules,
    NetworkAccess,
    ReducedFee,
    ServiceKind,
    ServiceRules,
)


class ServiceStatus(StrEnum):
    """A service's status; the values are the database's (``billing.db.services.SERVICE_STATUSES``)."""

    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED_VOLUNTARY = "suspended_voluntary"
    SUSPENDED_INVOLUNTARY = "suspended_involuntary"
    BLOCKED = "blocked"
    CHURNED = "churned"


class Event(StrEnum):
    """What happens to a service: an operator's action, a subscriber's request, or an automatic rule."""

    ACTIVATE = "activate"
    SUSPEND_VOLUNTARY = "suspend_voluntary"
    RESUME = "resume"
    SUSPEND_FOR_DEBT = "suspend_for_debt"
    DEBT_PAID = "debt_paid"
    BLOCK = "block"
    UNBLOCK = "unblock"
    CHURN = "churn"
    CHANGE_TARIFF = "change_tariff"


class Reason(StrEnum):
    """Reason codes of automatic transitions; the ``status_reason`` dictionary must hold them."""

    NON_PAYMENT = "non_payment"
    PAYMENT_RECEIVED = "payment_received"
    VOLUNTARY_SUSPENSION_END = "voluntary_suspension_end"
    VOLUNTARY_SUSPENSION_MAX = "voluntary_suspension_max"


class LifecycleError(ValueError):
    """A lifecycle request that is refused; the message names the broken rule."""


class TransitionRefused(LifecycleError):
    """The table refuses this event in this status."""

    def __init__(self, status: ServiceStatus, event: Event, reason: str) -> None:
        super().__init__(f"{event} refused for a {status} service: {reason}")
        self.status, self.event, self.reason = status, event, reason


@dataclass(frozen=True)
class Go:
    """A table entry: the event moves the service to ``to`` (to ``in_debt`` if a debt suspension is due)."""

    to: ServiceStatus
    in_debt: ServiceStatus | None = None


@dataclass(frozen=True)
class Refuse:
    """A table entry: the event is refused in this status, for ``reason``."""

    reason: str


S, E = ServiceStatus, Event  # short names for the table below
_TERMINAL = "churned is terminal; a returning customer gets a new service"
_NOT_BLOCKED = "not blocked"
_NOT_VOLUNTARY = "resume ends a voluntary suspension, and the service is not suspended voluntarily"
_NOT_IN_DEBT = "not suspended for debt"
_UNBLOCK_FIRST = "blocked: unblock first (unblock checks the debt)"
_ACTIVE_OR_DEBT = Go(S.ACTIVE, in_debt=S.SUSPENDED_INVOLUNTARY)

_ROWS: dict[ServiceStatus, dict[Event, Go | Refuse]] = {
    S.PENDING: {
        E.ACTIVATE: _ACTIVE_OR_DEBT,
        E.SUSPEND_VOLUNTARY: Refuse("not active yet"),
        E.RESUME: Refuse(_NOT_VOLUNTARY),
        E.SUSPEND_FOR_DEBT: Refuse("not active yet; activation checks the debt"),
        E.DEBT_PAID: Refuse(_NOT_IN_DEBT),
        E.BLOCK: Refuse("not active yet; cancel the order with churn"),
        E.UNBLOCK: Refuse(_NOT_BLOCKED),
        E.CHURN: Go(S.CHURNED),
        E.CHANGE_TARIFF: Go(S.PENDING),
    },
    S.ACTIVE: {
        E.ACTIVATE: Refuse("already active"),
        E.SUSPEND_VOLUNTARY: Go(S.SUSPENDED_VOLUNTARY),
        E.RESUME: Refuse(_NOT_VOLUNTARY),
        E.SUSPEND_FOR_DEBT: Go(S.SUSPENDED_INVOLUNTARY),
        E.DEBT_PAID: Refuse(_NOT_IN_DEBT),
        E.BLOCK: Go(S.BLOCKED),
        E.UNBLOCK: Refuse(_NOT_BLOCKED),
        E.CHURN: Go(S.CHURNED),
        E.CHANGE_TARIFF: Go(S.ACTIVE),
    },
    S.SUSPENDED_VOLUNTARY: {
        E.ACTIVATE: Refuse("already activated; resume ends a voluntary suspension"),
        E.SUSPEND_VOLUNTARY: Refuse("already suspended voluntarily; resume, then request a new period"),
        E.RESUME: _ACTIVE_OR_DEBT,
        E.SUSPEND_FOR_DEBT: Go(S.SUSPENDED_INVOLUNTARY),
        E.DEBT_PAID: Refuse(_NOT_IN_DEBT),
        E.BLOCK: Go(S.BLOCKED),
        E.UNBLOCK: Refuse(_NOT_BLOCKED),
        E.CHURN: Go(S.CHURNED),
        E.CHANGE_TARIFF: Go(S.SUSPENDED_VOLUNTARY),
    },
    S.SUSPENDED_INVOLUNTARY: {
        E.ACTIVATE: Refuse("already activated; a debt suspension ends with debt_paid"),
        E.SUSPEND_VOLUNTARY: Refuse("suspended for debt; the debt must be paid first"),
        E.RESUME: Refuse("suspended for debt: it ends with debt_paid (or a promised payment)"),
        E.SUSPEND_FOR_DEBT: Refuse("already suspended for debt"),
        E.DEBT_PAID: Go(S.ACTIVE),
        E.BLOCK: Go(S.BLOCKED),
        E.UNBLOCK: Refuse(_NOT_BLOCKED),
        E.CHURN: Go(S.CHURNED),
        E.CHANGE_TARIFF: Go(S.SUSPENDED_INVOLUNTARY),
    },
    S.BLOCKED: {
        E.ACTIVATE: Refuse(_UNBLOCK_FIRST),
        E.SUSPEND_VOLUNTARY: Refuse(_UNBLOCK_FIRST),
        E.RESUME: Refuse(_UNBLOCK_FIRST),
        E.SUSPEND_FOR_DEBT: Refuse(_UNBLOCK_FIRST),
        E.DEBT_PAID: Refuse(_UNBLOCK_FIRST),
        E.BLOCK: Refuse("already blocked"),
        E.UNBLOCK: _ACTIVE_OR_DEBT,
        E.CHURN: Go(S.CHURNED),
        E.CHANGE_TARIFF: Refuse(_UNBLOCK_FIRST),
    },
    S.CHURNED: {
        E.ACTIVATE: Refuse(_TERMINAL),
        E.SUSPEND_VOLUNTARY: Refuse(_TERMINAL),
        E.RESUME: Refuse(_TERMINAL),
        E.SUSPEND_FOR_DEBT: Refuse(_TERMINAL),
        E.DEBT_PAID: Refuse(_TERMINAL),
        E.BLOCK: Refuse(_TERMINAL),
        E.UNBLOCK: Refuse(_TERMINAL),
        E.CHURN: Refuse(_TERMINAL),
        E.CHANGE_TARIFF: Refuse(_TERMINAL),
    },
}
TABLE: Mapping[tuple[ServiceStatus, Event], Go | Refuse] = MappingProxyType(
    {(status, event): entry for status, row in _ROWS.items() for event, entry in row.items()}
)
"""Every (status, event) pair: where it goes, or why it is refused. Tests check it is complete."""


def target(status: ServiceStatus, event: Event, *, in_debt: bool = False) -> ServiceStatus:
    """Where ``event`` takes a ``status`` service; raises :class:`TransitionRefused` if refused."""
    entry = TABLE[(ServiceStatus(status), Event(event))]
    if isinstance(entry, Refuse):
        raise TransitionRefused(ServiceStatus(status), Event(event), entry.reason)
    return entry.in_debt if in_debt and entry.in_debt is not None else entry.to


@dataclass(frozen=True)
class StatusMeaning:
    """What a status costs and what the network enforces (``network_from_rules``: the rules' debt_network)."""

    charging: Charging
    network: NetworkAccess
    network_from_rules: bool = False
    reduced_fee: ReducedFee | None = None


STATUS_MEANING: Mapping[ServiceStatus, StatusMeaning] = MappingProxyType(
    {
        S.PENDING: StatusMeaning(Charging.NONE, NetworkAccess.DENY),
        S.ACTIVE: StatusMeaning(Charging.FULL, NetworkAccess.ALLOW),
        S.SUSPENDED_VOLUNTARY: StatusMeaning(Charging.REDUCED, NetworkAccess.DENY),
        S.SUSPENDED_INVOLUNTARY: StatusMeaning(Charging.NONE, NetworkAccess.DENY, network_from_rules=True),
        S.BLOCKED: StatusMeaning(Charging.NONE, NetworkAccess.DENY),
        S.CHURNED: StatusMeaning(Charging.NONE, NetworkAccess.DENY),
    }
)


def meaning(status: ServiceStatus, rules: ServiceRules) -> StatusMeaning:
    """The charging and network meaning of ``status`` under ``rules``, with the rules' values filled in."""
    base = STATUS_MEANING[ServiceStatus(status)]
    network = rules.debt_network if base.network_from_rules else base.network
    fee = rules.voluntary_fee if base.charging is Charging.REDUCED else None
    return StatusMeaning(base.charging, network, reduced_fee=fee)


@dataclass(frozen=True)
class DatePeriod:
    """Calendar days ``[start, end)``: ``start`` is the first day, ``end`` the first day after."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period: end {self.end} is before start {self.start}")

    def __str__(self) -> str:
        return f"[{self.start}, {self.end})"

    @classmethod
    def year(cls, year: int) -> DatePeriod:
        """The calendar year ``[1 January, next 1 January)``."""
        return cls(date(year, 1, 1), date(year + 1, 1, 1))

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def overlap_days(self, other: DatePeriod) -> int:
        """How many days the two periods share."""
        return max(0, (min(self.end, other.end) - max(self.start, other.start)).days)


@dataclass(frozen=True)
class ScheduledChange:
    """A future-dated event, due from the start of ``effective`` (a day in the operator's time zone).

    ``tariff_code`` is the new tariff of a ``change_tariff`` and is set for it only. ``id`` is the
    caller's, carried through untouched. Money events (suspend_for_debt, debt_paid) follow the
    balance and cannot be scheduled.
    """

    effective: date
    event: Event
    reason: str
    operator: str | None
    tariff_code: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", Event(self.event))
        if self.event in (E.SUSPEND_FOR_DEBT, E.DEBT_PAID):
            raise LifecycleError(f"{self.event} follows the balance and cannot be scheduled")
        _check_step(self.event, self.reason, self.tariff_code)


@dataclass(frozen=True)
class ProvisioningIntent:
    """What the network must now enforce for a service; the caller writes it as an outbox row.

    ``tariff_code`` names the profile to apply when ``network`` is allow; ``release`` says the
    service is gone for good (the network may free its IP, login, smartcard).
    """

    service_id: int
    network: NetworkAccess
    tariff_code: str | None = None
    release: bool = False


@dataclass(frozen=True)
class Transition:
    """One status change (or tariff change), as the caller must record it.

    ``scheduled``: the scheduled change this executes (mark it done). ``cancels``: scheduled
    changes this makes obsolete (cancel them). ``voluntary_taken``: when this ends a voluntary
    suspension before its planned end, the period actually taken (replace the one with the same
    start). ``provisioning``: set when the network must change (write an outbox row).
    """

    service_id: int
    from_status: ServiceStatus
    to_status: ServiceStatus
    event: Event
    when: datetime
    reason: str
    operator: str | None
    tariff_code: str | None = None
    scheduled: ScheduledChange | None = None
    cancels: tuple[ScheduledChange, ...] = ()
    voluntary_taken: DatePeriod | None = None
    provisioning: ProvisioningIntent | None = None


@dataclass(frozen=True)
class RefusedChange:
    """A due scheduled change the table refused; the caller marks it refused with ``reason``."""

    change: ScheduledChange
    status: ServiceStatus
    reason: str


def _without(
    changes: tuple[ScheduledChange, ...], gone: Iterable[ScheduledChange]
) -> tuple[ScheduledChange, ...]:
    remaining = list(changes)
    for change in gone:
        if change in remaining:
            remaining.remove(change)
    return tuple(remaining)


@dataclass(frozen=True)
class ServiceFacts:
    """What the lifecycle needs to know about a service, read by the caller."""

    service_id: int
    kind: ServiceKind
    status: ServiceStatus
    status_since: datetime
    tariff_code: str | None = None
    scheduled: tuple[ScheduledChange, ...] = ()
    voluntary_periods: tuple[DatePeriod, ...] = ()
    """Voluntary suspensions past, current and planned: they count against the yearly cap."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ServiceKind(self.kind))
        object.__setattr__(self, "status", ServiceStatus(self.status))
        _check_aware(self.status_since, "status_since")

    def after(self, transitions: Iterable[Transition], refused: Iterable[RefusedChange] = ()) -> ServiceFacts:
        """The facts once ``transitions`` are applied and ``refused`` changes closed: what to store."""
        facts = self
        for t in transitions:
            periods = facts.voluntary_periods
            if t.voluntary_taken is not None:
                taken = t.voluntary_taken
                periods = tuple(taken if p.start == taken.start else p for p in periods)
            done = (t.scheduled,) if t.scheduled is not None else ()
            facts = replace(
                facts,
                status=t.to_status,
                status_since=t.when,
                tariff_code=t.tariff_code if t.event is E.CHANGE_TARIFF else facts.tariff_code,
                scheduled=_without(facts.scheduled, (*done, *t.cancels)),
                voluntary_periods=periods,
            )
        return replace(facts, scheduled=_without(facts.scheduled, (r.change for r in refused)))


@dataclass(frozen=True)
class AccountFacts:
    """The money facts of the service's account: funds are ``balance + credit_limit``.

    ``negative_since`` is when funds last went below zero: set exactly when they are below zero.
    """

    category: str
    balance: Decimal
    credit_limit: Decimal = Decimal(0)
    negative_since: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("balance", "credit_limit"):
            if not isinstance(getattr(self, name), Decimal):
                raise LifecycleError(f"{name}: expected a Decimal, got {getattr(self, name)!r}")
        if self.credit_limit < 0:
            raise LifecycleError(f"credit_limit: expected >= 0, got {self.credit_limit}")
        if (self.negative_since is not None) != (self.available < 0):
            raise LifecycleError(
                f"negative_since: must be set exactly when funds are below zero (funds {self.available})"
            )
        if self.negative_since is not None:
            _check_aware(self.negative_since, "negative_since")

    @property
    def available(self) -> Decimal:
        return self.balance + self.credit_limit


@dataclass(frozen=True)
class Assessment:
    """The result of :func:`assess`: transitions to apply in order, and due changes refused."""

    transitions: tuple[Transition, ...]
    refused: tuple[RefusedChange, ...]


@dataclass(frozen=True)
class VoluntarySuspension:
    """An accepted request: the period, the transition if it starts today, the changes to schedule."""

    period: DatePeriod
    transition: Transition | None
    scheduled: tuple[ScheduledChange, ...]


class _Step(NamedTuple):
    event: Event
    reason: str
    operator: str | None = None
    tariff_code: str | None = None
    scheduled: ScheduledChange | None = None


@dataclass(frozen=True)
class _Context:
    account: AccountFacts
    rules: ServiceRules
    lifecycle_rules: LifecycleRules
    as_of: datetime
    today: date


def _check_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise LifecycleError(f"{name}: expected an aware datetime, got {moment!r}")


def _check_step(event: Event, reason: str, tariff_code: str | None) -> None:
    if not isinstance(reason, str) or not reason:
        raise LifecycleError(f"{event}: a reason code from the status_reason dictionary is required")
    if event is E.CHANGE_TARIFF and not tariff_code:
        raise LifecycleError("change_tariff: the new tariff_code is required")
    if event is not E.CHANGE_TARIFF and tariff_code is not None:
        raise LifecycleError(f"{event}: tariff_code is only for change_tariff")


def _context(
    service: ServiceFacts, account: AccountFacts, rules: LifecycleRules, as_of: datetime
) -> _Context:
    _check_aware(as_of, "as_of")
    service_rules = rules.lookup(service.kind, account.category)
    return _Context(account, service_rules, rules, as_of, as_of.astimezone(rules.time_zone).date())


def _day(moment: datetime, ctx: _Context) -> date:
    return moment.astimezone(ctx.lifecycle_rules.time_zone).date()


def _debt_due(ctx: _Context) -> bool:
    """Whether funds have been below zero for the grace period: since a day ``grace_days`` or more ago."""
    since = ctx.account.negative_since
    if ctx.rules.grace_days is None or since is None:
        return False
    return ctx.today >= _day(since, ctx) + timedelta(days=ctx.rules.grace_days)


def _current_voluntary(facts: ServiceFacts, today: date) -> DatePeriod | None:
    started = [p for p in facts.voluntary_periods if p.start <= today]
    return max(started, key=lambda p: p.start, default=None)


def _fire(facts: ServiceFacts, step: _Step, ctx: _Context) -> Transition:
    to = target(facts.status, step.event, in_debt=_debt_due(ctx))
    tariff = step.tariff_code or facts.tariff_code
    cancels: tuple[ScheduledChange, ...] = ()
    taken = None
    current = _current_voluntary(facts, ctx.today)
    leaving_early = current is not None and ctx.today < current.end
    if facts.status is S.SUSPENDED_VOLUNTARY and to is not S.SUSPENDED_VOLUNTARY and leaving_early:
        assert current is not None
        taken = DatePeriod(current.start, ctx.today)
        cancels = tuple(c for c in facts.scheduled if c.event is E.RESUME and c.effective == current.end)
    if to is S.CHURNED:
        cancels = facts.scheduled
    cancels = _without(cancels, (step.scheduled,) if step.scheduled is not None else ())
    return Transition(
        facts.service_id, facts.status, to, step.event, ctx.as_of, step.reason, step.operator,
        tariff_code=step.tariff_code, scheduled=step.scheduled, cancels=cancels, voluntary_taken=taken,
        provisioning=_intent(facts, to, step.event, tariff, ctx.rules),
    )  # fmt: skip


def _intent(
    facts: ServiceFacts, to: ServiceStatus, event: Event, tariff: str | None, rules: ServiceRules
) -> ProvisioningIntent | None:
    if to is S.CHURNED:
        return ProvisioningIntent(facts.service_id, NetworkAccess.DENY, release=True)
    before, after = meaning(facts.status, rules).network, meaning(to, rules).network
    if before is after and not (event is E.CHANGE_TARIFF and after is NetworkAccess.ALLOW):
        return None
    return ProvisioningIntent(facts.service_id, after, tariff if after is NetworkAccess.ALLOW else None)


def request_event(
    service: ServiceFacts,
    account: AccountFacts,
    rules: LifecycleRules,
    event: Event,
    as_of: datetime,
    *,
    reason: str,
    operator: str | None,
    tariff_code: str | None = None,
) -> Transition:
    """The transition an operator's (or a subscriber's) ``event`` makes now, or :class:`LifecycleError`."""
    event = Event(event)
    ctx = _context(service, account, rules, as_of)
    _check_step(event, reason, tariff_code)
    if event is E.SUSPEND_VOLUNTARY:
        raise LifecycleError(
            "suspend_voluntary: use request_voluntary_suspension, which checks the durations"
        )
    if event is E.DEBT_PAID and account.available < 0:
        raise LifecycleError(f"debt_paid: funds are {account.available}; the debt is not paid")
    if event is E.CHANGE_TARIFF and tariff_code == service.tariff_code:
        raise LifecycleError(f"change_tariff: the service is already on tariff {tariff_code}")
    return _fire(service, _Step(event, reason, operator, tariff_code), ctx)


def _voluntary_period(service: ServiceFacts, ctx: _Context, start: date, end: date | None) -> DatePeriod:
    rules = ctx.rules
    if not rules.voluntary_offered:
        raise LifecycleError(f"voluntary suspension is not offered for {service.kind} services")
    if start < ctx.today:
        raise LifecycleError(f"voluntary suspension cannot start in the past: {start} is before {ctx.today}")
    end = start + timedelta(days=rules.voluntary_max_days) if end is None else end
    if end <= start:
        raise LifecycleError(f"voluntary suspension must end after it starts: {end} is not after {start}")
    period = DatePeriod(start, end)
    days, least, most = period.days, rules.voluntary_min_days, rules.voluntary_max_days
    if days < least:
        raise LifecycleError(f"voluntary suspension of {days} days is below the minimum of {least} days")
    if days > most:
        raise LifecycleError(f"voluntary suspension of {days} days exceeds the maximum of {most} days")
    for other in service.voluntary_periods:
        if period.overlap_days(other):
            raise LifecycleError(f"voluntary suspension {period} overlaps the one of {other}")
    for year in range(start.year, (end - timedelta(days=1)).year + 1):
        _check_yearly_cap(service, rules, period, year, ctx.today)
    return period


def _check_yearly_cap(
    service: ServiceFacts, rules: ServiceRules, period: DatePeriod, year: int, today: date
) -> None:
    whole_year = DatePeriod.year(year)
    needed = period.overlap_days(whole_year)
    used = sum(p.overlap_days(whole_year) for p in service.voluntary_periods)
    left = max(0, rules.voluntary_days_per_year - used)
    if needed > left:
        when = "this year" if year == today.year else f"in {year}"
        raise LifecycleError(
            f"only {left} of {rules.voluntary_days_per_year} days of voluntary suspension left {when}; "
            f"the request needs {needed}"
        )


def request_voluntary_suspension(
    service: ServiceFacts,
    account: AccountFacts,
    rules: LifecycleRules,
    as_of: datetime,
    *,
    start: date,
    end: date | None = None,
    reason: str,
    operator: str | None,
) -> VoluntarySuspension:
    """Accept a voluntary suspension of ``[start, end)`` (``end`` None: the maximum), or refuse it.

    Checked now: the status allows it, no debt suspension is due, the rules offer it, the start is
    not in the past, min <= days <= max, no overlap, and the yearly cap of each calendar year it
    touches. The return is always scheduled (automatic, operator None).
    """
    ctx = _context(service, account, rules, as_of)
    _check_step(E.SUSPEND_VOLUNTARY, reason, None)
    target(service.status, E.SUSPEND_VOLUNTARY)
    if _debt_due(ctx):
        raise LifecycleError(
            f"voluntary suspension refused: funds are {account.available} past the grace period"
        )
    period = _voluntary_period(service, ctx, start, end)
    back = ScheduledChange(period.end, E.RESUME, Reason.VOLUNTARY_SUSPENSION_END, None)
    if start > ctx.today:
        return VoluntarySuspension(
            period, None, (ScheduledChange(start, E.SUSPEND_VOLUNTARY, reason, operator), back)
        )
    transition = _fire(service, _Step(E.SUSPEND_VOLUNTARY, reason, operator), ctx)
    return VoluntarySuspension(period, transition, (back,))


def _automatic_step(facts: ServiceFacts, ctx: _Context) -> _Step | None:
    rules, paid = ctx.rules, ctx.account.available >= 0
    days_in_status = (ctx.today - _day(facts.status_since, ctx)).days
    if facts.status is S.SUSPENDED_INVOLUNTARY:
        if paid and rules.auto_resume_on_payment:
            return _Step(E.DEBT_PAID, Reason.PAYMENT_RECEIVED)
        if not paid and rules.churn_after_days is not None and days_in_status >= rules.churn_after_days:
            return _Step(E.CHURN, Reason.NON_PAYMENT)
    if facts.status in (S.ACTIVE, S.SUSPENDED_VOLUNTARY) and _debt_due(ctx):
        return _Step(E.SUSPEND_FOR_DEBT, Reason.NON_PAYMENT)
    return None


def _voluntary_max_step(facts: ServiceFacts, ctx: _Context) -> _Step | None:
    days_in_status = (ctx.today - _day(facts.status_since, ctx)).days
    if facts.status is S.SUSPENDED_VOLUNTARY and days_in_status >= ctx.rules.voluntary_max_days:
        return _Step(E.RESUME, Reason.VOLUNTARY_SUSPENSION_MAX)
    return None


def assess(
    service: ServiceFacts, account: AccountFacts, rules: LifecycleRules, as_of: datetime
) -> Assessment:
    """Everything due on ``as_of``'s day: transitions in order, and due scheduled changes refused.

    Deterministic; once the caller applies the result (:meth:`ServiceFacts.after`), assessing
    the same day again finds nothing.
    """
    ctx = _context(service, account, rules, as_of)
    facts = service
    transitions: list[Transition] = []
    refused: list[RefusedChange] = []
    # Each round consumes a scheduled change or makes an automatic move; at most three automatic
    # moves follow one another (suspend, resume into debt, ...), so this bound is never reached.
    for _ in range(4 * (len(service.scheduled) + 2)):
        due = sorted((c for c in facts.scheduled if c.effective <= ctx.today), key=lambda c: c.effective)
        step = _automatic_step(facts, ctx)
        if step is None and due:
            change = due[0]
            step = _Step(change.event, change.reason, change.operator, change.tariff_code, change)
            entry = TABLE[(facts.status, change.event)]
            if isinstance(entry, Refuse):
                refused.append(RefusedChange(change, facts.status, entry.reason))
                facts = facts.after((), refused[-1:])
                continue
        step = step or _voluntary_max_step(facts, ctx)
        if step is None:
            return Assessment(tuple(transitions), tuple(refused))
        transitions.append(_fire(facts, step, ctx))
        facts = facts.after(transitions[-1:])
    raise RuntimeError(f"lifecycle of service {service.service_id} did not settle on {ctx.today}")


def evaluate(
    service: ServiceFacts, account: AccountFacts, rules: LifecycleRules, as_of: datetime
) -> list[Transition]:
    """The automatic transitions due on ``as_of``'s day, in order (see :func:`assess` for refusals)."""
    return list(assess(service, account, rules, as_of).transitions)
