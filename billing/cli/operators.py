"""``billing-admin operators`` and ``billing-admin roles``: staff accounts and what they may do.

Reads need ``operators.read``, changes ``operators.write``; the work is :mod:`billing.operators`.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState


@click.group("operators")
def group() -> None:
    """Operators (billing staff): each is an OS login with roles."""


def _render_operator(info: Any) -> None:
    output.fields(
        f"Operator {info.login}",
        [
            ("login", info.login),
            ("name", info.full_name),
            ("active", "yes" if info.active else "no"),
            ("created", info.created_at),
            ("roles", info.roles),
            ("permissions", info.permissions),
        ],
    )


@group.command(
    epilog='\b\nExamples:\n  billing-admin operators create jdoe --name "Jane Doe" --role billing\n'
    '  billing-admin operators create audit1 --name "Ext. Auditor" --role auditor --role support'
)
@click.argument("login")
@click.option("--name", "full_name", required=True, help="Full name.")
@click.option(
    "--role", "roles", multiple=True, required=True, help="Role to grant (repeatable); see 'roles list'."
)
@output.json_option
@click.pass_obj
def create(state: AppState, login: str, full_name: str, roles: tuple[str, ...], as_json: bool) -> None:
    """Create operator LOGIN (the person's OS login) with the given roles."""
    from billing import operators

    info = state.run(
        "operators.write",
        "operators create",
        lambda session, actor: operators.create(session, actor, login, full_name, roles),
    )
    output.emit(info, as_json, _render_operator)


@group.command("list", epilog="\b\nExample:\n  billing-admin operators list --json")
@output.json_option
@click.pass_obj
def list_(state: AppState, as_json: bool) -> None:
    """List every operator with its roles."""
    from billing import operators

    found = state.run("operators.read", "operators list", lambda session, _: operators.list_all(session))
    output.emit(
        found,
        as_json,
        lambda rows: output.table(
            "Operators",
            ["login", "name", "active", "roles"],
            [(o.login, o.full_name, "yes" if o.active else "no", o.roles) for o in rows],
        ),
    )


@group.command(epilog="\b\nExample:\n  billing-admin operators show jdoe")
@click.argument("login")
@output.json_option
@click.pass_obj
def show(state: AppState, login: str, as_json: bool) -> None:
    """Show operator LOGIN with its roles and permissions."""
    from billing import operators

    info = state.run("operators.read", "operators show", lambda session, _: operators.show(session, login))
    output.emit(info, as_json, _render_operator)


@group.command(epilog="\b\nExample:\n  billing-admin operators grant jdoe support")
@click.argument("login")
@click.argument("role")
@output.json_option
@click.pass_obj
def grant(state: AppState, login: str, role: str, as_json: bool) -> None:
    """Give ROLE to operator LOGIN."""
    from billing import operators

    info = state.run(
        "operators.write",
        "operators grant",
        lambda session, actor: operators.grant(session, actor, login, role),
    )
    output.emit(info, as_json, _render_operator)


@group.command(epilog="\b\nExample:\n  billing-admin operators revoke jdoe billing")
@click.argument("login")
@click.argument("role")
@output.json_option
@click.pass_obj
def revoke(state: AppState, login: str, role: str, as_json: bool) -> None:
    """Take ROLE from operator LOGIN."""
    from billing import operators

    info = state.run(
        "operators.write",
        "operators revoke",
        lambda session, actor: operators.revoke(session, actor, login, role),
    )
    output.emit(info, as_json, _render_operator)


@group.command(epilog="\b\nExample:\n  billing-admin operators disable jdoe")
@click.argument("login")
@output.json_option
@click.pass_obj
def disable(state: AppState, login: str, as_json: bool) -> None:
    """Disable operator LOGIN: it can no longer act; its history stays."""
    from billing import operators

    info = state.run(
        "operators.write",
        "operators disable",
        lambda session, actor: operators.disable(session, actor, login),
    )
    output.emit(info, as_json, _render_operator)


@click.group("roles")
def roles() -> None:
    """Roles and the permissions they grant (built in, from the first migration)."""


@roles.command("list", epilog="\b\nExample:\n  billing-admin roles list --json")
@output.json_option
@click.pass_obj
def list_roles(state: AppState, as_json: bool) -> None:
    """List every role with its permissions."""
    from billing import operators

    found = state.run("operators.read", "roles list", lambda session, _: operators.list_roles(session))
    output.emit(
        found,
        as_json,
        lambda rows: output.table(
            "Roles",
            ["role", "description", "permissions"],
            [(r.name, r.description, r.permissions) for r in rows],
        ),
    )
