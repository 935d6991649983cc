"""Payment file import on both databases: formats, matching, duplicates, the unmatched queue, dry runs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from billing import accounts, dictionaries, operators, payments, service_lifecycle, subscribers
from billing.audit import Actor
from billing.books import book_code
from billing.config import ConfigError
from billing.db.audit import AuditEntry
from billing.db.customers import Account, Customer
from billing.db.engine import session_factory
from billing.db.ledger import LedgerAccount, LedgerTransaction
from billing.db.lifecycle import ProvisioningTask
from billing.db.payment_files import PaymentFile, UnmatchedPayment
from billing.db.payments import Notification, Payment
from billing.db.services import Service
from billing.payment_import import ImportReport, PaymentImportError, import_file
from billing.payment_matching import Matcher, load_rules, parse_rules
from billing.payment_unmatched import assign, list_unmatched
from billing.permissions import resolve_actor

ROOT = Path(__file__).resolve().parents[1]
RULES = service_lifecycle.rules_for(UTC)
MATCHER = load_rules(ROOT / "conf" / "payment_matching.toml")
PRESETS = ROOT / "conf" / "payment_formats"
NOW = datetime.now(UTC)
DAY = (NOW - timedelta(days=1)).date()
HEADER = "reference,date,amount,currency,account,contract,payer,purpose\n"


def csv(*rows: str) -> bytes:
    """A generic-csv statement: each row ``reference,date,amount,currency,account,contract,payer,purpose``."""
    return (HEADER + "".join(f"{row}\n" for row in rows)).encode()


def line(
    ref: str, amount: str, account: str = "", contract: str = "", purpose: str = "", day: date = DAY
) -> str:
    return f'{ref},{day.isoformat()},{amount},EUR,{account},{contract},Payer,"{purpose}"'


class World:
    """An operator and three EUR subscribers: ``a`` (contract C-17, an active service), ``b``, ``c``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        with self.sessions.begin() as s:
            operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
            self.actor = resolve_actor(s, "tester", source="test")
            for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
                dictionaries.add(s, self.actor, kind, code, code.title())
            dictionaries.add(s, self.actor, "adjustment_reason", "fee", "Fee")
            self.a, self.b, self.c = (self._subscriber(s) for _ in range(3))
            account = accounts.find(s, self.a)
            s.get(Customer, account.customer_id).contract_number = "C-17"  # type: ignore[union-attr]
            service = Service(account_id=account.id, kind="internet", status="active",
                              created_at=NOW - timedelta(days=40))  # fmt: skip
            s.add(service)
            s.flush()
            self.service_id = service.id

    def _subscriber(self, s: Session) -> str:
        info = subscribers.create(
            s, self.actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        return info.accounts[0].number

    def load(self, data: bytes, fmt: str = "generic-csv", **kw: object) -> ImportReport:
        options: dict[str, object] = {
            "bank": "bank1", "fmt": fmt, "name": f"statement.{fmt}", "currency": "EUR", "time_zone": UTC,
            "rules": RULES, "matcher": MATCHER, "presets_dir": PRESETS, **kw,
        }  # fmt: skip
        return import_file(self.engine, self.actor, data, **options)  # type: ignore[arg-type]

    def balance(self, number: str) -> Decimal:
        with self.sessions() as s:
            return accounts.balance(s, number).balance

    def book(self, code: str) -> Decimal:
        with self.sessions() as s:
            return s.scalar(select(LedgerAccount.balance).where(LedgerAccount.code == code)) or Decimal(0)

    def count(self, table: type) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(table)) or 0


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def test_a_csv_statement_posts_each_matched_line_once_as_a_payment_of_the_bank(world: World) -> None:
    data = csv(
        line("TX-1", "25.00", account=world.a),
        line("TX-2", "10.50", contract="C-17"),
        line("TX-3", "7.00", purpose=f"Internet, л/с {world.b}"),
        line("TX-4", "1.00", purpose=f"account {world.c}"),
    )
    report = world.load(data)
    assert (report.posted, report.posted_total, report.unmatched, report.duplicate, report.bad) == (
        4, Decimal("43.5"), 0, 0, 0,
    )  # fmt: skip
    assert report.complete and not report.dry_run and report.file_id is not None
    assert (world.balance(world.a), world.balance(world.b), world.balance(world.c)) == (
        Decimal("35.5"), Decimal("7"), Decimal("1"),
    )  # fmt: skip
    assert world.book(book_code("clearing", "EUR", "bank1")) == Decimal("43.5")
    with world.sessions() as s:
        rows = s.execute(
            select(Payment.source, Payment.channel, Payment.external_id).order_by(Payment.id)
        ).all()
        assert rows == [("bank1", "file", f"TX-{i}") for i in range(1, 5)]
        keys = set(
            s.scalars(select(LedgerTransaction.idempotency_key).where(LedgerTransaction.kind == "payment"))
        )
        assert keys == {f"payment:bank1:TX-{i}" for i in range(1, 5)}
        note = s.scalar(select(Notification).order_by(Notification.id).limit(1))
        assert note is not None and note.payload == {
            "amount": "25.000000",
            "currency": "EUR",
            "balance": "25.000000",
        }
        assert s.scalar(select(func.count()).where(AuditEntry.action == "payments.import")) == 1
        stored = s.get(PaymentFile, report.file_id)
        assert stored is not None and (stored.state, stored.posted_count, stored.lines_done) == ("done", 4, 4)
    assert world.count(Notification) == 4


def test_the_same_payment_as_the_online_api_made_is_one_payment(world: World) -> None:
    """A statement line whose key is the bank's transaction id, already paid over SOAP, is a duplicate."""
    request = payments.PaymentRequest(
        "bank1", "TX-1", world.a, "25.00", NOW - timedelta(days=1), channel="soap"
    )
    with world.sessions.begin() as s:
        payments.pay(s, world.actor, request, rules=RULES)
    report = world.load(csv(line("TX-1", "25.00", account=world.a), line("TX-2", "3.00", account=world.a)))
    assert (report.posted, report.duplicate, world.balance(world.a)) == (1, 1, Decimal("28"))
    conflict = world.load(csv(line("TX-1", "26.00", account=world.a)))
    assert (
        conflict.bad == 1
        and "was posted before with another amount, 25.000000 EUR" in conflict.problems[0].reason
    )
    assert world.balance(world.a) == Decimal("28")


ONE_C = """1CClientBankExchange
ВерсияФормата=1.03
Кодировка={declared}
РасчСчет=40702810900000000001
СекцияДокумент=Платежное поручение
Номер=512
Дата={day}
Сумма=15.00
ПлательщикСчет=40817810500000012345
Плательщик=Иванов Иван Иванович
ПлательщикИНН=771234567890
ПолучательСчет=40702810900000000001
ДатаПоступило={day}
НазначениеПлатежа=Оплата интернета, л/с {a}. Без НДС
КонецДокумента
СекцияДокумент=Платежное поручение
Номер=513
Дата={day}
Сумма=4.00
ПлательщикСчет=40817810500000099999
Плательщик=Петров Пётр
ПолучательСчет=40702810900000000001
ДатаПоступило={day}
НазначениеПлатежа=Оплата по договору № C-17
КонецДокумента
КонецФайла
"""


@pytest.mark.parametrize(("encoding", "declared"), [("cp1251", "Windows"), ("utf-8", "UTF-8")])
def test_1c_statements_in_windows_1251_and_utf8_post_payments(
    world: World, encoding: str, declared: str
) -> None:
    text = ONE_C.format(declared=declared, day=DAY.strftime("%d.%m.%Y"), a=world.b)
    report = world.load(text.replace("\n", "\r\n").encode(encoding), fmt="1c")
    assert (report.posted, report.bad, report.unmatched) == (2, 0, 0), report.problems
    assert (world.balance(world.b), world.balance(world.a)) == (Decimal("15"), Decimal("4"))


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>STMT-1</MsgId><CreDtTm>{day}T06:00:00+01:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>S-1</Id><CreDtTm>{day}T06:00:00+01:00</CreDtTm>
      <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
      <Ntry>
        <Amt Ccy="EUR">49.90</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
        <BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>BANKREF-0001</AcctSvcrRef><BkTxCd/>
        <NtryDtls><TxDtls>
          <RltdPties><Dbtr><Nm>Erika Mustermann</Nm></Dbtr></RltdPties>
          <RmtInf><Ustrd>Internet December</Ustrd><Ustrd>account {a}</Ustrd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">1200.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
        <BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>BANKREF-0002</AcctSvcrRef><BkTxCd/>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">19.99</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
        <BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>BANKREF-0003</AcctSvcrRef><BkTxCd/>
        <NtryDtls><TxDtls>
          <RltdPties><Dbtr><Nm>Max Muster</Nm></Dbtr></RltdPties>
          <RmtInf><Strd><CdtrRefInf><Ref>{b}</Ref></CdtrRefInf></Strd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


def test_a_camt053_statement_posts_its_credit_entries(world: World) -> None:
    report = world.load(CAMT.format(day=DAY.isoformat(), a=world.a, b=world.b).encode(), fmt="camt053")
    assert (report.posted, report.bad, report.unmatched) == (2, 0, 0), report.problems
    assert (world.balance(world.a), world.balance(world.b)) == (Decimal("49.9"), Decimal("19.99"))
    with world.sessions() as s:
        assert set(s.scalars(select(Payment.external_id))) == {"BANKREF-0001", "BANKREF-0003"}


def test_the_same_file_again_posts_nothing_and_names_the_first_import(world: World) -> None:
    data = csv(line("TX-1", "25.00", account=world.a), line("TX-2", "5.00", purpose="no number here"))
    first = world.load(data)
    again = world.load(data)
    assert again.already_imported and again.file_id == first.file_id and again.imported_at is not None
    assert (again.posted, again.unmatched) == (1, 1)  # the file's counts, from its first import
    planned = world.load(data, dry_run=True)
    assert planned.dry_run and planned.already_imported and planned.file_id == first.file_id
    assert (world.count(Payment), world.count(UnmatchedPayment), world.count(PaymentFile)) == (1, 1, 1)
    assert world.balance(world.a) == Decimal("25")


def test_a_new_file_repeating_lines_posts_only_the_new_ones(world: World) -> None:
    world.load(csv(line("TX-1", "25.00", account=world.a), line("TX-2", "5.00", purpose="?")))
    report = world.load(
        csv(
            line("TX-1", "25.00", account=world.a),
            line("TX-2", "5.00", purpose="?"),
            line("TX-3", "2.00", account=world.a),
        )
    )
    assert (report.posted, report.duplicate, report.duplicate_total, report.unmatched) == (
        1,
        2,
        Decimal("30"),
        0,
    )
    assert (world.balance(world.a), world.count(UnmatchedPayment), world.count(PaymentFile)) == (
        Decimal("27"), 1, 2,
    )  # fmt: skip


def test_a_line_repeated_in_one_file_is_reported_and_posted_once(world: World) -> None:
    report = world.load(csv(line("TX-1", "25.00", account=world.a), line("TX-1", "25.00", account=world.a)))
    assert (report.posted, report.bad) == (1, 1)
    assert report.problems[0].line_no == 3 and "duplicate of line 2" in report.problems[0].reason
    assert world.balance(world.a) == Decimal("25")


def test_unmatched_lines_wait_in_suspense_so_the_clearing_account_follows_the_statement(world: World) -> None:
    with world.sessions.begin() as s:
        s.scalar(select(Account).where(Account.number == world.c)).status = "closed"  # type: ignore[union-attr]
    report = world.load(
        csv(
            line("TX-1", "25.00", account=world.a),
            line("TX-2", "3.00", account="999999"),
            line("TX-3", "4.00", account=world.c),
            line("TX-4", "5.00", purpose=f"л/с {world.a} и л/с {world.b}"),
            line("TX-5", "6.00", purpose="thanks"),
        )
    )
    assert (report.posted, report.unmatched, report.unmatched_total) == (1, 4, Decimal("18"))
    reasons = {o.key: o.detail for o in report.outcomes}
    assert "account 999999 does not exist" in reasons["TX-2"]
    assert f"account {world.c} is closed" in reasons["TX-3"]
    assert f"ambiguous: purpose text names accounts {world.a}, {world.b}" in reasons["TX-4"]
    assert "no account or contract number" in reasons["TX-5"]
    assert world.book(book_code("clearing", "EUR", "bank1")) == Decimal("43")
    assert world.book(book_code("suspense", "EUR")) == Decimal("-18")  # credit: money owed to someone
    with world.sessions() as s:
        queue = list_unmatched(s, bank="bank1", open_only=True)
    assert [q.line_key for q in queue] == ["TX-2", "TX-3", "TX-4", "TX-5"]
    assert queue[0].account_text == "999999" and queue[0].state == "open"


def test_assigning_an_unmatched_line_pays_the_account_once_and_resumes_its_service(world: World) -> None:
    with world.sessions.begin() as s:
        accounts.adjust(s, world.actor, world.a, "-10.00", "fee", key="fee", effective_at=NOW - timedelta(10))
        service_lifecycle.evaluate_services(s, world.actor, NOW - timedelta(hours=2), RULES)
        assert s.get(Service, world.service_id).status == "suspended_involuntary"  # type: ignore[union-attr]
    world.load(csv(line("TX-9", "12.00", purpose="for my internet")))
    with world.sessions() as s:
        (queued,) = list_unmatched(s)
    with world.sessions.begin() as s:
        done = assign(s, world.actor, queued.id, world.a, rules=RULES)
    assert (done.state, done.account_number, done.payment_id is not None) == ("assigned", world.a, True)
    assert done.lifecycle_changes == (f"service {world.service_id}: suspended_involuntary -> active",)
    assert world.balance(world.a) == Decimal("2")
    assert world.book(book_code("suspense", "EUR")) == Decimal(0)
    with world.sessions.begin() as s, pytest.raises(PaymentImportError, match="was assigned before"):
        assign(s, world.actor, queued.id, world.b, rules=RULES)
    with world.sessions() as s:
        paid = s.scalar(select(Payment).where(Payment.external_id == "TX-9"))
        assert paid is not None and (paid.source, paid.channel) == ("bank1", "file")
        assert s.scalar(select(func.count()).where(AuditEntry.action == "payments.unmatched.assign")) == 1
        assert list(s.scalars(select(ProvisioningTask.network).order_by(ProvisioningTask.id))) == [
            "walled_garden", "allow",
        ]  # fmt: skip
    assert world.balance(world.b) == Decimal(0)
    again = world.load(
        csv(line("TX-9", "12.00", purpose="for my internet"), line("TX-10", "1.00", account=world.b))
    )
    assert (again.duplicate, again.posted) == (1, 1)  # the assigned line stays paid once


def test_assigning_to_an_unknown_account_is_refused_and_moves_nothing(world: World) -> None:
    world.load(csv(line("TX-9", "12.00")))
    with world.sessions() as s:
        (queued,) = list_unmatched(s)
    with world.sessions.begin() as s, pytest.raises(payments.PaymentError, match="no account '404'"):
        assign(s, world.actor, queued.id, "404", rules=RULES)
    with world.sessions.begin() as s, pytest.raises(PaymentImportError, match="no unmatched line 999"):
        assign(s, world.actor, 999, world.a, rules=RULES)
    assert world.book(book_code("suspense", "EUR")) == Decimal("-12")


def test_bad_lines_are_named_and_the_good_lines_still_post(world: World) -> None:
    data = csv(
        line("TX-1", "25.00", account=world.a),
        line("TX-2", "-3.00", account=world.a).replace("-3.00", "abc"),
        f"TX-3,{DAY.isoformat()},5.00,XYZ,{world.a},,P,x",
        line("TX-4", "1.005", account=world.a),
        line("TX-5", "2.00", account=world.a, day=DAY + timedelta(days=5)),
        line("TX-6", "4.00", account=world.b),
    )
    report = world.load(data)
    assert (report.posted, report.bad, report.complete) == (2, 4, False)
    assert [p.line_no for p in report.problems] == [3, 4, 5, 6]
    assert "amount" in report.problems[0].reason and "currency" in report.problems[1].reason
    assert "in the future" in report.problems[3].reason
    assert (world.balance(world.a), world.balance(world.b)) == (Decimal("25"), Decimal("4"))
    with world.sessions() as s:
        stored = s.scalar(select(PaymentFile))
        assert (
            stored is not None
            and stored.bad_count == 4
            and [p["line_no"] for p in stored.problems] == [3, 4, 5, 6]
        )


def test_a_dry_run_says_what_would_happen_to_each_line_and_writes_nothing(world: World) -> None:
    world.load(csv(line("TX-1", "25.00", account=world.a)))
    before = (world.count(Payment), world.count(LedgerTransaction), world.count(PaymentFile))
    report = world.load(
        csv(line("TX-1", "25.00", account=world.a), line("TX-2", "5.00", purpose="?"), "TX-3,bad,,,,,,"),
        dry_run=True,
    )
    assert report.dry_run and report.file_id is None
    assert [(o.line_no, o.outcome) for o in report.outcomes] == [
        (2, "duplicate"),
        (3, "unmatched"),
        (4, "bad"),
    ]
    assert (world.count(Payment), world.count(LedgerTransaction), world.count(PaymentFile)) == before
    assert world.count(UnmatchedPayment) == 0


def test_lines_post_in_batches_and_an_interrupted_import_resumes_where_it_stopped(world: World) -> None:
    data = csv(*(line(f"TX-{i}", "1.00", account=world.a) for i in range(7)))

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        world.load(data, batch_size=3, progress=stop)
    assert world.balance(world.a) == Decimal("3")
    report = world.load(data, batch_size=3)
    assert (report.posted, report.duplicate, report.already_imported) == (7, 0, False)
    assert world.balance(world.a) == Decimal("7")
    assert world.load(data).already_imported


def test_a_file_of_bad_lines_only_is_recorded_in_the_billing_currency_and_opens_no_other_books(
    world: World,
) -> None:
    report = world.load(csv(line("TX-1", "-3.00", account=world.a).replace("-3.00", "abc")))
    assert (report.posted, report.bad, report.currency) == (0, 1, "EUR")
    with world.sessions() as s:
        codes = set(s.scalars(select(LedgerAccount.code).where(LedgerAccount.code.like("%:XXX"))))
    assert codes == set()


def test_a_bad_bank_code_or_format_refuses_the_whole_file(world: World) -> None:
    with pytest.raises(PaymentImportError, match="bank: expected"):
        world.load(csv(), bank="bad bank!")
    with pytest.raises(ValueError, match="format: expected one of"):
        world.load(csv(), fmt="nope")
    assert world.count(PaymentFile) == 0


def test_matching_rules_are_validated_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(
            '[[rule]]\nname = "a"\nfield = "iban"\npattern = "(x"\n'
            '[[rule]]\nname = "a"\nfield = "account"\npattern = "no group"\ncolour = 1\n',
            "m.toml",
        )
    text = "\n".join(map(str, caught.value.problems))
    assert "m.toml: rule[0].field: expected one of 'account', 'contract'" in text
    assert "rule[0].pattern: expected a regular expression" in text
    assert "rule[1].name: expected a unique name" in text
    assert "rule[1].pattern: expected exactly one capture group" in text
    assert "rule[1].colour: unknown key" in text


@pytest.mark.parametrize(
    ("purpose", "found"),
    [
        ("Оплата по л/с 100001 за интернет", (("100001",), ())),
        ("оплата лицевой счёт № 100002", (("100002",), ())),
        ("по лицевому счету 100003", (("100003",), ())),
        ("Account No. 100004; account 100005", (("100004", "100005"), ())),
        ("по договору № Д-2024/17.", ((), ("Д-2024/17",))),
        ("Contract No. C-5514", ((), ("C-5514",))),
        ("accounting services 2026", ((), ())),
    ],
)
def test_the_shipped_rules_find_account_and_contract_numbers(purpose: str, found: tuple[object, ...]) -> None:
    assert MATCHER.find(purpose) == found
    assert Matcher().find(purpose) == ((), ())


@pytest.mark.postgresql_only
def test_concurrent_imports_of_the_same_file_post_it_once(pg_engine: Engine) -> None:
    world = World(pg_engine)
    data = csv(*(line(f"TX-{i}", "1.00", account=world.a) for i in range(50)))
    barrier = threading.Barrier(4)

    def load() -> ImportReport:
        barrier.wait(timeout=30)
        return world.load(data, batch_size=10)

    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: load(), range(4)))
    assert sorted(r.already_imported for r in reports) == [False, True, True, True]
    assert world.balance(world.a) == Decimal("50")
    assert (world.count(Payment), world.count(PaymentFile)) == (50, 1)


@pytest.mark.postgresql_only
def test_concurrent_files_with_the_same_lines_post_each_line_once(pg_engine: Engine) -> None:
    world = World(pg_engine)
    files = [csv(*(line(f"TX-{i}", "1.00", account=world.a) for i in range(k, 40))) for k in range(4)]
    barrier = threading.Barrier(4)

    def load(data: bytes) -> ImportReport:
        barrier.wait(timeout=30)
        return world.load(data, batch_size=7)

    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(load, files))
    assert sum(r.posted for r in reports) == 40
    assert world.balance(world.a) == Decimal("40")
