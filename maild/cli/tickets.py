"""`maild tickets …`: list, show, pick, change, annotate and export tickets."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy.orm import Session

from maild.cli.context import (
    Context,
    handles_errors,
    json_option,
    known_id,
    print_json,
)
from maild.errors import PermanentError
from maild.runtime.app import App
from maild.tickets.model import PRIORITIES, STATUSES


@click.group()
def tickets() -> None:
    """List, show and change tickets."""


@tickets.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--failing", is_flag=True,
              help="The tickets whose scheduled steps (nudge, survey, closing, SLA alert) "
                   "are failing, and the weekly digest when it fails: which step, how "
                   "often, why, and the next try.")
@json_option
@click.pass_obj
@handles_errors
def tickets_list(obj: Context, status: str | None, failing: bool, as_json: bool) -> None:
    from maild.tickets.views import list_tickets, ticket_json

    if failing:
        _list_failing(obj, status, as_json)
        return
    found = obj.read(lambda app, session: [ticket_json(t, with_messages=False)
                                           for t in list_tickets(session, status)])
    if as_json:
        print_json(found)
        return
    for t in found:
        click.echo(f"#{t['id']:<5} {t['status']:<8} {t['priority']} "
                   f"{t['requester']:<32} {t['subject']}")


def _list_failing(obj: Context, status: str | None, as_json: bool) -> None:
    from datetime import datetime

    from maild.tickets.failed_jobs import failing_jobs
    from maild.tickets.failed_steps import failing_steps

    # The jobs of no ticket (the weekly digest) first, and only when no status is asked.
    found = obj.read(lambda app, session: ([] if status else failing_jobs(session))
                     + failing_steps(session, status))
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("no scheduled step is failing")
        return
    zone = obj.app().calendar.zone

    def local(moment: str) -> str:
        return datetime.fromisoformat(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    for f in found:
        times = "time" if f["attempts"] == 1 else "times"
        if f["id"] is None:
            click.echo(f"{'no ticket':<15} {f['step']:<9} failed {f['attempts']} {times} since "
                       f"{local(f['failing_since'])}, next try {local(f['retry_at'])}  "
                       f"{f['subject']}")
            click.echo(f"       {f['last_error']}")
            continue
        click.echo(f"#{f['id']:<5} {f['status']:<8} {f['step']:<9} failed {f['attempts']} "
                   f"{times} since {local(f['failing_since'])}, next try "
                   f"{local(f['retry_at'])}  {f['subject']}")
        click.echo(f"       {f['last_error']}")


@tickets.command("next")
@click.option("--for", "engineer", metavar="ADDR",
              help="For one engineer: their tickets and the unassigned ones.")
@json_option
@click.pass_obj
@handles_errors
def tickets_next(obj: Context, engineer: str | None, as_json: bool) -> None:
    """The one ticket to work on now (priority, tier, SLA due time, age), and why."""
    from maild.mail.addresses import InvalidAddress, normalise
    from maild.tickets.triage import pick_next
    from maild.tickets.views import ticket_json

    try:
        who = normalise(engineer) if engineer is not None else None
    except InvalidAddress as exc:
        raise PermanentError(f"--for: {exc}") from None

    def next_one(app: App, session: Session) -> dict[str, Any] | None:
        pick = pick_next(session, app.calendar.zone, app.clock.now(), who)
        return None if pick is None else {**ticket_json(pick.ticket, with_messages=False),
                                          "why": pick.why}

    found = obj.read(next_one)
    if as_json:
        print_json(found)
        return
    if found is None:
        click.echo("nothing is waiting on us" if who is None
                   else f"nothing is waiting on us that is {who}'s or nobody's")
        return
    click.echo(f"#{found['id']} {found['subject']} ({found['requester']})")
    click.echo(f"  first because: {found['why']}")


@tickets.command("show")
@click.argument("ticket_id", type=int)
@json_option
@click.pass_obj
@handles_errors
def tickets_show(obj: Context, ticket_id: int, as_json: bool) -> None:
    from maild.tickets.views import get_ticket, ticket_json, ticket_text

    known_id(ticket_id, f"there is no ticket #{ticket_id}")
    data = obj.read(lambda app, session: ticket_json(get_ticket(session, ticket_id)))
    if as_json:
        print_json(data)
        return
    click.echo(ticket_text(data, obj.app().calendar.zone))


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
    from maild.errors import TemplateFailed
    from maild.mail.addresses import InvalidAddress, normalise
    from maild.tickets.model import SYSTEM_ACTOR
    from maild.tickets.service import record, set_assignee, set_status, triage_priority
    from maild.tickets.views import get_ticket

    if status is None and priority is None and assignee is None:
        raise PermanentError("nothing to change: give --status, --priority or --assignee")
    known_id(ticket_id, f"there is no ticket #{ticket_id}")
    app = obj.app()
    now = app.clock.now()
    with app.db.transaction() as session:
        ticket = get_ticket(session, ticket_id, for_update=True)
        if priority and triage_priority(ticket, priority, actor=actor, now=now,
                                        clocks=app.sla):
            try:
                app.mails.severity_changed(session, ticket)
            except TemplateFailed as exc:  # the change stands; only the mail failed
                record(ticket, now, SYSTEM_ACTOR, "mail_failed",
                       detail=f"severity change notice not sent: {exc}")
                click.echo(f"#{ticket.id}: the customer was not told of the new severity: "
                           f"{exc}", err=True)
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
    from maild.db.fulltext import index_new_messages
    from maild.db.models import Message
    from maild.mail.message_id import new_message_id
    from maild.tickets.conversation import add_message
    from maild.tickets.service import record
    from maild.tickets.views import get_ticket

    known_id(ticket_id, f"there is no ticket #{ticket_id}")
    app = obj.app()
    now = app.clock.now()
    with app.db.transaction() as session:
        ticket = get_ticket(session, ticket_id, for_update=True)
        add_message(ticket, Message(
            message_id=new_message_id(app.config.support.domain, ticket.id),
            direction="out", kind="internal", author=author, created_at=now,
            subject=ticket.subject, body=text.strip(), channel="cli",
            attachments=[],
        ))
        record(ticket, now, author, "note")
        session.flush()
        index_new_messages(session)
    click.echo(f"#{ticket_id}: note added")


@tickets.command("search")
@click.argument("words", nargs=-1, required=True)
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--customer", "domain", metavar="DOMAIN",
              help="Only the tickets of the customer owning DOMAIN, or from addresses there.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@json_option
@click.pass_obj
@handles_errors
def tickets_search(obj: Context, words: tuple[str, ...], status: str | None,
                   domain: str | None, limit: int, as_json: bool) -> None:
    """Past tickets whose subjects or messages hold every one of WORDS, best first."""
    from maild.tickets.search import found_json, search_tickets
    from maild.tickets.views import local_time

    found = obj.read(lambda app, session: [found_json(f) for f in search_tickets(
        session, " ".join(words), status=status, customer_domain=domain, limit=limit)])
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("no ticket holds those words")
        return
    zone = obj.app().calendar.zone
    for t in found:
        who = t["organization"] or t["requester"]
        click.echo(f"#{t['id']:<5} {t['status']:<8} {local_time(t['created_at'], zone)}  "
                   f"{t['subject']}  ({who})")
        click.echo(f"       {t['excerpt']}")


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


