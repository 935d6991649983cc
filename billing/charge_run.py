"""The charge run: post every charge due on a day, in short batches, as a recorded job.

:func:`run_charges` reads each service's facts, asks :mod:`billing.charge_plan` (pure) what is
due, and posts it through :func:`billing.ledger.post_batch` (COPY on PostgreSQL). Why it is
shaped this way:

- **Batches of services, one short transaction each.** A batch's facts are read set-based in a
  short transaction and priced with no transaction open; then one write transaction posts its
  charges, COPYs their ``charges`` rows, writes the services' ``charge_marks`` and commits. A
  payment to an account in the batch waits for the batch's row lock on that account only from
  the balance update to the commit (a fraction of the batch). With ``DEFAULT_BATCH_SIZE``
  (2,000 services) a batch takes about 0.4 s on PostgreSQL here (two at once) and a payment
  waited at most 0.3 s in the bench, inside the 1 s allowed, while batches stay large enough
  that per-statement overhead is small.
- **Pipelined on PostgreSQL.** Once plans are cached the database is the bottleneck, so the
  next batch is read and priced in a thread while :data:`WRITERS` batches are written at once,
  each on its own connection (see :data:`WRITERS` for why that cannot deadlock).
- **SQLite yields.** It has one writer for the whole file and waiting writers poll: after
  each write transaction the run pauses so a waiting payment gets in (:func:`_writer_pause`),
  and its batches are smaller (:data:`SQLITE_BATCH_SIZE`).
- **Priced once per case.** :class:`billing.charge_plan.PlanCache`: services with identical
  facts (tariff, cell, promotion, anchor, activation, status history) share one plan.
- **Idempotent.** Every line's idempotency key is unique in the ledger: a key posted before is
  returned, not posted again (and posted with other content is an error for that service).
  ``charge_marks`` lets a re-run of the same day skip planned services without pricing them,
  and a later day offer the ledger only lines due after the mark (:func:`_prepare`); a run
  killed at any point has committed whole batches only, so running it again posts exactly
  what is missing.
- **One bad service never stops the run.** A batch that fails is retried service by service,
  each in a savepoint; a service that still fails is recorded in ``charge_run_errors`` and the
  run goes on.
- **Dry run through the same code.** Each batch posts exactly as a real run does, then rolls
  back: the result lists what a real run would post (new keys) and what was posted already.
  Nothing persists, not even the run row.
- **Scheduled changes before charging.** A change scheduled for the run's day (``--at D``, the
  return ending a voluntary suspension ``[start, end)``) takes effect at the start of ``D``: the
  run executes it first, as of local midnight (:func:`_execute_scheduled`), so ``D``'s charges
  already follow it. Only for services not yet planned through ``D`` and without a transition
  at or after that midnight (otherwise it runs with the evaluation after charging, and counts
  from the next day, like any change made during a day). A dry run does not execute them.
- **Lifecycle after charging.** After a batch commits, :func:`billing.service_lifecycle.evaluate_services`
  runs (grace, suspension, resume) in transactions of :data:`EVALUATE_CHUNK` services, for the
  services that may have something due (:func:`_needing_evaluation`: set-based, since the
  evaluation itself is one service at a time).

How facts are read (see :mod:`billing.charge_plan` for the rules they feed): the status of a day
is the one in force at the start of the day in the operator's time zone, so a transition at
instant ``t`` counts from the first local day that starts at or after ``t`` (a change made
during a day, from the next day; a scheduled change executed at midnight, from that day); the
same for a ``change_tariff``. The
tariff before a service's first ``change_tariff`` is that change's ``from_tariff_code``; a
service never changed is on ``services.tariff_code``.

Usage (postpaid tariffs with usage prices): a service's ``session_usage`` rows are loaded only
when :func:`billing.charge_plan.usage_windows` says a usage line may be due (a period ending in
the window, after the service's mark), for all such services of a batch in one query. Each row
becomes a :class:`rating.traffic.UsageDelta` over ``[recorded_at - seconds, recorded_at)``: the row
has one instant, and its ``seconds`` (the session time it adds) say how long it took to
accumulate, which is what the time bands need; it belongs to the period containing
``recorded_at``. The rows carry no traffic class yet, so all traffic is class ``internet``;
``output_octets`` (sent by the NAS to the subscriber) is the download, ``input_octets`` the upload.
A row recorded after a period's end belongs to the next period, so a period's usage, once due,
never changes.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from time import perf_counter, sleep
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ARRAY, BigInteger, String, any_, bindparam, cast, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from billing import audit, ledger
from billing.audit import Actor
from billing.books import book_account
from billing.charge_plan import (
    ChargeFacts,
    PlanCache,
    PlannedCharge,
    UsageWindow,
    has_postpaid_usage,
    usage_windows,
)
from billing.db.charge_writes import (
    StagedCharge,
    add_staged_balances,
    charge_row,
    insert_charges,
    post_staged,
    upsert_marks,
)
from billing.db.charges import ChargeMark, ChargeRun, ChargeRunError
from billing.db.customers import Account, Customer
from billing.db.dictionaries import DictionaryEntry
from billing.db.ledger import LedgerAccount, LedgerTransaction, Posting
from billing.db.ledger_writes import id_array
from billing.db.lifecycle import ScheduledServiceChange, ServiceStatusChange
from billing.db.services import Service
from billing.db.sessions import SessionUsage
from billing.db.types import utcnow
from billing.lifecycle_rules import LifecycleRules
from rating.catalog import Catalog
from rating.tariff import Tariff
from rating.traffic import INTERNET, ClassOctets, UsageDelta

DEFAULT_BATCH_SIZE = 2000
"""Services per batch transaction on PostgreSQL: see the module docstring for why."""

SQLITE_BATCH_SIZE = 500
"""Services per batch transaction on SQLite: its one writer lock is held for the whole batch
(about 0.2 s for 500 services here), and a payment must get in within a second."""

WRITERS = 2
"""Batches written at once on PostgreSQL, each in its own transaction and connection.

Two: the database is the bottleneck once plans are cached, and this machine has two CPUs.
Batches touch disjoint subscriber accounts and lock the shared revenue accounts last, in one
global order, so they never deadlock; a payment still waits for at most one batch's tail.
"""

EVALUATE_CHUNK = 200
"""Services per lifecycle-evaluation transaction (it is one service at a time: slow per service)."""

SQLITE_PAUSE_MIN_S = 0.005
SQLITE_PAUSE_MAX_S = 0.1
"""Bounds of the pause after each write transaction on SQLite (see :func:`_writer_pause`)."""

_FILTER_KINDS = ("service", "account", "tariff")


class ChargeRunRefused(ValueError):
    """A run request refused (bad filter, bad batch size) or a service's lines refused (currency)."""


@dataclass(frozen=True)
class ServiceFailure:
    """A service the run could not charge, and why."""

    service_id: int
    account_id: int | None
    message: str


@dataclass(frozen=True)
class ChargeRunResult:
    """What a run did (or, for a dry run, would do).

    ``would_post`` holds the lines a real run would post now (dry run only; a real run posts
    them: ``charges_posted``); ``already_posted`` counts planned lines whose key was posted
    before. ``totals`` sums the posted (or would-be-posted) amounts per currency.
    """

    run_id: int | None
    as_of: date
    dry_run: bool
    status: str
    services_seen: int
    services_charged: int
    services_skipped: int
    charges_posted: int
    already_posted: int
    totals: dict[str, Decimal]
    errors: tuple[ServiceFailure, ...]
    would_post: tuple[PlannedCharge, ...] = ()
    lifecycle_changes: int = 0
    lifecycle_failures: int = 0


@dataclass
class _Tally:
    seen: int = 0
    charged: int = 0
    skipped: int = 0
    posted: int = 0
    already: int = 0
    totals: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    errors: list[ServiceFailure] = field(default_factory=list)
    would_post: list[PlannedCharge] = field(default_factory=list)
    lifecycle_changes: int = 0
    lifecycle_failures: int = 0

    def add(self, other: _Tally) -> None:
        """Add the counts of ``other`` (one batch's, from a writer thread) to these."""
        self.seen += other.seen
        self.charged += other.charged
        self.skipped += other.skipped
        self.posted += other.posted
        self.already += other.already
        for currency, amount in other.totals.items():
            self.totals[currency] += amount
        self.errors.extend(other.errors)
        self.would_post.extend(other.would_post)
        self.lifecycle_changes += other.lifecycle_changes
        self.lifecycle_failures += other.lifecycle_failures


@dataclass(frozen=True)
class _ServiceRow:
    service_id: int
    account_id: int
    kind: str
    status: str
    tariff_code: str
    promotion_code: str | None
    activated_on: date | None
    anchor_day: int
    currency: str
    ledger_account_id: int
    category: str | None
    region: str | None
    planned_through: date | None


# --------------------------------------------------------------------------- selection


def parse_filter(text: str | None) -> tuple[str, tuple[str, ...]] | None:
    """``service=1,2`` / ``account=B0001,B0002`` / ``tariff=HOME-100``: which services to run for."""
    if text is None or not text.strip():
        return None
    kind, sep, values = text.partition("=")
    kind = kind.strip()
    items = tuple(v.strip() for v in values.split(",") if v.strip())
    if not sep or kind not in _FILTER_KINDS or not items:
        raise ChargeRunRefused(
            "subscribers: expected service=ID[,ID], account=NUMBER[,NUMBER] or tariff=CODE[,CODE], "
            f"got {text!r}"
        )
    if kind == "service" and not all(v.isdigit() for v in items):
        raise ChargeRunRefused(f"subscribers: service ids are numbers, got {text!r}")
    return kind, items


def _candidates(session: Session, as_of: date, chosen: tuple[str, tuple[str, ...]] | None) -> Any:
    query = select(Service.id).where(Service.tariff_code.is_not(None), Service.activated_on <= as_of)
    if chosen is not None:
        kind, items = chosen
        if kind == "service":
            query = query.where(Service.id.in_([int(v) for v in items]))
        elif kind == "account":
            query = query.join(Account, Account.id == Service.account_id).where(Account.number.in_(items))
        else:
            query = query.where(Service.tariff_code.in_(items))
    return query


def _due_service_ids(session: Session, as_of: date, chosen: tuple[str, tuple[str, ...]] | None) -> list[int]:
    """Candidates not yet planned through ``as_of`` (the marks decide), in id order."""
    base = _candidates(session, as_of, chosen).subquery()
    query = (
        select(base.c.id)
        .outerjoin(ChargeMark, ChargeMark.service_id == base.c.id)
        .where(or_(ChargeMark.planned_through.is_(None), ChargeMark.planned_through < as_of))
        .order_by(base.c.id)
    )
    return list(session.scalars(query))


def _count_candidates(session: Session, as_of: date, chosen: tuple[str, tuple[str, ...]] | None) -> int:
    base = _candidates(session, as_of, chosen).subquery()
    return session.scalar(select(func.count()).select_from(base)) or 0


# --------------------------------------------------------------------------- facts


def _first_day_from(instant: datetime, tz: tzinfo) -> date:
    """The first local day that starts at or after ``instant``: the day a transition is charged from."""
    local = instant.astimezone(tz)
    return local.date() if local.time() == time(0) else local.date() + timedelta(days=1)


def _midnight(day: date, tz: tzinfo) -> datetime:
    """The instant the local ``day`` starts."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _id_in(session: Session, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids``; on PostgreSQL ``= ANY(array)``: one parameter instead of 2,000 to render."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(cast(bindparam("ids", id_array(ids), type_=String), ARRAY(BigInteger)))
    return column.in_(ids)


def _load_rows(session: Session, ids: Sequence[int]) -> list[_ServiceRow]:
    category = DictionaryEntry.__table__.alias("category")
    region = DictionaryEntry.__table__.alias("region")
    rows = session.execute(
        select(
            Service.id,
            Service.account_id,
            Service.kind,
            Service.status,
            Service.tariff_code,
            Service.promotion_code,
            Service.activated_on,
            Service.billing_anchor_day,
            Account.currency,
            Account.ledger_account_id,
            category.c.code,
            region.c.code,
            ChargeMark.planned_through,
        )
        .join(Account, Account.id == Service.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .outerjoin(category, category.c.id == Customer.category_id)
        .outerjoin(region, region.c.id == Customer.region_id)
        .outerjoin(ChargeMark, ChargeMark.service_id == Service.id)
        .where(_id_in(session, Service.id, ids))
        .order_by(Service.id)
    )
    return [_ServiceRow(*row) for row in rows]


def _histories(
    session: Session, ids: Sequence[int]
) -> tuple[dict[int, list[tuple[datetime, str, str, str, str | None]]], dict[int, str | None]]:
    """Each service's status history, and the tariff it had before its first change_tariff."""
    found: dict[int, list[tuple[datetime, str, str, str, str | None]]] = defaultdict(list)
    initial: dict[int, str | None] = {}
    rows = session.execute(
        select(
            ServiceStatusChange.service_id,
            ServiceStatusChange.at,
            ServiceStatusChange.from_status,
            ServiceStatusChange.to_status,
            ServiceStatusChange.event,
            ServiceStatusChange.tariff_code,
            ServiceStatusChange.from_tariff_code,
        )
        .where(_id_in(session, ServiceStatusChange.service_id, ids))
        .order_by(ServiceStatusChange.service_id, ServiceStatusChange.at, ServiceStatusChange.id)
    )
    for service_id, at, before, after, event, tariff_code, from_tariff_code in rows:
        found[service_id].append((at, before, after, event, tariff_code))
        if event == "change_tariff" and service_id not in initial:
            initial[service_id] = from_tariff_code
    return found, initial


def zone_of(tz: tzinfo) -> ZoneInfo:
    """``tz`` as the :class:`zoneinfo.ZoneInfo` that usage rating needs (``datetime.UTC`` included).

    Time bands are wall-clock windows of a named zone, so a fixed offset other than UTC is
    refused (:func:`run_charges` checks this before it starts).
    """
    if isinstance(tz, ZoneInfo):
        return tz
    if tz.utcoffset(None) == timedelta(0):
        return ZoneInfo("UTC")
    raise ChargeRunRefused(f"time_zone: expected a zoneinfo.ZoneInfo (the operator's zone), got {tz!r}")


def _load_usage(session: Session, wanted: dict[int, list[UsageWindow]]) -> dict[int, list[UsageDelta]]:
    """The usage deltas of ``wanted``'s services inside their windows: one set-based query.

    One statement for the whole batch (``service_id = ANY(array)`` on PostgreSQL) bounded by
    the earliest and latest window instants, then each row kept only inside its own service's
    windows (services of a batch usually share one period, so little is read for nothing).
    """
    lo = min(w.start for windows in wanted.values() for w in windows)
    hi = max(w.end for windows in wanted.values() for w in windows)
    rows = session.execute(
        select(
            SessionUsage.service_id,
            SessionUsage.recorded_at,
            SessionUsage.input_octets,
            SessionUsage.output_octets,
            SessionUsage.seconds,
        )
        .where(
            _id_in(session, SessionUsage.service_id, sorted(wanted)),
            SessionUsage.recorded_at >= lo,
            SessionUsage.recorded_at < hi,
        )
        .order_by(SessionUsage.service_id, SessionUsage.recorded_at, SessionUsage.id)
    )
    found: dict[int, list[UsageDelta]] = defaultdict(list)
    for service_id, recorded_at, octets_up, octets_down, seconds in rows:
        at = recorded_at if recorded_at.tzinfo is not None else recorded_at.replace(tzinfo=UTC)
        if not any(w.start <= at < w.end for w in wanted[service_id]):
            continue
        found[service_id].append(
            UsageDelta(
                start=at - timedelta(seconds=seconds),
                end=at,
                traffic=(ClassOctets(INTERNET, octets_in=octets_down, octets_out=octets_up),),
                session_seconds=seconds,
            )
        )
    return found


def _facts(
    row: _ServiceRow,
    history: list[tuple[datetime, str, str, str, str | None]],
    initial_tariff: str | None,
    catalog: Catalog,
    rules: LifecycleRules,
    tz: tzinfo,
) -> ChargeFacts:
    start = row.activated_on or date.min
    initial_status = history[0][1] if history else row.status
    statuses = [(start, initial_status)]
    changes = [code for _, _, _, event, code in history if event == "change_tariff" and code]
    # Before its first change_tariff a service was on that change's from_tariff_code (a history
    # without it, as written before the column existed, falls back to the first new tariff).
    initial = (initial_tariff or changes[0]) if changes else row.tariff_code
    tariffs = [(start, catalog.tariff(initial))]
    for at, before, after, event, code in history:
        day = _first_day_from(at, tz)
        if before != after:
            statuses.append((day, after))
        if event == "change_tariff" and code:
            tariffs.append((day, catalog.tariff(code)))
    statuses.sort(key=lambda pair: pair[0])
    promotion = catalog.promotion(row.promotion_code) if row.promotion_code else None
    return ChargeFacts(
        service_id=row.service_id,
        service_kind=row.kind,
        tariffs=tuple(tariffs),
        statuses=tuple(statuses),
        activated_on=row.activated_on,
        anchor_day=row.anchor_day,
        category=row.category,
        region=row.region,
        promotion=promotion,
        rules=rules.lookup(row.kind, row.category or ""),
        time_zone=zone_of(tz),
    )


# --------------------------------------------------------------------------- posting


@dataclass
class _Books:
    """Revenue ledger accounts by (currency, service kind), opened on first use."""

    ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def revenue(self, session: Session, currency: str, kind: str) -> int:
        key = (currency, kind)
        if key not in self.ids:
            self.ids[key] = book_account(session, "revenue", currency, kind)
        return self.ids[key]


def _post_services(
    session: Session,
    planned: Sequence[tuple[_ServiceRow, list[PlannedCharge]]],
    books: _Books,
    run_id: int | None,
    tz: tzinfo,
    operator_id: int | None,
    *,
    staged: bool = False,
) -> list[tuple[_ServiceRow, list[tuple[PlannedCharge, bool]]]]:
    """Post the lines of ``planned`` and record the new ones; returns each line with ``created``.

    ``staged`` (PostgreSQL, whole batches): set-based through :func:`billing.db.charge_writes.post_staged`,
    and the caller moves the balances last with :func:`add_staged_balances`. Otherwise through
    :func:`billing.ledger.post_batch` (SQLite; the service-by-service retry of a failed batch).
    """
    effective: dict[date, datetime] = {}  # a line is effective at the start of its local due day
    lines_out: list[StagedCharge] = []
    for row, lines in planned:
        for line in lines:
            if line.currency != row.currency:
                raise ChargeRunRefused(
                    f"service {row.service_id}: tariff {line.tariff_code} v{line.tariff_version} is in "
                    f"{line.currency}, the account in {row.currency}"
                )
            at = effective.get(line.due_on)
            if at is None:
                at = effective[line.due_on] = datetime.combine(line.due_on, time(0), tzinfo=tz).astimezone(
                    UTC
                )
            lines_out.append(
                StagedCharge(
                    line.idempotency_key,
                    row.service_id,
                    row.account_id,
                    row.ledger_account_id,
                    books.revenue(session, line.currency, row.kind),
                    line.amount,
                    line.currency,
                    line.kind.value,
                    line.due_on,
                    line.period_start,
                    line.period_end,
                    line.tariff_code,
                    line.tariff_version,
                    line.fingerprint,
                    line.description[:300],
                    at,
                )
            )
    if staged:
        created, conflicts = post_staged(session, lines_out, run_id, operator_id)
        if conflicts:
            raise ledger.IdempotencyConflict(
                f"idempotency key {conflicts[0]!r} was posted before with other content"
            )
    else:
        created = _post_generic(session, lines_out, run_id, operator_id)
    out = []
    index = 0
    for row, lines in planned:
        out.append((row, [(line, created[index + i]) for i, line in enumerate(lines)]))
        index += len(lines)
    return out


def _post_generic(
    session: Session, lines: Sequence[StagedCharge], run_id: int | None, operator_id: int | None
) -> list[bool]:
    """Each line as a ledger transaction (:func:`billing.ledger.post_batch`); ``charges`` rows of new ones."""
    if not lines:
        return []
    results = ledger.post_batch(
        session,
        [
            ledger.TransactionRequest(
                idempotency_key=c.idempotency_key,
                kind="charge",
                legs=(ledger.Leg(c.debit_account, c.amount), ledger.Leg(c.credit_account, -c.amount)),
                effective_at=c.effective_at,
                description=c.description,
                operator_id=operator_id,
            )
            for c in lines
        ],
    )
    now = utcnow()
    insert_charges(
        session,
        [
            charge_row(c, posted.id, run_id, now)
            for c, posted in zip(lines, results, strict=True)
            if posted.created
        ],
    )
    return [posted.created for posted in results]


# --------------------------------------------------------------------------- the run


def run_charges(
    session_factory: sessionmaker[Session],
    as_of: date,
    operator: Actor,
    *,
    dry_run: bool = False,
    subscribers: str | None = None,
    batch_size: int | None = None,
    time_zone: tzinfo = UTC,
    rules: LifecycleRules | None = None,
    evaluate: bool = True,
    evaluate_at: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> ChargeRunResult:
    """Post every charge due on ``as_of`` (a local calendar day) for the chosen services.

    ``subscribers`` is a filter (:func:`parse_filter`). ``evaluate_at`` (default: now) is the
    instant the lifecycle evaluation runs as; ``evaluate=False`` skips it. ``progress`` is called
    with (services done, services to do); ``after_batch`` with the batch number after each commit
    (the crash test uses it).
    """
    from billing.catalog import load_stored_catalog
    from billing.service_lifecycle import rules_for

    if batch_size is not None and batch_size < 1:
        raise ChargeRunRefused(f"batch_size: expected 1 or more, got {batch_size}")
    chosen = parse_filter(subscribers)
    zone_of(time_zone)
    rules = rules or rules_for(time_zone)
    tally = _Tally()
    with session_factory() as session, session.begin():
        dialect = session.get_bind().dialect.name
        if batch_size is None:
            batch_size = SQLITE_BATCH_SIZE if dialect == "sqlite" else DEFAULT_BATCH_SIZE
        catalog = load_stored_catalog(session)
        total = _count_candidates(session, as_of, chosen)
        ids = _due_service_ids(session, as_of, chosen)
        run_id = None
        if not dry_run:
            run = ChargeRun(
                as_of=as_of,
                dry_run=False,
                subscribers=subscribers,
                operator_id=operator.operator_id,
                operator_login=operator.login,
                status="running",
                started_at=utcnow(),
                batch_size=batch_size,
                services_seen=0,
                services_charged=0,
                services_skipped=0,
                errors=0,
                charges_posted=0,
                totals={},
            )
            session.add(run)
            session.flush()
            run_id = run.id
    tally.seen = total
    tally.skipped = total - len(ids)
    if evaluate and not dry_run:
        _execute_scheduled(session_factory, ids, as_of, operator, rules, time_zone, tally)
    cache = PlanCache()
    pause = _writer_pause(dialect)
    batches = [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]
    done = tally.skipped
    books = threading.local()  # each writer thread its own revenue-account ids (see _write_batch)

    def prepare(batch: Sequence[int]) -> _Prepared:
        return _prepare(session_factory, batch, as_of, catalog, rules, time_zone, cache)

    def write(batch: Sequence[int], prepared: _Prepared) -> tuple[float, _Tally]:
        if not hasattr(books, "ids"):
            books.ids = _Books()
        part = _Tally()
        held = _write_batch(
            session_factory, batch, prepared, as_of, time_zone, operator, run_id, dry_run, books.ids, part
        )
        return held, part

    def finish(number: int, batch: Sequence[int], held: float, part: _Tally) -> None:
        nonlocal done
        tally.add(part)
        pause(held)
        if after_batch is not None:
            after_batch(number)
        if evaluate and not dry_run:
            at = evaluate_at or utcnow()
            for i in range(0, len(batch), EVALUATE_CHUNK):
                chunk = batch[i : i + EVALUATE_CHUNK]
                pause(_evaluate(session_factory, chunk, operator, at, rules, tally))
        done += len(batch)
        if progress is not None:
            progress(done, total)

    # PostgreSQL: the next batch is read and priced in a thread while others are written, and
    # WRITERS batches are written at once, each in its own transaction (the database uses both
    # CPUs here). SQLite has one writer, and a dry run's batches must not see each other's
    # rolled-back revenue accounts: one batch after the other.
    parallel = dialect == "postgresql" and not dry_run
    ahead = ThreadPoolExecutor(1, thread_name_prefix="charge-plan") if parallel else None
    writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="charge-write") if parallel else None
    try:
        following = ahead.submit(prepare, batches[0]) if ahead is not None and batches else None
        in_flight: deque[tuple[int, Sequence[int], Future[tuple[float, _Tally]]]] = deque()
        for number, batch in enumerate(batches, start=1):
            prepared = following.result() if following is not None else prepare(batch)
            if ahead is not None and number < len(batches):
                following = ahead.submit(prepare, batches[number])
            if writers is None:
                finish(number, batch, *write(batch, prepared))
                continue
            in_flight.append((number, batch, writers.submit(write, batch, prepared)))
            # The first batch alone: it opens the revenue accounts that the others then find.
            while in_flight and (number == 1 or len(in_flight) >= WRITERS):
                n, b, future = in_flight.popleft()
                finish(n, b, *future.result())
        while in_flight:
            n, b, future = in_flight.popleft()
            finish(n, b, *future.result())
    finally:
        for pool in (ahead, writers):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    result = ChargeRunResult(
        run_id=run_id,
        as_of=as_of,
        dry_run=dry_run,
        status="completed",
        services_seen=tally.seen,
        services_charged=tally.charged,
        services_skipped=tally.skipped,
        charges_posted=tally.posted,
        already_posted=tally.already,
        totals=dict(tally.totals),
        errors=tuple(tally.errors),
        would_post=tuple(tally.would_post),
        lifecycle_changes=tally.lifecycle_changes,
        lifecycle_failures=tally.lifecycle_failures,
    )
    if run_id is not None:
        with session_factory() as session, session.begin():
            session.execute(
                update(ChargeRun)
                .where(ChargeRun.id == run_id)
                .values(
                    status="completed",
                    finished_at=utcnow(),
                    services_seen=tally.seen,
                    services_charged=tally.charged,
                    services_skipped=tally.skipped,
                    errors=len(tally.errors),
                    charges_posted=tally.posted,
                    totals={c: str(v) for c, v in sorted(tally.totals.items())},
                )
            )
            audit.record(
                session,
                operator,
                "charges.run",
                "charge_run",
                run_id,
                after={
                    "as_of": as_of,
                    "subscribers": subscribers,
                    "services_seen": tally.seen,
                    "services_charged": tally.charged,
                    "charges_posted": tally.posted,
                    "errors": len(tally.errors),
                    "totals": {c: str(v) for c, v in sorted(tally.totals.items())},
                },
            )
    return result


@dataclass(frozen=True)
class _Prepared:
    """A batch read and priced: each service's lines to offer the ledger, and what was set aside."""

    planned: list[tuple[_ServiceRow, list[PlannedCharge]]]
    errors: list[ServiceFailure]
    already: int


def _prepare(
    factory: sessionmaker[Session],
    batch: Sequence[int],
    as_of: date,
    catalog: Catalog,
    rules: LifecycleRules,
    tz: tzinfo,
    cache: PlanCache,
) -> _Prepared:
    """Read a batch's facts set-based in a short transaction, then price them with none open.

    Reading before the write transaction is safe: a change made now counts from tomorrow, so it
    cannot change a line due today. A line due on or before the service's mark is left out and
    counted as already posted: the run that wrote the mark posted every line due through that
    day in the same transaction, and a line once due never changes (see
    :mod:`billing.charge_plan`). So a daily run offers the ledger only what fell due since the
    day before, not the whole catch-up window again. Without a mark (a first run, marks
    deleted) every line in the window is offered and the ledger's unique keys decide.
    """
    with factory() as session, session.begin():
        rows = _load_rows(session, batch)
        histories, initial_tariffs = _histories(session, batch)
    errors = []
    already = 0
    built: list[tuple[_ServiceRow, ChargeFacts]] = []
    wanted: dict[int, list[UsageWindow]] = {}
    metered: dict[str, bool] = {}  # tariff code: has a postpaid version with usage prices

    def may_owe_usage(tariff: Tariff) -> bool:
        if tariff.code not in metered:
            metered[tariff.code] = has_postpaid_usage(tariff)
        return metered[tariff.code]

    for row in rows:
        try:
            facts = _facts(
                row,
                histories.get(row.service_id, []),
                initial_tariffs.get(row.service_id),
                catalog,
                rules,
                tz,
            )
            if any(may_owe_usage(tariff) for _, tariff in facts.tariffs):
                windows = usage_windows(facts, as_of, after=row.planned_through)
                if windows:
                    wanted[row.service_id] = windows
        except (ValueError, KeyError, LookupError) as exc:
            errors.append(ServiceFailure(row.service_id, row.account_id, _text(exc)))
            continue
        built.append((row, facts))
    usage: dict[int, list[UsageDelta]] = {}
    if wanted:
        with factory() as session, session.begin():
            usage = _load_usage(session, wanted)
    planned = []
    for row, facts in built:
        try:
            deltas = usage.get(row.service_id)
            lines = cache.plan(replace(facts, usage=tuple(deltas)) if deltas else facts, as_of)
        except (ValueError, KeyError, LookupError) as exc:
            errors.append(ServiceFailure(row.service_id, row.account_id, _text(exc)))
            continue
        through = row.planned_through
        if through is not None and lines:
            fresh = [line for line in lines if line.due_on > through]
            already += len(lines) - len(fresh)
            lines = fresh
        planned.append((row, lines))
    return _Prepared(planned, errors, already)


def _text(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:1000]


def _writer_pause(dialect: str) -> Callable[[float], None]:
    """How the run yields to other writers after each of its write transactions.

    PostgreSQL: not at all. A payment waits only for the row lock on its account, and row
    locks are granted in queue order when the batch commits.

    SQLite has one writer for the whole file, and a waiting writer (a payment) does not queue:
    its busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms between tries.
    Batches committed back to back leave the lock free for microseconds, so the waiter almost
    always tries while the next batch holds it, and starves (12.9 s seen in the bench). After
    each commit the run therefore sleeps as long as it held the lock, at least 5 ms and at most
    100 ms: a writer that began waiting during the transaction has slept at most about that long,
    so its next sleep is no longer than the pause, and its next try finds the lock free. The
    cost is at most the run's own write time again, and a payment waits about one batch.
    """
    if dialect != "sqlite":
        return lambda _held: None

    def pause(held: float) -> None:
        sleep(min(max(held, SQLITE_PAUSE_MIN_S), SQLITE_PAUSE_MAX_S))

    return pause


def _write_batch(
    factory: sessionmaker[Session],
    batch: Sequence[int],
    prepared: _Prepared,
    as_of: date,
    tz: tzinfo,
    operator: Actor,
    run_id: int | None,
    dry_run: bool,
    books: _Books,
    tally: _Tally,
) -> float:
    """Post a prepared batch in one transaction; returns how long it was open (seconds).

    Only posting (ledger, ``charges``, marks) runs in it, so it holds locks (SQLite: the whole
    file) as briefly as possible. If it fails, the batch is posted again service by service,
    each in a savepoint; a service that still fails is recorded and left unmarked.
    """
    errors_before = len(tally.errors)
    tally.errors.extend(prepared.errors)
    tally.already += prepared.already
    planned = prepared.planned
    failed = {f.service_id for f in prepared.errors}
    with factory() as session:
        session.begin()
        opened = perf_counter()
        try:
            staged = session.get_bind().dialect.name == "postgresql"
            posted = _post_services(session, planned, books, run_id, tz, operator.operator_id, staged=staged)
            upsert_marks(session, [s for s in batch if s not in failed], as_of, run_id)
            if staged:
                add_staged_balances(session)
        except Exception:
            session.rollback()
            books.ids.clear()
            session.begin()
            posted = []
            for row, lines in planned:
                try:
                    with session.begin_nested():
                        posted += _post_services(
                            session, [(row, lines)], books, run_id, tz, operator.operator_id
                        )
                except Exception as exc:
                    books.ids.clear()
                    tally.errors.append(ServiceFailure(row.service_id, row.account_id, _text(exc)))
                    failed.add(row.service_id)
            upsert_marks(session, [s for s in batch if s not in failed], as_of, run_id)
        if run_id is not None:
            new_errors = tally.errors[errors_before:]
            if new_errors:
                session.execute(
                    insert(ChargeRunError),
                    [
                        {
                            "run_id": run_id,
                            "service_id": e.service_id,
                            "account_id": e.account_id,
                            "message": e.message,
                            "at": utcnow(),
                        }
                        for e in new_errors
                    ],
                )
        _count(posted, tally, dry_run)
        if dry_run:
            session.rollback()
            books.ids.clear()
        else:
            session.commit()
        return perf_counter() - opened


def _count(
    posted: Sequence[tuple[_ServiceRow, list[tuple[PlannedCharge, bool]]]], tally: _Tally, dry_run: bool
) -> None:
    for _row, lines in posted:
        created = [line for line, new in lines if new]
        tally.already += len(lines) - len(created)
        if created:
            tally.charged += 1
            tally.posted += len(created)
            for line in created:
                tally.totals[line.currency] += line.amount
            if dry_run:
                tally.would_post.extend(created)
        else:
            tally.skipped += 1


def _evaluate(
    factory: sessionmaker[Session],
    batch: Sequence[int],
    operator: Actor,
    at: datetime,
    rules: LifecycleRules,
    tally: _Tally,
) -> float:
    """The lifecycle evaluation of some services, after their charges are committed.

    Returns how long its transaction was open (seconds): it writes, so on SQLite the run
    pauses after it as after a batch (chunks of :data:`EVALUATE_CHUNK` keep it short).
    """
    from billing.service_lifecycle import evaluate_services

    with factory() as session, session.begin():
        opened = perf_counter()
        live = _needing_evaluation(session, batch, at, rules)
        if not live:
            return perf_counter() - opened
        report = evaluate_services(session, operator, at, rules, service_ids=live)
    tally.lifecycle_changes += len(report.changes)
    tally.lifecycle_failures += len(report.failures)
    return perf_counter() - opened


def _execute_scheduled(
    factory: sessionmaker[Session],
    ids: Sequence[int],
    as_of: date,
    operator: Actor,
    rules: LifecycleRules,
    tz: tzinfo,
    tally: _Tally,
) -> None:
    """Execute the changes scheduled on or before ``as_of`` of the services about to be charged.

    As of the local midnight starting ``as_of``, so that they count from ``as_of`` and its
    charges follow them (see the module docstring). A service with a transition at or after
    that midnight is left to the evaluation after charging: its history stays in time order.
    The evaluation runs whole (``evaluate_services``) for these few services: what else it finds
    due at midnight it would have found the evening before.
    """
    from billing.service_lifecycle import evaluate_services

    midnight = _midnight(as_of, tz)
    with factory() as session:
        later = (
            select(ServiceStatusChange.id)
            .where(ServiceStatusChange.service_id == ScheduledServiceChange.service_id)
            .where(ServiceStatusChange.at >= midnight)
            .exists()
        )
        pending = set(
            session.scalars(
                select(ScheduledServiceChange.service_id)
                .where(
                    ScheduledServiceChange.state == "pending",
                    ScheduledServiceChange.effective <= as_of,
                    ~later,
                )
                .distinct()
            )
        )
    due = [service_id for service_id in ids if service_id in pending]
    for i in range(0, len(due), EVALUATE_CHUNK):
        with factory() as session, session.begin():
            report = evaluate_services(
                session, operator, midnight, rules, service_ids=due[i : i + EVALUATE_CHUNK]
            )
        tally.lifecycle_changes += len(report.changes)
        tally.lifecycle_failures += len(report.failures)


def _needing_evaluation(
    session: Session, ids: Sequence[int], at: datetime, rules: LifecycleRules
) -> list[int]:
    """The services among ``ids`` for which the lifecycle evaluation at ``at`` may find something.

    :func:`billing.service_lifecycle.evaluate_services` loads and assesses one service at a time
    (about a millisecond each): at a million services that is the whole night. Most services
    have nothing due, and that is decided here set-based. A service is left out only when it is
    ``active`` (so no automatic resume, churn or voluntary maximum applies), has no pending
    scheduled change effective on or before today, and its account's funds are not below zero
    (balance plus credit limit: then there is no debt, so no suspension for debt), where the
    cached balance is the balance at ``at`` because no posting on the account is effective
    after ``at``. Every other service (churned ones excepted) is evaluated as before.
    """
    today = at.astimezone(rules.time_zone).date()
    due = (
        select(ScheduledServiceChange.id)
        .where(
            ScheduledServiceChange.service_id == Service.id,
            ScheduledServiceChange.state == "pending",
            ScheduledServiceChange.effective <= today,
        )
        .exists()
    )
    future = (
        select(Posting.transaction_id)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(Posting.ledger_account_id == Account.ledger_account_id, LedgerTransaction.effective_at > at)
        .exists()
    )
    rows = session.execute(
        select(
            Service.id,
            Service.status,
            Account.credit_limit,
            LedgerAccount.kind,
            LedgerAccount.balance,
            due,
            future,
        )
        .join(Account, Account.id == Service.account_id)
        .join(LedgerAccount, LedgerAccount.id == Account.ledger_account_id)
        .where(_id_in(session, Service.id, ids), Service.status != "churned")
        .order_by(Service.id)
    )
    needed = []
    for service_id, status, credit_limit, kind, balance, has_due, has_future in rows:
        funded = ledger.natural_balance(kind, Decimal(balance)) + Decimal(credit_limit) >= 0
        if status != "active" or has_due or has_future or not funded:
            needed.append(service_id)
    return needed


# --------------------------------------------------------------------------- reading runs


@dataclass(frozen=True)
class ChargeRunInfo:
    """A recorded run as shown by ``billing-admin charge runs/show``."""

    id: int
    as_of: date
    status: str
    operator: str
    subscribers: str | None
    started_at: datetime
    finished_at: datetime | None
    services_seen: int
    services_charged: int
    services_skipped: int
    errors: int
    charges_posted: int
    totals: dict[str, str]
    error_rows: tuple[ServiceFailure, ...] = ()


def _info(run: ChargeRun, error_rows: tuple[ServiceFailure, ...] = ()) -> ChargeRunInfo:
    return ChargeRunInfo(
        run.id,
        run.as_of,
        run.status,
        run.operator_login,
        run.subscribers,
        run.started_at,
        run.finished_at,
        run.services_seen,
        run.services_charged,
        run.services_skipped,
        run.errors,
        run.charges_posted,
        dict(run.totals or {}),
        error_rows,
    )


def list_runs(session: Session, limit: int = 50) -> list[ChargeRunInfo]:
    """The latest runs, newest first."""
    runs = session.scalars(select(ChargeRun).order_by(ChargeRun.id.desc()).limit(limit))
    return [_info(run) for run in runs]


def show_run(session: Session, run_id: int) -> ChargeRunInfo:
    """One run with its per-service errors."""
    run = session.get(ChargeRun, run_id)
    if run is None:
        raise ChargeRunRefused(f"run_id: no charge run {run_id}")
    rows = session.execute(
        select(ChargeRunError.service_id, ChargeRunError.account_id, ChargeRunError.message)
        .where(ChargeRunError.run_id == run_id)
        .order_by(ChargeRunError.id)
    )
    return _info(run, tuple(ServiceFailure(*row) for row in rows))
