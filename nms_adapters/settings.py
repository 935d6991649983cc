"""Settings of the NMS export adapters: one frozen dataclass per adapter type.

What: :class:`FileExportSettings` (CSV/JSON drop into a directory), :class:`RestExportSettings`
(signed JSON webhook) and :class:`SoapExportSettings` (a SOAP call to the NMS's service);
:data:`NmsSettings` is their union and :data:`SETTINGS_BY_TYPE` maps the TOML ``type`` key of a
``[[provisioning.nms]]`` block to its class.

Why here and plain: ``billing.config`` builds these from TOML (collecting every error of the file
at once); ``nms_adapters`` never imports ``billing``, so secrets arrive already revealed, as bytes.
Each ``__post_init__`` still checks its own values (``ValueError`` naming the key), so an adapter
never runs with a setting the README calls invalid, whoever built it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "BACKOFF_CAP_S",
    "FORMATS",
    "MAX_BACKOFF_S",
    "MAX_RETRIES",
    "MAX_TIMEOUT_S",
    "MIN_SECRET_BYTES",
    "SETTINGS_BY_TYPE",
    "FileExportSettings",
    "NmsSettings",
    "RestExportSettings",
    "SoapExportSettings",
]

FORMATS: tuple[str, ...] = ("csv", "json")
MAX_TIMEOUT_S = 300.0
"""The longest socket timeout allowed for one HTTP attempt (connect, and each read)."""
MAX_RETRIES = 10
"""Attempts after the first failed one; with the backoff cap this bounds one export's time."""
MAX_BACKOFF_S = 60.0
"""The largest configurable first backoff."""
BACKOFF_CAP_S = 60.0
"""No delay between two attempts is longer, however many retries (the delay doubles each time)."""
MIN_SECRET_BYTES = 16
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name: {name!r}: 1 to 64 letters, digits, '_', '.', '-'")


def _check_url(url: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url: {url!r}: an http:// or https:// URL with a host")


def _check_timing(timeout_s: float, retries: int, backoff_s: float) -> None:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not math.isfinite(timeout_s):
        raise ValueError(f"timeout_s: {timeout_s!r}: a number of seconds")
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s: {timeout_s}: must be > 0 and <= {MAX_TIMEOUT_S:g}")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries: {retries!r}: an integer, 0 to {MAX_RETRIES}")
    if isinstance(backoff_s, bool) or not isinstance(backoff_s, int | float) or not math.isfinite(backoff_s):
        raise ValueError(f"backoff_s: {backoff_s!r}: a number of seconds")
    if not 0 <= backoff_s <= MAX_BACKOFF_S:
        raise ValueError(f"backoff_s: {backoff_s}: must be >= 0 and <= {MAX_BACKOFF_S:g}")


@dataclass(frozen=True)
class FileExportSettings:
    """Drop each batch of events as one CSV or JSON file into ``directory`` (atomic rename).

    ``directory`` must exist and be writable when an export runs (it is not created: a typo
    should fail loudly, not fill a new directory nobody reads).
    """

    name: str
    directory: Path
    format: Literal["csv", "json"] = "json"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.directory, Path) or not str(self.directory):
            raise ValueError(f"directory: {self.directory!r}: a path")
        if self.format not in FORMATS:
            raise ValueError(f"format: {self.format!r}: one of {', '.join(FORMATS)}")


@dataclass(frozen=True)
class RestExportSettings:
    """POST each batch as JSON to ``url``, signed with HMAC-SHA256 under ``secret`` (README "NMS export").

    One export makes at most ``1 + retries`` attempts, each bounded by ``timeout_s`` per socket
    operation, sleeping ``backoff_s``, ``2*backoff_s``, ... (capped at 60 s) between them.
    """

    name: str
    url: str
    secret: bytes
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_url(self.url)
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret: at least {MIN_SECRET_BYTES} bytes (32 random bytes recommended)")
        _check_timing(self.timeout_s, self.retries, self.backoff_s)

    def __repr__(self) -> str:  # never the secret
        return (
            f"RestExportSettings(name={self.name!r}, url={self.url!r}, secret=b'********', "
            f"timeout_s={self.timeout_s!r}, retries={self.retries!r}, backoff_s={self.backoff_s!r})"
        )


@dataclass(frozen=True)
class SoapExportSettings:
    """Call ``Report(events)`` of the NMS's SOAP service described by the WSDL at ``url``.

    ``url`` is the WSDL's address (e.g. ``http://nms:8090/soap?wsdl``); the service address is the
    one the WSDL names. Retries as :class:`RestExportSettings` (``backoff_s`` is an addition to
    the interface sketch, with a default).
    """

    name: str
    url: str
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_url(self.url)
        _check_timing(self.timeout_s, self.retries, self.backoff_s)


NmsSettings = FileExportSettings | RestExportSettings | SoapExportSettings
"""The settings of one configured NMS exporter (a ``[[provisioning.nms]]`` block)."""

SETTINGS_BY_TYPE: dict[
    str, type[FileExportSettings] | type[RestExportSettings] | type[SoapExportSettings]
] = {
    "file": FileExportSettings,
    "rest": RestExportSettings,
    "soap": SoapExportSettings,
}
"""The TOML ``type`` key of a ``[[provisioning.nms]]`` block -> its settings class."""
