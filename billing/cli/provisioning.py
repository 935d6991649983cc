"""``billing-admin provisioning``: the outbox as staff see it: list, show, retry, cancel tasks.

``list`` and ``show`` need ``provisioning.read``; ``retry`` (a dead, unknown or cancelled task
back to pending, due now) and ``cancel`` (a pending, unknown or dead task) need
``provisioning.manage`` and are audited. The work is :mod:`billing.provisioning_admin`; this
module only parses options and renders results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from billing.cli import output
from billing.cli.context import AppState

if TYPE_CHECKING:
    pass

T = TypeVar("T")

STATES = ("pending", "running", "done", "unknown", "dead", "cancelled", "superseded")
"""``billing.db.lifecycle.TASK_STATES`` (a test checks they agree; click needs them before any import)."""


@click.group(
    "provisioning",
    epilog="\b\nExamples:\n  billing-admin provisioning list --state dead\n"
    "  billing-admin provisioning list --account 100001 --limit 20\n"
    "  billing-admin provisioning show 42\n"
    "  billing-admin provisioning retry 42\n"
    "  billing-admin provisioning cancel 43",
)
def group() -> None:
    """The provisioning outbox: what the network must enforce, every attempt, retry and cancel."""


@group.command("list")
@click.option(
    "--state", "task_state", type=click.Choice(STATES), default=None, help="Only tasks in this state."
)
@click.option(
    "--account", default=None, metavar="NUMBER", help="Only this account's (the subscriber's) tasks."
)
@click.option(
    "--service", "service_id", type=int, default=None, metavar="ID", help="Only this service's tasks."
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@output.json_option
@click.pass_obj
def list_(
    state: AppState,
    task_state: str | None,
    account: str | None,
    service_id: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Tasks, newest first: what each does, its state, tries, next try and last outcome."""
    from billing.provisioning_admin import READ, list_tasks

    rows = state.run(
        READ,
        "provisioning list",
        lambda session, _: list_tasks(
            session, state=task_state, account=account, service_id=service_id, limit=limit
        ),
    )
    output.emit(rows, as_json, _render_list)


def _render_list(rows: list[Any]) -> None:
    output.table(
        f"provisioning tasks ({len(rows)})",
        [
            "id",
            "key",
            "service",
            "account",
            "action",
            "state",
            "tries",
            "next try (UTC)",
            "outcome",
            "created (UTC)",
            "finished (UTC)",
        ],
        [
            (
                t.id,
                t.idempotency_key,
                t.service_id,
                t.account,
                t.action + (f" {t.speed_profile}" if t.speed_profile else ""),
                t.state,
                t.attempts,
                t.next_attempt_at,
                t.outcome,
                t.created_at,
                t.finished_at,
            )
            for t in rows
        ],
        numeric=("id", "service", "tries"),
    )


@group.command("show")
@click.argument("task_id", type=int)
@output.json_option
@click.pass_obj
def show(state: AppState, task_id: int, as_json: bool) -> None:
    """One task with every attempt: target, request, result (Error-Cause), detail, duration."""
    from billing.provisioning_admin import READ, task_detail

    found = state.run(READ, "provisioning show", lambda session, _: task_detail(session, task_id))
    output.emit(found, as_json, _render_detail)


def _render_detail(detail: Any) -> None:
    t = detail.task
    output.fields(
        f"provisioning task {t.id}",
        [
            ("key", t.idempotency_key),
            ("service", t.service_id),
            ("account", t.account),
            ("action", t.action),
            ("network", t.network),
            ("speed profile", t.speed_profile),
            ("session", t.session_key),
            ("tariff", detail.tariff_code),
            ("release", "yes" if detail.release else "no"),
            ("status change", detail.status_change_id),
            ("state", t.state),
            ("tries", t.attempts),
            ("next try (UTC)", t.next_attempt_at),
            ("held by", t.claimed_by),
            ("lease until (UTC)", t.lease_until),
            ("outcome", t.outcome),
            ("created (UTC)", t.created_at),
            ("finished (UTC)", t.finished_at),
            ("exported to NMS (UTC)", detail.exported_at),
        ],
    )
    if not detail.attempt_rows:
        output.done("no attempts yet")
    for n, a in enumerate(detail.attempt_rows, start=1):
        cause = None if a.error_cause is None else f"{a.error_cause} {a.error_cause_name or ''}".strip()
        output.fields(
            f"attempt {n} of {len(detail.attempt_rows)} (try {a.attempt})",
            [
                ("target", a.target),
                ("action", a.action),
                ("request", a.request),
                ("result", a.result),
                ("Error-Cause", cause),
                ("detail", a.detail),
                ("worker", a.worker),
                ("started (UTC)", a.started_at),
                ("duration", f"{a.duration_ms} ms"),
            ],
        )


def _render_change(verb: str) -> Callable[[Any], None]:
    def render(t: Any) -> None:
        due = f", due {output.text(t.next_attempt_at)}" if t.next_attempt_at else ""
        output.done(f"task {t.id} ({t.idempotency_key}, service {t.service_id}) {verb}: {t.state}{due}")

    return render


@group.command("retry")
@click.argument("task_id", type=int)
@output.json_option
@click.pass_obj
def retry(state: AppState, task_id: int, as_json: bool) -> None:
    """Send a dead, unknown or cancelled task back to the worker, due now (one more try).

    The tries already made stay on record and the counter keeps counting.
    """
    from billing.provisioning_admin import MANAGE
    from billing.provisioning_admin import retry as retry_task

    found = state.run(
        MANAGE, "provisioning retry", lambda session, actor: retry_task(session, actor, task_id)
    )
    output.emit(found, as_json, _render_change("retried"))


@group.command("cancel")
@click.argument("task_id", type=int)
@output.json_option
@click.pass_obj
def cancel(state: AppState, task_id: int, as_json: bool) -> None:
    """Cancel a pending, unknown or dead task so no worker runs it (a running one is refused)."""
    from billing.provisioning_admin import MANAGE
    from billing.provisioning_admin import cancel as cancel_task

    found = state.run(
        MANAGE, "provisioning cancel", lambda session, actor: cancel_task(session, actor, task_id)
    )
    output.emit(found, as_json, _render_change("cancelled"))
