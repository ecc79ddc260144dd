"""The `maild` command line: one module per command group, joined here."""

from __future__ import annotations

from pathlib import Path

import click

from maild.cli import customers, daemon, operations, quarantine, tickets
from maild.cli.context import Context


@click.group()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path),
    help="Configuration file (default: $MAILD_CONFIG, else config/maild.toml).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """maild: an email support desk that runs as a daemon."""
    ctx.obj = Context(config_path)
    ctx.call_on_close(ctx.obj.close)




for command in (daemon.run, daemon.sink, daemon.ingest, tickets.tickets, quarantine.quarantine,
                customers.customers, operations.db, operations.report, operations.check):
    main.add_command(command)
