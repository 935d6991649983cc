"""The payment agents' check/pay protocol (OSMP/QIWI style) over HTTP, on the payment gateway.

What: ``GET`` (or ``POST`` form) ``/checkpay?command=check|pay&txn_id=..&account=..&sum=10.45
&txn_date=YYYYMMDDHHMMSS&ts=..&sign=..`` with HTTP Basic credentials (the bank's code and
password) is answered, always with HTTP 200, by the customary XML reply::

    <?xml version="1.0" encoding="UTF-8"?>
    <response><osmp_txn_id>7001</osmp_txn_id><prv_txn>42</prv_txn><sum>10.45</sum>
    <result>0</result><comment>OK</comment></response>

``check`` asks whether a payment of ``sum`` to ``account`` would be accepted (nothing is
written); ``pay`` credits it now (:meth:`billing.payment_gateway.PaymentGateway.pay`, channel
``checkpay``) and answers our payment id as ``prv_txn``. The optional ``bank`` parameter, when
given, must be the HTTP Basic user name. ``txn_date`` (required for ``pay``) is the agent's
payment time in the operator's time zone.

Authorization is the SOAP API's (:meth:`~billing.payment_gateway.PaymentGateway.authorize`):
credentials, source address, ``ts`` (Unix seconds) within the window, and ``sign``: the hex
HMAC-SHA256 of ``check|bank|txn_id|account|sum|ts`` or ``pay|bank|txn_id|account|sum|ts``
(``sum`` with two decimals, see ``billing.payment_auth``). It runs before anything else is
judged, so an unauthorized caller learns nothing but ``8``.

Result codes (:data:`RESULTS`; ``fatal`` means the agent must not retry the same request):

=====  ==========================================================  =====
0      OK (a repeated ``pay`` answers 0 with the original prv_txn)  -
1      temporary error, retry later (database unavailable)         no
4      wrong account format                                        yes
5      account not found                                           yes
7      payment forbidden (account closed)                          yes
8      refused: credentials, signature, timestamp or address        yes
241    amount too small or malformed (not > 0 with <= 2 decimals)   yes
242    amount too large (above :data:`MAX_SUM`)                     yes
300    other error, e.g. ``txn_id`` already used with another       yes
       account or amount, a missing or malformed parameter
=====  ==========================================================  =====

Why this shape: agents retry on anything but a final answer, for hours, so a duplicate ``pay``
must answer success with the original ids (the payment service's idempotency makes it so), and
only an outage answers the retryable ``1``. The module is split like our other protocol servers:
:func:`parse_request` and :func:`render_reply` are a pure codec, :class:`CheckPay` decides
(blocking: it runs in the web service's thread pool, never on the reactor thread), and
:class:`CheckPayResource` only moves requests and replies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from twisted.internet import threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from billing.payment_auth import amount_text, check_fields, pay_fields
from billing.payment_gateway import Credentials, PaymentGateway, Refused

log = Logger(namespace="payments.checkpay")

CHANNEL = "checkpay"
"""The payments' channel and the audit rows' source for this protocol."""

MAX_SUM = Decimal("100000.00")
"""The largest amount one payment may carry (more answers 242); a terminal takes far less."""

ACCOUNT_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
"""An account number as ``billing.subscribers`` makes them: 1 to 32 letters, digits, '_', '-'."""

TXN_ID_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
"""The agent's transaction id: 1 to 100 letters, digits and ``_.:/-`` (never the signature's ``|``)."""

SUM_FORMAT = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,2})?$")
"""A well-formed amount: plain decimal digits, at most two decimals (``10``, ``10.4``, ``10.45``)."""

TS_FORMAT = re.compile(r"^[0-9]{1,12}$")
"""The request's timestamp: Unix seconds in ASCII digits."""

TXN_DATE_FORMAT = "%Y%m%d%H%M%S"

PARAMETERS = ("command", "txn_id", "account", "sum", "txn_date", "bank", "ts", "sign")
"""The parameters read; others (e.g. an agent's ``prv_id``) are ignored."""


@dataclass(frozen=True)
class Result:
    """One result code of the protocol: its number, the comment sent, and whether it is final."""

    number: int
    comment: str
    fatal: bool


OK = Result(0, "OK", False)
TEMPORARY = Result(1, "temporary error, retry later", False)
BAD_ACCOUNT_FORMAT = Result(4, "wrong account format", True)
ACCOUNT_NOT_FOUND = Result(5, "account not found", True)
FORBIDDEN = Result(7, "payment forbidden", True)
REFUSED = Result(8, "refused", True)
SUM_TOO_SMALL = Result(241, "amount too small or malformed", True)
SUM_TOO_LARGE = Result(242, "amount too large", True)
OTHER = Result(300, "other error", True)

RESULTS = (OK, TEMPORARY, BAD_ACCOUNT_FORMAT, ACCOUNT_NOT_FOUND, FORBIDDEN, REFUSED, SUM_TOO_SMALL,
           SUM_TOO_LARGE, OTHER)  # fmt: skip
"""Every result this server answers (the README's table)."""

RESULT_OF_REFUSAL: Mapping[str, Result] = {
    "AuthFailed": REFUSED,
    "BadSignature": REFUSED,
    "StaleRequest": REFUSED,
    "UnknownAccount": ACCOUNT_NOT_FOUND,
    "AccountClosed": FORBIDDEN,
    "InvalidAmount": SUM_TOO_SMALL,
    "Conflict": OTHER,
    "UnknownPayment": OTHER,
    "CancelRefused": OTHER,
    "Invalid": OTHER,
    "Unavailable": TEMPORARY,
}
"""The gateway's stable refusal codes as check/pay results."""


@dataclass(frozen=True)
class CheckPayRequest:
    """The parameters of one request as sent (text; empty when absent), not yet judged."""

    command: str
    txn_id: str
    account: str
    sum: str
    txn_date: str
    bank: str
    ts: str
    sign: str


@dataclass(frozen=True)
class Reply:
    """What is answered: the agent's id echoed, our payment id (pay), the amount, the result."""

    osmp_txn_id: str
    result: Result
    prv_txn: int | None = None
    sum: Decimal | None = None
    comment: str | None = None  # overrides result.comment (e.g. a replayed payment)


class MalformedRequest(ValueError):
    """The parameters cannot be read at all (not UTF-8, or one given twice)."""


# --------------------------------------------------------------------------- codec (pure)


def parse_request(args: Mapping[bytes, Sequence[bytes]]) -> CheckPayRequest:
    """The request's parameters from twisted.web's ``request.args`` (query and form merged)."""
    values: dict[str, str] = {}
    for name in PARAMETERS:
        given = args.get(name.encode(), ())
        if len(given) > 1:
            raise MalformedRequest(f"{name}: given {len(given)} times")
        try:
            values[name] = given[0].decode("utf-8").strip() if given else ""
        except UnicodeDecodeError:
            raise MalformedRequest(f"{name}: not UTF-8") from None
    return CheckPayRequest(**values)


def parse_sum(text: str) -> Decimal | None:
    """The amount if ``text`` is a well-formed one (see :data:`SUM_FORMAT`), else None."""
    return Decimal(text) if SUM_FORMAT.fullmatch(text) else None


def parse_txn_date(text: str, time_zone: tzinfo) -> datetime | None:
    """``YYYYMMDDHHMMSS`` in ``time_zone`` as an aware datetime, or None if it is not one."""
    if not re.fullmatch(r"[0-9]{14}", text):
        return None
    try:
        return datetime.strptime(text, TXN_DATE_FORMAT).replace(tzinfo=time_zone)
    except ValueError:
        return None


def signed_fields(request: CheckPayRequest, bank: str, ts: int) -> list[str]:
    """The signature's input: the ``check`` or ``pay`` list of ``billing.payment_auth``.

    A malformed ``sum`` enters as sent, so its sender is still authorized (and then told 241)
    or refused (8) exactly as for a well-formed one.
    """
    fields = pay_fields if request.command == "pay" else check_fields
    amount = parse_sum(request.sum)
    signed = fields(bank, request.txn_id, request.account, amount or Decimal(0), ts)
    if amount is None:
        signed[4] = request.sum
    return signed


def render_reply(reply: Reply) -> bytes:
    """The XML reply, UTF-8, elements in the customary order."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<response>', _element("osmp_txn_id", reply.osmp_txn_id)]
    if reply.prv_txn is not None:
        parts.append(_element("prv_txn", str(reply.prv_txn)))
    if reply.sum is not None:
        parts.append(_element("sum", amount_text(reply.sum)))
    parts.append(_element("result", str(reply.result.number)))
    parts.append(_element("comment", reply.comment or reply.result.comment))
    parts.append("</response>\n")
    return "".join(parts).encode("utf-8")


def _element(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


# --------------------------------------------------------------------------- decisions (blocking)


class CheckPay:
    """Judges one check/pay request through the gateway; blocking (database): call it from a thread."""

    def __init__(self, gateway: PaymentGateway, *, max_sum: Decimal = MAX_SUM) -> None:
        self.gateway = gateway
        self.max_sum = max_sum
        self.time_zone: tzinfo = gateway.time_zone

    def handle(self, request: CheckPayRequest, creds: Credentials) -> Reply:
        """Authorize, validate, then check or pay; every outcome is a :class:`Reply`, never an exception."""
        echo = request.txn_id
        operation = request.command if request.command in ("check", "pay") else "checkpay"
        try:
            ts = int(request.ts) if TS_FORMAT.fullmatch(request.ts) else 0  # else refused as stale
            if request.bank and request.bank != creds.bank:
                raise self.gateway.refuse(  # audited like every authorization failure
                    "AuthFailed", f"bank parameter {request.bank[:40]!r} is not the HTTP user", creds,
                    operation, CHANNEL,
                )  # fmt: skip
            bank = self.gateway.authorize(
                creds, operation, signed_fields(request, creds.bank, ts), request.sign, ts, channel=CHANNEL
            )
            if request.command not in ("check", "pay"):
                return self._other(request, creds, f"command: expected check or pay, got {request.command!r}")
            if not TXN_ID_FORMAT.fullmatch(request.txn_id):
                return self._other(request, creds, f"txn_id: malformed {request.txn_id[:120]!r}")
            if not ACCOUNT_FORMAT.fullmatch(request.account):
                return Reply(echo, BAD_ACCOUNT_FORMAT)
            amount = parse_sum(request.sum)
            if amount is None or amount <= 0:
                return Reply(echo, SUM_TOO_SMALL)
            if amount > self.max_sum:
                return Reply(echo, SUM_TOO_LARGE, sum=amount)
            if request.command == "check":
                self.gateway.check(bank, account_number=request.account, amount=amount)
                return Reply(echo, OK, sum=amount)
            paid_at = parse_txn_date(request.txn_date, self.time_zone)
            if paid_at is None:
                return self._other(
                    request, creds, f"txn_date: expected YYYYMMDDHHMMSS, got {request.txn_date[:40]!r}"
                )
            info = self.gateway.pay(
                bank, channel=CHANNEL, txn_id=request.txn_id, account_number=request.account,
                amount=amount, paid_at=paid_at,
            )  # fmt: skip
            if info.created:
                log.info(
                    "payment {id}: {bank} {txn} {amount} to {account} (check/pay)", id=info.id,
                    bank=bank.code, txn=request.txn_id, amount=info.amount, account=request.account,
                )  # fmt: skip
            return Reply(
                echo,
                OK,
                prv_txn=info.id,
                sum=info.amount,
                comment=None if info.created else "OK, already paid",
            )
        except Refused as refused:
            result = RESULT_OF_REFUSAL[refused.code]
            if result is not REFUSED:  # authorization refusals are logged and audited by the gateway
                log.info(
                    "check/pay {command} {txn_id!r} from {bank!r} answered {result}: {reason}",
                    command=request.command, txn_id=request.txn_id, bank=creds.bank,
                    result=result.number, reason=refused.reason,
                )  # fmt: skip
            return Reply(echo, result)

    def _other(self, request: CheckPayRequest, creds: Credentials, reason: str) -> Reply:
        log.info(
            "check/pay request {txn_id!r} from {bank!r} answered 300: {reason}",
            txn_id=request.txn_id, bank=creds.bank, reason=reason,
        )  # fmt: skip
        return Reply(request.txn_id, OTHER)


# --------------------------------------------------------------------------- transport


class CheckPayResource(Resource):
    """``/checkpay``: reads the request on the reactor thread, judges it in ``threadpool``, answers XML.

    ``threadpool`` is the web service's pool (the SOAP API's WSGI pool), so the database sees one
    bounded set of threads. The TCP peer's address is the one authorized: no proxy header is trusted.
    """

    isLeaf = True

    def __init__(self, checkpay: CheckPay, reactor: IReactorThreads, threadpool: ThreadPool) -> None:
        super().__init__()
        self.checkpay = checkpay
        self.reactor = reactor
        self.threadpool = threadpool

    def render_GET(self, request: Request) -> Any:
        """A check or pay request in the query string."""
        return self._render(request)

    def render_POST(self, request: Request) -> Any:
        """A check or pay request as a form (``application/x-www-form-urlencoded``) or query string."""
        return self._render(request)

    def render_HEAD(self, request: Request) -> bytes:
        """Refused: twisted.web would otherwise run GET (a payment) and drop the answer."""
        request.setResponseCode(405)
        request.setHeader(b"Allow", b"GET, POST")
        return b""

    def _render(self, request: Request) -> Any:
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        try:
            parsed = parse_request(request.args or {})
        except MalformedRequest as exc:
            log.info("check/pay request not readable: {reason}", reason=str(exc))
            return render_reply(Reply("", OTHER))
        address = request.getClientAddress()
        creds = Credentials(
            bank=request.getUser().decode("utf-8", "replace"),
            password=request.getPassword().decode("utf-8", "replace"),
            remote_addr=getattr(address, "host", ""),
        )
        finished: list[bool] = []
        request.notifyFinish().addBoth(finished.append)
        work = threads.deferToThreadPool(self.reactor, self.threadpool, self.checkpay.handle, parsed, creds)
        work.addErrback(self._crashed, parsed)
        work.addCallback(self._answer, request, finished)
        return NOT_DONE_YET

    @staticmethod
    def _crashed(failure: Failure, parsed: CheckPayRequest) -> Reply:
        """An unexpected error: the outcome is unknown, so the agent retries (payments are idempotent)."""
        log.failure("check/pay {txn_id!r} failed unexpectedly", failure, txn_id=parsed.txn_id)
        return Reply(parsed.txn_id, TEMPORARY)

    @staticmethod
    def _answer(reply: Reply, request: Request, finished: list[bool]) -> None:
        if finished:  # the agent hung up; a pay stands and its retry gets the original ids
            return
        request.write(render_reply(reply))
        request.finish()


def checkpay_resource(
    gateway: PaymentGateway, reactor: IReactorThreads, threadpool: ThreadPool, *, max_sum: Decimal = MAX_SUM
) -> CheckPayResource:
    """The ``/checkpay`` resource, to be mounted by the payment web service (``billing.payment_web``)."""
    return CheckPayResource(CheckPay(gateway, max_sum=max_sum), reactor, threadpool)
