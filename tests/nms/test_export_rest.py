"""NMS export over REST: the signed JSON webhook against the NMS simulator's receiver.

Each test runs an :class:`~simulators.nms.NmsSimulator` on a free loopback port (a thread of this
process, joined on exit) and exports through :class:`~nms_adapters.export_rest.RestExporter` on a
fresh asyncio loop with a thread pool of its own. Retries use millisecond backoffs; every
export is bounded by ``asyncio.wait_for``. The last test runs ``billing-sim nms`` as a process.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nms_adapters.events import NetworkEvent, events_to_json
from nms_adapters.export_rest import SIGNATURE_HEADER, TIMESTAMP_HEADER, RestExporter, sign, verify
from nms_adapters.exporters import ExportError
from nms_adapters.settings import RestExportSettings
from simulators.nms import Attempt, NmsSimulator

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"nms-webhook-secret-0123456789"
EVENTS = [
    NetworkEvent(
        11, 2001, "100042", "throttle", "256k/256k", "done", datetime(2026, 12, 3, 15, 0, 1, tzinfo=UTC),
        ("nas:bras1",),
    ),
    NetworkEvent(12, 2002, None, "deny", None, "dead", datetime(2026, 12, 3, 15, 0, 2, tzinfo=UTC)),
]  # fmt: skip
BOUND_S = 20.0


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not extra, extra


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4, thread_name_prefix="nms-test") as pool:
        yield pool


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, BOUND_S))


def exporter(url: str, executor: ThreadPoolExecutor, **overrides: Any) -> RestExporter:
    settings: dict[str, Any] = {"secret": SECRET, "timeout_s": 2.0, "retries": 3, "backoff_s": 0.01}
    settings.update(overrides)
    clock = settings.pop("clock", time.time)
    return RestExporter(RestExportSettings("nms1", url, **settings), executor=executor, clock=clock)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


# --------------------------------------------------------------------------- the signature scheme


def test_signature_is_hmac_sha256_of_timestamp_dot_raw_body_in_hex() -> None:
    """Golden value from ``printf '1796312715.<body>' | openssl dgst -sha256 -hmac <secret>``."""
    body = b'{"version":1,"events":[]}'
    expected = "sha256=5ea7ba5f3178d3435cb4543a278b44d4eee255025a0cc256d5a3682257ecaf30"
    assert sign(SECRET, "1796312715", body) == expected
    assert hmac.new(SECRET, b"1796312715." + body, hashlib.sha256).hexdigest() == expected[7:]


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "reason"),
    [
        ("1000", None, b"{}", 1000, "missing"),
        ("10e3", "sha256=00", b"{}", 1000, "malformed timestamp"),
        ("1000", sign(SECRET, "1000", b"{}"), b"{ }", 1000, "bad signature"),  # body changed
        ("1001", sign(SECRET, "1000", b"{}"), b"{}", 1000, "bad signature"),  # timestamp changed
        ("1000", sign(b"x" * 29, "1000", b"{}"), b"{}", 1000, "bad signature"),  # other secret
        ("1000", sign(SECRET, "1000", b"{}"), b"{}", 1301, "window"),  # replayed 301 s later
        ("1000", sign(SECRET, "1000", b"{}"), b"{}", 1300, None),
    ],
)
def test_verify_refuses_a_changed_body_timestamp_secret_or_a_stale_request(
    timestamp: str, signature: str | None, body: bytes, now: float, reason: str | None
) -> None:
    result = verify(SECRET, timestamp, signature, body, now=now, window_s=300)
    assert (result is None) if reason is None else (result is not None and reason in result)


# --------------------------------------------------------------------------- against the receiver


def test_a_signed_batch_is_received_once_with_every_field(executor: ThreadPoolExecutor) -> None:
    with NmsSimulator(secret=SECRET) as nms:
        run(exporter(nms.rest_url, executor).export(EVENTS))
        assert nms.events == EVENTS
        assert nms.attempts == [Attempt("rest", 200)]


def test_a_wrong_secret_is_refused_with_401_and_not_retried(executor: ThreadPoolExecutor) -> None:
    with NmsSimulator(secret=SECRET) as nms:
        with pytest.raises(ExportError, match="401") as caught:
            run(exporter(nms.rest_url, executor, secret=b"not-the-nms-secret-at-all").export(EVENTS))
        assert caught.value.permanent and caught.value.attempts == 1
        assert nms.attempts == [Attempt("rest", 401)] and nms.events == []


def test_a_tampered_body_or_timestamp_is_refused_by_the_receiver() -> None:
    body = events_to_json(EVENTS)
    timestamp = str(int(time.time()))
    signature = sign(SECRET, timestamp, body)
    good = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature}
    with NmsSimulator(secret=SECRET) as nms:
        assert post(nms.rest_url, body.replace(b"throttle", b"allow\x20\x20\x20"), good) == 401
        assert post(nms.rest_url, body, {**good, TIMESTAMP_HEADER: str(int(timestamp) + 1)}) == 401
        assert post(nms.rest_url, body, {**good, SIGNATURE_HEADER: ""}) == 401
        assert nms.events == []
        assert post(nms.rest_url, body, good) == 200  # the untouched request passes
        assert nms.events == EVENTS


def test_a_stale_timestamp_is_refused(executor: ThreadPoolExecutor) -> None:
    with NmsSimulator(secret=SECRET, window_s=300) as nms:
        late = exporter(nms.rest_url, executor, clock=lambda: time.time() - 301)
        with pytest.raises(ExportError, match="window"):
            run(late.export(EVENTS))
        assert nms.events == []


def test_503s_are_retried_with_backoff_then_the_batch_is_delivered_once(executor: ThreadPoolExecutor) -> None:
    with NmsSimulator(secret=SECRET, fail_first=2) as nms:
        run(exporter(nms.rest_url, executor, retries=3).export(EVENTS))
        assert [a.status for a in nms.attempts] == [503, 503, 200]
        assert nms.events == EVENTS


def test_retries_are_bounded_then_a_transient_export_error(executor: ThreadPoolExecutor) -> None:
    with NmsSimulator(secret=SECRET, fail_first=100) as nms:
        with pytest.raises(ExportError, match="gave up after 3 attempts") as caught:
            run(exporter(nms.rest_url, executor, retries=2).export(EVENTS))
        assert not caught.value.permanent and caught.value.attempts == 3
        assert [a.status for a in nms.attempts] == [503, 503, 503]


def test_a_4xx_is_not_retried(executor: ThreadPoolExecutor) -> None:
    with NmsSimulator(secret=SECRET) as nms:
        wrong_path = nms.rest_url.replace("/events", "/nothing-here")
        with pytest.raises(ExportError, match="404") as caught:
            run(exporter(wrong_path, executor, retries=5).export(EVENTS))
        assert caught.value.permanent and caught.value.attempts == 1


def test_a_refused_connection_is_retried_and_bounded(executor: ThreadPoolExecutor) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/events"
    started = time.monotonic()
    with pytest.raises(ExportError, match=r"gave up after 3 attempts.*(Refused|refused)"):
        run(exporter(url, executor, retries=2).export(EVENTS))
    assert time.monotonic() - started < 5


def test_a_receiver_that_never_answers_times_out_and_is_retried(executor: ThreadPoolExecutor) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/events"
        started = time.monotonic()
        with pytest.raises(ExportError, match=r"gave up after 2 attempts.*(timed out|Timeout)") as caught:
            run(exporter(url, executor, timeout_s=0.3, retries=1).export(EVENTS))
        elapsed = time.monotonic() - started
    assert not caught.value.permanent
    assert 0.6 <= elapsed < 3


def test_waiting_on_a_slow_receiver_never_blocks_the_event_loop(executor: ThreadPoolExecutor) -> None:
    """A loop timer keeps firing on time while an export waits 2 x 0.4 s on a silent receiver."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/events"
        slow = exporter(url, executor, timeout_s=0.4, retries=1)

        async def measure() -> float:
            worst, ticking = 0.0, True

            async def ticker() -> None:
                nonlocal worst
                last = time.monotonic()
                while ticking:
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    worst, last = max(worst, now - last), now

            tick = asyncio.create_task(ticker())
            with pytest.raises(ExportError):
                await slow.export(EVENTS)
            ticking = False
            await tick
            return worst

        assert run(measure()) < 0.2


def test_an_empty_batch_sends_nothing(executor: ThreadPoolExecutor) -> None:
    with NmsSimulator(secret=SECRET) as nms:
        run(exporter(nms.rest_url, executor).export([]))
        assert nms.attempts == []


# --------------------------------------------------------------------------- billing-sim nms


def test_billing_sim_nms_serves_until_terminated_and_prints_what_it_received(
    executor: ThreadPoolExecutor,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.main", "nms", "--port", "0", "--secret", SECRET.decode()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # the simulator prints its URLs at once (bounded by BOUND_S below)
        assert first.startswith("nms: rest http://127.0.0.1:"), first + process.stderr.read()  # type: ignore[union-attr]
        rest_url = first.split()[2]
        run(exporter(rest_url, executor).export(EVENTS))
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(rest_url, timeout=5) as reply:
            assert len(json.loads(reply.read())["events"]) == 2  # GET /events lists them
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=BOUND_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "rest: task 11 service 2001 account 100042 throttle 256k/256k done" in out
    assert "nms: events 2, deliveries 1, posts 1, refused or failed 0" in out
