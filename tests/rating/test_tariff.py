"""The pure tariff model: versions and fingerprints, matrix precedence, phases and bundle arithmetic."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.bundle import (
    Bundle,
    BundleError,
    BundlePricing,
    BundleVersion,
    DiscountKind,
    DiscountScope,
    allocate,
    price_bundle,
    price_bundle_at,
)
from rating.catalog import Catalog
from rating.matrix import MatchLevel, cell_conflicts, resolve_price
from rating.money import RoundingRule
from rating.periods import BillingMode, Period
from rating.phases import (
    REGULAR,
    Duration,
    DurationUnit,
    Phase,
    PhaseKind,
    PriceKind,
    PriceOverride,
    Promotion,
    add_months,
    phase_at,
    phase_price,
    phase_spans,
)
from rating.tariff import (
    FeeOverride,
    OneTimeFee,
    PriceCell,
    RecurringFee,
    ServiceKind,
    Tariff,
    TariffVersion,
    VersionNotFound,
    canonical,
    version_fingerprint,
)

D = Decimal


def version(
    number: int = 1, start: date = date(2025, 1, 1), fee: str | None = "25.00", **extra: object
) -> TariffVersion:
    return TariffVersion(
        number=number,
        effective_from=start,
        currency="EUR",
        billing_mode=BillingMode.PREPAID,
        recurring=RecurringFee(D(fee), Period.MONTHLY) if fee is not None else None,
        **extra,  # type: ignore[arg-type]
    )


def tariff(*versions: TariffVersion, code: str = "HOME") -> Tariff:
    return Tariff(code=code, name="Home", kind=ServiceKind.INTERNET, versions=versions or (version(),))


# --------------------------------------------------------------------------- versions


def test_the_version_in_effect_is_the_latest_started_on_or_before_the_day() -> None:
    home = tariff(version(1, date(2025, 1, 1)), version(2, date(2026, 1, 1), "27.00"))
    assert home.version_at(date(2025, 12, 31)).number == 1
    assert home.version_at(date(2026, 1, 1)).number == 2
    assert home.version_at(date(2030, 5, 5)).number == 2


def test_no_version_before_the_first_effective_date() -> None:
    with pytest.raises(VersionNotFound, match="HOME has no version effective on 2024-12-31"):
        tariff().version_at(date(2024, 12, 31))


def test_versions_during_a_span_include_every_version_that_overlaps_it() -> None:
    home = tariff(version(1, date(2025, 1, 1)), version(2, date(2025, 6, 1)), version(3, date(2026, 1, 1)))
    assert [v.number for v in home.versions_during(date(2025, 3, 1), date(2025, 7, 1))] == [1, 2]
    assert [v.number for v in home.versions_during(date(2025, 6, 1), None)] == [2, 3]
    assert [v.number for v in home.versions_during(date(2024, 1, 1), date(2025, 1, 1))] == []


def test_versions_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        version().number = 2  # type: ignore[misc]


def test_the_fingerprint_is_the_sha256_of_a_pinned_canonical_document() -> None:
    """A change here changes every stored fingerprint: bump FINGERPRINT_FORMAT on purpose."""
    document = (
        '{"addon":null,"format":1,"kind":"internet","tariff":"HOME","version":{"billing_mode":"prepaid",'
        '"currency":"EUR","effective_from":"2025-01-01","number":1,"recurring":{"amount":"25","period":"monthly"}}}'
    )
    assert version_fingerprint(tariff(), version()) == hashlib.sha256(document.encode()).hexdigest()
    assert version_fingerprint(tariff(), version()).startswith("7dd9e795ee50")


def test_the_fingerprint_ignores_how_an_amount_is_written_and_the_display_name() -> None:
    home = tariff()
    assert version_fingerprint(home, version(fee="25.00")) == version_fingerprint(home, version(fee="25"))
    renamed = dataclasses.replace(home, name="Home (renamed)")
    assert version_fingerprint(renamed, version()) == version_fingerprint(home, version())


@pytest.mark.parametrize(
    "changed",
    [
        version(fee="25.01"),
        version(start=date(2025, 1, 2)),
        version(speed_profile="200M"),
        version(rounding=RoundingRule(places=0)),
        version(one_time_fees=(OneTimeFee("installation", "Installation", D("30")),)),
        version(prices=(PriceCell(category="business", fee=D("30")),)),
    ],
)
def test_any_priced_content_changes_the_fingerprint(changed: TariffVersion) -> None:
    assert version_fingerprint(tariff(), changed) != version_fingerprint(tariff(), version())


def test_the_canonical_form_leaves_out_defaults_so_new_defaulted_fields_keep_fingerprints() -> None:
    form = canonical(version())
    assert isinstance(form, dict)
    assert "speed_profile" not in form and "rounding" not in form and "prices" not in form
    assert form["recurring"] == {"amount": "25", "period": "monthly"}


# --------------------------------------------------------------------------- the matrix

MATRIX = version(
    prices=(
        PriceCell(category="business", fee=D("35.00")),
        PriceCell(region="rural", fee=D("22.00"), one_time_fees=(FeeOverride("installation", D("0")),)),
        PriceCell(category="business", region="rural", fee=D("32.00")),
        PriceCell(
            region="city", effective_from=date(2025, 6, 1), effective_until=date(2025, 9, 1), fee=D("19.90")
        ),
        PriceCell(region="city", fee=D("24.00")),
    ),
    one_time_fees=(OneTimeFee("installation", "Installation", D("30.00")),),
)
MATRIX_CATALOG = Catalog(tariffs=(tariff(MATRIX, version(2, date(2026, 1, 1), "27.00")),))


@pytest.mark.parametrize(
    ("as_of", "category", "region", "fee", "level", "cell"),
    [
        (date(2025, 3, 1), "business", "rural", "32.00", MatchLevel.CATEGORY_AND_REGION, 2),
        (date(2025, 3, 1), "business", "north", "35.00", MatchLevel.CATEGORY, 0),
        (date(2025, 3, 1), "business", None, "35.00", MatchLevel.CATEGORY, 0),
        (date(2025, 3, 1), "residential", "rural", "22.00", MatchLevel.REGION, 1),
        (date(2025, 3, 1), None, "rural", "22.00", MatchLevel.REGION, 1),
        (date(2025, 3, 1), "residential", "north", "25.00", MatchLevel.BASE, None),
        (date(2025, 3, 1), None, None, "25.00", MatchLevel.BASE, None),
        # equally specific: the cell that started last wins while it lasts, [from, until)
        (date(2025, 5, 31), "residential", "city", "24.00", MatchLevel.REGION, 4),
        (date(2025, 6, 1), "residential", "city", "19.90", MatchLevel.REGION, 3),
        (date(2025, 8, 31), "residential", "city", "19.90", MatchLevel.REGION, 3),
        (date(2025, 9, 1), "residential", "city", "24.00", MatchLevel.REGION, 4),
        # a more specific cell beats a later, less specific one
        (date(2025, 7, 1), "business", "city", "35.00", MatchLevel.CATEGORY, 0),
        # the next version has its own matrix (none): its base price
        (date(2026, 1, 1), "business", "rural", "27.00", MatchLevel.BASE, None),
    ],
)
def test_matrix_precedence(
    as_of: date, category: str | None, region: str | None, fee: str, level: MatchLevel, cell: int | None
) -> None:
    resolved = resolve_price(MATRIX_CATALOG, "HOME", as_of, category, region)
    assert resolved.recurring is not None
    assert (resolved.recurring.amount, resolved.match, resolved.cell_index) == (D(fee), level, cell)
    assert resolved.version_number == (2 if as_of.year == 2026 else 1)


def test_a_cell_replaces_only_what_it_names() -> None:
    rural = resolve_price(MATRIX_CATALOG, "HOME", date(2025, 3, 1), None, "rural")
    business = resolve_price(MATRIX_CATALOG, "HOME", date(2025, 3, 1), "business", None)
    assert [f.amount for f in rural.one_time_fees] == [D("0")]
    assert [f.amount for f in business.one_time_fees] == [D("30.00")]
    assert business.recurring == RecurringFee(D("35.00"), Period.MONTHLY)


def test_a_resolved_price_names_its_version_and_fingerprint() -> None:
    resolved = resolve_price(MATRIX_CATALOG, "HOME", date(2025, 3, 1), None, None)
    home = MATRIX_CATALOG.tariff("HOME")
    assert resolved.version is MATRIX
    assert resolved.fingerprint == version_fingerprint(home, MATRIX)
    assert resolved.currency == "EUR"


def test_resolving_an_unknown_tariff_or_a_day_before_it_exists_fails() -> None:
    with pytest.raises(KeyError, match="unknown tariff 'NOPE'"):
        resolve_price(MATRIX_CATALOG, "NOPE", date(2025, 3, 1), None, None)
    with pytest.raises(VersionNotFound):
        resolve_price(MATRIX_CATALOG, "HOME", date(2024, 3, 1), None, None)


def test_cells_with_the_same_category_region_and_start_tie() -> None:
    tied = version(
        prices=(
            PriceCell(category="business", fee=D("1")),
            PriceCell(category="business", effective_from=date(2025, 1, 1), fee=D("2")),
            PriceCell(category="business", effective_from=date(2025, 2, 1), fee=D("3")),
        )
    )
    assert cell_conflicts(tied) == [(0, 1)]


# --------------------------------------------------------------------------- phases


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2025, 1, 31), 2, date(2025, 3, 31)),
        (date(2025, 3, 31), 1, date(2025, 4, 30)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
    ],
)
def test_add_months_clamps_to_the_end_of_the_month(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


PROMO = Phase(
    PhaseKind.PROMO, Duration(1, DurationUnit.MONTHS), PriceOverride(PriceKind.PERCENT_OFF, D("50"))
)
TRIAL = Phase(PhaseKind.TRIAL, Duration(14, DurationUnit.DAYS), PriceOverride(PriceKind.FREE))


def test_a_month_from_january_31_ends_on_february_28() -> None:
    start = date(2025, 1, 31)
    assert phase_at(start, [PROMO], date(2025, 2, 27)) is PROMO
    assert phase_at(start, [PROMO], date(2025, 2, 28)) is REGULAR


def test_consecutive_month_phases_do_not_drift_after_a_clamped_month_end() -> None:
    second = dataclasses.replace(PROMO, kind=PhaseKind.RETENTION)
    spans = phase_spans(date(2025, 1, 31), [PROMO, second])
    assert [(s.start, s.end) for s in spans] == [
        (date(2025, 1, 31), date(2025, 2, 28)),
        (date(2025, 2, 28), date(2025, 3, 31)),
        (date(2025, 3, 31), None),
    ]


def test_days_then_months_count_the_months_from_the_end_of_the_days() -> None:
    three_months = dataclasses.replace(PROMO, duration=Duration(3, DurationUnit.MONTHS))
    spans = phase_spans(date(2025, 1, 17), [TRIAL, three_months])
    assert [(s.phase.kind, s.start, s.end) for s in spans] == [
        (PhaseKind.TRIAL, date(2025, 1, 17), date(2025, 1, 31)),
        (PhaseKind.PROMO, date(2025, 1, 31), date(2025, 4, 30)),
        (PhaseKind.REGULAR, date(2025, 4, 30), None),
    ]


def test_phases_are_half_open_and_the_regular_phase_follows_the_last() -> None:
    start = date(2025, 1, 1)
    assert phase_at(start, [TRIAL, PROMO], date(2025, 1, 1)) is TRIAL
    assert phase_at(start, [TRIAL, PROMO], date(2025, 1, 14)) is TRIAL
    assert phase_at(start, [TRIAL, PROMO], date(2025, 1, 15)) is PROMO
    assert phase_at(start, [TRIAL, PROMO], date(2025, 2, 15)) is REGULAR
    assert phase_at(start, [], date(2025, 2, 15)) is REGULAR


def test_a_retention_offer_is_a_finite_regular_phase_then_the_discount() -> None:
    retention = Phase(
        PhaseKind.RETENTION, Duration(3, DurationUnit.MONTHS), PriceOverride(PriceKind.PERCENT_OFF, D("20"))
    )
    before = Phase(PhaseKind.REGULAR, Duration(14, DurationUnit.MONTHS))
    start = date(2024, 1, 10)
    assert phase_at(start, [before, retention], date(2025, 3, 9)) is before
    assert phase_at(start, [before, retention], date(2025, 3, 10)) is retention
    assert phase_at(start, [before, retention], date(2025, 6, 10)) is REGULAR


@pytest.mark.parametrize(
    ("period", "last_day_in_phase", "first_day_after"),
    [
        (Period.DAILY, date(2025, 1, 31), date(2025, 2, 1)),
        (Period.MONTHLY, date(2025, 4, 29), date(2025, 4, 30)),
        (Period.ANNUAL, date(2028, 1, 30), date(2028, 1, 31)),
    ],
)
def test_a_phase_in_billing_periods_follows_the_tariffs_period(
    period: Period, last_day_in_phase: date, first_day_after: date
) -> None:
    three = Phase(
        PhaseKind.PROMO, Duration(3, DurationUnit.PERIODS), PriceOverride(PriceKind.PERCENT_OFF, D("10"))
    )
    start = date(2025, 1, 29) if period is Period.DAILY else date(2025, 1, 31)
    assert phase_at(start, [three], last_day_in_phase, period=period) is three
    assert phase_at(start, [three], first_day_after, period=period) is REGULAR


def test_a_phase_in_periods_needs_the_period() -> None:
    three = Phase(PhaseKind.PROMO, Duration(3, DurationUnit.PERIODS))
    with pytest.raises(ValueError, match="needs the tariff's period"):
        phase_at(date(2025, 1, 1), [three], date(2025, 1, 1))


def test_years_are_twelve_months() -> None:
    year = Phase(PhaseKind.PROMO, Duration(1, DurationUnit.YEARS))
    assert phase_spans(date(2024, 2, 29), [year])[0].end == date(2025, 2, 28)


def test_no_phase_before_the_subscription_starts() -> None:
    with pytest.raises(ValueError, match="before the subscription start"):
        phase_at(date(2025, 1, 1), [TRIAL], date(2024, 12, 31))


def test_only_the_last_phase_may_be_open_ended() -> None:
    open_ended = Phase(PhaseKind.PROMO, None)
    assert phase_at(date(2025, 1, 1), [TRIAL, open_ended], date(2030, 1, 1)) is open_ended
    with pytest.raises(ValueError, match="phase 0 has no duration but is not the last"):
        phase_spans(date(2025, 1, 1), [open_ended, TRIAL])


@pytest.mark.parametrize(
    ("override", "price"),
    [
        (PriceOverride(PriceKind.LIST), "24.99"),
        (PriceOverride(PriceKind.FREE), "0"),
        (PriceOverride(PriceKind.PERCENT_OFF, D("50")), "12.495000"),
        (PriceOverride(PriceKind.PERCENT_OFF, D("33.3333")), "16.660008"),
        (PriceOverride(PriceKind.FIXED, D("9.90")), "9.90"),
    ],
)
def test_phase_price_is_exact_to_the_storage_precision(override: PriceOverride, price: str) -> None:
    assert phase_price(Phase(PhaseKind.PROMO, None, override), D("24.99")) == D(price)


def test_a_promotion_is_available_in_its_half_open_window() -> None:
    offer = Promotion("P", "P", ("HOME",), (TRIAL,), date(2025, 6, 1), date(2025, 9, 1))
    assert [offer.available_on(d) for d in (date(2025, 5, 31), date(2025, 6, 1), date(2025, 9, 1))] == [
        False,
        True,
        False,
    ]


# --------------------------------------------------------------------------- bundles


def bundle(pricing: BundlePricing, *members: str) -> Bundle:
    return Bundle(
        "DUO", "Duo", (BundleVersion(1, date(2025, 1, 1), "EUR", members or ("NET", "TV"), pricing),)
    )


LIST_PRICES = {"NET": D("25.00"), "TV": D("9.90")}


@pytest.mark.parametrize(
    ("pricing", "discounts", "total"),
    [
        (BundlePricing(DiscountKind.BUNDLE_PRICE, D("29.90")), ("3.581662", "1.418338"), "29.90"),
        (
            BundlePricing(DiscountKind.PERCENT_OFF, D("10"), DiscountScope.EACH),
            ("2.500000", "0.990000"),
            "31.41",
        ),
        (
            BundlePricing(DiscountKind.PERCENT_OFF, D("10"), DiscountScope.TOTAL),
            ("2.500000", "0.990000"),
            "31.41",
        ),
        (BundlePricing(DiscountKind.AMOUNT_OFF, D("5.00"), DiscountScope.EACH), ("5.00", "5.00"), "24.90"),
        (BundlePricing(DiscountKind.AMOUNT_OFF, D("10.00"), DiscountScope.EACH), ("10.00", "9.90"), "15.00"),
        (
            BundlePricing(DiscountKind.AMOUNT_OFF, D("5.00"), DiscountScope.TOTAL),
            ("3.581662", "1.418338"),
            "29.90",
        ),
        (
            BundlePricing(DiscountKind.AMOUNT_OFF, D("50"), DiscountScope.TOTAL),
            ("25.000000", "9.900000"),
            "0",
        ),
    ],
)
def test_bundle_arithmetic_is_exact(pricing: BundlePricing, discounts: tuple[str, str], total: str) -> None:
    quote = price_bundle(bundle(pricing), date(2025, 3, 1), LIST_PRICES)
    assert tuple(line.discount for line in quote.lines) == tuple(D(d) for d in discounts)
    assert quote.total == D(total)
    assert quote.list_total == D("34.90")
    assert sum(line.net for line in quote.lines) == quote.total
    assert quote.discount_total == quote.list_total - quote.total
    assert all(line.net == line.list_price - line.discount for line in quote.lines)


def test_a_bundle_price_splits_into_lines_that_add_up_to_the_last_millionth() -> None:
    three = bundle(BundlePricing(DiscountKind.BUNDLE_PRICE, D("10.00")), "A", "B", "C")
    quote = price_bundle(three, date(2025, 1, 1), {"A": D("5"), "B": D("5"), "C": D("5")})
    assert [line.net for line in quote.lines] == [D("3.333334"), D("3.333333"), D("3.333333")]
    assert quote.total == D("10.00")


def test_a_percentage_off_each_member_rounds_each_member_half_up() -> None:
    tenth = bundle(BundlePricing(DiscountKind.PERCENT_OFF, D("12.5"), DiscountScope.EACH), "A", "B")
    quote = price_bundle(tenth, date(2025, 1, 1), {"A": D("0.000004"), "B": D("0.000012")})
    assert [line.discount for line in quote.lines] == [D("0.000001"), D("0.000002")]


def test_bundle_prices_must_name_exactly_the_members() -> None:
    duo = bundle(BundlePricing(DiscountKind.BUNDLE_PRICE, D("29.90")))
    with pytest.raises(BundleError, match=r"prices missing for \[TV\], not members: \[RADIO\]"):
        price_bundle(duo, date(2025, 1, 1), {"NET": D("1"), "RADIO": D("1")})
    with pytest.raises(BundleError, match="no version effective on 2024-12-31"):
        price_bundle(duo, date(2024, 12, 31), LIST_PRICES)


def test_a_bundle_priced_from_the_catalog_uses_the_members_matrix_prices() -> None:
    tv = Tariff("TV", "TV", ServiceKind.TV, (version(fee="9.90"),))
    duo = bundle(BundlePricing(DiscountKind.PERCENT_OFF, D("10"), DiscountScope.EACH), "HOME", "TV")
    catalog = Catalog(tariffs=(MATRIX_CATALOG.tariff("HOME"), tv), bundles=(duo,))
    quote = price_bundle_at(catalog, "DUO", date(2025, 3, 1), "business", None)
    assert [(line.list_price, line.net) for line in quote.lines] == [
        (D("35.00"), D("31.5")),
        (D("9.90"), D("8.91")),
    ]


amounts = st.decimals(min_value=0, max_value=D("100000"), places=6, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(total=amounts, weights=st.lists(amounts, min_size=1, max_size=6))
def test_allocation_is_exact_and_never_gives_a_share_more_than_its_weight(
    total: Decimal, weights: list[Decimal]
) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total
    assert all(share >= 0 for share in shares)
    if total <= sum(weights):
        assert all(share <= weight for share, weight in zip(shares, weights, strict=True))


@settings(max_examples=100, deadline=None)
@given(
    prices=st.lists(amounts, min_size=2, max_size=5),
    kind=st.sampled_from(DiscountKind),
    scope=st.sampled_from(DiscountScope),
    value=st.decimals(min_value=D("0.01"), max_value=100, places=2),
)
def test_bundle_lines_always_add_up_and_discounts_never_go_below_zero(
    prices: list[Decimal], kind: DiscountKind, scope: DiscountScope, value: Decimal
) -> None:
    if kind is DiscountKind.BUNDLE_PRICE:
        scope = DiscountScope.TOTAL
    members = tuple(f"M{i}" for i in range(len(prices)))
    quote = price_bundle(
        bundle(BundlePricing(kind, value, scope), *members),
        date(2025, 1, 1),
        dict(zip(members, prices, strict=True)),
    )
    assert sum(line.net for line in quote.lines) == quote.total
    assert quote.list_total - quote.discount_total == quote.total
    if kind is not DiscountKind.BUNDLE_PRICE:
        assert all(0 <= line.net <= line.list_price for line in quote.lines)
    else:
        assert quote.total == value
