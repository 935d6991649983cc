"""How results are shown: rich tables for people, ``--json`` for scripts.

JSON output is one document on stdout made by :func:`billing.audit.json_safe` (Decimals as
strings, times as ISO 8601 UTC); messages and progress go to stderr so stdout stays parseable.
rich is imported on first use, not at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    """The ``--json`` flag every read and write command has."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(
        function
    )


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, width=None if stderr else 160, soft_wrap=False, highlight=False)


def emit(result: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``result`` as JSON, or hand it to ``render`` for people."""
    if as_json:
        from billing.audit import json_safe

        click.echo(json.dumps(json_safe(result), indent=2, ensure_ascii=False))
    else:
        render(result)


def text(value: Any) -> str:
    """One table cell: times in UTC without microseconds, amounts in cents when exact, None as empty."""
    from decimal import Decimal

    from billing.audit import json_safe
    from rating.money import format_amount

    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, list | tuple):
        return ", ".join(text(v) for v in value)
    safe = json_safe(value)
    return safe if isinstance(safe, str) else json.dumps(safe, ensure_ascii=False)


def table(
    title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[str] = ()
) -> None:
    """Print a table; columns named in ``numeric`` are right-aligned."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left")
    for header in headers:
        grid.add_column(header, justify="right" if header in numeric else "left", overflow="fold")
    for row in rows:
        grid.add_row(*(text(v) for v in row))
    console().print(grid)


def fields(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    """Print a two-column "field: value" table."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left", show_header=False)
    grid.add_column("field", style="bold")
    grid.add_column("value", overflow="fold")
    for name, value in pairs:
        grid.add_row(name, text(value))
    console().print(grid)


def done(message: str) -> None:
    """A one-line confirmation of a change."""
    click.echo(message)
