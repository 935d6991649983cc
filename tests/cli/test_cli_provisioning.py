"""``billing-admin provisioning``: list (by state, account, service), show attempts, retry, cancel.

Tasks and attempts are written straight into the outbox tables, as the lifecycle and the worker
would have left them; the commands are then run as an admin and as a support operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session

from billing import accounts
from billing.cli.provisioning import STATES
from billing.db.lifecycle import TASK_STATES, ProvisioningTask
from billing.db.provisioning import ProvisioningAttempt
from billing.db.services import Service
from billing.provisioning_outbox import claim

if TYPE_CHECKING:
    from conftest import Cli

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LEASE_UNTIL = datetime(2099, 1, 1, 10, 2, tzinfo=UTC)
"""A lease far ahead: the running task stays held whatever the clock says."""


@dataclass
class Outbox:
    """The CLI, and the ids of the tasks the fixture wrote (by what they stand for)."""

    cli: Cli
    ids: dict[str, int]


def _task(s: Session, service_id: int, key: str, network: str, state: str, **values: Any) -> int:
    task = ProvisioningTask(
        idempotency_key=key, service_id=service_id, network=network, state=state, created_at=T0, **values
    )
    s.add(task)
    s.flush()
    return task.id


@pytest.fixture
def outbox(populated: Cli) -> Outbox:
    """Ann (100001) has a done task and a dead quota task with two attempts (NAK 503, then
    timeout); Bo (100002) has an old dead task, a newer pending one and a running quota task."""
    cli = populated
    cli.ok("subscribers", "create", "--name", "Bo Chan", "--category", "residential", "--region", "north")
    with Session(cli.engine) as s, s.begin():
        services = {}
        for number in ("100001", "100002"):
            service = Service(account_id=accounts.find(s, number).id, kind="internet", status="active")
            s.add(service)
            s.flush()
            services[number] = service.id
        ann, bo = services["100001"], services["100002"]
        ids = {
            "ann_done": _task(
                s, ann, "status_change:1", "allow", "done", attempts=1, finished_at=T0, outcome="1 target(s)"
            ),
            "ann_dead": _task(
                s,
                ann,
                "quota:sess-a:deny",
                "deny",
                "dead",
                session_key="sess-a",
                attempts=2,
                finished_at=T0 + timedelta(minutes=1),
                outcome="after 2 tries: nas:bras1: disconnect timeout",
            ),
            "bo_old_dead": _task(s, bo, "status_change:2", "deny", "dead", attempts=5, outcome="refused"),
            "bo_pending": _task(
                s, bo, "status_change:3", "allow", "pending", next_attempt_at=T0 + timedelta(days=365)
            ),
            "bo_running": _task(
                s,
                bo,
                "quota:sess-b:allow",
                "allow",
                "running",
                session_key="sess-b",
                speed_profile="slow-64k",
                attempts=1,
                claimed_by="host-1:4242",
                lease_until=LEASE_UNTIL,
            ),
        }
        for attempt, result, cause, detail in [
            (1, "nak", 503, "no such session"),
            (2, "timeout", None, None),
        ]:
            s.add(
                ProvisioningAttempt(
                    task_id=ids["ann_dead"],
                    attempt=attempt,
                    worker="host-1:4242",
                    target="nas:bras1 192.0.2.1:3799 session 00000001",
                    action="disconnect",
                    request="Disconnect-Request Acct-Session-Id=00000001 User-Name=ann",
                    result=result,
                    error_cause=cause,
                    detail=detail,
                    started_at=T0 + timedelta(seconds=attempt),
                    duration_ms=12 * attempt,
                )
            )
    return Outbox(cli, ids)


def test_the_state_choices_are_the_task_states() -> None:
    """click needs the states before any model import; they must match the table's CHECK."""
    assert STATES == TASK_STATES


def test_list_is_newest_first_and_filters_by_state_account_and_service(outbox: Outbox) -> None:
    cli, ids = outbox.cli, outbox.ids
    everything = cli.json("provisioning", "list")
    assert [t["id"] for t in everything] == sorted(ids.values(), reverse=True)
    dead = cli.json("provisioning", "list", "--state", "dead")
    assert [t["id"] for t in dead] == [ids["bo_old_dead"], ids["ann_dead"]]
    bo = cli.json("provisioning", "list", "--account", "100002")
    assert [t["id"] for t in bo] == [ids["bo_running"], ids["bo_pending"], ids["bo_old_dead"]]
    assert {t["account"] for t in bo} == {"100002"}
    ann_dead = cli.json("provisioning", "list", "--account", "100001", "--state", "dead")
    assert [(t["id"], t["action"], t["attempts"]) for t in ann_dead] == [(ids["ann_dead"], "deny", 2)]
    by_service = cli.json(
        "provisioning", "list", "--service", str(everything[0]["service_id"]), "--limit", "1"
    )
    assert [t["id"] for t in by_service] == [ids["bo_running"]]
    assert by_service[0]["action"] == "throttle" and by_service[0]["claimed_by"] == "host-1:4242"
    table = cli.ok("provisioning", "list", "--state", "running").stdout
    assert "quota:sess-b:allow" in table and "throttle slow-64k" in table
    unknown = cli("provisioning", "list", "--account", "999999")
    assert unknown.exit_code == 1 and "no account '999999'" in unknown.stderr
    assert cli("provisioning", "list", "--state", "failed").exit_code == 2


def test_show_lists_every_attempt_with_its_error_cause(outbox: Outbox) -> None:
    cli, task_id = outbox.cli, outbox.ids["ann_dead"]
    detail = cli.json("provisioning", "show", str(task_id))
    assert (detail["task"]["state"], detail["task"]["session_key"]) == ("dead", "sess-a")
    assert [
        (a["attempt"], a["result"], a["error_cause"], a["error_cause_name"], a["duration_ms"])
        for a in detail["attempt_rows"]
    ] == [(1, "nak", 503, "Session Context Not Found", 12), (2, "timeout", None, None, 24)]
    assert detail["attempt_rows"][0]["request"].startswith("Disconnect-Request")
    shown = cli.ok("provisioning", "show", str(task_id), user="helpdesk").stdout
    assert "503 Session Context Not Found" in shown and "no such session" in shown and "nas:bras1" in shown


def test_retry_of_a_dead_task_makes_it_pending_and_due_keeping_its_attempts(outbox: Outbox) -> None:
    cli, task_id = outbox.cli, outbox.ids["ann_dead"]
    before = datetime.now(UTC)
    retried = cli.json("provisioning", "retry", str(task_id))
    assert (retried["state"], retried["attempts"], retried["finished_at"]) == ("pending", 2, None)
    due = datetime.fromisoformat(retried["next_attempt_at"])
    assert before - timedelta(seconds=1) <= due <= datetime.now(UTC)
    assert retried["outcome"].startswith("retried by ") and "(was dead)" in retried["outcome"]
    assert len(cli.json("provisioning", "show", str(task_id))["attempt_rows"]) == 2
    [entry] = cli.json("audit", "search", "--action", "provisioning.retry")
    assert entry["object_id"] == str(task_id) and entry["before"]["state"] == "dead"
    assert entry["after"]["state"] == "pending"
    with Session(cli.engine) as s, s.begin():  # a worker takes it at once
        claimed = claim(s, "test-worker", datetime.now(UTC), 60.0, 10)
    assert [(w.task_id, w.attempt) for w in claimed] == [(task_id, 3)]


def test_retry_is_refused_for_done_pending_running_and_superseded_by_a_newer_task(outbox: Outbox) -> None:
    cli, ids = outbox.cli, outbox.ids
    for key, message in [
        ("ann_done", "it is done (the network confirmed it"),
        ("bo_pending", "it is pending (it is waiting for a worker already"),
        ("bo_running", "it is running (a worker (host-1:4242) holds it until 2099-01-01T10:02:00Z)"),
        ("bo_old_dead", f"task {ids['bo_pending']} (pending) of service"),
    ]:
        refused = cli("provisioning", "retry", str(ids[key]))
        assert refused.exit_code == 1 and message in refused.stderr, (key, refused.stderr)
    assert (
        "only dead, unknown, cancelled tasks can be retried"
        in cli("provisioning", "retry", str(ids["ann_done"])).stderr
    )
    assert cli.count("audit_log", "WHERE action = 'provisioning.retry'") == 0


def test_cancel_of_a_pending_task_and_retry_brings_it_back(outbox: Outbox) -> None:
    cli, task_id = outbox.cli, outbox.ids["bo_pending"]
    cancelled = cli.json("provisioning", "cancel", str(task_id))
    assert (cancelled["state"], cancelled["next_attempt_at"]) == ("cancelled", None)
    assert cancelled["finished_at"] is not None and "(was pending)" in cancelled["outcome"]
    [entry] = cli.json("audit", "search", "--action", "provisioning.cancel")
    assert (entry["before"]["state"], entry["after"]["state"]) == ("pending", "cancelled")
    again = cli("provisioning", "cancel", str(task_id))
    assert again.exit_code == 1 and "it is cancelled" in again.stderr
    assert "retried: pending" in cli.ok("provisioning", "retry", str(task_id)).stdout


def test_cancel_is_refused_for_a_running_task_naming_the_lease_and_for_a_done_one(outbox: Outbox) -> None:
    cli, ids = outbox.cli, outbox.ids
    running = cli("provisioning", "cancel", str(ids["bo_running"]))
    assert running.exit_code == 1
    assert "a worker (host-1:4242) holds it until 2099-01-01T10:02:00Z" in running.stderr
    done = cli("provisioning", "cancel", str(ids["ann_done"]))
    assert done.exit_code == 1 and "it is done" in done.stderr
    assert cli.json("provisioning", "show", str(ids["bo_running"]))["task"]["state"] == "running"
    assert cli.count("audit_log", "WHERE action = 'provisioning.cancel'") == 0


def test_support_may_look_but_retry_is_denied_and_the_denial_audited(outbox: Outbox) -> None:
    cli, task_id = outbox.cli, outbox.ids["ann_dead"]
    assert len(cli.json("provisioning", "list", user="helpdesk")) == 5
    denied = cli("provisioning", "retry", str(task_id), user="helpdesk")
    assert denied.exit_code == 3
    assert "helpdesk" in denied.stderr and "provisioning.manage" in denied.stderr
    assert "provisioning retry" in denied.stderr
    [denial] = cli.json("audit", "search", "--outcome", "denied")
    assert denial["operator_login"] == "helpdesk" and denial["after"]["permission"] == "provisioning.manage"
    assert cli("provisioning", "cancel", str(task_id), user="helpdesk").exit_code == 3
    assert cli.json("provisioning", "show", str(task_id))["task"]["state"] == "dead"


def test_an_unknown_task_id_is_an_error_naming_it(outbox: Outbox) -> None:
    for command in ("show", "retry", "cancel"):
        result = outbox.cli("provisioning", command, "404")
        assert result.exit_code == 1 and "no provisioning task 404" in result.stderr, command
