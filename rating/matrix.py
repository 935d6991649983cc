"""The tariff matrix: which price applies to a subscriber category and region on a date.

Resolution is deterministic and documented here, once:

1. The version is the tariff's latest version effective on or before ``as_of``.
2. A cell of that version matches when its category (if it names one) equals the subscriber's,
   its region (if it names one) equals the subscriber's, and ``as_of`` lies in
   ``[effective_from, effective_until)`` (defaults: the version's date, open-ended).
3. Among matching cells the most specific wins: category and region > category > region.
   A subscriber without a category (or region) matches only cells that do not name one.
4. Among matching cells equally specific, the one with the latest start wins (a summer
   price from June 1 beats the year-round cell from January 1 while it lasts).
5. No matching cell: the version's own prices (``base``).

Two cells of a version with the same category, region and start would tie: that is refused
when the catalog is imported (:func:`cell_conflicts`), never settled at run time. Category and
region names are operator dictionaries; the database layer checks that they exist.

The winning cell replaces the amounts it names (recurring fee, one-time fees); everything else
comes from the version. :class:`ResolvedPrice` says which version and which cell produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING

from rating.tariff import OneTimeFee, PriceCell, RecurringFee, Tariff, TariffVersion, version_fingerprint

if TYPE_CHECKING:
    from rating.catalog import Catalog

__all__ = [
    "MatchLevel",
    "ResolvedPrice",
    "cell_conflicts",
    "matching_cell",
    "resolve_price",
    "resolve_tariff_price",
]


class MatchLevel(StrEnum):
    """Which kind of matrix cell produced a price, most specific first."""

    CATEGORY_AND_REGION = "category_and_region"
    CATEGORY = "category"
    REGION = "region"
    BASE = "base"

    @classmethod
    def of(cls, cell: PriceCell | None) -> MatchLevel:
        """The level of ``cell`` (``BASE`` for no cell)."""
        if cell is None or (cell.category is None and cell.region is None):
            return cls.BASE
        if cell.category is not None and cell.region is not None:
            return cls.CATEGORY_AND_REGION
        return cls.CATEGORY if cell.category is not None else cls.REGION

    @property
    def rank(self) -> int:
        """Higher wins: 3 for category and region ... 0 for base."""
        return {"category_and_region": 3, "category": 2, "region": 1, "base": 0}[self.value]


@dataclass(frozen=True)
class ResolvedPrice:
    """The prices of a tariff for one subscriber on one day, and where they came from.

    ``cell_index`` is the winning cell's position in ``version.prices`` (``None`` for base);
    ``fingerprint`` identifies the version's content (see :func:`rating.tariff.version_fingerprint`).
    """

    tariff_code: str
    version: TariffVersion
    match: MatchLevel
    cell: PriceCell | None
    cell_index: int | None
    recurring: RecurringFee | None
    one_time_fees: tuple[OneTimeFee, ...]
    fingerprint: str

    @property
    def version_number(self) -> int:
        return self.version.number

    @property
    def currency(self) -> str:
        return self.version.currency


def matching_cell(
    version: TariffVersion, as_of: date, category: str | None, region: str | None
) -> tuple[int, PriceCell] | None:
    """The winning cell of ``version`` (index and cell), or ``None`` for the base prices."""
    best: tuple[int, date, int, PriceCell] | None = None
    for index, cell in enumerate(version.prices):
        if cell.category is not None and cell.category != category:
            continue
        if cell.region is not None and cell.region != region:
            continue
        start = cell.starts(version)
        if as_of < start or (cell.effective_until is not None and as_of >= cell.effective_until):
            continue
        key = (MatchLevel.of(cell).rank, start)
        if best is None or key > best[:2]:
            best = (*key, index, cell)
    return None if best is None else (best[2], best[3])


def resolve_price(
    catalog: Catalog, tariff_code: str, as_of: date, category: str | None, region: str | None
) -> ResolvedPrice:
    """The price of ``tariff_code`` on ``as_of`` for a subscriber of ``category`` in ``region``.

    Raises ``KeyError`` for an unknown tariff and :class:`rating.tariff.VersionNotFound` when no
    version is in effect yet.
    """
    tariff = catalog.tariff(tariff_code)
    return resolve_tariff_price(tariff, as_of, category, region, fingerprint=catalog.fingerprint)


def resolve_tariff_price(
    tariff: Tariff,
    as_of: date,
    category: str | None,
    region: str | None,
    *,
    fingerprint: Callable[[Tariff, TariffVersion], str] = version_fingerprint,
) -> ResolvedPrice:
    """:func:`resolve_price` for a tariff already at hand (``fingerprint`` may be a cached one)."""
    version = tariff.version_at(as_of)
    found = matching_cell(version, as_of, category, region)
    index, cell = found if found is not None else (None, None)
    recurring = version.recurring
    fees = version.one_time_fees
    if cell is not None:
        if cell.fee is not None and recurring is not None:
            recurring = RecurringFee(cell.fee, recurring.period)
        overrides = {o.code: o.amount for o in cell.one_time_fees}
        fees = tuple(
            OneTimeFee(f.code, f.name, overrides[f.code]) if f.code in overrides else f for f in fees
        )
    return ResolvedPrice(
        tariff_code=tariff.code,
        version=version,
        match=MatchLevel.of(cell),
        cell=cell,
        cell_index=index,
        recurring=recurring,
        one_time_fees=fees,
        fingerprint=fingerprint(tariff, version),
    )


def cell_conflicts(version: TariffVersion) -> list[tuple[int, int]]:
    """Pairs ``(earlier, later)`` of cell indices that would tie: same category, region, start."""
    seen: dict[tuple[str | None, str | None, date], int] = {}
    conflicts = []
    for index, cell in enumerate(version.prices):
        key = (cell.category, cell.region, cell.starts(version))
        if key in seen:
            conflicts.append((seen[key], index))
        else:
            seen[key] = index
    return conflicts
