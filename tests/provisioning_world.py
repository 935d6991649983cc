"""A small ISP for the provisioning tests: subscribers in a database, billingd with its outbox worker,
and the BRAS simulator those subscribers are online on.

``seed`` writes the subscribers; ``config`` a billingd config whose only NAS is the BRAS
simulator's CoA port on loopback, with a fast worker (short timeouts and backoff, so retries
and give-ups happen within seconds); ``start_billingd`` runs billingd (any ``--role``) and waits
until it serves; ``online`` brings a subscriber online through billingd's RADIUS server;
``wait_for`` polls the database.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import accounts, dictionaries, operators, service_lifecycle, subscribers
from billing.audit import Actor
from billing.db.engine import make_engine, session_factory
from billing.db.lifecycle import ProvisioningTask
from billing.db.provisioning import ProvisioningAttempt
from billing.db.services import Service, SpeedProfile
from billing.db.sessions import RadiusSession
from simulators.bras import BrasConfig, BrasSimulator, Outcome, Subscriber
from tests.payment_daemon import write_config

BILLINGD = Path(sys.executable).with_name("billingd")
SECRET = "provisioning-secret"
ACTOR = Actor(None, "test", None, "test")
T = TypeVar("T")
_RADIUS_READY = re.compile(rb"RADIUS listening on \S+ auth (\d+) acct (\d+) metrics (\d+)")
_WORKER_READY = re.compile(rb"provisioning worker \S+ started")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, logins: list[str], funds: str = "10") -> dict[str, int]:
    """PPPoE subscribers (password = login) on profile home-100 with ``funds``; their service ids."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    ids = {}
    with sessions.begin() as s:
        if not s.scalar(select(SpeedProfile.id).where(SpeedProfile.name == "home-100")):
            operators.bootstrap(s, ACTOR, "test", "Test")
            for kind, code in (("subscriber_category", "residential"), ("region", "north"),
                               ("adjustment_reason", "goodwill")):  # fmt: skip
                dictionaries.add(s, ACTOR, kind, code, code.title())
            s.add(SpeedProfile(name="home-100", down_kbps=100_000, up_kbps=20_000))
            s.flush()
        profile_id = s.scalar(select(SpeedProfile.id).where(SpeedProfile.name == "home-100"))
        for login in logins:
            info = subscribers.create(s, ACTOR, kind="person", name=login, category="residential",
                                      region="north", currency="EUR", credit_limit="0")  # fmt: skip
            number = info.accounts[0].number
            service = Service(
                account_id=accounts.find(s, number).id, kind="internet", status="active",
                speed_profile_id=profile_id, login=login, password=login, framed_pool="main",
            )  # fmt: skip
            s.add(service)
            s.flush()
            ids[login] = service.id
            accounts.adjust(s, ACTOR, number, funds, "goodwill")
    engine.dispose()
    return ids


FAST_WORKER = {
    "poll_s": "0.05",
    "coa_timeout_s": "0.2",
    "coa_retries": "1",
    "max_attempts": "3",
    "backoff_s": "0.2",
    "backoff_max_s": "0.4",
    "lease_s": "3",
}
"""The worker's [provisioning] keys in tests: a silent NAS is given up on within seconds."""


def config(
    tmp: Path, url: str, coa_port: int, *, worker: bool = True, more: str = "", **settings: str
) -> Path:
    """billingd's config: RADIUS on free ports, the BRAS simulator as NAS ``bras`` (CoA on ``coa_port``).

    ``settings`` override :data:`FAST_WORKER`; ``more`` is appended (e.g. [[provisioning.nms]] tables).
    """
    keys = "\n".join(f"{k} = {v}" for k, v in {**FAST_WORKER, **settings}.items())
    provisioning = f"[provisioning]\nworker = {'true' if worker else 'false'}\n{keys}\n{more}"
    return write_config(
        tmp,
        url,
        provisioning,
        aaa="snapshot_poll_s = 0.2",
        secret=SECRET,
        nas_name="bras",
        nas=f"coa_port = {coa_port}",
    )


@dataclass
class Billingd:
    process: subprocess.Popen[bytes]
    log: Path
    auth_port: int
    acct_port: int

    def stop(self) -> int:
        """SIGTERM, the exit code (after a SIGKILL if it hangs: -9)."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_billingd(cfg: Path, log: Path, *args: str, timeout_s: float = 30.0) -> Billingd:
    """billingd with ``args`` (e.g. ``--role provisioning``), once it serves RADIUS or runs its worker."""
    ready = _WORKER_READY if "provisioning" in args else _RADIUS_READY
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen([str(BILLINGD), "--config", str(cfg), *args], stdout=out, stderr=out)
    deadline, found = time.monotonic() + timeout_s, None
    while found is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        found = ready.search(log.read_bytes()[offset:])
    if found is None:
        process.kill()
        process.wait()
        raise RuntimeError("billingd did not start:\n" + log.read_text(errors="replace")[-3000:])
    radius = _RADIUS_READY.search(log.read_bytes())
    auth, acct = (int(radius[1]), int(radius[2])) if radius and "provisioning" not in args else (0, 0)
    return Billingd(process, log, auth, acct)


def bras(daemon: Billingd, coa_port: int, subs: list[Subscriber], **overrides: Any) -> BrasSimulator:
    values: dict[str, Any] = dict(
        subscribers=tuple(subs),
        secret=SECRET.encode(),
        auth_port=daemon.auth_port,
        acct_port=daemon.acct_port,
        coa_port=coa_port,
        timeout=1.0,
        retries=3,
        workers=2,
    )
    values.update(overrides)
    return BrasSimulator(BrasConfig(**values))


def subscriber(login: str) -> Subscriber:
    return Subscriber(login, login, "pap")


def online(sim: BrasSimulator, engine: Engine, sub: Subscriber) -> str:
    """Authenticate and start ``sub`` on the simulator; its Acct-Session-Id, once billing has the session.

    Acct-Session-Ids are unique per NAS only while it runs (a new simulator starts its counter
    again), so the session is looked up with the user name too.
    """
    assert sim.authenticate(sub) is Outcome.ACCEPTED
    session = sim.start(sub)
    wait_for(
        engine,
        lambda s: s.scalar(
            select(RadiusSession.id).where(
                RadiusSession.acct_session_id == session.acct_session_id,
                RadiusSession.username == sub.login,
                RadiusSession.status == "open",
            )
        ),
        what=f"{sub.login}'s session in the database",
    )
    return session.acct_session_id


def wait_for(engine: Engine, probe: Callable[[Session], T], *, what: str, timeout_s: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with Session(engine) as s:
            found = probe(s)
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def task_in(state: str | tuple[str, ...], service_id: int) -> Callable[[Session], ProvisioningTask | None]:
    states = (state,) if isinstance(state, str) else state
    return lambda s: s.scalars(
        select(ProvisioningTask)
        .where(ProvisioningTask.service_id == service_id, ProvisioningTask.state.in_(states))
        .order_by(ProvisioningTask.id.desc())
    ).first()


def attempts_of(engine: Engine, task_id: int) -> list[ProvisioningAttempt]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(ProvisioningAttempt)
                .where(ProvisioningAttempt.task_id == task_id)
                .order_by(ProvisioningAttempt.id)
            )
        )


def decide(engine: Engine, service_id: int, event: str, *, reason: str = "customer_request") -> None:
    """An operator's lifecycle decision (block, unblock ...), committed: it writes the outbox task."""
    with Session(engine) as s, s.begin():
        rules = service_lifecycle.rules_for(UTC)
        now = datetime.now(UTC)
        service_lifecycle.apply_event(s, ACTOR, service_id, event, now, reason=reason, rules=rules)


def evaluate_later(engine: Engine, service_id: int, days: int) -> None:
    """The daily evaluation as of ``days`` from now (past a debt's grace period, say)."""
    with Session(engine) as s, s.begin():
        rules = service_lifecycle.rules_for(UTC)
        as_of = datetime.now(UTC) + timedelta(days=days)
        service_lifecycle.evaluate_service(s, ACTOR, service_id, as_of, rules)


def adjust(engine: Engine, service_id: int, amount: str) -> None:
    with Session(engine) as s, s.begin():
        service = s.get(Service, service_id)
        assert service is not None
        from billing.db.customers import Account

        number = s.get(Account, service.account_id).number  # type: ignore[union-attr]
        accounts.adjust(s, ACTOR, number, amount, "goodwill")
