"""The composition root of the RADIUS server: builds the parts and runs them on the reactor.

Started once (:meth:`AaaService.start`): dictionaries, the subscriber snapshot, the accounting
store and its group commit, both listeners, freshness (LISTEN/NOTIFY on PostgreSQL, polling on
SQLite), journal replay, the session reaper, gauges, the metrics endpoint, and systemd's
readiness and watchdog. :meth:`reload` swaps NAS clients and dictionaries all or nothing;
:meth:`stop` stops listening, then waits for accounting in flight to become durable.
Every blocking call (database, journal) runs in one bounded thread pool.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client.twisted import MetricsResource
from sqlalchemy import Engine, func, select
from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from aaa import schema, systemd
from aaa.accounting import AccountingRecord, BadAccounting, parse_accounting
from aaa.accounting_store import AccountingStore
from aaa.authorize import Directory
from aaa.codec import RadiusPacket
from aaa.dictionary import RadiusDictionary, load_dictionaries
from aaa.duplicates import ReplyCache
from aaa.group_commit import GroupCommitter
from aaa.handlers import RadiusHandler
from aaa.identification import PortKey
from aaa.journal import Journal
from aaa.metrics import AaaMetrics
from aaa.protocol import RadiusProtocol
from aaa.quota_gate import QuotaGate
from aaa.settings import AaaSettings, NasClient
from aaa.snapshot import (
    MAX_PATCH_KEYS,
    Changes,
    Snapshot,
    SnapshotListener,
    load_snapshot,
    poll_changes,
    refresh,
)

CLASS = 25
_SERVICE_CLASS = re.compile(rb"^svc:(\d{1,18})$")
_REPLAY_EVERY_S = 5.0
_REAP_EVERY_S = 60.0
_GAUGES_EVERY_S = 1.0
_FULL_RELOAD_POLLED_S = 300.0
_FULL_RELOAD_PUSHED_S = 3600.0


def _metrics_root(metrics: AaaMetrics) -> Resource:
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry=metrics.registry))
    return root


class _Nobody:
    """The directory in degraded "reject" mode: nobody is known."""

    def by_login(self, login: str) -> None:
        return None

    def by_mac(self, mac: str) -> None:
        return None

    def by_port(self, port: PortKey) -> None:
        return None


class AaaService:
    """Everything ``billingd`` runs for RADIUS; see the module docstring."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        settings: AaaSettings,
        engine: Engine,
        *,
        listen_conninfo: str | None = None,
        quota_gate: QuotaGate | None = None,
        after_reap: Callable[[datetime], int] | None = None,
    ) -> None:
        """``quota_gate``: prepaid quota, told of each accounting group (``aaa.quota_gate``).

        ``after_reap``: run in the thread pool after each reaper pass with the pass's time;
        returns how many things it did (logged). ``billingd`` gives it the release of the quota
        holds of sessions closed without a Stop (by the reaper or Accounting-On/Off), which the
        quota gate never sees; ``aaa`` cannot import ``billing`` itself.
        """
        self.reactor = reactor
        self.quota_gate = quota_gate
        self.after_reap = after_reap
        self.settings = settings
        self.engine = engine
        self.listen_conninfo = listen_conninfo
        self.metrics = AaaMetrics()
        self.pool = ThreadPool(minthreads=1, maxthreads=8, name="billingd-db")
        self.snapshot: Snapshot | None = None
        self.snapshot_at = datetime.now(UTC)
        self.degraded = False
        self.protocols: dict[str, RadiusProtocol] = {}
        self.ports: dict[str, Any] = {}
        self._loops: list[LoopingCall] = []
        self._listener: SnapshotListener | None = None
        self._directory: Directory = _Nobody()
        self._waiting_first: Deferred[Snapshot] | None = None
        self.journal: Journal | None = None
        self.store: AccountingStore | None = None
        self.committer: GroupCommitter[AccountingRecord] | None = None

    # ------------------------------------------------------------------ life cycle

    @inlineCallbacks
    def start(self) -> Any:
        """Load what decisions need, then listen; fires once ready (and tells systemd)."""
        self.pool.start()
        dictionary = load_dictionaries(self.settings.dictionary_dir, self.settings.extra_dictionaries)
        self.journal = Journal(self.settings.journal_dir)
        self.store = AccountingStore(self.engine, self.journal, quota_gate=self.quota_gate)
        self.committer = GroupCommitter(self.reactor, self.pool, self.store.store)
        snapshot = yield self._first_snapshot()
        handlers = self._handlers(self.settings, dictionary)
        for kind, port in (
            ("auth", self.settings.listen.auth_port),
            ("acct", self.settings.listen.acct_port),
        ):
            protocol = RadiusProtocol(
                kind,
                _remembered(self.settings.client_for),
                handlers[kind],
                ReplyCache(self.reactor.seconds, self.settings.reply_cache_window_s),
                self.metrics,
                self.settings.listen.receive_buffer_bytes,
            )
            self.protocols[kind] = protocol
            self.ports[kind] = self.reactor.listenUDP(port, protocol, interface=self.settings.listen.address)
        self.ports["metrics"] = self.reactor.listenTCP(
            self.settings.metrics_port,
            Site(_metrics_root(self.metrics)),
            interface=self.settings.metrics_address,
        )
        self._every(_REPLAY_EVERY_S, self._replay)
        # A safety net for what no NOTIFY reports; polling databases (SQLite) need it more often.
        pushed = self._listener is not None
        self._every(_FULL_RELOAD_PUSHED_S if pushed else _FULL_RELOAD_POLLED_S, self._full_reload)
        self._every(_REAP_EVERY_S, self._reap)
        self._every(_GAUGES_EVERY_S, self._gauges)
        watchdog = systemd.watchdog_interval_s()
        if watchdog:
            self._every(watchdog, lambda: systemd.notify("WATCHDOG=1"))
        systemd.notify("READY=1", f"STATUS=serving {len(snapshot)} subscribers")
        self.log.info(
            "RADIUS listening on {address} auth {auth} acct {acct} metrics {metrics}; "
            "{n} subscribers; {nas} NAS clients",
            address=self.settings.listen.address,
            auth=self.port_number("auth"),
            acct=self.port_number("acct"),
            metrics=self.port_number("metrics"),
            n=len(snapshot),
            nas=len(self.settings.nas),
        )

    def port_number(self, kind: str) -> int:
        """The bound UDP port of a listener (useful when configured as 0)."""
        return int(self.ports[kind].getHost().port)

    def reload(self, settings: AaaSettings) -> None:
        """New NAS clients and dictionaries, all or nothing: on any error the old ones stay."""
        try:
            dictionary = load_dictionaries(settings.dictionary_dir, settings.extra_dictionaries)
            handlers = self._handlers(settings, dictionary)
        except Exception as exc:
            self.log.error("reload refused, keeping the running configuration: {error}", error=exc)
            return
        for kind, protocol in self.protocols.items():
            protocol.replace(_remembered(settings.client_for), handlers[kind])
        self.settings = settings
        self.log.info("reloaded: {nas} NAS clients, dictionaries from {dir}", nas=len(settings.nas),
                      dir=settings.dictionary_dir)  # fmt: skip

    @inlineCallbacks
    def stop(self) -> Any:
        """Stop reading, answer what is in flight once durable, close the ports, stop workers."""
        systemd.notify("STOPPING=1")
        try:
            for kind in self.protocols:
                self.ports[kind].stopReading()  # no new requests; replies can still be sent
            if self.committer is not None:
                yield self.committer.drained()
            while any(p.in_flight for p in self.protocols.values()):
                yield deferLater(self.reactor, 0.01, lambda: None)
            for port in self.ports.values():
                yield port.stopListening()
            for loop in self._loops:
                if loop.running:
                    loop.stop()
            if self._listener is not None:
                yield self._in_pool(self._listener.stop)
            self.log.info("stopped; accounting drained")
        except Exception:
            self.log.failure("error while stopping")
        finally:
            if self.journal is not None:
                self.journal.close()
            self.pool.stop()

    # ------------------------------------------------------------------ requests

    def _handlers(self, settings: AaaSettings, dictionary: RadiusDictionary) -> dict[str, RadiusHandler]:
        return {
            "auth": RadiusHandler(
                "auth", settings, dictionary, self._current_directory, None, self.metrics, self._open_sessions
            ),
            "acct": RadiusHandler(
                "acct", settings, dictionary, self._current_directory, self._account, self.metrics
            ),
        }

    def _open_sessions(self, service_id: int) -> Deferred[int]:
        def count() -> int:
            query = (
                select(func.count())
                .select_from(schema.radius_sessions)
                .where(
                    schema.radius_sessions.c.service_id == service_id,
                    schema.radius_sessions.c.status == "open",
                )
            )
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return self._in_pool(count)

    def _current_directory(self) -> Directory:
        return self._directory

    def _account(self, packet: RadiusPacket, client: NasClient, source: str) -> Deferred[None]:
        try:
            record = parse_accounting(packet, source_address=source, received_at=datetime.now(UTC))
        except BadAccounting as exc:
            self.metrics.drops.labels(f"accounting_{exc.reason}").inc()
            return fail(exc)
        service_class = packet.get(CLASS)
        match = _SERVICE_CLASS.match(service_class) if service_class else None
        if match:
            record = replace(record, service_id=int(match[1]))
        assert self.committer is not None
        return self.committer.submit(record)

    # ------------------------------------------------------------------ freshness

    def _use(self, snapshot: Snapshot, *, loaded: bool = False) -> None:
        """Serve ``snapshot``; ``loaded``: it was loaded whole (not patched from the one in use)."""
        if loaded:
            # A whole snapshot is hundreds of thousands of long-lived objects: keep the cyclic
            # garbage collector from walking them on every full collection (pauses of tens of ms
            # on the reactor). Only here, not at each patch: freezing moves every tracked object
            # to the permanent generation, garbage of requests in flight included, and freezing
            # at each patch (one per NOTIFY batch: each payment) kept ~30 KB of the payment
            # API's garbage per payment forever. Unreferenced old snapshots are still freed by
            # reference counting; a patch's few new objects are collected as usual.
            gc.freeze()
        self.snapshot = snapshot
        self.snapshot_at = datetime.now(UTC)
        self._set_degraded(False)
        first, self._waiting_first = self._waiting_first, None
        if first is not None:
            first.callback(snapshot)

    def _set_degraded(self, degraded: bool) -> None:
        if degraded != self.degraded:
            self.degraded = degraded
            self.log.warn("degraded mode {state}: {mode}", state="on" if degraded else "off",
                          mode=self.settings.degraded_mode)  # fmt: skip
        if self.snapshot is None or (degraded and self.settings.degraded_mode == "reject"):
            self._directory = _Nobody()
        else:
            self._directory = self.snapshot.directory(login_case_sensitive=True)

    def _first_snapshot(self) -> Deferred[Snapshot]:
        """PostgreSQL: LISTEN first, and the listener's first (full) batch is the load, so no
        change can slip between loading and listening. SQLite: load, then poll."""
        if self.engine.dialect.name == "postgresql" and self.listen_conninfo:
            first: Deferred[Snapshot] = Deferred()
            self._waiting_first = first
            self._listener = SnapshotListener(self.listen_conninfo, self._changes_in_thread)
            self._listener.start()
            self._every(_GAUGES_EVERY_S, self._watch_listener)
            return first
        loaded = self._in_pool(load_snapshot, self.engine)
        loaded.addCallback(self._used)
        self._every(self.settings.snapshot_poll_s, self._poll)
        return loaded

    def _used(self, snapshot: Snapshot) -> Snapshot:
        self._use(snapshot, loaded=True)
        return snapshot

    def _changes_in_thread(self, changes: Changes) -> None:
        """Runs in the listener's thread: refresh there, swap on the reactor."""
        current = self.snapshot
        updated = load_snapshot(self.engine) if current is None else refresh(self.engine, current, changes)
        loaded = current is None or changes.full or changes.size > MAX_PATCH_KEYS  # as refresh decides
        self.reactor.callFromThread(self._use, updated, loaded=loaded)

    def _full_reload(self) -> Deferred[None]:
        """A safety net: changes no trigger reports (a customer's category) show up here."""
        reloaded = self._in_pool(load_snapshot, self.engine)
        reloaded.addCallbacks(self._used, self._poll_failed)
        return reloaded

    def _watch_listener(self) -> None:
        if self._listener is not None and not self._listener.connected:
            self._set_degraded(True)

    def _poll(self) -> Deferred[None]:
        assert self.snapshot is not None
        since, current = self.snapshot_at, self.snapshot

        def poll() -> Snapshot:
            changes = poll_changes(self.engine, since, known=current)
            return refresh(self.engine, current, changes) if changes else current

        polled = self._in_pool(poll)
        polled.addCallbacks(self._use, self._poll_failed)
        return polled

    def _poll_failed(self, failure: Any) -> None:
        self.log.warn("snapshot refresh failed: {error}", error=failure.getErrorMessage())
        self._set_degraded(True)

    # ------------------------------------------------------------------ housekeeping

    def _replay(self) -> Deferred[Any] | None:
        if self.journal is None or self.store is None or not self.journal.depth():
            return None
        replayed = self._in_pool(self.store.replay)
        replayed.addCallbacks(
            lambda n: n and self.log.info("replayed {n} journaled accounting records", n=n),
            lambda f: self.log.warn("journal replay failed: {error}", error=f.getErrorMessage()),
        )
        return replayed

    def _reap(self) -> Deferred[Any]:
        """Close stale sessions, then run ``after_reap`` (also when reaping failed: sessions
        closed by Accounting-On/Off need it all the same)."""
        assert self.store is not None
        now = datetime.now(UTC)
        reaped = self._in_pool(
            self.store.reap,
            now,
            self.settings.reaper_factor,
            default_interval_s=self.settings.interim_interval_s,
        )
        reaped.addErrback(lambda f: self.log.warn("reaper failed: {error}", error=f.getErrorMessage()))
        if self.after_reap is not None:
            reaped.addCallback(lambda _closed: self._after_reap(now))
        return reaped

    def _after_reap(self, now: datetime) -> Deferred[Any]:
        assert self.after_reap is not None
        done = self._in_pool(self.after_reap, now)
        done.addCallbacks(
            lambda n: n and self.log.info("released the quota holds of {n} closed sessions", n=n),
            lambda f: self.log.warn("releasing quota holds after the reaper failed: {error}",
                                    error=f.getErrorMessage()),
        )  # fmt: skip
        return done

    def _gauges(self) -> None:
        self.metrics.snapshot_age.set((datetime.now(UTC) - self.snapshot_at).total_seconds())
        self.metrics.snapshot_size.set(len(self.snapshot) if self.snapshot is not None else 0)
        self.metrics.degraded.set(1 if self.degraded else 0)
        if self.journal is not None:
            self.metrics.journal_depth.set(self.journal.depth())

    def _every(self, seconds: float, call: Any) -> None:
        loop = LoopingCall(call)
        loop.clock = self.reactor
        loop.start(seconds, now=False).addErrback(lambda f: self.log.failure("periodic task failed", f))
        self._loops.append(loop)

    def _in_pool(self, f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.pool, f, *args, **kwargs)


def _remembered(client_for: Callable[[str], NasClient | None]) -> Callable[[str], NasClient | None]:
    """``client_for`` with its answers remembered per source address (bounded).

    Matching an address against every NAS network costs an ``ip_address`` parse and a scan per
    datagram; a BRAS sends from one or a few addresses. A new settings object (a reload) gets a
    new memory. Bounded, so a flood from spoofed sources cannot grow it without limit.
    """
    return functools.lru_cache(maxsize=65_536)(client_for)
