"""SOAP export: each batch of events sent as one ``Report(events)`` call to the NMS's SOAP service.

What: zeep reads the service's WSDL from ``settings.url`` (once, on the first export, again after
a failed fetch) and calls ``Report`` with the batch as ``NetworkEvents`` (one ``NetworkEvent``
per event, the fields of :class:`~nms_adapters.events.NetworkEvent`, ``targets`` as ``Target``
elements; the contract and its namespace ``urn:isp-billing:nms:1`` are in README "NMS export",
and ``simulators/nms.py`` serves it). A SOAP ``Client`` fault, an HTTP 4xx or data the WSDL
rejects fail at once (permanent); connection errors, timeouts, 5xx answers and ``Server``
faults are retried with backoff (:func:`~nms_adapters.exporters.deliver`).

Why zeep and not a hand-built envelope: the NMS publishes the WSDL, and zeep follows it --
namespace, element names and order, SOAPAction, the service address -- and checks our values
against its schema before anything is sent, so a contract mismatch fails loudly on the first
export instead of being silently ignored by a lenient receiver. Its costs are acceptable here:
~0.3 s to import (only when a SOAP exporter is configured, and then in the executor, not on the
loop), one WSDL fetch per exporter, ~10 ms per call against batches, not per-event traffic.
Every zeep step blocks (``requests`` underneath), so each attempt runs in the executor.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from nms_adapters.events import NetworkEvent
from nms_adapters.exporters import ExportError, TransientError, deliver
from nms_adapters.settings import SoapExportSettings

if TYPE_CHECKING:
    import requests
    import zeep

__all__ = ["SoapExporter", "soap_payload"]

OPERATION = "Report"


def soap_payload(events: Sequence[NetworkEvent]) -> dict[str, Any]:
    """The ``events`` argument of ``Report`` in zeep's terms (element name -> value)."""
    return {
        "NetworkEvent": [
            {
                "task_id": e.task_id,
                "service_id": e.service_id,
                "account": e.account,
                "action": e.action,
                "speed_profile": e.speed_profile,
                "outcome": e.outcome,
                "at": e.at,
                "targets": {"Target": list(e.targets)},
            }
            for e in events
        ]
    }


class SoapExporter:
    """Calls ``Report`` on the service the WSDL at ``settings.url`` describes; see the module docstring."""

    def __init__(self, settings: SoapExportSettings, *, executor: Executor | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self._executor = executor
        self._lock = threading.Lock()  # one WSDL fetch at a time
        self._client: zeep.Client | None = None
        self._session: requests.Session | None = None

    async def export(self, events: Sequence[NetworkEvent]) -> None:
        """Send ``events`` in one call (nothing for an empty batch); :class:`ExportError` on failure."""
        if not events:
            return
        payload = soap_payload(events)
        s = self.settings
        await deliver(
            self.name,
            lambda: self.call(payload),
            executor=self._executor,
            retries=s.retries,
            backoff_s=s.backoff_s,
        )

    def _connect(self) -> zeep.Client:
        """Blocking: the zeep client, reading the WSDL on first use (TransientError if unreachable)."""
        import requests
        import zeep
        from zeep.transports import Transport

        with self._lock:
            if self._client is not None:
                return self._client
            session = requests.Session()
            session.trust_env = False  # no proxy from the environment: the NMS is reached as configured
            timeout = self.settings.timeout_s
            try:
                client = zeep.Client(
                    self.settings.url,
                    transport=Transport(session=session, timeout=timeout, operation_timeout=timeout),
                )
                getattr(client.service, OPERATION)  # the WSDL must offer it
            except (requests.RequestException, OSError) as exc:
                session.close()
                raise TransientError(f"WSDL {self.settings.url}: {type(exc).__name__}: {exc}") from exc
            except Exception as exc:  # not a WSDL, or no Report operation: configuration, not luck
                session.close()
                raise ExportError(
                    f"{self.name}: WSDL {self.settings.url} unusable: {type(exc).__name__}: {exc}",
                    exporter=self.name,
                ) from exc
            self._client, self._session = client, session
            return client

    def call(self, payload: dict[str, Any]) -> None:
        """Blocking: one attempt. :class:`TransientError` to retry, :class:`ExportError` to stop."""
        import requests
        from zeep.exceptions import Fault, TransportError, ValidationError

        client = self._connect()
        try:
            getattr(client.service, OPERATION)(events=payload)
        except Fault as fault:
            code = str(fault.code or "")
            if code.rpartition(":")[2].startswith("Server"):
                raise TransientError(f"SOAP fault {code}: {fault.message}") from fault
            raise ExportError(
                f"{self.name}: refused: SOAP fault {code}: {fault.message}",
                exporter=self.name,
                permanent=True,
            ) from fault
        except TransportError as exc:
            if exc.status_code >= 500:
                raise TransientError(f"HTTP {exc.status_code}") from exc
            raise ExportError(
                f"{self.name}: refused: HTTP {exc.status_code}", exporter=self.name, permanent=True
            ) from exc
        except ValidationError as exc:
            raise ExportError(
                f"{self.name}: the events do not fit the NMS's schema: {exc}",
                exporter=self.name,
                permanent=True,
            ) from exc
        except (requests.RequestException, OSError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # e.g. an answer that is not XML: say so, as an ExportError
            raise ExportError(
                f"{self.name}: unexpected answer: {type(exc).__name__}: {exc}", exporter=self.name
            ) from exc

    async def close(self) -> None:
        """Close the HTTP session (its pooled connections)."""
        session, self._session, self._client = self._session, None, None  # no lock: never wait on the loop
        if session is not None:
            session.close()
