"""``billing-admin ledger``: adjust, statement, balance and reverse, on subscriber accounts.

Reads need ``ledger.read``, postings ``ledger.write``. Dates are calendar days in the ISP's
time zone (``isp.time_zone``); a statement period is half-open: ``--to`` is the first day not
included.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, CliFailure, local_midnight, parse_date
from rating.money import format_amount


@click.group("ledger")
def group() -> None:
    """Money on subscriber accounts: balances, statements, adjustments, reversals."""


@group.command(
    context_settings={"ignore_unknown_options": True},
    epilog="""\b
Examples:
  billing-admin ledger adjust 100001 25.00 --reason goodwill --description "outage 3 May"
  billing-admin ledger adjust 100001 -10 --reason correction --key ticket-4711
""",
)
@click.argument("account_number")
@click.argument("amount")
@click.option("--reason", required=True, help="Code from the adjustment_reason dictionary.")
@click.option("--key", default=None, help="Idempotency key: repeating the command with it posts nothing new.")
@click.option("--description", default="", help="Text shown on the statement.")
@output.json_option
@click.pass_obj
def adjust(
    state: AppState,
    account_number: str,
    amount: str,
    reason: str,
    key: str | None,
    description: str,
    as_json: bool,
) -> None:
    """Credit (positive AMOUNT) or debit (negative AMOUNT) an account against the adjustments book."""
    from billing import accounts

    result = state.run(
        "ledger.write",
        "ledger adjust",
        lambda session, actor: accounts.adjust(
            session, actor, account_number, amount, reason, key=key, description=description
        ),
    )

    def render(r: Any) -> None:
        verb = "posted" if r.created else "already posted (same key)"
        amount = ("+" if r.amount > 0 else "") + format_amount(r.amount)
        output.done(
            f"{verb}: transaction {r.transaction_id}, {amount} {r.currency} on {r.account_number} "
            f"({r.reason}); balance {format_amount(r.balance)} {r.currency}"
        )

    output.emit(result, as_json, render)


@group.command(
    epilog="""\b
Examples:
  billing-admin ledger statement 100001 --from 2025-01-01 --to 2025-02-01   # January
  billing-admin ledger statement 100001 --json
"""
)
@click.argument("account_number")
@click.option("--from", "start", default=None, metavar="DATE", help="First day (default: 1st of this month).")
@click.option("--to", "end", default=None, metavar="DATE", help="First day NOT included (default: tomorrow).")
@output.json_option
@click.pass_obj
def statement(
    state: AppState, account_number: str, start: str | None, end: str | None, as_json: bool
) -> None:
    """Opening balance, each movement with the running balance, and the closing balance."""
    from billing import accounts
    from billing.db.types import utcnow

    isp = state.config().isp
    today = utcnow().astimezone(isp.tzinfo).date()
    first = parse_date(start, "--from") if start else today.replace(day=1)
    last: date = parse_date(end, "--to") if end else today + timedelta(days=1)
    if last <= first:
        raise CliFailure(f"--to: {last} must be after --from {first}")
    period = (local_midnight(first, isp.tzinfo), local_midnight(last, isp.tzinfo))
    found = state.run(
        "ledger.read",
        "ledger statement",
        lambda session, _: accounts.statement(session, account_number, *period),
    )

    def render(s: Any) -> None:
        rows: list[tuple[Any, ...]] = [("", "opening balance", "", "", s.opening)]
        rows += [
            (ln.effective_at, ln.description or ln.kind, ln.transaction_id, ln.amount, ln.balance_after)
            for ln in s.lines
        ]
        rows.append(("", "closing balance", "", "", s.closing))
        output.table(
            f"Statement {s.account_number} ({s.currency}), {first} to {last} (exclusive)",
            ["time (UTC)", "description", "txn", "amount", "balance"],
            rows,
            numeric=("amount", "balance"),
        )

    output.emit(found, as_json, render)


@group.command(epilog="\b\nExample:\n  billing-admin ledger balance 100001")
@click.argument("account_number")
@output.json_option
@click.pass_obj
def balance(state: AppState, account_number: str, as_json: bool) -> None:
    """Balance, credit limit and available funds (balance + credit limit)."""
    from billing import accounts

    found = state.run(
        "ledger.read", "ledger balance", lambda session, _: accounts.balance(session, account_number)
    )
    output.emit(
        found,
        as_json,
        lambda b: output.fields(
            f"Account {b.account_number}",
            [
                ("balance", f"{format_amount(b.balance)} {b.currency}"),
                ("credit limit", f"{format_amount(b.credit_limit)} {b.currency}"),
                ("available", f"{format_amount(b.available)} {b.currency}"),
            ],
        ),
    )


@group.command(
    epilog='\b\nExample:\n  billing-admin ledger reverse 42 --reason "posted to the wrong account"'
)
@click.argument("transaction_id", type=int)
@click.option("--reason", required=True, help="Why (kept in the audit log and on the statement).")
@output.json_option
@click.pass_obj
def reverse(state: AppState, transaction_id: int, reason: str, as_json: bool) -> None:
    """Post the exact opposite of transaction TRANSACTION_ID, linked to it (once only)."""
    from billing import accounts

    result = state.run(
        "ledger.write",
        "ledger reverse",
        lambda session, actor: accounts.reverse_transaction(session, actor, transaction_id, reason),
    )
    output.emit(
        result,
        as_json,
        lambda r: output.done(f"reversed transaction {r.reverses_id} by transaction {r.transaction_id}"),
    )
