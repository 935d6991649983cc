"""Prepaid quota (billing.quota) through the accounting store, on SQLite and PostgreSQL.

Reserve at Start, commit at each interim, release at Stop; exhaustion writes one provisioning
task; a retransmitted interim charges once; sessions that are not metered prepaid pass through.
On PostgreSQL, 200 sessions race on one prepaid balance from two threads and from two
processes, and the account is never overdrawn. The ledger invariant check runs after each test.

The allowance is per billing period, and usage counts in the period it was recorded in (a
session crossing the month end starts on January's allowance). The quota unit is the tariff
version's (``quota`` in the catalog), and is part of the version's fingerprint.

The tariff catalog's metered plans come through the gate's plan lookup; most tests give the
plan directly (a function), so they do not depend on catalog imports.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from aaa.accounting import AccountingRecord, StatusType, acct_unique_id
from aaa.accounting_store import AccountingStore
from aaa.journal import Journal
from aaa.service import AaaService
from aaa.settings import AaaSettings
from billing import daemon as billingd
from billing import dictionaries, ledger, subscribers
from billing.audit import Actor
from billing.books import book_account
from billing.catalog import import_catalog
from billing.db.customers import Account
from billing.db.engine import make_engine
from billing.db.ledger import LedgerTransaction
from billing.db.lifecycle import ProvisioningTask
from billing.db.quota import QuotaPeriodUse, QuotaReservation
from billing.db.services import Service
from billing.db.sessions import RadiusSession
from billing.ledger import Leg, TransactionRequest
from billing.quota import (
    DEFAULT_QUOTA_UNIT,
    CatalogPlans,
    Counters,
    PrepaidQuotaGate,
    commit_usage,
    deltas_from_rows,
    lock_funds,
    release,
    release_closed_sessions,
    reserve,
)
from rating.allowance import Allowance, Throttle
from rating.catalog import Catalog, CatalogError, load_catalog
from rating.money import RoundingRule, from_micros
from rating.periods import Period
from rating.quota import MeteredPlan, QuotaUnit
from rating.traffic import MB, Direction
from rating.usage_plan import UsagePlan
from rating.usage_prices import UsagePrice

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NAS = "10.0.0.1"
START, INTERIM, STOP = StatusType.START, StatusType.INTERIM_UPDATE, StatusType.STOP
D = Decimal

PER_MB = UsagePlan(prices=tuple(UsagePrice(direction=d, price=D("0.01")) for d in Direction))
"""0.01 per MB each way: 10 MB cost 0.10."""
PLAN = MeteredPlan("metered", PER_MB, RoundingRule(), "EUR", QuotaUnit(octets=100 * MB), ZoneInfo("UTC"))
"""One quota unit is 100 MB: 1.00."""
THROTTLING = MeteredPlan(
    "capped",
    UsagePlan(
        prices=PER_MB.prices, allowance=Allowance(included_bytes=50 * MB, overage=Throttle("slow-64k"))
    ),
    RoundingRule(),
    "EUR",
    QuotaUnit(octets=100 * MB),
    ZoneInfo("UTC"),
)


@dataclass(frozen=True)
class World:
    account_id: int
    ledger_account_id: int
    service_id: int
    revenue_id: int


def _world(
    engine: Engine, *, funds: str, credit: str = "0", mode: str = "prepaid", login: str = "ann"
) -> World:
    actor = Actor(None, "tester", None, "test")
    with Session(engine) as s, s.begin():
        known = {v.code for v in dictionaries.list_values(s, "subscriber_category")}
        if "residential" not in known:
            dictionaries.add(s, actor, "subscriber_category", "residential", "Residential")
            dictionaries.add(s, actor, "region", "north", "North")
        info = subscribers.create(
            s,
            actor,
            kind="person",
            name="Ann",
            category="residential",
            region="north",
            currency="EUR",
            credit_limit=credit,
            billing_mode=mode,
        )
        account = s.scalar(select(Account).where(Account.number == info.accounts[0].number))
        assert account is not None
        service = Service(account_id=account.id, kind="internet", status="active", login=login)
        s.add(service)
        s.flush()
        bank = book_account(s, "clearing", "EUR", "bank")
        revenue = book_account(s, "revenue", "EUR", "internet")
        if D(funds):
            ledger.post(
                s,
                TransactionRequest(
                    f"pay:{login}",
                    "payment",
                    (Leg(bank, D(funds)), Leg(account.ledger_account_id, -D(funds))),
                    T0 - timedelta(days=1),
                ),
            )
        return World(account.id, account.ledger_account_id, service.id, revenue)


def _rec(
    status: StatusType, session: str, service_id: int, *, at: int, down: int = 0, up: int = 0
) -> AccountingRecord:
    """A record ``at`` seconds after T0 with cumulative ``down``/``up`` octets."""
    when = T0 + timedelta(seconds=at)
    return AccountingRecord(
        status=status,
        nas_address=NAS,
        acct_session_id=session,
        acct_unique_id=acct_unique_id(NAS, session, None),
        event_time=when,
        received_at=when,
        username="ann",
        session_time_s=at,
        input_octets=up,
        output_octets=down,
        service_id=service_id,
    )


def _gate(plan: MeteredPlan | None = PLAN) -> PrepaidQuotaGate:
    return PrepaidQuotaGate(lambda _session, _tariff, _at: plan)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal") as opened:
        yield opened


def _reservation(engine: Engine, session: str) -> QuotaReservation:
    with Session(engine) as s:
        row = s.scalar(
            select(QuotaReservation).where(
                QuotaReservation.acct_unique_id == acct_unique_id(NAS, session, None)
            )
        )
        assert row is not None
        s.expunge(row)
        return row


def _funds(engine: Engine, world: World) -> Decimal:
    """Natural balance + credit limit - open holds, in one statement (one snapshot)."""
    with engine.connect() as conn:
        return _checked_available(conn, world.account_id)


def _usage_count(engine: Engine) -> int:
    with Session(engine) as s:
        return (
            s.scalar(
                select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "usage")
            )
            or 0
        )


def _natural(engine: Engine, world: World) -> Decimal:
    with Session(engine) as s:
        return -ledger.raw_balance(s, world.ledger_account_id)


def _tasks(engine: Engine) -> list[ProvisioningTask]:
    with Session(engine) as s:
        rows = list(s.scalars(select(ProvisioningTask).order_by(ProvisioningTask.id)))
        for row in rows:
            s.expunge(row)
        return rows


# --------------------------------------------------------------------------- through the store


def test_start_reserves_interim_commits_stop_releases(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0)])
    row = _reservation(engine, "s1")
    assert (row.state, row.reserved, row.committed) == ("open", D("1.00"), 0)
    assert _funds(engine, world) == D("9.00")

    store.store([_rec(INTERIM, "s1", world.service_id, at=300, down=30 * MB, up=10 * MB)])
    row = _reservation(engine, "s1")
    assert (row.committed, row.reserved - row.committed) == (D("0.40"), D("1.00"))  # topped up to a unit
    assert _natural(engine, world) == D("9.60")
    assert _funds(engine, world) == D("8.60")

    store.store([_rec(STOP, "s1", world.service_id, at=600, down=50 * MB, up=10 * MB)])
    row = _reservation(engine, "s1")
    assert (row.state, row.committed, row.closed_at) == ("closed", D("0.60"), T0 + timedelta(seconds=600))
    assert _natural(engine, world) == D("9.40")
    assert _funds(engine, world) == D("9.40")  # the hold is free again
    assert _usage_count(engine) == 2
    assert _tasks(engine) == []


def test_a_retransmitted_interim_charges_once(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    interim = _rec(INTERIM, "s1", world.service_id, at=300, down=20 * MB)
    store.store([_rec(START, "s1", world.service_id, at=0), interim])
    store.store([interim])
    store.store([interim, interim])
    assert _usage_count(engine) == 1
    assert _natural(engine, world) == D("9.80")
    assert _reservation(engine, "s1").committed == D("0.20")


def test_exhaustion_writes_exactly_one_disconnect_task(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="1.50", credit="0.50")  # 2.00 to spend
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0)])
    for n in range(1, 6):
        store.store([_rec(INTERIM, "s1", world.service_id, at=300 * n, down=n * 80 * MB)])
    row = _reservation(engine, "s1")
    assert row.committed == D("2.00")  # everything there was, never more
    assert row.unbilled == D("2.00")  # 400 MB cost 4.00: the rest is still due
    assert (row.action, row.exhausted_at) == ("disconnect", T0 + timedelta(seconds=900))
    assert _funds(engine, world) == 0
    tasks = _tasks(engine)
    assert [(t.network, t.session_key, t.speed_profile, t.service_id) for t in tasks] == [
        ("deny", row.acct_unique_id, None, world.service_id)
    ]
    assert tasks[0].idempotency_key == f"quota:{row.acct_unique_id}:disconnect"
    store.store([_rec(STOP, "s1", world.service_id, at=2000, down=500 * MB)])
    assert len(_tasks(engine)) == 1
    assert _reservation(engine, "s1").state == "closed"


def test_a_stop_charges_what_was_left_due_once_funds_came(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="0.50")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0)])
    store.store([_rec(INTERIM, "s1", world.service_id, at=300, down=80 * MB)])
    assert (_reservation(engine, "s1").committed, _reservation(engine, "s1").unbilled) == (
        D("0.50"),
        D("0.30"),
    )
    with Session(engine) as s, s.begin():  # a payment arrives
        bank = book_account(s, "clearing", "EUR", "bank")
        ledger.post(
            s,
            TransactionRequest(
                "pay:2", "payment", (Leg(bank, D(5)), Leg(world.ledger_account_id, D(-5))), T0
            ),
        )
    store.store([_rec(STOP, "s1", world.service_id, at=300, down=80 * MB)])  # same counters as the interim
    row = _reservation(engine, "s1")
    assert (row.state, row.committed, row.unbilled) == ("closed", D("0.80"), 0)
    assert _natural(engine, world) == D("4.70")  # 0.50 + 5 paid - 0.80 used
    assert _usage_count(engine) == 2


def test_a_throttling_tariff_asks_for_a_coa_to_its_profile(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="0.50")
    store = AccountingStore(engine, journal, quota_gate=_gate(THROTTLING))
    store.store([_rec(START, "s1", world.service_id, at=0)])
    store.store([_rec(INTERIM, "s1", world.service_id, at=300, down=40 * MB)])  # inside the allowance
    assert _tasks(engine) == []
    store.store([_rec(INTERIM, "s1", world.service_id, at=600, down=80 * MB)])  # 30 MB past it
    (task,) = _tasks(engine)
    assert (task.network, task.speed_profile, task.tariff_code) == ("allow", "slow-64k", "capped")
    row = _reservation(engine, "s1")
    assert (row.action, row.committed, row.unbilled) == (
        "throttle",
        D("0.30"),
        0,
    )  # funds left, allowance not
    store.store([_rec(INTERIM, "s1", world.service_id, at=900, down=200 * MB)])  # now funds run out too
    assert len(_tasks(engine)) == 2  # a throttle, then a disconnect: one of each at most
    assert _reservation(engine, "s1").committed == D("0.50")


def test_a_start_without_funds_is_exhausted_at_once(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="0")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0)])
    row = _reservation(engine, "s1")
    assert (row.reserved, row.action) == (0, "disconnect")
    assert len(_tasks(engine)) == 1


def test_an_interim_without_start_opens_the_reservation(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(INTERIM, "s1", world.service_id, at=300, down=10 * MB)])
    row = _reservation(engine, "s1")
    assert (row.committed, row.reserved) == (D("0.10"), D("1.10"))


def test_sessions_not_metered_prepaid_pass_through(engine: Engine, journal: Journal) -> None:
    prepaid = _world(engine, funds="10", login="ann")
    postpaid = _world(engine, funds="10", mode="postpaid", login="bob")
    store = AccountingStore(engine, journal, quota_gate=_gate(None))  # no metered tariff
    store.store([_rec(INTERIM, "a", prepaid.service_id, at=300, down=10 * MB)])
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(INTERIM, "b", postpaid.service_id, at=300, down=10 * MB)])
    unknown = replace(_rec(INTERIM, "c", 0, at=300, down=10 * MB), service_id=None, username="nobody")
    store.store([unknown])  # no service at all
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(QuotaReservation)) == 0
    assert _usage_count(engine) == 0


def test_a_failing_plan_lookup_skips_quota_but_keeps_accounting(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="10")

    def broken(_session: Session, _tariff: str | None, _at: datetime) -> MeteredPlan:
        raise ValueError("corrupt tariff")

    store = AccountingStore(engine, journal, quota_gate=PrepaidQuotaGate(broken))
    store.store([_rec(INTERIM, "s1", world.service_id, at=300, down=10 * MB)])
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(QuotaReservation)) == 0
    # the next interim, with the tariff fixed, charges all usage so far (cost is cumulative)
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(INTERIM, "s1", world.service_id, at=600, down=30 * MB)])
    assert _reservation(engine, "s1").committed == D("0.30")


def test_sessions_closed_without_stop_release_their_holds(engine: Engine, journal: Journal) -> None:
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0), _rec(START, "s2", world.service_id, at=0)])
    store.store([_rec(INTERIM, "s1", world.service_id, at=60, down=10 * MB)])
    store.reap(T0 + timedelta(hours=1), 3, default_interval_s=60)  # closes both, unseen by the gate
    assert _funds(engine, world) == D("7.90")
    with Session(engine) as s, s.begin():
        assert release_closed_sessions(s, T0 + timedelta(hours=1)) == 2
    assert _funds(engine, world) == D("9.90")
    assert _reservation(engine, "s1").state == "closed"


def test_the_daemons_reaper_pass_releases_the_holds_of_stale_sessions(
    engine: Engine, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """billingd wires release_holds_of_closed_sessions as AaaService's after_reap hook."""
    world = _world(engine, funds="2")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0)])
    store.store([_rec(INTERIM, "s1", world.service_id, at=60, down=10 * MB)])
    store.store([_rec(START, "s2", world.service_id, at=120)])
    assert _funds(engine, world) == D("0")  # s1 holds 1.00, s2 the last 0.90
    service = AaaService(
        Clock(), AaaSettings(interim_interval_s=60), engine, after_reap=billingd._release_holds(engine)
    )
    service.store = store
    monkeypatch.setattr(service, "_in_pool", lambda f, *a, **k: maybeDeferred(f, *a, **k))
    failures: list[object] = []
    service._reap().addErrback(failures.append)  # the wall clock is days past T0: both are stale
    assert failures == []
    assert [_reservation(engine, s).state for s in ("s1", "s2")] == ["closed", "closed"]
    assert _funds(engine, world) == D("1.90")  # free again: only the 0.10 used is gone
    store.store([_rec(START, "s3", world.service_id, at=3600)])
    assert _reservation(engine, "s3").reserved == D("1.00")  # a new session can use them


# --------------------------------------------------------------------------- allowance per billing period

DAY = 86_400


def test_the_allowance_is_shared_by_the_sessions_of_a_billing_period(
    engine: Engine, journal: Journal
) -> None:
    """50 MB a month: a second session of December only gets what the first left; January is new."""
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate(THROTTLING))
    store.store([_rec(START, "s1", world.service_id, at=0)])
    store.store([_rec(STOP, "s1", world.service_id, at=600, down=40 * MB)])  # inside: free
    assert (_reservation(engine, "s1").committed, _reservation(engine, "s1").allowance_used) == (0, 40 * MB)
    assert _tasks(engine) == []

    store.store([_rec(START, "s2", world.service_id, at=DAY)])
    store.store([_rec(INTERIM, "s2", world.service_id, at=DAY + 300, down=30 * MB)])  # 10 MB left: 20 past
    row = _reservation(engine, "s2")
    assert (row.committed, row.action, row.allowance_used) == (D("0.20"), "throttle", 30 * MB)  # counted
    (task,) = _tasks(engine)
    assert (task.session_key, task.speed_profile) == (row.acct_unique_id, "slow-64k")
    store.store([_rec(STOP, "s2", world.service_id, at=DAY + 600, down=35 * MB)])
    assert _reservation(engine, "s2").committed == D("0.25")

    january = 31 * DAY  # 2027-01-01 10:00 UTC: a new period, the whole allowance again
    store.store([_rec(START, "s3", world.service_id, at=january)])
    store.store([_rec(STOP, "s3", world.service_id, at=january + 600, down=45 * MB)])
    assert (_reservation(engine, "s3").committed, _reservation(engine, "s3").action) == (0, None)
    assert _natural(engine, world) == D("9.75")


def test_the_allowance_period_follows_the_tariff_period_and_the_services_anchor(
    engine: Engine, journal: Journal
) -> None:
    world = _world(engine, funds="10")
    with Session(engine) as s, s.begin():
        service = s.get(Service, world.service_id)
        assert service is not None
        service.billing_anchor_day = 2  # monthly periods start on the 2nd: Dec 1 is in November's
    store = AccountingStore(engine, journal, quota_gate=_gate(THROTTLING))
    store.store([_rec(START, "s1", world.service_id, at=0)])  # Dec 1
    store.store([_rec(STOP, "s1", world.service_id, at=600, down=50 * MB)])
    store.store([_rec(START, "s2", world.service_id, at=DAY)])  # Dec 2: a new period
    store.store([_rec(STOP, "s2", world.service_id, at=DAY + 600, down=50 * MB)])
    assert _reservation(engine, "s2").committed == 0

    daily = PrepaidQuotaGate(lambda _s, _t, _a: THROTTLING, periods=lambda _s, _t, _a: Period.DAILY)
    store = AccountingStore(engine, journal, quota_gate=daily)
    store.store([_rec(START, "s3", world.service_id, at=2 * DAY)])  # Dec 3, daily periods
    store.store([_rec(STOP, "s3", world.service_id, at=2 * DAY + 600, down=50 * MB)])
    store.store([_rec(START, "s4", world.service_id, at=2 * DAY + 3600)])  # the same day: nothing left
    store.store([_rec(STOP, "s4", world.service_id, at=2 * DAY + 4200, down=10 * MB)])
    assert (_reservation(engine, "s3").committed, _reservation(engine, "s4").committed) == (0, D("0.10"))


def test_a_session_crossing_the_month_end_starts_on_the_new_months_allowance(
    engine: Engine, journal: Journal
) -> None:
    """50 MB a month: usage counts in the month its interim was recorded in, not the session's first."""
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate(THROTTLING))
    new_year = 31 * DAY - 10 * 3600  # 2027-01-01 00:00 UTC
    store.store([_rec(START, "s1", world.service_id, at=new_year - 2 * 3600)])  # Dec 31, 22:00
    store.store([_rec(INTERIM, "s1", world.service_id, at=new_year - 3600, down=40 * MB)])  # December's
    store.store([_rec(INTERIM, "s1", world.service_id, at=new_year, down=80 * MB)])  # at midnight: January's
    row = _reservation(engine, "s1")
    assert (row.committed, row.action, row.allowance_used) == (0, None, 80 * MB)  # not 30 MB past December's
    assert _tasks(engine) == []

    store.store([_rec(INTERIM, "s1", world.service_id, at=new_year + 3600, down=110 * MB)])  # Jan: 70 MB
    row = _reservation(engine, "s1")
    assert (row.committed, row.action) == (D("0.20"), "throttle")  # 20 MB past January's allowance
    (task,) = _tasks(engine)
    assert (task.session_key, task.speed_profile) == (row.acct_unique_id, "slow-64k")
    with Session(engine) as s:
        used = s.execute(
            select(QuotaPeriodUse.period_start, QuotaPeriodUse.allowance_used)
            .where(QuotaPeriodUse.reservation_id == row.id)
            .order_by(QuotaPeriodUse.period_start)
        )
        assert list(used) == [(date(2026, 12, 1), 40 * MB), (date(2027, 1, 1), 70 * MB)]
    store.store([_rec(STOP, "s1", world.service_id, at=new_year + 2 * 3600, down=110 * MB)])

    store.store([_rec(START, "s2", world.service_id, at=new_year + 3 * 3600)])  # January's is used up
    store.store([_rec(STOP, "s2", world.service_id, at=new_year + 4 * 3600, down=10 * MB)])
    assert _reservation(engine, "s2").committed == D("0.10")
    assert _natural(engine, world) == D("9.70")


def test_a_sessions_december_usage_still_counts_for_a_later_december_session(
    engine: Engine, journal: Journal
) -> None:
    """A session spanning the month end leaves its December part in December's allowance."""
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate(THROTTLING))
    new_year = 31 * DAY - 10 * 3600
    store.store([_rec(START, "s1", world.service_id, at=new_year - 3 * 3600)])
    store.store([_rec(INTERIM, "s1", world.service_id, at=new_year - 2 * 3600, down=40 * MB)])  # December
    store.store([_rec(START, "s2", world.service_id, at=new_year - 2 * 3600 + 60)])  # later, December
    store.store([_rec(STOP, "s1", world.service_id, at=new_year + 3600, down=60 * MB)])  # 20 MB in January
    store.store([_rec(STOP, "s2", world.service_id, at=new_year - 3600, down=30 * MB)])  # 10 MB left: 20 past
    assert (_reservation(engine, "s1").committed, _reservation(engine, "s2").committed) == (0, D("0.20"))


def test_catalog_plans_give_the_tariffs_recurring_period() -> None:
    root = Path(__file__).resolve().parents[1]
    catalog = load_catalog((root / "conf/tariffs/example.toml").read_text(), source="example.toml")
    plans = CatalogPlans(lambda _s: catalog, unit=DEFAULT_QUOTA_UNIT, tz=ZoneInfo("Europe/Berlin"))
    expected = {
        t.code: t.version_at(T0.date()).recurring
        for t in catalog.tariffs
        if t.versions[0].effective_from <= T0.date()
    }
    for code, recurring in expected.items():
        assert plans.period(None, code, T0) == (recurring.period if recurring else None)  # type: ignore[arg-type]
    assert plans.period(None, "NO-SUCH", T0) is None  # type: ignore[arg-type]


PAYG_CATALOG = """
[[tariffs]]
code = "PAYG-20"
name = "Pay as you go, 20 MB at a time"
kind = "internet"

[[tariffs.versions]]
version = 1
effective_from = 2026-01-01
currency = "EUR"
billing_mode = "prepaid"
quota = { volume = "20 MB" }

[[tariffs.versions.usage.prices]]
direction = "in"
price = "0.01"
unit = "MB"

[[tariffs.versions.usage.prices]]
direction = "out"
price = "0.01"
unit = "MB"
"""


PAYG_CATALOGS = PAYG_CATALOG + PAYG_CATALOG.replace('code = "PAYG-20"', 'code = "PAYG"').replace(
    'quota = { volume = "20 MB" }\n', ""
)
"""PAYG-20 (a 20 MB quota unit) and PAYG, the same prices without a quota of its own."""


def _payg_catalog() -> Catalog:
    return load_catalog(PAYG_CATALOGS, source="payg.toml")


def test_catalog_plans_take_each_tariff_versions_quota_unit_else_the_default() -> None:
    plans = CatalogPlans(lambda _s: _payg_catalog(), tz=ZoneInfo("UTC"))
    own, default = plans(None, "PAYG-20", T0), plans(None, "PAYG", T0)  # type: ignore[arg-type]
    assert own is not None and own.unit == QuotaUnit(octets=20 * MB)
    assert default is not None and default.unit == DEFAULT_QUOTA_UNIT
    assert QuotaUnit(octets=100 * MB, seconds=600) == DEFAULT_QUOTA_UNIT


def test_a_session_reserves_one_quota_unit_of_its_tariff(engine: Engine, journal: Journal) -> None:
    own, default = _world(engine, funds="10", login="ann"), _world(engine, funds="10", login="bob")
    with Session(engine) as s, s.begin():
        import_catalog(s, PAYG_CATALOGS, "payg.toml", Actor(None, "root"), today=T0.date())
        for world, tariff in ((own, "PAYG-20"), (default, "PAYG")):
            service = s.get(Service, world.service_id)
            assert service is not None
            service.tariff_code = tariff
    gate = PrepaidQuotaGate(CatalogPlans(lambda _s: _payg_catalog(), tz=ZoneInfo("UTC")))
    store = AccountingStore(engine, journal, quota_gate=gate)
    store.store([_rec(START, "a", own.service_id, at=0), _rec(START, "b", default.service_id, at=0)])
    assert (_reservation(engine, "a").reserved, _reservation(engine, "b").reserved) == (D("0.20"), D("1.00"))
    store.store([_rec(INTERIM, "a", own.service_id, at=300, down=15 * MB)])
    row = _reservation(engine, "a")
    assert (row.committed, row.reserved - row.committed) == (D("0.15"), D("0.20"))  # topped up to a unit


def test_a_used_tariff_versions_quota_unit_cannot_change(engine: Engine) -> None:
    """The quota unit is in the version's fingerprint: an import changing it is refused once used."""
    world = _world(engine, funds="10")
    root = Actor(None, "root")
    with Session(engine) as s, s.begin():
        import_catalog(s, PAYG_CATALOG, "payg.toml", root, today=T0.date())
        service = s.get(Service, world.service_id)
        assert service is not None
        service.tariff_code = "PAYG-20"
    with pytest.raises(CatalogError) as refused, Session(engine) as s, s.begin():
        import_catalog(s, PAYG_CATALOG.replace('"20 MB"', '"10 MB"'), "payg.toml", root, today=T0.date())
    assert 'version 1 of "PAYG-20" is in use' in str(refused.value)


# --------------------------------------------------------------------------- late usage


def test_a_late_interim_after_the_stop_is_charged_once_with_its_own_key(
    engine: Engine, journal: Journal
) -> None:
    world = _world(engine, funds="10")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0)])
    store.store([_rec(INTERIM, "s1", world.service_id, at=300, down=30 * MB)])
    store.store([_rec(STOP, "s1", world.service_id, at=600, down=50 * MB)])
    assert (_reservation(engine, "s1").committed, _natural(engine, world)) == (D("0.50"), D("9.50"))

    store.store([_rec(INTERIM, "s1", world.service_id, at=500, down=40 * MB)])  # reordered: older
    assert (_usage_count(engine), _natural(engine, world)) == (2, D("9.50"))

    late = _rec(INTERIM, "s1", world.service_id, at=900, down=70 * MB)  # counted after the Stop
    store.store([late])
    store.store([late])  # retransmitted
    store.store([late, late])
    row = _reservation(engine, "s1")
    assert (row.state, row.committed, row.output_octets) == ("closed", D("0.70"), 70 * MB)
    assert _natural(engine, world) == D("9.30")  # only the 20 MB the Stop did not have
    assert _funds(engine, world) == D("9.30")  # no hold came back
    with Session(engine) as s:
        keys = list(
            s.scalars(
                select(LedgerTransaction.idempotency_key)
                .where(LedgerTransaction.kind == "usage")
                .order_by(LedgerTransaction.id)
            )
        )
    uid = row.acct_unique_id
    assert keys == [
        f"usage:{uid}:0:{30 * MB}:300",
        f"usage:{uid}:0:{50 * MB}:600:stop",
        f"usage:{uid}:0:{70 * MB}:900:late",
    ]
    assert _tasks(engine) == []


def test_late_usage_of_a_reaped_session_is_charged_from_free_funds_only(
    engine: Engine, journal: Journal
) -> None:
    """The reaper closed it, its hold was released, but the NAS still counts: charge what is free."""
    world = _world(engine, funds="0.50")
    store = AccountingStore(engine, journal, quota_gate=_gate())
    store.store([_rec(START, "s1", world.service_id, at=0)])
    store.store([_rec(INTERIM, "s1", world.service_id, at=60, down=10 * MB)])
    store.reap(T0 + timedelta(hours=1), 3, default_interval_s=60)
    with Session(engine) as s, s.begin():
        assert release_closed_sessions(s, T0 + timedelta(hours=1)) == 1
    assert _funds(engine, world) == D("0.40")
    store.store([_rec(INTERIM, "s1", world.service_id, at=7200, down=80 * MB)])  # 70 MB more: 0.70
    row = _reservation(engine, "s1")
    assert (row.state, row.committed, row.unbilled, row.action) == (
        "closed",
        D("0.50"),
        D("0.30"),
        "disconnect",
    )
    assert _funds(engine, world) == 0  # never overdrawn
    (task,) = _tasks(engine)  # it may still be up on the NAS: end it
    assert (task.network, task.session_key) == ("deny", row.acct_unique_id)


# --------------------------------------------------------------------------- the functions directly


def test_reserve_commit_release_directly(engine: Engine) -> None:
    world = _world(engine, funds="3")
    uid = "direct-1"
    rows = [(T0 + timedelta(minutes=5), 0, 50 * MB, 300), (T0 + timedelta(minutes=10), 0, 150 * MB, 300)]
    with Session(engine) as s, s.begin():
        funds = lock_funds(s, [world.account_id])[world.account_id]
        opened = reserve(s, funds, acct_unique_id=uid, service_id=world.service_id, plan=PLAN, at=T0)
        assert (opened.reserved, funds.available) == (D("1.00"), D("2.00"))
        again = reserve(s, funds, acct_unique_id=uid, service_id=world.service_id, plan=PLAN, at=T0)
        assert again.reserved == D("1.00") and funds.available == D("2.00")
        one = commit_usage(
            s,
            funds,
            acct_unique_id=uid,
            counters=Counters(0, 50 * MB, 300),
            deltas=deltas_from_rows(T0, rows[:1]),
            plan=PLAN,
            revenue_account_id=world.revenue_id,
            at=rows[0][0],
        )
        assert (one.charge, one.committed, one.reserved - one.committed) == (D("0.50"), D("0.50"), D("1.00"))
        two = release(
            s,
            funds,
            acct_unique_id=uid,
            counters=Counters(0, 200 * MB, 600),
            deltas=deltas_from_rows(T0, rows),
            plan=PLAN,
            revenue_account_id=world.revenue_id,
            at=rows[1][0],
        )
        assert (two.charge, two.committed, two.exhausted) == (D("1.50"), D("2.00"), False)
        assert funds.available == D("1.00")
    assert _funds(engine, world) == D("1.00")
    assert _natural(engine, world) == D("1.00")


# --------------------------------------------------------------------------- races on PostgreSQL

RACE_SESSIONS = 200
RACE_ROUNDS = 4
RACE_FUNDS, RACE_CREDIT = "20.00", "5.00"  # 25.00 to spend; the sessions would use 80.00


def _race(url: str, worker: int, journal_dir: str, account_id: int, service_id: int) -> list[str]:
    """One racer: its half of the sessions, Start, interims and Stop, in shuffled groups.

    After every group it checks, in one statement's snapshot, that the account is not overdrawn.
    Returns the problems it saw.
    """
    engine = make_engine(url, pool_size=2)
    problems: list[str] = []
    try:
        with Journal(Path(journal_dir)) as journal:
            store = AccountingStore(engine, journal, quota_gate=_gate())
            rng = random.Random(worker)
            mine = [f"race-{n}" for n in range(worker, RACE_SESSIONS, 2)]
            steps = [[_rec(START, s, service_id, at=0) for s in mine]]
            for r in range(1, RACE_ROUNDS + 1):
                steps.append([_rec(INTERIM, s, service_id, at=60 * r, down=r * 10 * MB) for s in mine])
            steps.append([_rec(STOP, s, service_id, at=60 * (RACE_ROUNDS + 1), down=40 * MB) for s in mine])
            for records in steps:
                rng.shuffle(records)
                for i in range(0, len(records), 16):
                    store.store(records[i : i + 16])
                    with engine.connect() as conn:
                        available = _checked_available(conn, account_id)
                    if available < 0:
                        problems.append(f"worker {worker}: available {available}")
            if journal.depth():
                problems.append(f"worker {worker}: {journal.depth()} records journaled")
    except Exception as exc:  # reported to the test, which fails on any problem
        problems.append(f"worker {worker}: {exc!r}")
    finally:
        engine.dispose()
    return problems


def _checked_available(conn: object, account_id: int) -> Decimal:
    """balance + credit - open holds, as one SQL statement (one snapshot under READ COMMITTED)."""
    raw = D(
        conn.execute(  # type: ignore[attr-defined]
            text(
                "SELECT -l.balance + a.credit_limit - COALESCE((SELECT sum(q.reserved - q.committed)"
                " FROM quota_reservations q WHERE q.account_id = a.id AND q.state = 'open'), 0)"
                " FROM accounts a JOIN ledger_accounts l ON l.id = a.ledger_account_id WHERE a.id = :a"
            ),
            {"a": account_id},
        ).scalar_one()
    )
    return from_micros(int(raw)) if conn.dialect.name == "sqlite" else raw  # type: ignore[attr-defined]


def _race_child(
    url: str, worker: int, journal_dir: str, account_id: int, service_id: int, out: object
) -> None:
    out.put(_race(url, worker, journal_dir, account_id, service_id))  # type: ignore[attr-defined]


def _check_race_result(engine: Engine, world: World) -> None:
    with Session(engine) as s:
        rows = list(s.scalars(select(QuotaReservation)))
        committed = sum((r.committed for r in rows), D(0))
        charged = -s.scalar(
            text(
                "SELECT coalesce(sum(p.amount), 0) FROM postings p JOIN ledger_transactions t"
                " ON t.id = p.transaction_id WHERE t.kind = 'usage' AND p.ledger_account_id = :r"
            ),
            {"r": world.revenue_id},
        )
        natural = -ledger.raw_balance(s, world.ledger_account_id)
        tasks = s.scalar(select(func.count()).select_from(ProvisioningTask))
    assert len(rows) == RACE_SESSIONS
    assert all(r.state == "closed" for r in rows)
    assert charged == committed  # the ledger holds exactly the committed usage
    assert natural == D(RACE_FUNDS) - committed
    assert natural + D(RACE_CREDIT) >= 0  # never overdrawn
    assert committed == D(RACE_FUNDS) + D(RACE_CREDIT)  # demand exceeded funds: all of it was spent
    assert tasks == sum(1 for r in rows if r.exhausted_at is not None) > 0  # one task per exhausted session


@pytest.mark.postgresql_only
def test_two_threads_racing_on_one_balance_never_overdraw(
    pg_engine: Engine, pg_url: str, tmp_path: Path
) -> None:
    world = _world(pg_engine, funds=RACE_FUNDS, credit=RACE_CREDIT)
    results: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def run(worker: int) -> None:
        barrier.wait()
        results[worker] = _race(
            pg_url, worker, str(tmp_path / f"j{worker}"), world.account_id, world.service_id
        )

    threads = [threading.Thread(target=run, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[], []]
    _check_race_result(pg_engine, world)


@pytest.mark.postgresql_only
def test_two_processes_racing_on_one_balance_never_overdraw(
    pg_engine: Engine, pg_url: str, tmp_path: Path
) -> None:
    world = _world(pg_engine, funds=RACE_FUNDS, credit=RACE_CREDIT)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    processes = [
        context.Process(
            target=_race_child,
            args=(pg_url, w, str(tmp_path / f"j{w}"), world.account_id, world.service_id, out),
        )
        for w in range(2)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert results == [[], []]
    assert [p.exitcode for p in processes] == [0, 0]
    _check_race_result(pg_engine, world)


# --------------------------------------------------------------------------- plans from the catalog


def test_catalog_plans_find_metered_prepaid_tariffs_only() -> None:
    root = Path(__file__).resolve().parents[1]
    catalog = load_catalog((root / "conf/tariffs/example.toml").read_text(), source="example.toml")
    loads: list[int] = []
    clock = [0.0]

    def load(_session: Session) -> Catalog:
        loads.append(1)
        return catalog

    plans = CatalogPlans(load, unit=DEFAULT_QUOTA_UNIT, tz=ZoneInfo("Europe/Berlin"), clock=lambda: clock[0])
    session = None  # the loader ignores it
    metered = plans(session, "METERED", T0)  # type: ignore[arg-type]
    assert metered is not None and metered.tariff_code == "METERED" and metered.currency == "EUR"
    assert plans(session, "BIZ-POST", T0) is None  # type: ignore[arg-type]  # postpaid usage
    assert plans(session, "HOME-100", T0) is None  # type: ignore[arg-type]  # flat-rate prepaid
    assert plans(session, "NO-SUCH", T0) is None  # type: ignore[arg-type]
    assert plans(session, None, T0) is None  # type: ignore[arg-type]
    assert len(loads) == 1
    clock[0] = 61.0
    assert plans(session, "METERED", T0) == metered  # type: ignore[arg-type]
    assert len(loads) == 2  # reloaded after refresh_s


def test_a_catalog_without_metered_tariffs_makes_the_gate_a_no_op(engine: Engine, journal: Journal) -> None:
    """Flat-rate operators pay one attribute read per group: no savepoint, no plan lookups."""
    world = _world(engine, funds="10")
    flat = Catalog()  # no tariff at all is the simplest catalog with nothing metered
    looked_up: list[str | None] = []

    class Plans(CatalogPlans):
        def __call__(self, session: Session, tariff_code: str | None, as_of: datetime) -> MeteredPlan | None:
            looked_up.append(tariff_code)
            return super().__call__(session, tariff_code, as_of)

    plans = Plans(lambda _s: flat, unit=DEFAULT_QUOTA_UNIT, tz=ZoneInfo("Europe/Berlin"))
    store = AccountingStore(engine, journal, quota_gate=PrepaidQuotaGate(plans))
    store.store([_rec(START, "s1", world.service_id, at=0), _rec(INTERIM, "s2", world.service_id, at=300)])
    assert looked_up == []
    assert _usage_count(engine) == 0
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(QuotaReservation)) == 0


def test_a_catalog_that_fails_to_load_skips_quota_and_keeps_accounting(
    engine: Engine, journal: Journal
) -> None:
    world = _world(engine, funds="10")

    def broken(_session: Session) -> Catalog:
        raise ValueError("stored catalog corrupt")

    plans = CatalogPlans(broken, unit=DEFAULT_QUOTA_UNIT, tz=ZoneInfo("Europe/Berlin"))
    store = AccountingStore(engine, journal, quota_gate=PrepaidQuotaGate(plans))
    store.store([_rec(INTERIM, "s1", world.service_id, at=300, down=10 * MB)])
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RadiusSession)) == 1
        assert s.scalar(select(func.count()).select_from(QuotaReservation)) == 0
