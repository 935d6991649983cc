"""Typed, problem-collecting access to one parsed TOML table of a tariff catalog.

The catalog loader walks the parsed document with :class:`Table`: each getter checks one key's
TOML type and shape and returns the value, or records a :class:`CatalogProblem` naming the key
path (``tariffs[2].versions[0].fee``) and what was expected, and returns ``None``. Nothing stops
at the first problem, so one import reports everything wrong with the file. Keys that no getter
asked for are reported as unknown by :meth:`Table.done`, with a close-match hint.

The schema is therefore the loading code itself (one place, no second description to drift).
Problems carry the position of their key in the document (tomllib keeps file order), so the
final report reads top to bottom like the file, whatever order the loader checked things in.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from rating.money import MAX_ABS_AMOUNT, STORAGE_PLACES, MoneyError, parse_amount

__all__ = [
    "AMOUNT_EXPECTED",
    "CURRENCY_EXPECTED",
    "CatalogError",
    "CatalogProblem",
    "Problems",
    "Table",
    "choices_text",
    "read_versions",
    "show",
    "unique_code",
]

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

AMOUNT_EXPECTED = "a decimal amount such as 25.00 (quoted string)"
PERCENT_EXPECTED = 'a percentage above 0 and at most 100 such as "12.5" (quoted string) or 50'
CODE_EXPECTED = (
    'a code of letters, digits, "_", "-" and "." starting with a letter or digit (at most 64 characters)'
)
CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
CURRENCY_EXPECTED = 'an ISO 4217 currency code such as "EUR" (three uppercase letters)'
NAME_PATTERN = CODE_PATTERN
NAME_EXPECTED = 'a name of letters, digits, "_", "-" and "." such as "business" (at most 64 characters)'
MAX_VERSION = 1_000_000
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class CatalogProblem:
    """One thing wrong with a catalog: the source, the key path and what was expected there."""

    source: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.message}" if self.key else f"{self.source}: {self.message}"


class CatalogError(ValueError):
    """A catalog was refused; :attr:`problems` lists every reason, in document order."""

    def __init__(self, problems: list[CatalogProblem] | tuple[CatalogProblem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Problems:
    """The problems found so far, each with its document position for sorting at the end."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._found: list[tuple[tuple[int, ...], int, CatalogProblem]] = []

    def __len__(self) -> int:
        return len(self._found)

    def add(self, position: tuple[int, ...], key: str, message: str) -> None:
        problem = CatalogProblem(self.source, key, message)
        self._found.append((position, len(self._found), problem))

    def in_document_order(self) -> list[CatalogProblem]:
        return [problem for _, _, problem in sorted(self._found, key=lambda f: (f[0], f[1]))]


_MISSING = object()


class Table:
    """One TOML table being read; see the module docstring.

    ``path`` is the table's key path (empty for the document); ``position`` its place in the
    document, a tuple of key and array indices that sorts in file order.
    """

    def __init__(
        self, raw: Mapping[str, Any], path: str, problems: Problems, position: tuple[int, ...] = ()
    ) -> None:
        self.raw = raw
        self.path = path
        self.problems = problems
        self.position = position
        self._order = {name: index for index, name in enumerate(raw)}
        self._asked: dict[str, None] = {}
        self._start = len(problems)

    # ----------------------------------------------------------------- reporting

    def key(self, name: str) -> str:
        """The full key path of ``name`` in this table."""
        return f"{self.path}.{name}" if self.path else name

    def where(self, name: str) -> tuple[int, ...]:
        """Document position of ``name``: where it is written, or after the table's last key."""
        return (*self.position, self._order.get(name, len(self._order)))

    def error(self, name: str, message: str) -> None:
        """Record a problem with key ``name`` of this table."""
        self.problems.add(self.where(name), self.key(name), message)

    def item_error(self, name: str, index: int, message: str) -> None:
        """Record a problem with element ``index`` of the array at key ``name``."""
        self.problems.add((*self.where(name), index), f"{self.key(name)}[{index}]", message)

    def clean(self) -> bool:
        """Report unknown keys; ``True`` if nothing was wrong in this table or below it."""
        self.done()
        return len(self.problems) == self._start

    def done(self) -> None:
        """Report every key of the table that no getter asked for."""
        for name in self.raw:
            if name not in self._asked:
                close = difflib.get_close_matches(name, list(self._asked), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.error(name, f"unknown key{hint}; known keys here: {', '.join(self._asked)}")
        self._asked.update(dict.fromkeys(self.raw))  # report each unknown key once

    # ----------------------------------------------------------------- getters

    def _get(self, name: str, required: bool, expected: str) -> Any:
        self._asked[name] = None
        if name in self.raw:
            return self.raw[name]
        if required:
            self.error(name, f"required key missing; expected {expected}")
        return _MISSING

    def _wrong(self, name: str, expected: str, raw: object, reason: str = "") -> None:
        self.error(name, f"expected {expected}, got {show(raw)}{reason}")

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        pattern: re.Pattern[str] | None = None,
        expected: str = "a non-empty string",
    ) -> str | None:
        """A non-empty string (matching ``pattern`` in full when given)."""
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        if not isinstance(raw, str) or not raw.strip() or (pattern and not pattern.fullmatch(raw)):
            self._wrong(name, expected, raw)
            return None
        return raw

    def code(self, name: str = "code", *, required: bool = True) -> str | None:
        """An identifier: tariff, bundle, promotion or fee code."""
        return self.text(name, required=required, pattern=CODE_PATTERN, expected=CODE_EXPECTED)

    def currency(self, name: str = "currency", *, required: bool = True) -> str | None:
        """An ISO 4217 code; whether the operator bills in it is the database layer's question."""
        return self.text(name, required=required, pattern=CURRENCY_PATTERN, expected=CURRENCY_EXPECTED)

    def integer(self, name: str, *, low: int, high: int, required: bool = True, unit: str = "") -> int | None:
        """A TOML integer from ``low`` to ``high``."""
        expected = f"an integer from {low} to {high}" + (f" ({unit})" if unit else "")
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            self._wrong(name, expected, raw)
            return None
        return raw

    def flag(self, name: str, *, required: bool = True) -> bool | None:
        """``true`` or ``false``."""
        raw = self._get(name, required, "true or false")
        if raw is _MISSING:
            return None
        if not isinstance(raw, bool):
            self._wrong(name, "true or false", raw)
            return None
        return raw

    def day(self, name: str, *, required: bool = True) -> date | None:
        """A TOML local date (``2025-01-01``, unquoted); date-times and strings are refused."""
        expected = "a date such as 2025-01-01 (TOML date, unquoted)"
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        if not isinstance(raw, date) or isinstance(raw, datetime):
            self._wrong(name, expected, raw)
            return None
        return raw

    def clock(self, name: str, *, required: bool = True) -> time | None:
        """A TOML local time (``07:00:00``, unquoted, seconds required by TOML 1.0)."""
        expected = "a time of day such as 07:00:00 (TOML local time, unquoted)"
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        if not isinstance(raw, time) or raw.tzinfo is not None:
            self._wrong(name, expected, raw)
            return None
        return raw

    def amount(self, name: str, *, required: bool = True) -> Decimal | None:
        """Money: a quoted decimal string or an integer, never a float (floats are not exact)."""
        raw = self._get(name, required, AMOUNT_EXPECTED)
        if raw is _MISSING:
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            self._wrong(name, AMOUNT_EXPECTED, raw)
            return None
        try:
            value = parse_amount(raw, field=self.key(name))
        except MoneyError:
            self._wrong(name, AMOUNT_EXPECTED, raw, _why_not_money(raw))
            return None
        if value < 0:
            self._wrong(name, AMOUNT_EXPECTED, raw, "; amounts here cannot be negative")
            return None
        return value

    def percent(self, name: str, *, required: bool = True) -> Decimal | None:
        """A percentage in (0, 100], written like an amount (quoted decimal or integer)."""
        raw = self._get(name, required, PERCENT_EXPECTED)
        if raw is _MISSING:
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            self._wrong(name, PERCENT_EXPECTED, raw)
            return None
        try:
            value = parse_amount(raw, field=self.key(name))
        except MoneyError:
            self._wrong(name, PERCENT_EXPECTED, raw)
            return None
        if not 0 < value <= _HUNDRED:
            self._wrong(name, PERCENT_EXPECTED, raw)
            return None
        return value

    def choice(self, name: str, choices: type[E], *, required: bool = True) -> E | None:
        """One of an enumeration's values, written as a string."""
        expected = "one of " + ", ".join(f'"{c.value}"' for c in choices)
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        if not isinstance(raw, str) or raw not in choices._value2member_map_:
            self._wrong(name, expected, raw)
            return None
        return choices(raw)

    def codes(
        self,
        name: str,
        *,
        required: bool = True,
        minimum: int = 0,
        choices: tuple[str, ...] = (),
    ) -> tuple[str, ...] | None:
        """An array of distinct codes (at least ``minimum``; each one of ``choices`` if given)."""
        what = "codes" if not choices else "values from " + choices_text(choices)
        expected = f"an array of at least {minimum} distinct {what}" if minimum else f"an array of {what}"
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        if not isinstance(raw, list) or len(raw) < minimum:
            self._wrong(name, expected, raw)
            return None
        ok = True
        seen: dict[str, int] = {}
        item_expected = CODE_EXPECTED if not choices else "one of " + choices_text(choices)
        for index, item in enumerate(raw):
            valid = isinstance(item, str) and (item in choices if choices else CODE_PATTERN.fullmatch(item))
            if not valid:
                self.item_error(name, index, f"expected {item_expected}, got {show(item)}")
                ok = False
            elif item in seen:
                self.item_error(name, index, f'duplicate "{item}" (also at {self.key(name)}[{seen[item]}])')
                ok = False
            else:
                seen[item] = index
        return tuple(raw) if ok else None

    def parsed(
        self, name: str, parse: Callable[[object], T | None], expected: str, *, required: bool = True
    ) -> T | None:
        """A value of a shape of its own: ``parse`` returns it, or ``None`` when it is not valid."""
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        value = parse(raw)
        if value is None:
            self._wrong(name, expected, raw)
        return value

    def table(self, name: str, *, required: bool = False, expected: str = "a table") -> Table | None:
        """A sub-table (``[a.b]`` or an inline table), or ``None`` when absent or not a table."""
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return None
        if not isinstance(raw, dict):
            self._wrong(name, expected, raw)
            return None
        return Table(raw, self.key(name), self.problems, self.where(name))

    def tables(self, name: str, *, required: bool = False, minimum: int = 0) -> list[Table] | None:
        """An array of tables (``[[a.b]]`` blocks); ``[]`` when absent, ``None`` when malformed."""
        header = re.sub(r"\[\d+\]", "", self.key(name))  # tariffs[2].versions -> tariffs.versions
        expected = f"an array of tables ([[{header}]] blocks)"
        if minimum:
            expected = f"at least {minimum} [[{header}]] block" + ("s" if minimum > 1 else "")
        raw = self._get(name, required, expected)
        if raw is _MISSING:
            return [] if not minimum else None
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            self._wrong(name, expected, raw)
            return None
        if len(raw) < minimum:
            self.error(name, f"expected {expected}, got {len(raw)}")
            return None
        return [
            Table(item, f"{self.key(name)}[{index}]", self.problems, (*self.where(name), index))
            for index, item in enumerate(raw)
        ]


class Versioned(Protocol):
    """What :func:`read_versions` checks: a tariff or bundle version."""

    @property
    def number(self) -> int: ...

    @property
    def effective_from(self) -> date: ...


V = TypeVar("V", bound=Versioned)


def read_versions(tables: list[Table], read: Callable[[Table], V | None]) -> tuple[V, ...] | None:
    """Read versions and check they are numbered upwards and start on later and later days.

    Two versions effective from the same day would overlap; a version dated before the one
    listed above it would make the list order lie. Both are import errors.
    """
    versions = [read(t) for t in tables]
    previous: tuple[Table, V] | None = None
    for table, version in zip(tables, versions, strict=True):
        if version is None:
            continue
        if previous is not None:
            before_table, before = previous
            where = before_table.path.rsplit(".", 1)[-1]
            if version.number <= before.number:
                table.error(
                    "version",
                    f"{version.number} is not above {where}.version {before.number};"
                    " number versions upwards in the order they are listed",
                )
            if version.effective_from == before.effective_from:
                table.error(
                    "effective_from",
                    f"{version.effective_from} overlaps {where}, also effective from that day;"
                    " each version must start after the one before",
                )
            elif version.effective_from < before.effective_from:
                table.error(
                    "effective_from",
                    f"{version.effective_from} is before {where}.effective_from {before.effective_from};"
                    " list versions oldest first",
                )
        previous = (table, version)
    if any(v is None for v in versions):
        return None
    return tuple(v for v in versions if v is not None)


def unique_code(table: Table, code: str | None, seen: dict[str, str], what: str) -> None:
    """Report ``code`` if an earlier table of the same array used it; remember it otherwise."""
    if code is None:
        return
    if code in seen:
        table.error("code", f'duplicate {what} code "{code}" (first at {seen[code]})')
    else:
        seen[code] = table.key("code")


def choices_text(choices: Iterable[object]) -> str:
    """``"a", "b", "c"`` for messages."""
    return ", ".join(f'"{c}"' for c in choices)


def _why_not_money(raw: str | int) -> str:
    """What is wrong with a number :func:`parse_amount` refused, when it is a number at all."""
    try:
        number = Decimal(str(raw).strip().replace("_", ""))
    except InvalidOperation:
        return ""
    if not number.is_finite():
        return ""
    if abs(number) > MAX_ABS_AMOUNT:
        return f"; larger than {MAX_ABS_AMOUNT}"
    return f"; at most {STORAGE_PLACES} fraction digits"


def show(value: object) -> str:
    """Render a TOML value for a message as the operator wrote it, with its TOML type."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, str):
        return f"{_quoted(value)} (a string)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value!r} (a float)"
    if isinstance(value, datetime):
        return f"{value.isoformat()} (a date-time)"
    if isinstance(value, date):
        return f"{value.isoformat()} (a date)"
    if isinstance(value, time):
        return f"{value.isoformat()} (a time)"
    return repr(value)


def _quoted(text: str, limit: int = 60) -> str:
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'
