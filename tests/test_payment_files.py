"""Payment file parsing (billing.payment_files): CSV presets, 1C ClientBankExchange, camt.053.

Pure tests, no database. Fixtures are in tests/payment_files/ as UTF-8 text; the Windows-1251
and DOS (cp866) variants are made here by re-encoding them, so the bytes under test are exact.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from billing.payment_files import (
    BadLine,
    FileFormatError,
    ParsedFile,
    PresetError,
    StatementLine,
    UnknownFormat,
    format_registry_csv,
    known_formats,
    parse,
)
from billing.payment_formats_csv import load_preset

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "conf" / "payment_formats"
FIXTURES = Path(__file__).resolve().parent / "payment_files"
MSK = timezone(timedelta(hours=3))
REGISTRY_HEADER = "txn_id;paid_at;account;amount;currency\n"


def fixture(name: str, encoding: str = "utf-8") -> bytes:
    """A fixture file's bytes, re-encoded from its UTF-8 text when ``encoding`` says so."""
    raw = (FIXTURES / name).read_bytes()
    return raw if encoding == "utf-8" else raw.decode("utf-8").encode(encoding)


def run(data: bytes | str, fmt: str, currency: str = "RUB", presets: Path = PRESETS) -> ParsedFile:
    """Parse with the shipped presets (or ``presets``)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return parse(payload, fmt, presets_dir=presets, currency=currency)


def reasons(parsed: ParsedFile) -> list[tuple[int, str]]:
    """The bad lines as ``(line_no, reason)``."""
    return [(bad.line_no, bad.reason) for bad in parsed.bad]


def registry(*lines: str) -> str:
    """A registry file with the header and ``lines``."""
    return REGISTRY_HEADER + "".join(line + "\n" for line in lines)


GOOD = "DB-1;2026-12-01T10:00:00+03:00;100234;100.00;RUB"


# ---------------------------------------------------------------- formats and the registry preset


def test_known_formats_are_the_builtin_parsers_and_the_shipped_presets() -> None:
    assert known_formats(PRESETS) == ["1c", "camt053", "generic-csv", "registry", "ru-bank-csv"]


def test_known_formats_without_a_presets_folder_are_the_builtin_ones(tmp_path: Path) -> None:
    assert known_formats(tmp_path / "missing") == ["1c", "camt053"]


def test_an_unknown_format_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(UnknownFormat, match=r"expected one of 1c, camt053, generic-csv.*got 'mt940'"):
        run(b"x", "mt940")


def test_a_currency_we_do_not_bill_in_is_refused() -> None:
    with pytest.raises(ValueError, match="currency: expected one of"):
        run(fixture("registry.csv"), "registry", currency="XXX")


def test_the_registry_preset_reads_a_banks_daily_registry() -> None:
    data = fixture("registry.csv")
    parsed = run(data, "registry")
    assert parsed.format == "registry"
    assert parsed.sha256 == hashlib.sha256(data).hexdigest()
    assert parsed.bad == () and parsed.skipped == 0 and parsed.period is None
    assert parsed.lines[0] == StatementLine(
        line_no=2,
        key="DB-0001",
        booked_on=date(2026, 12, 1),
        amount=Decimal("1500.00"),
        currency="RUB",
        account="100234",
        contract=None,
        payer="",
        purpose="",
        paid_at=datetime(2026, 12, 1, 9, 15, tzinfo=MSK),
    )
    assert [(line.key, line.amount) for line in parsed.lines[1:]] == [
        ("DB-0002", Decimal("250.00")),
        ("DB-0003", Decimal("0.01")),
    ]
    assert parsed.lines[2].paid_at == datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
    assert parsed.total == Decimal("1750.01")


def test_a_statement_line_is_a_frozen_value() -> None:
    line = StatementLine(1, "k", date(2026, 12, 1), Decimal("1.00"), "RUB", None, None, "", "")
    assert line == StatementLine(1, "k", date(2026, 12, 1), Decimal("1.00"), "RUB", None, None, "", "", None)
    assert hash(line) == hash(dataclasses.replace(line))
    assert dataclasses.replace(line, key="m").key == "m"
    assert dataclasses.asdict(line)["paid_at"] is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.key = "m"  # type: ignore[misc]


def test_amounts_are_decimals_quantized_to_the_currency() -> None:
    parsed = run(
        registry("A;2026-12-01T10:00:00+03:00;1;7;RUB", "B;2026-12-01T10:00:00+03:00;1;7.5;RUB"), "registry"
    )
    assert [str(line.amount) for line in parsed.lines] == ["7.00", "7.50"]
    assert all(type(line.amount) is Decimal for line in parsed.lines)


def test_booked_on_is_the_date_as_written_in_the_lines_own_offset() -> None:
    parsed = run(registry("A;2026-12-01T23:30:00-05:00;1;1.00;RUB"), "registry")
    assert parsed.lines[0].booked_on == date(2026, 12, 1)
    assert parsed.lines[0].paid_at == datetime(2026, 12, 2, 4, 30, tzinfo=UTC)


def test_a_registry_with_only_its_header_has_no_lines() -> None:
    parsed = run(REGISTRY_HEADER, "registry")
    assert parsed.lines == () and parsed.bad == ()


def test_a_utf8_bom_before_the_header_is_ignored() -> None:
    parsed = run(b"\xef\xbb\xbf" + registry(GOOD).encode(), "registry")
    assert [line.key for line in parsed.lines] == ["DB-1"]


def test_windows_line_endings_are_read_like_unix_ones() -> None:
    parsed = run(
        registry(GOOD, "DB-2;2026-12-01T10:00:00+03:00;100234;5.00;RUB").replace("\n", "\r\n"), "registry"
    )
    assert [(line.line_no, line.key) for line in parsed.lines] == [(2, "DB-1"), (3, "DB-2")]


@dataclass(frozen=True)
class _Row:
    txn_id: str
    account: str
    amount: Decimal
    paid_at: datetime


def test_a_registry_written_by_format_registry_csv_parses_back_to_the_same_payments() -> None:
    rows = [
        _Row("T-1", "100234", Decimal("10.00"), datetime(2026, 12, 1, 8, 0, tzinfo=MSK)),
        _Row("T-2", "100235", Decimal("0.50"), datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
    ]
    parsed = run(format_registry_csv(rows, "RUB"), "registry")
    assert parsed.bad == ()
    assert [(line.key, line.account, line.amount, line.paid_at) for line in parsed.lines] == [
        (r.txn_id, r.account, r.amount, r.paid_at) for r in rows
    ]


def test_format_registry_csv_refuses_a_naive_time_and_a_separator_in_an_id() -> None:
    with pytest.raises(ValueError, match="paid_at: must be timezone-aware"):
        format_registry_csv([_Row("T-1", "1", Decimal(1), datetime(2026, 12, 1))], "RUB")
    with pytest.raises(ValueError, match="txn_id: must not contain"):
        format_registry_csv([_Row("T;1", "1", Decimal(1), datetime(2026, 12, 1, tzinfo=UTC))], "RUB")


# ---------------------------------------------------------------- CSV bad lines


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("DB-2;2026-12-01T10:00:00+03:00;100234;100.00", "columns: expected 5 fields, got 4"),
        ("DB-2;2026-12-01T10:00:00+03:00;100234;100.00;RUB;x", "columns: expected 5 fields, got 6"),
        ("DB-2;2026-12-01T10:00:00+03:00;100234;-100.00;RUB", "amount: must be positive, got -100.00"),
        ("DB-2;2026-12-01T10:00:00+03:00;100234;0.00;RUB", "amount: must be positive, got 0.00"),
        (
            "DB-2;2026-12-01T10:00:00+03:00;100234;12,50;RUB",
            "amount: expected a number such as 1234.50, got '12,50'",
        ),
        (
            "DB-2;2026-12-01T10:00:00+03:00;100234;1e3;RUB",
            "amount: expected a number such as 1234.50, got '1e3'",
        ),
        (
            "DB-2;2026-12-01T10:00:00+03:00;100234;NaN;RUB",
            "amount: expected a number such as 1234.50, got 'NaN'",
        ),
        ("DB-2;2026-12-01T10:00:00+03:00;100234;;RUB", "amount: missing"),
        (
            "DB-2;2026-12-01T10:00:00+03:00;100234;1.005;RUB",
            "amount: at most 2 decimal places in RUB, got 1.005",
        ),
        ("DB-2;2026-12-01T10:00:00+03:00;100234;123456789012345;RUB", "amount: expected a number"),
        ("DB-2;2026-12-01T10:00:00+03:00;100234;100.00;XYZ", "currency: unknown currency 'XYZ'"),
        ("DB-2;2026-12-01T10:00:00+03:00;100234;100.00;EUR", "currency: expected RUB, got EUR"),
        ("DB-2;2026-13-01T10:00:00+03:00;100234;100.00;RUB", "date: expected YYYY-MM-DD or an ISO 8601"),
        (
            "DB-2;yesterday;100234;100.00;RUB",
            "date: expected YYYY-MM-DD or an ISO 8601 date-time, got 'yesterday'",
        ),
        ("DB-2;2026-12-01T10:00:00;100234;100.00;RUB", "date: '2026-12-01T10:00:00' has no UTC offset"),
        (" ;2026-12-01T10:00:00+03:00;100234;100.00;RUB", "key: missing"),
        ("X" * 65 + ";2026-12-01T10:00:00+03:00;100234;100.00;RUB", "key: at most 64 characters, got 65"),
        ('DB-2;2026-12-01T10:00:00+03:00;"100234;100.00;RUB', "line: broken CSV"),
        ('DB-2;2026-12-01T10:00:00+03:00;"100"234;100.00;RUB', "line: broken CSV"),
    ],
)
def test_a_bad_csv_line_is_reported_by_number_and_field_and_the_good_lines_are_kept(
    line: str, reason: str
) -> None:
    parsed = run(registry(GOOD, line, "DB-3;2026-12-01T11:00:00+03:00;100235;5.00;RUB"), "registry")
    assert [x.key for x in parsed.lines] == ["DB-1", "DB-3"]
    assert len(parsed.bad) == 1
    assert parsed.bad[0].line_no == 3
    assert parsed.bad[0].reason.startswith(reason), parsed.bad[0].reason
    assert parsed.bad[0].text == line


def test_a_line_in_another_encoding_is_reported_and_the_others_are_kept() -> None:
    bad = "DB-2;2026-12-01T10:00:00+03:00;100234;100.00;RUB;Иванов".encode("cp1251")
    data = registry(GOOD).encode() + bad + b"\n" + b"DB-3;2026-12-01T11:00:00+03:00;100235;5.00;RUB\n"
    parsed = run(data, "registry")
    assert [x.key for x in parsed.lines] == ["DB-1", "DB-3"]
    assert reasons(parsed) == [(3, "encoding: not valid utf-8 at byte 50 of the line")]


def test_a_file_in_the_wrong_encoding_altogether_is_not_parsed() -> None:
    with pytest.raises(FileFormatError, match="encoding: the file is not utf-8"):
        run(fixture("ru-bank.txt", "cp1251"), "generic-csv")


def test_a_second_line_with_the_same_key_is_a_duplicate_of_the_first() -> None:
    parsed = run(registry(GOOD, GOOD, "DB-1;2026-12-01T10:00:00+03:00;100234;999.00;RUB"), "registry")
    assert [x.line_no for x in parsed.lines] == [2]
    assert reasons(parsed) == [
        (3, "key: duplicate of line 2 (key 'DB-1')"),
        (4, "key: duplicate of line 2 (key 'DB-1')"),
    ]


def test_an_unclosed_quote_spoils_only_its_own_line() -> None:
    parsed = run(
        registry('DB-0;"2026-12-01T10:00:00+03:00;1;1.00;RUB', GOOD, GOOD.replace("DB-1", "DB-2")), "registry"
    )
    assert [x.key for x in parsed.lines] == ["DB-1", "DB-2"]
    assert [b.line_no for b in parsed.bad] == [2]


def test_bad_lines_come_in_file_order_with_every_reason() -> None:
    parsed = run(
        registry(
            "A;2026-12-01T10:00:00+03:00;1;-1.00;RUB",
            GOOD,
            "B;2026-12-01T10:00:00+03:00;1;1.00;USD",
            "C;bad;1;1.00;RUB",
        ),
        "registry",
    )
    assert [(b.line_no, b.reason.split(":")[0]) for b in parsed.bad] == [
        (2, "amount"),
        (4, "currency"),
        (5, "date"),
    ]
    assert all(isinstance(b, BadLine) for b in parsed.bad)


def test_blank_lines_are_not_lines() -> None:
    parsed = run(registry(GOOD, "", "DB-2;2026-12-01T10:00:00+03:00;1;1.00;RUB"), "registry")
    assert [x.line_no for x in parsed.lines] == [2, 4] and parsed.bad == ()


def test_a_row_of_empty_cells_is_a_blank_line() -> None:
    parsed = run(registry(GOOD, ";;;;", "   ;;; ;"), "registry")
    assert [x.line_no for x in parsed.lines] == [2] and parsed.bad == ()


def test_a_multiline_preset_takes_line_breaks_inside_quotes(tmp_path: Path) -> None:
    presets = write_preset(
        tmp_path, "ml", 'multiline = true\n[columns]\ndate = "d"\namount = "a"\npurpose = "p"\n'
    )
    parsed = run('d,a,p\n2026-12-01,1.00,"two\nlines"\n2026-12-01,2.00,one\n', "ml", presets=presets)
    assert [(x.line_no, x.purpose) for x in parsed.lines] == [(2, "two\nlines"), (4, "one")]


def test_a_currency_with_no_minor_unit_takes_no_decimals() -> None:
    parsed = run(
        registry("A;2026-12-01T10:00:00+09:00;1;100;JPY", "B;2026-12-01T10:00:00+09:00;1;100.5;JPY"),
        "registry",
        "JPY",
    )
    assert [str(x.amount) for x in parsed.lines] == ["100"]
    assert reasons(parsed) == [(3, "amount: at most 0 decimal places in JPY, got 100.5")]


# ---------------------------------------------------------------- the other shipped presets


def test_the_generic_preset_reads_quoted_fields_and_skips_debits() -> None:
    parsed = run(fixture("generic.csv"), "generic-csv")
    assert parsed.bad == () and parsed.skipped == 1
    first, second = parsed.lines
    assert (first.line_no, first.key, first.account, first.contract) == (2, "TX-1", "100234", None)
    assert first.purpose == "Internet, account 100234" and first.payer == "Ivanov I.I."
    assert (second.line_no, second.key, second.amount, second.booked_on) == (
        4,
        "TX-3",
        Decimal("99.90"),
        date(2026, 12, 2),
    )
    assert (second.account, second.contract, second.payer) == (None, "C-2024-17", "Petrova, A.")
    assert second.purpose == 'Contract C-2024-17, "December"'


def test_the_russian_bank_preset_reads_cp1251_with_decimal_comma_and_skips_debit_lines() -> None:
    parsed = run(fixture("ru-bank.txt", "cp1251"), "ru-bank-csv")
    assert parsed.bad == () and parsed.skipped == 1
    first, second = parsed.lines
    assert (first.line_no, first.amount, first.booked_on) == (3, Decimal("1500.00"), date(2026, 12, 1))
    assert first.payer == "Иванов Иван Иванович" and first.purpose == "Оплата интернета, л/с 100234"
    assert (first.account, first.contract, first.currency) == (None, None, "RUB")
    assert (second.line_no, second.amount) == (5, Decimal("700.50"))
    # the same document number from two payers: two payments, two keys
    assert first.key != second.key and len(first.key) == 32


def test_the_russian_bank_preset_takes_non_breaking_spaces_between_thousands() -> None:
    text = fixture("ru-bank.txt").decode().replace("1 500,00", "1\u00a0500,00")
    parsed = run(text.encode("cp1251"), "ru-bank-csv")
    assert parsed.lines[0].amount == Decimal("1500.00")


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("1 50,00", "amount: expected a number such as 1234,50, got '1 50,00'"),
        ("1.500,00", "amount: expected a number such as 1234,50, got '1.500,00'"),
        ("-700,50", "amount: must be positive, got -700,50"),
        ("12,345", "amount: at most 2 decimal places in RUB, got 12,345"),
    ],
)
def test_the_russian_bank_preset_names_a_bad_amount(cell: str, reason: str) -> None:
    text = fixture("ru-bank.txt").decode().replace("700,50", cell)
    parsed = run(text.encode("cp1251"), "ru-bank-csv")
    assert reasons(parsed) == [(5, reason)]


def test_the_russian_bank_preset_names_a_bad_date() -> None:
    text = fixture("ru-bank.txt").decode().replace("512;01.12.2026;;1 500,00", "512;2026-12-01;;1 500,00")
    parsed = run(text.encode("cp1251"), "ru-bank-csv")
    assert reasons(parsed) == [(3, "date: expected %d.%m.%Y, got '2026-12-01'")]


# ---------------------------------------------------------------- presets: header-less, hashing, validation


def write_preset(folder: Path, name: str, text: str) -> Path:
    """A preset file in a temporary presets folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return folder


HEADERLESS = """
delimiter = "|"
header = false
column_count = 4
date_format = "%d/%m/%Y"
[columns]
date = 1
amount = 2
account = 3
purpose = 4
"""


def test_a_headerless_preset_maps_columns_by_number_and_keys_lines_by_content(tmp_path: Path) -> None:
    presets = write_preset(tmp_path, "plain", HEADERLESS)
    data = "01/12/2026|10.00|100234|December\n01/12/2026|10.00|100234|December\n02/12/2026|5|100235|\n1|2\n"
    parsed = run(data, "plain", presets=presets)
    assert [(x.line_no, x.booked_on, x.amount, x.account) for x in parsed.lines] == [
        (1, date(2026, 12, 1), Decimal("10.00"), "100234"),
        (3, date(2026, 12, 2), Decimal("5.00"), "100235"),
    ]
    assert reasons(parsed) == [
        (2, f"key: duplicate of line 1 (key {parsed.lines[0].key!r})"),
        (4, "columns: expected 4 fields, got 2"),
    ]


def test_content_keys_are_the_same_on_every_import_and_after_a_column_reorder(tmp_path: Path) -> None:
    presets = write_preset(
        tmp_path,
        "nokey",
        '[columns]\ndate = "date"\namount = "amount"\naccount = "account"\npayer = "payer"\n',
    )
    first = run(
        "date,amount,account,payer\n2026-12-01,10.00,100234,Ann\n2026-12-01,10.00,100235,Ann\n",
        "nokey",
        presets=presets,
    )
    again = run(
        "date,amount,account,payer\n2026-12-01,10.00,100234,Ann\n2026-12-01,10.00,100235,Ann\n",
        "nokey",
        presets=presets,
    )
    moved = run("payer,account,amount,date,balance\nAnn,100234,10,2026-12-01,77\n", "nokey", presets=presets)
    assert [x.key for x in first.lines] == [x.key for x in again.lines]
    assert first.lines[0].key != first.lines[1].key
    assert moved.lines[0].key == first.lines[0].key


def test_keys_of_every_format_are_deterministic() -> None:
    for name, fmt, currency in [
        ("registry.csv", "registry", "RUB"),
        ("generic.csv", "generic-csv", "RUB"),
        ("1c.txt", "1c", "RUB"),
        ("camt053.xml", "camt053", "EUR"),
        ("camt053_v08_batch.xml", "camt053", "EUR"),
    ]:
        keys = [tuple(x.key for x in run(fixture(name), fmt, currency).lines) for _ in range(2)]
        assert keys[0] == keys[1] and len(set(keys[0])) == len(keys[0]), name


def test_a_header_without_a_mapped_column_means_the_file_is_not_that_format() -> None:
    with pytest.raises(
        FileFormatError, match=r"header: line 1: no column 'txn_id' for key \(preset registry\)"
    ):
        run(fixture("generic.csv"), "registry")


def test_a_statement_of_another_format_given_as_a_csv_preset_is_refused() -> None:
    with pytest.raises(FileFormatError, match="header: line 1: no column 'txn_id'"):
        run(fixture("1c.txt"), "registry")
    with pytest.raises(FileFormatError, match="header: line 1: no column 'txn_id'"):
        run(fixture("camt053.xml"), "registry")


def test_a_file_with_nothing_in_it_is_refused() -> None:
    with pytest.raises(FileFormatError, match="file: empty"):
        run(b"", "registry")
    with pytest.raises(FileFormatError, match="header: the file has no header line"):
        run(b"banner only\n", "ru-bank-csv")


MAPPED = '[columns]\ndate = "d"\namount = "a"\naccount = "x"\n'
"""The smallest valid column mapping, appended to the preset texts below."""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('delimter = ";"\n' + MAPPED, "delimter: unknown key"),
        ('delimiter = ";;"\n' + MAPPED, "delimiter: expected one character, got ';;'"),
        ('encoding = "klingon"\n' + MAPPED, "encoding: expected an ASCII-compatible"),
        ('encoding = "utf-16"\n' + MAPPED, "encoding: expected an ASCII-compatible"),
        ('date_format = "%H:%M"\n' + MAPPED, "date_format: expected 'iso' or a strptime"),
        ('decimal_separator = ";"\n' + MAPPED, "decimal_separator: expected '.' or ','"),
        ('decimal_separator = ","\nthousands_separator = ","\n' + MAPPED,
         "thousands_separator: expected a character other than decimal_separator"),
        ('debits = "ignore"\n' + MAPPED, "debits: expected 'bad' or 'skip', got 'ignore'"),
        ("skip_lines = -1\n" + MAPPED, "skip_lines: expected a whole number >= 0, got -1"),
        ('header = "yes"\n' + MAPPED, "header: expected true or false, got 'yes'"),
        ('[columns]\namount = "a"\naccount = "x"', "columns.date: required"),
        ('[columns]\ndate = "d"\namount = "a"\npayer = "p"',
         "columns: expected at least one of account, contract, purpose"),
        (MAPPED + 'iban = "i"', "columns.iban: unknown column"),
        ('[columns]\ndate = 1\namount = "a"\naccount = "x"',
         "columns.date: expected a header name (header = true), got 1"),
        ('header = false\n[columns]\ndate = "d"\namount = 2\naccount = 3',
         "columns.date: expected a column number >= 1"),
        ("header = false\ncolumn_count = 2\n[columns]\ndate = 1\namount = 2\naccount = 3",
         "columns.account: expected column numbers <= column_count (2)"),
        ("columns = 3", "columns: expected a table [columns], got 3"),
        ('delimiter = ";\n', "cannot read the preset"),
    ],
)  # fmt: skip
def test_an_invalid_preset_is_refused_naming_file_key_and_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    presets = write_preset(tmp_path, "bank", text)
    with pytest.raises(PresetError) as caught:
        run(registry(GOOD), "bank", presets=presets)
    assert str(presets / "bank.toml") in str(caught.value)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_every_problem_of_a_preset_is_reported_at_once(tmp_path: Path) -> None:
    presets = write_preset(tmp_path, "bank", 'delimiter = ""\ndebits = 1\n[columns]\nkey = "k"\n')
    with pytest.raises(PresetError) as caught:
        run(registry(GOOD), "bank", presets=presets)
    lines = str(caught.value).splitlines()
    assert len(lines) == 5, lines  # delimiter, debits, date, amount, no match column


def test_the_shipped_presets_are_valid() -> None:
    assert {load_preset(path).name for path in PRESETS.glob("*.toml")} == {
        "registry",
        "generic-csv",
        "ru-bank-csv",
    }


# ---------------------------------------------------------------- 1C ClientBankExchange


def expected_1c_lines(parsed: ParsedFile) -> None:
    """The two incoming documents of tests/payment_files/1c.txt (the outgoing one is skipped)."""
    assert parsed.format == "1c"
    assert parsed.bad == () and parsed.skipped == 1
    assert parsed.period == (date(2026, 12, 1), date(2026, 12, 2))
    first, second = parsed.lines
    assert first.line_no == 21 and second.line_no == 45
    assert (first.amount, first.booked_on, first.currency) == (Decimal("1500.00"), date(2026, 12, 1), "RUB")
    assert (first.account, first.contract, first.paid_at) == (None, None, None)
    assert first.payer == "Иванов Иван Иванович"
    assert first.purpose == "Оплата интернета, л/с 100234. Без НДС"
    assert second.payer == "Петров Пётр Петрович" and second.amount == Decimal("700.50")


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda text: text.encode("cp1251"), id="windows-1251"),
        pytest.param(lambda text: text.encode("utf-8"), id="utf-8"),
        pytest.param(lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"), id="utf-8-bom"),
        pytest.param(
            lambda text: text.replace("Кодировка=Windows", "Кодировка=DOS").encode("cp866"), id="dos-866"
        ),
        pytest.param(
            lambda text: text.replace("Кодировка=Windows", "ВерсияПрограммы=1").encode("cp1251"),
            id="undeclared-1251",
        ),
        pytest.param(lambda text: text.replace("\n", "\r\n").encode("cp1251"), id="crlf"),
    ],
)
def test_a_1c_file_is_read_in_each_encoding_with_the_same_lines_and_keys(
    encode: Callable[[str], bytes],
) -> None:
    text = fixture("1c.txt").decode("utf-8")
    parsed = run(encode(text), "1c")
    expected_1c_lines(parsed)
    assert [x.key for x in parsed.lines] == [x.key for x in run(fixture("1c.txt"), "1c").lines]


def test_a_1c_payer_without_a_short_name_loses_the_inn_prefix() -> None:
    text = fixture("1c.txt").decode().replace("Плательщик1=Иванов Иван Иванович\n", "")
    assert run(text, "1c").lines[0].payer == "Иванов Иван Иванович"


def test_a_1c_file_without_own_account_takes_every_document() -> None:
    text = fixture("1c.txt").decode().replace("РасчСчет=40702810900000000001\n", "")
    parsed = run(text, "1c")
    assert [x.line_no for x in parsed.lines] == [19, 32, 43] and parsed.skipped == 0


def test_a_1c_key_is_a_hash_of_number_date_amount_and_payer() -> None:
    base = run(fixture("1c.txt"), "1c").lines[0].key
    other_payer = (
        fixture("1c.txt").decode().replace("ПлательщикИНН=771234567890", "ПлательщикИНН=500100200300")
    )
    same_again = (
        fixture("1c.txt").decode().replace("НазначениеПлатежа=Оплата интернета", "НазначениеПлатежа=Интернет")
    )
    assert run(other_payer, "1c").lines[0].key != base
    assert run(same_again, "1c").lines[0].key == base


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("Сумма=1500.00", "Сумма=-1500.00", "Сумма: must be positive, got -1500.00"),
        ("Сумма=1500.00", "Сумма=15O0.00", "Сумма: expected a number such as 1234.50, got '15O0.00'"),
        ("Сумма=1500.00", "Сумма=1500.001", "Сумма: at most 2 decimal places in RUB, got 1500.001"),
        ("Сумма=1500.00", "Сумма=0", "Сумма: must be positive, got 0"),
        ("Сумма=1500.00\n", "", "Сумма: missing"),
        ("Номер=512\n", "", "Номер: missing"),
        ("Дата=30.11.2026", "Дата=31.11.2026", "Дата: expected %d.%m.%Y, got '31.11.2026'"),
        (
            "ДатаПоступило=01.12.2026\nПолучатель=",
            "ДатаПоступило=вчера\nПолучатель=",
            "ДатаПоступило: expected %d.%m.%Y",
        ),
        ("Плательщик1=Иванов Иван Иванович", "просто строка", "line: line 28 is not Key=Value"),
    ],
)
def test_a_bad_1c_document_is_reported_at_its_section_line_and_the_others_are_kept(
    old: str, new: str, reason: str
) -> None:
    text = fixture("1c.txt").decode()
    assert old in text
    parsed = run(text.replace(old, new, 1), "1c")
    assert [x.amount for x in parsed.lines] == [Decimal("700.50")]
    assert len(parsed.bad) == 1 and parsed.bad[0].line_no == 21
    assert parsed.bad[0].reason.startswith(reason), parsed.bad[0].reason
    assert parsed.bad[0].text.startswith("СекцияДокумент=Платежное поручение\n")


def test_a_1c_document_with_a_line_that_does_not_decode_is_bad_the_others_are_kept() -> None:
    data = fixture("1c.txt").decode().encode("utf-8")
    data = data.replace("Без НДС".encode(), "Без НДС".encode("cp1251"))
    parsed = run(data, "1c")
    assert reasons(parsed) == [(21, "encoding: line 32 is not valid utf-8")]
    assert [x.line_no for x in parsed.lines] == [45]


def test_an_unclosed_1c_document_is_bad() -> None:
    text = (
        fixture("1c.txt")
        .decode()
        .replace("КонецДокумента\nСекцияДокумент=Банковский ордер", "СекцияДокумент=Банковский ордер")
    )
    parsed = run(text, "1c")
    assert reasons(parsed) == [(34, "КонецДокумента: the document is not closed")]


def test_a_truncated_1c_file_keeps_the_complete_documents() -> None:
    text = fixture("1c.txt").decode()
    parsed = run(text[: text.index("НазначениеПлатежа=Оплата по договору")], "1c")
    assert [x.line_no for x in parsed.lines] == [21]
    assert reasons(parsed) == [(45, "КонецДокумента: the document is not closed")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"txn_id;paid_at\n", "1c: the file does not start with 1CClientBankExchange"),
        (b"<?xml version='1.0'?><Document/>", "1c: the file does not start with 1CClientBankExchange"),
    ],
)
def test_a_file_that_is_not_1c_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        run(data, "1c")


# ---------------------------------------------------------------- camt.053


def test_camt053_takes_credit_entries_and_skips_debits() -> None:
    parsed = run(fixture("camt053.xml"), "camt053", "EUR")
    assert parsed.format == "camt053" and parsed.bad == () and parsed.skipped == 1
    assert parsed.period == (date(2026, 12, 1), date(2026, 12, 2))
    first, second = parsed.lines
    assert first == StatementLine(
        line_no=16,  # the source line of <Ntry>
        key="BANKREF-0001",
        booked_on=date(2026, 12, 1),
        amount=Decimal("49.90"),
        currency="EUR",
        account=None,
        contract=None,
        payer="Erika Mustermann",
        purpose="Internet December account 100234",
        paid_at=None,
    )
    assert (second.line_no, second.amount, second.account, second.payer) == (
        43,
        Decimal("19.99"),
        "100235",
        "Max Muster",
    )
    assert second.paid_at == datetime(2026, 12, 1, 13, 30, tzinfo=UTC)
    assert len(second.key) == 32  # no bank reference: a content hash


def test_camt053_of_a_later_version_splits_a_batch_and_skips_pending_entries() -> None:
    parsed = run(fixture("camt053_v08_batch.xml"), "camt053", "EUR")
    assert parsed.bad == () and parsed.skipped == 1 and parsed.period is None
    assert [(x.line_no, x.key, x.amount, x.payer, x.purpose) for x in parsed.lines] == [
        (18, "TX-A", Decimal("10.00"), "Anna Schmidt", "account 100301"),
        (24, "BATCH-77/2", Decimal("20.00"), "Bernd Weber", "account 100302"),
    ]


def test_camt053_keeps_a_batch_whole_when_its_transactions_do_not_add_up() -> None:
    text = (
        fixture("camt053_v08_batch.xml")
        .decode()
        .replace('<Amt Ccy="EUR">20.00</Amt>', '<Amt Ccy="EUR">21.00</Amt>')
    )
    parsed = run(text, "camt053", "EUR")
    assert [(x.line_no, x.key, x.amount, x.purpose) for x in parsed.lines] == [
        (9, "BATCH-77", Decimal("30.00"), "account 100301 account 100302")
    ]


def test_camt053_keys_by_ntryref_when_the_entry_has_no_acctsvcrref() -> None:
    text = (
        fixture("camt053.xml")
        .decode()
        .replace("<AcctSvcrRef>BANKREF-0001</AcctSvcrRef>", "<NtryRef>N-1</NtryRef>")
    )
    assert run(text, "camt053", "EUR").lines[0].key == "N-1"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('<Amt Ccy="EUR">49.90</Amt>', '<Amt Ccy="USD">49.90</Amt>', "currency: expected EUR, got USD"),
        ('<Amt Ccy="EUR">49.90</Amt>', '<Amt Ccy="ABC">49.90</Amt>', "currency: unknown currency 'ABC'"),
        ('<Amt Ccy="EUR">49.90</Amt>', "<Amt>49.90</Amt>", "Amt: no Ccy attribute"),
        (
            '<Amt Ccy="EUR">49.90</Amt>',
            '<Amt Ccy="EUR">49,90</Amt>',
            "Amt: expected a number such as 1234.50, got '49,90'",
        ),
        ('<Amt Ccy="EUR">49.90</Amt>', '<Amt Ccy="EUR">-49.90</Amt>', "Amt: must be positive, got -49.90"),
        ('<Amt Ccy="EUR">49.90</Amt>', '<Amt Ccy="EUR">49.901</Amt>', "Amt: at most 2 decimal places in EUR"),
        ("<BookgDt><Dt>2026-12-01</Dt></BookgDt>\n        <ValDt>", "<ValDt>", "BookgDt: missing"),
        (
            "<BookgDt><Dt>2026-12-01</Dt>",
            "<BookgDt><Dt>01.12.2026</Dt>",
            "BookgDt: expected an ISO 8601 date, got '01.12.2026'",
        ),
        (
            "<CdtDbtInd>CRDT</CdtDbtInd>",
            "<CdtDbtInd>CR</CdtDbtInd>",
            "CdtDbtInd: expected CRDT or DBIT, got 'CR'",
        ),
        (
            "<CdtDbtInd>CRDT</CdtDbtInd>",
            "<CdtDbtInd>CRDT</CdtDbtInd><RvslInd>true</RvslInd>",
            "RvslInd: a reversal",
        ),
    ],
)
def test_a_bad_camt053_entry_is_reported_at_its_line_and_the_others_are_kept(
    old: str, new: str, reason: str
) -> None:
    text = fixture("camt053.xml").decode()
    assert old in text
    parsed = run(text.replace(old, new, 1), "camt053", "EUR")
    assert [x.amount for x in parsed.lines] == [Decimal("19.99")]
    assert len(parsed.bad) == 1 and parsed.bad[0].line_no == 16
    assert parsed.bad[0].reason.startswith(reason), parsed.bad[0].reason
    assert parsed.bad[0].text.startswith("<Ntry")


def test_camt053_entries_with_the_same_reference_are_duplicates() -> None:
    second_entry_date = "</DtTm></BookgDt>"
    text = (
        fixture("camt053.xml")
        .decode()
        .replace(second_entry_date, second_entry_date + "<AcctSvcrRef>BANKREF-0001</AcctSvcrRef>")
    )
    parsed = run(text, "camt053", "EUR")
    assert reasons(parsed) == [(43, "key: duplicate of line 16 (key 'BANKREF-0001')")]


def test_camt053_never_expands_entities_or_reads_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    text = (
        fixture("camt053.xml")
        .decode()
        .replace(
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE Document [<!ENTITY x SYSTEM "file://{secret}">]>',
        )
        .replace("<Ustrd>Internet December</Ustrd>", "<Ustrd>&x;</Ustrd>")
    )
    parsed = run(text, "camt053", "EUR")
    assert "TOP-SECRET" not in repr(parsed)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<Document><BkToCstmrStmt>", "camt053: not well-formed XML"),
        (b"1CClientBankExchange\n", "camt053: not well-formed XML"),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"/>',
            "camt053: the root element is",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>',
            "camt053: no BkToCstmrStmt element",
        ),
    ],
)
def test_a_file_that_is_not_camt053_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        run(data, "camt053", "EUR")


# ---------------------------------------------------------------- size


def test_a_large_registry_parses_every_line() -> None:
    lines = [
        f"T{i};2026-12-01T10:00:00+03:00;{100000 + i % 977};{1 + i % 5000}.{i % 100:02d};RUB"
        for i in range(50_000)
    ]
    parsed = run(registry(*lines), "registry")
    assert len(parsed.lines) == 50_000 and parsed.bad == ()
    assert parsed.lines[-1].line_no == 50_001
