"""``billing-admin check``: verify the ledger's invariants (needs ``check.run``).

Shows a progress bar on stderr while it runs; prints OK, or each violation naming the table
and row, and exits 1 if there is any.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import EXIT_ERROR, AppState


@click.command(
    "check",
    epilog="\b\nExamples:\n  billing-admin check\n  billing-admin check --json | jq '.violations[]'",
)
@output.json_option
@click.pass_obj
def command(state: AppState, as_json: bool) -> None:
    """Check the ledger: balanced transactions, posting counts, currencies, cached balances, content."""
    from rich.progress import Progress

    from billing.invariants import check_ledger

    with Progress(console=output.console(stderr=True), transient=True) as progress:
        task = progress.add_task("checking the ledger", total=None)

        def report(step: str, done: int, total: int) -> None:
            progress.update(task, description=step, completed=done, total=total)

        def work(session: Any, _: Any) -> list[Any]:
            return check_ledger(session, report)

        violations = state.run("check.run", "check", work)
    result = {"ok": not violations, "violations": [{**v.__dict__, "text": str(v)} for v in violations]}
    if as_json:
        output.emit(result, True, lambda r: None)
    elif violations:
        for violation in violations:
            click.echo(str(violation))
        click.echo(f"{len(violations)} violation(s)", err=True)
    else:
        output.done("OK: the ledger is sound")
    if violations:
        raise click.exceptions.Exit(EXIT_ERROR)
