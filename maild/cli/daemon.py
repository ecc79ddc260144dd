"""`maild run`, `maild sink` and `maild ingest`: the commands that move mail."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from pathlib import Path

import click

from maild.cli.context import (
    EX_DATAERR,
    EX_NOINPUT,
    EX_TEMPFAIL,
    Context,
    handles_errors,
    setup_logging,
)
from maild.errors import ConfigError, TemporaryError


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

    roles = (only,) if only else ROLES
    missing = obj.config().missing_secrets(mailboxes="inbound" in roles,
                                           outbound="outbound" in roles)
    if missing:
        raise ConfigError(missing)
    listener = obj.config().inbound_smtp
    if not once and "inbound" in roles and listener.enabled:
        from maild.channels.smtp_listener import ListenerUnavailable, listen_problem

        # Said before anything starts; the listener says it too if the port is taken
        # between now and then.
        problem = listen_problem(listener.host, listener.port)
        if problem is not None:
            raise ListenerUnavailable(f"inbound SMTP {problem}")
    daemon = Daemon(obj.app(daemon=True), roles, web_port=web_port)
    # What the start made (every module and class, the app) lives as long as the
    # process: frozen, it is no longer walked by each of the collector's full passes,
    # which took a second or two of a run --once over a backlog (bench/README.md).
    gc.freeze()
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
    """Take raw messages as if they had arrived (- reads one from stdin).

    Exit 0 when every one was stored (or was a duplicate, or ignored), 65 when one was
    quarantined, 66 when a file could not be read, 75 when one could not be kept (try
    again later).
    """
    from maild.intake.spool import ingest_stream

    app = obj.app()
    worst = 0
    for name in files:
        try:
            source = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
        except OSError as exc:
            click.echo(f"{name}: cannot read: {exc.strerror}", err=True)
            worst = max(worst, EX_NOINPUT)
            continue
        try:
            result = ingest_stream(app.intake, source, "ingest")
        except TemporaryError as exc:
            click.echo(f"{name}: not stored, try again later: {exc}", err=True)
            worst = max(worst, EX_TEMPFAIL)
            continue
        except OSError as exc:  # the file went bad while it was read
            click.echo(f"{name}: cannot read: {exc.strerror}", err=True)
            worst = max(worst, EX_NOINPUT)
            continue
        finally:
            if source is not sys.stdin.buffer:
                source.close()
        if result.outcome == "quarantined":
            click.echo(f"{name}: quarantined: {result.reason}", err=True)
            worst = max(worst, EX_DATAERR)  # not readable (66) and temporary (75) outrank it
        elif result.outcome == "duplicate":
            click.echo(f"{name}: duplicate of {result.message_id}")
        elif result.outcome == "ignored":
            click.echo(f"{name}: ignored: {result.reason}")
        else:
            click.echo(f"{name}: ticket #{result.ticket_id}: {result.reason}")
    sys.exit(worst)


