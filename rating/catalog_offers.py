"""Reading ``[[bundles]]`` and ``[[promotions]]`` of a catalog: what is sold on top of tariffs.

Part of :func:`rating.catalog.load_catalog` (same rules: every problem collected with its key
path, nothing built when anything is wrong). Both refer to tariffs by code; those references are
checked here against the tariffs of the same file, with a close-match hint for typos.

Rules that span entities, stated where they are checked: a bundle has at least two distinct
members, none of them ``one_time``; every member version in effect during a bundle version has
the bundle's currency and a recurring fee, all with the same billing period. A promotion with a
fixed-price phase names its currency, and every eligible tariff version in effect while it is
available uses it; a phase counted in ``periods`` needs eligible versions with a billing period.
Only the last phase may be open-ended.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from rating.bundle import Bundle, BundlePricing, BundleVersion, DiscountKind, DiscountScope
from rating.catalog_reader import (
    CURRENCY_EXPECTED,
    MAX_VERSION,
    Table,
    choices_text,
    read_versions,
    unique_code,
)
from rating.periods import Period
from rating.phases import Duration, DurationUnit, Phase, PhaseKind, PriceKind, PriceOverride, Promotion
from rating.tariff import ServiceKind, Tariff

__all__ = ["References", "read_bundle", "read_promotion"]

MAX_PHASE_LENGTH = 10_000
"""Longest phase, in any unit (10,000 days is 27 years: anything longer is a typo)."""


@dataclass(frozen=True)
class References:
    """What bundles and promotions may refer to: every code written, and the valid tariffs."""

    codes: set[str]
    tariffs: dict[str, Tariff]

    def check(self, table: Table, name: str, codes: Sequence[str]) -> list[Tariff]:
        """Report codes that name no tariff; return the valid tariffs they name."""
        found = []
        for index, code in enumerate(codes):
            if code not in self.codes:
                close = difflib.get_close_matches(code, sorted(self.codes), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                table.item_error(name, index, f'unknown tariff "{code}"{hint}')
            elif code in self.tariffs:
                found.append(self.tariffs[code])
        return found


def read_bundle(table: Table, seen: dict[str, str], refs: References) -> Bundle | None:
    """One ``[[bundles]]`` table; ``seen`` collects codes across the array to refuse duplicates."""
    code = table.code()
    unique_code(table, code, seen, "bundle")
    name = table.text("name")
    version_tables = table.tables("versions", required=True, minimum=1) or []
    versions = read_versions(version_tables, lambda t: _bundle_version(t, refs))
    if versions is not None:
        for index, version in enumerate(versions):
            until = versions[index + 1].effective_from if index + 1 < len(versions) else None
            _check_members(version_tables[index], version, until, refs)
    if not table.clean() or code is None or name is None or versions is None:
        return None
    return Bundle(code=code, name=name, versions=versions)


def _bundle_version(table: Table, refs: References) -> BundleVersion | None:
    number = table.integer("version", low=1, high=MAX_VERSION)
    effective_from = table.day("effective_from")
    currency = table.currency()
    members = table.codes("members", minimum=2)
    if members is not None:
        refs.check(table, "members", members)
    pricing = _bundle_pricing(table)
    if not table.clean():
        return None
    assert number is not None and effective_from is not None and currency is not None
    assert members is not None and pricing is not None
    return BundleVersion(number, effective_from, currency, members, pricing)


def _bundle_pricing(table: Table) -> BundlePricing | None:
    values = {
        DiscountKind.BUNDLE_PRICE: table.amount("bundle_price", required=False),
        DiscountKind.PERCENT_OFF: table.percent("percent_off", required=False),
        DiscountKind.AMOUNT_OFF: table.amount("amount_off", required=False),
    }
    scope = table.choice("applies_to", DiscountScope, required=False)
    given = [kind for kind in DiscountKind if kind.value in table.raw]
    if len(given) != 1:
        table.error(
            "bundle_price",
            "set exactly one of bundle_price, percent_off or amount_off"
            + (f", not {' and '.join(given)}" if given else ""),
        )
        return None
    kind = given[0]
    if kind is DiscountKind.BUNDLE_PRICE:
        if "applies_to" in table.raw:
            table.error("applies_to", "a bundle_price is for the whole bundle; remove applies_to")
        scope = DiscountScope.TOTAL
    elif "applies_to" not in table.raw:
        table.error("applies_to", f"required with {kind}; expected one of {choices_text(DiscountScope)}")
    value = values[kind]
    if value is None or scope is None:
        return None
    return BundlePricing(kind, value, scope)


def _check_members(table: Table, version: BundleVersion, until: date | None, refs: References) -> None:
    """Members are recurring services in the bundle's currency, all with one billing period."""
    periods: set[Period] = set()
    for index, code in enumerate(version.members):
        tariff = refs.tariffs.get(code)
        if tariff is None:
            continue
        if tariff.kind is ServiceKind.ONE_TIME:
            table.item_error(
                "members", index, f'"{code}" is a one_time tariff; bundles sell recurring services'
            )
            continue
        for member in tariff.versions_during(version.effective_from, until):
            if member.currency != version.currency:
                table.item_error(
                    "members",
                    index,
                    f'"{code}" version {member.number} is in {member.currency},'
                    f" the bundle in {version.currency}",
                )
            if member.recurring is None:
                table.item_error(
                    "members", index, f'"{code}" version {member.number} has no recurring fee to bundle'
                )
            else:
                periods.add(member.recurring.period)
    if len(periods) > 1:
        table.error("members", f"members are billed {', '.join(sorted(periods))}; a bundle needs one period")


def read_promotion(table: Table, seen: dict[str, str], refs: References) -> Promotion | None:
    """One ``[[promotions]]`` table, checked against the tariffs it is for."""
    code = table.code()
    unique_code(table, code, seen, "promotion")
    name = table.text("name")
    tariff_codes = table.codes("tariffs", minimum=1)
    eligible = refs.check(table, "tariffs", tariff_codes) if tariff_codes is not None else []
    available_from = table.day("available_from", required=False)
    available_until = table.day("available_until", required=False)
    currency = table.currency(required=False)
    phase_tables = table.tables("phases", required=True, minimum=1) or []
    phases = [_phase(sub, last=index == len(phase_tables) - 1) for index, sub in enumerate(phase_tables)]
    if available_from and available_until and available_until <= available_from:
        table.error("available_until", f"{available_until} is not after available_from {available_from}")
    fixed = any(p is not None and p.price.kind is PriceKind.FIXED for p in phases)
    if fixed and "currency" not in table.raw:
        table.error("currency", "required when a phase has a fixed price; expected " + CURRENCY_EXPECTED)
    by_periods = any(p is not None and p.duration and p.duration.unit is DurationUnit.PERIODS for p in phases)
    start = available_from or date.min
    for tariff in eligible:
        for version in tariff.versions_during(start, available_until):
            if fixed and currency is not None and version.currency != currency:
                table.error(
                    "currency",
                    f'{currency}, but eligible tariff "{tariff.code}" version {version.number}'
                    f" is in {version.currency}",
                )
            if by_periods and version.recurring is None:
                table.error(
                    "tariffs",
                    f'"{tariff.code}" version {version.number} has no billing period, and a phase'
                    " is counted in periods",
                )
    if not table.clean():
        return None
    assert code is not None and name is not None and tariff_codes is not None
    return Promotion(
        code=code,
        name=name,
        tariffs=tariff_codes,
        phases=tuple(p for p in phases if p is not None),
        available_from=available_from,
        available_until=available_until,
        currency=currency,
    )


def _phase(table: Table, *, last: bool) -> Phase | None:
    kind = table.choice("kind", PhaseKind)
    lengths = {
        unit: table.integer(unit.value, low=1, high=MAX_PHASE_LENGTH, required=False) for unit in DurationUnit
    }
    free = table.flag("free", required=False)
    percent_off = table.percent("percent_off", required=False)
    price = table.amount("price", required=False)
    given = [unit for unit in DurationUnit if unit.value in table.raw]
    if len(given) > 1:
        table.error(given[1].value, f"give one length, not both {given[0]} and {given[1]}")
    elif not given and not last:
        table.error("days", "only the last phase may be open-ended; give days, months, years or periods")
    prices = [name for name in ("free", "percent_off", "price") if name in table.raw]
    if len(prices) > 1:
        table.error(prices[1], f"give one price change, not both {prices[0]} and {prices[1]}")
    if free is False:
        table.error("free", "write free = true, or leave it out for the list price")
    if not table.clean():
        return None
    assert kind is not None
    duration = None
    if given:
        count = lengths[given[0]]
        assert count is not None
        duration = Duration(count, given[0])
    if free:
        override = PriceOverride(PriceKind.FREE)
    elif percent_off is not None:
        override = PriceOverride(PriceKind.PERCENT_OFF, percent_off)
    elif price is not None:
        override = PriceOverride(PriceKind.FIXED, price)
    else:
        override = PriceOverride(PriceKind.LIST)
    return Phase(kind, duration, override)
