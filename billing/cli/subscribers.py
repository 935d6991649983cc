"""``billing-admin subscribers``: create, show, list, update and close subscribers.

Reads need ``subscribers.read``, changes ``subscribers.write``; the work is
:mod:`billing.subscribers`.
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState


@click.group(
    "subscribers",
    epilog="\b\nExamples:\n  billing-admin subscribers list --region north --status active\n"
    "  billing-admin subscribers show 100001",
)
def group() -> None:
    """Customers, their contacts and billing accounts."""


def render_subscriber(info: Any) -> None:
    output.fields(
        f"Subscriber {info.name}",
        [
            ("customer id", info.customer_id),
            ("kind", info.kind),
            ("name", info.name),
            ("tax id", info.tax_id),
            ("category", info.category),
            ("region", info.region),
            ("status", info.status),
            ("created", info.created_at),
            ("closed", info.closed_at),
        ],
    )
    if info.contacts:
        output.table("Contacts", ["kind", "value"], [(c.kind, c.value) for c in info.contacts])
    output.table(
        "Accounts",
        ["number", "currency", "mode", "status", "balance", "credit limit", "available"],
        [
            (a.number, a.currency, a.billing_mode, a.status, a.balance, a.credit_limit, a.available)
            for a in info.accounts
        ],
        numeric=("balance", "credit limit", "available"),
    )


@group.command(
    epilog="""\b
Examples:
  billing-admin subscribers create --kind person --name "Ann Lee" \\
      --category residential --region north --email ann@example.net --phone +4930123456
  billing-admin subscribers create --kind company --name "ACME GmbH" --tax-id DE123 \\
      --category business --region north --account-number 900001 --billing-mode postpaid \\
      --credit-limit 500
"""
)
@click.option("--kind", type=click.Choice(["person", "company"]), default="person", show_default=True)
@click.option("--name", required=True, help="Full name of the person or company.")
@click.option("--tax-id", default=None, help="Tax id (companies).")
@click.option("--category", required=True, help="Code from the subscriber_category dictionary.")
@click.option("--region", required=True, help="Code from the region dictionary.")
@click.option("--email", multiple=True, help="E-mail address (repeatable).")
@click.option("--phone", multiple=True, help="Phone number (repeatable).")
@click.option("--address", multiple=True, help="Postal address (repeatable).")
@click.option("--account-number", default=None, help="Account number (default: the next free 1000xx).")
@click.option("--currency", default=None, help="Account currency (default: isp.currency from the config).")
@click.option("--credit-limit", default="0", show_default=True, help="How far the balance may go below zero.")
@click.option(
    "--billing-mode", type=click.Choice(["prepaid", "postpaid"]), default="prepaid", show_default=True
)
@output.json_option
@click.pass_obj
def create(
    state: AppState,
    kind: str,
    name: str,
    tax_id: str | None,
    category: str,
    region: str,
    email: tuple[str, ...],
    phone: tuple[str, ...],
    address: tuple[str, ...],
    account_number: str | None,
    currency: str | None,
    credit_limit: str,
    billing_mode: str,
    as_json: bool,
) -> None:
    """Create a customer, its contacts, a billing account and the account's ledger account."""
    from billing import subscribers

    account_currency = currency or state.config().isp.currency
    info = state.run(
        "subscribers.write",
        "subscribers create",
        lambda session, actor: subscribers.create(
            session,
            actor,
            kind=kind,
            name=name,
            category=category,
            region=region,
            currency=account_currency,
            tax_id=tax_id,
            emails=email,
            phones=phone,
            addresses=address,
            account_number=account_number,
            credit_limit=credit_limit,
            billing_mode=billing_mode,
        ),
    )
    output.emit(info, as_json, render_subscriber)


@group.command(epilog="\b\nExample:\n  billing-admin subscribers show 100001 --json")
@click.argument("account_number")
@output.json_option
@click.pass_obj
def show(state: AppState, account_number: str, as_json: bool) -> None:
    """Show the subscriber owning ACCOUNT_NUMBER: customer, contacts, accounts and balances."""
    from billing import subscribers

    info = state.run(
        "subscribers.read", "subscribers show", lambda session, _: subscribers.show(session, account_number)
    )
    output.emit(info, as_json, render_subscriber)


@group.command(
    "list", epilog="\b\nExample:\n  billing-admin subscribers list --category business --name acme --limit 20"
)
@click.option("--category", default=None, help="Only this subscriber_category code.")
@click.option("--region", default=None, help="Only this region code.")
@click.option(
    "--status", type=click.Choice(["active", "closed"]), default=None, help="Only this account status."
)
@click.option("--name", default=None, help="Name contains this text (case-insensitive).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many (default: cli.page_size)."
)
@output.json_option
@click.pass_obj
def list_(
    state: AppState,
    category: str | None,
    region: str | None,
    status: str | None,
    name: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List accounts with their customers, by account number."""
    from billing import subscribers

    page = limit or state.config().cli.page_size
    rows = state.run(
        "subscribers.read",
        "subscribers list",
        lambda session, _: subscribers.search(
            session, category=category, region=region, status=status, name=name, limit=page
        ),
    )
    output.emit(
        rows,
        as_json,
        lambda found: output.table(
            f"Subscribers ({len(found)})",
            ["account", "name", "kind", "category", "region", "status", "balance", "currency"],
            [
                (r.account_number, r.name, r.kind, r.category, r.region, r.status, r.balance, r.currency)
                for r in found
            ],
            numeric=("balance",),
        ),
    )


@group.command(
    epilog="\b\nExamples:\n  billing-admin subscribers update 100001 --region south\n"
    "  billing-admin subscribers update 100001 --credit-limit 100 --billing-mode postpaid\n"
    "  billing-admin subscribers update 100001 --add-phone +4915112345678 --remove-contact old@example.net"
)
@click.argument("account_number")
@click.option("--name", default=None)
@click.option("--tax-id", default=None, help="New tax id ('' clears it).")
@click.option("--category", default=None, help="Code from the subscriber_category dictionary.")
@click.option("--region", default=None, help="Code from the region dictionary.")
@click.option("--credit-limit", default=None)
@click.option("--billing-mode", type=click.Choice(["prepaid", "postpaid"]), default=None)
@click.option("--add-email", "add_emails", multiple=True, help="Add an e-mail contact (repeatable).")
@click.option("--add-phone", "add_phones", multiple=True, help="Add a phone contact (repeatable).")
@click.option("--add-address", "add_addresses", multiple=True, help="Add a postal address (repeatable).")
@click.option(
    "--remove-contact", "remove_contacts", multiple=True, help="Remove the contact with this value."
)
@output.json_option
@click.pass_obj
def update(
    state: AppState,
    account_number: str,
    name: str | None,
    tax_id: str | None,
    category: str | None,
    region: str | None,
    credit_limit: str | None,
    billing_mode: str | None,
    add_emails: tuple[str, ...],
    add_phones: tuple[str, ...],
    add_addresses: tuple[str, ...],
    remove_contacts: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change fields of the account ACCOUNT_NUMBER and its customer, add or remove contacts;
    everything not named stays as it is."""
    from billing import subscribers

    info = state.run(
        "subscribers.write",
        "subscribers update",
        lambda session, actor: subscribers.update(
            session,
            actor,
            account_number,
            name=name,
            tax_id=tax_id,
            category=category,
            region=region,
            credit_limit=credit_limit,
            billing_mode=billing_mode,
            add_emails=add_emails,
            add_phones=add_phones,
            add_addresses=add_addresses,
            remove_contacts=remove_contacts,
        ),
    )
    output.emit(info, as_json, render_subscriber)


@group.command(
    epilog="\b\nExamples:\n  billing-admin subscribers close 100001\n"
    '  billing-admin subscribers close 100002 --force --reason "written off, see ticket 4711"'
)
@click.argument("account_number")
@click.option("--force", is_flag=True, help="Close although the balance is not zero (needs --reason).")
@click.option("--reason", default=None, help="Why the account is force-closed (kept in the audit log).")
@output.json_option
@click.pass_obj
def close(state: AppState, account_number: str, force: bool, reason: str | None, as_json: bool) -> None:
    """Close the account ACCOUNT_NUMBER (and its customer once it has no open account).

    Refused while the balance is not zero, unless --force with --reason.
    """
    from billing import subscribers

    info = state.run(
        "subscribers.write",
        "subscribers close",
        lambda session, actor: subscribers.close(session, actor, account_number, force=force, reason=reason),
    )
    output.emit(info, as_json, render_subscriber)
