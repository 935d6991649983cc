"""Import a bank's payment file: each line paid once, to the matched account or to suspense.

What: :func:`import_file` parses a file (:func:`billing.payment_files.parse`), pairs each line
with an account (:mod:`billing.payment_matching`) and posts, in batches of short transactions:

- a matched line as a payment of the bank (``source`` = bank code, channel ``file``,
  ``external_id`` = the line key): ledger key ``payment:{bank}:{key}``, the bank's clearing
  account debit, the subscriber credit, exactly what :func:`billing.payments.pay` would post
  (same key and content), a ``payments`` row and a ``payment_received`` notification; services
  of those accounts suspended for debt are re-evaluated (they resume when funds allow);
- an unmatched line into the bank's clearing account against the suspense book (ledger key
  ``unmatched:{bank}:{key}``) and a row of the unmatched queue, so that the clearing balance
  follows the statement; :func:`billing.payment_unmatched.assign` later pays it to an account;
- a line whose key was posted before (by an earlier file, or online by the bank's API) as
  nothing: a duplicate; the same key with another amount is a bad line (a conflict);
- a bad line (the parser's, or a conflict) as nothing, reported with its line number and reason.

Exactly once: a file is recorded once per (bank, SHA-256): importing it again says "already
imported as file N" and posts nothing; lines are idempotent by their ledger keys (unique in the
database), so another file repeating lines posts only the new ones. Each batch commits its
postings together with the file's counts and ``lines_done``: an import that died is resumed by
importing the same file again. On PostgreSQL, imports of one bank are serialised by an advisory
lock held for the import, so two operators importing the same file at once post it once.

A dry run (``dry_run=True``) plans every line with the same code and writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, ledger
from billing.audit import Actor
from billing.books import book_account
from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.db.payment_files import PaymentFile, UnmatchedPayment
from billing.db.payments import Notification, Payment
from billing.db.services import Service
from billing.db.types import utcnow
from billing.lifecycle_rules import LifecycleRules
from billing.payment_files import DEFAULT_PRESETS_DIR, ParsedFile, StatementLine, check_currency, parse
from billing.payment_matching import Candidate, Matcher, decide, directory_for
from billing.payments import CLOCK_SKEW, SOURCE, PaymentError, ledger_key
from rating.money import normalize

BATCH = 5000
"""Lines per database transaction: the subscriber accounts of a batch stay locked while it is written
(about half a second on PostgreSQL here), the books only for the balance update at its end."""

_LOOKUP = 1000
"""Keys per lookup query."""

_EXISTING_PG = (
    "SELECT t.idempotency_key, t.id, p.amount, p.currency FROM ledger_transactions t"
    " JOIN LATERAL (SELECT amount, currency FROM postings WHERE transaction_id = t.id AND leg = 1) p ON true"
    " WHERE t.idempotency_key = ANY(:keys)"
)

PROBLEMS_KEPT = 1000
"""Bad lines kept with the file's record (the report of the import itself names every one)."""

OUTCOMES = ("posted", "unmatched", "duplicate", "bad")

Progress = Callable[[int, int], None]
"""Called as ``progress(lines done, lines in all)`` after each batch."""


class PaymentImportError(PaymentError):
    """An import refused as a whole (bad bank code, unreadable file...); nothing written."""


@dataclass(frozen=True)
class LineOutcome:
    """What became (or, on a dry run, would become) of one line."""

    line_no: int
    key: str
    outcome: str
    amount: Decimal
    account_number: str | None
    detail: str


@dataclass(frozen=True)
class LineProblem:
    """A bad line: its number in the file and why it was not posted."""

    line_no: int
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """The result of an import (or a dry run); counts are the file's, over every attempt."""

    file_id: int | None
    bank: str
    format: str
    name: str
    sha256: str
    currency: str
    dry_run: bool
    already_imported: bool
    imported_at: datetime | None
    lines: int
    posted: int
    posted_total: Decimal
    duplicate: int
    duplicate_total: Decimal
    unmatched: int
    unmatched_total: Decimal
    bad: int
    problems: tuple[LineProblem, ...] = ()
    outcomes: tuple[LineOutcome, ...] = ()
    """Every line on a dry run; the unmatched lines on an import."""
    lifecycle_changes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every line was good (posted, unmatched or a duplicate)."""
        return self.bad == 0


def unmatched_key(bank: str, key: str) -> str:
    """The ledger key of an unmatched line's clearing-to-suspense transaction."""
    return f"unmatched:{bank}:{key}"


@dataclass
class _Plan:
    """One line planned: its outcome and, when posted, the account and the booking time."""

    line: StatementLine
    outcome: str
    detail: str
    account: Candidate | None = None
    paid_at: datetime | None = None


@dataclass
class _Counts:
    posted: int = 0
    posted_total: Decimal = Decimal(0)
    duplicate: int = 0
    duplicate_total: Decimal = Decimal(0)
    unmatched: int = 0
    unmatched_total: Decimal = Decimal(0)
    bad: int = 0
    problems: list[LineProblem] = field(default_factory=list)

    def add(self, plans: Sequence[_Plan]) -> None:
        for plan in plans:
            amount = plan.line.amount
            if plan.outcome == "posted":
                self.posted, self.posted_total = self.posted + 1, self.posted_total + amount
            elif plan.outcome == "unmatched":
                self.unmatched, self.unmatched_total = self.unmatched + 1, self.unmatched_total + amount
            elif plan.outcome == "duplicate":
                self.duplicate, self.duplicate_total = self.duplicate + 1, self.duplicate_total + amount
            else:
                self.bad += 1
                self.problems.append(LineProblem(plan.line.line_no, plan.detail))


@dataclass(frozen=True)
class _Context:
    """What every batch of one import needs."""

    actor: Actor
    bank: str
    matcher: Matcher
    time_zone: tzinfo
    rules: LifecycleRules
    now: datetime
    currency: str


def import_file(
    engine: Engine,
    actor: Actor,
    data: bytes,
    *,
    bank: str,
    fmt: str,
    name: str,
    currency: str,
    time_zone: tzinfo,
    rules: LifecycleRules,
    matcher: Matcher,
    presets_dir: Path = DEFAULT_PRESETS_DIR,
    dry_run: bool = False,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> ImportReport:
    """Import (or, with ``dry_run``, plan) one bank file; see the module docstring."""
    if not SOURCE.match(bank):
        raise PaymentImportError(f"bank: expected 1 to 32 letters, digits, '_', '.', '-', got {bank!r}")
    if batch_size < 1:
        raise PaymentImportError(f"batch_size: expected at least 1, got {batch_size}")
    sha256 = hashlib.sha256(data).hexdigest()
    context = _Context(actor, bank, matcher, time_zone, rules, utcnow(), check_currency(currency))
    name = name[-300:]
    if dry_run:
        with Session(engine) as session:
            row = _find_file(session, bank, sha256)
            if row is not None and row.state == "done":
                return replace(_report(row, already=True), dry_run=True)
            parsed = parse(data, fmt, presets_dir=presets_dir, currency=currency)
            return _dry_run(session, context, parsed, sha256, name, batch_size)
    with _bank_lock(engine, bank) as connection, Session(bind=connection) as session:
        with session.begin():  # a file imported before is not even parsed again
            row = _find_file(session, bank, sha256)
            if row is not None and row.state == "done":
                return _report(row, already=True)
        parsed = parse(data, fmt, presets_dir=presets_dir, currency=currency)
        return _import(session, context, parsed, sha256, name, batch_size, progress)


@contextmanager
def _bank_lock(engine: Engine, bank: str) -> Iterator[Connection]:
    """A connection holding, on PostgreSQL, the advisory lock of ``bank``'s imports."""
    with engine.connect() as connection:
        if connection.dialect.name != "postgresql":
            connection.commit()
            yield connection
            return
        lock = int.from_bytes(
            hashlib.sha256(f"payment-import:{bank}".encode()).digest()[:8], "big", signed=True
        )
        connection.exec_driver_sql("SELECT pg_advisory_lock(%s)", (lock,))
        connection.commit()
        try:
            yield connection
        finally:
            connection.rollback()
            connection.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (lock,))
            connection.commit()


def _report(
    row: PaymentFile,
    *,
    already: bool,
    problems: Sequence[LineProblem] = (),
    outcomes: Sequence[LineOutcome] = (),
    changes: Sequence[str] = (),
) -> ImportReport:
    """The report of a recorded file (``already``: found recorded, nothing done now)."""
    if already and not problems:
        problems = [LineProblem(p["line_no"], p["reason"]) for p in row.problems]
    return ImportReport(
        row.id,
        row.bank,
        row.format,
        row.name,
        row.sha256,
        row.currency,
        False,
        already,
        row.imported_at,
        row.lines_total,
        row.posted_count,
        normalize(row.posted_total),
        row.duplicate_count,
        normalize(row.duplicate_total),
        row.unmatched_count,
        normalize(row.unmatched_total),
        row.bad_count,
        tuple(problems),
        tuple(outcomes),
        tuple(changes),
    )


def _find_file(session: Session, bank: str, sha256: str, *, lock: bool = False) -> PaymentFile | None:
    """The file recorded for (bank, SHA-256), optionally locked, fresh from the database."""
    query = select(PaymentFile).where(PaymentFile.bank == bank, PaymentFile.sha256 == sha256)
    if lock:
        query = query.with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def _parser_problems(parsed: ParsedFile) -> list[LineProblem]:
    """The parser's bad lines as problems."""
    return [LineProblem(b.line_no, b.reason) for b in parsed.bad]


def _import(
    session: Session,
    context: _Context,
    parsed: ParsedFile,
    sha256: str,
    name: str,
    batch_size: int,
    progress: Progress | None,
) -> ImportReport:
    """Record (or resume) the file, post its lines batch by batch, then mark it done and audit."""
    currency = context.currency  # the parser keeps only lines in it: the books are per currency
    with session.begin():
        row = _find_file(session, context.bank, sha256, lock=True)
        if row is not None and row.state == "done":
            return _report(row, already=True)
        if row is None:
            row = _claim(session, context, parsed, sha256, name, currency)
        file_id, start = row.id, row.lines_done
        clearing = book_account(session, "clearing", currency, context.bank)
        suspense = book_account(session, "suspense", currency)
    lines = parsed.lines
    postgresql = session.get_bind().dialect.name == "postgresql"
    counts = _Counts()
    changes: list[str] = []
    unmatched: list[LineOutcome] = []
    done = start
    while done < len(lines):
        with session.begin():
            row = session.scalar(
                select(PaymentFile)
                .where(PaymentFile.id == file_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            assert row is not None
            done = row.lines_done  # where this file's import stands (SQLite: another importer may be on it)
            chunk = lines[done : done + batch_size]
            if not chunk:
                break
            plans = _plan(session, context, chunk, look_up_keys=not postgresql)
            plans, resumed = _write(session, context, file_id, plans, clearing, suspense)
            changes.extend(resumed)
            batch = _Counts()
            batch.add(plans)
            done += len(chunk)
            _add_counts(row, batch, done)
        counts.add(plans)
        unmatched.extend(_outcome(p) for p in plans if p.outcome == "unmatched")
        if progress is not None:
            progress(done, len(lines))
    with session.begin():
        row = session.scalar(
            select(PaymentFile).where(PaymentFile.id == file_id).execution_options(populate_existing=True)
        )
        assert row is not None
        if row.state != "done":
            row.state, row.finished_at = "done", utcnow()
            audit.record(
                session,
                context.actor,
                "payments.import",
                "payment_file",
                row.id,
                after={"file": _file_summary(row), "lines_posted_now": counts.posted},
            )
        return _report(
            row,
            already=False,
            problems=_parser_problems(parsed) + counts.problems,
            outcomes=unmatched,
            changes=changes,
        )


def _claim(
    session: Session, context: _Context, parsed: ParsedFile, sha256: str, name: str, currency: str
) -> PaymentFile:
    """Record the file (state ``importing``) with the parser's bad lines counted."""
    row = PaymentFile(
        bank=context.bank,
        format=parsed.format,
        name=name,
        sha256=sha256,
        currency=currency,
        state="importing",
        lines_total=len(parsed.lines) + len(parsed.bad),
        lines_done=0,
        posted_count=0,
        posted_total=Decimal(0),
        duplicate_count=0,
        duplicate_total=Decimal(0),
        unmatched_count=0,
        unmatched_total=Decimal(0),
        bad_count=len(parsed.bad),
        problems=[{"line_no": b.line_no, "reason": b.reason} for b in parsed.bad[:PROBLEMS_KEPT]],
        operator_id=context.actor.operator_id,
        imported_at=context.now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # recorded meanwhile by a concurrent import (SQLite): theirs
        found = _find_file(session, context.bank, sha256, lock=True)
        if found is None:
            raise
        return found
    return row


def _add_counts(row: PaymentFile, batch: _Counts, lines_done: int) -> None:
    """Add a batch's outcomes to the file's record, with how far the import got."""
    row.lines_done = lines_done
    row.posted_count += batch.posted
    row.posted_total += batch.posted_total
    row.duplicate_count += batch.duplicate
    row.duplicate_total += batch.duplicate_total
    row.unmatched_count += batch.unmatched
    row.unmatched_total += batch.unmatched_total
    if batch.bad:
        row.bad_count += batch.bad
        room = PROBLEMS_KEPT - len(row.problems)
        if room > 0:
            row.problems = [
                *row.problems,
                *({"line_no": p.line_no, "reason": p.reason} for p in batch.problems[:room]),
            ]


def _file_summary(row: PaymentFile) -> dict[str, object]:
    """The file's record for the audit row."""
    return {
        "id": row.id,
        "bank": row.bank,
        "format": row.format,
        "name": row.name,
        "sha256": row.sha256,
        "lines": row.lines_total,
        "posted": row.posted_count,
        "posted_total": row.posted_total,
        "duplicate": row.duplicate_count,
        "duplicate_total": row.duplicate_total,
        "unmatched": row.unmatched_count,
        "unmatched_total": row.unmatched_total,
        "bad": row.bad_count,
    }


def _outcome(plan: _Plan) -> LineOutcome:
    """A planned line as reported."""
    account = plan.account.number if plan.account is not None else None
    return LineOutcome(plan.line.line_no, plan.line.key, plan.outcome, plan.line.amount, account, plan.detail)


def _dry_run(
    session: Session, context: _Context, parsed: ParsedFile, sha256: str, name: str, batch_size: int
) -> ImportReport:
    """Plan every line as the import would, writing nothing."""
    counts = _Counts()
    outcomes: list[LineOutcome] = []
    for i in range(0, len(parsed.lines), batch_size):
        plans = _plan(session, context, parsed.lines[i : i + batch_size])
        counts.add(plans)
        outcomes.extend(_outcome(p) for p in plans)
    bad = [LineOutcome(b.line_no, "", "bad", Decimal(0), None, b.reason) for b in parsed.bad]
    outcomes = sorted([*outcomes, *bad], key=lambda o: o.line_no)
    session.rollback()
    return ImportReport(
        None,
        context.bank,
        parsed.format,
        name,
        sha256,
        context.currency,
        True,
        False,
        None,
        len(parsed.lines) + len(parsed.bad),
        counts.posted,
        normalize(counts.posted_total),
        counts.duplicate,
        normalize(counts.duplicate_total),
        counts.unmatched,
        normalize(counts.unmatched_total),
        counts.bad + len(parsed.bad),
        tuple(sorted(_parser_problems(parsed) + counts.problems, key=lambda p: p.line_no)),
        tuple(outcomes),
    )


def _paid_at(line: StatementLine, time_zone: tzinfo) -> datetime:
    """When the line was paid: the file's moment if it gives one, else the start of its booking day."""
    if line.paid_at is not None:
        return line.paid_at
    return datetime.combine(line.booked_on, time(0), tzinfo=time_zone)


def _plan(
    session: Session, context: _Context, lines: Sequence[StatementLine], *, look_up_keys: bool = True
) -> list[_Plan]:
    """Decide each line's outcome from what the database holds now (reads only).

    Without ``look_up_keys`` lines posted before are planned as new: the PostgreSQL writer finds
    them itself (its insert skips existing keys) and the caller turns them into duplicates.
    """
    bank = context.bank
    directory = directory_for(session, context.matcher, lines)
    existing: dict[str, tuple[int, str, Decimal, str]] = {}
    if look_up_keys:
        existing = _existing(
            session, [k for ln in lines for k in (ledger_key(bank, ln.key), unmatched_key(bank, ln.key))]
        )
    today = context.now.astimezone(context.time_zone).date()
    plans = []
    for line in lines:
        prior = existing and (
            existing.get(ledger_key(bank, line.key)) or existing.get(unmatched_key(bank, line.key))
        )
        if prior:
            plans.append(_prior(line, prior))
            continue
        paid_at = _paid_at(line, context.time_zone)
        if line.booked_on > today or paid_at > context.now + CLOCK_SKEW:
            plans.append(_Plan(line, "bad", f"booked_on: {line.booked_on.isoformat()} is in the future"))
            continue
        match = decide(context.matcher, directory, line)
        if match.account is None:
            plans.append(_Plan(line, "unmatched", match.detail, paid_at=paid_at))
        else:
            plans.append(_Plan(line, "posted", f"matched by {match.detail}", match.account, paid_at))
    return plans


def _prior(line: StatementLine, prior: tuple[int, str, Decimal, str]) -> _Plan:
    """A line whose key was posted before: a duplicate, or a conflict when the amount differs."""
    txn_id, key, amount, currency = prior
    if amount == line.amount and currency == line.currency:
        where = "in the unmatched queue" if key.startswith("unmatched:") else "as a payment"
        return _Plan(line, "duplicate", f"posted before {where} (ledger transaction {txn_id})")
    return _Plan(
        line,
        "bad",
        f"key: {line.key!r} was posted before with another amount, {normalize(amount)} {currency} "
        f"(ledger transaction {txn_id})",
    )


def _existing(session: Session, keys: Sequence[str]) -> dict[str, tuple[int, str, Decimal, str]]:
    """``{key: (transaction id, key, amount, currency)}`` of the keys posted before (first leg: clearing).

    Two index lookups (keys, then first legs) rather than a join the planner may scan for.
    """
    found: dict[str, tuple[int, str, Decimal, str]] = {}
    if session.get_bind().dialect.name == "postgresql":  # one array parameter; LATERAL: index lookups
        rows = session.execute(text(_EXISTING_PG), {"keys": list(keys)})
        return {key: (txn_id, key, amount, currency) for key, txn_id, amount, currency in rows}
    ids: dict[int, str] = {}
    for i in range(0, len(keys), _LOOKUP):
        rows = session.execute(
            select(LedgerTransaction.id, LedgerTransaction.idempotency_key).where(
                LedgerTransaction.idempotency_key.in_(keys[i : i + _LOOKUP])
            )
        )
        ids.update((txn_id, key) for txn_id, key in rows)
    wanted = sorted(ids)
    for i in range(0, len(wanted), _LOOKUP):
        rows = session.execute(
            select(Posting.transaction_id, Posting.amount, Posting.currency).where(
                Posting.transaction_id.in_(wanted[i : i + _LOOKUP]), Posting.leg == 1
            )
        )
        for txn_id, amount, currency in rows:
            found[ids[txn_id]] = (txn_id, ids[txn_id], amount, currency)
    return found


def _write(
    session: Session, context: _Context, file_id: int, plans: list[_Plan], clearing: int, suspense: int
) -> tuple[list[_Plan], list[str]]:
    """Post the batch's payments and unmatched lines and resume services; returns the lifecycle changes.

    A key posted meanwhile (by the bank's API) makes its line a duplicate, or a conflict.
    """
    if session.get_bind().dialect.name == "postgresql":
        return _write_postgresql(session, context, file_id, plans, clearing, suspense)
    plans = _write_portable(session, context, file_id, plans, clearing, suspense)
    return plans, _resume(session, context, plans)


def _write_postgresql(
    session: Session, context: _Context, file_id: int, plans: list[_Plan], clearing: int, suspense: int
) -> tuple[list[_Plan], list[str]]:
    """The set-based path (:mod:`billing.db.payment_file_writes`); books' balances last."""
    from billing.db import payment_file_writes as writes
    from billing.db.ledger_writes import add_to_balances

    bank, now = context.bank, context.now
    staged: list[writes.StagedLine] = []
    index: list[int] = []
    for k, plan in enumerate(plans):
        if plan.outcome not in ("posted", "unmatched"):
            continue
        line, paid_at = plan.line, plan.paid_at
        assert paid_at is not None
        pk, uk = ledger_key(bank, line.key), unmatched_key(bank, line.key)
        if plan.outcome == "posted":
            assert plan.account is not None
            staged.append(
                writes.StagedLine(
                    True,
                    pk,
                    uk,
                    line.key,
                    plan.account.account_id,
                    clearing,
                    plan.account.ledger_account_id,
                    line.amount,
                    line.currency,
                    paid_at,
                    min(paid_at, now),
                    line.purpose.strip()[:300],
                    f"payment {bank} {line.key}"[:500],
                    line.line_no,
                    line.booked_on,
                    None,
                    None,
                    "",
                    "",
                )
            )
        else:
            staged.append(
                writes.StagedLine(
                    False,
                    uk,
                    pk,
                    line.key,
                    None,
                    clearing,
                    suspense,
                    line.amount,
                    line.currency,
                    paid_at,
                    min(paid_at, now),
                    line.purpose.strip()[:300],
                    f"unmatched payment {bank} {line.key}"[:500],
                    line.line_no,
                    line.booked_on,
                    _cut(line.account, 64),
                    _cut(line.contract, 64),
                    line.payer[:200],
                    plan.detail[:300],
                )
            )
        index.append(k)
    if not staged:
        return plans, []
    old = writes.post_staged(
        session, staged, bank=bank, file_id=file_id, operator_id=context.actor.operator_id, now=now
    )
    if old:
        existing = _existing(
            session, [k for seq in old for k in (staged[seq].idempotency_key, staged[seq].other_key)]
        )
        for seq in old:
            plan = plans[index[seq]]
            prior = existing.get(staged[seq].idempotency_key) or existing.get(staged[seq].other_key)
            if prior is None:
                raise PaymentImportError(f"line {plan.line.line_no}: refused by the database")
            plans[index[seq]] = _prior(plan.line, prior)
    changes: list[str] = []
    services = writes.resumable_services(session)
    if services:
        from billing.service_lifecycle import evaluate_services

        report = evaluate_services(session, context.actor, now, context.rules, service_ids=services)
        changes = [f"service {c.service_id}: {c.from_status} -> {c.to_status}" for c in report.changes]
    not_posted = set(old)
    into_clearing = sum((line.amount for i, line in enumerate(staged) if i not in not_posted), Decimal(0))
    into_suspense = sum(
        (line.amount for i, line in enumerate(staged) if i not in not_posted and not line.matched), Decimal(0)
    )
    add_to_balances(session, {clearing: into_clearing, suspense: -into_suspense})
    return plans, changes


def _cut(text: str | None, size: int) -> str | None:
    """``text`` cut to ``size`` characters; empty as None."""
    return text[:size] if text else None


def _write_portable(
    session: Session, context: _Context, file_id: int, plans: list[_Plan], clearing: int, suspense: int
) -> list[_Plan]:
    """SQLite: the ledger's batch post, then Core inserts of the payments and the queue rows."""
    bank, now, operator = context.bank, context.now, context.actor.operator_id
    requests = []
    for plan in plans:
        line = plan.line
        if plan.outcome == "posted":
            assert plan.account is not None and plan.paid_at is not None
            requests.append(
                ledger.TransactionRequest(
                    ledger_key(bank, line.key),
                    "payment",
                    (
                        ledger.Leg(clearing, line.amount),
                        ledger.Leg(plan.account.ledger_account_id, -line.amount),
                    ),
                    min(plan.paid_at, now),
                    f"payment {bank} {line.key}"[:500],
                    operator_id=operator,
                )
            )
        elif plan.outcome == "unmatched":
            assert plan.paid_at is not None
            requests.append(
                ledger.TransactionRequest(
                    unmatched_key(bank, line.key),
                    "unmatched_payment",
                    (ledger.Leg(clearing, line.amount), ledger.Leg(suspense, -line.amount)),
                    min(plan.paid_at, now),
                    f"unmatched payment {bank} {line.key}"[:500],
                    operator_id=operator,
                )
            )
    if not requests:
        return plans
    posted = iter(ledger.post_batch(session, requests))
    payments: list[tuple[_Plan, int]] = []
    queued: list[tuple[_Plan, int]] = []
    for plan in plans:
        if plan.outcome not in ("posted", "unmatched"):
            continue
        result = next(posted)
        if not result.created:  # posted meanwhile (the bank's API, same key and content)
            plan.outcome, plan.detail = "duplicate", f"posted before (ledger transaction {result.id})"
        elif plan.outcome == "posted":
            payments.append((plan, result.id))
        else:
            queued.append((plan, result.id))
    _insert_payments(session, context, payments)
    if queued:
        session.execute(
            insert(UnmatchedPayment),
            [
                {
                    "file_id": file_id,
                    "bank": bank,
                    "line_key": p.line.key,
                    "line_no": p.line.line_no,
                    "booked_on": p.line.booked_on,
                    "amount": p.line.amount,
                    "currency": p.line.currency,
                    "account_text": _cut(p.line.account, 64),
                    "contract_text": _cut(p.line.contract, 64),
                    "payer": p.line.payer[:200],
                    "purpose": p.line.purpose.strip()[:300],
                    "reason": p.detail[:300],
                    "transaction_id": txn_id,
                    "state": "open",
                    "created_at": now,
                }
                for p, txn_id in queued
            ],
        )
    return plans


def _insert_payments(session: Session, context: _Context, payments: list[tuple[_Plan, int]]) -> None:
    """The ``payments`` rows and their notifications (with the balance after each payment)."""
    if not payments:
        return
    rows = [
        {
            "source": context.bank,
            "external_id": p.line.key,
            "channel": "file",
            "account_id": p.account.account_id,
            "amount": p.line.amount,
            "currency": p.line.currency,
            "paid_at": p.paid_at,
            "received_at": context.now,
            "purpose": p.line.purpose.strip()[:300],
            "state": "posted",
            "transaction_id": txn_id,
            "operator_id": context.actor.operator_id,
        }
        for p, txn_id in payments
        if p.account is not None
    ]
    ids = list(session.scalars(insert(Payment).returning(Payment.id, sort_by_parameter_order=True), rows))
    ledger_ids = sorted({p.account.ledger_account_id for p, _ in payments if p.account is not None})
    balances: dict[int, Decimal] = {}
    for i in range(0, len(ledger_ids), 1000):
        for account_id, raw in session.execute(
            select(LedgerAccount.id, LedgerAccount.balance).where(
                LedgerAccount.id.in_(ledger_ids[i : i + 1000])
            )
        ):
            balances[account_id] = -raw  # a subscriber account's natural balance
    notes = []
    for (plan, _), payment_id in zip(reversed(payments), reversed(ids), strict=True):
        assert plan.account is not None
        after = balances[plan.account.ledger_account_id]
        balances[plan.account.ledger_account_id] = after - plan.line.amount
        notes.append(
            {
                "key": f"payment:{payment_id}",
                "account_id": plan.account.account_id,
                "kind": "payment_received",
                "payload": {
                    "amount": str(normalize(plan.line.amount)),
                    "currency": plan.line.currency,
                    "balance": str(normalize(after)),
                },
                "state": "pending",
                "created_at": context.now,
            }
        )
    notes.reverse()
    session.execute(insert(Notification), notes)


def _resume(session: Session, context: _Context, plans: Sequence[_Plan]) -> list[str]:
    """Re-evaluate the batch's services suspended for debt (a payment may end the suspension)."""
    from billing.service_lifecycle import evaluate_services

    account_ids = sorted(
        {p.account.account_id for p in plans if p.outcome == "posted" and p.account is not None}
    )
    ids: list[int] = []
    for i in range(0, len(account_ids), 1000):
        ids.extend(
            session.scalars(
                select(Service.id).where(
                    Service.account_id.in_(account_ids[i : i + 1000]),
                    Service.status == "suspended_involuntary",
                )
            )
        )
    if not ids:
        return []
    report = evaluate_services(session, context.actor, context.now, context.rules, service_ids=ids)
    return [f"service {c.service_id}: {c.from_status} -> {c.to_status}" for c in report.changes]
