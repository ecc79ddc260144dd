"""The `maild` command line. The only place that turns errors into exit codes."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from maild.runtime.app import App, build_app
from maild.clock import clock_from_env
from maild.config import Config, load_config
from maild.db.models import PRIORITIES, STATUSES
from maild.errors import ConfigError, MaildError, NotFound, PermanentError, TemporaryError

EX_DATAERR = 65  # the message can never be accepted
EX_TEMPFAIL = 75  # try again later
EX_CONFIG = 78

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._app: App | None = None

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None

    def config(self) -> Config:
        return load_config(self.config_path)

    def app(self, *, migrate: bool = True, daemon: bool = False) -> App:
        if self._app is None:
            config = self.config()
            # One-shot commands print their own outcome; only the daemon logs at info.
            level = config.logging.level
            _setup_logging(level if daemon or level == "debug" else "warning")
            self._app = build_app(config, clock_from_env(), migrate=migrate)
        return self._app


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet = max(logging.WARNING, logging.getLogger().level)
    for chatty in ("alembic", "mail.log", "apscheduler"):  # one line per SMTP command or run
        logging.getLogger(chatty).setLevel(quiet)


def _fail(message: str, code: int) -> None:
    click.echo(f"maild: {message}", err=True)
    sys.exit(code)


def handles_errors(function: F) -> F:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"maild: config: {problem}", err=True)
            sys.exit(EX_CONFIG)
        except NotFound as exc:
            _fail(str(exc), 1)
        except TemporaryError as exc:
            _fail(f"{exc} (try again later)", EX_TEMPFAIL)
        except (PermanentError, MaildError) as exc:
            _fail(str(exc), 1)

    return wrapper  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


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


# --- the daemon --------------------------------------------------------------------------------


@main.command()
@click.option("--once", is_flag=True, help="Do what is due now, then exit.")
@click.option("--only", type=click.Choice(["inbound", "outbound", "scheduler"]),
              help="Run one role only (for running roles as separate processes).")
@click.pass_obj
@handles_errors
def run(obj: Context, once: bool, only: str | None) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    from maild.runtime.daemon import ROLES, Daemon

    daemon = Daemon(obj.app(daemon=True), (only,) if only else ROLES)
    if once:
        report = daemon.run_once()
        received, delivered = report.received, report.delivered
        closed = report.sweeps.get("close_solved_tickets", 0)
        nudged, auto_solved = report.sweeps.get("nudged", 0), report.sweeps.get("auto_solved", 0)
        alerts = report.sweeps.get("sla_alerts", 0)
        if daemon.readers:
            click.echo(f"received {received.stored}, duplicates {received.duplicates}, "
                       f"quarantined {received.quarantined}; ", nl=False)
        click.echo(f"delivered {delivered.sent}, deferred {delivered.deferred}, "
                   f"failed {delivered.failed}; nudged {nudged}, auto-solved {auto_solved}, "
                   f"closed {closed}; SLA alerts {alerts}")
        if report.unreachable:
            raise TemporaryError(f"could not read mailbox(es): {', '.join(report.unreachable)}")
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    daemon.run(stop)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2526, show_default=True, type=int)
@click.option("--dir", "directory", default="storage/sink", show_default=True,
              type=click.Path(path_type=Path))
def sink(host: str, port: int, directory: Path) -> None:
    """A local SMTP server that keeps every message as an .eml file in DIR."""
    from maild.channels.sink import start_sink

    _setup_logging("info")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    controller = start_sink(host, port, directory)
    click.echo(f"sink listening on {host}:{port}, writing to {directory}", err=True)
    stop.wait()
    controller.stop()


@main.command()
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
            result = ingest_one(app, raw, "ingest")
        except TemporaryError as exc:
            click.echo(f"{name}: not stored, try again later: {exc}", err=True)
            worst = max(worst, EX_TEMPFAIL)
            continue
        if result.outcome == "quarantined":
            click.echo(f"{name}: quarantined: {result.reason}", err=True)
            worst = max(worst, EX_DATAERR)  # a temporary failure (75) outranks it
        elif result.outcome == "duplicate":
            click.echo(f"{name}: duplicate of {result.message_id}")
        else:
            click.echo(f"{name}: ticket #{result.ticket_id}: {result.reason}")
    sys.exit(worst)


# --- tickets -------------------------------------------------------------------------------------


@main.group()
def tickets() -> None:
    """List, show and change tickets."""


@tickets.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def tickets_list(obj: Context, status: str | None, as_json: bool) -> None:
    from maild.tickets.views import list_tickets, ticket_json

    app = obj.app()
    with app.db.transaction() as session:
        found = [ticket_json(t, with_messages=False) for t in list_tickets(session, status)]
    if as_json:
        _print_json(found)
        return
    for t in found:
        click.echo(f"#{t['id']:<5} {t['status']:<8} {t['priority']} "
                   f"{t['requester']:<32} {t['subject']}")


@tickets.command("next")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def tickets_next(obj: Context, as_json: bool) -> None:
    """The one ticket to work on now (priority, tier, SLA due time, age), and why."""
    from maild.tickets.views import ticket_json
    from maild.tickets.triage import pick_next

    app = obj.app()
    with app.db.transaction() as session:
        pick = pick_next(session, app.calendar.zone, app.clock.now())
        found = None if pick is None else {**ticket_json(pick.ticket, with_messages=False),
                                           "why": pick.why}
    if as_json:
        _print_json(found)
        return
    if found is None:
        click.echo("nothing is waiting on us")
        return
    click.echo(f"#{found['id']} {found['subject']} ({found['requester']})")
    click.echo(f"  first because: {found['why']}")


@tickets.command("show")
@click.argument("ticket_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def tickets_show(obj: Context, ticket_id: int, as_json: bool) -> None:
    from maild.tickets.views import get_ticket, ticket_json

    app = obj.app()
    with app.db.transaction() as session:
        data = ticket_json(get_ticket(session, ticket_id))
    if as_json:
        _print_json(data)
        return
    click.echo(f"#{data['id']} {data['subject']}")
    click.echo(f"status {data['status']}, priority {data['priority']}, "
               f"requester {data['requester']}, assignee {data['assignee'] or '-'}")
    if data["organization"]:
        click.echo(f"organization {data['organization']} ({data['tier']}, {data['plan'] or '-'})")
    click.echo(f"created {data['created_at']}, severity {data['severity'] or '-'}")
    click.echo(_sla_line(data))
    for message in data["messages"]:
        delivery = message["delivery"]
        sent = f" [{delivery['status']}]" if delivery else ""
        click.echo(f"\n--- {message['created_at']} {message['direction']} {message['kind']} "
                   f"{message['author']}{sent}")
        click.echo(message["body"])


def _sla_line(data: dict[str, Any]) -> str:
    if data["first_response_at"]:
        parts = [f"first response {data['first_response_at']}"]
    else:
        parts = [f"first response due {data['response_due_at'] or '-'} "
                 f"(our target {data['internal_response_due_at'] or '-'})"]
    resolution = data["resolution_due_at"] or "-"
    paused = f", paused since {data['sla_paused_at']}" if data["sla_paused_at"] else ""
    parts.append(f"resolution due {resolution}{paused}")
    if data["escalated_at"]:
        parts.append(f"escalated {data['escalated_at']}")
    return "SLA: " + "; ".join(parts)


@tickets.command("set")
@click.argument("ticket_id", type=int)
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--priority", type=click.Choice(PRIORITIES))
@click.option("--assignee", help="Mail address of the SE, or '' to unassign.")
@click.option("--actor", default="operator", show_default=True, help="Who made the change.")
@click.pass_obj
@handles_errors
def tickets_set(obj: Context, ticket_id: int, status: str | None, priority: str | None,
                assignee: str | None, actor: str) -> None:
    from maild.mail.addresses import InvalidAddress, normalise
    from maild.tickets.views import get_ticket
    from maild.tickets.service import set_assignee, set_priority, set_status

    if status is None and priority is None and assignee is None:
        raise PermanentError("nothing to change: give --status, --priority or --assignee")
    app = obj.app()
    now = app.clock.now()
    with app.db.transaction() as session:
        ticket = get_ticket(session, ticket_id)
        if priority:
            set_priority(ticket, priority, actor=actor, now=now, clocks=app.sla)
        if assignee is not None:
            try:
                who = normalise(assignee) if assignee else None
            except InvalidAddress as exc:
                raise PermanentError(f"--assignee: {exc}") from None
            set_assignee(ticket, who, actor=actor, now=now)
        if status:
            set_status(ticket, status, actor=actor, now=now, clocks=app.sla,
                       detail="set by command")
        click.echo(f"#{ticket.id}: {ticket.status}, {ticket.priority}, "
                   f"assignee {ticket.assignee or '-'}")


@tickets.command("note")
@click.argument("ticket_id", type=int)
@click.argument("text")
@click.option("--author", default="operator", show_default=True)
@click.pass_obj
@handles_errors
def tickets_note(obj: Context, ticket_id: int, text: str, author: str) -> None:
    """Add an internal note (never sent to anyone)."""
    from maild.db.models import Message
    from maild.outbound.compose import new_message_id
    from maild.tickets.views import get_ticket
    from maild.tickets.service import record

    app = obj.app()
    now = app.clock.now()
    with app.db.transaction() as session:
        ticket = get_ticket(session, ticket_id)
        ticket.messages.append(Message(
            message_id=new_message_id(app.config.support.domain, ticket.id),
            direction="out", kind="internal", author=author, created_at=now,
            subject=ticket.subject, body=text.strip(), channel="cli",
            attachments=[],
        ))
        record(ticket, now, author, "note")
    click.echo(f"#{ticket_id}: note added")


@tickets.command("export")
@click.pass_obj
@handles_errors
def tickets_export(obj: Context) -> None:
    """Every ticket with its messages, one JSON object per line."""
    from maild.tickets.views import export_tickets

    app = obj.app()
    with app.db.transaction() as session:
        for data in export_tickets(session):
            click.echo(json.dumps(data, ensure_ascii=False))


# --- quarantine ---------------------------------------------------------------------------------


@main.group()
def quarantine() -> None:
    """Mail that could not be processed: see why, and run it again after a fix."""


@quarantine.command("list")
@click.option("--all", "everything", is_flag=True, help="Released messages too.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def quarantine_list(obj: Context, everything: bool, as_json: bool) -> None:
    from maild.intake.quarantine import entry_json, held

    app = obj.app()
    with app.db.transaction() as session:
        entries = [entry_json(app, e) for e in held(session, everything=everything)]
    if as_json:
        _print_json(entries)
        return
    if not entries:
        click.echo("nothing in quarantine" if not everything else "the quarantine is empty")
        return
    for entry in entries:
        headers = entry["headers"]
        who = headers.get("from", "(no From)")
        click.echo(f"{entry['id']:>5} {entry['status']:<8} {entry['received_at'][:16]} "
                   f"{entry['channel']:<12} {who[:40]}")
        click.echo(f"      {entry['reason']}")


@quarantine.command("show")
@click.argument("entry_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.option("--raw", is_flag=True, help="Write the message's raw bytes to stdout.")
@click.pass_obj
@handles_errors
def quarantine_show(obj: Context, entry_id: int, as_json: bool, raw: bool) -> None:
    from maild.intake.quarantine import entry_json, get_entry

    app = obj.app()
    with app.db.transaction() as session:
        data = entry_json(app, get_entry(session, entry_id))
    if raw:
        try:
            sys.stdout.buffer.write(app.raw_store.get(data["raw_sha256"]))
        except OSError as exc:
            raise PermanentError(f"raw message missing from storage: {exc.strerror}") from None
        return
    if as_json:
        _print_json(data)
        return
    click.echo(f"quarantined message {data['id']}, {data['status']}")
    click.echo(f"reason: {data['reason']}")
    click.echo(f"received {data['received_at']} through {data['channel']}, "
               f"{data['size'] if data['size'] is not None else '?'} bytes at {data['raw_path']}")
    for name, value in data["headers"].items():
        click.echo(f"{name}: {value}")
    if data["replays"]:
        click.echo(f"replayed {data['replays']} time(s), last {data['replayed_at']}")
    if data["outcome"]:
        click.echo(f"outcome: {data['outcome']}")


@quarantine.command("replay")
@click.argument("entry_ids", nargs=-1, type=int)
@click.option("--all", "everything", is_flag=True, help="Every held message.")
@click.pass_obj
@handles_errors
def quarantine_replay(obj: Context, entry_ids: tuple[int, ...], everything: bool) -> None:
    """Run held messages through the intake again, as if they had just arrived.

    Exit 0 when every one was stored, 65 when some are still quarantined, 75 when some
    could not be tried (storage or database unavailable).
    """
    from maild.intake.quarantine import held, replay

    if bool(entry_ids) == everything:
        raise PermanentError("name the messages to replay, or give --all")
    app = obj.app()
    if everything:
        with app.db.transaction() as session:
            entry_ids = tuple(e.id for e in held(session))
    worst = 0
    for entry_id in entry_ids:
        try:
            result = replay(app, entry_id).result
        except TemporaryError as exc:
            click.echo(f"{entry_id}: not tried, try again later: {exc}", err=True)
            worst = max(worst, EX_TEMPFAIL)
            continue
        except (PermanentError, NotFound) as exc:
            click.echo(f"{entry_id}: {exc}", err=True)
            worst = max(worst, EX_DATAERR)
            continue
        if result.outcome == "quarantined":
            click.echo(f"{entry_id}: still quarantined: {result.reason}")
            worst = max(worst, EX_DATAERR)
        elif result.outcome == "duplicate":
            click.echo(f"{entry_id}: released, a duplicate of {result.message_id}")
        else:
            click.echo(f"{entry_id}: released, ticket #{result.ticket_id}: {result.reason}")
    sys.exit(worst)


# --- customers ----------------------------------------------------------------------------------


@main.group()
def customers() -> None:
    """Organisations we support."""


@customers.command("add")
@click.argument("name")
@click.option("--domain", "domains", multiple=True, help="Mail domain (repeatable).")
@click.option("--tier", default="free", show_default=True,
              type=click.Choice(["pre-sales", "enterprise", "team", "free", "open-source",
                                 "internal"]))
@click.option("--plan")
@click.option("--contact", "contacts", multiple=True, help="Contact address (repeatable).")
@click.option("--welcome", is_flag=True, help="Send the welcome mail (only ever once).")
@click.pass_obj
@handles_errors
def customers_add(obj: Context, name: str, domains: tuple[str, ...], tier: str,
                  plan: str | None, contacts: tuple[str, ...], welcome: bool) -> None:
    from maild.tickets.customers import add_customer

    app = obj.app()
    with app.db.transaction() as session:
        customer, welcomed = add_customer(
            app, session, name, domains=list(domains), tier=tier, plan=plan,
            contacts=list(contacts), welcome=welcome,
        )
        already = welcome and not welcomed
        click.echo(f"customer {customer.name}: {customer.tier}, "
                   f"{', '.join(d.domain for d in customer.domains) or 'no domains'}"
                   + ("; welcome mail queued" if welcomed else "")
                   + ("; already welcomed, not sent again" if already else ""))


@customers.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def customers_list(obj: Context, as_json: bool) -> None:
    from maild.tickets.customers import customer_json, list_customers

    app = obj.app()
    with app.db.transaction() as session:
        found = [customer_json(c) for c in list_customers(session)]
    if as_json:
        _print_json(found)
        return
    for c in found:
        click.echo(f"{c['name']:<30} {c['tier']:<12} {c['plan'] or '-':<12} "
                   f"{', '.join(c['domains'])}")


# --- operations ---------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_obj
@handles_errors
def db_upgrade(obj: Context) -> None:
    """Create or migrate the schema to the current version."""
    app = obj.app(migrate=True)
    click.echo(f"database at {app.db.engine.url.render_as_string(hide_password=True)} is current")


@main.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="First day (in the business time zone); default: 30 days ago.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]),
              help="The day after the last one; default: tomorrow (the report runs to today).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def report(obj: Context, since: datetime | None, until: datetime | None, as_json: bool) -> None:
    """First-response and resolution times, SLA attainment, backlog, follow-ups."""
    from datetime import timedelta

    from maild.tickets.report import build_report, report_text

    app = obj.app()
    now = app.clock.now()
    zone = app.calendar.zone
    tomorrow = datetime.combine(now.astimezone(zone).date() + timedelta(days=1),
                                datetime.min.time(), tzinfo=zone)
    end = until.replace(tzinfo=zone) if until else tomorrow  # through today
    start = since.replace(tzinfo=zone) if since else end - timedelta(days=30)
    with app.db.transaction() as session:
        built = build_report(session, app.calendar, start, end, now)
    if as_json:
        _print_json(built)
    else:
        click.echo(report_text(built))


@main.command()
@click.pass_obj
@handles_errors
def check(obj: Context) -> None:
    """Validate the configuration and reach every configured server."""
    from maild.runtime.checks import run_checks

    config = obj.config()
    results = run_checks(config, clock_from_env())
    for result in results:
        click.echo(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.detail}")
    if not all(r.ok for r in results):
        sys.exit(1)
