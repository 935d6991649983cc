"""The error of usage rating and the field checks its value types share.

Every usage value type (traffic, time bands, prices, allowance, plan) and :func:`rating.usage.rate_usage`
refuse bad input with :class:`UsageError`; the checks live here so each refusal names the field
and what was expected in the same words, whichever type refuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

__all__ = ["UsageError"]


class UsageError(ValueError):
    """Usage, a usage plan or a rating argument that is not valid; the message names what and where."""


def check_int(value: object, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{field}: expected an integer, got a {type(value).__name__} ({value!r})")
    if value < minimum:
        raise UsageError(f"{field}: expected at least {minimum}, got {value}")
    return value


def check_price(value: object, field: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise UsageError(f"{field}: expected a Decimal, got a {type(value).__name__} ({value!r})")
    if not value.is_finite() or value < 0:
        raise UsageError(f"{field}: expected a finite amount of at least 0, got {value}")
    return value


def check_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise UsageError(f"{field}: expected a non-empty name without surrounding spaces, got {value!r}")
    return value


def check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{field}: expected true or false, got {value!r}")
    return value


def check_instant(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise UsageError(f"{field}: expected an aware UTC datetime, got a {type(value).__name__}")
    if value.utcoffset() is None:
        raise UsageError(f"{field}: expected an aware UTC datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def freeze_sequence(obj: object, attribute: str, kind: type, field: str) -> tuple:
    """Store a sequence attribute as a tuple of ``kind`` (a frozen dataclass stays hashable)."""
    value = getattr(obj, attribute)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise UsageError(f"{field}: expected a sequence of {kind.__name__}, got {value!r}")
    items = tuple(value)
    for position, item in enumerate(items):
        if not isinstance(item, kind):
            raise UsageError(f"{field}[{position}]: expected a {kind.__name__}, got {item!r}")
    object.__setattr__(obj, attribute, items)
    return items
