"""The transition functions of the service lifecycle: what an event, a request or a day does.

:func:`request_event` applies an operator's (or a subscriber's) event now,
:func:`request_voluntary_suspension` checks and schedules a voluntary suspension, and
:func:`assess` / :func:`evaluate` find the automatic events due on a day. Each follows
:data:`billing.lifecycle.TABLE` and returns values (:mod:`billing.lifecycle_facts`) for the caller
to store. Pure: time is a parameter (``as_of``, an aware datetime; days are counted in
``LifecycleRules.time_zone``).

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

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

from billing.lifecycle import TABLE, Event, LifecycleError, Reason, Refuse, ServiceStatus, target
from billing.lifecycle_facts import (
    AccountFacts,
    Assessment,
    DatePeriod,
    ProvisioningIntent,
    RefusedChange,
    ScheduledChange,
    ServiceFacts,
    Transition,
    VoluntarySuspension,
    check_aware,
    check_step,
    without,
)
from billing.lifecycle_rules import LifecycleRules, NetworkAccess, ServiceRules
from billing.status_meaning import meaning

S, E = ServiceStatus, Event  # short names, as in the table


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


def _context(
    service: ServiceFacts, account: AccountFacts, rules: LifecycleRules, as_of: datetime
) -> _Context:
    check_aware(as_of, "as_of")
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
    cancels = without(cancels, (step.scheduled,) if step.scheduled is not None else ())
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
    check_step(event, reason, tariff_code)
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
    check_step(E.SUSPEND_VOLUNTARY, reason, None)
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
