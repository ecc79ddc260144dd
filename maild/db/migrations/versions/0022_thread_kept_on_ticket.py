"""What mail about a ticket reads of its thread, and its SLA pauses, kept on the ticket

Answering a mail loaded the ticket's whole thread (each message with its outbox row) for
the References, the greeting and the count of the requester's mails, and a status change
loaded its whole event log for the SLA clocks' pauses. The ticket now keeps them as the
thread grows and the status changes (maild/tickets/conversation.py, sla.py); existing
tickets get them worked out here from their messages and status events, as the code
worked them out before.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# The statuses in which the next step is ours and the resolution clock runs
# (maild/tickets/model.py WAITING_ON_US, as of this revision).
_RUNNING = ("new", "open")
_BATCH = 1000

_tickets = sa.table(
    "tickets",
    sa.column("id", sa.Integer()),
    sa.column("requester", sa.String()),
    sa.column("thread_ids", sa.JSON()),
    sa.column("requester_name", sa.String()),
    sa.column("requester_mails", sa.Integer()),
    sa.column("sla_pauses", sa.JSON()),
)
_messages = sa.table(
    "messages",
    sa.column("id", sa.Integer()),
    sa.column("ticket_id", sa.Integer()),
    sa.column("message_id", sa.String()),
    sa.column("direction", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("author", sa.String()),
    sa.column("author_name", sa.String()),
    sa.column("automatic", sa.String()),
)
_outbox = sa.table(
    "outbox",
    sa.column("id", sa.Integer()),
    sa.column("message_row_id", sa.Integer()),
    sa.column("message_id", sa.String()),
)
_events = sa.table(
    "events",
    sa.column("id", sa.Integer()),
    sa.column("ticket_id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("new", sa.String()),
    sa.column("at", UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_pauses", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("thread_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("requester_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("requester_mails", sa.Integer(), server_default="0",
                                      nullable=False))
    _backfill(op.get_bind())


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _backfill(connection: sa.Connection) -> None:
    """A range of tickets at a time, so that a large desk's messages are never all in
    memory at once."""
    ticket_ids = [ticket_id for (ticket_id,) in connection.execute(
        sa.select(_tickets.c.id).order_by(_tickets.c.id))]
    for start in range(0, len(ticket_ids), _BATCH):
        chunk = ticket_ids[start:start + _BATCH]
        rows = _worked_out(connection, chunk[0], chunk[-1])
        connection.execute(_UPDATE, list(rows.values()))


# The thread as the customer saw it: each message not internal, by the Message-ID of the
# mail of ours that delivered it if there is one (an engineer's relayed reply).
_DELIVERED = (sa.select(_outbox.c.message_id).where(_outbox.c.message_row_id == _messages.c.id)
              .order_by(_outbox.c.id).limit(1).scalar_subquery())
_THREADS = (
    sa.select(_messages.c.ticket_id, _messages.c.message_id, _messages.c.direction,
              _messages.c.kind, _messages.c.author, _messages.c.author_name,
              _messages.c.automatic, _DELIVERED)
    .where(_messages.c.ticket_id.between(sa.bindparam("low"), sa.bindparam("high")))
    .order_by(_messages.c.ticket_id, _messages.c.id)
)
_STATUSES = (
    sa.select(_events.c.ticket_id, _events.c.new, _events.c.at)
    .where(_events.c.kind == "status",
           _events.c.ticket_id.between(sa.bindparam("low"), sa.bindparam("high")))
    .order_by(_events.c.ticket_id, _events.c.id)
)
_UPDATE = (
    sa.update(_tickets).where(_tickets.c.id == sa.bindparam("b_id"))
    .values(thread_ids=sa.bindparam("b_thread_ids", type_=sa.JSON()),
            requester_name=sa.bindparam("b_requester_name"),
            requester_mails=sa.bindparam("b_requester_mails"),
            sla_pauses=sa.bindparam("b_sla_pauses", type_=sa.JSON()))
)


def _worked_out(connection: sa.Connection, low: int, high: int) -> dict[int, dict[str, Any]]:
    """What the tickets numbered `low` to `high` keep, from their messages and events."""
    bounds = {"low": low, "high": high}
    requesters: dict[int, str] = {
        ticket_id: requester for ticket_id, requester in connection.execute(
            sa.select(_tickets.c.id, _tickets.c.requester)
            .where(_tickets.c.id.between(low, high)))}
    kept: dict[int, dict[str, Any]] = {
        ticket_id: {"b_id": ticket_id, "b_thread_ids": [], "b_requester_name": None,
                    "b_requester_mails": 0, "b_sla_pauses": []}
        for ticket_id in requesters}
    for ticket_id, message_id, direction, kind, author, name, automatic, sent in (
            connection.execute(_THREADS, bounds)):
        ticket = kept[ticket_id]
        if kind != "internal":
            ticket["b_thread_ids"].append(sent or message_id)
        if direction == "in" and author == requesters[ticket_id]:
            if name and "@" not in name:
                ticket["b_requester_name"] = name
            if kind == "public" and not automatic:
                ticket["b_requester_mails"] += 1
    since: dict[int, datetime] = {}
    for ticket_id, new, at in connection.execute(_STATUSES, bounds):
        running = new in _RUNNING
        if not running and ticket_id not in since:
            since[ticket_id] = at
        elif running and ticket_id in since:
            kept[ticket_id]["b_sla_pauses"].append([_iso(since.pop(ticket_id)), _iso(at)])
    for ticket_id, at in since.items():
        kept[ticket_id]["b_sla_pauses"].append([_iso(at), None])
    return kept


def downgrade() -> None:
    # SQLite drops a column in place (3.35 and later): copying the table, which other
    # tables refer to, would break their foreign keys.
    with op.batch_alter_table("tickets", recreate="never") as batch_op:
        batch_op.drop_column("requester_mails")
        batch_op.drop_column("requester_name")
        batch_op.drop_column("thread_ids")
        batch_op.drop_column("sla_pauses")
