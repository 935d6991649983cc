"""End to end on loopback: a billing decision → the outbox → CoA / Disconnect to the BRAS simulator →
the answer on record, with billingd (RADIUS server and outbox worker) as a real process.

The subscribers log in through billingd's RADIUS server from the BRAS simulator, so the sessions
the worker addresses are the ones accounting recorded; the simulator verifies every CoA and
Disconnect-Request (authenticators, Message-Authenticator) and answers as configured: ACK,
NAK, or nothing. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.config import load_config
from billing.db.engine import make_engine
from billing.db.lifecycle import ProvisioningTask
from billing.db.provisioning import NetworkState
from billing.db.sessions import RadiusSession
from billing.network_reconcile import run_reconcile
from billing.service_lifecycle import rules_for
from nms_adapters.events import events_from_csv
from simulators.bras import BrasSimulator, CoaAnswer
from simulators.nms import NmsSimulator
from tests.provisioning_world import (
    Billingd,
    adjust,
    attempts_of,
    bras,
    config,
    decide,
    evaluate_later,
    free_udp_port,
    online,
    seed,
    start_billingd,
    subscriber,
    task_in,
    wait_for,
)

LOGINS = ["debtor", "refuser", "silent", "gone", "exported"]
NMS_SECRET = b"nms-secret-0123456789abcdef"


@dataclass
class World:
    daemon: Billingd
    engine: Engine
    coa_port: int
    services: dict[str, int]
    config: Path
    nms: NmsSimulator
    drop: Path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest,
    templates,  # type: ignore[no-untyped-def]
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    url = templates.sqlite() if request.param == "sqlite" else templates.postgresql()
    tmp = tmp_path_factory.mktemp(f"provisioning-{request.param}")
    services = seed(url, LOGINS)
    coa_port = free_udp_port()
    drop = tmp / "nms-drop"
    drop.mkdir()
    nms = NmsSimulator(secret=NMS_SECRET).start()
    exporters = f"""
[[provisioning.nms]]
type = "file"
name = "drop"
directory = "{drop}"
format = "csv"

[[provisioning.nms]]
type = "rest"
name = "hook"
url = "{nms.rest_url}"
secret = "{NMS_SECRET.decode()}"

[[provisioning.nms]]
type = "soap"
name = "soap"
url = "{nms.wsdl_url}"
"""
    cfg = config(tmp, url, coa_port, more=exporters, export_interval_s="0.2")
    daemon = start_billingd(cfg, tmp / "billingd.log")
    engine = make_engine(url)
    try:
        yield World(daemon, engine, coa_port, services, cfg, nms, drop)
    finally:
        nms.stop()
        code = daemon.stop()
        engine.dispose()
        templates.drop(url)
        assert code == 0, "billingd did not stop cleanly:\n" + daemon.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def sim(world: World) -> Iterator[BrasSimulator]:
    simulator = bras(world.daemon, world.coa_port, [subscriber(login) for login in LOGINS])
    try:
        yield simulator
    finally:
        simulator.close()


def test_debt_suspension_reaches_the_session_by_coa_and_payment_restores_its_speed(
    world: World, sim: BrasSimulator
) -> None:
    """Funds below zero past the grace period → walled garden by CoA (ACK on record) → paid → full speed."""
    sub, service_id = subscriber("debtor"), world.services["debtor"]
    acct_session_id = online(sim, world.engine, sub)
    assert sim.last_coa(sub) == {}

    adjust(world.engine, service_id, "-30")
    evaluate_later(world.engine, service_id, days=6)
    task = wait_for(world.engine, task_in("done", service_id), what="the suspension's task done")
    assert task.network == "walled_garden"
    [attempt] = attempts_of(world.engine, task.id)
    assert (attempt.action, attempt.result, attempt.error_cause) == ("coa", "ack", None)
    assert attempt.target.startswith("nas:bras 127.0.0.1:") and acct_session_id in attempt.target
    assert "Mikrotik-Rate-Limit" in attempt.request and attempt.worker
    assert sim.last_coa(sub)["Mikrotik-Rate-Limit"] == "512k/512k"  # type: ignore[index]

    adjust(world.engine, service_id, "50")
    evaluate_later(world.engine, service_id, days=6)
    resumed = wait_for(
        world.engine,
        lambda s: (t := task_in("done", service_id)(s)) is not None and t.id > task.id and t,
        what="the resume's task done",
    )
    assert resumed.network == "allow"
    assert sim.last_coa(sub)["Mikrotik-Rate-Limit"] == "20M/100M"  # type: ignore[index]
    with Session(world.engine) as s:
        state = s.get(NetworkState, service_id)
        assert state is not None and (state.network, state.speed_profile, state.task_id) == (
            "allow",
            "home-100",
            resumed.id,
        )


def test_a_coa_nak_falls_back_to_disconnect_and_the_session_ends(world: World, sim: BrasSimulator) -> None:
    """The NAS refuses the CoA (NAK with its Error-Cause): the worker disconnects the session instead."""
    sub, service_id = subscriber("refuser"), world.services["refuser"]
    acct_session_id = online(sim, world.engine, sub)
    sim.config = replace(sim.config, coa_answer=CoaAnswer.NAK)

    adjust(world.engine, service_id, "-30")
    evaluate_later(world.engine, service_id, days=6)
    task = wait_for(world.engine, task_in("done", service_id), what="the suspension's task done")
    coa, disconnect = attempts_of(world.engine, task.id)
    assert (coa.action, coa.result, coa.error_cause) == ("coa", "nak", sim.config.nak_error_cause)
    assert (disconnect.action, disconnect.result) == ("disconnect", "ack")
    assert sim.session(sub) is None or not sim.session(sub).active  # type: ignore[union-attr]
    wait_for(
        world.engine,
        lambda s: (
            s.scalar(
                select(RadiusSession.status).where(
                    RadiusSession.acct_session_id == acct_session_id, RadiusSession.username == sub.login
                )
            )
            == "closed"
        ),
        what="the disconnected session closed by its Accounting Stop",
    )


def test_silence_is_retried_then_unknown_and_the_reconciler_repairs_it(
    world: World, sim: BrasSimulator
) -> None:
    """No answer: each try retransmits, three tries (max_attempts), then ``unknown``; the reconciler
    sees the blocked service still online and its repair task (superseding the unknown one) ends it."""
    sub, service_id = subscriber("silent"), world.services["silent"]
    online(sim, world.engine, sub)
    sim.config = replace(sim.config, disconnect_answer=CoaAnswer.SILENT)

    decide(world.engine, service_id, "block")
    task = wait_for(world.engine, task_in("unknown", service_id), what="the block's task unknown")
    attempts = attempts_of(world.engine, task.id)
    assert [(a.attempt, a.action, a.result) for a in attempts] == [
        (1, "disconnect", "timeout"),
        (2, "disconnect", "timeout"),
        (3, "disconnect", "timeout"),
    ]
    assert all(a.detail == "2 sends" for a in attempts)  # coa_retries = 1: the datagram went twice
    assert attempts[1].started_at > attempts[0].started_at
    assert task.attempts == 3 and task.outcome.startswith("after 3 tries")
    assert sim.session(sub) is not None and sim.session(sub).active  # type: ignore[union-attr]

    # The reconciler finds the blocked service still online, and its repair task ends it.
    sim.config = replace(sim.config, disconnect_answer=CoaAnswer.ACK)
    settings = load_config(world.config, env={})
    report = run_reconcile(world.engine, settings.provisioning, settings.aaa, rules_for(UTC), repair=True)
    [drift] = [d for d in report.drift if d.service_id == service_id]
    assert drift.kind == "session_should_be_down"
    [repair] = [r for r in report.repairs if r.service_id == service_id]
    assert repair.task_id is not None
    repaired = wait_for(world.engine, task_in("done", service_id), what="the repair task done")
    assert repaired.id == repair.task_id and repaired.idempotency_key.startswith(f"reconcile:{service_id}:")
    with Session(world.engine) as s:
        old = s.get(ProvisioningTask, task.id)
        assert (
            old is not None and old.state == "superseded" and f"task {repair.task_id}" in (old.outcome or "")
        )
    assert sim.session(sub) is None or not sim.session(sub).active  # type: ignore[union-attr]
    again = run_reconcile(world.engine, settings.provisioning, settings.aaa, rules_for(UTC))
    assert [d for d in again.drift if d.service_id == service_id] == []


def test_a_session_the_nas_no_longer_has_counts_as_disconnected(world: World, sim: BrasSimulator) -> None:
    """Error-Cause 503 (Session-Context-Not-Found) to a Disconnect: the goal is met, the task is done."""
    sub, service_id = subscriber("gone"), world.services["gone"]
    online(sim, world.engine, sub)
    sim.close()  # the BRAS "reboots" without telling accounting: billing still sees the session open
    fresh = bras(world.daemon, world.coa_port, [sub])
    try:
        decide(world.engine, service_id, "block")
        task = wait_for(world.engine, task_in("done", service_id), what="the block's task done")
        [attempt] = attempts_of(world.engine, task.id)
        assert (attempt.action, attempt.result, attempt.error_cause) == ("disconnect", "gone", 503)
    finally:
        fresh.close()


def test_finished_tasks_reach_every_nms_exporter(world: World) -> None:
    """A finished task is dropped as a CSV file, POSTed signed to the REST hook and sent over SOAP."""
    service_id = world.services["exported"]
    decide(world.engine, service_id, "block")
    task = wait_for(world.engine, task_in("done", service_id), what="the block's task done")
    for endpoint in ("rest", "soap"):
        wait_for(
            world.engine,
            lambda s, e=endpoint: any(
                d.endpoint == e and any(ev.task_id == task.id for ev in d.events)
                for d in world.nms.deliveries
            ),
            what=f"the task's event at the NMS over {endpoint}",
        )
    [event] = [e for e in world.nms.events if e.task_id == task.id][:1]
    assert (event.service_id, event.action, event.outcome) == (service_id, "deny", "done")
    dropped = [e for f in sorted(world.drop.glob("*.csv")) for e in events_from_csv(f.read_bytes())]
    assert task.id in {e.task_id for e in dropped}
    assert not list(world.drop.glob(".*.tmp"))  # atomic rename: no temporary file left
    # every signature was accepted (status 0: a later batch still being answered)
    assert [a for a in world.nms.attempts if a.status not in (0, 200)] == []


def test_the_worker_logged_its_start(world: World) -> None:
    assert b"provisioning worker" in Path(world.daemon.log).read_bytes()
