"""1C ClientBankExchange statements ("выписка" exported for 1C:Enterprise), incoming documents only.

The format (version 1.02/1.03) is text, one ``Key=Value`` per line::

    1CClientBankExchange
    ВерсияФормата=1.03
    Кодировка=Windows            (Windows: cp1251; DOS: cp866; UTF-8 files are also met in the wild)
    ДатаНачала=01.12.2026
    ДатаКонца=01.12.2026
    РасчСчет=40702810900000000001
    СекцияРасчСчет ... КонецРасчСчет
    СекцияДокумент=Платежное поручение
    Номер=512
    Дата=01.12.2026
    Сумма=1500.00
    ПлательщикСчет=40817810500000012345
    Плательщик=ИНН 771234567890 Иванов Иван Иванович
    ПлательщикИНН=771234567890
    Плательщик1=Иванов Иван Иванович
    ПолучательСчет=40702810900000000001
    ДатаПоступило=01.12.2026
    НазначениеПлатежа=Оплата интернета, л/с 100234
    КонецДокумента
    КонецФайла

Encoding: a UTF-8 BOM, else the encoding the ``Кодировка=`` line is written in (found by its
bytes), else its value (Windows → cp1251, DOS → cp866), else UTF-8 if the file decodes so, else
cp1251. A document with a line that does not decode is a bad line naming the encoding.

Incoming: documents whose ``ПолучательСчет`` is one of the file's own accounts (``РасчСчет``
in the header or a ``СекцияРасчСчет``); others are money out (skipped). With no ``РасчСчет``
every document is taken. ``line_no`` is the line of ``СекцияДокумент``. The key is a hash of
(``Номер``, ``Дата``, ``Сумма``, ``ПлательщикИНН`` or else ``ПлательщикСчет``): a payment order
number is unique only per payer and year. ``booked_on`` is ``ДатаПоступило``, else ``Дата``.
``account``/``contract`` are None: the matcher reads ``purpose`` (``НазначениеПлатежа``).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from billing.payment_formats_base import (
    AmountReader,
    Collector,
    FileFormatError,
    LineError,
    StatementLine,
    content_key,
)
from billing.payment_formats_csv import DateReader

MAGIC = "1CClientBankExchange"
_ENCODING_KEY = "Кодировка="
_DECLARED = {"windows": "cp1251", "dos": "cp866", "utf-8": "utf-8", "utf8": "utf-8"}
_PAYER_INN_PREFIX = re.compile(r"^ИНН\s*\d+\s+")


def detect_encoding(data: bytes) -> str:
    """The text encoding of a 1C file (see the module doc); FileFormatError if it is not 1C."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.lstrip()[: len(MAGIC)] != MAGIC.encode("ascii"):
        first = data.lstrip()[:40].decode("ascii", "replace")
        raise FileFormatError(f"1c: the file does not start with {MAGIC} (it starts {first!r})")
    head = data[:8192]
    if _ENCODING_KEY.encode("utf-8") in head:
        return "utf-8"
    for encoding in ("cp1251", "cp866"):
        marker = _ENCODING_KEY.encode(encoding)
        at = head.find(marker)
        if at >= 0:
            value = head[at + len(marker) :].split(b"\n", 1)[0].decode("ascii", "replace").strip().lower()
            return _DECLARED.get(value, encoding)
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1251"


def parse_1c(data: bytes, currency: str, out: Collector) -> tuple[date, date] | None:
    """Parse a 1C ClientBankExchange file into ``out``; returns the ``[start, end)`` period it states."""
    encoding = detect_encoding(data)
    header: dict[str, str] = {}
    own_accounts: set[str] = set()
    documents: list[tuple[int, list[tuple[int, str]]]] = []
    current: list[tuple[int, str]] | None = None
    in_account_section = False
    broken: set[int] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode(encoding).strip()
        except UnicodeDecodeError:
            line = raw.decode(encoding, "replace").strip()
            broken.add(number)  # judged with its document
        if number == 1:
            line = line.lstrip("\ufeff")
        if not line:
            continue
        if line.startswith("СекцияДокумент"):
            if current is not None:
                documents.append((current[0][0], [*current, (0, "")]))  # unclosed: judged bad
            current = [(number, line)]
        elif current is not None:
            current.append((number, line))
            if line == "КонецДокумента":
                documents.append((current[0][0], current))
                current = None
        elif line == "СекцияРасчСчет":
            in_account_section = True
        elif line == "КонецРасчСчет":
            in_account_section = False
        elif line == "КонецФайла":
            break
        elif "=" in line:
            key, value = line.split("=", 1)
            if key == "РасчСчет" and value.strip():
                own_accounts.add(value.strip())
            elif not in_account_section:
                header.setdefault(key, value.strip())
    if current is not None:
        documents.append((current[0][0], [*current, (0, "")]))
    if not header and not documents and not own_accounts:
        raise FileFormatError("1c: the file has no header and no documents")
    reader = _DocumentReader(currency, own_accounts, encoding.replace("-sig", ""), broken)
    for line_no, lines in documents:
        text = "\n".join(line for _, line in lines if line)
        try:
            line = reader.read(line_no, lines)
        except LineError as exc:
            out.reject(line_no, exc.reason, text)
            continue
        if line is None:
            out.skipped += 1
        else:
            out.good(line, text)
    return _period(header)


class _DocumentReader:
    """Judges one ``СекцияДокумент`` … ``КонецДокумента`` block."""

    def __init__(self, currency: str, own_accounts: set[str], encoding: str, broken: set[int]) -> None:
        self._currency = currency
        self._broken = broken
        self._own = own_accounts
        self._encoding = encoding
        self._amounts = AmountReader()
        self._dates = DateReader("%d.%m.%Y")

    def read(self, line_no: int, lines: list[tuple[int, str]]) -> StatementLine | None:
        """The statement line, None for a document that is not incoming, LineError if bad."""
        fields: dict[str, str] = {}
        for number, line in lines:
            if number == 0:
                raise LineError("КонецДокумента: the document is not closed")
            if number in self._broken:
                raise LineError(f"encoding: line {number} is not valid {self._encoding}")
            if line == "КонецДокумента":
                continue
            if "=" not in line:
                raise LineError(f"line: line {number} is not Key=Value: {line[:60]!r}")
            key, value = line.split("=", 1)
            fields.setdefault(key.strip(), value.strip())
        if self._own and fields.get("ПолучательСчет", "") not in self._own:
            return None
        number = self._required(fields, "Номер")
        doc_date = self._date(fields, "Дата")
        arrived = self._date(fields, "ДатаПоступило") if fields.get("ДатаПоступило") else doc_date
        amount_text = self._required(fields, "Сумма")
        if "," in amount_text and "." not in amount_text:
            amount_text = amount_text.replace(",", ".")
        try:
            amount = self._amounts.read(amount_text, self._currency)
        except LineError as exc:
            raise LineError(exc.reason.replace("amount:", "Сумма:", 1)) from None
        if amount < 0:
            raise LineError(f"Сумма: must be positive, got {amount_text}")
        payer_id = fields.get("ПлательщикИНН") or fields.get("ПлательщикСчет", "")
        payer = fields.get("Плательщик1") or _PAYER_INN_PREFIX.sub("", fields.get("Плательщик", ""))
        return StatementLine(
            line_no=line_no,
            key=content_key(number, doc_date.isoformat(), amount, payer_id),
            booked_on=arrived,
            amount=amount,
            currency=self._currency,
            account=None,
            contract=None,
            payer=payer,
            purpose=fields.get("НазначениеПлатежа", ""),
        )

    @staticmethod
    def _required(fields: dict[str, str], key: str) -> str:
        value = fields.get(key, "")
        if not value:
            raise LineError(f"{key}: missing")
        return value

    def _date(self, fields: dict[str, str], key: str) -> date:
        try:
            return self._dates.read(self._required(fields, key))[0]
        except LineError as exc:
            raise LineError(exc.reason.replace("date:", f"{key}:", 1)) from None


def _period(header: dict[str, str]) -> tuple[date, date] | None:
    """``[ДатаНачала, ДатаКонца + 1 day)`` from the header, None if it does not state both."""
    reader = DateReader("%d.%m.%Y")
    try:
        start = reader.read(header.get("ДатаНачала", ""))[0]
        end = reader.read(header.get("ДатаКонца", ""))[0]
    except LineError:
        return None
    return (start, end + timedelta(days=1)) if start <= end else None
