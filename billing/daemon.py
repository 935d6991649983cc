"""``billingd``: the daemon. Reads the config, installs the asyncio reactor, runs the services.

It serves the RADIUS server (``aaa.service``), the payment API when the config names a bank
(``billing.payment_web``: the banks' SOAP API, the agents' check/pay) and the provisioning
worker when ``[provisioning] worker`` is set (``billing.provisioning_worker``: CoA/Disconnect,
switch ports, NMS exports); ``--role`` runs one of them alone.
Signals: SIGHUP re-reads the config and reloads NAS clients and dictionaries (all or nothing; a
bad file is logged and the running configuration stays); SIGTERM and SIGINT stop listening, let
accounting in flight become durable, let payments in flight finish, then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from pathlib import Path
from typing import Any

GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic collector's thresholds for the daemon (CPython's default is 700, 10, 10).

Nearly everything a RADIUS request allocates dies by reference counting; with the default, a
young collection ran every 700 allocations (a few requests), and older generations with all
the long-lived state (reply caches, pools) were walked often enough to cost ~100 µs per
accounting record in long runs. Measured with ``bench/radius.py`` (8-s phases): accounting
2.1-3.0k records/s at 300-440 µs of CPU each with the default, 4.0-4.4k at 186-204 µs with
these, about the same as with the collector off. Cycles are still collected.
"""


ROLES = ("all", "aaa", "payments", "provisioning")
"""What one billingd process serves (``--role``): the payment API and the provisioning worker may
run as processes of their own."""


def _install_reactor() -> Any:
    """The asyncio reactor, installed before anything imports ``twisted.internet.reactor``."""
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor


def _logging(level: str, form: str) -> None:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        jsonFileLogObserver,
        textFileLogObserver,
    )

    observer = jsonFileLogObserver(sys.stdout) if form == "json" else textFileLogObserver(sys.stdout)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(observer, [predicate])], redirectStandardIO=False)


def _listen_conninfo(url: str) -> str | None:
    """A libpq connection string for LISTEN, from a SQLAlchemy PostgreSQL URL (else None)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _quota_gate(config: Any) -> Any:
    """Prepaid quota on accounting: metered prepaid tariffs from the stored catalog."""
    from billing.catalog import load_stored_catalog
    from billing.quota import DEFAULT_QUOTA_UNIT, CatalogPlans, PrepaidQuotaGate

    return PrepaidQuotaGate(CatalogPlans(load_stored_catalog, unit=DEFAULT_QUOTA_UNIT, tz=config.isp.tzinfo))


def _release_holds(engine: Any) -> Any:
    """After each reaper pass: free the quota holds of sessions closed without a Stop."""
    from functools import partial

    from billing.quota import release_holds_of_closed_sessions

    return partial(release_holds_of_closed_sessions, engine)


def _payment_api(reactor: Any, config: Any, url: str) -> tuple[Any, Any]:
    """The payment API (``billing.payment_web``: SOAP and check/pay) and the engine of its own it uses.

    Its own engine, sized to its thread pool, so a burst of payments never waits for a
    connection the RADIUS accounting holds, nor the other way round.
    """
    from billing.db.engine import make_engine
    from billing.payment_gateway import PaymentGateway
    from billing.payment_web import PaymentWebService

    engine = make_engine(
        url,
        pool_size=config.payments.threads,
        statement_timeout_ms=config.database.statement_timeout_ms,
        pre_ping=True,
    )
    from billing.payment_checkpay import checkpay_resource

    gateway = PaymentGateway(engine, config)
    gateway.start_group_commit()  # closed by PaymentWebService.stop, after the last request
    web = PaymentWebService(reactor, config.payments, gateway)  # the banks' SOAP API at /payments
    web.mount(b"checkpay", checkpay_resource(gateway, reactor, web.pool))  # the agents' check/pay
    return web, engine


def _provisioning_worker(reactor: Any, config: Any, engine: Any) -> Any:
    """The outbox worker, with an exporter per ``[[provisioning.nms]]``."""
    from billing.provisioning_worker import ProvisioningWorker
    from billing.service_lifecycle import rules_for
    from nms_adapters.exporters import exporter_for

    exporters = [exporter_for(settings) for settings in config.provisioning.nms]
    rules = rules_for(config.isp.tzinfo)
    return ProvisioningWorker(
        reactor, engine, config.provisioning, config.aaa, exporters=exporters, reconcile_rules=rules
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billingd", description=__doc__)
    parser.add_argument(
        "--config", type=Path, help="config file (default: $BILLING_CONFIG, /etc/billing/...)"
    )
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="what this process serves: all (default), aaa (RADIUS only), payments (the payment API"
        " only: run it as a process of its own, e.g. on another host or user) or provisioning (the"
        " outbox worker only; several may run)",
    )
    args = parser.parse_args(argv)
    reactor = _install_reactor()
    gc.set_threshold(*GC_THRESHOLDS)

    from billing.config import ConfigError, default_config_path, load_config
    from billing.db.engine import make_engine

    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"billingd: bad configuration:\n{exc}", file=sys.stderr)
        return 1
    _logging(config.logging.level, config.logging.format)

    from twisted.logger import Logger

    from aaa.service import AaaService

    log = Logger(namespace="billingd")
    url = config.database.sqlalchemy_url()
    engine = make_engine(
        url,
        pool_size=config.database.pool_size,
        statement_timeout_ms=config.database.statement_timeout_ms,
        pre_ping=True,  # the database may restart under a long-running daemon
    )
    service = None
    if args.role in ("all", "aaa"):
        service = AaaService(
            reactor,
            config.aaa,
            engine,
            listen_conninfo=_listen_conninfo(url),
            quota_gate=_quota_gate(config),
            after_reap=_release_holds(engine),
        )
    # The payment API runs when the config names at least one bank ([[payments.bank]]).
    payment_api, payment_engine = None, None
    if args.role in ("all", "payments"):
        if config.payments.banks:
            payment_api, payment_engine = _payment_api(reactor, config, url)
        elif args.role == "payments":
            print("billingd: --role payments: the config names no bank ([[payments.bank]])", file=sys.stderr)
            return 1
    worker = None
    if args.role == "provisioning" or (args.role == "all" and config.provisioning.worker):
        worker = _provisioning_worker(reactor, config, engine)
    outcome = {"code": 0}

    def started_failed(failure: Any) -> None:
        log.failure("billingd could not start", failure)
        outcome["code"] = 1
        reactor.stop()

    def reload() -> None:
        try:
            fresh = load_config(path)
        except ConfigError as exc:
            log.error("SIGHUP: config not reloaded, keeping the running one:\n{problems}", problems=str(exc))
            return
        if service is not None:
            service.reload(fresh.aaa)

    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(reload))
    if service is not None:
        aaa = service
        reactor.addSystemEventTrigger("before", "shutdown", aaa.stop)
        reactor.callWhenRunning(lambda: aaa.start().addErrback(started_failed))
    if payment_api is not None:
        reactor.addSystemEventTrigger("before", "shutdown", payment_api.stop)
        reactor.callWhenRunning(lambda: payment_api.start().addErrback(started_failed))
    if worker is not None:
        provisioning = worker
        reactor.addSystemEventTrigger("before", "shutdown", provisioning.stop)
        reactor.callWhenRunning(lambda: provisioning.start().addErrback(started_failed))
    reactor.run()
    engine.dispose()
    if payment_engine is not None:
        payment_engine.dispose()
    return outcome["code"]


if __name__ == "__main__":
    sys.exit(main())
