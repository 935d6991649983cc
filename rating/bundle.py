"""Bundles: several tariffs sold together for a bundle price or with a discount.

A :class:`Bundle` has dated :class:`BundleVersion` s (like tariffs: immutable once used). A
version lists its member tariffs and one :class:`BundlePricing`:

- ``bundle_price``: the members together cost ``value``;
- ``percent_off``: ``value`` % off ``each`` member, or off the ``total``;
- ``amount_off``: ``value`` off ``each`` member, or off the ``total`` (never below zero).

:func:`price_bundle` turns the members' list prices into a :class:`BundleQuote` with one line per
member, because revenue is booked per service type: a bundle price or a discount off the total
is spread over the members in proportion to their list prices (:func:`allocate`). Everything is
exact ``Decimal`` at the storage precision (six fraction digits); the lines always add up to the
total to the last digit, and rounding to the currency's minor unit is left to the invoice line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from rating.matrix import resolve_price
from rating.money import STORAGE_PLACES, check_storable, from_micros, to_micros

if TYPE_CHECKING:
    from rating.catalog import Catalog

__all__ = [
    "Bundle",
    "BundleError",
    "BundleLine",
    "BundlePricing",
    "BundleQuote",
    "BundleVersion",
    "DiscountKind",
    "DiscountScope",
    "allocate",
    "price_bundle",
    "price_bundle_at",
]

_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)
_HUNDRED = Decimal(100)


class BundleError(ValueError):
    """A bundle cannot be priced as asked (no version yet, member prices missing or extra)."""


class DiscountKind(StrEnum):
    """How a bundle's price is set."""

    BUNDLE_PRICE = "bundle_price"
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"


class DiscountScope(StrEnum):
    """What a discount applies to: every member separately, or their sum."""

    EACH = "each"
    TOTAL = "total"


@dataclass(frozen=True)
class BundlePricing:
    """The bundle's price rule; a ``bundle_price`` always has scope ``total``."""

    kind: DiscountKind
    value: Decimal
    scope: DiscountScope = DiscountScope.TOTAL

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError(f"a bundle {self.kind} cannot be negative, got {self.value}")
        if self.kind is DiscountKind.PERCENT_OFF and not 0 < self.value <= _HUNDRED:
            raise ValueError(f"percent off must be in (0, 100], got {self.value}")
        if self.kind is DiscountKind.BUNDLE_PRICE and self.scope is not DiscountScope.TOTAL:
            raise ValueError("a bundle price applies to the total")


@dataclass(frozen=True)
class BundleVersion:
    """What the bundle is from ``effective_from`` until the next version: members and price."""

    number: int
    effective_from: date
    currency: str
    members: tuple[str, ...]
    pricing: BundlePricing


@dataclass(frozen=True)
class Bundle:
    """A bundle offer, identified by ``code``; versions in increasing effective date."""

    code: str
    name: str
    versions: tuple[BundleVersion, ...]

    def version_at(self, as_of: date) -> BundleVersion:
        """The version in effect on ``as_of`` (the latest one effective on or before it)."""
        current = [v for v in self.versions if v.effective_from <= as_of]
        if not current:
            raise BundleError(f"bundle {self.code} has no version effective on {as_of}")
        return current[-1]


@dataclass(frozen=True)
class BundleLine:
    """One member's share: its list price, the discount it gets, and what it costs (``net``)."""

    tariff_code: str
    list_price: Decimal
    discount: Decimal
    net: Decimal


@dataclass(frozen=True)
class BundleQuote:
    """A priced bundle: which version produced it, one line per member, and the sums."""

    bundle_code: str
    version: int
    currency: str
    lines: tuple[BundleLine, ...]
    list_total: Decimal
    discount_total: Decimal
    total: Decimal


def allocate(total: Decimal, weights: Sequence[Decimal]) -> tuple[Decimal, ...]:
    """Split ``total`` in proportion to ``weights``, exactly, at the storage precision.

    Largest remainder: every share is rounded down to a millionth, and the millionths left
    over go one each to the shares with the largest remainders (the earliest on a tie). The
    shares add up to ``total`` exactly; no share exceeds its weight when ``total`` does not
    exceed the sum of the weights. All-zero weights split equally.
    """
    if not weights:
        raise ValueError("cannot allocate over no weights")
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("allocation needs a non-negative total and non-negative weights")
    units = to_micros(total.quantize(_QUANTUM))
    micros = [to_micros(w.quantize(_QUANTUM)) for w in weights]
    if not any(micros):
        micros = [1] * len(micros)
    whole = sum(micros)
    shares = [units * m // whole for m in micros]
    remainders = [units * m % whole for m in micros]
    leftover = units - sum(shares)
    for index in sorted(range(len(micros)), key=lambda i: (-remainders[i], i))[:leftover]:
        shares[index] += 1
    return tuple(from_micros(share) for share in shares)


def price_bundle(bundle: Bundle, as_of: date, member_prices: Mapping[str, Decimal]) -> BundleQuote:
    """Price ``bundle`` on ``as_of`` given each member's list price (by tariff code).

    ``member_prices`` must name exactly the members of the version in effect (resolve them with
    the tariff matrix and apply phases first); amounts are in the bundle version's currency.
    """
    version = bundle.version_at(as_of)
    missing = [code for code in version.members if code not in member_prices]
    extra = sorted(set(member_prices) - set(version.members))
    if missing or extra:
        raise BundleError(
            f"bundle {bundle.code} version {version.number} has members {', '.join(version.members)};"
            f" prices missing for [{', '.join(missing)}], not members: [{', '.join(extra)}]"
        )
    prices = [check_storable(member_prices[code], field=f"price of {code}") for code in version.members]
    if any(p < 0 for p in prices):
        raise BundleError(f"bundle {bundle.code}: member list prices cannot be negative")
    discounts = _discounts(version.pricing, prices)
    lines = tuple(
        BundleLine(code, price, discount, price - discount)
        for code, price, discount in zip(version.members, prices, discounts, strict=True)
    )
    list_total = sum(prices, Decimal(0))
    discount_total = sum(discounts, Decimal(0))
    return BundleQuote(
        bundle_code=bundle.code,
        version=version.number,
        currency=version.currency,
        lines=lines,
        list_total=list_total,
        discount_total=discount_total,
        total=list_total - discount_total,
    )


def price_bundle_at(
    catalog: Catalog, bundle_code: str, as_of: date, category: str | None, region: str | None
) -> BundleQuote:
    """Price a bundle of ``catalog`` with its members' list prices from the tariff matrix.

    Each member's recurring fee is resolved for the subscriber's category and region on
    ``as_of`` (:func:`rating.matrix.resolve_price`); a member without a recurring fee, or in
    another currency than the bundle, is a :class:`BundleError` (the catalog loader refuses
    such bundles, so only a hand-built catalog gets here).
    """
    bundle = catalog.bundle(bundle_code)
    version = bundle.version_at(as_of)
    prices: dict[str, Decimal] = {}
    for code in version.members:
        resolved = resolve_price(catalog, code, as_of, category, region)
        if resolved.recurring is None or resolved.currency != version.currency:
            raise BundleError(
                f"bundle {bundle.code}: member {code} version {resolved.version_number} has"
                f" {'no recurring fee' if resolved.recurring is None else 'currency ' + resolved.currency}"
            )
        prices[code] = resolved.recurring.amount
    return price_bundle(bundle, as_of, prices)


def _discounts(pricing: BundlePricing, prices: list[Decimal]) -> list[Decimal]:
    """Each member's discount under ``pricing`` (negative if a bundle price exceeds the sum)."""
    value, total = pricing.value, sum(prices, Decimal(0))
    if pricing.kind is DiscountKind.BUNDLE_PRICE:
        nets = allocate(value, prices)
        return [price - net for price, net in zip(prices, nets, strict=True)]
    if pricing.kind is DiscountKind.PERCENT_OFF:
        if pricing.scope is DiscountScope.EACH:
            return [_percent_of(price, value) for price in prices]
        return list(allocate(_percent_of(total, value), prices))
    if pricing.scope is DiscountScope.EACH:
        return [min(value, price) for price in prices]
    return list(allocate(min(value, total), prices))


def _percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    """``percent`` % of ``amount`` at the storage precision, half up."""
    return (amount * percent / _HUNDRED).quantize(_QUANTUM, rounding=ROUND_HALF_UP)
