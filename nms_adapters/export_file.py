"""File-drop export: each batch of events becomes one CSV or JSON file in a directory, atomically.

What: the batch is written to a hidden temporary file in the target directory
(``.<final name>.<random>.tmp``), flushed and fsynced, then renamed with ``os.replace`` to its
final name ``<UTC time>-<first task id>-<count>.<csv|json>``, e.g. ``20261203T154515.123456Z-42-3.json``;
the directory is fsynced after the rename, so the file survives a crash once ``export`` returns.

Why: an NMS polling the directory must never read half a file. A rename within one file system
is atomic, so a reader that takes only ``*.json`` / ``*.csv`` names (the temporary name starts
with a dot and ends in ``.tmp``) sees each file complete or not at all. Names sort by time (fixed
width); within one exporter each name is strictly later than the previous one (a clash in the
same microsecond moves on by one microsecond), and an existing file is never overwritten by
this process. The write and the fsyncs block, so they run in the executor, never on the loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nms_adapters.events import NetworkEvent, events_to_csv, events_to_json
from nms_adapters.exporters import ExportError
from nms_adapters.settings import FileExportSettings

__all__ = ["TEMP_SUFFIX", "FileExporter", "file_name"]

TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o644
"""Mode of a new file before the umask: the NMS's reader is often another user of the same group."""


def file_name(at: datetime, first_task_id: int, count: int, ext: str) -> str:
    """``<UTC time>-<first task id>-<count>.<ext>``; the time is fixed-width, so names sort by time."""
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{first_task_id}-{count}.{ext}"


class FileExporter:
    """Drops each batch into ``settings.directory`` as one file (see the module docstring)."""

    def __init__(
        self,
        settings: FileExportSettings,
        *,
        executor: Executor | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self._executor = executor
        self._clock = clock
        self._lock = threading.Lock()  # one write at a time: names stay strictly increasing
        self._last: datetime | None = None

    async def export(self, events: Sequence[NetworkEvent]) -> None:
        """Write ``events`` as one file (nothing for an empty batch); :class:`ExportError` on failure."""
        if not events:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.write, events)
        except OSError as exc:
            raise ExportError(
                f"{self.name}: cannot write to {self.settings.directory}: {exc}", exporter=self.name
            ) from exc

    def write(self, events: Sequence[NetworkEvent]) -> Path:
        """Blocking: serialise and drop the batch; the final path. Call it from a worker thread."""
        fmt = self.settings.format
        data = events_to_json(events) if fmt == "json" else events_to_csv(events)
        directory = self.settings.directory
        with self._lock:
            at = self._clock()
            if self._last is not None and at <= self._last:
                at = self._last + timedelta(microseconds=1)
            while (final := directory / file_name(at, events[0].task_id, len(events), fmt)).exists():
                at += timedelta(microseconds=1)
            self._last = at
            temp = directory / f".{final.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, final)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temp)
                raise
            _fsync_directory(directory)
        return final

    async def close(self) -> None:
        """Nothing to release (for symmetry with the HTTP exporters)."""


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (the directory entry), where the platform allows it."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
