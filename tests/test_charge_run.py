"""Charge runs on both databases: a test clock over the year, idempotency, crashes, errors, dry runs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, service_lifecycle, subscribers
from billing.audit import Actor
from billing.catalog import assign_tariff
from billing.charge_run import ChargeRunResult, run_charges, show_run
from billing.db.charges import Charge, ChargeMark, ChargeRun
from billing.db.ledger import LedgerTransaction
from billing.db.lifecycle import ServiceStatusChange
from billing.db.services import Service
from billing.db.sessions import RadiusSession, SessionUsage
from tests.charge_world import charging_operator

RULES = service_lifecycle.rules_for(UTC)
START = date(2027, 1, 1)


class World:
    """An operator, the catalog of tests/golden/charges, and services added one account each."""

    def __init__(self, sessions: sessionmaker[Session], actor: Actor) -> None:
        self.sessions = sessions
        self.actor = actor

    def service(
        self,
        tariff: str,
        activated_on: date,
        *,
        promotion: str | None = None,
        anchor: int = 1,
        currency: str = "EUR",
        funds: str = "10000",
    ) -> int:
        with self.sessions.begin() as s:
            info = subscribers.create(
                s,
                self.actor,
                kind="person",
                name="Ann",
                category="residential",
                region="north",
                currency=currency,
            )
            number = info.accounts[0].number
            service = Service(account_id=accounts.find(s, number).id, kind="internet", status="active")
            s.add(service)
            s.flush()
            if currency == "EUR":
                assign_tariff(
                    s,
                    self.actor,
                    service.id,
                    tariff,
                    activated_on,
                    promotion_code=promotion,
                    billing_anchor_day=anchor,
                )
                accounts.adjust(s, self.actor, number, funds, "goodwill", key=f"fund{service.id}",
                                effective_at=datetime(2026, 12, 1, tzinfo=UTC))  # fmt: skip
            else:
                service.tariff_code, service.activated_on = tariff, activated_on
            return service.id

    def run(self, day: date, **options: object) -> ChargeRunResult:
        evaluate_at = datetime.combine(day, clock_time(1), tzinfo=UTC)
        return run_charges(self.sessions, day, self.actor, evaluate_at=evaluate_at, rules=RULES, **options)  # type: ignore[arg-type]

    def charged(self, service_id: int) -> Decimal:
        with self.sessions() as s:
            total = s.scalar(select(func.sum(Charge.amount)).where(Charge.service_id == service_id))
            return Decimal(total or 0)

    def charge_keys(self) -> dict[str, Decimal]:
        with self.sessions() as s:
            return dict(s.execute(select(Charge.idempotency_key, Charge.amount)).all())


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return World(sessions, charging_operator(sessions))


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


def test_a_re_run_posts_nothing_new_even_without_the_marks(world: World) -> None:
    for _ in range(3):
        world.service("M-PRE", START)
    first = world.run(START)
    assert (first.services_charged, first.charges_posted, first.totals) == (3, 6, {"EUR": Decimal("243.00")})
    again = world.run(START)
    assert (again.charges_posted, again.services_skipped, again.services_seen) == (0, 3, 3)
    with world.sessions.begin() as s:
        s.execute(delete(ChargeMark))
    third = world.run(START)
    assert (third.charges_posted, third.already_posted, third.services_skipped) == (0, 6, 3)
    with world.sessions() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "charge")
            )
            == 6
        )
        runs = s.scalars(select(ChargeRun).order_by(ChargeRun.id)).all()
        assert [(r.status, r.charges_posted) for r in runs] == [
            ("completed", 6),
            ("completed", 0),
            ("completed", 0),
        ]


def test_dry_run_writes_nothing_and_shows_what_a_run_would_post(world: World) -> None:
    first = world.service("M-PRE", START)
    world.run(START)
    world.service("M-PRE", START)

    def snapshot() -> tuple[int, ...]:
        with world.sessions() as s:
            return tuple(
                s.scalar(select(func.count()).select_from(t)) or 0
                for t in (Charge, ChargeRun, ChargeMark, LedgerTransaction)
            )

    before = snapshot()
    with world.sessions.begin() as s:
        s.execute(delete(ChargeMark).where(ChargeMark.service_id == first))
    before = snapshot()
    preview = world.run(START, dry_run=True)
    assert snapshot() == before
    assert preview.run_id is None
    assert (preview.charges_posted, preview.already_posted) == (2, 2)
    real = world.run(START)
    assert sorted(c.idempotency_key for c in preview.would_post) == sorted(
        k for k in world.charge_keys() if not k.startswith(f"charge:{first}:")
    )
    assert real.charges_posted == 2


def test_one_bad_account_is_recorded_and_the_others_are_charged(world: World) -> None:
    good = [world.service("M-PRE", START) for _ in range(4)]
    bad = world.service("M-PRE", START, currency="USD")
    result = world.run(START, batch_size=10)
    assert [e.service_id for e in result.errors] == [bad]
    assert "USD" in result.errors[0].message
    assert result.services_charged == 4
    assert all(world.charged(s) == Decimal("81.00") for s in good)
    with world.sessions() as s:
        shown = show_run(s, result.run_id or 0)
    assert [e.service_id for e in shown.error_rows] == [bad]
    again = world.run(START)
    assert [e.service_id for e in again.errors] == [bad]  # not marked: tried again, still refused


def test_a_run_killed_at_random_points_and_re_run_ends_with_exactly_the_right_charges(
    world: World, db_url: str
) -> None:
    services = [world.service("M-PRE", START) for _ in range(30)]
    rng = random.Random(4)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    worker = [sys.executable, str(Path(__file__).with_name("charge_crash_worker.py")), db_url, str(START),
              str(world.actor.operator_id), "15"]  # fmt: skip
    kills = 0
    for _ in range(12):
        with world.sessions.begin() as s:  # forget the marks so each attempt re-plans everything
            s.execute(delete(ChargeMark))
        process = subprocess.Popen(worker, env=env, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        for _ in range(rng.randint(1, 9)):  # kill after N committed batches (of 10), N ms later
            process.stdout.readline()
        time.sleep(rng.uniform(0, 0.02))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        process.stdout.close()
    assert kills >= 10
    world.run(START)
    keys = world.charge_keys()
    assert len(keys) == 2 * len(services)
    assert all(world.charged(s) == Decimal("81.00") for s in services)


def test_the_run_suspends_for_debt_after_the_grace_period_and_leaves_funded_services_alone(
    world: World,
) -> None:
    unpaid = world.service("M-PRE", START, funds="1")
    funded = world.service("M-PRE", START)
    grace = RULES.lookup("internet", "residential").grace_days
    assert grace is not None
    for day in days(START, START + timedelta(days=grace + 1)):
        world.run(day)
    with world.sessions() as s:
        status = dict(s.execute(select(Service.id, Service.status)).all())
        changes = s.scalars(select(ServiceStatusChange.service_id)).all()
    assert status == {unpaid: "suspended_involuntary", funded: "active"}
    assert funded not in changes


def add_usage(world: World, service_id: int, rows: list[tuple[datetime, int, int, int]]) -> None:
    """``session_usage`` rows of one RADIUS session: (recorded_at, upload, download, seconds)."""
    with world.sessions.begin() as s:
        radius = RadiusSession(
            acct_unique_id=f"u{service_id}-{rows[0][0].timestamp()}",
            acct_session_id="s1",
            nas_address="192.0.2.1",
            service_id=service_id,
            username=f"user{service_id}",
            started_at=rows[0][0],
            updated_at=rows[-1][0],
        )
        s.add(radius)
        s.flush()
        s.add_all(
            SessionUsage(
                session_id=radius.id,
                service_id=service_id,
                recorded_at=at,
                input_octets=up,
                output_octets=down,
                seconds=seconds,
            )
            for at, up, down, seconds in rows
        )


def test_postpaid_usage_is_rated_at_the_period_end_once(world: World) -> None:
    """A month of session_usage on U-POST: one exact usage charge with the fee; a re-run adds none."""
    metered = world.service("U-POST", START)
    idle = world.service("U-POST", START)  # no usage: only the fee
    gb = 10**9
    add_usage(
        world,
        metered,
        [
            (datetime(2027, 1, 5, 12, tzinfo=UTC), 1 * gb, 8 * gb, 3600),  # 9 GB of the 10 GB allowance
            (datetime(2027, 1, 10, 4, tzinfo=UTC), 1 * gb, 50 * gb, 3600),  # night: download free
            (datetime(2027, 1, 20, 12, tzinfo=UTC), gb // 2, 3 * gb, 3600),  # overage
            (datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC), 0, 3 * gb // 2, 7200),
            (datetime(2027, 2, 1, tzinfo=UTC), 7 * gb, 7 * gb, 60),  # February's
        ],
    )
    for day in days(START, date(2027, 2, 1)):
        assert not world.run(day).errors
    keys = world.charge_keys()
    assert {k: v for k, v in keys.items() if ":usage:" in k} == {
        f"charge:{metered}:usage:2027-01-01:U-POST:1": Decimal("6.00")  # 5 GB + 1 GB over, at 1.00
    }
    assert world.charged(metered) == Decimal("26.00")
    assert world.charged(idle) == Decimal("20.00")
    with world.sessions() as s:
        usage = s.scalars(select(Charge).where(Charge.kind == "usage")).one()
        ledger_tx = s.get(LedgerTransaction, usage.transaction_id)
    assert (usage.tariff_code, usage.tariff_version, usage.due_on) == ("U-POST", 1, date(2027, 2, 1))
    assert usage.fingerprint and ledger_tx is not None and ledger_tx.idempotency_key == usage.idempotency_key
    again = world.run(date(2027, 2, 1))
    assert again.charges_posted == 0
    with world.sessions.begin() as s:
        s.execute(delete(ChargeMark))
    third = world.run(date(2027, 2, 1))
    assert (third.charges_posted, third.already_posted) == (0, 3)
    assert world.charge_keys() == keys
