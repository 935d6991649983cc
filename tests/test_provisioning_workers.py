"""Several outbox workers on one PostgreSQL database, as separate ``billingd --role provisioning``
processes: they never run one task twice, and a worker killed mid-task is taken over.

billingd (RADIUS only) records the sessions the BRAS simulator brings online; the tasks are
real lifecycle decisions (blocks: a Disconnect per session).
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from billing import service_lifecycle
from billing.db.engine import make_engine
from billing.db.lifecycle import ProvisioningTask
from billing.db.provisioning import ProvisioningAttempt
from billing.db.sessions import RadiusSession
from simulators.bras import BrasSimulator, CoaAnswer, Outcome
from tests.provisioning_world import (
    ACTOR,
    Billingd,
    bras,
    config,
    free_udp_port,
    seed,
    start_billingd,
    subscriber,
    wait_for,
)


def _online(sim: BrasSimulator, engine: Engine, logins: list[str]) -> None:
    for login in logins:
        sub = subscriber(login)
        assert sim.authenticate(sub) is Outcome.ACCEPTED
        sim.start(sub)
    wait_for(
        engine,
        lambda s: s.scalar(select(func.count()).where(RadiusSession.status == "open")) == len(logins),
        what=f"{len(logins)} open sessions",
    )


def _block_all(engine: Engine, service_ids: list[int]) -> None:
    rules = service_lifecycle.rules_for(UTC)
    with Session(engine) as s, s.begin():
        for service_id in service_ids:
            service_lifecycle.apply_event(
                s, ACTOR, service_id, "block", datetime.now(UTC), reason="customer_request", rules=rules
            )


def _states(engine: Engine) -> Counter[str]:
    with Session(engine) as s:
        return Counter(
            dict(
                s.execute(select(ProvisioningTask.state, func.count()).group_by(ProvisioningTask.state)).all()
            )
        )  # type: ignore[arg-type]


class Isp:
    def __init__(self, url: str, tmp: Path, logins: list[str], **worker: str) -> None:
        self.url, self.tmp = url, tmp
        self.services = seed(url, logins)
        self.coa_port = free_udp_port()
        self.aaa_config = config(tmp, url, self.coa_port, worker=False, **worker)
        self.radius = start_billingd(self.aaa_config, tmp / "billingd.log")
        self.engine = make_engine(url)
        self.workers: list[Billingd] = []

    def worker(self) -> Billingd:
        n = len(self.workers)
        started = start_billingd(self.aaa_config, self.tmp / f"worker-{n}.log", "--role", "provisioning")
        self.workers.append(started)
        return started

    def close(self) -> None:
        for daemon in [*self.workers, self.radius]:
            if daemon.process.poll() is None:
                assert daemon.stop() == 0, daemon.log.read_text(errors="replace")[-3000:]
        self.engine.dispose()


@pytest.fixture
def isp_factory(pg_url: str, tmp_path: Path) -> Iterator[type]:
    made: list[Isp] = []

    def make(logins: list[str], **worker: str) -> Isp:
        isp = Isp(pg_url, tmp_path, logins, **worker)
        made.append(isp)
        return isp

    yield make  # type: ignore[misc]
    for isp in made:
        isp.close()


def test_two_workers_never_execute_one_task(isp_factory) -> None:  # type: ignore[no-untyped-def]
    """300 blocks claimed in small batches by two worker processes at once: each runs exactly once."""
    logins = [f"pair{i:03d}" for i in range(300)]
    isp = isp_factory(logins, batch="20", concurrency="40", coa_timeout_s="2", lease_s="10")
    sim = bras(isp.radius, isp.coa_port, [subscriber(x) for x in logins], workers=4)
    try:
        _online(sim, isp.engine, logins)
        isp.worker(), isp.worker()  # both idle, polling: the tasks appear at once, in one commit
        _block_all(isp.engine, list(isp.services.values()))
        wait_for(isp.engine, lambda s: _states(isp.engine) == Counter(done=300), what="300 tasks done")
        with Session(isp.engine) as s:
            per_task = Counter(s.scalars(select(ProvisioningAttempt.task_id)))
            workers = set(s.scalars(select(ProvisioningAttempt.worker)))
            tries = set(s.scalars(select(ProvisioningTask.attempts)))
        assert len(per_task) == 300 and set(per_task.values()) == {1}  # one attempt per task, no more
        assert tries == {1}
        assert len(workers) == 2, "both workers took tasks (the claims really competed)"
        stats = sim.stats
        assert (stats.disconnect_acked, stats.disconnect_naked, stats.coa_duplicates) == (300, 0, 0)
    finally:
        sim.close()


def test_a_worker_killed_mid_task_is_taken_over_and_the_tasks_converge(isp_factory) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL while its Disconnects wait on a silent NAS: after the lease, another worker finishes them."""
    logins = [f"kill{i:02d}" for i in range(40)]
    isp = isp_factory(logins, lease_s="2", max_attempts="10")
    sim = bras(isp.radius, isp.coa_port, [subscriber(x) for x in logins])
    try:
        _online(sim, isp.engine, logins)
        sim.config = replace(sim.config, disconnect_answer=CoaAnswer.SILENT)
        first = isp.worker()
        _block_all(isp.engine, list(isp.services.values()))
        wait_for(isp.engine, lambda s: _states(isp.engine)["running"] >= 20, what="tasks running")
        first.kill()  # SIGKILL: no cleanup, claims held until their lease runs out
        orphaned = _states(isp.engine)["running"]
        assert orphaned > 0
        sim.config = replace(sim.config, disconnect_answer=CoaAnswer.ACK)
        isp.worker()
        wait_for(isp.engine, lambda s: _states(isp.engine) == Counter(done=40), what="40 tasks done")
        with Session(isp.engine) as s:
            results = Counter(s.scalars(select(ProvisioningAttempt.result)))
            taken_over = s.scalar(select(func.count()).where(ProvisioningTask.attempts >= 2))
            last_worker = set(
                s.scalars(select(ProvisioningAttempt.worker).where(ProvisioningAttempt.result != "timeout"))
            )
        assert taken_over >= orphaned  # each orphaned claim was claimed again: its try count says so
        assert last_worker == {f"{socket.gethostname()}:{isp.workers[1].process.pid}"[:64]}
        assert results["ack"] + results["gone"] == 40
        wait_for(  # every Disconnect reached the NAS, which sent its Stop
            isp.engine,
            lambda s: s.scalar(select(func.count()).where(RadiusSession.status == "open")) == 0,
            what="no open session left",
        )
        assert all(not s.active for s in sim.sessions())
    finally:
        sim.close()
