"""The NMS exporter interface: :class:`Exporter`, :class:`ExportError` and :func:`exporter_for`.

What: an exporter hands a batch of :class:`~nms_adapters.events.NetworkEvent` to an external NMS
(file drop, signed REST webhook, SOAP call); :func:`exporter_for` builds the one a settings
object describes. :func:`deliver` is the retry loop the HTTP exporters share.

Why this shape: the outbox worker runs on the asyncio loop that Twisted's reactor also drives,
so ``export`` is a coroutine and every blocking step (file write and fsync, an HTTP request,
zeep) runs in the executor the caller gives, through ``loop.run_in_executor``; backoff sleeps
are ``asyncio.sleep`` on the loop and hold no thread. One export is bounded: at most
``1 + retries`` attempts, each bounded by its socket timeout, with a capped backoff between.
``ExportError.permanent`` tells the worker whether trying the same batch again can help (a 4xx
or a SOAP client fault cannot).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Protocol

from nms_adapters.events import NetworkEvent
from nms_adapters.settings import (
    BACKOFF_CAP_S,
    FileExportSettings,
    NmsSettings,
    RestExportSettings,
    SoapExportSettings,
)

__all__ = ["ExportError", "Exporter", "TransientError", "deliver", "exporter_for"]

log = logging.getLogger("nms_adapters.export")


class ExportError(Exception):
    """An export failed: the NMS refused the batch, or every attempt failed.

    ``permanent`` is true when the same batch would be refused again (HTTP 4xx or 3xx, a SOAP
    client fault, values the NMS's schema rejects). Exhausted retries, and a missing or
    unwritable drop directory (an operator can fix it), are not permanent. ``attempts`` counts
    the attempts made; ``exporter`` is the exporter's name.
    """

    def __init__(self, message: str, *, exporter: str, attempts: int = 1, permanent: bool = False) -> None:
        super().__init__(message)
        self.exporter = exporter
        self.attempts = attempts
        self.permanent = permanent


class TransientError(Exception):
    """One attempt failed in a way another attempt may fix (connection, timeout, 5xx)."""


class Exporter(Protocol):
    """Exports provisioning events to one NMS; ``export`` never blocks the event loop."""

    name: str

    async def export(self, events: Sequence[NetworkEvent]) -> None:
        """Deliver ``events`` (nothing happens for an empty batch); raises :class:`ExportError`."""
        ...


async def deliver(
    name: str,
    attempt: Callable[[], object],
    *,
    executor: Executor | None,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> int:
    """Run the blocking ``attempt`` in ``executor`` until it returns; the number of attempts made.

    ``attempt`` raises :class:`TransientError` to be retried (at most ``retries`` more times,
    after ``backoff_s``, ``2*backoff_s``, ... capped at ``BACKOFF_CAP_S``) or :class:`ExportError`
    to stop at once.
    """
    loop = asyncio.get_running_loop()
    attempts = 0
    while True:
        attempts += 1
        try:
            await loop.run_in_executor(executor, attempt)
            return attempts
        except ExportError as exc:
            exc.attempts = attempts
            raise
        except TransientError as exc:
            if attempts > retries:
                raise ExportError(
                    f"{name}: gave up after {attempts} attempts: {exc}", exporter=name, attempts=attempts
                ) from exc
            delay = min(backoff_s * 2 ** (attempts - 1), BACKOFF_CAP_S)
            log.warning("%s: attempt %d failed (%s); retrying in %.2f s", name, attempts, exc, delay)
            await sleep(delay)


def exporter_for(settings: NmsSettings, *, executor: Executor | None = None) -> Exporter:
    """The exporter ``settings`` describe; its blocking work runs in ``executor`` (None: the loop's)."""
    if isinstance(settings, FileExportSettings):
        from nms_adapters.export_file import FileExporter

        return FileExporter(settings, executor=executor)
    if isinstance(settings, RestExportSettings):
        from nms_adapters.export_rest import RestExporter

        return RestExporter(settings, executor=executor)
    if isinstance(settings, SoapExportSettings):
        from nms_adapters.export_soap import SoapExporter  # zeep (~0.3 s to import) only when configured

        return SoapExporter(settings, executor=executor)
    raise TypeError(f"not NMS export settings: {type(settings).__name__}")
