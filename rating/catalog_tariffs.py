"""Reading ``[[tariffs]]`` of a catalog: tariffs, their versions, fees, matrix cells, TV lineups.

Part of :func:`rating.catalog.load_catalog`; see that module for the rules every reader follows
(collect every problem with its key path, build nothing when anything is wrong) and
``conf/tariffs/example.toml`` for the keys, documented.

Rules that span keys, stated where they are checked: a recurring fee is ``fee`` and ``period``
together; ``proration`` goes with a recurring fee; a ``one_time`` tariff has one-time fees and
no recurring fee; every other kind has a recurring fee, usage prices or both; ``usage`` and
``speed_profile`` are for internet tariffs and add-ons, ``tv`` for TV tariffs, ``addon`` for
add-ons (and required there); ``quota`` for prepaid versions with usage prices
(:func:`rating.catalog_usage.read_quota`).
"""

from __future__ import annotations

from datetime import date

from rating.catalog_reader import (
    MAX_VERSION,
    NAME_EXPECTED,
    NAME_PATTERN,
    Table,
    choices_text,
    read_versions,
    unique_code,
)
from rating.catalog_usage import read_quota, read_usage
from rating.matrix import cell_conflicts
from rating.money import RoundingMode, RoundingRule
from rating.periods import BillingMode, Period, ProrationRule
from rating.tariff import (
    AddonKind,
    FeeOverride,
    OneTimeFee,
    PriceCell,
    RecurringFee,
    ServiceKind,
    Tariff,
    TariffVersion,
    TvLineup,
)

__all__ = ["read_tariff"]


def read_tariff(table: Table, seen: dict[str, str]) -> Tariff | None:
    """One ``[[tariffs]]`` table; ``seen`` collects codes across the array to refuse duplicates."""
    code = table.code()
    unique_code(table, code, seen, "tariff")
    name = table.text("name")
    kind = table.choice("kind", ServiceKind)
    addon = table.choice("addon", AddonKind, required=False)
    if kind is ServiceKind.ADDON and addon is None and "addon" not in table.raw:
        table.error("addon", 'required for kind = "addon"; expected one of ' + choices_text(AddonKind))
    elif kind is not None and kind is not ServiceKind.ADDON and "addon" in table.raw:
        table.error("addon", f'only for kind = "addon", not "{kind}"; remove it')
    version_tables = table.tables("versions", required=True, minimum=1) or []
    versions = read_versions(version_tables, lambda t: _tariff_version(t, kind))
    if versions is not None:
        _check_cells_within_versions(version_tables, versions)
    if not table.clean() or code is None or name is None or kind is None or versions is None:
        return None
    return Tariff(code=code, name=name, kind=kind, versions=versions, addon=addon)


def _check_cells_within_versions(tables: list[Table], versions: tuple[TariffVersion, ...]) -> None:
    """A cell starting when the next version takes over would never apply: refuse it."""
    for table, version, following in zip(tables, versions, versions[1:], strict=False):
        for index, cell in enumerate(version.prices):
            if cell.starts(version) >= following.effective_from:
                table.item_error(
                    "prices",
                    index,
                    f"starts {cell.starts(version)}, when version {following.number} has taken over"
                    f" (from {following.effective_from}): it would never apply",
                )


def _tariff_version(table: Table, kind: ServiceKind | None) -> TariffVersion | None:
    number = table.integer("version", low=1, high=MAX_VERSION)
    effective_from = table.day("effective_from")
    currency = table.currency()
    billing_mode = table.choice("billing_mode", BillingMode)
    fee = table.amount("fee", required=False)
    period = table.choice("period", Period, required=False)
    proration = table.choice("proration", ProrationRule, required=False)
    speed_profile = table.text("speed_profile", required=False)
    rounding = _rounding(table)
    one_time_fees, fee_codes = _one_time_fees(table)
    tv = _tv(table)
    usage_table = table.table("usage", expected="a table ([tariffs.versions.usage])")
    usage = read_usage(usage_table) if usage_table is not None else None
    quota = read_quota(table, billing_mode)
    has_fee = "fee" in table.raw
    _check_version_rules(table, kind, has_fee, has_usage="usage" in table.raw)
    cells = _price_cells(table, effective_from, has_fee, fee_codes)
    if not table.clean():
        return None
    assert number is not None and effective_from is not None and currency is not None
    assert billing_mode is not None and rounding is not None and one_time_fees is not None
    assert cells is not None
    return TariffVersion(
        number=number,
        effective_from=effective_from,
        currency=currency,
        billing_mode=billing_mode,
        recurring=RecurringFee(fee, period) if fee is not None and period is not None else None,
        proration=proration or ProrationRule.ACTUAL_DAYS,
        one_time_fees=one_time_fees,
        speed_profile=speed_profile,
        rounding=rounding,
        usage=usage,
        tv=tv,
        prices=cells,
        quota=quota,
    )


def _check_version_rules(table: Table, kind: ServiceKind | None, has_fee: bool, has_usage: bool) -> None:
    """Which keys go together, and which the tariff's kind allows."""
    if has_fee != ("period" in table.raw):
        missing = "period" if has_fee else "fee"
        table.error(missing, f"required with {'fee' if has_fee else 'period'}; a recurring fee has both")
    if "proration" in table.raw and not has_fee:
        table.error("proration", "only with a recurring fee (fee and period); remove it")
    if kind is ServiceKind.ONE_TIME:
        if has_fee:
            table.error("fee", "a one_time tariff has no recurring fee; use [[...one_time_fees]]")
        if not table.raw.get("one_time_fees"):
            table.error("one_time_fees", "a one_time tariff needs at least one [[...one_time_fees]] block")
    elif kind is not None and not has_fee and not has_usage and "period" not in table.raw:
        table.error("fee", "required (with period) unless the version prices usage; expected an amount")
    if "speed_profile" in table.raw and kind in (ServiceKind.TV, ServiceKind.ONE_TIME):
        table.error("speed_profile", f'only for internet tariffs and add-ons, not "{kind}"; remove it')
    if has_usage and kind in (ServiceKind.TV, ServiceKind.ONE_TIME):
        table.error("usage", f'only for internet tariffs and add-ons, not "{kind}"; remove it')
    if "tv" in table.raw and kind is not None and kind is not ServiceKind.TV:
        table.error("tv", f'only for kind = "tv", not "{kind}"; remove it')


def _rounding(table: Table) -> RoundingRule | None:
    sub = table.table("rounding", expected='a table such as { places = 2, mode = "half_up" }')
    if sub is None:
        return RoundingRule() if "rounding" not in table.raw else None
    places = sub.integer("places", low=0, high=6, required=False)
    mode = sub.choice("mode", RoundingMode, required=False)
    if not sub.clean():
        return None
    default = RoundingRule()
    return RoundingRule(places=default.places if places is None else places, mode=mode or default.mode)


def _one_time_fees(table: Table) -> tuple[tuple[OneTimeFee, ...] | None, set[str]]:
    """The version's one-time fees (``None`` if any is wrong) and every fee code written."""
    tables = table.tables("one_time_fees")
    if tables is None:
        return None, set()
    fees: list[OneTimeFee] = []
    seen: dict[str, str] = {}
    for sub in tables:
        code = sub.code()
        unique_code(sub, code, seen, "one-time fee")
        name = sub.text("name")
        amount = sub.amount("amount")
        if sub.clean() and code is not None and name is not None and amount is not None:
            fees.append(OneTimeFee(code, name, amount))
    return (tuple(fees) if len(fees) == len(tables) else None), set(seen)


def _tv(table: Table) -> TvLineup | None:
    sub = table.table("tv", expected="a table such as { packages = [...], channels = [...] }")
    if sub is None:
        return None
    packages = sub.codes("packages", required=False)
    channels = sub.codes("channels", required=False)
    if not sub.clean():
        return None
    return TvLineup(packages=packages or (), channels=channels or ())


def _price_cells(
    table: Table, version_start: date | None, has_fee: bool, fee_codes: set[str]
) -> tuple[PriceCell, ...] | None:
    """The version's matrix cells, checked alone and for ties (see :mod:`rating.matrix`)."""
    tables = table.tables("prices")
    if tables is None:
        return None
    cells = [_price_cell(sub, version_start, has_fee, fee_codes) for sub in tables]
    checked = tuple(c for c in cells if c is not None)
    if len(checked) != len(cells) or version_start is None:
        return None if len(checked) != len(cells) else checked
    probe = TariffVersion(1, version_start, "XXX", BillingMode.PREPAID, prices=checked)
    for first, second in cell_conflicts(probe):
        tables[second].error(
            "effective_from",
            f"ties with prices[{first}]: same category, region and start ({checked[second].starts(probe)});"
            " give one a later effective_from",
        )
    return checked


def _price_cell(
    table: Table, version_start: date | None, has_fee: bool, fee_codes: set[str]
) -> PriceCell | None:
    category = table.text("category", required=False, pattern=NAME_PATTERN, expected=NAME_EXPECTED)
    region = table.text("region", required=False, pattern=NAME_PATTERN, expected=NAME_EXPECTED)
    start = table.day("effective_from", required=False)
    until = table.day("effective_until", required=False)
    fee = table.amount("fee", required=False)
    overrides = _fee_overrides(table, fee_codes)
    if "category" not in table.raw and "region" not in table.raw:
        table.error("category", "a price cell names a category, a region or both")
    if "fee" not in table.raw and "one_time_fees" not in table.raw:
        table.error("fee", "a price cell sets fee, one_time_fees or both")
    if "fee" in table.raw and not has_fee:
        table.error("fee", "this version has no recurring fee to vary; remove it")
    if start is not None and version_start is not None and start < version_start:
        table.error("effective_from", f"{start} is before the version's effective_from {version_start}")
    first_day = start or version_start
    if until is not None and first_day is not None and until <= first_day:
        table.error("effective_until", f"{until} is not after the cell's start {first_day}")
    if not table.clean():
        return None
    return PriceCell(category, region, start, until, fee, overrides or ())


def _fee_overrides(table: Table, known: set[str]) -> tuple[FeeOverride, ...] | None:
    sub = table.table(
        "one_time_fees", expected='a table of fee code = amount, such as { installation = "0" }'
    )
    if sub is None:
        return None
    overrides = []
    for code in list(sub.raw):
        amount = sub.amount(code)
        if code not in known:
            fees = ", ".join(sorted(known)) or "none"
            sub.error(code, f'the version has no one-time fee "{code}"; its fees: {fees}')
        elif amount is not None:
            overrides.append(FeeOverride(code, amount))
    if not sub.clean():
        return None
    return tuple(overrides)
