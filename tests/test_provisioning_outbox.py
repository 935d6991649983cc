"""The outbox's database rules (``billing.provisioning_outbox``) on SQLite and PostgreSQL: claims and
leases, order per subscriber, superseding, and outcomes written only by the worker holding the task.

The tasks are real lifecycle decisions (``billing.service_lifecycle``); the clock is explicit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.db.lifecycle import ProvisioningTask
from billing.db.provisioning import NetworkState, ProvisioningAttempt
from billing.db.services import Service
from billing.provisioning_outbox import AttemptRecord, Finished, claim, record, supersede
from tests.provisioning_world import decide, seed

NOW = datetime.now(UTC)
LEASE_S = 60.0


def _claim(engine: Engine, worker: str, at: datetime = NOW, limit: int = 10) -> list[int]:
    with Session(engine) as s, s.begin():
        supersede(s, at)
        return [w.task_id for w in claim(s, worker, at, LEASE_S, limit)]


def _finish(engine: Engine, worker: str, task_id: int, service_id: int, network: str = "deny") -> int:
    attempt = AttemptRecord(f"service:{service_id}", "none", "-", "ok", NOW, 0)
    done = Finished(task_id, "done", "confirmed", (attempt,), None, service_id, network, None)
    with Session(engine) as s, s.begin():
        return record(s, worker, [done], NOW)


def _state(engine: Engine, task_id: int) -> tuple[str, str | None, int]:
    with Session(engine) as s:
        task = s.get(ProvisioningTask, task_id)
        assert task is not None
        return task.state, task.claimed_by, task.attempts


def test_a_claimed_task_is_running_with_a_lease_and_no_other_worker_gets_it(
    db_url: str, engine: Engine
) -> None:
    services = seed(db_url, ["ann", "bob"])
    for service_id in services.values():
        decide(engine, service_id, "block")
    first = _claim(engine, "w1")
    assert len(first) == 2 and _state(engine, first[0]) == ("running", "w1", 1)
    assert _claim(engine, "w2") == []


def test_a_lapsed_lease_lets_another_worker_take_the_task_over(db_url: str, engine: Engine) -> None:
    service_id = seed(db_url, ["cid"])["cid"]
    decide(engine, service_id, "block")
    [task_id] = _claim(engine, "w1")
    assert _claim(engine, "w2", NOW + timedelta(seconds=LEASE_S - 1)) == []
    assert _claim(engine, "w2", NOW + timedelta(seconds=LEASE_S + 1)) == [task_id]
    assert _state(engine, task_id) == ("running", "w2", 2)


def test_only_the_worker_holding_the_task_writes_its_outcome(db_url: str, engine: Engine) -> None:
    """The first worker's late result is kept as an attempt but cannot overwrite the task."""
    service_id = seed(db_url, ["dan"])["dan"]
    decide(engine, service_id, "block")
    [task_id] = _claim(engine, "w1")
    _claim(engine, "w2", NOW + timedelta(seconds=LEASE_S + 1))
    assert _finish(engine, "w1", task_id, service_id) == 0
    assert _state(engine, task_id) == ("running", "w2", 2)
    assert _finish(engine, "w2", task_id, service_id) == 1
    assert _state(engine, task_id) == ("done", None, 2)
    with Session(engine) as s:
        rows = s.execute(
            select(ProvisioningAttempt.worker, ProvisioningAttempt.attempt).where(
                ProvisioningAttempt.task_id == task_id
            )
        ).all()
        assert sorted(rows) == [("w1", 0), ("w2", 2)]  # w1 no longer held it: its try is numbered 0
        state = s.get(NetworkState, service_id)
        assert state is not None and (state.network, state.task_id) == ("deny", task_id)


def test_a_later_task_of_the_same_subscriber_waits_for_the_earlier_one(db_url: str, engine: Engine) -> None:
    """Two services of one account: the second service's task is not claimed while the first runs."""
    first_service = seed(db_url, ["eve"])["eve"]
    with Session(engine) as s, s.begin():
        base = s.get(Service, first_service)
        assert base is not None
        second = Service(account_id=base.account_id, kind="internet", status="active",
                         speed_profile_id=base.speed_profile_id, login="eve-2", password="x")  # fmt: skip
        s.add(second)
        s.flush()
        second_service = second.id
    decide(engine, first_service, "block")
    decide(engine, second_service, "block")
    [task_id] = _claim(engine, "w1")
    assert _claim(engine, "w2") == []  # held back: the account's earlier task is running
    _finish(engine, "w1", task_id, first_service)
    [later] = _claim(engine, "w2")
    assert later > task_id


def test_a_newer_decision_supersedes_the_pending_one_so_a_resume_never_runs_before_its_suspend(
    db_url: str, engine: Engine
) -> None:
    service_id = seed(db_url, ["fay"])["fay"]
    decide(engine, service_id, "block")
    decide(engine, service_id, "unblock")
    [task_id] = _claim(engine, "w1")
    with Session(engine) as s:
        tasks = s.scalars(
            select(ProvisioningTask)
            .where(ProvisioningTask.service_id == service_id)
            .order_by(ProvisioningTask.id)
        ).all()
        assert [(t.network, t.state) for t in tasks] == [("deny", "superseded"), ("allow", "running")]
        assert tasks[1].id == task_id and tasks[0].finished_at is not None


def test_a_task_in_backoff_is_not_claimed_before_it_is_due(db_url: str, engine: Engine) -> None:
    service_id = seed(db_url, ["gil"])["gil"]
    decide(engine, service_id, "block")
    [task_id] = _claim(engine, "w1")
    retry = Finished(task_id, "pending", "try 1 failed", (), NOW + timedelta(seconds=30))
    with Session(engine) as s, s.begin():
        assert record(s, "w1", [retry], NOW) == 1
    assert _claim(engine, "w1", NOW + timedelta(seconds=29)) == []
    assert _claim(engine, "w1", NOW + timedelta(seconds=31)) == [task_id]
