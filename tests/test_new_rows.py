"""New rows written with Core (maild/db/new_rows.py) are the rows the unit of work
would have written, and a savepoint rolled back after them leaves nothing behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from maild.app import App
from maild.db.models import Event, Message, OutboxMail, Participant, Ticket
from maild.db.new_rows import write_new_rows
from maild.outbound.mails import Mails
from maild.workflow import add_participant, open_ticket, record, set_status

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
        return {key: value.replace(f"#{ticket_id}", "#N") if isinstance(value, str)
                else value for key, value in values.items()}

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
        assert write_new_rows(session)
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
        assert write_new_rows(session)

        assert not session.new
        assert ticket not in session
        loaded = session.get(Ticket, ticket.id)
        assert loaded is not None and loaded is not ticket
        assert [m.kind for m in loaded.messages] == ["public", "system"]


def test_a_change_to_a_stored_row_is_left_to_the_flush(app: App) -> None:
    with app.db.transaction() as session:
        ticket_id = _new_conversation(app, session, 1).id
        session.flush()
    with app.db.transaction() as session:
        stored = session.get(Ticket, ticket_id)
        assert stored is not None
        record(stored, app.clock.now(), "maild", "cause", None, "toner")

        assert not write_new_rows(session)
        assert len(session.new) == 1
        assert session.scalar(select(Event).where(Event.kind == "cause")) is not None


def test_a_savepoint_rolled_back_after_them_leaves_nothing_and_frees_the_number(
    app: App
) -> None:
    with app.db.transaction() as session:
        try:
            with session.begin_nested():
                first = _new_conversation(app, session, 1)
                assert write_new_rows(session)
                raise RuntimeError("the message failed after its rows were written")
        except RuntimeError:
            pass
        assert session.get(Ticket, first.id) is None
        assert session.scalars(select(Message)).all() == []

        with session.begin_nested():
            second = _new_conversation(app, session, 2)
            assert write_new_rows(session)

    assert second.id == first.id
    with app.db.transaction() as session:
        assert [t.id for t in session.scalars(select(Ticket))] == [second.id]
        assert len(session.scalars(select(OutboxMail)).all()) == 1
