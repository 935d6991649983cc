"""The daemon freezes (``gc.freeze``) only snapshots loaded whole, never a patched one.

Freezing moves every object the collector tracks to the permanent generation, garbage of
requests in flight included. A patch arrives per NOTIFY batch, i.e. with every payment when the
payment API shares the process: freezing there kept each request's cyclic garbage forever.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from sqlalchemy import create_engine
from twisted.internet.task import Clock

from aaa.service import AaaService
from aaa.settings import AaaSettings
from aaa.snapshot import Snapshot


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_patched_snapshot_leaves_cyclic_garbage_collectable_and_a_loaded_one_is_frozen() -> None:
    service = AaaService(Clock(), AaaSettings(), create_engine("sqlite://"))
    snapshot = Snapshot(loaded_at=datetime.now(UTC))
    gc.collect()
    frozen = gc.get_freeze_count()
    try:
        _Cycle()  # garbage a request left behind, not collected yet
        service._use(snapshot)  # a patch
        assert gc.get_freeze_count() == frozen
        assert gc.collect() >= 1  # the garbage was still collectable
        service._use(snapshot, loaded=True)
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
