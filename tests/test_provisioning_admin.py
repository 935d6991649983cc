"""The staff use cases of :mod:`billing.provisioning_admin`, called directly with an injected clock.

What the CLI tests do not show: the fields a retry and a cancel reset (the NMS export cursor,
the claim), the lapsed-lease wording, session tasks that no newer task supersedes, unchanged
switch updates writing nothing, and a port bound in several VLANs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, dictionaries, operators, provisioning_admin, subscribers, switch_records
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.db.lifecycle import ProvisioningTask
from billing.db.services import Service
from billing.permissions import resolve_actor
from billing.provisioning_admin import ProvisioningAdminError
from billing.switch_records import KEEP

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
World = tuple[sessionmaker[Session], Actor, int, int]


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    """An operator and one subscriber with two Internet services."""
    with sessions.begin() as s:
        operators.bootstrap(s, Actor(None, "tester", None, "test"), "tester", "Tester")
        actor = resolve_actor(s, "tester", source="test")
        for kind, code in [("subscriber_category", "residential"), ("region", "north")]:
            dictionaries.add(s, actor, kind, code, code.title())
        info = subscribers.create(
            s, actor, kind="person", name="Ann", category="residential", region="north", currency="EUR"
        )
        account_id = accounts.find(s, info.accounts[0].number).id
        services = [Service(account_id=account_id, kind="internet", status="active") for _ in range(2)]
        s.add_all(services)
        s.flush()
        return sessions, actor, services[0].id, services[1].id


def _task(sessions: sessionmaker[Session], service_id: int, key: str, state: str, **values: object) -> int:
    with sessions.begin() as s:
        task = ProvisioningTask(
            idempotency_key=key, service_id=service_id, network="deny", state=state, created_at=T0, **values
        )
        s.add(task)
        s.flush()
        return task.id


def _audits(sessions: sessionmaker[Session], action: str) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).where(AuditEntry.action == action)) or 0


def test_retry_is_due_at_the_given_time_and_resets_the_claim_and_the_nms_export_cursor(world: World) -> None:
    sessions, actor, service, _ = world
    task_id = _task(
        sessions,
        service,
        "status_change:1",
        "unknown",
        attempts=5,
        finished_at=T0,
        exported_at=T0,
        outcome="x",
    )
    now = T0 + timedelta(hours=1)
    with sessions.begin() as s:
        after = provisioning_admin.retry(s, actor, task_id, now=now)
    assert (after.state, after.next_attempt_at, after.finished_at, after.attempts) == (
        "pending",
        now,
        None,
        5,
    )
    assert after.outcome == "retried by tester (was unknown); before: x"
    with sessions() as s:
        row = s.get(ProvisioningTask, task_id)
        assert row is not None and row.exported_at is None  # the new outcome is exported too


def test_cancel_of_a_task_whose_lease_ran_out_is_refused_saying_another_worker_may_take_it(
    world: World,
) -> None:
    sessions, actor, service, _ = world
    task_id = _task(
        sessions,
        service,
        "status_change:1",
        "running",
        claimed_by="w1",
        lease_until=T0 + timedelta(minutes=2),
    )
    with sessions.begin() as s, pytest.raises(ProvisioningAdminError) as refused:
        provisioning_admin.cancel(s, actor, task_id, now=T0 + timedelta(minutes=5))
    assert "a worker (w1) holds it until 2026-12-01T10:02:00Z, when another may take it over" in str(
        refused.value
    )


def test_a_session_task_is_retried_even_with_newer_service_wide_tasks(world: World) -> None:
    """Only service-wide tasks supersede each other; a quota task stands on its own."""
    sessions, actor, service, _ = world
    quota = _task(sessions, service, "quota:s1:deny", "dead", session_key="s1")
    old = _task(sessions, service, "status_change:1", "dead")
    _task(sessions, service, "status_change:2", "done")
    with sessions.begin() as s:
        assert provisioning_admin.retry(s, actor, quota, now=T0).state == "pending"
    with sessions.begin() as s, pytest.raises(ProvisioningAdminError, match="retry that one"):
        provisioning_admin.retry(s, actor, old, now=T0)


def test_list_refuses_an_unknown_state(world: World) -> None:
    sessions, *_ = world
    with sessions() as s, pytest.raises(ProvisioningAdminError, match="state: expected one of pending"):
        provisioning_admin.list_tasks(s, state="failed")


def test_an_update_that_changes_nothing_writes_no_audit_row_and_keep_differs_from_clear(world: World) -> None:
    sessions, actor, *_ = world
    with sessions.begin() as s:
        switch_records.add_switch(
            s, actor, "sw-1", address="10.0.0.1", device_type="snmp", vendor="Eltex", snmp_port=1161
        )
    with sessions.begin() as s:
        same = switch_records.update_switch(s, actor, "sw-1", vendor="Eltex", address=KEEP)
    assert _audits(sessions, "network.switch.update") == 0
    with sessions.begin() as s:
        cleared = switch_records.update_switch(s, actor, "sw-1", vendor=None, device_type=None)
    assert (same.vendor, same.snmp_port) == ("Eltex", 1161)
    assert (cleared.vendor, cleared.device_type, cleared.snmp_port) == (None, None, 1161)
    assert _audits(sessions, "network.switch.update") == 1


def test_unbind_of_a_port_bound_in_several_vlans_needs_the_vlan(world: World) -> None:
    sessions, actor, first, second = world
    with sessions.begin() as s:
        switch_records.add_switch(s, actor, "sw-1", address="10.0.0.1", device_type="snmp")
        switch_records.bind_port(s, actor, "sw-1", "eth 0/1/2", first, 100, now=T0)
        switch_records.bind_port(s, actor, "sw-1", "eth 0/1/2", second, 200, now=T0)
    with sessions.begin() as s, pytest.raises(ProvisioningAdminError, match="VLANs 100, 200; say which"):
        switch_records.unbind_port(s, actor, "sw-1", "eth 0/1/2")
    with sessions.begin() as s:
        freed = switch_records.unbind_port(s, actor, "sw-1", "eth 0/1/2", 200, now=T0)
    assert (freed.released, freed.vlan) == (second, 200)
    with sessions() as s:
        ports = switch_records.switch_detail(s, "sw-1").port_rows
    assert [(p.vlan, p.service_id) for p in ports] == [(100, first), (200, None)]
    with sessions.begin() as s, pytest.raises(ProvisioningAdminError, match="vlan: expected 0"):
        switch_records.bind_port(s, actor, "sw-1", "eth 0/1/3", first, 4095)
