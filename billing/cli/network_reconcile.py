"""``billing-admin reconcile-network``: compare billing's desired network state with the network's.

Reads the open RADIUS sessions (accounting), what the network last confirmed, the services'
tasks, and the admin state of the bound ports of every switch billing controls (over SNMP or the
CLI), and prints the drift (:mod:`billing.network_reconcile` says what each kind means).
``--repair`` then writes one provisioning task per drifted service and supersedes its tasks in
state ``unknown`` (audited). The report needs ``provisioning.read``, ``--repair`` needs
``provisioning.manage`` (checked before anything is read). This is the edge that reads the clock.

Not the bank reconciliation (``billing-admin reconcile``): a different thing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from billing.cli import output
from billing.cli.context import AppState, CliFailure

EXIT_DRIFT = 5
"""Exit code when drift was found (with or without --repair); 0 means none."""

EPILOG = """\b
Examples:
  billing-admin reconcile-network
  billing-admin reconcile-network --nas bras1
  billing-admin reconcile-network --switch sw-north-1 --json
  billing-admin reconcile-network --repair

\b
Filters: --nas limits the run to the sessions of that [[aaa.nas]], --switch to that switch's
ports; naming only one leaves the other kind out; none checks everything.
Drift kinds: session_should_be_down, session_unconfirmed, session_stale, port_should_be_blocked,
port_should_be_up, port_rate_differs, port_not_found, switch_unreachable.
--repair writes one task per service with repairable drift (key reconcile:<service>:<run id>)
and marks that service's unknown tasks superseded; the worker then executes it.
Exit codes: 0 no drift, 1 refused (e.g. unknown --nas), 2 usage, 3 permission denied,
5 drift found (also when --repair wrote tasks for it).
"""


def _render(report: Any) -> None:
    if report.drift:
        output.table(
            f"network drift (run {report.run_id})",
            ["kind", "service", "account", "target", "desired", "reported", "detail"],
            [
                (d.kind, d.service_id, d.account, d.target, d.desired, d.reported, d.detail)
                for d in report.drift
            ],
            numeric=["service"],
        )
    if report.repairs:
        output.table(
            "repair",
            ["service", "task", "network", "superseded", "note"],
            [(r.service_id, r.task_id, r.network, list(r.superseded), r.note) for r in report.repairs],
            numeric=["service", "task"],
        )
    output.done(report.summary())


@click.command("reconcile-network", epilog=EPILOG)
@click.option("--nas", default=None, metavar="NAME", help="Only the sessions of this [[aaa.nas]].")
@click.option("--switch", "switch", default=None, metavar="NAME", help="Only this switch's ports.")
@click.option("--repair", is_flag=True, help="Write tasks that fix the drift (provisioning.manage).")
@output.json_option
@click.pass_obj
def reconcile_network(
    state: AppState, nas: str | None, switch: str | None, repair: bool, as_json: bool
) -> None:
    """Compare what billing says should be with what the network reports; print the drift."""
    from billing import network_reconcile as nr
    from billing.service_lifecycle import rules_for

    config = state.config()
    rules = rules_for(config.isp.tzinfo)
    now = datetime.now(UTC)
    permission = "provisioning.manage" if repair else "provisioning.read"
    command = "reconcile-network" + (" --repair" if repair else "")
    try:
        snapshot = state.run(
            permission,
            command,
            lambda session, _: nr.load_snapshot(session, config.aaa, rules, now=now, nas=nas, switch=switch),
        )
    except nr.ReconcileError as exc:
        raise CliFailure(str(exc)) from None
    readings = nr.read_switches_blocking(snapshot.switches, config.provisioning)
    report = nr.build_report(snapshot, readings)
    if repair and any(d.repairable for d in report.drift):
        report = state.run(
            permission,
            command,
            lambda session, actor: nr.write_repairs(
                session, actor, report, snapshot, rules, datetime.now(UTC)
            ),
        )
    if as_json:
        fields = {name: getattr(report, name) for name in report.__dataclass_fields__}
        output.emit(
            {**fields, "drifted_services": report.drifted_services, "summary": report.summary()},
            True,
            _render,
        )
    else:
        _render(report)
    if report.drift:
        click.get_current_context().exit(EXIT_DRIFT)
