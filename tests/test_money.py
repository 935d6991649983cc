"""Money parsing and storage conversion: exact, strict, and named in every error."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.money import (
    MAX_ABS_AMOUNT,
    MoneyError,
    format_amount,
    from_micros,
    parse_amount,
    round_to_minor,
    to_micros,
)

storable = st.decimals(min_value=-MAX_ABS_AMOUNT, max_value=MAX_ABS_AMOUNT, places=6, allow_nan=False)


@given(storable)
def test_micros_round_trip_is_exact(value: Decimal) -> None:
    assert from_micros(to_micros(value)) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12.50", Decimal("12.50")), (" 1_000.25 ", Decimal("1000.25")), ("-0.000001", Decimal("-0.000001"))],
)
def test_parse_amount_accepts_decimal_text(text: str, expected: Decimal) -> None:
    assert parse_amount(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ten", "expected a decimal number"),
        ("1.0000001", "fraction digits"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("1e15", "magnitude"),
        (0.1, "float"),
    ],
)
def test_parse_amount_refuses_and_names_the_field(value: object, message: str) -> None:
    with pytest.raises(MoneyError, match=f"credit_limit: .*{message}"):
        parse_amount(value, field="credit_limit")  # type: ignore[arg-type]


def test_round_to_minor_is_half_up_once() -> None:
    assert round_to_minor(Decimal("2.005"), 2) == Decimal("2.01")
    assert round_to_minor(Decimal("-2.005"), 2) == Decimal("-2.01")
    assert round_to_minor(Decimal("1234.5"), 0) == Decimal("1235")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("12.5", "12.50"),
        ("-24.900000", "-24.90"),
        ("0.000001", "0.000001"),
        ("1234567.1", "1,234,567.10"),
        ("0", "0.00"),
    ],
)
def test_format_amount_shows_cents_when_exact_and_never_rounds(value: str, shown: str) -> None:
    assert format_amount(Decimal(value)) == shown
