"""What every payment-file parser shares: the result types, the errors and the field checks.

The public face is :mod:`billing.payment_files` (which re-exports these names); the format
modules (``payment_formats_csv``, ``payment_formats_1c``, ``payment_formats_camt``) build on this
one so that an amount, a date or a currency is judged the same way whatever the file's format,
and a bad line is reported with the same words.

Pure: no database, no clock, no network. A line that cannot be used becomes a :class:`BadLine`
naming the field and why; the file goes on. Only a file that cannot be read at all raises
:class:`FileFormatError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from billing.config import CURRENCY_MINOR_UNITS

MAX_KEY_LENGTH = 64
"""Longest line key kept: the import engine prefixes bank and file context and the payment's
``external_id`` holds at most 100 characters."""

BAD_TEXT_LIMIT = 500
"""A bad line's text is cut to this many characters in the report."""


class PaymentFileError(ValueError):
    """Base of the errors a payment file or a format preset can raise."""


class FileFormatError(PaymentFileError):
    """The file cannot be read as the declared format at all (wrong format, broken, undecodable)."""


class PresetError(PaymentFileError):
    """A CSV format preset (``conf/payment_formats/NAME.toml``) is invalid; the message names
    the file, the key and what was expected."""


class UnknownFormat(PaymentFileError):
    """The format name is none of the known ones (the message lists them)."""


class LineError(Exception):
    """Raised inside a parser for one bad line; ``reason`` names the field (``"amount: ..."``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, init=False)
class StatementLine:
    """One incoming payment read from a file.

    ``line_no`` is where it starts in the file (1-based physical line; camt.053: the line of the
    ``Ntry`` element; 1C: the line of ``СекцияДокумент``). ``key`` is the line's idempotency key
    inside its bank: the bank's reference when the format has one, else a content hash
    (32 hex digits); never prefixed, at most :data:`MAX_KEY_LENGTH` characters, the same on every
    import of the same file. ``amount`` is positive, with at most the currency's minor-unit
    digits. ``paid_at`` is the moment of payment when the file gives one with a UTC offset
    (registry ``paid_at``, camt.053 ``BookgDt/DtTm``), else None.
    """

    line_no: int
    key: str
    booked_on: date
    amount: Decimal
    currency: str
    account: str | None
    contract: str | None
    payer: str
    purpose: str
    paid_at: datetime | None = None

    def __init__(
        self,
        line_no: int,
        key: str,
        booked_on: date,
        amount: Decimal,
        currency: str,
        account: str | None,
        contract: str | None,
        payer: str,
        purpose: str,
        paid_at: datetime | None = None,
    ) -> None:
        # The generated frozen __init__ sets each field through object.__setattr__: a third of
        # the time of a million-line import. Filling __dict__ at once is the same, twice as fast.
        self.__dict__.update(
            line_no=line_no, key=key, booked_on=booked_on, amount=amount, currency=currency,
            account=account, contract=contract, payer=payer, purpose=purpose, paid_at=paid_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was not used: ``reason`` starts with the field (``"amount: must be positive..."``);
    ``text`` is the line as read (cut to :data:`BAD_TEXT_LIMIT` characters)."""

    line_no: int
    reason: str
    text: str


@dataclass(frozen=True)
class ParsedFile:
    """A parsed file: its good ``lines`` and its ``bad`` ones, both in file order.

    ``sha256`` is the hex digest of the raw bytes (the import engine's file-level idempotency).
    ``period`` is the half-open ``[start, end)`` range of days the file says it covers (1C
    ``ДатаНачала``/``ДатаКонца``, camt.053 ``FrToDt``), or None when it says nothing.
    """

    format: str
    sha256: str
    lines: tuple[StatementLine, ...]
    bad: tuple[BadLine, ...]
    period: tuple[date, date] | None = None
    skipped: int = 0
    """Lines that are not incoming payments (debits), left out on purpose and not reported as bad."""

    @property
    def total(self) -> Decimal:
        """Sum of the good lines' amounts."""
        return sum((line.amount for line in self.lines), Decimal(0))


def check_currency(currency: str) -> str:
    """The billing currency argument, checked: an upper-case code we bill in."""
    code = currency.strip().upper()
    if code not in CURRENCY_MINOR_UNITS:
        raise ValueError(f"currency: expected one of {', '.join(CURRENCY_MINOR_UNITS)}, got {currency!r}")
    return code


def line_currency(text: str, billing_currency: str) -> str:
    """A line's currency code, refused when unknown or not the billing currency."""
    code = text.strip().upper()
    if code == billing_currency:
        return code
    if code not in CURRENCY_MINOR_UNITS:
        raise LineError(f"currency: unknown currency {text.strip()!r}")
    raise LineError(f"currency: expected {billing_currency}, got {code}")


class AmountReader:
    """Reads amounts exactly (Decimal), with the file's decimal and thousands separators.

    Refuses malformed text, zero, more than the currency's minor-unit digits and more than 14
    integer digits (``NUMERIC(20,6)``). A negative amount is returned negative: the caller decides
    whether it is a debit to skip or a bad line. Built once per file (the pattern is compiled
    there), used per line.
    """

    def __init__(self, *, decimal_separator: str = ".", thousands_separator: str = "") -> None:
        dec = re.escape(decimal_separator)
        seps = [thousands_separator] if thousands_separator else []
        if thousands_separator == " ":
            seps += ["\u00a0", "\u202f"]  # banks write non-breaking spaces as often as spaces
        self._separators = tuple(seps)
        self._decimal = decimal_separator
        self._plain = not seps and decimal_separator == "."
        plain = rf"[+-]?\d{{1,14}}(?:{dec}\d+)?"
        if seps:
            group = "[" + "".join(re.escape(s) for s in seps) + "]"
            grouped = rf"[+-]?\d{{1,3}}(?:{group}\d{{3}}){{1,4}}(?:{dec}\d+)?"
            self._fullmatch = re.compile(rf"{grouped}|{plain}").fullmatch
        else:
            self._fullmatch = re.compile(plain).fullmatch
        self._quanta = {code: Decimal(1).scaleb(-places) for code, places in CURRENCY_MINOR_UNITS.items()}
        self._cache: dict[str, dict[str, Decimal]] = {}

    def read(self, text: str, currency: str) -> Decimal:
        """The amount in ``text`` quantized to the currency's minor unit; sign kept; LineError if bad."""
        cache = self._cache.get(currency)
        if cache is None:
            cache = self._cache[currency] = {}
        found = cache.get(text)
        if found is not None:
            return found
        value = self._read(text, currency)
        if len(cache) < 100_000:  # amounts repeat (tariff prices): reading once is enough
            cache[text] = value
        return value

    def _read(self, text: str, currency: str) -> Decimal:
        if self._fullmatch(text) is None:
            text = text.strip()
            if self._fullmatch(text) is None:
                raise LineError(f"amount: expected a number such as 1234{self._decimal}50, got {text!r}")
        if self._plain:
            value = Decimal(text)  # the pattern admits only [+-]digits[.digits]
        else:
            digits = text
            for sep in self._separators:
                digits = digits.replace(sep, "")
            value = Decimal(digits.replace(self._decimal, "."))
        quantum = self._quanta[currency]
        rounded = value.quantize(quantum)
        if rounded != value:
            places = -quantum.as_tuple().exponent
            raise LineError(f"amount: at most {places} decimal places in {currency}, got {text.strip()}")
        if not rounded:
            raise LineError(f"amount: must be positive, got {text.strip()}")
        return rounded


def positive(amount: Decimal, text: str) -> Decimal:
    """``amount`` if positive, else the bad-line error for a negative amount."""
    if amount < 0:
        raise LineError(f"amount: must be positive, got {text.strip()}")
    return amount


def content_key(*parts: object) -> str:
    """A deterministic key for a line without a bank reference: 32 hex digits of SHA-256 over the
    parts (normalized values, not raw text, so a re-export with other columns keeps the key)."""
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def check_key(text: str) -> str:
    """A bank's reference used as a line key: stripped, not empty, at most MAX_KEY_LENGTH."""
    key = text.strip()
    if not key:
        raise LineError("key: missing")
    if len(key) > MAX_KEY_LENGTH:
        raise LineError(f"key: at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    return key


class Collector:
    """Gathers good and bad lines of one file; a second line with a key already seen is bad."""

    def __init__(self) -> None:
        self.lines: list[StatementLine] = []
        self.bad: list[BadLine] = []
        self.skipped = 0
        self._seen: dict[str, int] = {}

    def good(self, line: StatementLine, text: str | Callable[[], str]) -> None:
        """Keep ``line`` unless its key was seen before in this file (``text``: the line's text,
        or a function making it, called only for a duplicate)."""
        first = self._seen.setdefault(line.key, line.line_no)
        if first != line.line_no:
            reason = f"key: duplicate of line {first} (key {line.key!r})"
            self.reject(line.line_no, reason, text if isinstance(text, str) else text())
        else:
            self.lines.append(line)

    def reject(self, line_no: int, reason: str, text: str) -> None:
        """Report line ``line_no`` as bad."""
        self.bad.append(BadLine(line_no, reason, text.rstrip("\r\n")[:BAD_TEXT_LIMIT]))

    def result(self, fmt: str, sha256: str, period: tuple[date, date] | None = None) -> ParsedFile:
        """The parsed file, bad lines in file order."""
        self.bad.sort(key=lambda b: b.line_no)
        return ParsedFile(fmt, sha256, tuple(self.lines), tuple(self.bad), period, self.skipped)
