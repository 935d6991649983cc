"""NMS simulator: the receiving end of billing's NMS export (REST webhook and SOAP), for tests and demos.

What it serves, on 127.0.0.1 only, one HTTP port:

- ``POST /events``: the REST webhook. It checks ``X-Billing-Timestamp`` / ``X-Billing-Signature``
  with :func:`nms_adapters.export_rest.verify` (the scheme the README documents) and answers 401
  with the reason on a missing or bad signature or a stale timestamp, 400 on a body that is not
  an events document, 411/413 without or over a size, else 200 ``{"accepted": N}``.
  ``GET /events`` lists what was received (JSON), for demos with curl.
- ``/soap``: a spyne service ``ProvisioningEvents`` (SOAP 1.1, document/literal, namespace
  :data:`TNS`) with one operation ``Report(events) -> ReportResult(accepted)``; the WSDL is at
  ``/soap?wsdl``. Requests are validated against the schema (lxml) before they are recorded.
- ``fail_first=N``: the first N event deliveries (POSTs to either endpoint, not WSDL fetches)
  get ``503 Service Unavailable``, to exercise the sender's retries.

Every POST is recorded as an :class:`Attempt` (endpoint, status) and every accepted batch as a
:class:`Delivery`, so a test asserts how many attempts a retry policy made.

Why this shape: wsgiref's server in a thread of its own, one thread per request
(``ThreadingMixIn`` that joins its request threads on close), not twisted.web: the test process
needs no reactor (there is one per process, and it cannot be restarted), and a
:class:`NmsSimulator` used as a context manager stops, joins every thread and closes its socket
on exit. It is a test peer, not a product: no TLS, no persistence.

Programmatic use::

    with NmsSimulator(secret=b"...32 bytes...", fail_first=2) as nms:
        ... export to nms.rest_url / nms.wsdl_url ...
        nms.wait_for_events(3, timeout=5)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nms_adapters.events import NetworkEvent, events_from_json, events_to_json
from nms_adapters.export_rest import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

if TYPE_CHECKING:
    from spyne.server.wsgi import WsgiApplication

__all__ = ["TNS", "Attempt", "Delivery", "NmsSimulator", "add_parser", "run_cli"]

HOST = "127.0.0.1"
TNS = "urn:isp-billing:nms:1"
"""The target namespace of the SOAP service (the contract an NMS implements, README "NMS export")."""
MAX_BODY_BYTES = 16 * 1024 * 1024
Endpoint = Literal["rest", "soap"]
WsgiStart = Callable[..., Any]


@dataclass(frozen=True)
class Attempt:
    """One POST that reached the simulator, and the HTTP status it was answered with."""

    endpoint: Endpoint
    status: int


@dataclass(frozen=True)
class Delivery:
    """One accepted batch of events."""

    endpoint: Endpoint
    events: tuple[NetworkEvent, ...]


# --------------------------------------------------------------------------- the SOAP service


def build_soap_application(record: Callable[[Endpoint, list[NetworkEvent]], None]) -> WsgiApplication:
    """The spyne WSGI application of ``ProvisioningEvents``; each valid ``Report`` calls ``record``."""
    from spyne import Application, Array, ComplexModel, DateTime, Integer, Long, ServiceBase, Unicode, rpc
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication

    logging.getLogger("spyne").setLevel(logging.CRITICAL)  # faults are answered, not logged with tracebacks

    def mandatory(base: Any, **facets: Any) -> Any:
        return base(min_occurs=1, nillable=False, **facets)

    target = Unicode(type_name="Target", min_len=1, max_len=200)
    target.__namespace__ = TNS  # else spyne puts it in a namespace named after its Python module

    class NetworkEventType(ComplexModel):
        """One provisioning event: the fields of :class:`NetworkEvent`, in its order."""

        __namespace__ = TNS
        __type_name__ = "NetworkEvent"
        _type_info = [
            ("task_id", mandatory(Long)),
            ("service_id", mandatory(Long)),
            ("account", Unicode(min_occurs=0, nillable=True)),
            ("action", mandatory(Unicode, min_len=1, max_len=64)),
            ("speed_profile", Unicode(min_occurs=0, nillable=True)),
            ("outcome", mandatory(Unicode, min_len=1, max_len=64)),
            ("at", mandatory(DateTime)),
            ("targets", Array(target, type_name="Targets")),
        ]

    class ReportResult(ComplexModel):
        __namespace__ = TNS
        _type_info = [("accepted", mandatory(Integer))]

    class ProvisioningEvents(ServiceBase):
        @rpc(
            Array(NetworkEventType, type_name="NetworkEvents").customize(min_occurs=1, nillable=False),
            _returns=ReportResult.customize(min_occurs=1, nillable=False),
        )
        def Report(ctx: Any, events: Iterable[Any] | None) -> Any:
            received = [
                NetworkEvent(
                    task_id=e.task_id,
                    service_id=e.service_id,
                    account=e.account,
                    action=e.action,
                    speed_profile=e.speed_profile,
                    outcome=e.outcome,
                    at=e.at,
                    targets=tuple(e.targets or ()),
                )
                for e in events or ()
            ]
            record("soap", received)
            return ReportResult(accepted=len(received))

    app = Application(
        [ProvisioningEvents],
        tns=TNS,
        name="ProvisioningEvents",
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )
    return WsgiApplication(app, max_content_length=MAX_BODY_BYTES)


# --------------------------------------------------------------------------- the HTTP server


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request; ``server_close`` joins those threads."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (tests and demos print what matters); a silent client is dropped."""

    timeout = 10  # seconds a connection may sit without sending: stop() never waits longer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class NmsSimulator:
    """The NMS receiver; see the module docstring. Use it as a context manager."""

    def __init__(
        self,
        *,
        secret: bytes,
        port: int = 0,
        window_s: float = 300.0,
        fail_first: int = 0,
        clock: Callable[[], float] = time.time,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        if fail_first < 0:
            raise ValueError("fail_first must be >= 0")
        self.secret = secret
        self.window_s = window_s
        self.fail_first = fail_first
        self._clock = clock
        self._on_delivery = on_delivery
        self._changed = threading.Condition()
        self._attempts: list[Attempt] = []
        self._deliveries: list[Delivery] = []
        self._soap = build_soap_application(self._record)
        self._server = make_server(HOST, port, self._app, server_class=_Server, handler_class=_QuietHandler)
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.port}/events"

    @property
    def wsdl_url(self) -> str:
        return f"http://{HOST}:{self.port}/soap?wsdl"

    def start(self) -> NmsSimulator:
        """Serve in a thread of its own (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="nms-sim", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wait for requests in progress, close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> NmsSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what was received

    @property
    def attempts(self) -> list[Attempt]:
        with self._changed:
            return list(self._attempts)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._changed:
            return list(self._deliveries)

    @property
    def events(self) -> list[NetworkEvent]:
        return [e for d in self.deliveries for e in d.events]

    def wait_for_events(self, count: int, timeout: float) -> list[NetworkEvent]:
        """The events received once there are at least ``count``; ``TimeoutError`` after ``timeout`` s."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: sum(len(d.events) for d in self._deliveries) >= count, timeout
            ):
                raise TimeoutError(f"{count} events not received within {timeout} s")
        return self.events

    def _record(self, endpoint: Endpoint, events: list[NetworkEvent]) -> None:
        delivery = Delivery(endpoint, tuple(events))
        with self._changed:
            self._deliveries.append(delivery)
            self._changed.notify_all()
        if self._on_delivery is not None:
            self._on_delivery(delivery)

    def _begin(self, endpoint: Endpoint) -> tuple[int, bool]:
        """Count a POST: its index, and whether it is one of the first ``fail_first`` (answered 503)."""
        with self._changed:
            self._attempts.append(Attempt(endpoint, 0))  # the status is filled in once answered
            return len(self._attempts) - 1, len(self._attempts) <= self.fail_first

    def _finish(self, index: int, status: int) -> None:
        with self._changed:
            self._attempts[index] = Attempt(self._attempts[index].endpoint, status)
            self._changed.notify_all()

    # -- WSGI

    def _app(self, environ: dict[str, Any], start_response: WsgiStart) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        endpoint: Endpoint | None = "rest" if path == "/events" else "soap" if path == "/soap" else None
        if endpoint is None:
            return _answer(start_response, 404, b"not found\n")
        if method != "POST":
            if endpoint == "rest" and method == "GET":
                return _answer(start_response, 200, events_to_json(self.events), "application/json")
            if endpoint == "soap" and method == "GET":
                return self._soap(environ, start_response)  # the WSDL (never failed on purpose)
            return _answer(start_response, 405, b"method not allowed\n")
        index, fail = self._begin(endpoint)
        if fail:
            self._finish(index, 503)
            return _answer(start_response, 503, b"failing on purpose (fail_first)\n")
        if endpoint == "soap":
            statuses: list[int] = []

            def tracking(status: str, headers: Any, *rest: Any) -> Any:
                statuses.append(int(status.split()[0]))
                return start_response(status, headers, *rest)

            body = b"".join(self._soap(environ, tracking))
            self._finish(index, statuses[0] if statuses else 500)
            return [body]
        status, reply = self._rest(environ)
        self._finish(index, status)
        return _answer(start_response, status, reply, "application/json" if status == 200 else "text/plain")

    def _rest(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return 411, b"Content-Length required\n"
        if not 0 <= length <= MAX_BODY_BYTES:
            return 413, b"body too large\n"
        body = environ["wsgi.input"].read(length)
        reason = verify(
            self.secret,
            environ.get("HTTP_" + TIMESTAMP_HEADER.upper().replace("-", "_")),
            environ.get("HTTP_" + SIGNATURE_HEADER.upper().replace("-", "_")),
            body,
            now=self._clock(),
            window_s=self.window_s,
        )
        if reason is not None:
            return 401, f"{reason}\n".encode()
        try:
            events = events_from_json(body)
        except (ValueError, KeyError, TypeError) as exc:
            return 400, f"not an events document: {exc}\n".encode()
        self._record("rest", events)
        return 200, json.dumps({"accepted": len(events)}).encode()


def _answer(
    start_response: WsgiStart, status: int, body: bytes, content_type: str = "text/plain"
) -> list[bytes]:
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", f"{content_type}; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


# --------------------------------------------------------------------------- billing-sim nms


def add_parser(commands: Any, positive: Callable[[type], Any], port: Callable[[str], int]) -> None:
    """Register the ``nms`` subcommand (``simulators.main``)."""
    nms = commands.add_parser(
        "nms",
        help="an NMS receiving billing's provisioning events: signed REST webhook and SOAP service",
        description="Receive provisioning events on 127.0.0.1: POST /events (JSON, HMAC-SHA256 signed, "
        "checked) and the SOAP service ProvisioningEvents at /soap (WSDL at /soap?wsdl). Prints the URLs, "
        "then each event received; runs for --duration seconds or until interrupted.",
    )
    nms.add_argument("--port", type=port, default=8090, help="TCP port, 0 = any (default %(default)s)")
    nms.add_argument("--secret", required=True, help="the webhook's shared HMAC secret (>= 16 bytes)")
    nms.add_argument(
        "--window",
        type=positive(float),
        default=300.0,
        help="timestamp window, seconds (default %(default)s)",
    )
    nms.add_argument(
        "--fail-first", type=int, default=0, metavar="N", help="answer the first N deliveries 503 (default 0)"
    )
    nms.add_argument(
        "--duration", type=positive(float), default=300.0, help="seconds to run (default %(default)s)"
    )
    nms.set_defaults(handler=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``billing-sim nms`` until ``--duration`` passes, SIGTERM or Ctrl-C; exit 0, or 1 on bad input."""

    def show(delivery: Delivery) -> None:
        for e in delivery.events:
            print(
                f"{delivery.endpoint}: task {e.task_id} service {e.service_id} account {e.account} "
                f"{e.action} {e.speed_profile or '-'} {e.outcome} at {e.at.isoformat()} "
                f"targets {','.join(e.targets) or '-'}",
                flush=True,
            )

    try:
        simulator = NmsSimulator(
            secret=args.secret.encode(),
            port=args.port,
            window_s=args.window,
            fail_first=args.fail_first,
            on_delivery=show,
        )
    except (ValueError, OSError) as exc:
        print(f"billing-sim nms: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        with simulator:
            print(f"nms: rest {simulator.rest_url} soap {simulator.wsdl_url}", flush=True)
            try:
                done.wait(args.duration)
            except KeyboardInterrupt:
                print("interrupted", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    attempts = simulator.attempts
    print(
        f"nms: events {len(simulator.events)}, deliveries {len(simulator.deliveries)}, "
        f"posts {len(attempts)}, refused or failed {sum(a.status != 200 for a in attempts)}",
        flush=True,
    )
    return 0
