"""CSV payment files described by a per-bank preset (``conf/payment_formats/NAME.toml``).

Why presets: every bank exports its own CSV (encoding, delimiter, header, date and number
styles, column names). A preset is data an operator writes once per bank; the parser is one.

A preset (all keys but ``[columns]`` date and amount have defaults)::

    description = "Demo Bank daily registry"
    encoding = "utf-8"          # Python codec; ASCII-compatible only; utf-8 also takes a BOM
    delimiter = ";"             # one character
    quote = '"'                 # one character
    skip_lines = 0              # physical lines (bank banners) before the header / first row
    header = true               # true: a header row names the columns; false: columns by number
    multiline = false           # true: quoted fields may span lines; false: each line is a record
    date_format = "iso"         # "iso" (YYYY-MM-DD or ISO 8601 date-time WITH a UTC offset) or
                                # a strptime format such as "%d.%m.%Y"
    decimal_separator = "."     # "." or ","
    thousands_separator = ""    # "", " ", "'", "," or "." (" " also takes non-breaking spaces)
    debits = "bad"              # negative amounts: "bad" (reported) or "skip" (left out, counted)
    skip_empty_amount = false   # true: an empty amount cell is a debit line (statements with
                                # separate debit and credit columns), left out, counted
    column_count = 0            # header = false only: expected fields per line (0: no check)

    [columns]                   # header name (header = true) or 1-based number
    key = "txn_id"              # the bank's unique reference, taken as the key; or a list of
                                # columns (["number", "payer_inn"]): the key is a hash of those
                                # cells, the date and the amount; absent: a hash of the line's
                                # date, amount, currency, account, contract, payer and purpose
    date = "paid_at"            # required
    amount = "amount"           # required
    currency = "currency"       # absent or empty cell: the billing currency
    account = "account"         # at least one of account, contract, purpose
    contract = "contract"
    payer = "payer"
    purpose = "purpose"

Speed: stdlib ``csv``, patterns compiled once per file, dates cached per distinct text; a
million-line registry parses in a few seconds.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from billing.payment_formats_base import (
    MAX_KEY_LENGTH,
    AmountReader,
    Collector,
    FileFormatError,
    LineError,
    PresetError,
    StatementLine,
    check_key,
    content_key,
    line_currency,
    positive,
)

PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""A preset's name is its file name without ``.toml``."""

COLUMNS = ("key", "date", "amount", "currency", "account", "contract", "payer", "purpose")
MATCH_COLUMNS = ("account", "contract", "purpose")
_DEFAULTS: dict[str, Any] = {
    "description": "",
    "encoding": "utf-8",
    "delimiter": ",",
    "quote": '"',
    "skip_lines": 0,
    "header": True,
    "multiline": False,
    "date_format": "iso",
    "decimal_separator": ".",
    "thousands_separator": "",
    "debits": "bad",
    "skip_empty_amount": False,
    "column_count": 0,
}


@dataclass(frozen=True)
class CsvPreset:
    """A validated CSV preset (see the module doc for the meaning of each key)."""

    name: str
    description: str
    encoding: str
    delimiter: str
    quote: str
    skip_lines: int
    header: bool
    multiline: bool
    date_format: str
    decimal_separator: str
    thousands_separator: str
    debits: str
    skip_empty_amount: bool
    column_count: int
    columns: Mapping[str, str | int | list[str | int]]


def preset_names(presets_dir: Path) -> list[str]:
    """Names of the presets in ``presets_dir`` (files ``NAME.toml``), sorted; none if no such folder."""
    if not presets_dir.is_dir():
        return []
    return sorted(p.stem for p in presets_dir.glob("*.toml") if PRESET_NAME.match(p.stem))


def load_preset(path: Path) -> CsvPreset:
    """Read and check one preset file; PresetError lists every problem with file, key and expectation."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PresetError(f"{path}: cannot read the preset: {exc}") from None
    problems: list[str] = []

    def problem(key: str, expected: str) -> None:
        value = raw.get(key) if "." not in key else columns.get(key.split(".", 1)[1])
        problems.append(f"{path}: {key}: expected {expected}, got {value!r}")

    for key in sorted(set(raw) - set(_DEFAULTS) - {"columns"}):
        problems.append(f"{path}: {key}: unknown key (known: {', '.join([*_DEFAULTS, 'columns'])})")
    values = {**_DEFAULTS, **{k: v for k, v in raw.items() if k in _DEFAULTS}}
    columns = raw.get("columns", {})
    if not isinstance(columns, dict):
        problems.append(f"{path}: columns: expected a table [columns], got {columns!r}")
        columns = {}

    for key in ("description", "encoding", "delimiter", "quote", "date_format"):
        if not isinstance(values[key], str):
            problem(key, "a string")
    for key in ("header", "multiline", "skip_empty_amount"):
        if not isinstance(values[key], bool):
            problem(key, "true or false")
    for key in ("skip_lines", "column_count"):
        if isinstance(values[key], bool) or not isinstance(values[key], int) or values[key] < 0:
            problem(key, "a whole number >= 0")
    if isinstance(values["encoding"], str) and not _ascii_compatible(values["encoding"]):
        problem("encoding", "an ASCII-compatible encoding known to Python such as utf-8 or cp1251")
    for key in ("delimiter", "quote"):
        if isinstance(values[key], str) and (len(values[key]) != 1 or values[key] in "\r\n"):
            problem(key, "one character")
    if values["decimal_separator"] not in (".", ","):
        problem("decimal_separator", "'.' or ','")
    if values["thousands_separator"] not in ("", " ", "'", ",", "."):
        problem("thousands_separator", "one of '', ' ', \"'\", ',', '.'")
    elif values["thousands_separator"] and values["thousands_separator"] == values["decimal_separator"]:
        problem("thousands_separator", "a character other than decimal_separator")
    if values["debits"] not in ("bad", "skip"):
        problem("debits", "'bad' or 'skip'")
    if isinstance(values["date_format"], str) and not _date_format_ok(values["date_format"]):
        problem("date_format", "'iso' or a strptime format with day, month and year such as '%d.%m.%Y'")
    if values["column_count"] and values["header"] is True:
        problem("column_count", "0 when header = true (the header gives the count)")

    for key in sorted(set(columns) - set(COLUMNS)):
        problems.append(f"{path}: columns.{key}: unknown column (known: {', '.join(COLUMNS)})")
    for key in ("date", "amount"):
        if key not in columns:
            problems.append(f"{path}: columns.{key}: required")
    if not any(key in columns for key in MATCH_COLUMNS):
        problems.append(f"{path}: columns: expected at least one of {', '.join(MATCH_COLUMNS)}")
    for key, ref in columns.items():
        if key not in COLUMNS:
            continue
        refs = ref if key == "key" and isinstance(ref, list) and ref else [ref]
        for one in refs:
            if values["header"] is True:
                if not isinstance(one, str) or not one.strip():
                    what = "a header name or a list of them" if key == "key" else "a header name"
                    problem(f"columns.{key}", f"{what} (header = true)")
            elif isinstance(one, bool) or not isinstance(one, int) or one < 1:
                what = "a column number >= 1 or a list of them" if key == "key" else "a column number >= 1"
                problem(f"columns.{key}", f"{what} (header = false)")
            elif values["column_count"] and one > values["column_count"]:
                problem(f"columns.{key}", f"column numbers <= column_count ({values['column_count']})")
    if problems:
        raise PresetError("\n".join(problems))
    return CsvPreset(name=path.stem, columns=dict(columns), **values)


def _ascii_compatible(encoding: str) -> bool:
    try:
        codecs.lookup(encoding)
        return "a;1\r\n".encode(encoding) == b"a;1\r\n" and not encoding.lower().startswith("utf-16")
    except (LookupError, UnicodeError):
        return False


def _date_format_ok(fmt: str) -> bool:
    if fmt == "iso":
        return True
    sample = date(2026, 12, 31)
    try:
        return datetime.strptime(sample.strftime(fmt), fmt).date() == sample
    except ValueError:
        return False


class DateReader:
    """Reads a line's date (and, for ISO date-times with an offset, the moment), caching plain dates."""

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._cache: dict[str, date] = {}

    def read(self, text: str) -> tuple[date, datetime | None]:
        """``(booked_on, paid_at)``; LineError naming ``date`` when the text is not a date."""
        found = self._cache.get(text)
        if found is not None:
            return found, None
        value = text.strip()
        try:
            if self._fmt != "iso":
                day = datetime.strptime(value, self._fmt).date()
            elif len(value) == 10:
                day = date.fromisoformat(value)
            else:
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise LineError(f"date: {value!r} has no UTC offset (such as +03:00 or Z)")
                return moment.date(), moment
        except ValueError:
            shown = "YYYY-MM-DD or an ISO 8601 date-time" if self._fmt == "iso" else self._fmt
            raise LineError(f"date: expected {shown}, got {value!r}") from None
        if len(self._cache) < 10_000:
            self._cache[text] = day
        return day, None


def decode(data: bytes, encoding: str) -> tuple[str, dict[int, str]]:
    """The text of ``data``; lines that do not decode become empty lines, reported by line number."""
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        return codecs.decode(data, codec), {}
    except UnicodeDecodeError:
        pass
    parts: list[str] = []
    broken: dict[int, str] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            parts.append(codecs.decode(raw, codec if number == 1 else encoding))
        except UnicodeDecodeError as exc:
            broken[number] = f"encoding: not valid {encoding} at byte {exc.start + 1} of the line"
            parts.append("")
    lines = sum(1 for part in parts if part.strip()) + len(broken)
    if len(broken) * 2 > lines:
        raise FileFormatError(
            f"encoding: the file is not {encoding} ({len(broken)} of {lines} lines do not decode)"
        )
    return "\n".join(parts), broken


def parse_csv(data: bytes, preset: CsvPreset, currency: str, out: Collector) -> None:
    """Parse ``data`` with ``preset`` into ``out`` (good, bad and skipped lines)."""
    text, broken = decode(data, preset.encoding)
    raw_lines = io.StringIO(text, newline="").readlines()
    if broken:
        raw = data.split(b"\n")
        for number, reason in broken.items():
            out.reject(number, reason, raw[number - 1].decode(preset.encoding, "replace"))
    records = _records(raw_lines, min(preset.skip_lines, len(raw_lines)), preset, out)
    index, width = _column_index(preset, records)
    _rows(records, raw_lines, index, width, preset, currency, out)


def _records(
    raw_lines: list[str], start: int, preset: CsvPreset, out: Collector
) -> Iterator[tuple[int, list[str]]]:
    """``(line_no, fields)`` per record; broken records are reported to ``out`` and left out."""
    reader = csv.reader(
        iter(raw_lines[start:]), delimiter=preset.delimiter, quotechar=preset.quote, strict=True
    )
    consumed = 0
    while True:
        try:
            row = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:
            row, error = [], str(exc)
        first = start + consumed + 1
        count = reader.line_num - consumed
        consumed = reader.line_num
        if count > 1 and not preset.multiline:
            yield from _single_lines(first, raw_lines[first - 1 : first - 1 + count], preset, out)
        elif error is not None:
            out.reject(
                first, f"line: broken CSV ({error})", "".join(raw_lines[first - 1 : first - 1 + count])
            )
        elif row:
            yield first, row


def _single_lines(
    first: int, lines: list[str], preset: CsvPreset, out: Collector
) -> Iterator[tuple[int, list[str]]]:
    """Re-read a multi-line record line by line (multiline = false): an unclosed quote spoils one line."""
    for offset, line in enumerate(lines):
        try:
            rows = list(csv.reader([line], delimiter=preset.delimiter, quotechar=preset.quote, strict=True))
        except csv.Error as exc:
            out.reject(first + offset, f"line: broken CSV ({exc})", line)
            continue
        if rows and rows[0]:
            yield first + offset, rows[0]


def _column_index(
    preset: CsvPreset, records: Iterator[tuple[int, list[str]]]
) -> tuple[dict[str, list[int]], int]:
    """Field positions per column and the expected field count (0: no check); reads the header."""
    refs = {key: ref if isinstance(ref, list) else [ref] for key, ref in preset.columns.items()}
    if not preset.header:
        return {key: [int(r) - 1 for r in rs] for key, rs in refs.items()}, preset.column_count
    header = next(records, None)
    if header is None:
        raise FileFormatError(f"header: the file has no header line (preset {preset.name})")
    names = [name.strip().lstrip("\ufeff") for name in header[1]]
    index: dict[str, list[int]] = {}
    for key, rs in refs.items():
        try:
            index[key] = [names.index(str(r).strip()) for r in rs]
        except ValueError:
            missing = next(r for r in rs if str(r).strip() not in names)
            raise FileFormatError(
                f"header: line {header[0]}: no column {missing!r} for {key} (preset {preset.name}); "
                f"found {', '.join(repr(n) for n in names)}"
            ) from None
    return index, len(names)


def _rows(
    records: Iterator[tuple[int, list[str]]],
    raw_lines: list[str],
    index: dict[str, list[int]],
    width: int,
    preset: CsvPreset,
    currency: str,
    out: Collector,
) -> None:
    """Turn records into statement lines: the hot loop (a million lines in a few seconds), kept lean."""
    read_amount = AmountReader(
        decimal_separator=preset.decimal_separator, thousands_separator=preset.thousands_separator
    ).read
    read_date = DateReader(preset.date_format).read
    one = {key: positions[0] for key, positions in index.items()}
    i_date, i_amount = one["date"], one["amount"]
    i_cur, i_acc, i_con = one.get("currency"), one.get("account"), one.get("contract")
    i_payer, i_purpose = one.get("payer"), one.get("purpose")
    i_key = one.get("key") if not isinstance(preset.columns.get("key"), list) else None
    key_cells = index["key"] if isinstance(preset.columns.get("key"), list) else None
    needed = max(max(positions) for positions in index.values()) + 1
    skip_debits, skip_empty = preset.debits == "skip", preset.skip_empty_amount
    seen: dict[str, int] = {}
    keep = out.lines.append
    for line_no, row in records:
        try:
            if (len(row) != width and width) or len(row) < needed:
                raise LineError(f"columns: expected {width or f'at least {needed}'} fields, got {len(row)}")
            amount_text = row[i_amount]
            if not amount_text or amount_text.isspace():
                if not any(cell and not cell.isspace() for cell in row):
                    continue  # a row of empty cells (";;;;" at the end of some exports) is a blank line
                if skip_empty:
                    out.skipped += 1
                    continue
                raise LineError("amount: missing")
            code = currency
            if i_cur is not None:
                code = row[i_cur]
                if code != currency:
                    code = line_currency(code, currency) if code.strip() else currency
            amount = read_amount(amount_text, code)
            if amount < 0:
                if skip_debits:
                    out.skipped += 1
                    continue
                positive(amount, amount_text)
            booked_on, paid_at = read_date(row[i_date])
            account = (row[i_acc].strip() or None) if i_acc is not None else None
            contract = (row[i_con].strip() or None) if i_con is not None else None
            payer = row[i_payer].strip() if i_payer is not None else ""
            purpose = row[i_purpose].strip() if i_purpose is not None else ""
            if i_key is not None:
                key = row[i_key]
                if not key or len(key) > MAX_KEY_LENGTH or key[0].isspace() or key[-1].isspace():
                    key = check_key(key)
            elif key_cells is not None:
                key = content_key(booked_on, amount, *(row[i].strip() for i in key_cells))
            else:
                key = content_key(booked_on, amount, code, account, contract, payer, purpose)
        except LineError as exc:
            out.reject(line_no, exc.reason, raw_lines[line_no - 1])
            continue
        first = seen.setdefault(key, line_no)
        if first != line_no:
            out.reject(line_no, f"key: duplicate of line {first} (key {key!r})", raw_lines[line_no - 1])
            continue
        keep(StatementLine(line_no, key, booked_on, amount, code, account, contract, payer, purpose, paid_at))
