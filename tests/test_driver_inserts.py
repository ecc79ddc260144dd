"""An INSERT sent straight to the driver writes what SQLAlchemy's own INSERT writes, and
fails the way SQLAlchemy's would."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Table, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from maild.db.driver_inserts import insert_row
from maild.db.models import Event, Message, OutboxMail, Ticket
from maild.errors import TemporaryError
from maild.runtime.app import App

_MADE_UNIQUE = {"id", "message_id"}


def _ticket(connection: Connection, app: App) -> int:
    now = app.clock.now()
    key = insert_row(connection, Ticket.__table__, {
        "subject": "Printer on fire", "requester": "ann@customer.example",
        "created_at": now, "updated_at": now})
    assert isinstance(key, int)
    return key


def _both_ways(connection: Connection, table: Table, row: dict[str, Any]
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row written here and by SQLAlchemy, read back, without what must differ."""
    ours = insert_row(connection, table, {**row, "message_id": "<ours@example.com>"}
                      if "message_id" in table.c else row)
    theirs = connection.execute(table.insert(), {**row, "message_id": "<theirs@example.com>"}
                                if "message_id" in table.c else row).inserted_primary_key[0]
    assert ours != theirs

    def read(key: Any) -> dict[str, Any]:
        values = connection.execute(select(table).where(table.c.id == key)).one()._asdict()
        return {k: v for k, v in values.items() if k not in _MADE_UNIQUE}
    return read(ours), read(theirs)


def test_rows_are_written_as_sqlalchemy_writes_them_defaults_and_types_included(
    app: App,
) -> None:
    now = app.clock.now()
    with app.db.transaction() as session:
        connection = session.connection()
        ticket = _ticket(connection, app)
        written = [
            # Unset columns: Python defaults (a constant, a callable), NULLs.
            _both_ways(connection, Ticket.__table__, {
                "subject": "s", "requester": "r@x.example", "created_at": now,
                "updated_at": now}),
            # JSON, a timezone-aware time through the UTC type, bytes.
            _both_ways(connection, OutboxMail.__table__, {
                "ticket_id": ticket, "purpose": "ack", "mail_from": "s@x.example",
                "recipients": ["a@x.example", "Jürgen <j@x.example>"], "raw": b"\x00\xff",
                "next_attempt_at": now + timedelta(hours=1), "created_at": now}),
            _both_ways(connection, Message.__table__, {
                "ticket_id": ticket, "direction": "in", "kind": "public",
                "author": "a@x.example", "created_at": now, "attachments": [{"a": None}]}),
            _both_ways(connection, Event.__table__, {
                "ticket_id": ticket, "at": now, "actor": "maild", "kind": "status",
                "old": None, "new": "open"}),
        ]
    for ours, theirs in written:
        assert ours == theirs
    tickets, outbox, messages, _ = (ours for ours, _ in written)
    assert (tickets["status"], tickets["priority"], tickets["sla_alerts_sent"]) == (
        "new", "p2", [])
    assert outbox["raw"] == b"\x00\xff" and outbox["status"] == "queued"
    assert outbox["next_attempt_at"] == now + timedelta(hours=1)
    assert messages["channel"] == ""


def test_a_row_that_breaks_a_constraint_raises_sqlalchemys_integrity_error(app: App) -> None:
    with app.db.transaction() as session:
        connection = session.connection()
        row = {"ticket_id": _ticket(connection, app), "message_id": "<once@example.com>",
               "direction": "in", "kind": "public", "author": "a@x.example",
               "created_at": app.clock.now()}
        insert_row(connection, Message.__table__, row)
        with pytest.raises(IntegrityError) as raised, session.begin_nested():
            insert_row(session.connection(), Message.__table__, row)
        assert not raised.value.connection_invalidated
        assert "INSERT INTO messages" in str(raised.value)
        assert session.scalar(text("SELECT count(*) FROM messages")) == 1


def test_a_lost_connection_is_invalidated_and_never_handed_out_again(app: App) -> None:
    if not app.db.is_postgresql:
        pytest.skip("a PostgreSQL session ended under the writer")
    with pytest.raises(TemporaryError) as raised, app.db.transaction() as session:
        connection = session.connection()
        pid = session.scalar(text("SELECT pg_backend_pid()"))
        with app.db.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        insert_row(connection, Ticket.__table__, {
            "subject": "s", "requester": "r@x.example", "created_at": app.clock.now(),
            "updated_at": app.clock.now()})

    lost = raised.value.__cause__
    assert isinstance(lost, OperationalError) and lost.connection_invalidated
    assert "INSERT INTO tickets" in str(lost)
    with app.db.transaction() as session:  # a fresh connection, not the dead one
        assert session.scalar(text("SELECT count(*) FROM tickets")) == 0
