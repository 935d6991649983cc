"""``billing-admin audit search``: read the audit log (needs ``audit.read``).

Times given without an offset are read in the ISP's time zone; the period is half-open
``[--since, --until)``. Output times are UTC.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, parse_instant


@click.group("audit")
def group() -> None:
    """The audit log: who changed what, when, before and after."""


@group.command(
    epilog="""\b
Examples:
  billing-admin audit search --operator jdoe --since 2025-05-01
  billing-admin audit search --action 'subscriber.*' --object-id 100001 --json
  billing-admin audit search --outcome denied --limit 20
"""
)
@click.option("--operator", default=None, help="Acting or impersonating login.")
@click.option("--action", default=None, help="Action, e.g. subscriber.create; a trailing * matches a prefix.")
@click.option("--object-type", default=None, help="e.g. account, operator, dictionary_entry.")
@click.option("--object-id", default=None, help="e.g. an account number or login.")
@click.option("--outcome", type=click.Choice(["ok", "denied"]), default=None)
@click.option("--since", default=None, metavar="WHEN", help="From this date or time (inclusive).")
@click.option("--until", default=None, metavar="WHEN", help="Up to this date or time (exclusive).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many (default: cli.page_size)."
)
@output.json_option
@click.pass_obj
def search(
    state: AppState,
    operator: str | None,
    action: str | None,
    object_type: str | None,
    object_id: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Search the audit log, newest first."""
    from billing import audit

    config = state.config()
    tz = config.isp.tzinfo
    start = parse_instant(since, "--since", tz) if since else None
    end = parse_instant(until, "--until", tz) if until else None
    found = state.run(
        "audit.read",
        "audit search",
        lambda session, _: audit.search(
            session,
            operator=operator,
            action=action,
            object_type=object_type,
            object_id=object_id,
            outcome=outcome,
            since=start,
            until=end,
            limit=limit or config.cli.page_size,
        ),
    )

    def render(rows: Any) -> None:
        output.table(
            f"Audit log ({len(rows)})",
            ["id", "time (UTC)", "operator", "by", "action", "object", "outcome"],
            [
                (
                    r.id,
                    r.at.replace(microsecond=0),
                    r.operator_login,
                    r.impersonated_by,
                    r.action,
                    f"{r.object_type}:{r.object_id or ''}",
                    r.outcome,
                )
                for r in rows
            ],
        )

    output.emit(found, as_json, render)
