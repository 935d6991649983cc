"""``billing-admin db``: schema migrations and the first operator.

``upgrade`` and ``current`` need no operator: they run before there is a schema, and access
to the database URL is the credential. ``bootstrap`` creates the first operator, as admin,
and is refused (exit 3, audited) once any operator exists.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState


@click.group("db")
def group() -> None:
    """The database schema and the first operator."""


@group.command(epilog="\b\nExample:\n  billing-admin db upgrade")
@output.json_option
@click.pass_obj
def upgrade(state: AppState, as_json: bool) -> None:
    """Migrate the schema to the newest revision (an up-to-date database is left alone)."""
    from billing.db import migrate

    def work(engine: Any) -> dict[str, str | None]:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine)
        return {"from": before, "to": migrate.current_revision(engine)}

    result = state.engine_call(work)
    output.emit(result, as_json, lambda r: output.done(f"schema at {r['to']} (was {r['from'] or 'empty'})"))


@group.command(epilog="\b\nExample:\n  billing-admin db current --json")
@output.json_option
@click.pass_obj
def current(state: AppState, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one this code ships."""
    from billing.db import migrate

    def work(engine: Any) -> dict[str, Any]:
        now, head = migrate.current_revision(engine), migrate.head_revision()
        return {"current": now, "head": head, "up_to_date": now == head}

    result = state.engine_call(work)
    output.emit(
        result,
        as_json,
        lambda r: output.done(
            f"current {r['current'] or 'empty'}, head {r['head']}: "
            + ("up to date" if r["up_to_date"] else "run 'billing-admin db upgrade'")
        ),
    )


@group.command(epilog='\b\nExample:\n  billing-admin db bootstrap "$USER" --name "First Admin"')
@click.argument("login")
@click.option("--name", "full_name", default=None, help="Full name (default: LOGIN).")
@output.json_option
@click.pass_obj
def bootstrap(state: AppState, login: str, full_name: str | None, as_json: bool) -> None:
    """Create the first operator LOGIN with the admin role (only while there is no operator)."""
    from billing import operators

    info = state.run_without_operator(
        lambda session, actor: operators.bootstrap(session, actor, login, full_name or login)
    )
    output.emit(
        info, as_json, lambda i: output.done(f"operator {i.login} created with roles {', '.join(i.roles)}")
    )
