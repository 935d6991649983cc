"""``billing-admin service``: a service's lifecycle: status changes, tariff changes, history, evaluation.

Changes need ``services.change_status``, ``history`` needs ``services.read`` and ``evaluate``
needs ``services.evaluate``; the work is :mod:`billing.service_lifecycle`. Reasons are codes of
the ``status_reason`` dictionary. ``--at DATE`` after today (in the ISP's time zone) schedules the
change instead of making it now. This is the edge that reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, CliFailure, parse_date, parse_instant

REASON_HELP = "Code from the status_reason dictionary (billing-admin dict list status_reason)."


@click.group(
    "service",
    epilog="\b\nExamples:\n  billing-admin service suspend 42 --reason customer_request --until 2027-02-01\n"
    "  billing-admin service block 42 --reason fraud\n"
    "  billing-admin service change-tariff 42 home-200 --reason customer_request --at 2027-01-01\n"
    "  billing-admin service history 42",
)
def group() -> None:
    """The lifecycle of a service (subscription): status changes, scheduled changes, history."""


def _render_outcome(outcome: Any) -> None:
    for change in outcome.changes:
        task = f", provisioning task {change.provisioning_task_id}" if change.provisioning_task_id else ""
        output.done(
            f"service {change.service_id}: {change.event} {change.from_status} -> {change.to_status} "
            f"({change.reason}){task}"
        )
    for scheduled in outcome.scheduled:
        output.done(
            f"service {scheduled.service_id}: {scheduled.event} scheduled for {scheduled.effective} "
            f"({scheduled.reason}), id {scheduled.id}"
        )
    if outcome.voluntary_period is not None:
        output.done(f"voluntary suspension {outcome.voluntary_period} (days {outcome.voluntary_period.days})")
    output.done(f"service {outcome.service_id} is {outcome.status}")


def _act(
    state: AppState,
    command: str,
    service_id: int,
    event: str,
    reason: str,
    at: str | None,
    as_json: bool,
    *,
    until: str | None = None,
    tariff_code: str | None = None,
) -> None:
    from billing import service_lifecycle

    tz = state.config().isp.tzinfo
    day = parse_date(at, "--at") if at is not None else None
    back = parse_date(until, "--until") if until is not None else None
    as_of = datetime.now(UTC)
    rules = service_lifecycle.rules_for(tz)
    outcome = state.run(
        "services.change_status",
        f"service {command}",
        lambda session, actor: service_lifecycle.apply_event(
            session, actor, service_id, event, as_of,
            reason=reason, rules=rules, at=day, until=back, tariff_code=tariff_code,
        ),
    )  # fmt: skip
    output.emit(outcome, as_json, _render_outcome)


def _simple(name: str, event: str, summary: str, example: str) -> Callable[..., None]:
    """A command SERVICE_ID --reason CODE [--at DATE] that applies ``event``."""

    @group.command(name, help=summary, epilog=f"\b\nExample:\n  {example}")
    @click.argument("service_id", type=int)
    @click.option("--reason", required=True, help=REASON_HELP)
    @click.option(
        "--at", default=None, metavar="DATE", help="Schedule for this day (YYYY-MM-DD) if after today."
    )
    @output.json_option
    @click.pass_obj
    def command(state: AppState, service_id: int, reason: str, at: str | None, as_json: bool) -> None:
        _act(state, name, service_id, event, reason, at, as_json)

    return command


activate = _simple(
    "activate", "activate", "Put a pending service into service (suspended at once if its debt is due).",
    "billing-admin service activate 42 --reason customer_request",
)  # fmt: skip
resume = _simple(
    "resume", "resume", "End a voluntary suspension early (the scheduled return is cancelled).",
    "billing-admin service resume 42 --reason customer_request",
)  # fmt: skip
block = _simple(
    "block", "block", "Block a service (no fee, network denied) until unblocked.",
    "billing-admin service block 42 --reason fraud --at 2027-01-15",
)  # fmt: skip
unblock = _simple(
    "unblock", "unblock", "Unblock a service: active, or suspended for debt if its debt is due.",
    "billing-admin service unblock 42 --reason customer_request",
)  # fmt: skip
churn = _simple(
    "churn", "churn", "End a service for good (terminal; cancels its scheduled changes).",
    "billing-admin service churn 42 --reason customer_request --at 2027-01-31",
)  # fmt: skip


@group.command(
    epilog="\b\nExamples:\n  billing-admin service suspend 42 --reason customer_request --until 2027-02-01\n"
    "  billing-admin service suspend 42 --reason customer_request --at 2027-03-01 --until 2027-04-01"
)
@click.argument("service_id", type=int)
@click.option("--reason", required=True, help=REASON_HELP)
@click.option("--at", default=None, metavar="DATE", help="First day of the suspension (default: today).")
@click.option(
    "--until", default=None, metavar="DATE", help="First day back in service (default: the rules' maximum)."
)
@output.json_option
@click.pass_obj
def suspend(
    state: AppState, service_id: int, reason: str, at: str | None, until: str | None, as_json: bool
) -> None:
    """Suspend a service voluntarily for [--at, --until); the return is scheduled automatically.

    Checked: the rules' minimum and maximum days, the yearly cap, no overlap, no debt due.
    """
    _act(state, "suspend", service_id, "suspend_voluntary", reason, at, as_json, until=until)


@group.command(
    "change-tariff",
    epilog="\b\nExample:\n"
    "  billing-admin service change-tariff 42 home-200 --reason customer_request --at 2027-01-01",
)
@click.argument("service_id", type=int)
@click.argument("tariff_code")
@click.option("--reason", required=True, help=REASON_HELP)
@click.option("--at", default=None, metavar="DATE", help="Schedule for this day (YYYY-MM-DD) if after today.")
@output.json_option
@click.pass_obj
def change_tariff(
    state: AppState, service_id: int, tariff_code: str, reason: str, at: str | None, as_json: bool
) -> None:
    """Move a service to TARIFF_CODE now, or from --at (e.g. the next period)."""
    _act(state, "change-tariff", service_id, "change_tariff", reason, at, as_json, tariff_code=tariff_code)


def _render_history(found: Any) -> None:
    output.fields(
        f"Service {found.service_id}",
        [
            ("status", found.status),
            ("tariff", found.tariff_code),
            ("voluntary periods", [str(p) for p in found.voluntary_periods]),
        ],
    )
    output.table(
        "Status changes",
        ["id", "at", "event", "from", "to", "reason", "operator", "tariff", "scheduled", "task"],
        [
            (c.id, c.at, c.event, c.from_status, c.to_status, c.reason, c.operator or "(automatic)",
             c.tariff_code, c.scheduled_change_id, c.provisioning_task_id)
            for c in found.changes
        ],
    )  # fmt: skip
    output.table(
        "Scheduled changes",
        ["id", "effective", "event", "reason", "operator", "tariff", "state", "outcome"],
        [
            (
                s.id,
                s.effective,
                s.event,
                s.reason,
                s.operator or "(automatic)",
                s.tariff_code,
                s.state,
                s.outcome,
            )
            for s in found.scheduled
        ],
    )


@group.command(epilog="\b\nExample:\n  billing-admin service history 42 --json")
@click.argument("service_id", type=int)
@output.json_option
@click.pass_obj
def history(state: AppState, service_id: int, as_json: bool) -> None:
    """Show a service's status, status changes, scheduled changes and voluntary periods."""
    from billing import service_lifecycle

    found = state.run(
        "services.read", "service history", lambda session, _: service_lifecycle.history(session, service_id)
    )
    output.emit(found, as_json, _render_history)


def _render_report(report: Any) -> None:
    output.done(f"evaluated {report.services_checked} services as of {output.text(report.as_of)}")
    if report.changes:
        output.table(
            "Status changes",
            ["service", "event", "from", "to", "reason", "task"],
            [
                (c.service_id, c.event, c.from_status, c.to_status, c.reason, c.provisioning_task_id)
                for c in report.changes
            ],
        )
    if report.refused:
        output.table(
            "Scheduled changes refused",
            ["id", "service", "effective", "event", "outcome"],
            [(r.id, r.service_id, r.effective, r.event, r.outcome) for r in report.refused],
        )
    for failure in report.failures:
        output.done(f"service {failure.service_id}: FAILED: {failure.message}")


@group.command(
    epilog="\b\nExamples:\n  billing-admin service evaluate\n"
    "  billing-admin service evaluate --as-of 2027-01-15 --service 42 --json"
)
@click.option(
    "--as-of", "as_of_text", default=None, metavar="DATE|TIME",
    help="Evaluate as of this instant (a date means its first moment in the ISP's time zone; default: now).",
)  # fmt: skip
@click.option("--service", "service_ids", type=int, multiple=True, help="Only this service (repeatable).")
@output.json_option
@click.pass_obj
def evaluate(state: AppState, as_of_text: str | None, service_ids: tuple[int, ...], as_json: bool) -> None:
    """Apply what is due: debt suspensions after the grace period, resumes on payment, churn of
    long-unpaid services, scheduled changes. Idempotent: a second run the same day does nothing.

    Exit 1 if some service failed (the others' changes are kept; each failure is listed).
    """
    from billing import service_lifecycle

    tz = state.config().isp.tzinfo
    as_of = parse_instant(as_of_text, "--as-of", tz) if as_of_text else datetime.now(UTC)
    rules = service_lifecycle.rules_for(tz)
    report = state.run(
        "services.evaluate",
        "service evaluate",
        lambda session, actor: service_lifecycle.evaluate_services(
            session, actor, as_of, rules, service_ids=list(service_ids) or None
        ),
    )
    output.emit(report, as_json, _render_report)
    if report.failures:
        raise CliFailure(f"{len(report.failures)} service(s) failed; see above")
