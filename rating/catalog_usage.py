"""The ``usage`` table of a tariff version in the catalog: time bands, prices and the allowance.

Turns the TOML of a version's usage pricing into a :class:`rating.usage_plan.UsagePlan`, and the
version's ``quota`` (what one prepaid reservation pays for) into a :class:`rating.quota.QuotaUnit`
(:func:`read_quota`). The shape of
every key is checked here, each problem reported with its key path; the rules that tie prices,
bands and the allowance together (every priced class priced both ways, one price per instant,
overage prices for exactly the counted traffic) are :mod:`rating.usage`'s own, checked when the
plan is built and reported against ``...usage`` with that module's words, so they are written
once. Volumes are written as ``"100 GB"`` (or a plain integer of bytes), weekdays as names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from rating.allowance import Allowance, Block, Overage, OverageCharge, Throttle
from rating.catalog_reader import Table
from rating.periods import BillingMode
from rating.quota import QuotaError, QuotaUnit
from rating.time_bands import TimeBand
from rating.traffic import INTERNET, Direction
from rating.usage_checks import UsageError
from rating.usage_plan import UsagePlan
from rating.usage_prices import TimePrice, UsagePrice

__all__ = ["BYTE_UNITS", "WEEKDAYS", "format_bytes", "parse_bytes", "read_quota", "read_usage"]

BYTE_UNITS: dict[str, int] = {
    "TB": 10**12,
    "TiB": 1 << 40,
    "GB": 10**9,
    "GiB": 1 << 30,
    "MB": 10**6,
    "MiB": 1 << 20,
    "kB": 10**3,
    "KiB": 1 << 10,
    "B": 1,
}
"""Volume units an operator may write (decimal SI and binary IEC), largest first."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names in ``date.weekday()`` order (Monday 0)."""

OVERAGE_POLICIES = ("charge", "throttle", "block")
MAX_BYTES = 10**18
MAX_QUOTA_SECONDS = 86_400
QUOTA_EXPECTED = 'a table such as { volume = "100 MB" } or { volume = "100 MB", seconds = 600 }'
QUOTA_SECONDS_EXPECTED = f"an integer from 1 to {MAX_QUOTA_SECONDS} (seconds)"
_VOLUME = re.compile(r"\s*(?P<count>[0-9]+(?:_[0-9]+)*)?\s*(?P<unit>[A-Za-z]+)\s*")
_VOLUME_EXPECTED = (
    'a volume such as "100 GB", "1 MiB" or an integer of bytes (units: ' + ", ".join(BYTE_UNITS) + ")"
)
T = TypeVar("T")


def parse_bytes(raw: object, *, minimum: int = 0) -> int | None:
    """Bytes from an integer or ``"<count> <unit>"`` (``"GB"`` alone is one GB); ``None`` if invalid."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and (match := _VOLUME.fullmatch(raw)) and match["unit"] in BYTE_UNITS:
        value = int(match["count"] or "1") * BYTE_UNITS[match["unit"]]
    if value is None or not minimum <= value <= MAX_BYTES:
        return None
    return value


def format_bytes(value: int) -> str | int:
    """The shortest exact way to write ``value`` bytes: ``"GB"``, ``"100 GB"`` or the integer."""
    for name, size in BYTE_UNITS.items():
        if value and size > 1 and value % size == 0:
            count = value // size
            return name if count == 1 else f"{count} {name}"
    return value


def read_usage(table: Table) -> UsagePlan | None:
    """The version's usage plan from the ``usage`` table; ``None`` after reporting problems."""
    default_class = table.parsed(
        "default_class",
        _default_class,
        'a traffic class name such as "internet", or false to refuse traffic of unpriced classes',
        required=False,
    )
    bands = _each(table, "bands", _band)
    prices = _each(table, "prices", _volume_price)
    time_prices = _each(table, "time_prices", _time_price)
    allowance_table = table.table("allowance", expected="a table ([...usage.allowance])")
    allowance = _allowance(allowance_table) if allowance_table is not None else None
    if "prices" not in table.raw and "time_prices" not in table.raw:
        table.error("prices", "a usage table needs [[...usage.prices]], [[...usage.time_prices]] or both")
    if not table.clean():
        return None
    assert bands is not None and prices is not None and time_prices is not None
    try:
        return UsagePlan(
            bands=bands,
            prices=prices,
            time_prices=time_prices,
            allowance=allowance,
            default_class=INTERNET if "default_class" not in table.raw else default_class or None,
        )
    except UsageError as exc:
        table.problems.add(table.position, table.path, str(exc))
        return None


def read_quota(version: Table, billing_mode: BillingMode | None) -> QuotaUnit | None:
    """The version's prepaid quota unit from its ``quota`` table; ``None`` if absent (or wrong).

    ``volume`` (either direction) is required when the version's usage has volume prices and
    refused when it has none; ``seconds`` (session time) the same with time prices. A part of
    the unit counts only if it is priced, so a key that could not count is a mistake, and a
    priced part left out would reserve nothing for it. The table belongs to a prepaid version
    with usage prices: on any other it would be ignored, so it is refused there.
    """
    table = version.table("quota", expected=QUOTA_EXPECTED)
    if table is None:
        return None
    volume = table.parsed("volume", lambda raw: parse_bytes(raw, minimum=1), _VOLUME_EXPECTED, required=False)
    seconds = table.integer("seconds", low=1, high=MAX_QUOTA_SECONDS, required=False, unit="seconds")
    usage = version.raw.get("usage")
    if not isinstance(usage, dict):
        version.error("quota", "only with usage prices ([tariffs.versions.usage]); remove it")
    elif billing_mode is BillingMode.POSTPAID:
        version.error(
            "quota", 'only for billing_mode = "prepaid" (postpaid usage reserves nothing); remove it'
        )
    else:
        volume_prices = "volume prices ([[...usage.prices]])"
        time_prices = "time prices ([[...usage.time_prices]])"
        _quota_part(table, "volume", volume_prices, bool(usage.get("prices")), _VOLUME_EXPECTED)
        _quota_part(table, "seconds", time_prices, bool(usage.get("time_prices")), QUOTA_SECONDS_EXPECTED)
    if not table.clean():
        return None
    try:
        return QuotaUnit(octets=volume or 0, seconds=seconds or 0)
    except QuotaError:
        version.error("quota", f"expected volume, seconds or both: {QUOTA_EXPECTED}")
        return None


def _quota_part(table: Table, name: str, prices: str, priced: bool, expected: str) -> None:
    """Require ``name`` in the quota table when the usage has ``prices``; refuse it otherwise."""
    if priced and name not in table.raw:
        table.error(name, f"required: the usage has {prices}; expected {expected}")
    elif not priced and name in table.raw:
        table.error(name, f"the usage has no {prices}, so it would never count; remove it")


def _default_class(raw: object) -> str | bool | None:
    if raw is False:
        return False
    if isinstance(raw, str) and raw.strip() == raw and raw:
        return raw
    return None


def _each(table: Table, name: str, read: Callable[[Table], T | None]) -> tuple[T, ...] | None:
    tables = table.tables(name)
    if tables is None:
        return None
    items = [read(sub) for sub in tables]
    if any(item is None for item in items):
        return None
    return tuple(item for item in items if item is not None)


def _built(table: Table, build: Callable[..., T], **values: Any) -> T | None:
    """Build a usage value, reporting its own check (a :class:`UsageError`) against the table."""
    if not table.clean():
        return None
    try:
        return build(**values)
    except UsageError as exc:
        table.problems.add(table.position, table.path, str(exc))
        return None


def _band(table: Table) -> TimeBand | None:
    name = table.text("name")
    start = table.clock("start")
    end = table.clock("end")
    days = table.codes("days", required=False, minimum=1, choices=WEEKDAYS)
    weekdays = None if days is None else frozenset(WEEKDAYS.index(day) for day in days)
    return _built(table, TimeBand, name=name, start=start, end=end, days=weekdays)


def _volume_price(table: Table) -> UsagePrice | None:
    traffic_class = table.text("traffic_class", required=False)
    direction = table.choice("direction", Direction)
    band = table.text("band", required=False)
    price = table.amount("price", required=False)
    unit = table.parsed("unit", lambda raw: parse_bytes(raw, minimum=1), _VOLUME_EXPECTED, required=False)
    increment = table.integer("increment_units", low=1, high=1_000_000, required=False)
    free = table.flag("free", required=False)
    if "price" not in table.raw and not free:
        table.error("price", "required unless free = true; expected a decimal amount such as 25.00")
    values: dict[str, Any] = {"direction": direction, "band": band}
    _put(values, traffic_class=traffic_class, price=price, unit_bytes=unit, increment_units=increment)
    _put(values, free=free)
    return _built(table, UsagePrice, **values)


def _time_price(table: Table) -> TimePrice | None:
    band = table.text("band", required=False)
    price = table.amount("price_per_minute", required=False)
    increment = table.integer("increment_seconds", low=1, high=86_400, required=False, unit="seconds")
    free = table.flag("free", required=False)
    if "price_per_minute" not in table.raw and not free:
        table.error("price_per_minute", "required unless free = true; expected a decimal amount such as 0.01")
    values: dict[str, Any] = {"band": band}
    _put(values, price_per_minute=price, increment_seconds=increment, free=free)
    return _built(table, TimePrice, **values)


def _put(values: dict[str, Any], **optional: Any) -> None:
    """Add the optional values that were given, so the model's defaults apply to the others."""
    values.update({key: value for key, value in optional.items() if value is not None})


def _allowance(table: Table) -> Allowance | None:
    included = table.parsed("included", parse_bytes, _VOLUME_EXPECTED)
    classes = table.codes("classes", required=False, minimum=1)
    directions = table.codes("directions", required=False, minimum=1, choices=tuple(Direction))
    policy = table.parsed(
        "overage",
        lambda raw: raw if raw in OVERAGE_POLICIES else None,
        "one of " + ", ".join(f'"{p}"' for p in OVERAGE_POLICIES),
    )
    profile = table.text("throttle_profile", required=False)
    overage_prices = _each(table, "overage_prices", _volume_price)
    overage: Overage | None = None
    if policy == "throttle":
        if "throttle_profile" not in table.raw:
            table.error("throttle_profile", 'required with overage = "throttle"; expected a profile name')
        overage = _overage(table, "throttle_profile", Throttle, profile) if profile is not None else None
    elif "throttle_profile" in table.raw and policy is not None:
        table.error("throttle_profile", f'only with overage = "throttle", not "{policy}"; remove it')
    if policy == "charge":
        if not table.raw.get("overage_prices"):
            table.error("overage_prices", 'required with overage = "charge": [[...allowance.overage_prices]]')
        overage = _overage(table, "overage_prices", OverageCharge, overage_prices) if overage_prices else None
    elif "overage_prices" in table.raw and policy is not None:
        table.error("overage_prices", f'only with overage = "charge", not "{policy}"; remove them')
    if policy == "block":
        overage = Block()
    values: dict[str, Any] = {"included_bytes": included, "overage": overage}
    _put(values, classes=None if classes is None else frozenset(classes))
    _put(values, directions=None if directions is None else frozenset(Direction(d) for d in directions))
    return _built(table, Allowance, **values)


def _overage(table: Table, name: str, build: Callable[[Any], Overage], value: Any) -> Overage | None:
    try:
        return build(value)
    except UsageError as exc:
        table.error(name, str(exc))
        return None
