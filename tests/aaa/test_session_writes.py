"""PostgreSQL array literals for the accounting store's array parameters (``pg_array``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aaa.session_writes import pg_array


def test_strings_are_always_quoted_and_only_backslash_and_quote_escaped() -> None:
    assert pg_array(["a", "", "NULL", "x,y", "{z}", 'q"q', "b\\s"]) == (
        '{"a","","NULL","x,y","{z}","q\\"q","b\\\\s"}'
    )


def test_none_is_null_ints_and_aware_times_are_bare() -> None:
    at = datetime(2026, 12, 3, 8, 16, 28, 123456, tzinfo=UTC)
    assert pg_array([1, None, -7]) == "{1,NULL,-7}"
    assert pg_array([at, None]) == "{2026-12-03T08:16:28.123456+00:00,NULL}"
    assert pg_array([]) == "{}"


@pytest.mark.parametrize("value", [1.5, True, b"x"])
def test_other_types_are_refused_naming_the_value(value: object) -> None:
    with pytest.raises(TypeError, match="pg_array: unsupported"):
        pg_array([value])  # type: ignore[list-item]
