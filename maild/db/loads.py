"""Relationships loaded together with a batch of tickets: one query each, not one per ticket."""

from __future__ import annotations

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

# What closing a ticket reads: the event log it writes to and the SLA clocks it stops.
CLOSE_LOADS = (
    selectinload(Ticket.events),
    selectinload(Ticket.customer),
)
