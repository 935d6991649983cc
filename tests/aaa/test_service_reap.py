"""The daemon's reaper pass: it closes stale sessions, then runs the injected ``after_reap`` hook.

``billingd`` injects the release of quota holds of sessions closed without a Stop; ``aaa``
only knows it as a callable. The periodic method is called directly, with the thread pool
replaced by a synchronous call, so no reactor runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import create_engine
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from aaa.service import AaaService
from aaa.settings import AaaSettings


class FakeStore:
    """Stands in for :class:`aaa.accounting_store.AccountingStore`: records reaper calls."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[datetime, float, int | None]] = []

    def reap(self, now: datetime, factor: float, *, default_interval_s: int | None = None) -> int:
        self.calls.append((now, factor, default_interval_s))
        if self.fail:
            raise RuntimeError("database down")
        return 2


def _service(monkeypatch: pytest.MonkeyPatch, store: FakeStore, hook: Any) -> AaaService:
    service = AaaService(Clock(), AaaSettings(), create_engine("sqlite://"), after_reap=hook)
    service.store = store  # type: ignore[assignment]

    def in_pool(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return maybeDeferred(f, *args, **kwargs)

    monkeypatch.setattr(service, "_in_pool", in_pool)
    return service


def test_the_hook_runs_after_each_reap_with_the_reapers_time(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    seen: list[datetime] = []
    store = FakeStore()

    def hook(at: datetime) -> int:
        order.append("hook" if store.calls else "hook before reap")
        seen.append(at)
        return 3

    service = _service(monkeypatch, store, hook)
    results: list[Any] = []
    service._reap().addBoth(results.append)
    assert order == ["hook"]
    assert seen == [store.calls[0][0]]  # the same instant the reaper used
    assert seen[0].tzinfo is not None
    assert len(results) == 1 and not isinstance(results[0], Failure)


def test_the_hook_runs_even_when_reaping_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions closed by Accounting-On/Off need their holds released whatever the reaper did."""
    seen: list[datetime] = []
    service = _service(monkeypatch, FakeStore(fail=True), lambda at: seen.append(at) or 0)
    results: list[Any] = []
    service._reap().addBoth(results.append)
    assert len(seen) == 1
    assert len(results) == 1 and not isinstance(results[0], Failure)


def test_a_failing_hook_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def hook(_at: datetime) -> int:
        raise RuntimeError("boom")

    service = _service(monkeypatch, FakeStore(), hook)
    results: list[Any] = []
    service._reap().addBoth(results.append)
    assert results == [None]  # logged and swallowed: the LoopingCall keeps running


def test_without_a_hook_only_the_reaper_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore()
    service = _service(monkeypatch, store, None)
    results: list[Any] = []
    service._reap().addBoth(results.append)
    assert len(store.calls) == 1 and results == [2]
