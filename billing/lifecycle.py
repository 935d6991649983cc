"""The service lifecycle: one explicit state machine, pure (no database, no I/O, no clock).

A service (not an account) has a status. Events move it; :data:`TABLE` writes down every
(status, event) pair: a target status, or a refusal with its reason. This module holds the words
the lifecycle and the database share (statuses, events, reason codes, errors) and the table, so
the machine reads in one place. Built on it: what a status means (:mod:`billing.status_meaning`),
the facts read and the decisions made (:mod:`billing.lifecycle_facts`), and the transition
functions (:mod:`billing.lifecycle_transitions`). The numbers (grace, churn, voluntary suspension)
are data in :mod:`billing.lifecycle_rules`. A service layer (:mod:`billing.service_lifecycle`)
reads the facts, calls the transition functions, and writes the result in one transaction.

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

What a status means for charging and the network is in :mod:`billing.status_meaning`; the
automatic events and the decisions behind the table are in :mod:`billing.lifecycle_transitions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


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
