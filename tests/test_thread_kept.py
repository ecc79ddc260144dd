"""What a ticket keeps at hand of its thread and its status history (the References and
greeting of the mail maild writes, the count of the requester's mails, the SLA clocks'
pauses) says what its messages and events say: as the thread grows through the intake,
and for the tickets an older maild left, once the migration has worked it out."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text

from maild.clock import FixedClock
from maild.db.database import Database
from maild.db.migrate import upgrade
from maild.db.models import ReceivedRaw
from maild.intake.pipeline import ingest, intake_batch
from maild.runtime.app import App
from maild.tickets.model import WAITING_ON_US
from maild.tickets.service import set_status
from maild.tickets.sla import Pause, pauses
from maild.tickets.views import get_ticket
from tests.conftest import Sink
from tests.helpers import downgrade, maild, notice_to, show
from tests.mailbuilder import make_mail, plain_text, staff_reply
from tests.waiting import wait_for


def _delivered(app: App, sink: Sink, to: str) -> list[EmailMessage]:
    app.sender.deliver_due()
    return [m for m in sink.messages() if m["Delivered-To"] == to]


def _thread_as_the_customer_saw_it(app: App, ticket_id: int) -> list[str]:
    """From the messages themselves: each one not internal, by the Message-ID of the mail
    of ours that delivered it, if any."""
    return [m["delivery"]["message_id"] if m["delivery"] else m["message_id"]
            for m in show(app, ticket_id)["messages"] if m["kind"] != "internal"]


def _pauses_in_the_event_log(app: App, ticket_id: int) -> list[Pause]:
    found: list[Pause] = []
    since: datetime | None = None
    for event in show(app, ticket_id)["events"]:
        if event["kind"] != "status":
            continue
        at = datetime.fromisoformat(event["at"])
        if event["new"] not in WAITING_ON_US and since is None:
            since = at
        elif event["new"] in WAITING_ON_US and since is not None:
            found.append((since, at))
            since = None
    return [*found, (since, None)] if since is not None else found


def _a_long_conversation(app: App, clock: FixedClock, replies: int) -> int:
    """The customer writes, is acknowledged, Dan answers (relayed), notes something
    internal, puts the ticket on hold and back, and the customer replies `replies`
    times, once with only an out-of-office."""
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    assert ticket_id is not None
    clock.advance(timedelta(hours=1))
    ingest(app.intake, staff_reply(ticket_id, "Please unplug it.\n", "<dan1@example.com>",
                                   notice_to(app, ticket_id)), "test")
    clock.advance(timedelta(hours=1))
    ingest(app.intake, staff_reply(ticket_id, "#note asked about the fuse\n#status on_hold\n",
                                   "<dan2@example.com>", notice_to(app, ticket_id)), "test")
    for n in range(1, replies + 1):
        clock.advance(timedelta(hours=2))  # past the cap on notifications per sender
        name = "Ann C." if n % 2 else "ann@customer.example"
        ingest(app.intake, make_mail(
            sender=f"{name} <ann@customer.example>", subject=f"Re: [#{ticket_id}] Printer on fire",
            message_id=f"<reply{n}@customer.example>", in_reply_to="<first@customer.example>",
            body=f"Still broken ({n}).\n",
            headers={"Auto-Submitted": "auto-replied"} if n == 2 else None), "test")
    clock.advance(timedelta(hours=1))
    with app.db.transaction() as session:
        set_status(get_ticket(session, ticket_id), "solved", actor="dan@example.com",
                   now=clock.now(), clocks=app.sla)
    return ticket_id


def test_the_mail_about_a_long_thread_names_all_of_it_as_the_customer_saw_it(
    app: App, clock: FixedClock, sink: Sink
) -> None:
    ticket_id = _a_long_conversation(app, clock, replies=5)

    thread = _thread_as_the_customer_saw_it(app, ticket_id)
    [ack, relay] = _delivered(app, sink, "ann@customer.example")
    assert thread[:3] == ["<first@customer.example>", ack["Message-ID"], relay["Message-ID"]]
    assert relay["References"].split() == thread[:2]
    notice = _delivered(app, sink, "dan@example.com")[-1]
    assert notice["References"].split() == thread
    assert notice["In-Reply-To"] == "<reply5@customer.example>"
    assert len(thread) == 8  # the first mail, the ack, the relay, five replies; not the note


def test_the_greeting_is_the_name_the_requester_signed_with_last(
    app: App, clock: FixedClock, sink: Sink
) -> None:
    ticket_id = _a_long_conversation(app, clock, replies=4)  # the last one without a name
    with app.db.transaction() as session:
        app.mails.to_customer(session, get_ticket(session, ticket_id), "nudge", "nudge",
                              nudge_number=1)

    nudge = _delivered(app, sink, "ann@customer.example")[-1]
    assert plain_text(nudge).startswith("Hello Ann C.,\n")


def test_the_sla_pauses_are_those_the_status_events_tell(
    app: App, clock: FixedClock
) -> None:
    ticket_id = _a_long_conversation(app, clock, replies=3)
    with app.db.transaction() as session:
        kept = pauses(get_ticket(session, ticket_id))

    assert kept == _pauses_in_the_event_log(app, ticket_id)
    # Waiting on the customer from the relay (then on hold) to their first reply; solved.
    assert [until is None for _since, until in kept] == [False, True]


def _kept(database: Database) -> list[tuple[Any, ...]]:
    with database.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT id, thread_ids, requester_name, requester_mails, sla_pauses "
            "FROM tickets ORDER BY id"))]


def test_the_migration_works_out_what_older_tickets_keep(
    app: App, clock: FixedClock
) -> None:
    _a_long_conversation(app, clock, replies=5)
    clock.advance(timedelta(hours=1))
    ingest(app.intake, make_mail(sender="bob@other.example", message_id="<bob@other.example>",
                                 subject="Another problem"), "test")
    as_kept = _kept(app.db)

    with app.db.transaction() as session:  # or migration 0025 refuses to go back
        session.execute(delete(ReceivedRaw))
    downgrade(app.db, "0021")
    upgrade(app.db)

    assert _kept(app.db) == as_kept
    assert [row[3] for row in as_kept] == [5, 1]  # the out-of-office is no mail of theirs


def test_a_command_changing_a_ticket_the_intake_holds_waits_and_keeps_both_mails(
    app: App, clock: FixedClock, config_file: Path
) -> None:
    """An engineer's command and a customer's reply change the same ticket at once, both
    adding a mail to its thread (the new severity's notice, the reply): the command waits
    for the intake's lock on the ticket, then reads the thread as the reply left it. Read
    before the reply's commit, its thread would be written back without the reply."""
    if not app.db.is_postgresql:
        pytest.skip("SQLite lets one writer in at a time: the race cannot happen there")
    ticket_id = ingest(app.intake, make_mail(subject="Severity 1: production down"),
                       "test").ticket_id
    clock.advance(timedelta(hours=1))
    commanded: list[int] = []

    def command() -> None:
        commanded.append(maild(config_file, "tickets", "set", str(ticket_id),
                               "--priority", "p3", now=clock.now().isoformat()).exit_code)

    with intake_batch(app.intake, "test") as batch:
        assert batch.ingest(make_mail(
            subject="Re: Severity 1: production down", message_id="<reply@customer.example>",
            in_reply_to="<first@customer.example>")).ticket_id == ticket_id
        engineer = threading.Thread(target=command)
        engineer.start()
        wait_for(lambda: _waiting_on_a_lock(app), "the command waiting for the ticket")
    engineer.join(timeout=30)

    assert commanded == [0]
    thread = _thread_as_the_customer_saw_it(app, ticket_id)
    assert "<reply@customer.example>" in thread
    assert len(thread) == 4  # the first mail, its acknowledgment, the reply, the notice
    with app.db.engine.connect() as connection:
        assert connection.execute(text("SELECT thread_ids FROM tickets WHERE id = :id"),
                                  {"id": ticket_id}).scalar_one() == thread


def _waiting_on_a_lock(app: App) -> bool:
    with app.db.engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).scalar())
