"""The tariff model: what is sold (service kinds) and its prices and rules as dated versions.

A :class:`Tariff` (code, name, service kind) has :class:`TariffVersion` s, each effective from
a date until the next one (Kill Bill's ``effectiveDate``, CGRateS' activation time). A version
is immutable and identified by ``(tariff code, version number)``; a charge records the version
that produced it. :func:`version_fingerprint` is the sha256 of a canonical form of a version's
content, so the persistence layer can refuse an import that changes a version already used
(same code and number, different fingerprint) and accept a re-import of the same file.

A version carries everything needed to price the service: the recurring fee and its period,
named one-time fees, billing mode, proration rule, speed profile, usage prices (traffic classes,
directions, time bands, allowance, overage; see :mod:`rating.usage`), the prepaid quota unit
(how much usage one reservation pays for; see :mod:`rating.quota`), the rounding rule and the
currency, plus the price matrix cells (:class:`PriceCell`) that vary the price by subscriber
category and region (resolved by :mod:`rating.matrix`).

Plain frozen dataclasses; no I/O, no clock. Loading and validation live in :mod:`rating.catalog`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from rating.money import RoundingRule
from rating.periods import BillingMode, Period, ProrationRule
from rating.quota import QuotaUnit
from rating.usage_plan import UsagePlan

__all__ = [
    "FINGERPRINT_FORMAT",
    "AddonKind",
    "FeeOverride",
    "OneTimeFee",
    "PriceCell",
    "RecurringFee",
    "ServiceKind",
    "Tariff",
    "TariffVersion",
    "TvLineup",
    "VersionNotFound",
    "canonical",
    "version_fingerprint",
]

FINGERPRINT_FORMAT = 1
"""Bumped if the canonical form ever changes, so old and new fingerprints never collide."""


class VersionNotFound(LookupError):
    """No version of a tariff is in effect on the date asked, or no version has that number."""


class ServiceKind(StrEnum):
    """What kind of service a tariff sells (revenue is booked per kind)."""

    INTERNET = "internet"
    TV = "tv"
    ADDON = "addon"
    """Sold on top of another service: static IP, speed boost, extra traffic, CPE rental."""
    ONE_TIME = "one_time"
    """Charged once, no recurring fee: installation, CPE sale, a visit."""


class AddonKind(StrEnum):
    """What an add-on does, so provisioning knows what to change on the network."""

    STATIC_IP = "static_ip"
    SPEED_BOOST = "speed_boost"
    """Turbo: a faster speed profile (the version's ``speed_profile``) while active."""
    EXTRA_TRAFFIC = "extra_traffic"
    """More included traffic (the version's usage allowance)."""
    CPE_RENTAL = "cpe_rental"
    OTHER = "other"


@dataclass(frozen=True)
class RecurringFee:
    """``amount`` charged every ``period`` (in advance or in arrears: see the billing mode)."""

    amount: Decimal
    period: Period


@dataclass(frozen=True)
class OneTimeFee:
    """A named fee charged once, when the service is ordered (``installation``, ``cpe``)."""

    code: str
    name: str
    amount: Decimal


@dataclass(frozen=True)
class FeeOverride:
    """A matrix cell's amount for the one-time fee ``code`` of its version."""

    code: str
    amount: Decimal


@dataclass(frozen=True)
class PriceCell:
    """One cell of a version's price matrix: a price for a category and/or a region.

    ``effective_from`` (default: the version's date) and ``effective_until`` (exclusive,
    default: open) bound it within the version. ``fee`` replaces the recurring amount, each
    :class:`FeeOverride` one one-time fee; what the cell does not name comes from the version.
    """

    category: str | None = None
    region: str | None = None
    effective_from: date | None = None
    effective_until: date | None = None
    fee: Decimal | None = None
    one_time_fees: tuple[FeeOverride, ...] = ()

    def starts(self, version: TariffVersion) -> date:
        """The first day the cell applies: its own ``effective_from`` or the version's."""
        return self.effective_from or version.effective_from


@dataclass(frozen=True)
class TvLineup:
    """What a TV tariff entitles to: conditional-access packages and a-la-carte channels."""

    packages: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class TariffVersion:
    """The prices and rules of a tariff from ``effective_from`` until the next version.

    ``recurring`` is ``None`` for one-time services and purely metered tariffs. ``usage`` is the
    usage pricing (``None`` when usage is free or not metered). ``quota`` is what one prepaid
    reservation pays for (``None``: not set, :data:`rating.quota.DEFAULT_QUOTA_UNIT` applies);
    like every field it is part of the fingerprint, left out of it while ``None``.
    """

    number: int
    effective_from: date
    currency: str
    billing_mode: BillingMode
    recurring: RecurringFee | None = None
    proration: ProrationRule = ProrationRule.ACTUAL_DAYS
    one_time_fees: tuple[OneTimeFee, ...] = ()
    speed_profile: str | None = None
    rounding: RoundingRule = field(default_factory=RoundingRule)
    usage: UsagePlan | None = None
    tv: TvLineup | None = None
    prices: tuple[PriceCell, ...] = ()
    quota: QuotaUnit | None = None

    def one_time_fee(self, code: str) -> OneTimeFee:
        """The one-time fee named ``code`` (``KeyError`` if the version has none such)."""
        for fee in self.one_time_fees:
            if fee.code == code:
                return fee
        raise KeyError(code)


@dataclass(frozen=True)
class Tariff:
    """A product: ``code`` (stable identity), display ``name``, kind and its versions.

    Versions are in increasing number and effective date (the catalog loader checks it).
    ``addon`` says what an add-on does and is set exactly when ``kind`` is ``addon``.
    """

    code: str
    name: str
    kind: ServiceKind
    versions: tuple[TariffVersion, ...]
    addon: AddonKind | None = None

    def version_at(self, as_of: date) -> TariffVersion:
        """The version in effect on ``as_of``: the latest effective on or before it."""
        current = [v for v in self.versions if v.effective_from <= as_of]
        if not current:
            raise VersionNotFound(f"tariff {self.code} has no version effective on {as_of}")
        return max(current, key=lambda v: v.effective_from)

    def version(self, number: int) -> TariffVersion:
        """The version numbered ``number``."""
        for version in self.versions:
            if version.number == number:
                return version
        raise VersionNotFound(f"tariff {self.code} has no version {number}")

    def version_until(self, version: TariffVersion) -> date | None:
        """The day the next version takes over from ``version`` (``None``: still current)."""
        later = [v.effective_from for v in self.versions if v.effective_from > version.effective_from]
        return min(later, default=None)

    def versions_during(self, start: date, end: date | None) -> tuple[TariffVersion, ...]:
        """The versions in effect on some day of ``[start, end)`` (``end`` ``None``: open)."""
        return tuple(
            version
            for version in self.versions
            if (end is None or version.effective_from < end)
            and ((until := self.version_until(version)) is None or until > start)
        )

    def fingerprint(self, number: int) -> str:
        """:func:`version_fingerprint` of version ``number``."""
        return version_fingerprint(self, self.version(number))


def version_fingerprint(tariff: Tariff, version: TariffVersion) -> str:
    """sha256 (hex) of the canonical form of ``version`` of ``tariff``.

    Covers the tariff's code, kind and add-on kind and every field of the version, so any
    change that could change a price changes it; not the display name, which may be corrected.
    Equal values give equal fingerprints however they were written (``25.0`` and ``25.00``).
    """
    document = {
        "format": FINGERPRINT_FORMAT,
        "tariff": tariff.code,
        "kind": tariff.kind.value,
        "addon": tariff.addon.value if tariff.addon else None,
        "version": canonical(version),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def canonical(value: object) -> object:
    """``value`` as JSON-ready data that is equal exactly when the values are equal.

    Dataclasses become objects keyed by field name, leaving out fields equal to their default
    (so adding a field with a default to the model does not change existing fingerprints);
    enums become their value, decimals their shortest plain form (``25`` for ``25.00``), dates and
    times ISO text, tuples arrays, sets sorted arrays.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: canonical(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not _is_default(f, getattr(value, f.name))
        }
    if isinstance(value, Enum):
        return canonical(value.value)
    if isinstance(value, Decimal):
        return "0" if value == 0 else format(value.normalize(), "f")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [canonical(item) for item in value]
    if isinstance(value, frozenset | set):
        return sorted((canonical(item) for item in value), key=lambda c: json.dumps(c, sort_keys=True))
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def _is_default(spec: dataclasses.Field[Any], value: object) -> bool:
    if spec.default is not dataclasses.MISSING:
        return type(value) is type(spec.default) and value == spec.default
    if spec.default_factory is not dataclasses.MISSING:
        default = spec.default_factory()
        return type(value) is type(default) and value == default
    return False
