"""NMS export, the events' text forms and the file drop (``nms_adapters.events``, ``export_file``).

The serialisations are pinned by golden strings (other people's code parses them); the file drop
is checked against a reader polling the directory while batches land, the way an NMS collects
them. Also here: the settings' validation and ``exporter_for``, shared by all three adapters.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from nms_adapters.events import (
    NetworkEvent,
    events_from_csv,
    events_from_json,
    events_to_csv,
    events_to_json,
)
from nms_adapters.export_file import FileExporter, file_name
from nms_adapters.export_rest import RestExporter
from nms_adapters.export_soap import SoapExporter
from nms_adapters.exporters import ExportError, exporter_for
from nms_adapters.settings import FileExportSettings, RestExportSettings, SoapExportSettings

EVENTS = [
    NetworkEvent(
        task_id=7,
        service_id=1001,
        account="100042",
        action="throttle",
        speed_profile="256k/256k",
        outcome="done",
        at=datetime(2026, 12, 3, 15, 45, 15, 123456, tzinfo=UTC),
        targets=("nas:bras1", "switch:sw1:Gi0/3"),
    ),
    NetworkEvent(  # no account, no profile, no targets; a time given in UTC+3
        task_id=8,
        service_id=1002,
        account=None,
        action="deny",
        speed_profile=None,
        outcome="unknown",
        at=datetime(2026, 12, 3, 18, 0, tzinfo=timezone(timedelta(hours=3))),
    ),
    NetworkEvent(  # text that needs CSV quoting and JSON escaping
        task_id=9,
        service_id=1003,
        account='Ivanov, "A"',
        action="allow",
        speed_profile="100M",
        outcome="dead",
        at=datetime(2026, 12, 3, 15, 0, tzinfo=UTC),
        targets=("nas:bras 2",),
    ),
]

GOLDEN_JSON = (
    b'{"version":1,"events":['
    b'{"task_id":7,"service_id":1001,"account":"100042","action":"throttle","speed_profile":"256k/256k",'
    b'"outcome":"done","at":"2026-12-03T15:45:15.123456Z","targets":["nas:bras1","switch:sw1:Gi0/3"]},'
    b'{"task_id":8,"service_id":1002,"account":null,"action":"deny","speed_profile":null,'
    b'"outcome":"unknown","at":"2026-12-03T15:00:00.000000Z","targets":[]},'
    b'{"task_id":9,"service_id":1003,"account":"Ivanov, \\"A\\"","action":"allow","speed_profile":"100M",'
    b'"outcome":"dead","at":"2026-12-03T15:00:00.000000Z","targets":["nas:bras 2"]}]}'
)
GOLDEN_CSV = (
    b"task_id,service_id,account,action,speed_profile,outcome,at,targets\r\n"
    b"7,1001,100042,throttle,256k/256k,done,2026-12-03T15:45:15.123456Z,nas:bras1;switch:sw1:Gi0/3\r\n"
    b"8,1002,,deny,,unknown,2026-12-03T15:00:00.000000Z,\r\n"
    b'9,1003,"Ivanov, ""A""",allow,100M,dead,2026-12-03T15:00:00.000000Z,nas:bras 2\r\n'
)
FINAL_NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-\d+-\d+\.(json|csv)")


def batch(first: int, count: int) -> list[NetworkEvent]:
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    return [
        NetworkEvent(first + i, 5000 + i, f"A{i:06d}", "deny", None, "done", at, (f"nas:bras{i % 3}",))
        for i in range(count)
    ]


class RecordingExecutor(Executor):
    """A thread pool that remembers which functions it ran, and in which thread."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="nms-test")
        self.threads: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def run() -> Any:
            self.threads.append(threading.current_thread().name)
            return fn(*args, **kwargs)

        return self.pool.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@pytest.fixture
def executor() -> Iterator[RecordingExecutor]:
    pool = RecordingExecutor()
    yield pool
    pool.shutdown()


# --------------------------------------------------------------------------- serialisation


def test_json_form_is_stable_field_order_utc_microseconds_and_null_for_missing() -> None:
    assert events_to_json(EVENTS) == GOLDEN_JSON


def test_csv_form_is_stable_one_header_crlf_quoting_and_empty_for_missing() -> None:
    data = events_to_csv(EVENTS)
    assert data == GOLDEN_CSV
    assert data.count(b"task_id") == 1
    assert events_to_csv([]) == GOLDEN_CSV.split(b"\r\n")[0] + b"\r\n"  # an empty batch: the header only


def test_both_forms_read_back_to_the_same_events() -> None:
    assert events_from_json(GOLDEN_JSON) == EVENTS
    assert events_from_csv(GOLDEN_CSV) == EVENTS


def test_an_event_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        NetworkEvent(1, 1, None, "deny", None, "done", datetime(2026, 1, 1))


def test_a_target_holding_the_csv_separator_or_a_percent_survives_csv() -> None:
    odd = NetworkEvent(
        1, 1, None, "deny", None, "done", datetime(2026, 1, 1, tzinfo=UTC), ("a;b", "100%", "%3B")
    )
    data = events_to_csv([odd])
    assert data.endswith(b",a%3Bb;100%25;%253B\r\n")
    assert events_from_csv(data) == [odd]


def test_file_names_are_fixed_width_utc_and_sort_by_time() -> None:
    early = datetime(2026, 12, 3, 18, 0, 0, 5, tzinfo=timezone(timedelta(hours=3)))
    late = datetime(2026, 12, 3, 15, 0, 1, tzinfo=UTC)
    assert file_name(early, 42, 3, "json") == "20261203T150000.000005Z-42-3.json"
    assert sorted([file_name(late, 1, 1, "csv"), file_name(early, 999, 1, "csv")])[0].endswith("-999-1.csv")


# --------------------------------------------------------------------------- the file drop


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_batch_becomes_one_complete_file_whose_content_round_trips(
    tmp_path: Path, executor: RecordingExecutor, fmt: str
) -> None:
    exporter = FileExporter(FileExportSettings("drop", tmp_path, fmt), executor=executor)  # type: ignore[arg-type]
    asyncio.run(exporter.export(EVENTS))
    [path] = tmp_path.iterdir()
    assert FINAL_NAME.fullmatch(path.name) and path.name.endswith(f"-7-3.{fmt}")
    read = events_from_json if fmt == "json" else events_from_csv
    assert read(path.read_bytes()) == EVENTS
    assert executor.threads and all(t.startswith("nms-test") for t in executor.threads)  # not on the loop


def test_a_reader_polling_the_directory_never_sees_a_partial_or_temporary_file(
    tmp_path: Path, executor: RecordingExecutor
) -> None:
    """An NMS takes ``*.json`` as they appear; every file it opens parses whole, and no temp name shows."""
    exporter = FileExporter(FileExportSettings("drop", tmp_path, "json"), executor=executor)
    batches, size = 30, 2000  # ~0.3 MB a file: a non-atomic write would be caught half-written
    stop = threading.Event()
    seen: dict[str, int] = {}
    problems: list[str] = []

    def reader() -> None:
        while True:
            last_pass = stop.is_set()  # once the writer is done, one more full pass, then stop
            for path in tmp_path.glob("*.json"):
                if path.name in seen:
                    continue
                if not FINAL_NAME.fullmatch(path.name):
                    problems.append(f"temporary name visible: {path.name}")
                try:
                    seen[path.name] = len(events_from_json(path.read_bytes()))
                except ValueError as exc:
                    problems.append(f"{path.name}: partial: {exc}")
                    seen[path.name] = -1
            if last_pass:
                return

    async def write_all() -> None:
        for i in range(batches):
            await exporter.export(batch(i * size, size))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        asyncio.run(asyncio.wait_for(write_all(), timeout=60))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert problems == []
    assert sorted(seen.values()) == [size] * batches
    assert [p.name for p in tmp_path.iterdir() if not FINAL_NAME.fullmatch(p.name)] == []  # no temp left


def test_batches_written_in_the_same_microsecond_get_distinct_increasing_names(tmp_path: Path) -> None:
    frozen = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    exporter = FileExporter(FileExportSettings("drop", tmp_path, "csv"), clock=lambda: frozen)

    async def three() -> None:
        for _ in range(3):
            await exporter.export(batch(1, 2))

    asyncio.run(three())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "20261203T150000.000000Z-1-2.csv",
        "20261203T150000.000001Z-1-2.csv",
        "20261203T150000.000002Z-1-2.csv",
    ]


def test_an_empty_batch_writes_no_file(tmp_path: Path) -> None:
    asyncio.run(FileExporter(FileExportSettings("drop", tmp_path)).export([]))
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_an_export_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    exporter = FileExporter(FileExportSettings("drop", missing))
    with pytest.raises(ExportError, match="nope") as caught:
        asyncio.run(exporter.export(EVENTS))
    assert caught.value.exporter == "drop" and not caught.value.permanent
    assert not missing.exists()


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("nms_adapters.export_file.os.replace", refuse)
    with pytest.raises(ExportError, match="No space left"):
        asyncio.run(FileExporter(FileExportSettings("drop", tmp_path)).export(EVENTS))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- settings, exporter_for


def test_exporter_for_builds_the_adapter_each_settings_type_names(tmp_path: Path) -> None:
    secret = b"s" * 32
    with ThreadPoolExecutor(1) as pool:
        assert isinstance(exporter_for(FileExportSettings("f", tmp_path), executor=pool), FileExporter)
        rest = exporter_for(RestExportSettings("r", "http://127.0.0.1:9/events", secret), executor=pool)
        soap = exporter_for(SoapExportSettings("s", "http://127.0.0.1:9/soap?wsdl"), executor=pool)
    assert isinstance(rest, RestExporter) and rest.name == "r"
    assert isinstance(soap, SoapExporter) and soap.name == "s"
    with pytest.raises(TypeError):
        exporter_for(object(), executor=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: FileExportSettings("bad name", p), "name"),
        (lambda p: FileExportSettings("f", p, "xml"), "format"),
        (lambda p: RestExportSettings("r", "ftp://nms/x", b"s" * 32), "url"),
        (lambda p: RestExportSettings("r", "http://nms/x", b"short"), "secret"),
        (lambda p: RestExportSettings("r", "http://nms/x", b"s" * 32, timeout_s=0), "timeout_s"),
        (lambda p: RestExportSettings("r", "http://nms/x", b"s" * 32, retries=11), "retries"),
        (lambda p: SoapExportSettings("s", "http://nms/x", backoff_s=-1), "backoff_s"),
        (lambda p: SoapExportSettings("s", "http://nms/x", retries=True), "retries"),
    ],
)
def test_settings_refuse_values_outside_their_documented_ranges(
    tmp_path: Path, build: Callable[[Path], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(tmp_path)


def test_rest_settings_never_show_the_secret() -> None:
    settings = RestExportSettings("r", "http://nms/x", b"very-secret-value-123")
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)


def test_the_default_executor_is_used_when_none_is_given(tmp_path: Path) -> None:
    started = time.monotonic()
    asyncio.run(FileExporter(FileExportSettings("drop", tmp_path)).export(EVENTS[:1]))
    assert len(list(tmp_path.iterdir())) == 1 and time.monotonic() - started < 10
