"""The tickets a sweep acts on: claimed with SKIP LOCKED, and their relationships loaded
with the batch, one query each rather than one per ticket."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import selectinload

from maild.db.models import Message, Ticket

# What a sweep reads of each ticket it acts on (events for the log and the SLA clocks,
# the customer's plan, the thread a mail goes into), loaded with the batch: one query
# each rather than one per ticket.
SWEEP_LOADS = (
    selectinload(Ticket.messages).selectinload(Message.outbox),
    selectinload(Ticket.events),
    selectinload(Ticket.participants),
    selectinload(Ticket.customer),
)

# What the intake reads of the ticket a mail belongs to: its thread (whom it answers,
# the References of every mail it queues, the greeting), who takes part, the customer.
# Loaded with the ticket, a query each (the thread's outbox rows joined to its messages);
# lazily, they cost a query per message of the thread for every mail queued.
INTAKE_LOADS = (
    selectinload(Ticket.messages).joinedload(Message.outbox),
    selectinload(Ticket.participants),
    selectinload(Ticket.customer),
)

# What closing a ticket reads: the event log it writes to and the SLA clocks it stops.
CLOSE_LOADS = (
    selectinload(Ticket.events),
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
