"""Money as ``Decimal``: strict parsing and the single rounding step to a currency's minor unit.

Amounts are stored with six fraction digits (``NUMERIC(20,6)``); rounding to the currency's minor
unit happens once, where a document needs it (invoice line, payment), with ROUND_HALF_UP unless a
tariff says otherwise. Floats are refused everywhere: they cannot hold 0.1 exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction

STORAGE_PLACES = 6
"""Fraction digits kept in storage and in the ledger."""

MAX_ABS_AMOUNT = Decimal("99999999999999.999999")
"""Largest magnitude that fits ``NUMERIC(20,6)``."""

_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)
_MAX_MICROS = int(MAX_ABS_AMOUNT.scaleb(STORAGE_PLACES))


class MoneyError(ValueError):
    """An amount that is not a valid money value (not a number, too precise, out of range)."""


def parse_amount(text: str | Decimal | int, *, field: str = "amount") -> Decimal:
    """Parse an operator- or machine-supplied amount exactly, naming ``field`` in any error.

    Accepts ``Decimal``, ``int`` and decimal strings such as ``"12.50"``; refuses floats,
    NaN/infinity, exponents that hide precision, more than six fraction digits and values
    outside ``NUMERIC(20,6)``.
    """
    if isinstance(text, bool | float):
        raise MoneyError(f"{field}: expected a decimal number, got a {type(text).__name__}")
    if isinstance(text, Decimal):
        value = text
    elif isinstance(text, int):
        value = Decimal(text)
    else:
        raw = str(text).strip().replace("_", "")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise MoneyError(f"{field}: expected a decimal number such as 12.50, got {text!r}") from None
    return check_storable(value, field=field)


def check_storable(value: Decimal, *, field: str = "amount") -> Decimal:
    """Return ``value`` unchanged if it can be stored exactly, else raise ``MoneyError``."""
    to_micros(value, field=field)
    return value


def to_micros(value: Decimal, *, field: str = "amount") -> int:
    """Exact integer count of millionths (the SQLite storage form, and what seals hash).

    Raises ``MoneyError`` naming ``field`` for NaN/infinity, more than six fraction digits or a
    magnitude outside ``NUMERIC(20,6)``. This is on the ledger's hot path: keep it cheap.
    """
    try:
        scaled = value.scaleb(STORAGE_PLACES)
        micros = int(scaled)
    except (ValueError, OverflowError):
        raise MoneyError(f"{field}: expected a finite number, got {value}") from None
    if scaled != micros:
        raise MoneyError(f"{field}: at most {STORAGE_PLACES} fraction digits, got {value}")
    if not -_MAX_MICROS <= micros <= _MAX_MICROS:
        raise MoneyError(f"{field}: magnitude above {MAX_ABS_AMOUNT}, got {value}")
    return micros


def from_micros(micros: int) -> Decimal:
    """Inverse of :func:`to_micros`, always with six fraction digits."""
    return Decimal(micros).scaleb(-STORAGE_PLACES).quantize(_QUANTUM)


def round_to_minor(value: Decimal, minor_units: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    """The one rounding step: to the currency's minor unit (2 for EUR, 0 for JPY)."""
    return value.quantize(Decimal(1).scaleb(-minor_units), rounding=rounding)


def normalize(value: Decimal) -> Decimal:
    """Six-fraction-digit form, used wherever amounts are compared or hashed."""
    return check_storable(value).quantize(_QUANTUM)


def format_amount(value: Decimal, places: int = 2) -> str:
    """Text for people: ``places`` fraction digits when that is exact, every digit otherwise.

    Display only: nothing is rounded (12.5 shows as 12.50, 0.000001 stays 0.000001).
    """
    rounded = value.quantize(Decimal(1).scaleb(-places))
    return f"{rounded if rounded == value else value.normalize():,f}"


class RoundingMode(StrEnum):
    """How a tariff rounds to its minor unit; each maps to one of :mod:`decimal`'s modes."""

    HALF_UP = "half_up"
    """Nearest, ties away from zero (0.125 -> 0.13): the default."""
    HALF_EVEN = "half_even"
    """Nearest, ties to the even digit (0.125 -> 0.12): banker's rounding."""
    UP = "up"
    """Away from zero (0.121 -> 0.13)."""
    DOWN = "down"
    """Towards zero (0.129 -> 0.12)."""

    @property
    def decimal_rounding(self) -> str:
        """The :mod:`decimal` constant (``ROUND_HALF_UP`` ...) for this mode."""
        return _DECIMAL_ROUNDING[self]


_DECIMAL_ROUNDING = {
    RoundingMode.HALF_UP: ROUND_HALF_UP,
    RoundingMode.HALF_EVEN: ROUND_HALF_EVEN,
    RoundingMode.UP: ROUND_UP,
    RoundingMode.DOWN: ROUND_DOWN,
}


@dataclass(frozen=True)
class RoundingRule:
    """A tariff's own rounding: ``places`` fraction digits (0..6) with ``mode``. Never global."""

    places: int = 2
    mode: RoundingMode = RoundingMode.HALF_UP

    def __post_init__(self) -> None:
        if isinstance(self.places, bool) or not isinstance(self.places, int):
            raise MoneyError(f"rounding places: expected an integer, got {self.places!r}")
        if not 0 <= self.places <= STORAGE_PLACES:
            raise MoneyError(f"rounding places: expected 0..{STORAGE_PLACES}, got {self.places}")
        try:
            object.__setattr__(self, "mode", RoundingMode(self.mode))
        except ValueError:
            modes = ", ".join(RoundingMode)
            raise MoneyError(f"rounding mode: expected one of {modes}, got {self.mode!r}") from None

    @property
    def quantum(self) -> Decimal:
        """The smallest step this rule rounds to (``0.01`` for two places)."""
        return Decimal(1).scaleb(-self.places)

    def apply(self, amount: Decimal) -> Decimal:
        """``amount`` rounded to ``places`` digits with ``mode``: the one rounding step."""
        if not isinstance(amount, Decimal):
            raise MoneyError(f"amount to round: expected a Decimal, got a {type(amount).__name__}")
        return amount.quantize(self.quantum, rounding=self.mode.decimal_rounding)

    def apply_fraction(self, value: Fraction) -> Decimal:
        """An exact rational (say a fee times 10/31) rounded with this rule, with no earlier rounding.

        Dividing Decimals would round once to the context precision before this rule rounds
        again; a ``Fraction`` is exact. Under every mode, how ``whole + rest`` rounds (``whole``
        the floor in minor units, ``rest`` in [0, 1)) depends only on whether ``rest`` is zero,
        below, at or above one half, so a Decimal stand-in in the same position rounds alike.
        """
        units = value * 10**self.places
        whole = math.floor(units)
        rest = units - whole
        if rest == 0:
            stand_in = Decimal(0)
        elif rest == Fraction(1, 2):
            stand_in = Decimal("0.5")
        else:
            stand_in = Decimal("0.25") if rest < Fraction(1, 2) else Decimal("0.75")
        rounded = (Decimal(whole) + stand_in).quantize(Decimal(1), rounding=self.mode.decimal_rounding)
        return rounded.scaleb(-self.places).quantize(self.quantum)
