"""Prepaid quota maths, like Diameter credit control: reserve, commit what was used, release the rest.

What: for a session of a metered prepaid tariff, how much money to hold (:func:`grant`, priced
by :func:`unit_price` from the tariff's :class:`QuotaUnit`), what the session's usage costs so
far (:func:`session_cost`, with :func:`rating.usage.rate_usage`), how a commit moves the
session's reservation (:func:`settle`), and what the network must do once the session can
spend no more (:func:`exhausted_action`: the tariff's throttle profile, else a disconnect).

Why pure: these rules decide whether several sessions (and several daemons) can spend the same
money twice. Here they are plain functions over ``Decimal`` with no database and no clock, so
the invariant is property-tested on its own; ``billing.quota`` applies them under the row lock
of the account's ledger account, which makes the numbers it feeds in consistent.

The words, per account (``funds`` = natural balance + credit limit) and per session:

- ``reserved``: money granted to the session so far (cumulative); ``committed``: money charged
  to it so far (cumulative, posted to the ledger, so already out of the balance);
- the session's *hold* is ``reserved - committed`` (never negative) while it is open;
- ``available = funds - sum of holds of the account's open sessions``.

Invariant (what the property tests check): when every step starts with ``available >= 0``,
it ends with ``available >= 0``: a grant never exceeds ``available``, and a commit never
charges more than the session's hold plus ``available``. Usage that costs more than that is
not charged now; it stays *due* (``unbilled``) and is charged by a later commit when funds
allow. The session is then exhausted.

Cost is cumulative: each commit rates *all* of the session's deltas (so increments round once
per line for the whole session, not once per interim) and charges ``cost - committed``. Adding
a later delta only adds quantities to lines, so the cost never goes down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias
from zoneinfo import ZoneInfo

from rating.allowance import Throttle
from rating.money import RoundingRule
from rating.traffic import ClassOctets, Direction, UsageDelta
from rating.usage import UsageRating, rate_usage
from rating.usage_plan import UsagePlan

__all__ = [
    "DEFAULT_QUOTA_UNIT",
    "Disconnect",
    "ExhaustedAction",
    "MeteredPlan",
    "QuotaError",
    "QuotaUnit",
    "Settlement",
    "available_funds",
    "exhausted_action",
    "grant",
    "session_cost",
    "settle",
    "unit_price",
]

_ZERO = Decimal(0)


class QuotaError(ValueError):
    """An argument the quota maths refuses (negative money, an empty quota unit ...)."""


@dataclass(frozen=True, slots=True)
class QuotaUnit:
    """How much usage one grant pays for: ``octets`` (either direction) and/or ``seconds``.

    E.g. 100 MB, or 10 minutes. Its price at the tariff's rates is what a session reserves at
    a time (:func:`unit_price`), so a smaller unit ties up less money per session and makes the
    daemon top up more often. A tariff version sets its own (``quota`` in the catalog,
    :attr:`rating.tariff.TariffVersion.quota`); :data:`DEFAULT_QUOTA_UNIT` otherwise.
    """

    octets: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        for name in ("octets", "seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise QuotaError(f"quota unit: {name}: expected an integer of at least 0, got {value!r}")
        if not (self.octets or self.seconds):
            raise QuotaError("quota unit: expected some octets or seconds")


DEFAULT_QUOTA_UNIT = QuotaUnit(octets=100_000_000, seconds=600)
"""The unit of a tariff version whose catalog entry sets no ``quota``: 100 MB (in the dearer
direction) plus 10 minutes of session time, each counted only if the tariff prices it."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The session must end (RADIUS Disconnect-Request): nothing left to spend."""


ExhaustedAction: TypeAlias = Throttle | Disconnect
"""What the network does to an exhausted session: CoA to a throttle profile, or Disconnect."""


@dataclass(frozen=True, slots=True)
class MeteredPlan:
    """What quota needs of a metered prepaid tariff version (``billing`` builds it from the catalog)."""

    tariff_code: str
    usage: UsagePlan
    rounding: RoundingRule
    currency: str
    unit: QuotaUnit
    tz: ZoneInfo

    @property
    def on_exhausted(self) -> ExhaustedAction:
        return exhausted_action(self.usage)


def exhausted_action(plan: UsagePlan) -> ExhaustedAction:
    """The tariff's throttle profile if its overage policy is :class:`Throttle`, else a disconnect.

    A prepaid session that cannot be paid for is slowed down where the tariff sells a slow
    speed past its allowance, and ended otherwise (also for :class:`~rating.allowance.Block`).
    """
    overage = plan.allowance.overage if plan.allowance is not None else None
    return overage if isinstance(overage, Throttle) else Disconnect()


def _check_money(value: object, name: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise QuotaError(f"{name}: expected a finite Decimal, got {value!r}")
    return value


def available_funds(balance: Decimal, credit_limit: Decimal, held: Decimal) -> Decimal:
    """``balance + credit_limit - held``: money no session holds; may be negative (then nothing is).

    ``balance`` is natural (positive: the customer's funds), ``held`` the sum of the holds of
    the account's open sessions.
    """
    _check_money(balance, "balance")
    _check_money(credit_limit, "credit_limit")
    if _check_money(held, "held") < 0:
        raise QuotaError(f"held: expected at least 0, got {held}")
    return balance + credit_limit - held


def grant(unit_amount: Decimal, available: Decimal) -> Decimal:
    """Money to reserve now: one unit's price, never more than ``available``, never negative."""
    if _check_money(unit_amount, "unit_amount") < 0:
        raise QuotaError(f"unit_amount: expected at least 0, got {unit_amount}")
    _check_money(available, "available")
    return max(_ZERO, min(unit_amount, available))


def unit_price(plan: MeteredPlan, at: datetime) -> Decimal:
    """The price of one :class:`QuotaUnit` of usage at instant ``at``, in the dearest way to use it.

    Rated as a zero-length delta at ``at`` (so in the bands of that instant), once per priced
    traffic class and direction with the unit's octets in it (and its seconds), with the
    allowance taken as used up: the most a unit can cost then. What a session is charged is
    always its real rated usage (:func:`session_cost`); this only sizes the reservation.
    """
    usage = plan.usage
    classes = sorted({price.traffic_class for price in usage.prices})
    used = usage.allowance.included_bytes if usage.allowance is not None else 0
    deltas = [
        UsageDelta(
            start=at,
            end=at,
            traffic=(
                ClassOctets(
                    traffic_class,
                    octets_in=plan.unit.octets if direction is Direction.IN else 0,
                    octets_out=plan.unit.octets if direction is Direction.OUT else 0,
                ),
            ),
            session_seconds=plan.unit.seconds,
        )
        for traffic_class in classes
        for direction in Direction
    ] or [UsageDelta(start=at, end=at, session_seconds=plan.unit.seconds)]
    return max(
        rate_usage([delta], usage, tz=plan.tz, allowance_used_before=used, rounding=plan.rounding).total
        for delta in deltas
    )


def session_cost(
    deltas: Iterable[UsageDelta], plan: MeteredPlan, *, allowance_used_before: int = 0
) -> UsageRating:
    """The rating of all of a session's usage so far (the cost is its ``total``); see the module doc."""
    return rate_usage(
        deltas, plan.usage, tz=plan.tz, allowance_used_before=allowance_used_before, rounding=plan.rounding
    )


@dataclass(frozen=True, slots=True)
class Settlement:
    """The result of :func:`settle`: what to post, and the session's reservation afterwards.

    ``charge`` is the money to post now; ``reserved`` and ``committed`` are the session's new
    cumulative figures (``committed`` grew by ``charge``); ``unbilled`` is cost that funds did
    not cover (still due); ``exhausted``: the session has nothing left to spend.
    """

    charge: Decimal
    reserved: Decimal
    committed: Decimal
    unbilled: Decimal
    exhausted: bool

    @property
    def hold(self) -> Decimal:
        return self.reserved - self.committed


def settle(
    *,
    cost: Decimal,
    reserved: Decimal,
    committed: Decimal,
    available: Decimal,
    unit_amount: Decimal,
    closing: bool = False,
) -> Settlement:
    """Commit a session's usage (its cumulative ``cost``) and top its reservation up.

    ``reserved``/``committed`` are the session's figures before, ``available`` the account's
    unheld funds before (this session's hold excluded), ``unit_amount`` the price of one quota
    unit now. Charged: what is due (``cost - committed``), at most the session's hold plus
    ``available``. Then, unless ``closing`` (Stop: the hold is released, not topped up), the
    hold is topped up to one unit from what is still available. The session is exhausted when
    some cost is left unbilled, or when usage costs money now and no hold is left.
    """
    for name, value in (("cost", cost), ("reserved", reserved), ("committed", committed)):
        if _check_money(value, name) < 0:
            raise QuotaError(f"{name}: expected at least 0, got {value}")
    if reserved < committed:
        raise QuotaError(f"reserved {reserved} is below committed {committed}")
    _check_money(available, "available")
    if _check_money(unit_amount, "unit_amount") < 0:
        raise QuotaError(f"unit_amount: expected at least 0, got {unit_amount}")
    hold = reserved - committed
    due = max(_ZERO, cost - committed)
    charge = min(due, hold + max(_ZERO, available))
    committed_after = committed + charge
    reserved_after = max(reserved, committed_after)  # beyond the hold, the charge took free funds
    available_after = available - max(_ZERO, charge - hold)
    unbilled = due - charge
    if not closing:
        reserved_after += grant(max(_ZERO, unit_amount - (reserved_after - committed_after)), available_after)
    starved = not closing and unit_amount > 0 and reserved_after == committed_after
    exhausted = unbilled > 0 or starved
    return Settlement(charge, reserved_after, committed_after, unbilled, exhausted)
