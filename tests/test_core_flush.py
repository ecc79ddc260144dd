"""Rows written with Core (maild/db/core_flush.py) are the rows the unit of work
would have written, and a savepoint rolled back after them leaves nothing behind."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from maild.db.core_flush import flush_with_core
from maild.db.models import Customer, Event, Message, OutboxMail, Participant, Ticket
from maild.outbound.mails import Mails
from maild.runtime.app import App
from maild.tickets.customers import add_customer
from maild.tickets.service import add_participant, open_ticket, record, set_status

_KEYS = {"id", "ticket_id", "message_row_id"}
# Different for each copy by design: a Message-ID is unique, and the outbox's raw mail
# carries its own.
_UNIQUE = {"message_id", "raw_sha256"}


def _new_conversation(app: App, session: Session, n: int) -> Ticket:
    """What the intake builds for a new conversation, and a little more: a cc, a status
    change, an event with every column set, a None where a default applies."""
    now = app.clock.now()
    ticket = open_ticket(session, subject="Printer on fire", requester="ann@customer.example",
                         now=now, clocks=app.sla, mailbox="support")
    add_participant(ticket, "bob@customer.example", "cc")
    message = Message(message_id=f"<copy{n}@customer.example>", direction="in",
                      kind="public", author="ann@customer.example", author_name="Ann",
                      created_at=now, subject="Printer on fire", body="It is on fire.",
                      raw_sha256="ab" * 32, channel="test", automatic=None,
                      attachments=[{"filename": "a.pdf", "sha256": None}], outbox=None)
    # None where the column has a default: the unit of work leaves it to the default.
    message.channel = None  # type: ignore[assignment]
    ticket.messages.append(message)
    Mails(app, session).acknowledgment(ticket, message)
    set_status(ticket, "open", actor="ann@customer.example", now=now, clocks=app.sla,
               detail="a detail")
    record(ticket, now, "maild", "notified", "old", "new", detail="dan@example.com")
    return ticket


def _rows(session: Session, ticket_id: int) -> dict[str, Any]:
    """Everything stored of a ticket, with its own keys replaced by positions and its
    number in the acknowledgment's text by N."""
    def columns(row: Any) -> dict[str, Any]:
        values = {c.key: getattr(row, c.key) for c in inspect(row).mapper.column_attrs
                  if c.key not in _KEYS | _UNIQUE}
        if isinstance(values.get("raw"), bytes):  # an outgoing mail: its own Message-ID,
            # and the copy's it answers
            values["raw"] = re.sub(rb"<copy\d+@", b"<copy@", values["raw"].replace(
                row.message_id.encode(), b"<ID>"))
        return {key: value.replace(f"#{ticket_id}", "#N") if isinstance(value, str)
                else value.replace(f"#{ticket_id}".encode(), b"#N")
                if isinstance(value, bytes) else value for key, value in values.items()}

    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    messages = session.scalars(select(Message).where(Message.ticket_id == ticket_id)
                               .order_by(Message.id)).all()
    positions = {m.id: index for index, m in enumerate(messages)}
    return {
        "ticket": columns(ticket),
        "participants": [columns(p) for p in session.scalars(
            select(Participant).where(Participant.ticket_id == ticket_id)
            .order_by(Participant.id))],
        "events": [columns(e) for e in session.scalars(
            select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id))],
        "messages": [columns(m) for m in messages],
        "outbox": [{**columns(o), "message": positions[o.message_row_id]}
                   for o in session.scalars(select(OutboxMail).where(
                       OutboxMail.ticket_id == ticket_id).order_by(OutboxMail.id))],
    }


def test_new_rows_are_the_rows_the_unit_of_work_writes(app: App) -> None:
    with app.db.transaction() as session:
        by_flush = _new_conversation(app, session, 1)
        session.flush()
        flushed_id = by_flush.id
        by_core = _new_conversation(app, session, 2)
        assert flush_with_core(session)
        written_id = by_core.id

    with app.db.transaction() as session:
        flushed, written = _rows(session, flushed_id), _rows(session, written_id)
    assert written == flushed
    assert [m["kind"] for m in written["messages"]] == ["public", "system"]
    assert [o["purpose"] for o in written["outbox"]] == ["ack"]
    assert [p["address"] for p in written["participants"]] == [
        "ann@customer.example", "bob@customer.example"]
    assert written["ticket"]["status"] == "open"
    assert written_id == flushed_id + 1


def test_the_written_objects_are_let_go(app: App) -> None:
    with app.db.transaction() as session:
        ticket = _new_conversation(app, session, 1)
        assert flush_with_core(session)

        assert not session.new
        assert ticket not in session
        loaded = session.get(Ticket, ticket.id)
        assert loaded is not None and loaded is not ticket
        assert [m.kind for m in loaded.messages] == ["public", "system"]


def _customer_replies(app: App, session: Session, ticket_id: int, n: int) -> None:
    """What a customer's reply changes on a stored ticket, and a little more."""
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    now = app.clock.now()
    ticket.messages.append(Message(
        message_id=f"<reply{n}@customer.example>", direction="in", kind="public",
        author="ann@customer.example", created_at=now, subject="Re: Printer on fire",
        body="Still on fire.", channel="test", attachments=[], outbox=None))
    add_participant(ticket, "carl@customer.example", "cc")
    set_status(ticket, "pending", actor="se@example.com", now=now, clocks=app.sla)
    ticket.assignee = "se@example.com"
    ticket.customer = session.scalars(select(Customer)).one()  # a key from a relationship
    ticket.updated_at = now
    ticket.subject = ticket.subject  # set, but not changed: no column to write


def test_changed_rows_are_the_rows_the_unit_of_work_writes(app: App) -> None:
    with app.db.transaction() as session:
        add_customer(app, session, "Customer Inc", domains=["elsewhere.example"])
        ids = [_new_conversation(app, session, n).id for n in (1, 2)]
    app.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]

    with app.db.transaction() as session:
        _customer_replies(app, session, ids[0], 1)
        session.flush()
        _customer_replies(app, session, ids[1], 2)
        assert flush_with_core(session)

    with app.db.transaction() as session:
        flushed, written = _rows(session, ids[0]), _rows(session, ids[1])
    assert written == flushed
    assert written["ticket"]["status"] == "pending"
    assert written["ticket"]["assignee"] == "se@example.com"
    assert written["ticket"]["customer_id"] is not None
    assert [m["body"] for m in written["messages"]][-1] == "Still on fire."
    assert written["participants"][-1]["address"] == "carl@customer.example"


def test_a_row_to_delete_is_left_to_the_flush(app: App) -> None:
    with app.db.transaction() as session:
        ticket_id = _new_conversation(app, session, 1).id
    with app.db.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        # Out of the collection: the unit of work deletes the orphan (delete-orphan).
        ticket.participants.pop()
        record(ticket, app.clock.now(), "maild", "removed", "bob@customer.example")

        assert not flush_with_core(session)
        assert len(session.new) == 1
    with app.db.transaction() as session:
        assert [p.address for p in session.scalars(select(Participant))] == [
            "ann@customer.example"]
        assert session.scalar(select(Event).where(Event.kind == "removed")) is not None


def test_a_savepoint_rolled_back_after_them_leaves_nothing_behind(
    app: App
) -> None:
    with app.db.transaction() as session:
        try:
            with session.begin_nested():
                first = _new_conversation(app, session, 1)
                assert flush_with_core(session)
                raise RuntimeError("the message failed after its rows were written")
        except RuntimeError:
            pass
        assert session.get(Ticket, first.id) is None
        assert session.scalars(select(Message)).all() == []

        with session.begin_nested():
            second = _new_conversation(app, session, 2)
            assert flush_with_core(session)

    # A number is never handed out twice, even one rolled back (a gap, as in a sequence).
    assert second.id == first.id + 1
    with app.db.transaction() as session:
        assert [t.id for t in session.scalars(select(Ticket))] == [second.id]
        assert len(session.scalars(select(OutboxMail)).all()) == 1
