"""``billing-admin payment``: the cashier desk's single payments, cancellation, and reading payments.

``payment add`` needs ``payments.post``, ``payment cancel`` needs ``payments.cancel``, ``show``
and ``list`` need ``payments.view``. The work is :mod:`billing.payments`, the same service the
banks' API and file imports call: ``--receipt`` (the desk's receipt number) is the payment's id
at its source, so running the same command twice pays once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, parse_instant


@click.group(
    "payment",
    epilog="\b\nExamples:\n  billing-admin payment add --account 100001 --amount 25.00 --receipt R-0001\n"
    "  billing-admin payment cancel 17 --reason 'wrong account'\n"
    "  billing-admin payment list --account 100001\n  billing-admin payment show 17",
)
def group() -> None:
    """Payments: single payments at the cashier desk, cancellation, listing."""


def _render(p: Any) -> None:
    title = f"payment {p.id}" + ("" if p.created else " (recorded before; nothing posted now)")
    output.fields(
        title,
        [
            ("source", p.source),
            ("id at source", p.external_id),
            ("channel", p.channel),
            ("account", p.account_number),
            ("amount", f"{output.text(p.amount)} {p.currency}"),
            ("paid at", p.paid_at),
            ("received at", p.received_at),
            ("purpose", p.purpose),
            ("state", p.state),
            ("ledger transaction", p.transaction_id),
            ("cancelled by transaction", p.cancel_transaction_id),
            ("cancelled at", p.cancelled_at),
            ("cancel reason", p.cancel_reason),
        ],
    )
    for change in p.lifecycle_changes:
        output.done(change)


@group.command("add")
@click.option("--account", "number", required=True, help="Account number to credit.")
@click.option("--amount", required=True, help="Amount in the account's currency, e.g. 25.00.")
@click.option("--receipt", required=True, help="The desk's receipt number: the payment's id (idempotent).")
@click.option("--source", default="cashier", show_default=True, help="Source code (a desk, an agent).")
@click.option("--paid-at", default=None, metavar="TIME", help="When it was paid (default: now).")
@click.option("--purpose", default="", help="Free text kept with the payment.")
@output.json_option
@click.pass_obj
def add(
    state: AppState,
    number: str,
    amount: str,
    receipt: str,
    source: str,
    paid_at: str | None,
    purpose: str,
    as_json: bool,
) -> None:
    """Credit a payment taken at the desk; the account's suspended services resume if funds allow."""
    from billing import payments, service_lifecycle

    tz = state.config().isp.tzinfo
    at = parse_instant(paid_at, "--paid-at", tz) if paid_at else datetime.now(UTC)
    request = payments.PaymentRequest(source, receipt, number, amount, at, channel="cashier", purpose=purpose)
    rules = service_lifecycle.rules_for(tz)
    found = state.run(
        "payments.post",
        "payment add",
        lambda session, actor: payments.pay(session, actor, request, rules=rules),
    )
    output.emit(found, as_json, _render)


@group.command("cancel")
@click.argument("payment_id", type=int)
@click.option("--reason", required=True, help="Why (kept with the payment and in the audit log).")
@output.json_option
@click.pass_obj
def cancel(state: AppState, payment_id: int, reason: str, as_json: bool) -> None:
    """Reverse a payment received today (a second cancel shows the first)."""
    from billing import payments

    tz = state.config().isp.tzinfo
    found = state.run(
        "payments.cancel",
        "payment cancel",
        lambda session, actor: payments.cancel(session, actor, payment_id, reason, time_zone=tz),
    )
    output.emit(found, as_json, _render)


@group.command("show")
@click.argument("payment_id", type=int)
@output.json_option
@click.pass_obj
def show(state: AppState, payment_id: int, as_json: bool) -> None:
    """One payment."""
    from billing import payments

    found = state.run("payments.view", "payment show", lambda session, _: payments.show(session, payment_id))
    output.emit(found, as_json, _render)


@group.command("list")
@click.option("--account", "number", default=None, help="Only this account's payments.")
@click.option("--source", default=None, help="Only this source's payments.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@output.json_option
@click.pass_obj
def list_(state: AppState, number: str | None, source: str | None, limit: int, as_json: bool) -> None:
    """The latest payments, newest first."""
    from billing import payments

    found = state.run(
        "payments.view",
        "payment list",
        lambda session, _: payments.list_payments(session, account_number=number, source=source, limit=limit),
    )

    def render(rows: list[Any]) -> None:
        output.table(
            "payments",
            ["id", "source", "id at source", "account", "amount", "currency", "paid at", "state"],
            [
                (p.id, p.source, p.external_id, p.account_number, p.amount, p.currency, p.paid_at, p.state)
                for p in rows
            ],
            numeric=["id", "amount"],
        )

    output.emit(found, as_json, render)
