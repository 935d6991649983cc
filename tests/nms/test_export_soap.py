"""NMS export over SOAP: zeep, from the live WSDL, against the simulator's spyne ``ProvisioningEvents``.

The receiver runs in a thread of this process (:class:`~simulators.nms.NmsSimulator`, joined on
exit); each export runs on a fresh asyncio loop with its own thread pool and is bounded by
``asyncio.wait_for``; every exporter is closed.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from nms_adapters.events import NetworkEvent
from nms_adapters.export_soap import SoapExporter
from nms_adapters.exporters import ExportError
from nms_adapters.settings import SoapExportSettings
from simulators.nms import Attempt, NmsSimulator

SECRET = b"unused-by-soap-0123456789"
UTC_PLUS_3 = timezone(timedelta(hours=3))
EVENTS = [
    NetworkEvent(
        21, 3001, "100042", "throttle", "256k/256k", "done",
        datetime(2026, 12, 3, 15, 45, 15, 123456, tzinfo=UTC), ("nas:bras1", "switch:sw1:Gi0/3"),
    ),
    # no account, no profile, no targets; a time in UTC+3
    NetworkEvent(22, 3002, None, "deny", None, "unknown", datetime(2026, 12, 3, 18, 0, tzinfo=UTC_PLUS_3)),
    NetworkEvent(
        23, 3003, "Ivanov & <Sons>", "allow", "100M", "dead", datetime(2026, 12, 3, tzinfo=UTC), ("nas:b",)
    ),
]  # fmt: skip
BOUND_S = 30.0


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not extra, extra


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the calls given to it (to show zeep never runs on the loop)."""

    def __init__(self) -> None:
        super().__init__(4, thread_name_prefix="nms-test")
        self.calls = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def executor() -> Iterator[CountingPool]:
    with CountingPool() as pool:
        yield pool


def export(url: str, executor: ThreadPoolExecutor, events: list[NetworkEvent], **overrides: Any) -> None:
    """Export once through a new exporter, bounded, and close it."""
    settings: dict[str, Any] = {"timeout_s": 5.0, "retries": 3, "backoff_s": 0.01, **overrides}
    exporter = SoapExporter(SoapExportSettings("nms-soap", url, **settings), executor=executor)

    async def once() -> None:
        try:
            await exporter.export(events)
        finally:
            await exporter.close()

    coroutine: Coroutine[Any, Any, None] = asyncio.wait_for(once(), BOUND_S)
    asyncio.run(coroutine)


def test_a_batch_reaches_the_spyne_service_with_every_field_intact(executor: CountingPool) -> None:
    with NmsSimulator(secret=SECRET) as nms:
        export(nms.wsdl_url, executor, EVENTS)
        assert nms.deliveries[0].endpoint == "soap"
        assert nms.events == EVENTS  # the same instants (UTC+3 arrives as UTC), None stays None
        assert nms.events[1].account is None and nms.events[1].targets == ()
        assert nms.attempts == [Attempt("soap", 200)]
    assert executor.calls >= 1  # the WSDL fetch and the call ran in the pool


def test_503s_are_retried_then_the_batch_is_delivered_once(executor: CountingPool) -> None:
    with NmsSimulator(secret=SECRET, fail_first=2) as nms:
        export(nms.wsdl_url, executor, EVENTS[:1], retries=2)
        assert [a.status for a in nms.attempts] == [503, 503, 200]
        assert nms.events == EVENTS[:1]


def test_retries_are_bounded_then_a_transient_export_error(executor: CountingPool) -> None:
    with NmsSimulator(secret=SECRET, fail_first=100) as nms:
        with pytest.raises(ExportError, match="gave up after 2 attempts") as caught:
            export(nms.wsdl_url, executor, EVENTS, retries=1)
        assert not caught.value.permanent
        assert [a.status for a in nms.attempts] == [503, 503]


def test_a_client_fault_from_the_schema_is_permanent_and_not_retried(executor: CountingPool) -> None:
    too_long = NetworkEvent(31, 1, None, "x" * 65, None, "done", datetime(2026, 1, 1, tzinfo=UTC))
    with NmsSimulator(secret=SECRET) as nms:
        with pytest.raises(ExportError, match="Client") as caught:
            export(nms.wsdl_url, executor, [too_long], retries=3)
        assert caught.value.permanent and caught.value.attempts == 1
        assert len(nms.attempts) == 1 and nms.events == []


def test_an_unreachable_wsdl_is_retried_and_bounded(executor: CountingPool) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/soap?wsdl"
    started = time.monotonic()
    with pytest.raises(ExportError, match="gave up after 3 attempts") as caught:
        export(url, executor, EVENTS, retries=2)
    assert not caught.value.permanent and time.monotonic() - started < 10


def test_a_url_that_is_not_a_wsdl_fails_at_once(executor: CountingPool) -> None:
    with NmsSimulator(secret=SECRET) as nms:
        with pytest.raises(ExportError, match="unusable") as caught:
            export(nms.rest_url, executor, EVENTS)  # GET /events answers JSON, not a WSDL
        assert caught.value.attempts == 1
