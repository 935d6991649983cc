"""``billing-admin unmatched``: the queue of bank file lines no account could be matched to.

``unmatched list`` shows the queue (oldest first); ``unmatched assign LINE_ID --account N`` moves
a line's money from the suspense book to the account as a payment of the bank (once: a second
assignment is refused). Both need ``payments.unmatched``; assignments are audited. The work is
:mod:`billing.payment_unmatched`.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState


@click.group(
    "unmatched",
    epilog="\b\nExamples:\n  billing-admin unmatched list --bank demobank --open\n"
    "  billing-admin unmatched assign 12 --account 100001",
)
def group() -> None:
    """Bank file lines waiting for an account (money held in the suspense book)."""


def _render_line(u: Any) -> None:
    output.fields(
        f"unmatched line {u.id}",
        [
            ("bank", u.bank),
            ("file", u.file_id),
            ("line", u.line_no),
            ("id at bank", u.line_key),
            ("booked on", u.booked_on),
            ("amount", f"{output.text(u.amount)} {u.currency}"),
            ("account field", u.account_text),
            ("contract field", u.contract_text),
            ("payer", u.payer),
            ("purpose", u.purpose),
            ("why unmatched", u.reason),
            ("state", u.state),
            ("assigned to account", u.account_number),
            ("payment", u.payment_id),
            ("assigned at", u.assigned_at),
        ],
    )
    for change in u.lifecycle_changes:
        output.done(change)


@group.command("list")
@click.option("--bank", default=None, help="Only this bank's lines.")
@click.option("--open", "open_only", is_flag=True, help="Only lines not yet assigned.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
@output.json_option
@click.pass_obj
def list_(state: AppState, bank: str | None, open_only: bool, limit: int, as_json: bool) -> None:
    """The queue, oldest first."""
    from billing.payment_unmatched import list_unmatched

    found = state.run(
        "payments.unmatched",
        "unmatched list",
        lambda session, _: list_unmatched(session, bank=bank, open_only=open_only, limit=limit),
    )

    def render(rows: list[Any]) -> None:
        output.table(
            "unmatched payments",
            ["id", "bank", "booked on", "amount", "currency", "payer", "purpose", "why", "state", "account"],
            [
                (
                    u.id,
                    u.bank,
                    u.booked_on,
                    u.amount,
                    u.currency,
                    u.payer,
                    u.purpose,
                    u.reason,
                    u.state,
                    u.account_number,
                )
                for u in rows
            ],
            numeric=["id", "amount"],
        )

    output.emit(found, as_json, render)


@group.command("assign")
@click.argument("line_id", type=int)
@click.option("--account", "number", required=True, help="Account number to credit.")
@output.json_option
@click.pass_obj
def assign(state: AppState, line_id: int, number: str, as_json: bool) -> None:
    """Pay an unmatched line to an account (suspense to subscriber); suspended services resume."""
    from billing import service_lifecycle
    from billing.payment_unmatched import assign as assign_line

    rules = service_lifecycle.rules_for(state.config().isp.tzinfo)
    found = state.run(
        "payments.unmatched",
        "unmatched assign",
        lambda session, actor: assign_line(session, actor, line_id, number, rules=rules),
    )
    output.emit(found, as_json, _render_line)
