"""``billing-admin payment``: the cashier desk's single payments, cancellation, and reading payments.

``payment add`` needs ``payments.post``, ``payment cancel`` needs ``payments.cancel``, ``show``
and ``list`` need ``payments.view``. The work is :mod:`billing.payments`, the same service the
banks' API and file imports call: ``--receipt`` (the desk's receipt number) is the payment's id
at its source, so running the same command twice pays once. ``payment import`` (a bank's
statement file, :mod:`billing.payment_import`) needs ``payments.import``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, parse_instant


@click.group(
    "payment",
    epilog="\b\nExamples:\n  billing-admin payment add --account 100001 --amount 25.00 --receipt R-0001\n"
    "  billing-admin payment cancel 17 --reason 'wrong account'\n"
    "  billing-admin payment list --account 100001\n  billing-admin payment show 17\n"
    "  billing-admin payment import statement.csv --bank demobank --format generic-csv --dry-run",
)
def group() -> None:
    """Payments: single payments at the cashier desk, bank files, cancellation, listing."""


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


EXIT_PARTIAL = 4
"""``payment import``: some lines were bad (each named in the report); the others were imported."""


def _import_paths(state: AppState, rules: Path | None, formats_dir: Path | None) -> tuple[Path, Path]:
    """The matching rules and CSV presets: given, else next to the config file, else ``conf/``."""
    beside = state.config().source.parent
    if rules is None:
        rules = beside / "payment_matching.toml"
        if not rules.exists():
            rules = Path("conf/payment_matching.toml")
    if formats_dir is None:
        formats_dir = beside / "payment_formats"
        if not formats_dir.is_dir():
            formats_dir = Path("conf/payment_formats")
    return rules, formats_dir


def _render_import(r: Any) -> None:
    """An import's report for people: each line on a dry run, the totals, unmatched and bad lines."""
    if r.already_imported:
        when = output.text(r.imported_at)
        output.done(f"{r.name}: already imported as file {r.file_id} on {when}; nothing posted now")
    verb = "would be " if r.dry_run else ""
    if r.dry_run:
        for o in r.outcomes:
            where = f" to account {o.account_number}" if o.account_number else ""
            amount = f" {output.text(o.amount)} {r.currency}" if o.amount else ""
            said = f"{verb}{o.outcome}" if o.outcome in ("posted", "unmatched") else o.outcome
            click.echo(f"line {o.line_no}: {said}{amount}{where}: {o.detail}")
    output.table(
        f"payment file {r.file_id or '(dry run)'}: {r.name} ({r.bank}, {r.format})",
        ["lines", "outcome", "total"],
        [
            (r.posted, f"{verb}posted", r.posted_total),
            (r.duplicate, "duplicate (posted before)", r.duplicate_total),
            (r.unmatched, f"{verb}held as unmatched (suspense)", r.unmatched_total),
            (r.bad, "bad (not posted)", None),
        ],
        numeric=["lines", "total"],
    )
    if not r.dry_run:
        for o in r.outcomes:
            click.echo(f"unmatched: line {o.line_no} ({o.key}, {output.text(o.amount)}): {o.detail}")
    first = " (first import)" if r.already_imported else ""
    for p in r.problems:
        click.echo(f"bad{first}: line {p.line_no}: {p.reason}", err=True)
    for change in r.lifecycle_changes:
        output.done(change)


@group.command(
    "import",
    epilog="\b\nExit codes: 0 every line was good (posted, duplicate or unmatched), or the file was\n"
    "imported before (nothing posted now); 1 the file was refused as a whole (nothing written);\n"
    f"{EXIT_PARTIAL} some lines were bad (named on stderr), the rest imported.",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bank", required=True, help="The bank's code: the payments' source and clearing account.")
@click.option(
    "--format", "fmt", required=True, help="1c, camt053 or a CSV preset name (conf/payment_formats)."
)
@click.option("--dry-run", is_flag=True, help="Show what would happen to each line; write nothing.")
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Purpose-text matching rules (default: payment_matching.toml beside the config).",
)
@click.option(
    "--formats-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="CSV presets (default: payment_formats/ beside the config).",
)
@click.option(
    "--batch-size",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Lines per database transaction.",
)
@output.json_option
@click.pass_obj
def import_(
    state: AppState,
    file: Path,
    bank: str,
    fmt: str,
    dry_run: bool,
    rules: Path | None,
    formats_dir: Path | None,
    batch_size: int,
    as_json: bool,
) -> None:
    """Import a bank file: matched lines become payments, the rest wait in the unmatched queue."""
    from rich.progress import Progress

    from billing import service_lifecycle
    from billing.cli.context import CliFailure, describe, domain_errors
    from billing.payment_files import PaymentFileError
    from billing.payment_import import import_file
    from billing.payment_matching import load_rules

    config = state.config()
    tz = config.isp.tzinfo
    actor = state.run("payments.import", "payment import", lambda _session, actor: actor)
    rules_path, presets = _import_paths(state, rules, formats_dir)
    try:
        matcher = load_rules(rules_path)
        with Progress(console=output.console(stderr=True), transient=True) as shown:
            task = shown.add_task(f"importing {file.name}", total=None)

            def progress(done: int, total: int) -> None:
                shown.update(task, completed=done, total=total)

            report = import_file(
                state.engine(), actor, file.read_bytes(), bank=bank, fmt=fmt, name=file.name,
                currency=config.isp.currency, time_zone=tz, rules=service_lifecycle.rules_for(tz),
                matcher=matcher, presets_dir=presets, dry_run=dry_run, batch_size=batch_size,
                progress=progress,
            )  # fmt: skip
    except (PaymentFileError, *domain_errors()) as exc:
        raise CliFailure(describe(exc)) from None
    except ValueError as exc:  # the billing currency refused by the parser
        raise CliFailure(str(exc)) from None
    output.emit(report, as_json, _render_import)
    if report.bad and not report.already_imported:
        click.get_current_context().exit(EXIT_PARTIAL)
