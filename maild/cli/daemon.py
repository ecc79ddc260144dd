"""`maild run`, `maild sink` and `maild ingest`: the commands that move mail."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from maild.cli.context import (
    EX_DATAERR,
    EX_TEMPFAIL,
    Context,
    handles_errors,
    setup_logging,
)
from maild.errors import TemporaryError


@click.command()
@click.option("--once", is_flag=True, help="Do what is due now, then exit.")
@click.option("--only", type=click.Choice(["inbound", "outbound", "scheduler"]),
              help="Run one role only (for running roles as separate processes).")
@click.option("--web-port", type=click.IntRange(1, 65535),
              help="Serve [web] on this port instead of the configured one (for several "
                   "processes on one machine).")
@click.pass_obj
@handles_errors
def run(obj: Context, once: bool, only: str | None, web_port: int | None) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    from maild.runtime.daemon import ROLES, Daemon

    daemon = Daemon(obj.app(daemon=True), (only,) if only else ROLES, web_port=web_port)
    if once:
        report = daemon.run_once()
        received, delivered = report.received, report.delivered
        closed = report.sweeps.get("close_solved_tickets", 0)
        nudged, auto_solved = report.sweeps.get("nudged", 0), report.sweeps.get("auto_solved", 0)
        alerts = report.sweeps.get("sla_alerts", 0)
        if daemon.readers:
            click.echo(f"received {received.stored}, duplicates {received.duplicates}, "
                       f"quarantined {received.quarantined}, ignored {received.ignored}; ",
                       nl=False)
        click.echo(f"delivered {delivered.sent}, deferred {delivered.deferred}, "
                   f"failed {delivered.failed}; nudged {nudged}, auto-solved {auto_solved}, "
                   f"closed {closed}; SLA alerts {alerts}"
                   + ("; weekly digest queued" if report.sweeps.get("digests_sent") else ""))
        if report.unreachable:
            raise TemporaryError(f"could not read mailbox(es): {', '.join(report.unreachable)}")
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    daemon.run(stop)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2526, show_default=True, type=int)
@click.option("--dir", "directory", default="storage/sink", show_default=True,
              type=click.Path(path_type=Path))
def sink(host: str, port: int, directory: Path) -> None:
    """A local SMTP server that keeps every message as an .eml file in DIR."""
    from maild.channels.sink import start_sink

    setup_logging("info")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    controller = start_sink(host, port, directory)
    click.echo(f"sink listening on {host}:{port}, writing to {directory}", err=True)
    stop.wait()
    controller.stop()


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.pass_obj
@handles_errors
def ingest(obj: Context, files: tuple[str, ...]) -> None:
    """Take raw messages as if they had arrived (- reads one from stdin)."""
    from maild.intake.pipeline import ingest as ingest_one

    app = obj.app()
    worst = 0
    for name in files:
        try:
            raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            click.echo(f"{name}: cannot read: {exc.strerror}", err=True)
            worst = max(worst, EX_DATAERR)
            continue
        try:
            result = ingest_one(app.intake, raw, "ingest")
        except TemporaryError as exc:
            click.echo(f"{name}: not stored, try again later: {exc}", err=True)
            worst = max(worst, EX_TEMPFAIL)
            continue
        if result.outcome == "quarantined":
            click.echo(f"{name}: quarantined: {result.reason}", err=True)
            worst = max(worst, EX_DATAERR)  # a temporary failure (75) outranks it
        elif result.outcome == "duplicate":
            click.echo(f"{name}: duplicate of {result.message_id}")
        elif result.outcome == "ignored":
            click.echo(f"{name}: ignored: {result.reason}")
        else:
            click.echo(f"{name}: ticket #{result.ticket_id}: {result.reason}")
    sys.exit(worst)


