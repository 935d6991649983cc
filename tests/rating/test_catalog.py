"""The TOML catalog: validated whole, every problem named by its key path; a dump loads back equal."""

from __future__ import annotations

import re
import tomllib
from datetime import date, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.allowance import Allowance, Block, OverageCharge, Throttle
from rating.bundle import Bundle, BundlePricing, BundleVersion, DiscountKind, DiscountScope
from rating.catalog import Catalog, CatalogError, dump_catalog, load_catalog
from rating.catalog_writer import Inline, emit
from rating.matrix import MatchLevel, resolve_price
from rating.money import RoundingMode, RoundingRule
from rating.periods import BillingMode, Period, ProrationRule
from rating.phases import Duration, DurationUnit, Phase, PhaseKind, PriceKind, PriceOverride, Promotion
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
from rating.time_bands import TimeBand
from rating.traffic import GB, MB, Direction
from rating.usage_plan import UsagePlan
from rating.usage_prices import TimePrice, UsagePrice

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLE = REPO / "conf" / "tariffs" / "example.toml"

BASE = """
[[tariffs]]
code = "HOME"
name = "Home"
kind = "internet"

[[tariffs.versions]]
version = 1
effective_from = 2025-01-01
currency = "EUR"
billing_mode = "prepaid"
fee = "25.00"
period = "monthly"
"""

TV = """
[[tariffs]]
code = "TV"
name = "TV"
kind = "tv"

[[tariffs.versions]]
version = 1
effective_from = 2025-01-01
currency = "EUR"
billing_mode = "prepaid"
fee = "9.90"
period = "monthly"
"""

VERSION_KEYS = (
    "version, effective_from, currency, billing_mode, fee, period, proration, speed_profile, rounding,"
    " one_time_fees, tv, usage, quota, prices"
)


def problems(text: str, source: str = "t.toml") -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(text, source=source)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


def round_trips(catalog: Catalog) -> None:
    text = dump_catalog(catalog)
    assert load_catalog(text, source="dump.toml") == catalog
    assert dump_catalog(load_catalog(text, source="dump.toml")) == text


# --------------------------------------------------------------------------- valid catalogs


def test_the_example_catalog_loads_and_round_trips() -> None:
    catalog = load_catalog(EXAMPLE.read_text(encoding="utf-8"), source=str(EXAMPLE))
    round_trips(catalog)


def test_the_example_catalog_has_every_kind_of_offer_an_operator_starts_from() -> None:
    catalog = load_catalog(EXAMPLE.read_text(encoding="utf-8"), source="example.toml")
    first = {t.code: t.versions[0] for t in catalog.tariffs}
    home = first["HOME-100"]
    assert home.recurring == RecurringFee(Decimal("25.00"), Period.MONTHLY)
    assert (home.billing_mode, home.speed_profile) == (BillingMode.PREPAID, "100M")
    assert first["DAY-50"].recurring is not None and first["DAY-50"].recurring.period is Period.DAILY
    assert first["YEAR-300"].recurring is not None and first["YEAR-300"].recurring.period is Period.ANNUAL
    postpaid = first["BIZ-POST"]
    assert postpaid.billing_mode is BillingMode.POSTPAID and postpaid.usage is not None
    assert [band.name for band in postpaid.usage.bands] == ["night"]
    metered = first["METERED"]
    assert (
        metered.recurring is None
        and metered.usage is not None
        and metered.billing_mode is BillingMode.PREPAID
    )
    assert catalog.tariff("TV-BASIC").kind is ServiceKind.TV and first["TV-BASIC"].tv == TvLineup(
        ("BASIC",), ()
    )
    assert catalog.tariff("STATIC-IP").addon is AddonKind.STATIC_IP
    assert home.one_time_fee("installation").amount == Decimal("30.00")
    assert catalog.tariff("SETUP").kind is ServiceKind.ONE_TIME
    assert {b.code for b in catalog.bundles} == {"DUO", "TRIO"}
    assert {p.code for p in catalog.promotions} == {"WELCOME", "STAY-20", "SUMMER-25"}


def test_every_key_of_the_example_is_explained_by_a_comment_somewhere() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    keys = {m[1] for line in lines if (m := re.match(r"\s*#?\s*([a-z_]+) = ", line))}
    for key in sorted(keys):
        commented = [line for line in lines if re.match(rf"\s*#?\s*{key} = .*#", line)]
        assert commented, f"no comment explains {key}"


VALID_FILES = sorted(p for p in HERE.glob("catalogs/*.toml") if p.name != "three_errors.toml")


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_valid_catalog_files_round_trip(path: Path) -> None:
    round_trips(load_catalog(path.read_text(encoding="utf-8"), source=path.name))


def test_a_loaded_catalog_prices_from_its_matrix() -> None:
    catalog = load_catalog(EXAMPLE.read_text(encoding="utf-8"), source="example.toml")
    resolved = resolve_price(catalog, "HOME-100", date(2025, 7, 1), "residential", "city")
    assert resolved.recurring is not None and resolved.recurring.amount == Decimal("19.90")
    assert (resolved.match, resolved.version_number) == (MatchLevel.REGION, 1)
    assert resolved.fingerprint == catalog.fingerprints()["HOME-100", 1]


def test_amounts_may_be_integers_and_defaults_fill_the_optional_keys() -> None:
    catalog = load_catalog((HERE / "catalogs" / "minimal.toml").read_text(encoding="utf-8"), source="m")
    version = catalog.tariff("HOME").versions[0]
    assert version.recurring == RecurringFee(Decimal(25), Period.MONTHLY)
    assert (version.proration, version.rounding, version.prices) == (
        ProrationRule.ACTUAL_DAYS,
        RoundingRule(),
        (),
    )


def test_an_empty_file_is_an_empty_catalog() -> None:
    assert load_catalog("", source="empty.toml") == Catalog()
    assert dump_catalog(Catalog()).strip().startswith("#")


# --------------------------------------------------------------------------- problems


def test_the_message_names_the_file_the_key_path_and_the_expectation() -> None:
    text = BASE + TV.replace('"TV"', '"TV2"', 1) + TV.replace('fee = "9.90"', "fee = 25.5")
    assert problems(text, source="tariffs.toml") == [
        "tariffs.toml: tariffs[2].versions[0].fee: expected a decimal amount such as 25.00 (quoted string),"
        " got 25.5 (a float)"
    ]


def test_a_file_with_three_problems_reports_all_three_in_file_order() -> None:
    path = HERE / "catalogs" / "three_errors.toml"
    assert problems(path.read_text(encoding="utf-8"), source="three_errors.toml") == [
        "three_errors.toml: tariffs[0].versions[0].fee: expected a decimal amount such as 25.00"
        " (quoted string), got 25.5 (a float)",
        'three_errors.toml: tariffs[1].versions[0].billing_mode: expected one of "prepaid", "postpaid",'
        ' got "in_advance" (a string)',
        'three_errors.toml: bundles[0].versions[0].members[1]: unknown tariff "TV-BASIC"',
    ]


def test_problems_come_in_file_order_even_when_bundles_are_written_first() -> None:
    bundle = '\n[[bundles]]\ncode = "B"\nname = "B"\nversions = []\n'
    assert problems(bundle + BASE.replace('"25.00"', "25.0")) == [
        "t.toml: bundles[0].versions: expected at least 1 [[bundles.versions]] block, got 0",
        "t.toml: tariffs[0].versions[0].fee: expected a decimal amount such as 25.00 (quoted string),"
        " got 25.0 (a float)",
    ]


V = "t.toml: tariffs[0].versions[0]"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            'fee = "25.00"',
            'feee = "25.00"',
            [
                f"{V}.feee: unknown key (did you mean fee?); known keys here: {VERSION_KEYS}",
                f"{V}.fee: required with period; a recurring fee has both",
            ],
            id="unknown key",
        ),
        pytest.param(
            'currency = "EUR"\n',
            "",
            [
                f'{V}.currency: required key missing; expected an ISO 4217 currency code such as "EUR"'
                " (three uppercase letters)"
            ],
            id="missing key",
        ),
        pytest.param(
            'currency = "EUR"',
            'currency = "eur"',
            [
                f'{V}.currency: expected an ISO 4217 currency code such as "EUR" (three uppercase letters),'
                ' got "eur" (a string)'
            ],
            id="currency",
        ),
        pytest.param(
            'period = "monthly"',
            'period = "weekly"',
            [f'{V}.period: expected one of "daily", "monthly", "annual", got "weekly" (a string)'],
            id="choice",
        ),
        pytest.param(
            "effective_from = 2025-01-01",
            'effective_from = "2025-01-01"',
            [
                f"{V}.effective_from: expected a date such as 2025-01-01 (TOML date, unquoted),"
                ' got "2025-01-01" (a string)'
            ],
            id="date as string",
        ),
        pytest.param(
            "effective_from = 2025-01-01",
            "effective_from = 2025-01-01T00:00:00",
            [
                f"{V}.effective_from: expected a date such as 2025-01-01 (TOML date, unquoted),"
                " got 2025-01-01T00:00:00 (a date-time)"
            ],
            id="date-time",
        ),
        pytest.param(
            'fee = "25.00"',
            'fee = "25,00"',
            [f'{V}.fee: expected a decimal amount such as 25.00 (quoted string), got "25,00" (a string)'],
            id="amount text",
        ),
        pytest.param(
            'fee = "25.00"',
            'fee = "0.0000001"',
            [
                f"{V}.fee: expected a decimal amount such as 25.00 (quoted string),"
                ' got "0.0000001" (a string);'
                " at most 6 fraction digits"
            ],
            id="amount precision",
        ),
        pytest.param(
            'fee = "25.00"',
            'fee = "-1"',
            [
                f'{V}.fee: expected a decimal amount such as 25.00 (quoted string), got "-1" (a string);'
                " amounts here cannot be negative"
            ],
            id="negative amount",
        ),
        pytest.param(
            'fee = "25.00"',
            "fee = true",
            [f"{V}.fee: expected a decimal amount such as 25.00 (quoted string), got true (a boolean)"],
            id="amount boolean",
        ),
        pytest.param(
            "version = 1",
            "version = 0",
            [f"{V}.version: expected an integer from 1 to 1000000, got 0 (an integer)"],
            id="version number",
        ),
        pytest.param(
            'period = "monthly"\n',
            "",
            [f"{V}.period: required with fee; a recurring fee has both"],
            id="fee without period",
        ),
        pytest.param(
            'period = "monthly"',
            'period = "monthly"\nproration = "actual_days"\nrounding = { places = 7 }',
            [f"{V}.rounding.places: expected an integer from 0 to 6, got 7 (an integer)"],
            id="rounding",
        ),
        pytest.param(
            'kind = "internet"',
            'kind = "addon"',
            [
                't.toml: tariffs[0].addon: required for kind = "addon"; expected one of "static_ip",'
                ' "speed_boost", "extra_traffic", "cpe_rental", "other"'
            ],
            id="addon kind",
        ),
        pytest.param(
            'kind = "internet"',
            'kind = "one_time"',
            [
                f"{V}.fee: a one_time tariff has no recurring fee; use [[...one_time_fees]]",
                f"{V}.one_time_fees: a one_time tariff needs at least one [[...one_time_fees]] block",
            ],
            id="one-time tariff",
        ),
        pytest.param(
            'kind = "internet"',
            'kind = "tv"',
            [],
            id="tv without lineup is fine",
        ),
        pytest.param(
            'period = "monthly"',
            'period = "monthly"\ntv = { packages = ["BASIC"] }',
            [f'{V}.tv: only for kind = "tv", not "internet"; remove it'],
            id="tv on internet",
        ),
        pytest.param(
            'code = "HOME"',
            'code = "home page"',
            [
                't.toml: tariffs[0].code: expected a code of letters, digits, "_", "-" and "." starting'
                ' with a letter or digit (at most 64 characters), got "home page" (a string)'
            ],
            id="code",
        ),
    ],
)
def test_each_kind_of_problem_has_its_exact_message(old: str, new: str, expected: list[str]) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    if not expected:
        load_catalog(text, source="t.toml")
        return
    assert problems(text) == expected


def test_duplicate_codes_are_refused_at_the_second_one() -> None:
    assert problems(BASE + BASE) == [
        't.toml: tariffs[1].code: duplicate tariff code "HOME" (first at tariffs[0].code)'
    ]


def version_block(number: int, start: str) -> str:
    return (
        f'\n[[tariffs.versions]]\nversion = {number}\neffective_from = {start}\ncurrency = "EUR"\n'
        'billing_mode = "prepaid"\nfee = "27.00"\nperiod = "monthly"\n'
    )


@pytest.mark.parametrize(
    ("number", "start", "expected"),
    [
        (
            2,
            "2025-01-01",
            [
                "t.toml: tariffs[0].versions[1].effective_from: 2025-01-01 overlaps versions[0], also"
                " effective from that day; each version must start after the one before"
            ],
        ),
        (
            2,
            "2024-06-01",
            [
                "t.toml: tariffs[0].versions[1].effective_from: 2024-06-01 is before"
                " versions[0].effective_from 2025-01-01; list versions oldest first"
            ],
        ),
        (
            1,
            "2026-01-01",
            [
                "t.toml: tariffs[0].versions[1].version: 1 is not above versions[0].version 1;"
                " number versions upwards in the order they are listed"
            ],
        ),
    ],
)
def test_versions_must_not_overlap_or_go_backwards(number: int, start: str, expected: list[str]) -> None:
    assert problems(BASE + version_block(number, start)) == expected


def test_a_matrix_cell_starting_after_its_version_ended_is_refused() -> None:
    late = '\n[[tariffs.versions.prices]]\nregion = "north"\neffective_from = 2026-02-01\nfee = "1"\n'
    assert problems(BASE + late + version_block(2, "2026-01-01")) == [
        f"{V}.prices[0]: starts 2026-02-01, when version 2 has taken over (from 2026-01-01):"
        " it would never apply"
    ]


def test_matrix_cells_that_would_tie_are_an_import_error() -> None:
    cells = (
        '\n[[tariffs.versions.prices]]\ncategory = "business"\nfee = "30"\n'
        '\n[[tariffs.versions.prices]]\ncategory = "business"\neffective_from = 2025-01-01\nfee = "31"\n'
    )
    assert problems(BASE + cells) == [
        "t.toml: tariffs[0].versions[0].prices[1].effective_from: ties with prices[0]: same category, region"
        " and start (2025-01-01); give one a later effective_from"
    ]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('fee = "30"', ["prices[0].category: a price cell names a category, a region or both"]),
        ('region = "north"', ["prices[0].fee: a price cell sets fee, one_time_fees or both"]),
        (
            'region = "north"\none_time_fees = { installaton = "0" }',
            [
                "prices[0].one_time_fees.installaton: the version has no one-time fee"
                ' "installaton"; its fees: none'
            ],
        ),
        (
            'region = "north"\nfee = "1"\neffective_from = 2024-12-01',
            ["prices[0].effective_from: 2024-12-01 is before the version's effective_from 2025-01-01"],
        ),
        (
            'region = "north"\nfee = "1"\neffective_until = 2025-01-01',
            ["prices[0].effective_until: 2025-01-01 is not after the cell's start 2025-01-01"],
        ),
    ],
)
def test_each_matrix_cell_is_checked(cell: str, expected: list[str]) -> None:
    assert problems(BASE + "\n[[tariffs.versions.prices]]\n" + cell + "\n") == [f"{V}.{e}" for e in expected]


USAGE = """
[tariffs.versions.usage]

[[tariffs.versions.usage.prices]]
direction = "in"
price = "0.50"
unit = "GB"
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "",
            "",
            ["usage: prices for internet: no price for direction 'out'"],
        ),
        (
            'unit = "GB"',
            'unit = "GBs"',
            [
                'usage.prices[0].unit: expected a volume such as "100 GB", "1 MiB" or an integer of bytes'
                ' (units: TB, TiB, GB, GiB, MB, MiB, kB, KiB, B), got "GBs" (a string)'
            ],
        ),
        (
            'price = "0.50"',
            'price = "0.50"\nfree = true',
            ["usage.prices[0]: usage price internet/in/(any time): a free band has no price, got price 0.50"],
        ),
        (
            'unit = "GB"',
            'unit = "GB"\n[tariffs.versions.usage.allowance]\nincluded = "1 GB"\noverage = "throttle"',
            ['usage.allowance.throttle_profile: required with overage = "throttle"; expected a profile name'],
        ),
    ],
)
def test_usage_problems_are_reported_with_their_path(old: str, new: str, expected: list[str]) -> None:
    assert problems(BASE + USAGE.replace(old, new, 1)) == [f"{V}.{e}" for e in expected]


BUNDLE = """
[[bundles]]
code = "DUO"
name = "Duo"

[[bundles.versions]]
version = 1
effective_from = 2025-01-01
currency = "EUR"
members = ["HOME", "TV"]
bundle_price = "29.90"
"""
B = "t.toml: bundles[0].versions[0]"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"TV"]', '"TVV"]', [f'{B}.members[1]: unknown tariff "TVV" (did you mean TV?)']),
        (
            '"TV"]',
            '"HOME"]',
            [f'{B}.members[1]: duplicate "HOME" (also at bundles[0].versions[0].members[0])'],
        ),
        (
            '["HOME", "TV"]',
            '["HOME"]',
            [f"{B}.members: expected an array of at least 2 distinct codes, got an array"],
        ),
        (
            'bundle_price = "29.90"',
            'bundle_price = "29.90"\npercent_off = "10"',
            [
                f"{B}.bundle_price: set exactly one of bundle_price, percent_off or amount_off,"
                " not bundle_price and percent_off"
            ],
        ),
        (
            'bundle_price = "29.90"',
            'percent_off = "10"',
            [f'{B}.applies_to: required with percent_off; expected one of "each", "total"'],
        ),
        (
            'bundle_price = "29.90"',
            'percent_off = "110"\napplies_to = "each"',
            [
                f'{B}.percent_off: expected a percentage above 0 and at most 100 such as "12.5"'
                ' (quoted string) or 50, got "110" (a string)'
            ],
        ),
        (
            'currency = "EUR"',
            'currency = "USD"',
            [
                f'{B}.members[0]: "HOME" version 1 is in EUR, the bundle in USD',
                f'{B}.members[1]: "TV" version 1 is in EUR, the bundle in USD',
            ],
        ),
    ],
)
def test_bundles_are_checked_against_their_members(old: str, new: str, expected: list[str]) -> None:
    assert problems(BASE + TV + BUNDLE.replace(old, new, 1)) == expected


def test_a_broken_tariff_is_not_also_reported_as_unknown_where_it_is_named() -> None:
    broken_tv = TV.replace('fee = "9.90"', "fee = 9.9")
    assert problems(BASE + broken_tv + BUNDLE) == [
        "t.toml: tariffs[1].versions[0].fee: expected a decimal amount such as 25.00 (quoted string),"
        " got 9.9 (a float)"
    ]


def test_bundle_members_need_one_billing_period() -> None:
    daily_tv = TV.replace('period = "monthly"', 'period = "daily"')
    assert problems(BASE + daily_tv + BUNDLE) == [
        f"{B}.members: members are billed daily, monthly; a bundle needs one period"
    ]


PROMOTION = """
[[promotions]]
code = "WELCOME"
name = "Welcome"
tariffs = ["HOME"]

[[promotions.phases]]
kind = "trial"
days = 14
free = true

[[promotions.phases]]
kind = "promo"
months = 3
percent_off = "50"
"""
P = "t.toml: promotions[0]"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "days = 14\n",
            "",
            [
                f"{P}.phases[0].days: only the last phase may be open-ended; give days, months, years or"
                " periods"
            ],
        ),
        (
            "months = 3",
            "months = 3\nyears = 1",
            [f"{P}.phases[1].years: give one length, not both months and years"],
        ),
        (
            "free = true",
            'free = true\nprice = "1"',
            [f"{P}.phases[0].price: give one price change, not both free and price"],
        ),
        (
            "free = true",
            "free = false",
            [f"{P}.phases[0].free: write free = true, or leave it out for the list price"],
        ),
        (
            'percent_off = "50"',
            'price = "9.90"',
            [
                f"{P}.currency: required when a phase has a fixed price; expected an"
                ' ISO 4217 currency code such as "EUR" (three uppercase letters)'
            ],
        ),
        (
            'kind = "trial"',
            'kind = "free"',
            [
                f'{P}.phases[0].kind: expected one of "trial", "promo", "retention",'
                ' "regular", got "free" (a string)'
            ],
        ),
        (
            'tariffs = ["HOME"]',
            'tariffs = ["HOME"]\navailable_from = 2025-02-01\navailable_until = 2025-01-01',
            [f"{P}.available_until: 2025-01-01 is not after available_from 2025-02-01"],
        ),
    ],
)
def test_promotions_are_checked(old: str, new: str, expected: list[str]) -> None:
    assert problems(BASE + PROMOTION.replace(old, new, 1)) == expected


def test_a_fixed_price_promotion_must_be_in_the_currency_of_its_tariffs() -> None:
    fixed = PROMOTION.replace('percent_off = "50"', 'price = "9.90"')
    load_catalog(
        BASE + fixed.replace('tariffs = ["HOME"]', 'tariffs = ["HOME"]\ncurrency = "EUR"'), source="t"
    )
    in_dollars = fixed.replace('tariffs = ["HOME"]', 'tariffs = ["HOME"]\ncurrency = "USD"')
    assert problems(BASE + in_dollars) == [
        f'{P}.currency: USD, but eligible tariff "HOME" version 1 is in EUR'
    ]


def test_invalid_toml_is_one_problem_with_its_position() -> None:
    assert problems('[[tariffs]]\ncode = "HOME\n') == [
        "t.toml: invalid TOML at line 2, column 13: Illegal character '\\n'"
    ]


def test_unknown_top_level_tables_are_refused_with_a_hint() -> None:
    assert problems("[[tarifs]]\ncode = 1\n") == [
        "t.toml: tarifs: unknown key (did you mean tariffs?); known keys here: tariffs, bundles, promotions"
    ]


# --------------------------------------------------------------------------- the writer


def test_strings_are_escaped_so_any_name_survives_a_round_trip() -> None:
    name = 'a "quoted" \\ back\tslash\nnew line \x7f \x01 ünï'
    text = emit({"name": name, "t": Inline({"odd key": 1, "plain": Decimal("1.50")})})
    assert tomllib.loads(text) == {"name": name, "t": {"odd key": 1, "plain": "1.50"}}


def test_money_is_written_as_quoted_decimals_never_floats() -> None:
    text = dump_catalog(load_catalog(BASE, source="t.toml"))
    assert 'fee = "25.00"' in text


# --------------------------------------------------------------------------- round-trip property

codes = st.from_regex(r"[A-Z][A-Z0-9_-]{0,7}", fullmatch=True)
names = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != "")
money = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)
small_money = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False, allow_infinity=False)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1))
dictionary_names = st.sampled_from(["business", "residential", "vip"])
regions = st.sampled_from(["north", "south", "city"])


@st.composite
def usage_plans(draw: st.DrawFn) -> UsagePlan:
    night = draw(st.booleans())
    bands = (
        TimeBand("night", time(1), time(7), draw(st.none() | st.frozensets(st.integers(0, 6), min_size=1))),
    )
    unit = draw(st.sampled_from([MB, GB, 100 * MB, 1234]))
    prices = [
        UsagePrice(
            direction=d, price=draw(small_money), unit_bytes=unit, increment_units=draw(st.integers(1, 5))
        )
        for d in Direction
    ]
    if night:
        prices.append(UsagePrice(direction=Direction.IN, band="night", free=True))
    time_prices = (TimePrice(price_per_minute=draw(small_money), increment_seconds=draw(st.integers(1, 60))),)
    overage = draw(
        st.sampled_from(
            [
                Block(),
                Throttle("1M"),
                OverageCharge(tuple(UsagePrice(direction=d, price=Decimal("1")) for d in Direction)),
            ]
        )
    )
    allowance = draw(
        st.none() | st.builds(Allowance, included_bytes=st.integers(0, 10**13), overage=st.just(overage))
    )
    return UsagePlan(
        bands=bands if night else (),
        prices=tuple(prices),
        time_prices=time_prices if draw(st.booleans()) else (),
        allowance=allowance,
        default_class=draw(st.sampled_from(["internet", None])),
    )


@st.composite
def tariffs(draw: st.DrawFn, code: str, period: Period) -> Tariff:
    kind = draw(st.sampled_from(ServiceKind))
    starts = sorted(draw(st.sets(days, min_size=1, max_size=3)))
    versions = []
    first_number = draw(st.integers(1, 3))
    for index, start in enumerate(starts):
        number = first_number + index
        # a cell must start before the next version takes over (else it would never apply)
        last_offset = (starts[index + 1] - start).days - 1 if index + 1 < len(starts) else 30
        fee_codes = draw(
            st.lists(st.sampled_from(["installation", "router", "visit"]), unique=True, max_size=2)
        )
        if kind is ServiceKind.ONE_TIME and not fee_codes:
            fee_codes = ["installation"]
        fees = tuple(OneTimeFee(c, draw(names), draw(money)) for c in fee_codes)
        usage = (
            draw(usage_plans())
            if kind in (ServiceKind.INTERNET, ServiceKind.ADDON) and draw(st.booleans())
            else None
        )
        recurring = None
        if kind is not ServiceKind.ONE_TIME and (usage is None or draw(st.booleans())):
            recurring = RecurringFee(draw(money), period)
        cells = []
        keys = draw(
            st.lists(st.tuples(st.none() | dictionary_names, st.none() | regions), unique=True, max_size=3)
        )
        for category, region in keys:
            if (category is None and region is None) or (recurring is None and not fees):
                continue
            overrides = tuple(FeeOverride(f.code, draw(money)) for f in fees if draw(st.booleans()))
            fee = draw(money) if recurring is not None and (not overrides or draw(st.booleans())) else None
            if fee is None and not overrides:
                overrides = (FeeOverride(fees[0].code, draw(money)),)
            cell_start = draw(
                st.none() | st.just(start + timedelta(days=draw(st.integers(0, min(30, last_offset)))))
            )
            until = draw(
                st.none() | st.just((cell_start or start) + timedelta(days=draw(st.integers(1, 90))))
            )
            cells.append(PriceCell(category, region, cell_start, until, fee, overrides))
        versions.append(
            TariffVersion(
                number=number,
                effective_from=start,
                currency="EUR",
                billing_mode=draw(st.sampled_from(BillingMode)),
                recurring=recurring,
                proration=draw(st.sampled_from(ProrationRule)) if recurring else ProrationRule.ACTUAL_DAYS,
                one_time_fees=fees,
                speed_profile=draw(st.none() | st.just("100M"))
                if kind in (ServiceKind.INTERNET, ServiceKind.ADDON)
                else None,
                rounding=RoundingRule(draw(st.integers(0, 6)), draw(st.sampled_from(RoundingMode))),
                usage=usage,
                tv=TvLineup(("BASIC",), tuple(draw(st.lists(codes, unique=True, max_size=2))))
                if kind is ServiceKind.TV and draw(st.booleans())
                else None,
                prices=tuple(cells),
            )
        )
    addon = draw(st.sampled_from(AddonKind)) if kind is ServiceKind.ADDON else None
    return Tariff(code=code, name=draw(names), kind=kind, versions=tuple(versions), addon=addon)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    period = draw(st.sampled_from(Period))
    tariff_codes = draw(st.lists(codes, unique=True, min_size=1, max_size=4))
    all_tariffs = tuple(draw(tariffs(code, period)) for code in tariff_codes)
    recurring = [t.code for t in all_tariffs if all(v.recurring is not None for v in t.versions)]
    bundles = []
    if len(recurring) >= 2:
        kind = draw(st.sampled_from(DiscountKind))
        value = draw(st.decimals(min_value=Decimal("0.01"), max_value=100, places=2))
        scope = (
            DiscountScope.TOTAL if kind is DiscountKind.BUNDLE_PRICE else draw(st.sampled_from(DiscountScope))
        )
        members = tuple(draw(st.permutations(recurring))[: draw(st.integers(2, len(recurring)))])
        version = BundleVersion(
            draw(st.integers(1, 5)), draw(days), "EUR", members, BundlePricing(kind, value, scope)
        )
        bundles.append(Bundle(draw(codes), draw(names), (version,)))
    promotions = []
    if draw(st.booleans()):
        units = [DurationUnit.DAYS, DurationUnit.MONTHS, DurationUnit.YEARS]
        if len(recurring) == len(all_tariffs):
            units.append(DurationUnit.PERIODS)
        overrides = st.sampled_from(
            [
                PriceOverride(PriceKind.LIST),
                PriceOverride(PriceKind.FREE),
                PriceOverride(PriceKind.PERCENT_OFF, Decimal("12.5")),
                PriceOverride(PriceKind.FIXED, Decimal("9.99")),
            ]
        )
        phases = [
            Phase(
                draw(st.sampled_from(PhaseKind)),
                Duration(draw(st.integers(1, 24)), draw(st.sampled_from(units))),
                draw(overrides),
            )
            for _ in range(draw(st.integers(0, 2)))
        ]
        phases.append(
            Phase(
                draw(st.sampled_from(PhaseKind)),
                draw(st.none() | st.just(Duration(1, DurationUnit.MONTHS))),
                draw(overrides),
            )
        )
        fixed = any(p.price.kind is PriceKind.FIXED for p in phases)
        start = draw(st.none() | days)
        until = draw(
            st.none() | st.just((start or date(2020, 1, 1)) + timedelta(days=draw(st.integers(1, 400))))
        )
        promotions.append(
            Promotion(
                draw(codes),
                draw(names),
                tuple(tariff_codes[:2]),
                tuple(phases),
                start,
                until,
                "EUR" if fixed else None,
            )
        )
    return Catalog(tariffs=all_tariffs, bundles=tuple(bundles), promotions=tuple(promotions))


@settings(max_examples=100, deadline=None)
@given(catalogs())
def test_any_valid_catalog_loads_back_equal_from_its_dump(catalog: Catalog) -> None:
    round_trips(catalog)
