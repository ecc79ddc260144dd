"""`maild db upgrade`, `maild report` and `maild check`."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from maild.cli.context import (
    Context,
    handles_errors,
    json_option,
    print_json,
)
from maild.clock import clock_from_env


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_obj
@handles_errors
def db_upgrade(obj: Context) -> None:
    """Create or migrate the schema to the current version."""
    app = obj.app(migrate=True)
    click.echo(f"database at {app.db.engine.url.render_as_string(hide_password=True)} is current")


@click.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="First day (in the business time zone); default: 30 days ago.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]),
              help="The day after the last one; default: tomorrow (the report runs to today).")
@json_option
@click.pass_obj
@handles_errors
def report(obj: Context, since: datetime | None, until: datetime | None, as_json: bool) -> None:
    """First-response and resolution times, SLA attainment, open breaches, engineers,
    backlog, follow-ups and satisfaction."""
    from datetime import timedelta

    from maild.tickets.report import build_report
    from maild.tickets.report_text import report_text

    app = obj.app()
    now = app.clock.now()
    zone = app.calendar.zone
    tomorrow = datetime.combine(now.astimezone(zone).date() + timedelta(days=1),
                                datetime.min.time(), tzinfo=zone)
    end = until.replace(tzinfo=zone) if until else tomorrow  # through today
    start = since.replace(tzinfo=zone) if since else end - timedelta(days=30)
    built = obj.read(lambda _, session: build_report(session, app.calendar, start, end, now))
    if as_json:
        print_json(built)
    else:
        click.echo(report_text(built))


@click.command()
@click.pass_obj
@handles_errors
def check(obj: Context) -> None:
    """Validate the configuration and reach every configured server."""
    from maild.runtime.checks import CheckResult, run_checks

    config = obj.config()
    results = run_checks(config, clock_from_env())
    results += [CheckResult("secrets", False, problem) for problem in config.missing_secrets()]
    for result in results:
        mark = "FAIL" if not result.ok else "WARN" if result.warning else "ok  "
        click.echo(f"{mark} {result.name}: {result.detail}")
    if not all(r.ok for r in results):
        sys.exit(1)
