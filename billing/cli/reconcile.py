"""``billing-admin registry`` and ``billing-admin reconcile``: verify a bank's day against billing.

``registry import FILE --bank B`` stores a bank's daily registry from a file (the ``registry``
CSV preset); banks also upload it over SOAP. ``reconcile --bank B --date D`` compares the bank's
registry of that day (or ``--statement FILE --format F``) with the payments recorded for that
bank on that local day, prints the discrepancies and totals, and records the result; ``--close
--reason`` closes a day that does not reconcile (its unidentified money goes to suspense).
Importing and reconciling need ``payments.reconcile``; ``registry show`` and ``reconcile
--show`` need ``payments.view``. The work is :mod:`billing.bank_registry` and
:mod:`billing.reconciliation`. Closing a day with discrepancies without ``--reason`` is a usage
error (exit 2) and changes nothing.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, CliFailure, parse_date

RECONCILE_EPILOG = """\b
Examples:
  billing-admin registry import registry-2026-12-02.csv --bank demobank
  billing-admin reconcile --bank demobank --date 2026-12-02
  billing-admin reconcile --bank demobank --date 2026-12-02 --statement stmt.xml --format camt053
  billing-admin reconcile --bank demobank --date 2026-12-02 --close --reason "bank confirms 2 lines"
  billing-admin reconcile --bank demobank --date 2026-12-02 --show --json

\b
States: reconciled (no discrepancy; final), open (discrepancies; re-running replaces the
result), closed (closed with discrepancies and a reason; final: "missing in billing" money
moved from the bank's clearing account to suspense). A final day is shown, never changed.
Exit codes: 0 ok (whatever the state), 1 refused, 2 usage (also --close without --reason on a
day with discrepancies), 3 permission denied.
"""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliFailure(f"{path}: cannot read: {exc.strerror}") from None


def _presets(state: AppState) -> Path:
    """The CSV presets: ``payment_formats/`` beside the config file, else ``conf/payment_formats``."""
    beside = state.config().source.parent / "payment_formats"
    return beside if beside.is_dir() else Path("conf/payment_formats")


def _parse(state: AppState, data: bytes, fmt: str, currency: str) -> Any:
    from billing import payment_files

    try:
        return payment_files.parse(data, fmt, currency=currency, presets_dir=_presets(state))
    except (payment_files.PaymentFileError, ValueError) as exc:
        raise CliFailure(str(exc)) from None


@click.group("registry", epilog=RECONCILE_EPILOG)
def registry_group() -> None:
    """Banks' daily registries of their payments (for reconciliation)."""


@registry_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bank", required=True, help="The bank's code (its payments' source).")
@click.option("--date", "day_text", default=None, metavar="DATE", help="The day (default: the file's).")
@click.option("--currency", default=None, help="Currency of the amounts (default: the ISP's).")
@output.json_option
@click.pass_obj
def import_(
    state: AppState, file: Path, bank: str, day_text: str | None, currency: str | None, as_json: bool
) -> None:
    """Store a bank's registry of one day from a file (replaces the day's registry unless final)."""
    from billing import bank_registry

    config = state.config()
    parsed = _parse(state, _read(file), "registry", currency or config.isp.currency)
    try:
        day, lines = bank_registry.lines_from_file(
            parsed, config.isp.tzinfo, parse_date(day_text, "--date") if day_text else None
        )
    except bank_registry.RegistryError as exc:
        raise CliFailure(str(exc)) from None

    def work(session: Any, actor: Any) -> Any:
        registry_id = bank_registry.record_registry(session, actor, bank, day, lines, origin="file")
        return bank_registry.show(session, bank, day), registry_id

    info, _ = state.run("payments.reconcile", "registry import", work)
    summary = {
        "id": info.id,
        "bank": info.bank,
        "day": info.day,
        "origin": info.origin,
        "line_count": info.line_count,
        "total": info.total,
        "replaced": info.replaced,
    }
    output.emit(
        summary,
        as_json,
        lambda s: output.done(
            f"registry {s['id']} of {s['bank']} for {s['day']}: {s['line_count']} line(s), total "
            f"{output.text(s['total'])}" + (f" (replaced {s['replaced']} time(s))" if s["replaced"] else "")
        ),
    )


@registry_group.command("show")
@click.option("--bank", required=True, help="The bank's code.")
@click.option("--date", "day_text", required=True, metavar="DATE", help="The day.")
@output.json_option
@click.pass_obj
def show_registry(state: AppState, bank: str, day_text: str, as_json: bool) -> None:
    """A stored registry and its lines."""
    from billing import bank_registry

    day = parse_date(day_text, "--date")
    info = state.run(
        "payments.view", "registry show", lambda session, _: bank_registry.show(session, bank, day)
    )

    def render(r: Any) -> None:
        output.table(
            f"registry {r.id}: {r.bank} {r.day} ({r.origin}, received {output.text(r.received_at)}, "
            f"replaced {r.replaced} time(s)): {r.line_count} line(s), total {output.text(r.total)}",
            ["txn id", "account", "amount", "currency", "paid at"],
            [(line.txn_id, line.account, line.amount, line.currency, line.paid_at) for line in r.lines],
            numeric=["amount"],
        )

    output.emit(info, as_json, render)


def render_result(r: Any) -> None:
    """The discrepancies, then the totals per category, then the bank against billing."""
    from billing.reconciliation import CATEGORY_TITLES

    cur = r.currency
    output.fields(
        f"reconciliation {r.id}: {r.bank} {r.day}",
        [
            ("state", r.state),
            (
                "compared with",
                r.source + (f" (sha256 {r.statement_sha256[:16]}…)" if r.statement_sha256 else ""),
            ),
            ("reason", r.reason),
            ("by", r.operator),
            ("at", r.reconciled_at),
            ("closed at", r.closed_at),
            ("runs", r.runs),
        ],
    )
    if r.discrepancies:
        output.table(
            "discrepancies",
            ["kind", "txn id", "line", "bank amount", "billing amount", "bank account", "billing account",
             "payment", "note", "suspense txn"],
            [
                (CATEGORY_TITLES[d.kind], d.txn_id, d.line_no, d.bank_amount, d.billing_amount,
                 d.bank_account, d.billing_account, d.payment_id, d.note, d.suspense_entry_id)
                for d in r.discrepancies
            ],
            numeric=["line", "bank amount", "billing amount", "payment", "suspense txn"],
        )  # fmt: skip
    output.table(
        f"totals ({cur})",
        ["category", "count", "bank sum", "billing sum"],
        [(CATEGORY_TITLES[c.category], c.count, c.bank_total, c.billing_total) for c in r.categories]
        + [("total", f"{r.bank_count} / {r.billing_count}", r.bank_total, r.billing_total)],
        numeric=["count", "bank sum", "billing sum"],
    )
    output.done(
        f"bank {output.text(r.bank_total)} {cur} ({r.bank_count}) vs billing {output.text(r.billing_total)} "
        f"{cur} ({r.billing_count}): difference {output.text(r.difference)} {cur}; "
        f"{len(r.discrepancies)} discrepancy(ies); state {r.state}"
        + (f"; {output.text(r.suspense_total)} {cur} held in suspense" if r.suspense_total else "")
    )


@click.command("reconcile", epilog=RECONCILE_EPILOG)
@click.option("--bank", required=True, help="The bank's code (its payments' source).")
@click.option("--date", "day_text", required=True, metavar="DATE", help="The day, in the ISP's time zone.")
@click.option(
    "--statement",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Compare with this bank statement's credit lines instead of the stored registry.",
)
@click.option("--format", "fmt", default=None, help="The statement's format (camt053, 1c, a CSV preset).")
@click.option("--currency", default=None, help="Currency reconciled (default: the ISP's).")
@click.option("--close", is_flag=True, help="Close the day; with discrepancies this needs --reason.")
@click.option("--reason", default=None, help="Why a day with discrepancies is closed (kept and audited).")
@click.option("--show", "show_only", is_flag=True, help="Only show the stored result (payments.view).")
@output.json_option
@click.pass_obj
def reconcile(
    state: AppState,
    bank: str,
    day_text: str,
    statement: Path | None,
    fmt: str | None,
    currency: str | None,
    close: bool,
    reason: str | None,
    show_only: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Compare a bank's day with billing's payments, print discrepancies and totals, record it."""
    from billing import reconciliation

    day: date = parse_date(day_text, "--date")
    if show_only:
        if statement or close or reason:
            raise click.UsageError("--show cannot be combined with --statement, --close or --reason")
        found = state.run(
            "payments.view", "reconcile --show", lambda session, _: reconciliation.show(session, bank, day)
        )
        output.emit(found, as_json, render_result)
        return
    if (statement is None) != (fmt is None):
        raise click.UsageError("--statement and --format go together")
    if reason and not close:
        raise click.UsageError("--reason is only used with --close")
    config = state.config()
    cur = currency or config.isp.currency
    banks = [b.code for b in config.payments.banks]
    given = None
    if statement is not None and fmt is not None:
        try:
            given = reconciliation.statement_input(_parse(state, _read(statement), fmt, cur), day)
        except reconciliation.ReconciliationError as exc:
            raise CliFailure(str(exc)) from None
        if given.ignored:
            click.echo(f"statement: {given.ignored} line(s) booked on other days left out", err=True)
    try:
        result = state.run(
            "payments.reconcile",
            "reconcile",
            lambda session, actor: reconciliation.reconcile(
                session, actor, bank, day, time_zone=config.isp.tzinfo, currency=cur, statement=given,
                close=close, reason=reason, known_banks=banks,
            ),
        )  # fmt: skip
    except reconciliation.ReasonRequired as exc:
        raise click.UsageError(str(exc)) from None
    if not result.changed:
        click.echo(f"{bank} {day} is {result.state}: the stored result is shown, nothing changed", err=True)
    output.emit(result, as_json, render_result)
