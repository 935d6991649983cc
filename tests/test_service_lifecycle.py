"""Service lifecycle use cases on both databases: one transaction per transition, outbox, schedule, debt."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, operators, service_lifecycle, subscribers
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.lifecycle import (
    LIFECYCLE_EVENTS,
    NETWORK_ACTIONS,
    ProvisioningTask,
    ScheduledServiceChange,
    ServiceStatusChange,
    VoluntarySuspension,
)
from billing.db.services import Service
from billing.db.tariffs import TariffRow
from billing.dictionaries import UnknownDictionaryValue
from billing.lifecycle import Event, LifecycleError
from billing.lifecycle_facts import ProvisioningIntent
from billing.lifecycle_rules import NetworkAccess
from billing.permissions import resolve_actor
from billing.service_lifecycle import ServiceLifecycleError, apply_event, evaluate_services

BERLIN = ZoneInfo("Europe/Berlin")
RULES = service_lifecycle.rules_for(BERLIN)
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # a Monday morning in Berlin
TABLES = (ServiceStatusChange, ScheduledServiceChange, VoluntarySuspension, ProvisioningTask, AuditEntry)


def day(n: int) -> datetime:
    """``n`` days after T0, same time of day."""
    return T0 + timedelta(days=n)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> tuple[sessionmaker[Session], Actor, int, str]:
    """An operator, the dictionaries, one residential subscriber with one active Internet service."""
    with sessions.begin() as s:
        operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
        actor = resolve_actor(s, "tester", source="test")
        for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
            dictionaries.add(s, actor, kind, code, code.title())
        dictionaries.add(s, actor, "adjustment_reason", "goodwill", "Goodwill")
        dictionaries.add(s, actor, "status_reason", "fraud", "Fraud")
        info = subscribers.create(
            s, actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        number = info.accounts[0].number
        service = Service(
            account_id=accounts.find(s, number).id,
            kind="internet",
            status="active",
            created_at=T0 - timedelta(30),
        )
        s.add(service)
        s.add_all(TariffRow(code=code, name=code, kind="internet") for code in ("home-100", "home-200"))
        s.flush()
        return sessions, actor, service.id, number


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES}


def status(sessions: sessionmaker[Session], service_id: int) -> str:
    with sessions() as s:
        return s.scalars(select(Service.status).where(Service.id == service_id)).one()


def tasks(sessions: sessionmaker[Session], service_id: int) -> list[tuple[str, bool, str | None]]:
    with sessions() as s:
        rows = s.scalars(
            select(ProvisioningTask)
            .where(ProvisioningTask.service_id == service_id)
            .order_by(ProvisioningTask.id)
        )
        return [(t.network, t.release, t.tariff_code) for t in rows]


def act(world, event: str, as_of: datetime, reason: str = "customer_request", **kw):  # type: ignore[no-untyped-def]
    sessions, actor, service_id, _ = world
    with sessions.begin() as s:
        return apply_event(s, actor, service_id, event, as_of, reason=reason, rules=RULES, **kw)


def evaluate(world, as_of: datetime):  # type: ignore[no-untyped-def]
    sessions, actor, _, _ = world
    with sessions.begin() as s:
        return evaluate_services(s, actor, as_of, RULES)


def test_the_tables_know_every_event_and_network_action() -> None:
    assert set(LIFECYCLE_EVENTS) == {e.value for e in Event}
    assert set(NETWORK_ACTIONS) == {n.value for n in NetworkAccess}


def test_migration_seeds_the_automatic_reasons(world) -> None:  # type: ignore[no-untyped-def]
    sessions = world[0]
    with sessions() as s:
        codes = {v.code for v in dictionaries.list_values(s, "status_reason")}
    assert {
        "non_payment",
        "payment_received",
        "voluntary_suspension_end",
        "voluntary_suspension_max",
    } <= codes


def test_block_then_unblock_writes_history_outbox_and_audit(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    before = counts(sessions)
    blocked = act(world, "block", T0, reason="fraud")
    assert blocked.status == "blocked" and status(sessions, service_id) == "blocked"
    [change] = blocked.changes
    assert (change.from_status, change.to_status, change.reason, change.operator) == (
        "active", "blocked", "fraud", "tester",
    )  # fmt: skip
    act(world, "unblock", day(1))
    assert status(sessions, service_id) == "active"
    assert tasks(sessions, service_id) == [("deny", False, None), ("allow", False, None)]
    after = counts(sessions)
    assert after["service_status_changes"] == before["service_status_changes"] + 2
    assert after["audit_log"] == before["audit_log"] + 2
    with sessions() as s:
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(2)).all()
    assert actions == ["service.unblock", "service.block"]


@pytest.mark.parametrize(
    ("event", "kwargs", "error", "match"),
    [
        ("unblock", {}, LifecycleError, "not blocked"),
        ("resume", {}, LifecycleError, "not suspended voluntarily"),
        ("block", {"reason": "nonsense"}, UnknownDictionaryValue, "reason: 'nonsense'.*valid codes: .*fraud"),
        ("block", {"at": date(2026, 12, 1)}, ServiceLifecycleError, "at: 2026-12-01 is in the past"),
        ("change_tariff", {}, LifecycleError, "tariff_code is required"),
        ("change_tariff", {"tariff_code": "bad code!"}, ServiceLifecycleError, "tariff: expected a code"),
        ("change_tariff", {"tariff_code": "home-999"}, ServiceLifecycleError, "unknown tariff 'home-999'"),
        ("suspend_voluntary", {"until": T0.date() + timedelta(3)}, LifecycleError, "below the minimum"),
        ("block", {"until": date(2027, 2, 1)}, ServiceLifecycleError, "until: only a voluntary"),
    ],
)
def test_refusals_write_nothing(world, event, kwargs, error, match) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    before = counts(sessions)
    with pytest.raises(error, match=match):
        act(world, event, T0, **kwargs)
    assert counts(sessions) == before
    assert status(sessions, service_id) == "active"


def test_unknown_service_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    sessions, actor, _, _ = world
    with pytest.raises(ServiceLifecycleError, match="service_id: no service 999"), sessions.begin() as s:
        apply_event(s, actor, 999, "block", T0, reason="fraud", rules=RULES)


def test_outbox_row_is_written_once_per_status_change(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    change = act(world, "block", T0, reason="fraud").changes[0]
    intent = ProvisioningIntent(service_id, NetworkAccess.DENY)
    with sessions.begin() as s:  # a re-run of the write (e.g. a retried transaction) adds nothing
        assert service_lifecycle._write_task(s, intent, change.id) == change.provisioning_task_id
    with sessions() as s:
        keys = s.scalars(select(ProvisioningTask.idempotency_key)).all()
    assert keys == [f"status_change:{change.id}"]
    evaluate(world, T0)
    evaluate(world, T0)
    assert len(tasks(sessions, service_id)) == 1


def test_history_rows_are_append_only(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, _, _ = world
    act(world, "block", T0, reason="fraud")
    with pytest.raises(Exception, match="append-only"), sessions.begin() as s:
        row = s.scalars(select(ServiceStatusChange)).one()
        row.to_status = "active"
        s.flush()


def test_voluntary_suspension_returns_on_its_end_date(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    outcome = act(world, "suspend_voluntary", T0, until=date(2027, 1, 18))
    assert outcome.status == "suspended_voluntary" and outcome.voluntary_period.days == 14
    [back] = outcome.scheduled
    assert (back.event, back.effective, back.reason, back.operator) == (
        "resume", date(2027, 1, 18), "voluntary_suspension_end", None,
    )  # fmt: skip
    assert evaluate(world, day(13)).changes == ()
    report = evaluate(world, day(14))
    assert [(c.event, c.to_status, c.operator) for c in report.changes] == [("resume", "active", None)]
    assert evaluate(world, day(14)).changes == ()  # idempotent
    assert tasks(sessions, service_id) == [("deny", False, None), ("allow", False, None)]
    with sessions() as s:
        assert s.scalars(select(ScheduledServiceChange.state)).all() == ["done"]


def test_early_resume_shortens_the_period_and_cancels_the_return(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    act(world, "suspend_voluntary", T0, until=date(2027, 1, 18))
    act(world, "resume", day(10))
    found = _history(sessions, service_id)
    assert [str(p) for p in found.voluntary_periods] == ["[2027-01-04, 2027-01-14)"]
    assert [s.state for s in found.scheduled] == ["cancelled"]
    assert found.status == "active"


def test_future_suspension_refused_at_start_drops_its_period(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    outcome = act(world, "suspend_voluntary", T0, at=date(2027, 2, 1), until=date(2027, 2, 15))
    assert outcome.status == "active" and len(outcome.scheduled) == 2
    act(world, "block", day(1), reason="fraud")
    report = evaluate(world, datetime(2027, 2, 1, 9, tzinfo=UTC))
    assert [r.event for r in report.refused] == ["suspend_voluntary"]
    found = _history(sessions, service_id)
    assert found.voluntary_periods == ()
    assert sorted(s.state for s in found.scheduled) == ["cancelled", "refused"]


def _history(sessions: sessionmaker[Session], service_id: int) -> service_lifecycle.ServiceHistory:
    with sessions() as s:
        return service_lifecycle.history(s, service_id)


def test_scheduled_block_runs_on_its_day_and_churn_cancels_the_rest(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    scheduled = act(world, "block", T0, reason="fraud", at=date(2027, 1, 10))
    assert scheduled.status == "active" and scheduled.changes == ()
    act(world, "change_tariff", T0, at=date(2027, 3, 1), tariff_code="home-200")
    assert evaluate(world, day(5)).changes == ()  # 9 January
    # 10 January 00:30 in Berlin is still 9 January in UTC: days are the ISP's
    report = evaluate(world, datetime(2027, 1, 9, 23, 30, tzinfo=UTC))
    assert [(c.event, c.operator, c.scheduled_change_id) for c in report.changes] == [
        ("block", "tester", scheduled.scheduled[0].id)
    ]
    assert status(sessions, service_id) == "blocked"
    act(world, "churn", day(7))
    found = _history(sessions, service_id)
    assert [s.state for s in found.scheduled] == ["done", "cancelled"]
    assert tasks(sessions, service_id)[-1] == ("deny", True, None)


def test_scheduled_change_the_table_refuses_is_marked_refused(world) -> None:  # type: ignore[no-untyped-def]
    act(world, "unblock", T0, at=date(2027, 1, 6))
    report = evaluate(world, day(2))
    assert report.changes == () and [r.state for r in report.refused] == ["refused"]
    assert "not blocked" in (report.refused[0].outcome or "")
    assert evaluate(world, day(2)).refused == ()


def test_tariff_change_now_and_scheduled(world) -> None:  # type: ignore[no-untyped-def]
    sessions, _, service_id, _ = world
    act(world, "change_tariff", T0, tariff_code="home-100")
    with pytest.raises(LifecycleError, match="already on tariff home-100"):
        act(world, "change_tariff", day(1), tariff_code="home-100")
    act(world, "change_tariff", day(1), at=date(2027, 2, 1), tariff_code="home-200")
    evaluate(world, datetime(2027, 2, 1, 9, tzinfo=UTC))
    found = _history(sessions, service_id)
    assert found.tariff_code == "home-200" and found.status == "active"
    assert tasks(sessions, service_id) == [("allow", False, "home-100"), ("allow", False, "home-200")]


def test_non_payment_suspends_after_grace_and_payment_resumes(world) -> None:  # type: ignore[no-untyped-def]
    sessions, actor, service_id, number = world
    with sessions.begin() as s:
        accounts.adjust(s, actor, number, "-10.00", "goodwill", key="fee-jan", effective_at=T0)
    for n in range(5):  # grace: 5 days from 4 January, suspended on the 9th
        assert evaluate(world, day(n)).changes == (), n
    report = evaluate(world, day(5))
    assert [(c.event, c.to_status, c.reason, c.operator) for c in report.changes] == [
        ("suspend_for_debt", "suspended_involuntary", "non_payment", None)
    ]
    assert evaluate(world, day(6)).changes == ()
    with pytest.raises(LifecycleError, match="debt_paid"):
        act(world, "resume", day(6))
    with sessions.begin() as s:
        accounts.adjust(s, actor, number, "25.00", "goodwill", key="pay-1", effective_at=day(7))
    report = evaluate(world, day(7) + timedelta(hours=1))
    assert [(c.event, c.to_status, c.reason) for c in report.changes] == [
        ("debt_paid", "active", "payment_received")
    ]
    assert tasks(sessions, service_id) == [("walled_garden", False, None), ("allow", False, None)]
    assert evaluate(world, day(8)).changes == ()


def test_negative_since_is_the_last_crossing_below_zero(world) -> None:  # type: ignore[no-untyped-def]
    sessions, actor, service_id, number = world
    with sessions.begin() as s:
        accounts.adjust(s, actor, number, "-10.00", "goodwill", key="a", effective_at=T0)
        accounts.adjust(s, actor, number, "15.00", "goodwill", key="b", effective_at=day(2))
        accounts.adjust(s, actor, number, "-8.00", "goodwill", key="c", effective_at=day(4))
        accounts.adjust(s, actor, number, "-1.00", "goodwill", key="d", effective_at=day(5))
    with sessions() as s:
        _, funds = service_lifecycle.load_facts(s, service_id, day(6))
        _, earlier = service_lifecycle.load_facts(s, service_id, day(3))
    assert (funds.balance, funds.negative_since) == (-4, day(4))
    assert (earlier.balance, earlier.negative_since) == (5, None)


def test_a_pending_service_activates_into_debt_suspension(world) -> None:  # type: ignore[no-untyped-def]
    sessions, actor, service_id, number = world
    with sessions.begin() as s:
        s.get(Service, service_id).status = "pending"  # type: ignore[union-attr]
        accounts.adjust(
            s, actor, number, "-10.00", "goodwill", key="old-debt", effective_at=T0 - timedelta(30)
        )
    outcome = act(world, "activate", T0)
    assert outcome.status == "suspended_involuntary"
    assert tasks(sessions, service_id) == [("walled_garden", False, None)]
