"""The banks' SOAP API: Lookup, Pay, Cancel, Status and UploadRegistry over the payment gateway.

What: a spyne application (SOAP 1.1, document/literal wrapped) whose requests lxml validates
against the WSDL's own schema before any code of ours runs: a missing mandatory field, an amount
with three decimals (``1.001``) or a malformed number is spyne's ``Client.SchemaValidationError``
fault. Every request carries ``bank`` (the bank's code), ``timestamp`` (Unix seconds, the bank's
clock) and ``signature`` (hex HMAC-SHA256 over the operation's fields, ``billing.payment_auth``)
besides its own fields; the bank authenticates with HTTP Basic (its code and password) and the
TCP peer's address is the source address. :meth:`PaymentGateway.authorize
<billing.payment_gateway.PaymentGateway.authorize>` decides (and audits every refusal), then
one gateway operation runs. Whatever the gateway refuses becomes a fault ``Client.<Code>``
(``Server.Unavailable`` when the database is down: retry) with a short fixed text per code
(:data:`FAULT_TEXT`); the reason stays in the log and the audit.

Why this shape: spyne's own Twisted transport does not work with current Twisted, so the
application is served through its WSGI adapter inside ``twisted.web`` (``billing.payment_web``);
its methods run in the WSGI thread pool, where the gateway's blocking database calls belong.
The WSDL names the address it was fetched from (spyne would cache the first requester's, Host
header included, for everyone): :class:`PaymentWsgi` builds one per address.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spyne import (
    Application,
    Array,
    Boolean,
    ComplexModel,
    Date,
    DateTime,
    Integer,
    Long,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne import Decimal as XsDecimal
from spyne import const as spyne_const
from spyne.interface.wsdl import Wsdl11
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication
from twisted.logger import Logger

from billing.payment_auth import (
    CENTS,
    cancel_fields,
    lookup_fields,
    pay_fields,
    registry_fields,
    status_fields,
)
from billing.payment_gateway import Credentials, Refused

if TYPE_CHECKING:
    from billing.payment_gateway import PaymentGateway
    from billing.payment_settings import BankSettings
    from billing.payments import PaymentInfo

TNS = "urn:isp-billing:payments:1"
"""The target namespace of the WSDL and of every request and reply element."""

FAULT_TEXT = {
    "AuthFailed": "authentication failed",
    "BadSignature": "bad signature",
    "StaleRequest": "timestamp outside the allowed window",
    "UnknownAccount": "unknown account",
    "AccountClosed": "account closed",
    "InvalidAmount": "invalid amount",
    "Conflict": "transaction id already used with other details",
    "UnknownPayment": "unknown payment",
    "CancelRefused": "payment cannot be cancelled",
    "Invalid": "invalid request",
    "Unavailable": "temporarily unavailable, retry later",
}
"""The fault string of each stable code: fixed text, never the reason (README "Bank SOAP API")."""

MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""The largest request body (a registry of some 50,000 lines); spyne's default is 2 MiB.

Larger registries go in as files (``billing-admin registry import``). ``billing.payment_web``
refuses bigger bodies before reading them.
"""

log = Logger(namespace="payments.soap")

spyne_const.MIN_GC_INTERVAL = math.inf
"""spyne runs a full ``gc.collect()`` when a call ends, at most once a second by default, to close
uploaded files early. We take no file uploads, and in billingd a full collection walks every
long-lived object (the RADIUS snapshot, reply caches) with the GIL held: measured, it stalled every
thread for tens of milliseconds each second (the payment API's p99) and cost ~20 % of its CPU."""


# --------------------------------------------------------------------------- schema types


def _simple(base: Any, name: str, **facets: Any) -> Any:
    """A mandatory (``minOccurs=1``, not nillable) simple type named ``name`` in our namespace."""
    simple = base(min_occurs=1, nillable=False, type_name=name, **facets)
    simple.__namespace__ = TNS
    return simple


BankCode = _simple(Unicode, "BankCode", min_len=1, max_len=32)
TxnId = _simple(Unicode, "TxnId", min_len=1, max_len=100)
AccountNumber = _simple(Unicode, "AccountNumber", min_len=1, max_len=32)
Signature = _simple(Unicode, "Signature", min_len=1, max_len=128)
Reason = _simple(Unicode, "Reason", min_len=1, max_len=300)
Currency = _simple(Unicode, "Currency", min_len=3, max_len=3)
PaymentState = _simple(Unicode, "PaymentState", values=["posted", "cancelled"])
Amount = _simple(XsDecimal, "Amount", fraction_digits=2, total_digits=14, gt=0)
Money = _simple(XsDecimal, "Money", fraction_digits=2, total_digits=16, ge=0)
Count = _simple(Integer, "Count", ge=0, le=10_000_000)
Timestamp = Long(min_occurs=1, nillable=False)  # xs:long, Unix seconds
Moment = DateTime(min_occurs=1, nillable=False)  # xs:dateTime with a UTC offset
Day = Date(min_occurs=1, nillable=False)
Flag = Boolean(min_occurs=1, nillable=False)
Id = Long(min_occurs=1, nillable=False)


class LookupResult(ComplexModel):
    """What a bank may know about an account before paying: never the name, address or balance."""

    __namespace__ = TNS
    _type_info = [
        ("account", AccountNumber),
        ("exists", Flag),  # the account exists and takes payments
        ("masked_name", Unicode(min_occurs=1, nillable=False)),  # "I*** P***"; empty when unknown
        ("currency", Currency),
        ("suggested_amount", Money),  # the debt rounded up to a whole unit; 0.00 when none
    ]


class PaymentResult(ComplexModel):
    """A payment as recorded: what Pay, Cancel and Status answer."""

    __namespace__ = TNS
    _type_info = [
        ("payment_id", Id),
        ("txn_id", TxnId),
        ("account", AccountNumber),
        ("amount", Amount),
        ("currency", Currency),
        ("state", PaymentState),
        ("paid_at", Moment),
        ("received_at", Moment),
        ("cancelled_at", DateTime(min_occurs=0, nillable=False)),
    ]


class RegistryLineType(ComplexModel):
    """One payment of a bank's daily registry."""

    __namespace__ = TNS
    __type_name__ = "RegistryLine"
    _type_info = [
        ("txn_id", TxnId),
        ("account", AccountNumber),
        ("amount", Amount),
        ("paid_at", Moment),
    ]


class RegistryResult(ComplexModel):
    """The stored registry: its id and how many lines it holds."""

    __namespace__ = TNS
    _type_info = [("registry_id", Id), ("lines", Count)]


def _reply(model: Any) -> Any:
    return model.customize(min_occurs=1, nillable=False)


# --------------------------------------------------------------------------- the service


class BankPayments(ServiceBase):
    """The operations; each authorizes through the gateway first (see the module docstring)."""

    @rpc(BankCode, AccountNumber, Timestamp, Signature, _returns=_reply(LookupResult))
    def Lookup(ctx, bank: str, account: str, timestamp: int, signature: str) -> LookupResult:
        """Whether an account exists, its holder's masked name, currency and a suggested amount."""
        gateway, authorized = _authorized(ctx, "lookup", lookup_fields(bank, account, timestamp), signature)
        found = gateway.lookup(authorized, account)
        return LookupResult(
            account=found.account_number,
            exists=found.exists,
            masked_name=found.masked_name,
            currency=found.currency,
            suggested_amount=found.suggested_amount.quantize(CENTS),
        )

    @rpc(BankCode, TxnId, AccountNumber, Amount, Moment, Timestamp, Signature, _returns=_reply(PaymentResult))
    def Pay(
        ctx, bank: str, txn_id: str, account: str, amount: Decimal, paid_at: datetime, timestamp: int,
        signature: str,
    ) -> PaymentResult:  # fmt: skip
        """Credit a payment now; the same ``txn_id`` again with the same details returns the first."""
        fields = pay_fields(bank, txn_id, account, amount, timestamp)
        gateway, authorized = _authorized(ctx, "pay", fields, signature)
        info = gateway.pay(
            authorized, channel="soap", txn_id=txn_id, account_number=account, amount=amount, paid_at=paid_at
        )
        if info.created:
            log.info("payment {id}: {bank} {txn} {amount} to {account}", id=info.id, bank=authorized.code,
                     txn=txn_id, amount=amount, account=account)  # fmt: skip
        return _payment(info)

    @rpc(BankCode, TxnId, Reason, Timestamp, Signature, _returns=_reply(PaymentResult))
    def Cancel(ctx, bank: str, txn_id: str, reason: str, timestamp: int, signature: str) -> PaymentResult:
        """Reverse a payment of this bank received today (cancelling twice returns the cancellation)."""
        gateway, authorized = _authorized(ctx, "cancel", cancel_fields(bank, txn_id, timestamp), signature)
        return _payment(gateway.cancel(authorized, txn_id, reason))

    @rpc(BankCode, TxnId, Timestamp, Signature, _returns=_reply(PaymentResult))
    def Status(ctx, bank: str, txn_id: str, timestamp: int, signature: str) -> PaymentResult:
        """The payment this bank knows by ``txn_id``."""
        gateway, authorized = _authorized(ctx, "status", status_fields(bank, txn_id, timestamp), signature)
        return _payment(gateway.status(authorized, txn_id))

    @rpc(
        BankCode, Day, Count, Money, Array(RegistryLineType.customize(nillable=False), min_occurs=1,
        nillable=False), Timestamp, Signature, _returns=_reply(RegistryResult),
    )  # fmt: skip
    def UploadRegistry(
        ctx, bank: str, day: date, count: int, total: Decimal, lines: list[Any] | None, timestamp: int,
        signature: str,
    ) -> RegistryResult:  # fmt: skip
        """Store the bank's payments of ``day`` for reconciliation; ``count`` and ``total`` must match."""
        from billing.bank_registry import RegistryLine

        fields = registry_fields(bank, day, count, total, timestamp)
        gateway, authorized = _authorized(ctx, "registry", fields, signature)
        given = [
            RegistryLine(txn_id=x.txn_id, account=x.account, amount=x.amount, paid_at=x.paid_at, line_no=n)
            for n, x in enumerate(lines or (), start=1)
        ]
        if len(given) != count:
            raise Refused("Invalid", f"registry of {day}: count {count} but {len(given)} lines")
        if sum((line.amount for line in given), Decimal(0)) != total:
            raise Refused("Invalid", f"registry of {day}: total {total} is not the sum of its lines")
        registry_id = gateway.registry(authorized, day, given)
        log.info("registry {id}: {bank} {day}, {n} lines, {total}", id=registry_id, bank=authorized.code,
                 day=day.isoformat(), n=count, total=total)  # fmt: skip
        return RegistryResult(registry_id=registry_id, lines=len(given))

    @classmethod
    def call_wrapper(cls, ctx: Any, args: Any = None) -> Any:
        """How every operation ends: a refusal becomes its fault, anything else ``Server.Unavailable``."""
        try:
            return super().call_wrapper(ctx, args)
        except Refused as refused:
            if refused.code == "Unavailable":
                log.error("{op}: unavailable: {reason}", op=_operation(ctx), reason=refused.reason)
            elif refused.code not in _AUDITED:  # authorization refusals are logged by the gateway
                log.info("{op} refused: {code}: {reason}", op=_operation(ctx), code=refused.code,
                         reason=refused.reason)  # fmt: skip
            raise fault(refused.code) from None
        except Fault:
            raise
        except Exception:
            log.failure("{op} failed", op=_operation(ctx))
            raise fault("Unavailable") from None


_AUDITED = frozenset({"AuthFailed", "BadSignature", "StaleRequest"})


def fault(code: str) -> Fault:
    """The SOAP fault of a stable refusal code: ``Client.<Code>``, or ``Server.Unavailable``."""
    side = "Server" if code == "Unavailable" else "Client"
    return Fault(faultcode=f"{side}.{code}", faultstring=FAULT_TEXT[code])


def _operation(ctx: Any) -> str:
    return str(getattr(ctx.descriptor, "name", "") or "request")


def _authorized(
    ctx: Any, operation: str, fields: list[str], signature: str
) -> tuple[PaymentGateway, BankSettings]:
    """The gateway and the bank the request comes from, or :class:`Refused` (audited by the gateway)."""
    gateway: PaymentGateway = ctx.udc
    creds = credentials(ctx.transport.req_env)
    return gateway, gateway.authorize(creds, operation, fields, signature, int(fields[-1]))


def credentials(environ: dict[str, Any]) -> Credentials:
    """The HTTP Basic user and password and the peer's address of a WSGI request (empty if absent)."""
    scheme, _, value = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    user = password = ""
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
    return Credentials(bank=user, password=password, remote_addr=str(environ.get("REMOTE_ADDR", "")))


def _payment(info: PaymentInfo) -> PaymentResult:
    return PaymentResult(
        payment_id=info.id,
        txn_id=info.external_id,
        account=info.account_number,
        amount=info.amount.quantize(CENTS),
        currency=info.currency,
        state=info.state,
        paid_at=info.paid_at,
        received_at=info.received_at,
        cancelled_at=info.cancelled_at,
    )


# --------------------------------------------------------------------------- the application


def build_application(gateway: PaymentGateway) -> Application:
    """The spyne application over ``gateway`` (its methods receive it as ``ctx.udc``)."""
    # spyne logs every fault with a traceback through the standard logging module (stderr in
    # billingd); the gateway and call_wrapper log what matters, once, without the noise.
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    app = Application(
        [BankPayments],
        tns=TNS,
        name="BankPayments",
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )

    def with_gateway(ctx: Any) -> None:
        ctx.udc = gateway

    app.event_manager.add_listener("method_call", with_gateway)
    return app


class PaymentWsgi(WsgiApplication):
    """spyne's WSGI adapter; the WSDL names the address it was fetched from (cached per address).

    spyne builds the WSDL once, with the URL of whoever asks first (scheme, and the Host header
    the client chose), and gives that document to everyone after: plain HTTP and TLS listeners
    would share one address, and any client could plant another host.
    """

    MAX_CACHED = 16

    def __init__(self, app: Application) -> None:
        super().__init__(app, max_content_length=MAX_REQUEST_BYTES)
        self._documents: dict[str, bytes] = {}
        self._building = threading.Lock()

    def handle_wsdl_request(
        self, req_env: dict[str, Any], start_response: Callable[..., Any], url: str
    ) -> Iterable[bytes]:
        """The WSDL with ``url`` as the service's address."""
        document = self._documents.get(url)
        if document is None:
            with self._building:
                wsdl = Wsdl11(self.app.interface)
                wsdl.build_interface_document(url)
                document = wsdl.get_interface_document()
                if len(self._documents) < self.MAX_CACHED:
                    self._documents[url] = document
        start_response(
            "200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(document)))]
        )
        return [document]


def wsgi_application(gateway: PaymentGateway) -> Callable[..., Iterable[bytes]]:
    """The WSGI application ``billing.payment_web`` mounts at ``/payments``."""
    wsgi = PaymentWsgi(build_application(gateway))
    wsgi.event_manager.add_listener("wsgi_exception", _log_rejected)
    return wsgi


def _log_rejected(ctx: Any) -> None:
    """Log a request spyne refused before any operation ran (not SOAP, or not valid by the schema)."""
    error = ctx.in_error
    if error is None:  # a fault of an operation: call_wrapper and the gateway logged it
        return
    log.info(
        "request from {address} rejected: {code}: {text}",
        address=ctx.transport.req_env.get("REMOTE_ADDR", "?"),
        code=getattr(error, "faultcode", type(error).__name__),
        text=str(getattr(error, "faultstring", error))[:300],
    )
