"""Service lifecycle use cases: read the facts, call the pure core, write the result in one transaction.

The state machine is :mod:`billing.lifecycle` (pure); this module is its persistence. For one
service, in the caller's transaction, it locks the service row, reads
:class:`~billing.lifecycle_facts.ServiceFacts` and :class:`~billing.lifecycle_facts.AccountFacts`, asks the
core, and writes what the core decided: ``services.status`` (PostgreSQL's NOTIFY triggers on
``services`` tell the AAA snapshot), a ``service_status_changes`` row, a ``provisioning_tasks``
outbox row when the network must change (unique key ``status_change:<id>``), the scheduled
changes it executes, cancels or refuses, the voluntary periods, and an audit row.

Time is a parameter (``as_of``, aware); only the CLI reads the clock. Rules: :func:`rules_for`
(``DEFAULT_RULES`` in the ISP's time zone until rules become operator data).

Facts, and where they come from:

- ``status_since``: the ``at`` of the service's latest history row, else ``services.created_at``.
- ``tariff_code``: ``services.tariff_code`` (a change_tariff transition writes it there).
- ``balance``: the account's ledger postings effective at or before ``as_of``, shown the natural
  way (positive = the customer's funds); ``credit_limit``: the account's current limit.
- ``negative_since``: walk the account's transactions in (effective time, id) order, keeping the
  running funds (running balance + current credit limit); it is the effective time of the
  transaction after which funds were last below zero without coming back to zero or above, and
  None when funds at ``as_of`` are not below zero. The credit limit has no history, so a limit
  lowered today counts as if it had always been that low: lowering a limit can suspend at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import audit, dictionaries, ledger
from billing.audit import Actor
from billing.db.customers import Account, Customer
from billing.db.dictionaries import DictionaryEntry
from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.db.lifecycle import (
    ProvisioningTask,
    ScheduledServiceChange,
    ServiceStatusChange,
    VoluntarySuspension,
)
from billing.db.services import Service
from billing.db.staff import Operator
from billing.db.tariffs import TariffRow
from billing.lifecycle import Event, LifecycleError, ServiceStatus
from billing.lifecycle_facts import (
    AccountFacts,
    DatePeriod,
    ProvisioningIntent,
    RefusedChange,
    ScheduledChange,
    ServiceFacts,
    Transition,
)
from billing.lifecycle_rules import DEFAULT_RULES, LifecycleRules
from billing.lifecycle_transitions import assess, request_event, request_voluntary_suspension
from billing.provisioning_outbox import write_task

STATUS_REASON = "status_reason"
_TARIFF_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ServiceLifecycleError(ValueError):
    """A lifecycle request refused before the core is asked (unknown service, bad date); nothing written."""


@dataclass(frozen=True)
class StatusChangeInfo:
    """One row of a service's history; ``operator`` None means automatic."""

    id: int
    service_id: int
    at: datetime
    event: str
    from_status: str
    to_status: str
    reason: str
    operator: str | None
    tariff_code: str | None
    scheduled_change_id: int | None
    provisioning_task_id: int | None


@dataclass(frozen=True)
class ScheduledChangeInfo:
    """A future-dated change and what became of it (``outcome``: why it was refused or cancelled)."""

    id: int
    service_id: int
    effective: date
    event: str
    reason: str
    operator: str | None
    tariff_code: str | None
    state: str
    outcome: str | None


@dataclass(frozen=True)
class LifecycleOutcome:
    """What one request or evaluation did to one service: status after, rows written."""

    service_id: int
    status: str
    changes: tuple[StatusChangeInfo, ...] = ()
    scheduled: tuple[ScheduledChangeInfo, ...] = ()
    refused: tuple[ScheduledChangeInfo, ...] = ()
    voluntary_period: DatePeriod | None = None


@dataclass(frozen=True)
class ServiceHistory:
    """A service's status, tariff, history, scheduled changes and voluntary periods."""

    service_id: int
    status: str
    tariff_code: str | None
    changes: tuple[StatusChangeInfo, ...]
    scheduled: tuple[ScheduledChangeInfo, ...]
    voluntary_periods: tuple[DatePeriod, ...]


@dataclass(frozen=True)
class EvaluationFailure:
    """A service the evaluation could not settle; its changes were rolled back, others kept."""

    service_id: int
    message: str


@dataclass(frozen=True)
class EvaluationReport:
    """The daily evaluation: services looked at, transitions made, scheduled changes refused, failures."""

    as_of: datetime
    services_checked: int
    changes: tuple[StatusChangeInfo, ...]
    refused: tuple[ScheduledChangeInfo, ...]
    failures: tuple[EvaluationFailure, ...]


def rules_for(time_zone: tzinfo) -> LifecycleRules:
    """The lifecycle rules in force: :data:`DEFAULT_RULES` counted in the ISP's ``time_zone``."""
    return replace(DEFAULT_RULES, time_zone=time_zone)


# --------------------------------------------------------------------------- reading facts


def _service(session: Session, service_id: int) -> Service:
    """The service row, locked for the transaction on PostgreSQL (two runs never both move it)."""
    service = session.scalar(select(Service).where(Service.id == service_id).with_for_update())
    if service is None:
        raise ServiceLifecycleError(f"service_id: no service {service_id}")
    return service


def funds_history(session: Session, account: Account, as_of: datetime) -> tuple[Decimal, datetime | None]:
    """The natural balance at ``as_of`` and ``negative_since`` (see the module docstring)."""
    kind = session.scalar(select(LedgerAccount.kind).where(LedgerAccount.id == account.ledger_account_id))
    assert kind is not None  # the foreign key guarantees it
    rows = session.execute(
        select(LedgerTransaction.effective_at, func.sum(Posting.amount))
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(
            Posting.ledger_account_id == account.ledger_account_id, LedgerTransaction.effective_at <= as_of
        )
        .group_by(LedgerTransaction.id, LedgerTransaction.effective_at)
        .order_by(LedgerTransaction.effective_at, LedgerTransaction.id)
    )
    balance, since = Decimal(0), None
    for effective_at, raw in rows:
        balance += ledger.natural_balance(kind, Decimal(raw))
        negative = balance + account.credit_limit < 0
        since = (since or effective_at) if negative else None
    return balance, since


def _account_facts(session: Session, service: Service, as_of: datetime) -> AccountFacts:
    account = session.get(Account, service.account_id)
    assert account is not None
    category = session.scalar(
        select(DictionaryEntry.code)
        .join(Customer, Customer.category_id == DictionaryEntry.id)
        .where(Customer.id == account.customer_id)
    )
    balance, since = funds_history(session, account, as_of)
    return AccountFacts(category or "", balance, account.credit_limit, since)


def current_tariff_code(session: Session, service_id: int) -> str | None:
    """The service's tariff (``services.tariff_code``), or None before it has one."""
    return session.scalar(select(Service.tariff_code).where(Service.id == service_id))


def _pending(session: Session, service_id: int) -> list[ScheduledServiceChange]:
    return list(
        session.scalars(
            select(ScheduledServiceChange)
            .where(ScheduledServiceChange.service_id == service_id, ScheduledServiceChange.state == "pending")
            .order_by(ScheduledServiceChange.effective, ScheduledServiceChange.id)
        )
    )


def _codes(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(DictionaryEntry.id, DictionaryEntry.code).where(DictionaryEntry.id.in_(wanted))
    )
    return {entry_id: code for entry_id, code in rows}


def _logins(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Operator.id, Operator.login).where(Operator.id.in_(wanted)))
    return {operator_id: login for operator_id, login in rows}


def _service_facts(session: Session, service: Service) -> ServiceFacts:
    since = session.scalar(
        select(ServiceStatusChange.at)
        .where(ServiceStatusChange.service_id == service.id)
        .order_by(ServiceStatusChange.at.desc(), ServiceStatusChange.id.desc())
        .limit(1)
    )
    pending = _pending(session, service.id)
    reasons = _codes(session, (p.reason_id for p in pending))
    logins = _logins(session, (p.operator_id for p in pending))
    periods = session.scalars(
        select(VoluntarySuspension)
        .where(VoluntarySuspension.service_id == service.id)
        .order_by(VoluntarySuspension.start_date)
    )
    return ServiceFacts(
        service_id=service.id,
        kind=service.kind,
        status=ServiceStatus(service.status),
        status_since=since or service.created_at,
        tariff_code=current_tariff_code(session, service.id),
        scheduled=tuple(
            ScheduledChange(
                p.effective,
                Event(p.event),
                reasons[p.reason_id],
                logins.get(p.operator_id) if p.operator_id is not None else None,
                p.tariff_code,
                id=p.id,
            )
            for p in pending
        ),
        voluntary_periods=tuple(DatePeriod(p.start_date, p.end_date) for p in periods),
    )


def load_facts(session: Session, service_id: int, as_of: datetime) -> tuple[ServiceFacts, AccountFacts]:
    """The facts the core needs about a service and its account at ``as_of`` (the service is locked)."""
    service = _service(session, service_id)
    return _service_facts(session, service), _account_facts(session, service, as_of)


# --------------------------------------------------------------------------- writing


def _reason_id(session: Session, code: str) -> int:
    """The status_reason entry of an automatic or scheduled transition (deactivated codes still count)."""
    found = session.scalar(
        select(DictionaryEntry.id).where(DictionaryEntry.kind == STATUS_REASON, DictionaryEntry.code == code)
    )
    if found is None:
        raise ServiceLifecycleError(
            f"reason: {code!r} is not a value in dictionary {STATUS_REASON}; add it with "
            f"'billing-admin dict add {STATUS_REASON} {code} NAME'"
        )
    return found


def _scheduled_info(session: Session, row: ScheduledServiceChange) -> ScheduledChangeInfo:
    reason = _codes(session, [row.reason_id])[row.reason_id]
    operator = _logins(session, [row.operator_id]).get(row.operator_id) if row.operator_id else None
    return ScheduledChangeInfo(
        row.id,
        row.service_id,
        row.effective,
        row.event,
        reason,
        operator,
        row.tariff_code,
        row.state,
        row.outcome,
    )


def _close(row: ScheduledServiceChange, state: str, when: datetime, outcome: str | None = None) -> None:
    row.state, row.closed_at, row.outcome = state, when, outcome


def _drop_planned_suspension(session: Session, row: ScheduledServiceChange, when: datetime) -> None:
    """A planned voluntary suspension that will not start: remove its period and its return."""
    if row.event != Event.SUSPEND_VOLUNTARY:
        return
    period = session.scalar(
        select(VoluntarySuspension).where(
            VoluntarySuspension.service_id == row.service_id, VoluntarySuspension.start_date == row.effective
        )
    )
    if period is None:
        return
    for other in _pending(session, row.service_id):
        if other.event == Event.RESUME and other.effective == period.end_date and other.operator_id is None:
            _close(other, "cancelled", when, f"the voluntary suspension from {row.effective} did not start")
    session.delete(period)


def _schedule(
    session: Session, service_id: int, change: ScheduledChange, operator_id: int | None, as_of: datetime
) -> ScheduledServiceChange:
    row = ScheduledServiceChange(
        service_id=service_id,
        effective=change.effective,
        event=change.event.value,
        reason_id=_reason_id(session, change.reason),
        operator_id=operator_id,
        tariff_code=change.tariff_code,
        state="pending",
        created_at=as_of,
    )
    session.add(row)
    session.flush()
    return row


def _write_task(session: Session, intent: ProvisioningIntent, change_id: int) -> int:
    """Insert the outbox row of a status change once: a second insert of its key does nothing."""
    task_id, _ = write_task(
        session,
        f"status_change:{change_id}",
        intent.service_id,
        intent.network.value,
        release=intent.release,
        tariff_code=intent.tariff_code,
        status_change_id=change_id,
    )
    return task_id


def _record(
    session: Session, actor: Actor, service: Service, t: Transition, operator_id: int | None
) -> StatusChangeInfo:
    """Write one transition: status, history, scheduled rows, voluntary period, outbox, audit."""
    scheduled_row = session.get(ScheduledServiceChange, t.scheduled.id) if t.scheduled is not None else None
    if scheduled_row is not None:
        operator_id = scheduled_row.operator_id
    change = ServiceStatusChange(
        service_id=service.id,
        from_status=t.from_status.value,
        to_status=t.to_status.value,
        event=t.event.value,
        reason_id=_reason_id(session, t.reason),
        operator_id=operator_id,
        at=t.when,
        tariff_code=t.tariff_code,
        from_tariff_code=service.tariff_code if t.event is Event.CHANGE_TARIFF else None,
        scheduled_change_id=scheduled_row.id if scheduled_row is not None else None,
    )
    session.add(change)
    service.status = t.to_status.value
    if t.event is Event.CHANGE_TARIFF and t.tariff_code is not None:
        service.tariff_code = t.tariff_code
    session.flush()
    if scheduled_row is not None:
        _close(scheduled_row, "done", t.when)
    for cancelled in t.cancels:
        row = session.get(ScheduledServiceChange, cancelled.id)
        if row is not None and row.state == "pending":
            _close(row, "cancelled", t.when, f"cancelled by {t.event} (status change {change.id})")
            _drop_planned_suspension(session, row, t.when)
    if t.voluntary_taken is not None:
        period = session.scalar(
            select(VoluntarySuspension).where(
                VoluntarySuspension.service_id == service.id,
                VoluntarySuspension.start_date == t.voluntary_taken.start,
            )
        )
        if period is not None:
            period.end_date = t.voluntary_taken.end
    task_id = _write_task(session, t.provisioning, change.id) if t.provisioning is not None else None
    session.flush()
    info = StatusChangeInfo(
        change.id, service.id, t.when, t.event.value, t.from_status.value, t.to_status.value, t.reason,
        _logins(session, [operator_id]).get(operator_id) if operator_id is not None else None,
        t.tariff_code, change.scheduled_change_id, task_id,
    )  # fmt: skip
    audit.record(
        session, actor, f"service.{t.event.value}", "service", service.id,
        before={"status": t.from_status.value},
        after={"status": t.to_status.value, "change": info, "automatic": operator_id is None},
    )  # fmt: skip
    return info


def _refuse(session: Session, actor: Actor, refused: RefusedChange, when: datetime) -> ScheduledChangeInfo:
    assert refused.change.id is not None
    row = session.get(ScheduledServiceChange, refused.change.id)
    assert row is not None
    if row.state != "pending":  # already cancelled with the planned suspension it returned from
        return _scheduled_info(session, row)
    _close(
        row,
        "refused",
        when,
        f"{refused.change.event} refused for a {refused.status} service: {refused.reason}",
    )
    _drop_planned_suspension(session, row, when)
    session.flush()
    info = _scheduled_info(session, row)
    audit.record(session, actor, "service.scheduled_refused", "service", row.service_id, after=info)
    return info


# --------------------------------------------------------------------------- use cases


def _today(as_of: datetime, rules: LifecycleRules) -> date:
    if as_of.utcoffset() is None:
        raise ServiceLifecycleError(f"as_of: expected an aware datetime, got {as_of!r}")
    return as_of.astimezone(rules.time_zone).date()


def apply_event(
    session: Session,
    actor: Actor,
    service_id: int,
    event: Event | str,
    as_of: datetime,
    *,
    reason: str,
    rules: LifecycleRules,
    at: date | None = None,
    until: date | None = None,
    tariff_code: str | None = None,
) -> LifecycleOutcome:
    """An operator's action on a service, now or (``at`` after today) as a scheduled change.

    ``reason`` must be an active ``status_reason`` code. ``suspend_voluntary`` takes the period
    ``[at or today, until)`` (``until`` None: the rules' maximum) and schedules the return;
    ``change_tariff`` needs ``tariff_code``. Refusals raise (:class:`LifecycleError`,
    :class:`ServiceLifecycleError`, an unknown dictionary value) before anything is written.
    """
    try:
        event = Event(event)
    except ValueError:
        raise ServiceLifecycleError(f"event: expected one of {', '.join(Event)}, got {event!r}") from None
    today = _today(as_of, rules)
    if at is not None and at < today:
        raise ServiceLifecycleError(f"at: {at} is in the past (today is {today})")
    if until is not None and event is not Event.SUSPEND_VOLUNTARY:
        raise ServiceLifecycleError("until: only a voluntary suspension has an end date")
    if tariff_code is not None and not _TARIFF_CODE.match(tariff_code):
        raise ServiceLifecycleError(
            f"tariff: expected a code of letters, digits, '_', '.', '-' (at most 64), got {tariff_code!r}"
        )
    if (
        tariff_code is not None
        and session.scalar(select(TariffRow.id).where(TariffRow.code == tariff_code)) is None
    ):
        raise ServiceLifecycleError(
            f"tariff: unknown tariff {tariff_code!r} (import it with `billing-admin tariff import`)"
        )
    service, account = load_facts(session, service_id, as_of)
    row = _service(session, service_id)
    dictionaries.resolve(session, STATUS_REASON, reason, field="reason")
    operator = actor.login
    if event is Event.SUSPEND_VOLUNTARY:
        accepted = request_voluntary_suspension(
            service, account, rules, as_of, start=at or today, end=until, reason=reason, operator=operator
        )
        session.add(
            VoluntarySuspension(
                service_id=service_id,
                start_date=accepted.period.start,
                end_date=accepted.period.end,
                created_at=as_of,
            )
        )
        session.flush()
        changes = (
            (_record(session, actor, row, accepted.transition, actor.operator_id),)
            if accepted.transition
            else ()
        )
        scheduled = tuple(
            _scheduled_info(
                session, _schedule(session, service_id, c, actor.operator_id if c.operator else None, as_of)
            )
            for c in accepted.scheduled
        )
        return LifecycleOutcome(service_id, row.status, changes, scheduled, voluntary_period=accepted.period)
    if at is not None and at > today:
        if service.status is ServiceStatus.CHURNED:
            raise LifecycleError(f"{event} refused for a churned service: churned is terminal")
        if event is Event.CHANGE_TARIFF and tariff_code is None:
            raise LifecycleError("change_tariff: the new tariff_code is required")
        change = ScheduledChange(at, event, reason, operator, tariff_code)
        stored = _scheduled_info(session, _schedule(session, service_id, change, actor.operator_id, as_of))
        audit.record(session, actor, f"service.schedule.{event.value}", "service", service_id, after=stored)
        return LifecycleOutcome(service_id, row.status, scheduled=(stored,))
    transition = request_event(
        service, account, rules, event, as_of, reason=reason, operator=operator, tariff_code=tariff_code
    )
    change_info = _record(session, actor, row, transition, actor.operator_id)
    return LifecycleOutcome(service_id, row.status, (change_info,))


def evaluate_service(
    session: Session, actor: Actor, service_id: int, as_of: datetime, rules: LifecycleRules
) -> LifecycleOutcome:
    """Apply the automatic transitions and scheduled changes due on ``as_of``'s day to one service.

    Idempotent: evaluating the same day again finds nothing to do.
    """
    _today(as_of, rules)
    service, account = load_facts(session, service_id, as_of)
    row = _service(session, service_id)
    found = assess(service, account, rules, as_of)
    changes = tuple(_record(session, actor, row, t, None) for t in found.transitions)
    refused = tuple(_refuse(session, actor, r, as_of) for r in found.refused)
    return LifecycleOutcome(service_id, row.status, changes, refused=refused)


def evaluate_services(
    session: Session,
    actor: Actor,
    as_of: datetime,
    rules: LifecycleRules,
    *,
    service_ids: Sequence[int] | None = None,
) -> EvaluationReport:
    """The daily run: evaluate every service not churned (or those named), each in a savepoint.

    A service that fails is rolled back to its savepoint and reported; the others are kept.
    Everything commits with the caller's transaction (the charge run will batch this).
    """
    _today(as_of, rules)
    query = select(Service.id).where(Service.status != ServiceStatus.CHURNED.value).order_by(Service.id)
    if service_ids is not None:
        query = select(Service.id).where(Service.id.in_(service_ids)).order_by(Service.id)
    ids = list(session.scalars(query))
    if service_ids is not None and len(ids) != len(set(service_ids)):
        missing = sorted(set(service_ids) - set(ids))
        raise ServiceLifecycleError(f"service_id: no service {', '.join(map(str, missing))}")
    changes: list[StatusChangeInfo] = []
    refused: list[ScheduledChangeInfo] = []
    failures: list[EvaluationFailure] = []
    for service_id in ids:
        try:
            with session.begin_nested():
                outcome = evaluate_service(session, actor, service_id, as_of, rules)
        except (LifecycleError, ServiceLifecycleError, RuntimeError) as exc:
            failures.append(EvaluationFailure(service_id, str(exc)))
            continue
        changes.extend(outcome.changes)
        refused.extend(outcome.refused)
    return EvaluationReport(as_of, len(ids), tuple(changes), tuple(refused), tuple(failures))


def history(session: Session, service_id: int) -> ServiceHistory:
    """Everything recorded about a service's lifecycle, oldest first."""
    service = session.get(Service, service_id)
    if service is None:
        raise ServiceLifecycleError(f"service_id: no service {service_id}")
    rows = list(
        session.scalars(
            select(ServiceStatusChange)
            .where(ServiceStatusChange.service_id == service_id)
            .order_by(ServiceStatusChange.at, ServiceStatusChange.id)
        )
    )
    task_rows = session.execute(
        select(ProvisioningTask.status_change_id, ProvisioningTask.id).where(
            ProvisioningTask.service_id == service_id
        )
    )
    tasks = {change_id: task_id for change_id, task_id in task_rows}
    reasons = _codes(session, (r.reason_id for r in rows))
    logins = _logins(session, (r.operator_id for r in rows))
    changes = tuple(
        StatusChangeInfo(
            r.id,
            r.service_id,
            r.at,
            r.event,
            r.from_status,
            r.to_status,
            reasons[r.reason_id],
            logins.get(r.operator_id) if r.operator_id is not None else None,
            r.tariff_code,
            r.scheduled_change_id,
            tasks.get(r.id),
        )
        for r in rows
    )
    scheduled = tuple(
        _scheduled_info(session, s)
        for s in session.scalars(
            select(ScheduledServiceChange)
            .where(ScheduledServiceChange.service_id == service_id)
            .order_by(ScheduledServiceChange.effective, ScheduledServiceChange.id)
        )
    )
    periods = tuple(
        DatePeriod(p.start_date, p.end_date)
        for p in session.scalars(
            select(VoluntarySuspension)
            .where(VoluntarySuspension.service_id == service_id)
            .order_by(VoluntarySuspension.start_date)
        )
    )
    return ServiceHistory(
        service_id, service.status, current_tariff_code(session, service_id), changes, scheduled, periods
    )
