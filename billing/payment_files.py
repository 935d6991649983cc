"""Bank statement and registry files → incoming payment lines (pure parsing, no database).

What: :func:`parse` reads the bytes of a file in one of the :func:`known_formats` and returns a
:class:`ParsedFile`: the good :class:`StatementLine` s, the :class:`BadLine` s with a reason
naming the field, the SHA-256 of the bytes and the period the file states. Formats:

- ``1c``: 1C ClientBankExchange (``1CClientBankExchange``; Windows-1251, DOS (cp866) or UTF-8
  with or without BOM), incoming documents only (module ``payment_formats_1c``);
- ``camt053``: ISO 20022 camt.053 bank-to-customer statement, any ``camt.053.001.xx`` version,
  credit entries only (module ``payment_formats_camt``);
- every CSV preset ``conf/payment_formats/NAME.toml`` (module ``payment_formats_csv``), among
  them ``registry``: a bank's daily registry for reconciliation
  (``txn_id;paid_at;account;amount;currency``, UTF-8, ``paid_at`` ISO 8601 with offset).

Why here and pure: the import engine (``billing.payment_import``), the reconciliation and the
simulator all read these files; the rules for a bad amount, date or currency are the same for
every format, and tests need no database. Debit lines (money out) are not payments: they are
left out and counted in ``ParsedFile.skipped``, not reported as bad.

Keys: ``StatementLine.key`` is the line's idempotency key inside one bank: the bank's reference
(CSV key column, camt.053 ``AcctSvcrRef``/``NtryRef``) or a deterministic content hash (32 hex
digits; 1C always, camt.053 without a bank reference, CSV presets without a key column); the
same file always gives the same keys. A second line in a file with a key already seen is a bad
line "duplicate of line N".

Speed: a million-line CSV parses in about 5 s of CPU on the (loaded) 2-core build host; the
cyclic garbage collector is paused while parsing (see :func:`_gc_paused`).
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from billing.payment_formats_1c import parse_1c
from billing.payment_formats_base import (
    BadLine,
    Collector,
    FileFormatError,
    ParsedFile,
    PaymentFileError,
    PresetError,
    StatementLine,
    UnknownFormat,
    check_currency,
)
from billing.payment_formats_camt import parse_camt053
from billing.payment_formats_csv import load_preset, parse_csv, preset_names

__all__ = [
    "BUILTIN_FORMATS",
    "DEFAULT_PRESETS_DIR",
    "BadLine",
    "FileFormatError",
    "ParsedFile",
    "PaymentFileError",
    "PresetError",
    "StatementLine",
    "UnknownFormat",
    "format_registry_csv",
    "known_formats",
    "parse",
]

BUILTIN_FORMATS = ("1c", "camt053")
"""Formats with their own parser; every other format name is a CSV preset."""

DEFAULT_PRESETS_DIR = Path("conf/payment_formats")
"""Where the CSV presets live, relative to the working directory (the CLI may pass another)."""


def known_formats(presets_dir: Path = DEFAULT_PRESETS_DIR) -> list[str]:
    """``"1c"``, ``"camt053"`` and the names of the CSV presets in ``presets_dir``."""
    return [*BUILTIN_FORMATS, *(n for n in preset_names(presets_dir) if n not in BUILTIN_FORMATS)]


def parse(data: bytes, fmt: str, *, presets_dir: Path = DEFAULT_PRESETS_DIR, currency: str) -> ParsedFile:
    """Parse ``data`` as format ``fmt``; lines in another currency than ``currency`` are bad.

    Raises :class:`UnknownFormat` (listing the known ones), :class:`PresetError` for an invalid
    preset, :class:`FileFormatError` when the file is not readable as ``fmt`` at all, and
    ``ValueError`` for a currency we do not bill in. Everything else is a bad line.
    """
    billing_currency = check_currency(currency)
    out = Collector()
    digest = hashlib.sha256(data).hexdigest()
    if fmt not in BUILTIN_FORMATS and fmt not in preset_names(presets_dir):
        raise UnknownFormat(f"format: expected one of {', '.join(known_formats(presets_dir))}, got {fmt!r}")
    if not data.strip():
        raise FileFormatError("file: empty")
    with _gc_paused():
        if fmt == "1c":
            period = parse_1c(data, billing_currency, out)
        elif fmt == "camt053":
            period = parse_camt053(data, billing_currency, out)
        else:
            parse_csv(data, load_preset(presets_dir / f"{fmt}.toml"), billing_currency, out)
            period = None
    return out.result(fmt, digest, period)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file is parsed.

    Why: a million-line file makes millions of small acyclic objects (lines, Decimals, dates);
    each allocation burst triggers collections that rescan every live object, which doubled the
    parse time. Reference counting still frees everything; the collector resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class RegistryRow(Protocol):
    """What :func:`format_registry_csv` needs of a line (``billing.bank_registry.RegistryLine`` fits)."""

    txn_id: str
    account: str
    amount: Decimal
    paid_at: datetime


def format_registry_csv(rows: Iterable[RegistryRow], currency: str) -> bytes:
    """A daily registry file in the ``registry`` preset's format (for the simulator and tests).

    ``paid_at`` must be timezone-aware; amounts are written as plain decimals (``100.00``).
    """
    code = check_currency(currency)
    out = ["txn_id;paid_at;account;amount;currency\n"]
    for row in rows:
        if row.paid_at.tzinfo is None:
            raise ValueError(f"paid_at: must be timezone-aware, got {row.paid_at!r} for {row.txn_id}")
        for name, value in (("txn_id", row.txn_id), ("account", row.account)):
            if any(c in value for c in ';"\r\n'):
                raise ValueError(f"{name}: must not contain ';', '\"' or a line break, got {value!r}")
        out.append(f"{row.txn_id};{row.paid_at.isoformat()};{row.account};{row.amount:f};{code}\n")
    return "".join(out).encode("utf-8")
