"""What the service lifecycle reads and what it decides, as frozen values.

In: the facts of a service (:class:`ServiceFacts`: status, scheduled changes, voluntary
suspensions) and of its account (:class:`AccountFacts`: the money). Out: a :class:`Transition`
with its :class:`ProvisioningIntent`, a :class:`RefusedChange`, an :class:`Assessment` or an
accepted :class:`VoluntarySuspension`. Kept apart from the transition functions so the service
layer that reads and stores these sees only values, each checked when it is built;
:meth:`ServiceFacts.after` applies decisions to facts, giving what the caller must store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from billing.lifecycle import Event, LifecycleError, ServiceStatus
from billing.lifecycle_rules import NetworkAccess, ServiceKind

E = Event  # a short name, as in the table


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
        check_step(self.event, self.reason, self.tariff_code)


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


def without(
    changes: tuple[ScheduledChange, ...], gone: Iterable[ScheduledChange]
) -> tuple[ScheduledChange, ...]:
    """``changes`` less each of ``gone`` (once each; those not there are ignored)."""
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
        check_aware(self.status_since, "status_since")

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
                scheduled=without(facts.scheduled, (*done, *t.cancels)),
                voluntary_periods=periods,
            )
        return replace(facts, scheduled=without(facts.scheduled, (r.change for r in refused)))


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
            check_aware(self.negative_since, "negative_since")

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


def check_aware(moment: datetime, name: str) -> None:
    """Refuse ``moment`` (named ``name``) unless it is an aware datetime."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise LifecycleError(f"{name}: expected an aware datetime, got {moment!r}")


def check_step(event: Event, reason: str, tariff_code: str | None) -> None:
    """Refuse an event without a reason code, or with a tariff code unless it is a tariff change."""
    if not isinstance(reason, str) or not reason:
        raise LifecycleError(f"{event}: a reason code from the status_reason dictionary is required")
    if event is E.CHANGE_TARIFF and not tariff_code:
        raise LifecycleError("change_tariff: the new tariff_code is required")
    if event is not E.CHANGE_TARIFF and tariff_code is not None:
        raise LifecycleError(f"{event}: tariff_code is only for change_tariff")
