"""The payment API's web server: ``twisted.web`` on billingd's reactor, TLS, and plain HTTP on loopback.

What: :class:`PaymentWebService` serves the banks' SOAP API (``billing.payment_soap``) at
``/payments`` (its WSDL at ``/payments?wsdl``) through twisted.web's WSGI adapter, in a thread
pool of its own (``[payments] threads``; the gateway blocks on the database there, never on the
reactor). It listens with TLS when ``tls_certificate`` and ``tls_private_key`` are configured
(PEM; the certificate file may carry the intermediate chain after the server's certificate), and
with plain HTTP when ``plain_http`` is set, which the config allows only on a loopback
``listen_address`` (development, the demo). Other protocols of the payment API mount their
resource next to it before :meth:`~PaymentWebService.start`, e.g. the payment agents' check/pay
at ``/checkpay``: ``web.mount(b"checkpay", resource)``; a resource that blocks should use
``web.pool`` through ``deferToThreadPool``.

A POST without an ``Authorization`` header gets ``401`` with a ``WWW-Authenticate: Basic``
challenge (SOAP stacks such as .NET's send credentials only when challenged); a request with
credentials goes to the gateway, which decides and audits. Started and stopped like
``aaa.service.AaaService``: :meth:`~PaymentWebService.stop` closes the listeners, waits for the
requests in the pool to finish (a few seconds at most), then stops the pool.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import ssl
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.wsgi import WSGIResource

from billing.payment_soap import MAX_REQUEST_BYTES, wsgi_application

if TYPE_CHECKING:
    from billing.payment_gateway import PaymentGateway
    from billing.payment_settings import PaymentSettings

REQUEST_TIMEOUT_S = 60
"""An HTTP connection idle this long is closed (twisted.web's default is 12 hours)."""

DRAIN_S = 10.0
"""At shutdown, how long requests already in the pool may take to finish (a payment: milliseconds)."""

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.DOTALL)


class PaymentWebService:
    """The payment API's listeners and WSGI thread pool on billingd's reactor (see the module docstring)."""

    log = Logger(namespace="payments.web")

    def __init__(self, reactor: Any, settings: PaymentSettings, gateway: PaymentGateway) -> None:
        self.reactor = reactor
        self.settings = settings
        self.gateway = gateway
        self.pool = ThreadPool(minthreads=1, maxthreads=settings.threads, name="billingd-payments")
        self.root = Resource()
        wsgi = _challenge_without_credentials(wsgi_application(gateway), self.log)
        self.root.putChild(b"payments", WSGIResource(reactor, self.pool, wsgi))
        self.ports: dict[str, Any] = {}

    def mount(self, name: bytes, resource: Resource) -> None:
        """Serve ``resource`` at ``/<name>`` (before :meth:`start`), e.g. ``b"checkpay"``."""
        self.root.putChild(name, resource)

    def start(self) -> Deferred[None]:
        """Start the pool and listen; fires once listening, fails on a bad certificate or a taken port."""
        return maybeDeferred(self._listen)

    def _listen(self) -> None:
        options = None
        if self.settings.tls:
            assert self.settings.tls_certificate is not None and self.settings.tls_private_key is not None
            options = tls_options(self.settings.tls_certificate, self.settings.tls_private_key)
        site = _QuietSite(self.root, requestFactory=_BoundedRequest, timeout=REQUEST_TIMEOUT_S)
        site.noisy = False
        address = self.settings.listen_address
        self.pool.start()
        if self.settings.plain_http:
            self.ports["http"] = listen_shared(self.reactor, address, self.settings.http_port, site)
        if options is not None:
            tls = TLSMemoryBIOFactory(options, False, site)
            self.ports["tls"] = listen_shared(self.reactor, address, self.settings.tls_port, tls)
        if not self.ports:
            self.log.warn("payment API: neither plain_http nor TLS is configured: not listening")
        self.log.info(
            "payment API listening on {address}: http {http} tls {tls}; banks: {banks}",
            address=address,
            http=self.port_number("http") or "-",
            tls=self.port_number("tls") or "-",
            banks=", ".join(b.code for b in self.settings.banks),
        )

    def _busy(self) -> bool:
        """Whether a request is running in the pool or waiting for a thread."""
        return bool(self.pool.started and (self.pool.working or self.pool.q.qsize()))

    def port_number(self, kind: str) -> int | None:
        """The bound TCP port of the ``http`` or ``tls`` listener (None when it does not run)."""
        port = self.ports.get(kind)
        return int(port.getHost().port) if port is not None else None

    @inlineCallbacks
    def stop(self) -> Any:
        """Stop listening, let requests in the pool finish (at most :data:`DRAIN_S`), stop the pool."""
        try:
            for port in self.ports.values():
                yield port.stopListening()
            # A worker still running writes its reply through the reactor: stopping the pool (it
            # joins the threads) before they are done would block the reactor thread on them.
            until = self.reactor.seconds() + DRAIN_S
            while self._busy() and self.reactor.seconds() < until:
                yield deferLater(self.reactor, 0.05, lambda: None)
            self.log.info("payment API stopped")
        except Exception:
            self.log.failure("error while stopping the payment API")
        finally:
            if self.pool.started:
                self.pool.stop()
            self.gateway.close()  # the group-commit writer, once no worker can submit to it


class _QuietSite(Site):
    """A site without a line per request: at hundreds of payments a second it would drown the log.

    What matters is logged where it is decided: payments made, refusals (also audited), requests
    the schema rejects, 401 challenges, failures.
    """

    def log(self, request: Any) -> None:
        """No access log (see the class docstring)."""


class _BoundedRequest(Request):
    """A request whose body may not exceed :data:`MAX_REQUEST_BYTES`: a larger one (by its
    ``Content-Length`` or as it arrives, chunked) gets ``413`` and the connection is closed, so
    nobody fills the server's memory or temporary files with one request."""

    _too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        """Refuse a declared length over the limit before reading any of the body."""
        if length is not None and length > MAX_REQUEST_BYTES:
            self._refuse_too_large()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Keep the body unless it grew over the limit."""
        self._received += len(data)
        if self._received > MAX_REQUEST_BYTES:
            self._refuse_too_large()
        if not self._too_large:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Process the request, unless it was refused as too large.

        Only check/pay takes HTML forms: SOAP bodies skip twisted's form parsing, whose
        Content-Type parse (the stdlib's e-mail header machinery) cost ~6 % of a payment's CPU.
        """
        self._parsePOSTFormSubmission = path.startswith(b"/checkpay")
        if not self._too_large:
            super().requestReceived(command, path, version)

    def _refuse_too_large(self) -> None:
        if self._too_large:
            return
        self._too_large = True
        PaymentWebService.log.warn(
            "payment API: request body over {limit} bytes from {address}: 413, connection closed",
            limit=MAX_REQUEST_BYTES,
            address=getattr(self.getClientAddress(), "host", "?"),
        )
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        self.channel.loseConnection()


def listen_shared(reactor: Any, address: str, port: int, factory: Any) -> Any:
    """Listen on ``address:port`` with ``SO_REUSEPORT``: several processes may serve one port.

    The payment API is CPU-bound in one Python process (one GIL); running ``billingd --role
    payments`` more than once on the same port (e.g. ``billing-payments@1``, ``@2``) spreads the
    connections over them, the kernel balancing new connections. Linux lets only processes of
    the same user share the port. Port 0 picks a free port for this process alone.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
        return reactor.adoptStreamPort(sock.fileno(), family, factory)
    finally:
        sock.close()  # the reactor holds its own duplicate of the descriptor


def tls_options(certificate: Path, private_key: Path) -> ssl.CertificateOptions:
    """TLS 1.2+ server options from PEM files; the certificate file may hold the chain after the leaf.

    Raises ``OSError`` or ``ValueError``-like errors from OpenSSL when a file is missing, is not PEM
    or the key does not belong to the certificate.
    """
    blocks = _PEM_CERTIFICATE.findall(certificate.read_bytes())
    if not blocks:
        raise ValueError(f"{certificate}: no PEM certificate in it")
    leaf = ssl.PrivateCertificate.loadPEM(private_key.read_bytes() + b"\n" + blocks[0])
    options = ssl.CertificateOptions(
        privateKey=leaf.privateKey.original,
        certificate=leaf.original,
        extraCertChain=[ssl.Certificate.loadPEM(block).original for block in blocks[1:]],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )
    options.getContext()  # builds the OpenSSL context now: a key not matching the certificate fails here
    return options


def _challenge_without_credentials(app: Callable[..., Iterable[bytes]], log: Logger) -> Callable[..., Any]:
    """``app``, except that a POST without an ``Authorization`` header gets a 401 Basic challenge."""
    body = b"HTTP Basic authentication required: user = the bank's code\n"

    def challenged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and not environ.get("HTTP_AUTHORIZATION"):
            log.info("payment API: POST without credentials from {address}: 401 challenge",
                     address=environ.get("REMOTE_ADDR", "?"))  # fmt: skip
            start_response(
                "401 Unauthorized",
                [
                    ("WWW-Authenticate", 'Basic realm="payments", charset="UTF-8"'),
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        return app(environ, start_response)

    return challenged
