"""ISO 20022 camt.053 bank-to-customer statements (``BkToCstmrStmt``), credit entries only.

Any ``urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN`` namespace is read (the elements used
here kept their names across versions; ``Sts`` became ``Sts/Cd`` and ``Dbtr/Nm`` became
``Dbtr/Pty/Nm``, both are read). Parsed with lxml without network access, DTD loading or entity
expansion.

Per entry (``Ntry``): ``CdtDbtInd`` CRDT is taken, DBIT is money out (skipped); an entry whose
status is not BOOK (pending, information) is skipped too: it comes booked in a later statement.
A reversal (``RvslInd`` true) is a bad line: it needs a person. ``line_no`` is the source line
of the ``Ntry`` element (or of the ``TxDtls`` for a split batch, below).

- amount and currency: ``Amt`` and its ``Ccy``; date: ``BookgDt/Dt`` or ``BookgDt/DtTm``
  (then also ``paid_at`` when it has an offset);
- key: ``AcctSvcrRef`` of the entry, else ``NtryRef``, else ``TxDtls/Refs/AcctSvcrRef`` (all
  the bank's own references), else a content hash over ``TxDtls/Refs/EndToEndId`` (the payer's
  reference: two payers may use the same one), date, amount, payer and purpose;
- payer: ``RltdPties/Dbtr/Nm`` or ``Dbtr/Pty/Nm`` (else the ultimate debtor);
- purpose: every ``RmtInf/Ustrd`` joined by a space, else ``AddtlTxInf``/``AddtlNtryInf``;
- account: ``RmtInf/Strd/CdtrRefInf/Ref`` when the payer gave a structured reference.

A batch entry (several ``TxDtls``, each with its own amount, adding up to the entry's) is split
into one line per transaction, keyed by the transaction's ``Refs/AcctSvcrRef`` or else the
entry's key and the transaction's ordinal (``KEY/2``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from lxml import etree

from billing.payment_formats_base import (
    AmountReader,
    Collector,
    FileFormatError,
    LineError,
    StatementLine,
    check_key,
    content_key,
    line_currency,
)

NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d{2}$")


def _parser() -> etree.XMLParser:
    """A parser that never fetches anything and never expands entities."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def parse_camt053(data: bytes, currency: str, out: Collector) -> tuple[date, date] | None:
    """Parse a camt.053 document into ``out``; returns the ``[start, end)`` days its statements cover."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise FileFormatError(f"camt053: not well-formed XML: {exc}") from None
    namespace = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "Document" or not NAMESPACE.match(namespace):
        raise FileFormatError(
            f"camt053: the root element is {root.tag!r}, expected Document in a camt.053.001.xx namespace"
        )
    statements = root.findall("c:BkToCstmrStmt/c:Stmt", {"c": namespace})
    if root.find("c:BkToCstmrStmt", {"c": namespace}) is None:
        raise FileFormatError("camt053: no BkToCstmrStmt element")
    reader = _EntryReader(namespace, currency)
    periods = []
    for statement in statements:
        periods.append(reader.period(statement))
        for entry in statement.iterfind("c:Ntry", reader.ns):
            text = functools.partial(etree.tostring, entry, encoding="unicode", with_tail=False)
            try:
                lines = reader.read(entry)
            except LineError as exc:
                out.reject(entry.sourceline or 0, exc.reason, text())
                continue
            if not lines:
                out.skipped += 1
            for line in lines:
                out.good(line, text)
    found = [p for p in periods if p is not None]
    return (min(p[0] for p in found), max(p[1] for p in found)) if found else None


class _EntryReader:
    """Reads one ``Ntry`` into statement lines (none for entries that are not incoming money)."""

    def __init__(self, namespace: str, currency: str) -> None:
        self.ns = {"c": namespace}
        self._prefix = "{" + namespace + "}"
        self._paths: dict[str, tuple[str, ...]] = {}
        self._currency = currency
        self._amounts = AmountReader()

    def _find(self, element: etree._Element, path: str) -> etree._Element | None:
        """The first element at ``path`` (``c:A/c:B``) under ``element``, or None.

        Walks the children step by step: three times faster than lxml's ``find`` with a path,
        which matters for statements with hundreds of thousands of entries.
        """
        steps = self._paths.get(path)
        if steps is None:
            steps = self._paths[path] = tuple(step.replace("c:", self._prefix) for step in path.split("/"))
        found: etree._Element | None = element
        for step in steps:
            found = next(found.iterchildren(step), None)
            if found is None:
                return None
        return found

    def _all(self, element: etree._Element, parent: str, name: str) -> list[etree._Element]:
        """Every ``name`` child of the first ``parent`` child of ``element``."""
        found = self._find(element, parent)
        return [] if found is None else list(found.iterchildren(name.replace("c:", self._prefix)))

    def _text(self, element: etree._Element, path: str) -> str:
        found = self._find(element, path)
        return (found.text or "").strip() if found is not None else ""

    def period(self, statement: etree._Element) -> tuple[date, date] | None:
        """``FrToDt`` as days ``[from, to + 1 day)``; None when absent or unreadable."""
        start, end = self._text(statement, "c:FrToDt/c:FrDtTm"), self._text(statement, "c:FrToDt/c:ToDtTm")
        try:
            first, last = datetime.fromisoformat(start), datetime.fromisoformat(end)
        except ValueError:
            return None
        midnight = last.time() == datetime.min.time() and last > first  # "to" given as the next day's start
        end_day = last.date() if midnight else last.date() + timedelta(days=1)
        return (first.date(), end_day) if first.date() < end_day else None

    def read(self, entry: etree._Element) -> list[StatementLine]:
        """The entry's lines; [] for debits and entries not booked; LineError if bad."""
        direction = self._text(entry, "c:CdtDbtInd")
        if direction == "DBIT":
            return []
        if direction != "CRDT":
            raise LineError(f"CdtDbtInd: expected CRDT or DBIT, got {direction!r}")
        status = self._text(entry, "c:Sts/c:Cd") or self._text(entry, "c:Sts")
        if status and status != "BOOK":
            return []
        if self._text(entry, "c:RvslInd").lower() in ("true", "1"):
            raise LineError("RvslInd: a reversal entry is not imported; handle it by hand")
        amount, code = self._amount(entry)
        booked_on, paid_at = self._booking_date(entry)
        details = self._all(entry, "c:NtryDtls", "c:TxDtls")
        entry_ref = self._text(entry, "c:AcctSvcrRef") or self._text(entry, "c:NtryRef")
        if len(details) > 1:
            split = self._split(entry, details, amount, code, booked_on, paid_at, entry_ref)
            if split:
                return split
        tx = details[0] if details else None
        line = self._line(entry, tx, entry.sourceline or 0, amount, code, booked_on, paid_at, entry_ref)
        if len(details) > 1:  # one line for the batch: take every transaction's remittance text
            purposes = [self._purpose(entry, d) for d in details]
            line = dataclasses.replace(line, purpose=" ".join(p for p in purposes if p))
        return [line]

    def _amount(self, element: etree._Element, path: str = "c:Amt") -> tuple[Decimal, str]:
        found = self._find(element, path)
        if found is None:
            raise LineError("Amt: missing")
        code = line_currency(found.get("Ccy", ""), self._currency) if found.get("Ccy") else ""
        if not code:
            raise LineError("Amt: no Ccy attribute")
        text = (found.text or "").strip()
        try:
            amount = self._amounts.read(text, code)
        except LineError as exc:
            raise LineError(exc.reason.replace("amount:", "Amt:", 1)) from None
        if amount < 0:
            raise LineError(f"Amt: must be positive, got {text}")
        return amount, code

    def _booking_date(self, entry: etree._Element) -> tuple[date, datetime | None]:
        day, moment = self._text(entry, "c:BookgDt/c:Dt"), self._text(entry, "c:BookgDt/c:DtTm")
        try:
            if day:
                return date.fromisoformat(day), None
            if moment:
                when = datetime.fromisoformat(moment)
                return when.date(), when if when.tzinfo is not None else None
        except ValueError:
            raise LineError(f"BookgDt: expected an ISO 8601 date, got {day or moment!r}") from None
        raise LineError("BookgDt: missing")

    def _line(
        self,
        entry: etree._Element,
        tx: etree._Element | None,
        line_no: int,
        amount: Decimal,
        code: str,
        booked_on: date,
        paid_at: datetime | None,
        key: str,
    ) -> StatementLine:
        payer = purpose = ""
        account = None
        if tx is not None:
            key = key or self._text(tx, "c:Refs/c:AcctSvcrRef")
            payer = (
                self._text(tx, "c:RltdPties/c:Dbtr/c:Nm")
                or self._text(tx, "c:RltdPties/c:Dbtr/c:Pty/c:Nm")
                or self._text(tx, "c:RltdPties/c:UltmtDbtr/c:Nm")
                or self._text(tx, "c:RltdPties/c:UltmtDbtr/c:Pty/c:Nm")
            )
            account = self._text(tx, "c:RmtInf/c:Strd/c:CdtrRefInf/c:Ref") or None
        purpose = self._purpose(entry, tx)
        if key:
            key = check_key(key)
        else:
            end_to_end = self._text(tx, "c:Refs/c:EndToEndId") if tx is not None else ""
            if end_to_end.upper() == "NOTPROVIDED":
                end_to_end = ""
            key = content_key(end_to_end, booked_on, amount, code, account, payer, purpose)
        return StatementLine(line_no, key, booked_on, amount, code, account, None, payer, purpose, paid_at)

    def _purpose(self, entry: etree._Element, tx: etree._Element | None) -> str:
        if tx is not None:
            texts = [(e.text or "").strip() for e in self._all(tx, "c:RmtInf", "c:Ustrd")]
            joined = " ".join(t for t in texts if t)
            if joined:
                return joined
            if self._text(tx, "c:AddtlTxInf"):
                return self._text(tx, "c:AddtlTxInf")
        return self._text(entry, "c:AddtlNtryInf")

    def _split(
        self,
        entry: etree._Element,
        details: list[etree._Element],
        amount: Decimal,
        code: str,
        booked_on: date,
        paid_at: datetime | None,
        entry_ref: str,
    ) -> list[StatementLine]:
        """One line per transaction of a batch entry, or [] when the amounts do not allow it."""
        amounts = []
        for tx in details:
            path = "c:AmtDtls/c:TxAmt/c:Amt" if self._find(tx, "c:Amt") is None else "c:Amt"
            try:
                amounts.append(self._amount(tx, path))
            except LineError:  # no amount, or in another currency: keep the batch as one line
                return []
        if sum(a for a, _ in amounts) != amount or any(c != code for _, c in amounts):
            return []
        lines = []
        for ordinal, (tx, (tx_amount, _)) in enumerate(zip(details, amounts, strict=True), start=1):
            ref = self._text(tx, "c:Refs/c:AcctSvcrRef")
            if not ref:
                base = entry_ref or content_key(booked_on, amount, code, etree.tostring(entry))
                ref = f"{base}/{ordinal}"
            line_no = tx.sourceline or entry.sourceline or 0
            lines.append(self._line(entry, tx, line_no, tx_amount, code, booked_on, paid_at, ref))
        return lines
