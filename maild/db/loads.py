"""The tickets a sweep acts on: claimed with SKIP LOCKED, and their relationships loaded
with the batch, one query each rather than one per ticket."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import joinedload, selectinload

from maild.db.models import Ticket

# What a sweep reads of each ticket it acts on (the customer's plan for the SLA clocks,
# who takes part, the thread for the templates that show it), loaded with the batch: one
# query each rather than one per ticket. Not the event log, which an event joins
# without reading it, nor the thread's outbox rows: the SLA clocks' pauses and the
# thread's Message-IDs are kept on the ticket.
SWEEP_LOADS = (
    selectinload(Ticket.messages),
    selectinload(Ticket.participants),
    selectinload(Ticket.customer),
)

# What the intake reads of the ticket a mail belongs to: who takes part and the
# customer, joined to the ticket in its one query. Not its thread: what the mail it
# writes needs of the thread (References, greeting) is kept on the ticket, and a message
# joins the thread without loading it (maild/tickets/conversation.py).
INTAKE_LOADS = (
    joinedload(Ticket.participants),
    joinedload(Ticket.customer),
)

# What closing a ticket reads: the customer, for the SLA clocks it stops.
CLOSE_LOADS = (
    selectinload(Ticket.customer),
)


def claim_tickets(
    *conditions: ColumnElement[bool],
    order_by: Any = None,
    limit: int | None = None,
    loads: tuple[Any, ...] = (),
) -> Select[Ticket]:
    """Tickets to act on, locked for this transaction. Rows another scheduler holds are
    skipped, never waited for: two sweeps at once share the work without doing it twice."""
    query = select(Ticket).where(*conditions)
    if order_by is not None:
        query = query.order_by(order_by)
    if limit is not None:
        query = query.limit(limit)
    return query.with_for_update(skip_locked=True).options(*loads)
