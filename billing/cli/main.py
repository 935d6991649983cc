"""The ``billing-admin`` entry point: global options and the command tree.

Only click and our thin command modules are imported here; SQLAlchemy and the models load
inside the commands that need them, so ``billing-admin --help`` answers at once.
"""

from __future__ import annotations

from pathlib import Path

import click

from billing.cli import audit, check, config, db, dictionaries, ledger, operators, subscribers, tariffs
from billing.cli import charges as charge_commands
from billing.cli import network as network_commands
from billing.cli import network_reconcile as network_reconcile_commands
from billing.cli import payments as payment_commands
from billing.cli import provisioning as provisioning_commands
from billing.cli import quota as quota_commands
from billing.cli import reconcile as reconcile_commands
from billing.cli import services as service_commands
from billing.cli import unmatched as unmatched_commands
from billing.cli.context import AppState

ROOT_HELP = """Administer the ISP billing server: subscribers, money, dictionaries, operators, audit.

Every command runs as an operator: your OS login, mapped to an active operator (create the
first one with 'billing-admin db bootstrap LOGIN'). Each command group needs a permission held
through a role (reads X.read, changes X.write); every change is written to the audit log.
"""

ROOT_EPILOG = """\b
Examples:
  billing-admin config check
  billing-admin db upgrade && billing-admin db bootstrap "$USER" --name "First Admin"
  billing-admin dict add region north "North district"
  billing-admin subscribers create --kind person --name "Ann Lee" --category residential \\
      --region north --email ann@example.net
  billing-admin ledger adjust 100001 25.00 --reason goodwill
  billing-admin tariff import conf/tariffs/example.toml --dry-run
  billing-admin --as clerk subscribers list --json

\b
Exit codes:
  0  ok
  1  error (bad input, unknown record, refused by a rule; nothing was written)
  2  usage error (unknown option, missing argument)
  3  permission denied (or your login is not an operator)
  4  partly done: some lines of an imported file were bad (named), the others were imported
"""


@click.group(
    help=ROOT_HELP,
    epilog=ROOT_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="Config file (default: $BILLING_CONFIG, else /etc/billing/billing.toml, else conf/billing.toml).",
)
@click.option(
    "--as",
    "as_login",
    metavar="LOGIN",
    default=None,
    help="Act as another operator (needs operators.impersonate; the audit log records both).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, as_login: str | None) -> None:
    state = AppState(config_path=config_path, as_login=as_login)
    ctx.obj = state
    ctx.call_on_close(state.close)


for _group in (
    subscribers.group,
    ledger.group,
    service_commands.group,
    tariffs.group,
    charge_commands.group,
    payment_commands.group,
    unmatched_commands.group,
    reconcile_commands.registry_group,
    reconcile_commands.reconcile,
    network_reconcile_commands.reconcile_network,
    quota_commands.group,
    provisioning_commands.group,
    network_commands.group,
    dictionaries.group,
    operators.group,
    operators.roles,
    audit.group,
    config.group,
    db.group,
    check.command,
):
    cli.add_command(_group)


def main() -> None:
    """Console script ``billing-admin``."""
    cli(prog_name="billing-admin")
