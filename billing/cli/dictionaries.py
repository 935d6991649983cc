"""``billing-admin dict``: list, add, rename and deactivate dictionary values.

Kinds: subscriber_category, region, status_reason, adjustment_reason. Reads need
``dictionaries.read``, changes ``dictionaries.write``; the work is :mod:`billing.dictionaries`.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState


@click.group("dict")
def group() -> None:
    """Dictionaries: subscriber categories, regions, status and adjustment reasons."""


def _render_value(value: Any) -> None:
    state = "active" if value.active else "inactive"
    output.done(f"{value.kind} {value.code}: {value.name} ({state})")


@group.command(
    "list", epilog="\b\nExamples:\n  billing-admin dict list\n  billing-admin dict list region --json"
)
@click.argument("kind", required=False)
@output.json_option
@click.pass_obj
def list_(state: AppState, kind: str | None, as_json: bool) -> None:
    """List the values of dictionary KIND (default: of every dictionary)."""
    from billing import dictionaries

    values = state.run(
        "dictionaries.read", "dict list", lambda session, _: dictionaries.list_values(session, kind)
    )
    output.emit(
        values,
        as_json,
        lambda found: output.table(
            "Dictionary values",
            ["kind", "code", "name", "active", "order"],
            [(v.kind, v.code, v.name, "yes" if v.active else "no", v.sort_order) for v in found],
        ),
    )


@group.command(
    epilog='\b\nExamples:\n  billing-admin dict add region north "North district"\n'
    '  billing-admin dict add adjustment_reason goodwill "Goodwill credit"'
)
@click.argument("kind")
@click.argument("code")
@click.argument("name")
@click.option("--sort-order", type=int, default=0, show_default=True, help="Position in lists.")
@output.json_option
@click.pass_obj
def add(state: AppState, kind: str, code: str, name: str, sort_order: int, as_json: bool) -> None:
    """Add value CODE (shown as NAME) to dictionary KIND."""
    from billing import dictionaries

    value = state.run(
        "dictionaries.write",
        "dict add",
        lambda session, actor: dictionaries.add(session, actor, kind, code, name, sort_order=sort_order),
    )
    output.emit(value, as_json, _render_value)


@group.command(epilog='\b\nExample:\n  billing-admin dict rename region north "Northern district"')
@click.argument("kind")
@click.argument("code")
@click.argument("name")
@output.json_option
@click.pass_obj
def rename(state: AppState, kind: str, code: str, name: str, as_json: bool) -> None:
    """Give value CODE of dictionary KIND the display name NAME (the code stays)."""
    from billing import dictionaries

    value = state.run(
        "dictionaries.write",
        "dict rename",
        lambda session, actor: dictionaries.rename(session, actor, kind, code, name),
    )
    output.emit(value, as_json, _render_value)


@group.command(epilog="\b\nExample:\n  billing-admin dict deactivate region south")
@click.argument("kind")
@click.argument("code")
@output.json_option
@click.pass_obj
def deactivate(state: AppState, kind: str, code: str, as_json: bool) -> None:
    """Stop offering value CODE of dictionary KIND for new records (existing ones keep it)."""
    from billing import dictionaries

    value = state.run(
        "dictionaries.write",
        "dict deactivate",
        lambda session, actor: dictionaries.deactivate(session, actor, kind, code),
    )
    output.emit(value, as_json, _render_value)
