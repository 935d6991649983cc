"""``billing-admin quota``: prepaid quota reservations: list them, show one session's.

Both commands are read-only and need ``quota.read``; the work is
:mod:`billing.quota_reservations`. A reservation is keyed by its RADIUS session
(``acct_unique_id``, the SESSION column of ``quota list``).
"""

from __future__ import annotations

from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, CliFailure


@click.group(
    "quota",
    epilog="\b\nExamples:\n  billing-admin quota list --open\n"
    "  billing-admin quota list --account 100001 --limit 20\n"
    "  billing-admin quota show \"$(billing-admin quota list --open --json | jq -r '.[0].session')\"",
)
def group() -> None:
    """Prepaid quota: the money each metered prepaid session holds, has committed and still owes."""


@group.command("list")
@click.option("--account", "account_number", default=None, metavar="NUMBER", help="Only this account's.")
@click.option("--open", "only_open", is_flag=True, help="Only open reservations (sessions holding money).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many (default: cli.page_size)."
)
@output.json_option
@click.pass_obj
def list_(
    state: AppState, account_number: str | None, only_open: bool, limit: int | None, as_json: bool
) -> None:
    """List reservations, newest first: money reserved, committed, held and unbilled per session."""
    from billing.quota_reservations import list_reservations

    page = limit or state.config().cli.page_size
    rows = state.run(
        "quota.read",
        "quota list",
        lambda session, _: list_reservations(
            session, account_number=account_number, only_open=only_open, limit=page
        ),
    )
    output.emit(rows, as_json, _render_list)


LIST_COLUMNS = (
    "session",
    "account",
    "service",
    "tariff",
    "state",
    "reserved",
    "committed",
    "hold",
    "unbilled",
    "action",
    "opened (UTC)",
)


def _render_list(rows: list[Any]) -> None:
    output.table(
        f"Quota reservations ({len(rows)})",
        LIST_COLUMNS,
        [_cells(r) for r in rows],
        numeric=("service", "reserved", "committed", "hold", "unbilled"),
    )


def _cells(r: Any) -> tuple[Any, ...]:
    money = (r.reserved, r.committed, r.hold, r.unbilled)
    return (r.session, r.account, r.service_id, r.tariff_code, r.state, *money, r.action, r.opened_at)


@group.command("show")
@click.argument("session_id")
@output.json_option
@click.pass_obj
def show(state: AppState, session_id: str, as_json: bool) -> None:
    """One session's reservation: money, usage high-water mark, allowance per period, tasks.

    SESSION_ID is the session's acct_unique_id (64 hex digits), the SESSION column of 'quota list'.
    """
    from billing.quota_reservations import UnknownReservation, show_reservation

    try:
        found = state.run(
            "quota.read", "quota show", lambda session, _: show_reservation(session, session_id)
        )
    except UnknownReservation as exc:
        raise CliFailure(str(exc)) from None
    output.emit(found, as_json, _render)


def _render(info: Any) -> None:
    r = info.reservation
    output.fields(
        f"quota reservation of session {r.session}",
        [
            ("account", r.account),
            ("service", r.service_id),
            ("tariff", r.tariff_code),
            ("state", r.state),
            ("reserved", r.reserved),
            ("committed", r.committed),
            ("hold", r.hold),
            ("unbilled", r.unbilled),
            (
                "usage high-water mark",
                f"input {info.input_octets} octets (upload), output {info.output_octets} octets"
                f" (download), {info.seconds} s",
            ),
            ("allowance used", f"{info.allowance_used} octets"),
            ("exhausted", info.exhausted_at),
            ("action", r.action),
            ("opened (UTC)", r.opened_at),
            ("updated (UTC)", info.updated_at),
            ("closed (UTC)", r.closed_at),
        ],
    )
    if info.periods:
        output.table(
            "allowance used per billing period",
            ["period from", "allowance used (octets)"],
            [(p.period_start, p.allowance_used) for p in info.periods],
            numeric=("allowance used (octets)",),
        )
    output.table(
        "provisioning tasks",
        ["id", "key", "network", "speed profile", "state", "attempts", "created (UTC)"],
        [
            (t.id, t.idempotency_key, t.network, t.speed_profile, t.state, t.attempts, t.created_at)
            for t in info.tasks
        ],
        numeric=("id", "attempts"),
    )
