"""Lifecycle rules as data: grace, churn, automatic resume and voluntary suspension, per kind and category.

The service lifecycle (:mod:`billing.lifecycle`) is one fixed state machine; what operators tune
is here, as frozen dataclasses. :class:`ServiceRules` holds the numbers for one kind of service
sold to one subscriber category; :class:`LifecycleRules` holds them all and picks one with a
deterministic lookup (:meth:`LifecycleRules.lookup`):

1. the exact ``(kind, category)`` entry, e.g. ``(internet, business)``;
2. else the kind's entry for any category, ``(kind, ANY_CATEGORY)``, e.g. ``(tv, "*")``;
3. else the default.

Days are whole calendar days in the operator's time zone (``LifecycleRules.time_zone``); a rule
of N days covers the half-open span ``[first day, first day + N)``. Money is ``Decimal``, never
float; rounding to the currency's minor unit is the invoice's job, not this module's.
Pure: no I/O, imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

ANY_CATEGORY = "*"
"""The category key of a kind-wide entry: it applies to every category without its own entry."""


class ServiceKind(StrEnum):
    """What a service is; the values are the database's (``billing.db.services.SERVICE_KINDS``)."""

    INTERNET = "internet"
    TV = "tv"
    ADDON = "addon"
    ONE_TIME = "one_time"


class Charging(StrEnum):
    """What a status costs: the tariff's full recurring fee, the reduced fee of the rules, or nothing."""

    FULL = "full"
    REDUCED = "reduced"
    NONE = "none"


class NetworkAccess(StrEnum):
    """What the network enforces: the tariff's profile, the negative-balance profile, or nothing."""

    ALLOW = "allow"
    WALLED_GARDEN = "walled_garden"
    DENY = "deny"


def _check_decimal(value: object, field_name: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{field_name}: expected a finite Decimal, got {value!r}")
    return value


@dataclass(frozen=True)
class ReducedFee:
    """The fee of a voluntary suspension: a fixed amount per period, or a fraction of the tariff's fee.

    Exactly one of ``fixed`` and ``fraction`` is set; build it with :meth:`fixed_amount` or
    :meth:`share`. The amount is per billing period, like the tariff's fee it replaces.
    """

    fixed: Decimal | None = None
    fraction: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.fixed is None) == (self.fraction is None):
            raise ValueError("reduced fee: set exactly one of fixed and fraction")
        if self.fixed is not None and _check_decimal(self.fixed, "reduced fee fixed") < 0:
            raise ValueError(f"reduced fee fixed: expected an amount >= 0, got {self.fixed}")
        if self.fraction is not None and not 0 <= _check_decimal(self.fraction, "reduced fee fraction") <= 1:
            raise ValueError(f"reduced fee fraction: expected 0 to 1, got {self.fraction}")

    @classmethod
    def fixed_amount(cls, amount: Decimal) -> ReducedFee:
        """A fixed amount per billing period, whatever the tariff."""
        return cls(fixed=amount)

    @classmethod
    def share(cls, fraction: Decimal) -> ReducedFee:
        """A fraction (0 to 1) of the tariff's recurring fee."""
        return cls(fraction=fraction)

    def amount(self, tariff_fee: Decimal) -> Decimal:
        """The fee for one billing period of a tariff whose full fee is ``tariff_fee`` (unrounded)."""
        if self.fixed is not None:
            return self.fixed
        assert self.fraction is not None  # __post_init__ guarantees one of the two
        return _check_decimal(tariff_fee, "tariff fee") * self.fraction


@dataclass(frozen=True)
class ServiceRules:
    """The lifecycle numbers for one kind of service and one subscriber category.

    Debt: available funds (balance + credit limit) below zero for ``grace_days`` days suspend the
    service (``None``: never suspended for debt, e.g. one-time services). Once suspended, the
    network shows ``debt_network`` (walled garden or deny); ``churn_after_days`` days still
    unpaid churn it (``None``: only an operator churns it); funds back at zero or above resume it
    automatically when ``auto_resume_on_payment``, else an operator applies ``debt_paid``.

    Voluntary suspension: from ``voluntary_min_days`` to ``voluntary_max_days`` days per request,
    at most ``voluntary_days_per_year`` days per calendar year, charged ``voluntary_fee``.
    ``voluntary_max_days == 0`` means it is not offered.
    """

    grace_days: int | None = 5
    debt_network: NetworkAccess = NetworkAccess.WALLED_GARDEN
    churn_after_days: int | None = 90
    auto_resume_on_payment: bool = True
    voluntary_min_days: int = 7
    voluntary_max_days: int = 90
    voluntary_days_per_year: int = 90
    voluntary_fee: ReducedFee = field(default_factory=lambda: ReducedFee.share(Decimal(0)))

    def __post_init__(self) -> None:
        if self.grace_days is not None and self.grace_days < 0:
            raise ValueError(f"grace_days: expected a number of days >= 0 or None, got {self.grace_days}")
        if self.churn_after_days is not None and self.churn_after_days < 1:
            raise ValueError(f"churn_after_days: expected >= 1 or None, got {self.churn_after_days}")
        if self.debt_network is NetworkAccess.ALLOW:
            raise ValueError("debt_network: expected walled_garden or deny, got allow")
        if not 0 <= self.voluntary_min_days <= self.voluntary_max_days:
            raise ValueError(
                "voluntary_min_days, voluntary_max_days: expected 0 <= min <= max, got "
                f"{self.voluntary_min_days} and {self.voluntary_max_days}"
            )
        if self.voluntary_max_days > 0 and self.voluntary_min_days < 1:
            raise ValueError("voluntary_min_days: expected >= 1 when voluntary suspension is offered")
        if self.voluntary_days_per_year < 0:
            raise ValueError(f"voluntary_days_per_year: expected >= 0, got {self.voluntary_days_per_year}")

    @property
    def voluntary_offered(self) -> bool:
        """Whether these services may be suspended at the subscriber's request at all."""
        return self.voluntary_max_days > 0


@dataclass(frozen=True)
class LifecycleRules:
    """All lifecycle rules of an operator: a default and overrides keyed by ``(kind, category)``.

    ``category`` is a ``subscriber_category`` dictionary code or :data:`ANY_CATEGORY`.
    ``time_zone`` is the operator's: it turns instants into the calendar days the rules count.
    """

    default: ServiceRules = field(default_factory=ServiceRules)
    overrides: Mapping[tuple[ServiceKind, str], ServiceRules] = field(default_factory=dict)
    time_zone: tzinfo = UTC

    def __post_init__(self) -> None:
        checked: dict[tuple[ServiceKind, str], ServiceRules] = {}
        for (kind, category), rules in self.overrides.items():
            try:
                known = ServiceKind(kind)
            except ValueError:
                known_kinds = ", ".join(ServiceKind)
                raise ValueError(f"overrides: unknown service kind {kind!r}; known: {known_kinds}") from None
            if not category:
                raise ValueError(f"overrides: empty category for kind {kind}; use {ANY_CATEGORY!r} for any")
            checked[(known, category)] = rules
        object.__setattr__(self, "overrides", MappingProxyType(checked))

    def lookup(self, kind: ServiceKind | str, category: str) -> ServiceRules:
        """The rules for ``kind`` sold to ``category``: exact entry, else the kind's, else the default."""
        kind = ServiceKind(kind)
        for key in ((kind, category), (kind, ANY_CATEGORY)):
            if key in self.overrides:
                return self.overrides[key]
        return self.default


DEFAULT_RULES = LifecycleRules(
    default=ServiceRules(),
    overrides={
        (ServiceKind.INTERNET, "business"): ServiceRules(grace_days=15, churn_after_days=180),
        (ServiceKind.TV, ANY_CATEGORY): ServiceRules(debt_network=NetworkAccess.DENY),
        (ServiceKind.ONE_TIME, ANY_CATEGORY): ServiceRules(
            grace_days=None, churn_after_days=None, voluntary_min_days=0, voluntary_max_days=0
        ),
    },
)
"""A starting point: 5 days' grace, walled garden, churn after 90 unpaid days, up to 90 days' free
voluntary suspension a year; business Internet gets 15 days' grace and 180 before churn; TV is
denied rather than walled; one-time services are never suspended."""
