"""How a bank proves a request is its own: the HMAC-SHA256 signature over a transaction's fields.

A request is authorized when all of these hold (checked by
:meth:`billing.payment_gateway.PaymentGateway.authorize`, in this order):

1. HTTP Basic credentials: the bank's code as the user name and its configured password;
2. the TCP peer's address is in the bank's ``allow_from``;
3. the request's ``timestamp`` (Unix seconds, the bank's clock) is within
   ``timestamp_window_s`` of ours, so a captured request cannot be replayed later;
4. ``signature`` is the lower-case hex HMAC-SHA256, keyed with the bank's ``signing_key``
   (UTF-8), of the UTF-8 bytes of the operation's fields joined by ``|``.

The fields, in order, per operation (``ts`` is the timestamp as decimal digits, amounts
are written with exactly two decimals, ``100.00``):

=========  ===================================================
lookup     ``lookup|bank|account|ts``
pay        ``pay|bank|txn_id|account|amount|ts``
cancel     ``cancel|bank|txn_id|ts``
status     ``status|bank|txn_id|ts``
registry   ``registry|bank|YYYY-MM-DD|count|total|ts``
check      ``check|bank|txn_id|account|amount|ts`` (check/pay protocol)
=========  ===================================================

A retry re-signs with a fresh timestamp; the transaction id is what makes it the same payment.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

CENTS = Decimal("0.01")


def amount_text(amount: Decimal) -> str:
    """An amount as signed: two decimals, no exponent (``Decimal("5")`` → ``"5.00"``)."""
    return f"{amount.quantize(CENTS):f}"


def signature(key: str | bytes, fields: Sequence[str]) -> str:
    """Hex HMAC-SHA256 of ``"|".join(fields)``, keyed with ``key``."""
    raw = key.encode() if isinstance(key, str) else key
    return hmac.new(raw, "|".join(fields).encode(), hashlib.sha256).hexdigest()


def signature_matches(key: str | bytes, fields: Sequence[str], claimed: str) -> bool:
    """Whether ``claimed`` is the signature of ``fields`` (constant-time comparison)."""
    return hmac.compare_digest(signature(key, fields), (claimed or "").strip().lower())


def lookup_fields(bank: str, account: str, ts: int) -> list[str]:
    """Signed fields of a look-up."""
    return ["lookup", bank, account, str(ts)]


def pay_fields(bank: str, txn_id: str, account: str, amount: Decimal, ts: int) -> list[str]:
    """Signed fields of a payment (SOAP Pay and check/pay ``pay``)."""
    return ["pay", bank, txn_id, account, amount_text(amount), str(ts)]


def check_fields(bank: str, txn_id: str, account: str, amount: Decimal, ts: int) -> list[str]:
    """Signed fields of a check/pay ``check``."""
    return ["check", bank, txn_id, account, amount_text(amount), str(ts)]


def cancel_fields(bank: str, txn_id: str, ts: int) -> list[str]:
    """Signed fields of a cancellation."""
    return ["cancel", bank, txn_id, str(ts)]


def status_fields(bank: str, txn_id: str, ts: int) -> list[str]:
    """Signed fields of a status query."""
    return ["status", bank, txn_id, str(ts)]


def registry_fields(bank: str, day: date, count: int, total: Decimal, ts: int) -> list[str]:
    """Signed fields of a daily registry upload."""
    return ["registry", bank, day.isoformat(), str(count), amount_text(total), str(ts)]
