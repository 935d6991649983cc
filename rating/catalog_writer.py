"""Writing a catalog back as TOML: ``dump_catalog(c)`` such that ``load_catalog(dump_catalog(c)) == c``.

Two small steps. First the model is turned into the plain tables of the catalog file (the
mirror of the readers in ``catalog_tariffs``, ``catalog_offers`` and ``catalog_usage``), leaving
out keys whose value is the loader's default except the ones that decide money (currency,
period, rounding, units), which are always written. Then :func:`emit` writes those tables as
TOML: keys and inline values first, then sub-tables and arrays of tables with their full dotted
headers. :mod:`tomllib` only reads, and a TOML writer for this one document shape is short, so
no third-party writer is needed. Amounts are written as quoted decimals, never floats.
"""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from rating.allowance import Allowance, Block, OverageCharge, Throttle
from rating.bundle import Bundle, BundlePricing, BundleVersion, DiscountKind
from rating.catalog_usage import WEEKDAYS, format_bytes
from rating.phases import Phase, PriceKind, Promotion
from rating.quota import QuotaUnit
from rating.tariff import PriceCell, Tariff, TariffVersion
from rating.time_bands import TimeBand
from rating.traffic import INTERNET, Direction
from rating.usage_plan import UsagePlan
from rating.usage_prices import TimePrice, UsagePrice

if TYPE_CHECKING:
    from rating.catalog import Catalog

__all__ = ["Inline", "dump_catalog", "emit"]

HEADER = "# Tariff catalog (written by rating.catalog.dump_catalog; see conf/tariffs/example.toml)\n\n"


class Inline(dict[str, Any]):
    """A table written inline, ``{ places = 2, mode = "half_up" }``, not as a ``[section]``."""


def dump_catalog(catalog: Catalog) -> str:
    """The catalog as TOML text that :func:`rating.catalog.load_catalog` reads back equal."""
    document: dict[str, Any] = {
        "tariffs": [_tariff(t) for t in catalog.tariffs],
        "bundles": [_bundle(b) for b in catalog.bundles],
        "promotions": [_promotion(p) for p in catalog.promotions],
    }
    return HEADER + emit(document)


# --------------------------------------------------------------------------- model -> tables


def _tariff(tariff: Tariff) -> dict[str, Any]:
    table: dict[str, Any] = {"code": tariff.code, "name": tariff.name, "kind": tariff.kind}
    if tariff.addon is not None:
        table["addon"] = tariff.addon
    table["versions"] = [_version(v) for v in tariff.versions]
    return table


def _version(version: TariffVersion) -> dict[str, Any]:
    table: dict[str, Any] = {
        "version": version.number,
        "effective_from": version.effective_from,
        "currency": version.currency,
        "billing_mode": version.billing_mode,
    }
    if version.recurring is not None:
        table["fee"] = version.recurring.amount
        table["period"] = version.recurring.period
        table["proration"] = version.proration
    if version.speed_profile is not None:
        table["speed_profile"] = version.speed_profile
    table["rounding"] = Inline(places=version.rounding.places, mode=version.rounding.mode)
    if version.tv is not None:
        table["tv"] = Inline(packages=list(version.tv.packages), channels=list(version.tv.channels))
    table["one_time_fees"] = [
        {"code": f.code, "name": f.name, "amount": f.amount} for f in version.one_time_fees
    ]
    if version.quota is not None:
        table["quota"] = _quota(version.quota)
    if version.usage is not None:
        table["usage"] = _usage(version.usage)
    table["prices"] = [_cell(c) for c in version.prices]
    return table


def _quota(unit: QuotaUnit) -> Inline:
    quota = Inline()
    if unit.octets:
        quota["volume"] = format_bytes(unit.octets)
    if unit.seconds:
        quota["seconds"] = unit.seconds
    return quota


def _cell(cell: PriceCell) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name in ("category", "region", "effective_from", "effective_until", "fee"):
        if getattr(cell, name) is not None:
            table[name] = getattr(cell, name)
    if cell.one_time_fees:
        table["one_time_fees"] = Inline({o.code: o.amount for o in cell.one_time_fees})
    return table


def _usage(plan: UsagePlan) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if plan.default_class != INTERNET:
        table["default_class"] = plan.default_class if plan.default_class is not None else False
    table["bands"] = [_band(b) for b in plan.bands]
    table["prices"] = [_volume_price(p) for p in plan.prices]
    table["time_prices"] = [_time_price(p) for p in plan.time_prices]
    if plan.allowance is not None:
        table["allowance"] = _allowance(plan.allowance)
    return table


def _band(band: TimeBand) -> dict[str, Any]:
    table: dict[str, Any] = {"name": band.name, "start": band.start, "end": band.end}
    if band.days is not None:
        table["days"] = [WEEKDAYS[day] for day in sorted(band.days)]
    return table


def _volume_price(price: UsagePrice) -> dict[str, Any]:
    table: dict[str, Any] = {"traffic_class": price.traffic_class, "direction": price.direction}
    if price.band is not None:
        table["band"] = price.band
    if price.free:
        table["free"] = True
    else:
        table["price"] = price.price
    table["unit"] = format_bytes(price.unit_bytes)
    if price.increment_units != 1:
        table["increment_units"] = price.increment_units
    return table


def _time_price(price: TimePrice) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if price.band is not None:
        table["band"] = price.band
    if price.free:
        table["free"] = True
    else:
        table["price_per_minute"] = price.price_per_minute
    table["increment_seconds"] = price.increment_seconds
    return table


def _allowance(allowance: Allowance) -> dict[str, Any]:
    table: dict[str, Any] = {"included": format_bytes(allowance.included_bytes)}
    if allowance.classes != frozenset({INTERNET}):
        table["classes"] = sorted(allowance.classes)
    if allowance.directions != frozenset(Direction):
        table["directions"] = [d for d in Direction if d in allowance.directions]
    overage = allowance.overage
    if isinstance(overage, Throttle):
        table["overage"] = "throttle"
        table["throttle_profile"] = overage.speed_profile
    elif isinstance(overage, Block):
        table["overage"] = "block"
    else:
        assert isinstance(overage, OverageCharge)
        table["overage"] = "charge"
        table["overage_prices"] = [_volume_price(p) for p in overage.prices]
    return table


def _bundle(bundle: Bundle) -> dict[str, Any]:
    return {
        "code": bundle.code,
        "name": bundle.name,
        "versions": [_bundle_version(v) for v in bundle.versions],
    }


def _bundle_version(version: BundleVersion) -> dict[str, Any]:
    table: dict[str, Any] = {
        "version": version.number,
        "effective_from": version.effective_from,
        "currency": version.currency,
        "members": list(version.members),
    }
    return table | _pricing(version.pricing)


def _pricing(pricing: BundlePricing) -> dict[str, Any]:
    if pricing.kind is DiscountKind.BUNDLE_PRICE:
        return {"bundle_price": pricing.value}
    return {pricing.kind.value: pricing.value, "applies_to": pricing.scope}


def _promotion(promotion: Promotion) -> dict[str, Any]:
    table: dict[str, Any] = {
        "code": promotion.code,
        "name": promotion.name,
        "tariffs": list(promotion.tariffs),
    }
    for name in ("available_from", "available_until", "currency"):
        if getattr(promotion, name) is not None:
            table[name] = getattr(promotion, name)
    table["phases"] = [_phase(p) for p in promotion.phases]
    return table


def _phase(phase: Phase) -> dict[str, Any]:
    table: dict[str, Any] = {"kind": phase.kind}
    if phase.duration is not None:
        table[phase.duration.unit.value] = phase.duration.count
    override = phase.price
    if override.kind is PriceKind.FREE:
        table["free"] = True
    elif override.kind is PriceKind.PERCENT_OFF:
        table["percent_off"] = override.value
    elif override.kind is PriceKind.FIXED:
        table["price"] = override.value
    return table


# --------------------------------------------------------------------------- tables -> TOML

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def emit(document: dict[str, Any]) -> str:
    """TOML text of ``document``: nested dicts are tables, lists of dicts arrays of tables."""
    lines: list[str] = []
    _emit_table(lines, (), document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_section(value: object) -> bool:
    return isinstance(value, dict) and not isinstance(value, Inline)


def _is_section_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_section(item) for item in value)


def _emit_table(lines: list[str], path: tuple[str, ...], table: dict[str, Any]) -> None:
    for key, value in table.items():
        if not _is_section(value) and not _is_section_array(value) and value != []:  # [] = no tables
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        dotted = ".".join(_key(part) for part in (*path, key))
        if _is_section(value):
            lines += ["", f"[{dotted}]"]
            _emit_table(lines, (*path, key), value)
        elif _is_section_array(value):
            for item in value:
                lines += ["", f"[[{dotted}]]"]
                _emit_table(lines, (*path, key), item)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _value(value.value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _string(format(value, "f"))
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Inline):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
