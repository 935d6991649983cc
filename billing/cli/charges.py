"""``billing-admin charge``: run the charges due on a day, list runs, show one.

``charge run`` needs ``charges.run``; ``charge runs`` and ``charge show`` need ``charges.view``.
The run is :func:`billing.charge_run.run_charges`: batches of short transactions, so the command
does not hold one transaction of its own; it checks the permission first, then runs.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, CliFailure, parse_date


@click.group(
    "charge",
    epilog="\b\nExamples:\n  billing-admin charge run --date 2027-02-01 --dry-run\n"
    "  billing-admin charge run --date 2027-02-01 --subscribers account=B0000001\n"
    "  billing-admin charge runs\n  billing-admin charge show 12",
)
def group() -> None:
    """Recurring and one-time charges: daily charge runs, their history and errors."""


def _render_result(result: Any) -> None:
    kind = "dry run (nothing written)" if result.dry_run else f"run {result.run_id}"
    output.fields(
        f"charge {kind} for {result.as_of}",
        [
            ("services seen", result.services_seen),
            ("services charged", result.services_charged),
            ("skipped (already charged)", result.services_skipped),
            ("charges " + ("that would be posted" if result.dry_run else "posted"), result.charges_posted),
            ("already posted", result.already_posted),
            ("totals", ", ".join(f"{c} {output.text(v)}" for c, v in sorted(result.totals.items()))),
            ("errors", len(result.errors)),
            ("lifecycle changes", result.lifecycle_changes),
        ],
    )
    if result.dry_run and result.would_post:
        output.table(
            "would post",
            ["service", "key", "due", "amount", "currency", "description"],
            [
                (c.service_id, c.idempotency_key, c.due_on, c.amount, c.currency, c.description)
                for c in result.would_post
            ],
            numeric=["service", "amount"],
        )
    for error in result.errors:
        click.echo(f"service {error.service_id}: {error.message}", err=True)


@group.command("run")
@click.option(
    "--date", "day", required=True, metavar="DATE", help="The day to charge (YYYY-MM-DD, ISP time zone)."
)
@click.option(
    "--dry-run", is_flag=True, help="Post in a transaction that is rolled back; show what would be posted."
)
@click.option(
    "--subscribers",
    default=None,
    metavar="FILTER",
    help="service=ID[,ID], account=NUMBER[,..] or tariff=CODE[,..].",
)
@click.option(
    "--batch-size", default=None, type=int, help="Services per transaction (default 2000; 500 on SQLite)."
)
@output.json_option
@click.pass_obj
def run(
    state: AppState, day: str, dry_run: bool, subscribers: str | None, batch_size: int | None, as_json: bool
) -> None:
    """Post every charge due on DATE (idempotent: a re-run posts nothing new)."""
    from rich.progress import Progress

    from billing.charge_run import ChargeRunRefused, run_charges
    from billing.cli.context import describe, domain_errors

    as_of = parse_date(day, "--date")
    tz = state.config().isp.tzinfo
    actor = state.run("charges.run", "charge run", lambda _session, actor: actor)
    with Progress(console=output.console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"charging {as_of}", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            result = run_charges(
                state.sessions(),
                as_of,
                actor,
                dry_run=dry_run,
                subscribers=subscribers,
                batch_size=batch_size,
                time_zone=tz,
                progress=report,
            )
        except (ChargeRunRefused, *domain_errors()) as exc:
            raise CliFailure(describe(exc)) from None
    output.emit(result, as_json, _render_result)


@group.command("runs")
@output.json_option
@click.pass_obj
def runs(state: AppState, as_json: bool) -> None:
    """The latest charge runs, newest first."""
    from billing.charge_run import list_runs

    found = state.run("charges.view", "charge runs", lambda session, _: list_runs(session))
    output.emit(found, as_json, _render_runs)


def _render_runs(rows: list[Any]) -> None:
    output.table(
        "charge runs",
        ["id", "date", "status", "operator", "seen", "charged", "skipped", "errors", "posted", "totals"],
        [
            (
                r.id,
                r.as_of,
                r.status,
                r.operator,
                r.services_seen,
                r.services_charged,
                r.services_skipped,
                r.errors,
                r.charges_posted,
                ", ".join(f"{c} {v}" for c, v in r.totals.items()),
            )
            for r in rows
        ],
        numeric=["id", "seen", "charged", "skipped", "errors", "posted"],
    )


@group.command("show")
@click.argument("run_id", type=int)
@output.json_option
@click.pass_obj
def show(state: AppState, run_id: int, as_json: bool) -> None:
    """One charge run with its per-service errors."""
    from billing.charge_run import ChargeRunRefused, show_run

    try:
        found = state.run("charges.view", "charge show", lambda session, _: show_run(session, run_id))
    except ChargeRunRefused as exc:
        raise CliFailure(str(exc)) from None

    def render(r: Any) -> None:
        output.fields(
            f"charge run {r.id}",
            [
                ("date", r.as_of),
                ("status", r.status),
                ("operator", r.operator),
                ("subscribers", r.subscribers),
                ("started", r.started_at),
                ("finished", r.finished_at),
                ("services seen", r.services_seen),
                ("charged", r.services_charged),
                ("skipped", r.services_skipped),
                ("errors", r.errors),
                ("charges posted", r.charges_posted),
                ("totals", r.totals),
            ],
        )
        for error in r.error_rows:
            click.echo(f"service {error.service_id} (account id {error.account_id}): {error.message}")

    output.emit(found, as_json, render)
