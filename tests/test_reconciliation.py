"""Reconciliation of a bank's day on both databases: categories, local days, closing, suspense, registries."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, bank_registry, dictionaries, operators, payments, service_lifecycle, subscribers
from billing.audit import Actor
from billing.bank_registry import DayClosed, RegistryError, RegistryLine
from billing.books import book_code
from billing.db.audit import AuditEntry
from billing.db.engine import session_factory
from billing.db.ledger import LedgerAccount, LedgerTransaction
from billing.db.reconciliation import BankRegistryLine, Reconciliation, ReconciliationItem
from billing.permissions import resolve_actor
from billing.reconciliation import ReasonRequired, ReconciliationError, ReconciliationResult

BERLIN = ZoneInfo("Europe/Berlin")
RULES = service_lifecycle.rules_for(BERLIN)
DAY = date(2026, 11, 20)  # Berlin is UTC+1 that day
BANK = "bank1"


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    """A local (Berlin) time of ``day``."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


class World:
    """An operator and two subscribers' EUR accounts (``number``, ``other``), paying through ``bank1``."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        with sessions.begin() as s:
            operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
            self.actor = resolve_actor(s, "tester", source="test")
            for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
                dictionaries.add(s, self.actor, kind, code, code.title())
            self.number, self.other = self._subscriber(s), self._subscriber(s)

    def _subscriber(self, s: Session) -> str:
        info = subscribers.create(
            s, self.actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        return info.accounts[0].number

    def pay(self, txn: str, amount: str = "25.00", paid_at: datetime | None = None, **kw: str) -> int:
        request = payments.PaymentRequest(
            kw.get("source", BANK), txn, kw.get("number", self.number), amount, paid_at or at(12),
            channel="soap",
        )  # fmt: skip
        with self.sessions.begin() as s:
            return payments.pay(s, self.actor, request, rules=RULES).id

    def cancel(self, payment_id: int) -> None:
        with self.sessions.begin() as s:
            payments.cancel(s, self.actor, payment_id, "wrong", time_zone=BERLIN)

    def registry(self, *lines: tuple[str, str], day: date = DAY, number: str | None = None) -> int:
        """Store the bank's registry: lines of (txn id, amount) on ``number`` at noon."""
        rows = [
            RegistryLine(txn, number or self.number, Decimal(amount), at(12, day=day))
            for txn, amount in lines
        ]
        with self.sessions.begin() as s:
            return bank_registry.record_registry(s, self.actor, BANK, day, rows, origin="soap")

    def reconcile(self, day: date = DAY, **kw: object) -> ReconciliationResult:
        with self.sessions.begin() as s:
            return reconciliation_run(s, self.actor, day, **kw)

    def book(self, purpose: str, detail: str = "") -> Decimal:
        with self.sessions() as s:
            code = book_code(purpose, "EUR", detail)
            return s.scalar(select(LedgerAccount.balance).where(LedgerAccount.code == code)) or Decimal(0)

    def count(self, table: type, *where: object) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(table).where(*where)) or 0  # type: ignore[arg-type]


def reconciliation_run(s: Session, actor: Actor, day: date, **kw: object) -> ReconciliationResult:
    from billing import reconciliation

    return reconciliation.reconcile(
        s,
        actor,
        BANK,
        day,
        time_zone=BERLIN,
        currency="EUR",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return World(sessions)


def figures(result: ReconciliationResult) -> dict[str, tuple[int, Decimal, Decimal]]:
    return {c.category: (c.count, c.bank_total, c.billing_total) for c in result.categories if c.count}


def test_a_day_where_bank_and_billing_agree_is_recorded_as_reconciled(world: World) -> None:
    world.pay("t1", "25.00")
    world.pay("t2", "10.50", number=world.other)
    world.pay("t3", "7.00", source="bank2")  # another bank's payment is not part of bank1's day
    world.registry(("t1", "25.00"))
    with world.sessions.begin() as s:
        rows = [
            RegistryLine("t1", world.number, Decimal("25.00"), at(12)),
            RegistryLine("t2", world.other, Decimal("10.50"), at(12)),
        ]
        bank_registry.record_registry(s, world.actor, BANK, DAY, rows, origin="file")
    result = world.reconcile()
    assert (result.state, result.discrepancies, result.changed) == ("reconciled", (), True)
    assert (result.bank_count, result.bank_total, result.billing_count, result.billing_total) == (
        2, Decimal("35.5"), 2, Decimal("35.5"),
    )  # fmt: skip
    assert (figures(result), result.difference) == ({"matched": (2, Decimal("35.5"), Decimal("35.5"))}, 0)
    assert world.count(AuditEntry, AuditEntry.action == "payments.reconcile") == 1
    assert world.book("suspense") == 0


def test_each_kind_of_discrepancy_is_found_with_its_sums_and_nothing_is_posted(world: World) -> None:
    world.pay("ok", "25.00")
    world.pay("short", "20.00")  # the bank says 30.00
    world.pay("elsewhere", "5.00", number=world.other)  # the bank names our first account
    world.pay("ours-only", "8.00")  # the bank does not list it
    world.pay("yesterday", "4.00", paid_at=at(12, day=DAY - timedelta(days=1)))
    world.registry(("ok", "25.00"), ("short", "30.00"), ("elsewhere", "5.00"), ("theirs-only", "12.00"),
                   ("yesterday", "4.00"))  # fmt: skip
    transactions = world.count(LedgerTransaction)
    result = world.reconcile()
    assert result.state == "open"
    assert {d.txn_id: d.kind for d in result.discrepancies} == {
        "short": "amount_differs",
        "elsewhere": "account_differs",
        "theirs-only": "missing_in_billing",
        "yesterday": "other_day",
        "ours-only": "missing_at_bank",
    }
    assert figures(result) == {
        "matched": (1, Decimal("25"), Decimal("25")),
        "missing_in_billing": (1, Decimal("12"), Decimal(0)),
        "missing_at_bank": (1, Decimal(0), Decimal("8")),
        "amount_differs": (1, Decimal("30"), Decimal("20")),
        "account_differs": (1, Decimal("5"), Decimal("5")),
        "other_day": (1, Decimal("4"), Decimal(0)),
    }
    assert (result.bank_total, result.billing_total, result.difference) == (
        Decimal("76"), Decimal("58"), Decimal("18"),
    )  # fmt: skip
    other_day = next(d for d in result.discrepancies if d.kind == "other_day")
    assert other_day.note == f"recorded in billing on {DAY - timedelta(days=1)}"
    assert world.count(LedgerTransaction) == transactions  # an open day posts nothing
    assert world.count(ReconciliationItem) == 5


def test_cancelled_payments_are_not_billing_s(world: World) -> None:
    world.pay("t1")
    world.cancel(world.pay("t2", "9.00"))
    world.registry(("t1", "25.00"))
    assert world.reconcile().state == "reconciled"


def test_a_payment_the_bank_lists_but_billing_cancelled_is_missing_in_billing(world: World) -> None:
    cancelled = world.pay("t2", "9.00")
    world.cancel(cancelled)
    world.registry(("t2", "9.00"))
    (item,) = world.reconcile().discrepancies
    assert (item.kind, item.payment_id, item.billing_amount) == ("missing_in_billing", cancelled, None)
    assert item.note == f"cancelled in billing (payment {cancelled})"


def test_the_day_is_the_operators_local_day(world: World) -> None:
    """23:59 Berlin is the day; 00:01 Berlin the next day is 23:01 UTC of the day, yet not the day's."""
    world.pay("late", "1.00", paid_at=at(23, 59))
    world.pay("after-midnight", "2.00", paid_at=at(0, 1, day=DAY + timedelta(days=1)))
    world.registry(("late", "1.00"))
    world.registry(("after-midnight", "2.00"), day=DAY + timedelta(days=1))
    first, second = world.reconcile(), world.reconcile(DAY + timedelta(days=1))
    assert (first.state, first.billing_count, first.billing_total) == ("reconciled", 1, Decimal("1"))
    assert (second.state, second.billing_count, second.billing_total) == ("reconciled", 1, Decimal("2"))


def test_the_bank_listing_a_payment_of_the_next_local_day_is_a_day_difference(world: World) -> None:
    world.pay("after-midnight", "2.00", paid_at=at(0, 1, day=DAY + timedelta(days=1)))
    world.registry(("after-midnight", "2.00"))
    (item,) = world.reconcile().discrepancies
    assert (item.kind, item.note) == ("other_day", f"recorded in billing on {DAY + timedelta(days=1)}")


def test_closing_a_day_with_discrepancies_needs_a_reason_and_changes_nothing_without(world: World) -> None:
    world.pay("t1")
    world.registry(("t1", "25.00"), ("unknown", "12.00"))
    assert world.reconcile().state == "open"
    for reason in (None, "  "):
        with pytest.raises(ReasonRequired, match=r"reason: bank1 2026-11-20 has 1 discrepancy\(ies\)"):
            world.reconcile(close=True, reason=reason)
    with world.sessions() as s:
        assert s.scalar(select(Reconciliation.state)) == "open"
    assert world.book("suspense") == 0


def test_closing_posts_missing_in_billing_money_to_suspense_exactly_once(world: World) -> None:
    world.pay("t1")
    world.pay("ours-only", "8.00")
    world.registry(("t1", "25.00"), ("unknown", "12.00"), ("unknown-2", "0.50"))
    assert world.book("clearing", BANK) == Decimal("33")
    closed = world.reconcile(close=True, reason="bank confirms; payers to be traced")
    assert (closed.state, closed.reason, closed.suspense_total) == (
        "closed", "bank confirms; payers to be traced", Decimal("12.5"),
    )  # fmt: skip
    assert {d.txn_id for d in closed.discrepancies if d.suspense_entry_id} == {"unknown", "unknown-2"}
    assert world.book("suspense") == Decimal("-12.5")  # a credit: money held for someone unknown
    assert world.book("clearing", BANK) == Decimal("45.5")  # what the bank settles (37.50) + ours-only
    assert world.count(AuditEntry, AuditEntry.action == "payments.reconcile_close") == 1
    again = world.reconcile(close=True, reason="once more")
    assert (again.changed, again.state, again.reason, again.id) == (False, "closed", closed.reason, closed.id)
    assert world.reconcile().changed is False
    assert world.book("suspense") == Decimal("-12.5")
    assert world.count(LedgerTransaction, LedgerTransaction.idempotency_key.like("reconcile:%")) == 2


def test_a_bank_transaction_listed_on_two_days_enters_suspense_once(world: World) -> None:
    world.registry(("unknown", "12.00"))
    world.registry(("unknown", "12.00"), day=DAY + timedelta(days=1))
    world.reconcile(close=True, reason="trace")
    second = world.reconcile(DAY + timedelta(days=1), close=True, reason="listed again")
    (item,) = second.discrepancies
    assert item.suspense_entry_id is not None and "already in suspense" in item.note
    assert world.book("suspense") == Decimal("-12")


def test_a_reconciling_day_closes_without_a_reason(world: World) -> None:
    world.pay("t1")
    world.registry(("t1", "25.00"))
    assert world.reconcile(close=True).state == "reconciled"
    assert world.reconcile().changed is False


def test_rerunning_an_open_day_replaces_its_result(world: World) -> None:
    world.registry(("late", "25.00"))
    first = world.reconcile()
    assert (first.state, len(first.discrepancies)) == ("open", 1)
    world.pay("late")  # the payment arrives after all
    second = world.reconcile()
    assert (second.id, second.state, second.runs, second.discrepancies) == (first.id, "reconciled", 2, ())
    assert world.count(ReconciliationItem) == 0
    with world.sessions() as s:
        audit_after = s.scalars(
            select(AuditEntry.before).where(AuditEntry.action == "payments.reconcile").order_by(AuditEntry.id)
        ).all()
    assert audit_after[0] is None and audit_after[1]["state"] == "open"


def test_a_registry_is_replaced_until_the_day_is_final_then_refused(world: World) -> None:
    first = world.registry(("t1", "25.00"), ("t2", "5.00"))
    assert world.registry(("t1", "25.00"), ("t2", "5.00")) == first  # a retried upload changes nothing
    assert world.registry(("t1", "25.00")) == first
    with world.sessions() as s:
        shown = bank_registry.show(s, BANK, DAY)
    assert (shown.line_count, shown.total, shown.replaced, [line.txn_id for line in shown.lines]) == (
        1, Decimal("25"), 1, ["t1"],
    )  # fmt: skip
    assert world.count(AuditEntry, AuditEntry.action == "payments.registry") == 2
    world.pay("t1")
    world.reconcile()
    with pytest.raises(
        DayClosed, match="bank1 2026-11-20 is reconciled; its registry can no longer be replaced"
    ):
        world.registry(("t1", "25.00"), ("t9", "1.00"))
    assert world.count(BankRegistryLine) == 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([("t1", "5"), ("t1", "6")], "line 2: txn_id: 't1' is also on line 1"),
        ([("t1", "-5")], "line 1: amount: must be positive"),
        ([("t1", "0")], "line 1: amount: must be positive"),
        ([("", "5")], "line 1: txn_id: expected 1 to 100 characters"),
    ],
)
def test_a_bad_registry_is_refused_naming_the_line_and_nothing_is_stored(
    world: World, lines: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        world.registry(*lines)
    assert world.count(BankRegistryLine) == 0


def test_a_naive_time_or_mixed_currencies_are_refused(world: World) -> None:
    naive = RegistryLine("t1", world.number, Decimal(1), datetime(2026, 11, 20, 12))
    mixed = [RegistryLine(t, world.number, Decimal(1), at(12), c) for t, c in [("a", "EUR"), ("b", "USD")]]
    with world.sessions.begin() as s:
        with pytest.raises(RegistryError, match="line 1: paid_at: must be a timezone-aware time"):
            bank_registry.record_registry(s, world.actor, BANK, DAY, [naive], origin="soap")
        with pytest.raises(RegistryError, match="line 2: currency: a registry holds one currency"):
            bank_registry.record_registry(s, world.actor, BANK, DAY, mixed, origin="soap")
        with pytest.raises(RegistryError, match="origin: expected one of soap, file"):
            bank_registry.record_registry(s, world.actor, BANK, DAY, [], origin="fax")


def test_reconciling_without_a_registry_or_statement_is_refused(world: World) -> None:
    with pytest.raises(ReconciliationError, match="no registry from bank1 for 2026-11-20"):
        world.reconcile()


def test_an_empty_registry_reconciles_a_day_without_payments(world: World) -> None:
    world.registry()
    assert world.reconcile().state == "reconciled"


def statement(*lines: tuple[str, str, date]) -> SimpleNamespace:
    """A parsed statement (as :func:`billing.payment_files.parse` returns) with credit lines."""
    return SimpleNamespace(
        sha256="ab" * 32,
        bad=(),
        lines=tuple(
            SimpleNamespace(line_no=n, key=key, booked_on=booked, amount=Decimal(amount), currency="EUR",
                            account=None, contract=None, paid_at=None)
            for n, (key, amount, booked) in enumerate(lines, 1)
        ),
    )  # fmt: skip


CAMT053 = """\
<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>2026-11-21T06:00:00+01:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-1</Id>
      <CreDtTm>2026-11-21T06:00:00+01:00</CreDtTm>
      <FrToDt><FrDtTm>2026-11-20T00:00:00+01:00</FrDtTm><ToDtTm>2026-11-20T23:59:59+01:00</ToDtTm></FrToDt>
      <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
      <Ntry>
        <Amt Ccy="EUR">25.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2026-11-20</Dt></BookgDt>
        <AcctSvcrRef>REF-1</AcctSvcrRef>
        <NtryDtls><TxDtls><RmtInf><Ustrd>account 100001</Ustrd></RmtInf></TxDtls></NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">3.50</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2026-11-20</Dt></BookgDt>
        <AcctSvcrRef>REF-2</AcctSvcrRef>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">100.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2026-11-20</Dt></BookgDt>
        <AcctSvcrRef>FEE-1</AcctSvcrRef>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""
"""A camt.053 statement of DAY: REF-1 25.00 (account 100001), REF-2 3.50, and a 100.00 debit."""


def test_a_camt053_statement_s_credit_lines_reconcile_against_billing(world: World) -> None:
    from billing import payment_files
    from billing.reconciliation import statement_input

    world.pay("REF-1", "25.00")
    world.pay("REF-2", "3.00")
    parsed = payment_files.parse(CAMT053.encode(), "camt053", currency="EUR")
    result = world.reconcile(statement=statement_input(parsed, DAY))
    assert (result.source, result.statement_sha256, result.registry_id) == ("statement", parsed.sha256, None)
    assert (result.bank_count, result.bank_total) == (2, Decimal("28.5"))  # the debit is not a payment
    assert [(d.kind, d.txn_id, d.note) for d in result.discrepancies] == [
        ("amount_differs", "REF-2", "bank 3.50, billing 3.00 (bank - billing 0.50)")
    ]


def test_statement_lines_booked_on_other_days_are_left_out(world: World) -> None:
    from billing.reconciliation import statement_input

    world.pay("REF-1", "25.00")
    given = statement_input(
        statement(("REF-1", "25.00", DAY), ("REF-0", "9.00", DAY - timedelta(days=1))), DAY
    )
    assert given.ignored == 1
    assert world.reconcile(statement=given).state == "reconciled"


def test_a_statement_with_bad_lines_is_refused(world: World) -> None:
    from billing.reconciliation import statement_input

    broken = SimpleNamespace(
        sha256="x", lines=(), bad=(SimpleNamespace(line_no=7, reason="amount: bad", text=""),)
    )
    with pytest.raises(ReconciliationError, match=r"statement: 1 bad line.*line 7: amount: bad"):
        statement_input(broken, DAY)


def test_bank_lines_in_another_currency_are_refused(world: World) -> None:
    with world.sessions.begin() as s:
        line = RegistryLine("t1", world.number, Decimal(1), at(12), "USD")
        bank_registry.record_registry(s, world.actor, BANK, DAY, [line], origin="soap")
    with pytest.raises(ReconciliationError, match="line 1: currency: the reconciliation is in EUR, got USD"):
        world.reconcile()


def test_ledger_balances_after_close_match_the_bank_settlement(world: World) -> None:
    """Clearing = bank total once the unknown money is in suspense (no other discrepancy)."""
    world.pay("t1", "10.00")
    world.registry(("t1", "10.00"), ("x", "2.00"))
    result = world.reconcile(close=True, reason="trace payer")
    assert world.book("clearing", BANK) == result.bank_total == Decimal("12")
    with world.sessions() as s:
        assert accounts.balance(s, world.number).balance == Decimal("10")


@pytest.mark.postgresql_only
def test_concurrent_first_closes_of_a_day_post_suspense_once(pg_engine: Engine) -> None:
    """Eight operators close the same new day at once: one result, one suspense posting, no error."""
    world = World(session_factory(pg_engine))
    world.pay("t1")
    barrier = threading.Barrier(8)

    def upload_and_close(n: int) -> str:
        barrier.wait(timeout=30)
        world.registry(("t1", "25.00"), ("unknown", "12.00"))
        return world.reconcile(close=True, reason=f"operator {n}").state

    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(upload_and_close, range(8)))
    assert set(states) == {"closed"}
    assert world.count(Reconciliation) == 1
    assert world.book("suspense") == Decimal("-12")
    assert world.count(LedgerTransaction, LedgerTransaction.idempotency_key.like("reconcile:%")) == 1


def test_a_bank_billing_does_not_know_is_refused_unless_configured(world: World) -> None:
    from billing import reconciliation

    given = reconciliation.statement_input(statement(("REF-1", "5.00", DAY)), DAY)
    with world.sessions.begin() as s:
        with pytest.raises(ReconciliationError, match="bank: 'bnak1' is not configured"):
            reconciliation.reconcile(
                s, world.actor, "bnak1", DAY, time_zone=BERLIN, currency="EUR", statement=given
            )
        result = reconciliation.reconcile(
            s, world.actor, "newbank", DAY, time_zone=BERLIN, currency="EUR", statement=given,
            known_banks=["newbank"],
        )  # fmt: skip
    assert [d.kind for d in result.discrepancies] == ["missing_in_billing"]


def test_a_local_day_is_midnight_to_midnight_also_on_daylight_saving_days() -> None:
    from billing.reconciliation import day_bounds

    start, end = day_bounds(date(2026, 3, 29), BERLIN)  # clocks go forward: a 23-hour day
    assert (start.isoformat(), end - start) == ("2026-03-28T23:00:00+00:00", timedelta(hours=23))
    start, end = day_bounds(date(2026, 10, 25), BERLIN)  # clocks go back: 25 hours
    assert (start.isoformat(), end - start) == ("2026-10-24T22:00:00+00:00", timedelta(hours=25))


def test_an_unmatched_file_line_already_in_suspense_is_not_moved_there_again_at_close(world: World) -> None:
    """An imported statement's unmatched line went clearing → suspense at import; reconciling the
    same statement lists it as missing in billing, and closing the day links that posting."""
    from billing import payment_files
    from billing.payment_import import import_file
    from billing.reconciliation import statement_input
    from tests.test_payment_import import MATCHER, PRESETS

    data = CAMT053.replace("account 100001", f"account {world.number}").encode()
    report = import_file(
        world.sessions.kw["bind"], world.actor, data, bank=BANK, fmt="camt053", name="s.xml", currency="EUR",
        time_zone=BERLIN, rules=RULES, matcher=MATCHER, presets_dir=PRESETS,
    )  # fmt: skip
    assert (report.posted, report.unmatched) == (1, 1)
    assert world.book("suspense") == Decimal("-3.5")
    parsed = payment_files.parse(data, "camt053", currency="EUR")
    closed = world.reconcile(statement=statement_input(parsed, DAY), close=True, reason="REF-2 payer unknown")
    [item] = closed.discrepancies
    assert (item.kind, item.txn_id) == ("missing_in_billing", "REF-2")
    assert item.suspense_entry_id is not None and "already in suspense" in item.note
    assert world.book("suspense") == Decimal("-3.5")  # once: at import
    assert world.count(LedgerTransaction, LedgerTransaction.idempotency_key.like("reconcile:%")) == 0
