"""``billing-admin config check``: validate a config file without touching the database.

Prints "OK" and a one-line summary, or every problem (file, key, what was expected) one per
line and exits 1. Secrets are never printed: ``--json`` dumps the config with them masked.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from billing.cli.context import EXIT_ERROR, AppState


@click.group("config")
def group() -> None:
    """The configuration file."""


@group.command(
    epilog="\b\nExamples:\n  billing-admin config check\n"
    "  billing-admin config check --config /etc/billing/billing.toml --json"
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="File to check (default: the global --config, else the default config path).",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"ok", "problems", "config"} (secrets masked).')
@click.pass_obj
def check(state: AppState, config_path: Path | None, as_json: bool) -> None:
    """Check the config file; no database or operator needed."""
    from billing.config import ConfigError, default_config_path, load_config

    path = config_path or state.config_path or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        if as_json:
            problems = [{"file": p.file, "key": p.key, "message": p.message} for p in exc.problems]
            click.echo(json.dumps({"ok": False, "problems": problems, "config": None}, indent=2))
        else:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        raise click.exceptions.Exit(EXIT_ERROR) from None
    if as_json:
        click.echo(json.dumps({"ok": True, "problems": [], "config": config.to_public_dict()}, indent=2))
        return
    from sqlalchemy.engine import make_url

    backend = make_url(config.database.sqlalchemy_url()).get_backend_name()
    click.echo(
        f"OK: {path}: {config.isp.name}, currency {config.isp.currency}, time zone {config.isp.time_zone}, "
        f"database {backend}"
    )
