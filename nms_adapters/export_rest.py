"""REST export: each batch of events POSTed as JSON to the NMS's webhook, signed with HMAC-SHA256.

What is sent: ``POST <url>`` with ``Content-Type: application/json`` and the body of
:func:`~nms_adapters.events.events_to_json`, plus two headers:

- ``X-Billing-Timestamp``: the sender's clock in Unix seconds, ASCII digits (e.g. ``1796312715``);
- ``X-Billing-Signature``: ``sha256=`` + lowercase hex HMAC-SHA256, keyed with the shared secret,
  of the bytes ``<timestamp> "." <raw body>`` -- the timestamp header's exact value, one dot
  (0x2E), then the body exactly as sent (no re-serialisation).

The receiver recomputes the MAC over the raw body it read, compares in constant time
(:func:`verify` does all of it), and refuses a timestamp more than its window (300 s is
customary) from its clock: a captured request cannot be replayed later, and the timestamp cannot
be changed without breaking the MAC. Each attempt is signed afresh (same body, new timestamp), so
a retry after a long backoff is not refused as stale.

Retries (:func:`~nms_adapters.exporters.deliver`): connection errors, timeouts and 5xx answers
are retried up to ``retries`` times with exponential backoff; a 4xx (bad signature 401, a body it
cannot take 400/413 ...) or a 3xx (redirects are not followed: a POST must not silently become a
GET elsewhere) fails at once with a permanent :class:`~nms_adapters.exporters.ExportError`.

Why the standard library (``urllib.request``) and not ``requests``: one POST per batch needs no
connection pool, and it adds no direct dependency. Proxy variables from the environment are
ignored on purpose: the NMS is reached directly, as configured. The request blocks, so it runs in
the executor.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from nms_adapters.events import NetworkEvent, events_to_json
from nms_adapters.exporters import ExportError, TransientError, deliver
from nms_adapters.settings import RestExportSettings

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "RestExporter",
    "sign",
    "signed_message",
    "verify",
]

SIGNATURE_HEADER = "X-Billing-Signature"
TIMESTAMP_HEADER = "X-Billing-Timestamp"
SIGNATURE_PREFIX = "sha256="
USER_AGENT = "isp-billing-nms-export/1"
MAX_REPLY_BYTES = 64 * 1024
"""How much of an answer's body is read (and the first 200 characters of it quoted in errors)."""


def signed_message(timestamp: str, body: bytes) -> bytes:
    """The bytes the MAC covers: the timestamp header's value, ``.``, the raw body."""
    return timestamp.encode("ascii") + b"." + body


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Billing-Signature`` value: ``sha256=<hex HMAC-SHA256(secret, timestamp "." body)>``."""
    mac = hmac.new(secret, signed_message(timestamp, body), hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + mac


def verify(
    secret: bytes, timestamp: str | None, signature: str | None, body: bytes, *, now: float, window_s: float
) -> str | None:
    """Check a received request: ``None`` when it is authentic and fresh, else the reason (for a 401)."""
    if not timestamp or not signature:
        return "missing signature or timestamp"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return "malformed timestamp"
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("ascii", "replace")):
        return "bad signature"
    if abs(now - int(timestamp)) > window_s:  # after the MAC: a forger learns nothing about the window
        return "timestamp outside the allowed window"
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn every 3xx into an ``HTTPError`` instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class RestExporter:
    """POSTs each batch to ``settings.url``, signed; see the module docstring."""

    def __init__(
        self,
        settings: RestExportSettings,
        *,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self._executor = executor
        self._clock = clock
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    async def export(self, events: Sequence[NetworkEvent]) -> None:
        """POST ``events`` (nothing for an empty batch); :class:`ExportError` if not delivered."""
        if not events:
            return
        loop = asyncio.get_running_loop()  # a mass suspension makes a big batch: serialise off the loop too
        body = await loop.run_in_executor(self._executor, events_to_json, events)
        s = self.settings
        await deliver(
            self.name,
            lambda: self.post(body),
            executor=self._executor,
            retries=s.retries,
            backoff_s=s.backoff_s,
        )

    def post(self, body: bytes) -> None:
        """Blocking: one signed attempt. :class:`TransientError` to retry, :class:`ExportError` to stop."""
        timestamp = str(int(self._clock()))
        request = urllib.request.Request(
            self.settings.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
            },
        )
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as reply:
                reply.read(MAX_REPLY_BYTES)
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read(MAX_REPLY_BYTES).decode("utf-8", "replace")[:200]
            if exc.code >= 500:
                raise TransientError(f"HTTP {exc.code} {exc.reason}") from exc
            raise ExportError(
                f"{self.name}: refused: HTTP {exc.code} {exc.reason}: {text!r}",
                exporter=self.name,
                permanent=True,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, reset, timeout
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Nothing to release: each POST uses its own connection."""
