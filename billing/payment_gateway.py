"""The payment API's one door: authorizes a bank's request, then looks up, pays, cancels or reports.

What: the banks' SOAP API (``billing.payment_soap``) and the payment agents' check/pay protocol
(``billing.payment_checkpay``) both parse their wire format, then call :class:`PaymentGateway`:
:meth:`~PaymentGateway.authorize` first (credentials, address, timestamp, signature; see
``billing.payment_auth``), then one operation. Every outcome a caller must act on is a
:class:`Refused` with a stable ``code``; each protocol maps codes to its own (SOAP fault codes,
check/pay result numbers), and nothing else reaches the caller.

Why here: authorization, the audit of refusals and the mapping of business errors are the same
for every protocol, so they live once. All methods block on the database: call them from a
thread pool (the web service's WSGI pool), never from the reactor thread.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from twisted.logger import Logger

from billing import accounts, audit, payments
from billing.audit import Actor
from billing.db.customers import Account, Customer
from billing.db.types import utcnow
from billing.payment_auth import signature_matches
from billing.payment_settings import BankSettings
from billing.service_lifecycle import rules_for

if TYPE_CHECKING:
    from billing.bank_registry import RegistryLine
    from billing.config import Config
    from billing.group_poster import GroupPoster

log = Logger(namespace="payments")
T = TypeVar("T")

CODES = (
    "AuthFailed",
    "BadSignature",
    "StaleRequest",
    "UnknownAccount",
    "AccountClosed",
    "InvalidAmount",
    "Conflict",
    "UnknownPayment",
    "CancelRefused",
    "Invalid",
    "Unavailable",
)
"""The stable refusal codes (README "Payments" lists them with their SOAP and check/pay forms)."""

RETRIED_SQLSTATES = {"40001", "40P01"}
"""PostgreSQL serialization failure and deadlock: the transaction is retried, not refused."""


class Refused(Exception):
    """A request refused with a stable ``code``; ``reason`` is for the log and audit only."""

    def __init__(self, code: str, reason: str) -> None:
        assert code in CODES, code
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason

    @property
    def retry(self) -> bool:
        """Whether the caller should try again later (the answer is not final)."""
        return self.code == "Unavailable"


@dataclass(frozen=True)
class Credentials:
    """What the transport says about a request: the HTTP Basic pair and the TCP peer."""

    bank: str
    password: str
    remote_addr: str


@dataclass(frozen=True)
class Lookup:
    """What a bank may know about an account before paying: never the name, address or balance."""

    account_number: str
    exists: bool
    masked_name: str
    currency: str
    suggested_amount: Decimal


def mask_name(name: str) -> str:
    """Each word's first letter and ``***``: ``"Ivan Petrov"`` → ``"I*** P***"``."""
    return " ".join(word[0] + "***" for word in name.split() if word)


class PaymentGateway:
    """Authorization and the payment operations of the online API (see the module docstring)."""

    def __init__(self, engine: Engine, config: Config, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.settings = config.payments
        self.time_zone = config.isp.tzinfo
        self.currency = config.isp.currency
        self.rules = rules_for(self.time_zone)
        self.clock = clock
        self._poster: GroupPoster[tuple[Actor, payments.PaymentRequest], payments.PaymentInfo] | None = None

    # ------------------------------------------------------------------ authorization

    def authorize(
        self,
        creds: Credentials,
        operation: str,
        fields: Sequence[str],
        signature: str,
        timestamp: int,
        *,
        channel: str = "soap",
    ) -> BankSettings:
        """The bank, if every check passes; else :class:`Refused`, logged and audited with the reason."""
        bank = self.settings.bank(creds.bank)
        if bank is None or not _same(bank.password.reveal(), creds.password):
            reason = "unknown bank" if bank is None else "bad password"
            raise self.refuse("AuthFailed", reason, creds, operation, channel)
        if list(fields[1:2]) != [bank.code]:  # the signed fields' bank is the authenticated one
            raise self.refuse("AuthFailed", "request names another bank", creds, operation, channel)
        if not bank.allows(creds.remote_addr):
            raise self.refuse("AuthFailed", "address not allowed", creds, operation, channel)
        skew = self.clock().timestamp() - timestamp
        if abs(skew) > self.settings.timestamp_window_s:
            reason = f"timestamp {timestamp} is {skew:+.0f} s from ours"
            raise self.refuse("StaleRequest", reason, creds, operation, channel)
        if not signature_matches(bank.signing_key.reveal(), fields, signature):
            raise self.refuse("BadSignature", "signature does not match", creds, operation, channel)
        return bank

    def refuse(self, code: str, reason: str, creds: Credentials, operation: str, channel: str) -> Refused:
        """Log and audit a refusal in its own transaction; the caller learns only the code."""
        log.warn(
            "payment API refused {operation} from {bank!r} at {address}: {reason}",
            operation=operation,
            bank=creds.bank,
            address=creds.remote_addr,
            reason=reason,
        )
        actor = Actor(None, f"bank:{creds.bank[:40]}", source=channel)
        try:
            with self.sessions.begin() as session:
                audit.record(
                    session, actor, "payments.refused", "bank", creds.bank[:64] or None,
                    after={"code": code, "reason": reason, "operation": operation,
                           "address": creds.remote_addr},
                    outcome="denied",
                )  # fmt: skip
        except DBAPIError as exc:  # the refusal stands; the log line above keeps the record
            log.error("refusal not audited (database): {error}", error=str(exc).splitlines()[0])
        return Refused(code, reason)

    # ------------------------------------------------------------------ operations

    def lookup(self, bank: BankSettings, account_number: str) -> Lookup:
        """Whether the account exists, a masked holder name and a suggested amount (a debt, rounded up)."""

        def work(session: Session) -> Lookup:
            row = session.execute(
                select(Account, Customer.name)
                .join(Customer, Customer.id == Account.customer_id)
                .where(Account.number == account_number)
            ).first()
            if row is None:
                return Lookup(account_number, False, "", self.currency, Decimal(0))
            account, name = row
            balance = accounts.info(session, account).balance
            due = Decimal(math.ceil(-balance)) if balance < 0 else Decimal(0)
            return Lookup(account_number, account.status == "active", mask_name(name), account.currency, due)

        return self._run(work)

    def pay(
        self,
        bank: BankSettings,
        *,
        channel: str,
        txn_id: str,
        account_number: str,
        amount: Decimal,
        paid_at: datetime,
    ) -> payments.PaymentInfo:
        """Credit a payment now, or return the one already recorded under ``txn_id`` (same details)."""
        request = payments.PaymentRequest(
            bank.code, txn_id, account_number, amount, paid_at, channel=channel, currency=None
        )
        actor = Actor(None, f"bank:{bank.code}", source=channel)
        if self._poster is None:
            return self._run(lambda session: payments.pay(session, actor, request, rules=self.rules))
        try:
            return self._poster.post((actor, request))
        except Exception as exc:
            raise _refusal(exc) from None

    def start_group_commit(self, *, max_group: int = 200) -> None:
        """Post payments through one writer thread that commits what queued up together.

        Concurrent payments of one bank all update its clearing account; one transaction per
        payment would serialize them on that row. Call :meth:`close` to stop the writer.
        """
        from billing.group_poster import GroupPoster
        from billing.payment_batch import pay_many

        poster: GroupPoster[tuple[Actor, payments.PaymentRequest], payments.PaymentInfo] = GroupPoster(
            self.sessions,
            lambda session, items: pay_many(session, items, rules=self.rules),
            lambda session, item: payments.pay(session, item[0], item[1], rules=self.rules),
            max_group=max_group,
            name="payment-poster",
        )
        poster.start()
        self._poster = poster

    def close(self) -> None:
        """Finish the payments queued for group commit and stop its writer."""
        if self._poster is not None:
            self._poster.close()
            self._poster = None

    def check(self, bank: BankSettings, *, account_number: str, amount: Decimal) -> Lookup:
        """Whether a payment of ``amount`` to the account would be accepted (nothing written)."""
        found = self.lookup(bank, account_number)
        if not found.masked_name:
            raise Refused("UnknownAccount", f"no account {account_number!r}")
        if not found.exists:
            raise Refused("AccountClosed", f"account {account_number} is closed")
        if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise Refused("InvalidAmount", f"amount {amount}")
        return found

    def cancel(
        self, bank: BankSettings, txn_id: str, reason: str, *, channel: str = "soap"
    ) -> payments.PaymentInfo:
        """Reverse a payment of this bank received today."""
        actor = Actor(None, f"bank:{bank.code}", source=channel)

        def work(session: Session) -> payments.PaymentInfo:
            found = payments.find(session, bank.code, txn_id)
            return payments.cancel(session, actor, found.id, reason, time_zone=self.time_zone)

        return self._run(work)

    def status(self, bank: BankSettings, txn_id: str) -> payments.PaymentInfo:
        """The payment this bank knows by ``txn_id``."""
        return self._run(lambda session: payments.find(session, bank.code, txn_id))

    def registry(
        self, bank: BankSettings, day: date, lines: Sequence[RegistryLine], *, channel: str = "soap"
    ) -> int:
        """Store the bank's registry of ``day`` for reconciliation; its id."""
        from billing.bank_registry import record_registry

        actor = Actor(None, f"bank:{bank.code}", source=channel)
        return self._run(
            lambda session: record_registry(session, actor, bank.code, day, lines, origin=channel)
        )

    # ------------------------------------------------------------------ plumbing

    def _run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a transaction: business errors become :class:`Refused`, outages ``Unavailable``."""
        for attempt in range(3):
            try:
                with self.sessions.begin() as session:
                    return work(session)
            except OperationalError as exc:
                if _sqlstate(exc) in RETRIED_SQLSTATES and attempt < 2:
                    time.sleep(0.01 * (attempt + 1))
                    continue
                raise _refusal(exc) from None
            except Exception as exc:
                refusal = _refusal(exc)
                if refusal is exc:
                    raise
                raise refusal from None
        raise AssertionError("unreachable")


def _refusal(exc: Exception) -> Exception:
    """The :class:`Refused` a caller gets for ``exc``; anything unforeseen is returned as it is."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, payments.PaymentConflict):
        return Refused("Conflict", str(exc))
    if isinstance(exc, payments.UnknownPayment):
        return Refused("UnknownPayment", str(exc))
    if isinstance(exc, payments.PaymentError):
        return Refused(_code_of(str(exc)), str(exc))
    if isinstance(exc, OperationalError | InterfaceError):
        return Refused("Unavailable", str(exc).splitlines()[0])
    return exc


def _code_of(message: str) -> str:
    """The refusal code of a :class:`billing.payments.PaymentError` message (``field: text``)."""
    field = message.split(":", 1)[0]
    if field == "account":
        return "AccountClosed" if "closed" in message else "UnknownAccount"
    if field in ("amount", "currency"):
        return "InvalidAmount"
    if field.startswith("payment ") and "cancelled" in message:
        return "CancelRefused"
    return "Invalid"


def _sqlstate(exc: OperationalError) -> str | None:
    orig: Any = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), (given or "").encode())
