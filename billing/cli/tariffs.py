"""``billing-admin tariff``: import, export, list and show the tariff catalog.

``import`` needs ``tariffs.import``; ``export``, ``list`` and ``show`` need ``tariffs.read``.
The work is :mod:`billing.catalog`. A refused import exits 1 listing every problem as
``file: key.path: expectation`` and writes nothing. "Today" is the ISP's local date.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from billing.cli import output
from billing.cli.context import AppState, CliFailure, parse_date

if TYPE_CHECKING:
    from datetime import date


@click.group("tariff")
def group() -> None:
    """The tariff catalog: import and export TOML files, list tariffs, show prices."""


def _today(state: AppState) -> date:
    return datetime.now(state.config().isp.tzinfo).date()


def _catalog_call(state: AppState, permission: str, command: str, work: Any) -> Any:
    """``state.run`` with the catalog's refusals turned into exit 1 (the transaction rolled back)."""
    from billing.catalog import CatalogStoreError, StoredCatalogCorrupt
    from rating.catalog import CatalogError

    try:
        return state.run(permission, command, work)
    except CatalogError as exc:
        count = len(exc.problems)
        raise CliFailure(
            f"{count} problem{'s' if count != 1 else ''}, nothing imported:\n"
            + "\n".join(map(str, exc.problems))
        ) from None
    except (CatalogStoreError, StoredCatalogCorrupt) as exc:
        raise CliFailure(str(exc)) from None


def _render_import(result: Any) -> None:
    counts = {k: v for k, v in result.counts().items() if v}
    summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) or "nothing"
    if result.dry_run:
        output.done(f"dry run of {result.source}: would change {summary}; nothing written")
    elif not result.changed:
        output.done(f"{result.source}: the catalog already holds it ({summary}); nothing written")
    else:
        output.done(f"imported {result.source} (import {result.import_id}): {summary}")
    for change in result.changes:
        output.done(f"  {change}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@group.command(
    "import",
    epilog="""\b
Examples:
  billing-admin tariff import conf/tariffs/example.toml --dry-run
  billing-admin tariff import tariffs.toml --json
""",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check everything and show what would change; write nothing.")
@output.json_option
@click.pass_obj
def import_(state: AppState, file: Path, dry_run: bool, as_json: bool) -> None:
    """Check catalog FILE as a whole and store it (all or nothing).

    Unchanged versions are left alone, new ones added. A version some service may already
    have been charged with cannot change: add a new version instead.
    """
    from billing import catalog

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliFailure(f"{file}: cannot read: {exc}") from None
    today = _today(state)
    result = _catalog_call(
        state,
        "tariffs.import",
        "tariff import",
        lambda session, actor: catalog.import_catalog(
            session, text, str(file), actor, dry_run=dry_run, today=today
        ),
    )
    from billing.audit import json_safe

    payload = {**json_safe(result), "changed": result.changed, "counts": result.counts()}
    output.emit(payload, as_json, lambda _: _render_import(result))


@group.command(
    epilog="\b\nExamples:\n  billing-admin tariff export -o tariffs.toml\n"
    "  billing-admin tariff export | head"
)
@click.option(
    "-o", "--output", "target", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@click.pass_obj
def export(state: AppState, target: Path | None) -> None:
    """Write the stored catalog as TOML (importing it back changes nothing)."""
    from billing import catalog

    text = _catalog_call(
        state, "tariffs.read", "tariff export", lambda session, _: catalog.export_catalog(session)
    )
    if target is None:
        click.echo(text, nl=False)
        return
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliFailure(f"{target}: cannot write: {exc}") from None
    output.done(f"wrote {target}")


@group.command(
    "list",
    epilog="\b\nExamples:\n  billing-admin tariff list\n  billing-admin tariff list --at 2026-01-01 --json",
)
@click.option(
    "--at", "at", default=None, metavar="DATE", help="Show the versions in effect on DATE (default: today)."
)
@output.json_option
@click.pass_obj
def list_(state: AppState, at: str | None, as_json: bool) -> None:
    """List the stored tariffs with the version in effect today (or on --at)."""
    from billing import catalog

    as_of = parse_date(at, "--at") if at else _today(state)
    rows = _catalog_call(
        state, "tariffs.read", "tariff list", lambda session, _: catalog.list_tariffs(session, as_of)
    )
    output.emit(
        rows,
        as_json,
        lambda found: output.table(
            f"Tariffs on {as_of}",
            ["code", "name", "kind", "versions", "current", "fee", "currency", "period", "services"],
            [
                (
                    r.code,
                    r.name,
                    r.kind + (f" ({r.addon})" if r.addon else ""),
                    r.versions,
                    r.current_version,
                    r.fee,
                    r.currency,
                    r.period,
                    r.services,
                )
                for r in found
            ],
            numeric=("versions", "current", "fee", "services"),
        ),
    )


def _render_details(details: Any) -> None:
    output.fields(
        f"Tariff {details.code}",
        [
            ("code", details.code),
            ("name", details.name),
            ("kind", details.kind + (f" ({details.addon})" if details.addon else "")),
            ("services", details.services),
        ],
    )
    output.table(
        "Versions",
        [
            "version",
            "from",
            "until",
            "currency",
            "mode",
            "fee",
            "period",
            "speed",
            "cells",
            "fingerprint",
            "by",
        ],
        [
            (
                v.number,
                v.effective_from,
                v.effective_until,
                v.currency,
                v.billing_mode,
                v.fee,
                v.period,
                v.speed_profile,
                v.cells,
                v.fingerprint[:12],
                v.imported_by,
            )
            for v in details.versions
        ],
        numeric=("version", "fee", "cells"),
    )
    who = f"category {details.category or '-'}, region {details.region or '-'}"
    price = details.price
    if price is None:
        output.done(f"price on {details.as_of} for {who}: {details.price_problem}")
        return
    output.fields(
        f"Price on {details.as_of} for {who}",
        [
            ("version", price.version_number),
            (
                "matched",
                price.match.value
                + (f" (prices[{price.cell_index}])" if price.cell_index is not None else ""),
            ),
            ("currency", price.currency),
            ("fee", price.recurring.amount if price.recurring else None),
            ("period", price.recurring.period.value if price.recurring else None),
            *((f"one-time {f.code}", f.amount) for f in price.one_time_fees),
        ],
    )


@group.command(
    epilog="""\b
Examples:
  billing-admin tariff show HOME-100
  billing-admin tariff show HOME-100 --at 2025-07-01 --category business --region rural --json
"""
)
@click.argument("code")
@click.option("--at", "at", default=None, metavar="DATE", help="Price on DATE (default: today).")
@click.option("--category", default=None, help="Subscriber category for the price matrix.")
@click.option("--region", default=None, help="Subscriber region for the price matrix.")
@output.json_option
@click.pass_obj
def show(
    state: AppState, code: str, at: str | None, category: str | None, region: str | None, as_json: bool
) -> None:
    """Show tariff CODE: its versions and the price resolved for a category and region."""
    from billing import catalog

    as_of = parse_date(at, "--at") if at else _today(state)
    details = _catalog_call(
        state,
        "tariffs.read",
        "tariff show",
        lambda session, _: catalog.show_tariff(session, code, as_of, category=category, region=region),
    )
    output.emit(details, as_json, _render_details)
