"""The outbox worker: claims provisioning tasks and makes the network follow billing's decisions.

It runs on ``billingd``'s reactor (the asyncio reactor, so asyncio coroutines and Twisted
Deferreds share one loop) and never blocks it: database work runs in a small thread pool, CoA
and Disconnect requests go through the non-blocking :class:`aaa.dynamic_authorization.
DynamicAuthClient`, switch drivers are awaitables (SNMP on the loop, netmiko in a thread pool of
its own). Each pass claims due tasks (:func:`billing.provisioning_outbox.claim`), runs up to
``concurrency`` of them at once, and hands their outcomes to a writer that records many in one
transaction; a finished task frees its claim and lets the account's next task go.

Per task: the plan (:mod:`billing.provisioning_plan`) names a request per target; a CoA that
the NAS refuses is followed by a Disconnect when the NAS's ``coa_nak`` says so (the subscriber
logs in again and gets the new state); every request is an attempt on record. Several workers,
in one process or several, share the table safely (claims, leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from ipaddress import IPv4Address, ip_address
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from twisted.logger import Logger

from aaa.dictionary import RadiusDictionary, load_dictionaries
from aaa.dynamic_authorization import (
    Answer,
    DynamicAuthClient,
    DynamicAuthResult,
    DynamicAuthTarget,
    session_identity,
)
from aaa.settings import AaaSettings, NasClient
from aaa.vendor_profiles import Authorization, SpeedProfile, VendorRenderer, renderer_for
from billing import provisioning_outbox as outbox
from billing.provisioning_outbox import AttemptRecord, Finished, PortRef, Work
from billing.provisioning_plan import (
    SESSION_CONTEXT_NOT_FOUND,
    Step,
    StepKind,
    due_at,
    steps_for,
    verdict,
)
from billing.provisioning_settings import ProvisioningSettings
from billing.switch_access import switch_access
from nms_adapters.exporters import ExportError
from nms_adapters.switches import SwitchDriver, SwitchUnreachable, driver_for

__all__ = ["ProvisioningWorker", "default_worker_name"]

_log = Logger(namespace="provisioning")
T = TypeVar("T")


def default_worker_name() -> str:
    """``host:pid``: unique among live workers, readable in ``claimed_by`` and attempts."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


def _now() -> datetime:
    return datetime.now(UTC)


class ProvisioningWorker:
    """Runs the outbox: ``start()`` on a running reactor, ``stop()`` to finish in-flight tasks and end.

    With ``reconcile_rules`` (the lifecycle rules) and ``reconcile_interval_s`` set, it also runs the
    network reconciler periodically (:func:`billing.network_reconcile.reconcile_periodically`).
    """

    def __init__(
        self,
        reactor: Any,
        engine: Engine,
        settings: ProvisioningSettings,
        aaa: AaaSettings,
        *,
        name: str | None = None,
        dictionary: RadiusDictionary | None = None,
        exporters: Sequence[Any] = (),
        reconcile_rules: Any = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.name = name or default_worker_name()
        self.settings = settings
        self.aaa = aaa
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._dictionary = dictionary or load_dictionaries(aaa.dictionary_dir, aaa.extra_dictionaries)
        self._renderers: dict[str, VendorRenderer] = {}
        self._nas_by_address: dict[str, NasClient | None] = {}
        self._db = ThreadPoolExecutor(max_workers=3, thread_name_prefix="provisioning-db")
        self._cli = ThreadPoolExecutor(max_workers=8, thread_name_prefix="provisioning-cli")
        self._coa = DynamicAuthClient(
            reactor,
            self._dictionary,
            timeout_s=settings.coa_timeout_s,
            retries=settings.coa_retries,
            bind=settings.coa_source,
        )
        self._drivers: dict[str, SwitchDriver] = {}
        self._switch_locks: dict[str, asyncio.Lock] = {}
        self._exporters = tuple(exporters)
        self._engine = engine
        self._reconcile_rules = reconcile_rules
        self._walled_garden = SpeedProfile(
            "walled-garden", aaa.walled_garden.down_kbps, aaa.walled_garden.up_kbps
        )
        self._in_flight: set[asyncio.Task[None]] = set()
        self._finished: list[Finished] = []
        self._room = asyncio.Event()
        self._next_supersede = 0.0
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Any:
        """Start the claim loop (and the export loop when exporters are configured)."""
        from twisted.internet.defer import succeed

        self._loops.append(asyncio.ensure_future(self._claim_loop()))
        if self._exporters:
            self._loops.append(asyncio.ensure_future(self._export_loop()))
        if self._reconcile_rules is not None and self.settings.reconcile_interval_s > 0:
            from billing.network_reconcile import reconcile_periodically

            periodic = reconcile_periodically(self._engine, self.settings, self.aaa, self._reconcile_rules)
            self._loops.append(asyncio.ensure_future(periodic))
        _log.info("provisioning worker {name} started", name=self.name)
        return succeed(None)

    def stop(self) -> Any:
        """Stop claiming, let in-flight tasks finish and be recorded, then release everything."""
        from twisted.internet.defer import Deferred

        return Deferred.fromFuture(asyncio.ensure_future(self.aclose()))

    async def aclose(self) -> None:
        self._stopping = True
        self._room.set()
        for loop_task in self._loops:
            loop_task.cancel()
        for loop_task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._flush()
        for driver in self._drivers.values():
            with contextlib.suppress(Exception):
                await driver.close()
        for exporter in self._exporters:
            close = getattr(exporter, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        await self._coa.close().asFuture(asyncio.get_running_loop())
        self._db.shutdown(wait=True)
        self._cli.shutdown(wait=True)

    # ------------------------------------------------------------------ claiming

    async def _claim_loop(self) -> None:
        flusher = asyncio.ensure_future(self._flush_loop())
        try:
            while not self._stopping:
                room = self.settings.concurrency - len(self._in_flight)
                claimed = 0
                if room > 0:
                    try:
                        claimed = await self._claim_once(min(room, self.settings.batch))
                    except Exception:
                        _log.failure("provisioning: claiming tasks failed; trying again")
                if claimed == 0 or len(self._in_flight) >= self.settings.concurrency:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), self.settings.poll_s)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def _claim_once(self, limit: int) -> int:
        supersede_now = time.monotonic() >= self._next_supersede
        if supersede_now:  # a pass over every pending task: once a second is enough
            self._next_supersede = time.monotonic() + 1.0

        def claim(session: Session) -> list[Work]:
            now = self._clock()
            if supersede_now:
                outbox.supersede(session, now)
            return outbox.claim(session, self.name, now, self.settings.lease_s, limit)

        works = await self._in_db(claim)
        for work in works:
            task = asyncio.ensure_future(self._execute(work))
            self._in_flight.add(task)
            task.add_done_callback(self._task_done)
        return len(works)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Free the slot; once half the slots are free, claim more while the rest still run."""
        self._in_flight.discard(task)
        if len(self._in_flight) <= self.settings.concurrency // 2:
            self._room.set()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            try:
                await self._flush()
            except Exception:
                _log.failure("provisioning: recording outcomes failed; keeping them for the next try")

    async def _flush(self) -> None:
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        try:
            await self._in_db(lambda session: outbox.record(session, self.name, batch, self._clock()))
        except Exception:
            self._finished[:0] = batch
            raise
        self._room.set()

    async def _in_db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with self._sessions.begin() as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self._db, run)

    # ------------------------------------------------------------------ one task

    async def _execute(self, work: Work) -> None:
        try:
            steps = steps_for(work, self._walled_garden)
            outcomes = await asyncio.gather(*(self._run_step(step) for step in steps))
        except Exception as exc:  # a bug, or a target we cannot even address: an error, tried again
            _log.failure("provisioning: task {task} failed unexpectedly", task=work.task_id)
            detail = f"{type(exc).__name__}: {exc}"
            outcomes = [[AttemptRecord(f"service:{work.service_id}", "none", "-", "error", self._clock(), 0,
                                       detail=detail)]]  # fmt: skip
        records = tuple(r for step_records in outcomes for r in step_records) or (
            AttemptRecord(f"service:{work.service_id}", "none", "-", "ok", self._clock(), 0),
        )
        v = verdict(
            outcomes,
            work.attempt,
            self.settings.max_attempts,
            self.settings.backoff_s,
            self.settings.backoff_max_s,
        )
        # What the network now confirms for the service; a session task (quota) speaks for one
        # session only, so it confirms nothing service-wide.
        network: str | None = "deny" if work.release else work.network
        profile = (
            work.profile.name
            if network == "allow" and work.profile
            else (self._walled_garden.name if network == "walled_garden" else None)
        )
        if work.session_key is not None:
            network, profile = None, None
        self._finished.append(
            Finished(
                work.task_id,
                v.state,
                v.outcome,
                records,
                due_at(self._clock(), v),
                work.service_id,
                network,
                profile,
            )
        )

    async def _run_step(self, step: Step) -> list[AttemptRecord]:
        if step.session is not None:
            return await self._session_step(step)
        return [await self._port_step(step)]

    # ------------------------------------------------------------------ RADIUS sessions

    async def _session_step(self, step: Step) -> list[AttemptRecord]:
        session = step.session
        assert session is not None
        nas = self._nas_for(session.nas_address)
        target_name = f"nas:? {session.nas_address} session {session.acct_session_id}"
        if nas is None:
            return [
                AttemptRecord(
                    target_name,
                    step.kind.value,
                    "-",
                    "error",
                    self._clock(),
                    0,
                    detail=f"no [[aaa.nas]] covers {session.nas_address}",
                )
            ]
        target = DynamicAuthTarget(nas.name, session.nas_address, nas.coa_port, nas.secret)
        label = f"nas:{nas.name} {session.nas_address}:{nas.coa_port} session {session.acct_session_id}"
        identity = self._identity(session)
        if step.kind is StepKind.DISCONNECT:
            return [await self._send("disconnect", target, label, identity)]
        assert step.profile is not None
        change = self._renderer(nas).render(Authorization(profile=step.profile))
        first = await self._send("coa", target, label, (*identity, *change))
        if first.result != "nak" or getattr(nas, "coa_nak", "disconnect") != "disconnect":
            return [first]
        return [first, await self._send("disconnect", target, label, identity)]

    def _nas_for(self, address: str) -> NasClient | None:
        """The configured NAS covering ``address``, looked up once per address (a few NASes, many tasks)."""
        if address not in self._nas_by_address:
            self._nas_by_address[address] = self.aaa.client_for(address)
        return self._nas_by_address[address]

    def _identity(self, session: outbox.SessionRef) -> tuple[Any, ...]:
        framed = _ipv4(session.framed_ip)
        nas_ip = _ipv4(session.nas_address)
        return session_identity(
            self._dictionary,
            acct_session_id=session.acct_session_id,
            user_name=session.username,
            framed_ip=framed,
            nas_ip=nas_ip,
        )

    def _renderer(self, nas: NasClient) -> VendorRenderer:
        renderer = self._renderers.get(nas.vendor)
        if renderer is None:
            renderer = self._renderers[nas.vendor] = renderer_for(nas.vendor, self._dictionary)
        return renderer

    async def _send(self, kind: str, target: DynamicAuthTarget, label: str, attributes: Any) -> AttemptRecord:
        started = self._clock()
        send = self._coa.coa if kind == "coa" else self._coa.disconnect
        result: DynamicAuthResult = await send(target, attributes).asFuture(asyncio.get_running_loop())
        outcome = result.answer.value
        if result.answer is Answer.NAK and result.error_cause == SESSION_CONTEXT_NOT_FOUND:
            outcome = "gone"
        detail = None if result.sends <= 1 else f"{result.sends} sends"
        return AttemptRecord(
            label,
            kind,
            result.request,
            outcome,
            started,
            round(result.duration_s * 1000),
            result.error_cause,
            detail,
        )

    # ------------------------------------------------------------------ switch ports

    async def _port_step(self, step: Step) -> AttemptRecord:
        port = step.port
        assert port is not None
        started, t0 = self._clock(), time.monotonic()
        label = f"switch:{port.switch} {port.port}"
        request = f"{step.kind.value} {port.port}" + (f" {step.kbps} kbit/s" if step.kbps is not None else "")
        try:
            driver = self._driver(port)
            async with self._switch_locks.setdefault(port.switch, asyncio.Lock()):
                action = {
                    StepKind.BLOCK: lambda: driver.block(port.port),
                    StepKind.UNBLOCK: lambda: driver.unblock(port.port),
                    StepKind.SET_RATE: lambda: driver.set_rate(port.port, step.kbps),
                }[step.kind]
                await asyncio.wait_for(action(), self.settings.switch_timeout_s)
        except Exception as exc:
            took = round((time.monotonic() - t0) * 1000)
            result = "timeout" if isinstance(exc, TimeoutError) else "error"
            if isinstance(exc, TimeoutError | SwitchUnreachable):  # a refusal leaves a usable session
                await self._drop_driver(port.switch)
            return AttemptRecord(
                label, step.kind.value, request, result, started, took, detail=str(exc) or None
            )
        return AttemptRecord(
            label, step.kind.value, request, "ok", started, round((time.monotonic() - t0) * 1000)
        )

    async def _drop_driver(self, switch: str) -> None:
        """Forget a switch's driver (its session may be broken): the next step reconnects."""
        driver = self._drivers.pop(switch, None)
        if driver is not None:
            with contextlib.suppress(Exception):
                await driver.close()

    def _driver(self, port: PortRef) -> SwitchDriver:
        driver = self._drivers.get(port.switch)
        if driver is None:
            driver = self._drivers[port.switch] = driver_for(
                switch_access(port, self.settings), executor=self._cli
            )
        return driver

    # ------------------------------------------------------------------ NMS export

    async def _export_loop(self) -> None:
        while not self._stopping:
            try:
                await self.export_once()
            except Exception:
                _log.failure("provisioning: NMS export failed; trying again")
            await asyncio.sleep(self.settings.export_interval_s)

    async def export_once(self, limit: int = 1000) -> int:
        """Hand finished tasks not yet exported to every exporter; mark them once all took them."""
        events = await self._in_db(lambda session: outbox.unexported(session, limit))
        if not events:
            return 0
        for exporter in self._exporters:
            try:
                await exporter.export(events)
            except ExportError as exc:
                if not exc.permanent:
                    raise  # the whole batch again next time: at least once, receivers key by task_id
                first, last = events[0].task_id, events[-1].task_id
                _log.error(
                    "provisioning: NMS exporter {name} refused tasks {first}..{last} for good ({why});"
                    " they are not offered to it again",
                    name=exc.exporter, first=first, last=last, why=str(exc),
                )  # fmt: skip
        ids = [e.task_id for e in events]
        await self._in_db(lambda session: outbox.mark_exported(session, ids, self._clock()))
        return len(events)


def _ipv4(text: str | None) -> IPv4Address | None:
    if not text:
        return None
    try:
        address = ip_address(text)
    except ValueError:
        return None
    return address if isinstance(address, IPv4Address) else None
