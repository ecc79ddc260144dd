"""Who the customer is, at a glance, for the engineer's notification: their other open
tickets and the last few solved, one line each (the support workflow's "build context").

A customer is the registered organisation of the ticket, or without one its requester.
Read on the connection: the ticket in hand may not be written yet, and every other one is
(maild/intake/pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maild.db.models import Ticket
from maild.tickets.durations import spoken_span
from maild.tickets.model import RESOLVED

# The solved tickets shown: enough to spot a pattern, few enough to read.
RECENTLY_SOLVED = 3
# The other open tickets listed (all are counted).
OPEN_LISTED = 10


@dataclass(frozen=True)
class TicketLine:
    id: int
    subject: str
    status: str
    priority: str
    age: str  # "opened 3 days ago", "solved 5 h ago"

    def __str__(self) -> str:
        return f"#{self.id} {self.subject} ({self.status}, {self.priority}, {self.age})"


@dataclass(frozen=True)
class CustomerContext:
    open_count: int  # unresolved tickets of the customer, the one in hand included
    other_open: list[TicketLine]  # newest first, at most OPEN_LISTED
    recently_solved: list[TicketLine]  # latest solved first, at most RECENTLY_SOLVED


def customer_context(session: Session, ticket: Ticket, now: datetime) -> CustomerContext:
    same = (Ticket.customer_id == ticket.customer.id if ticket.customer is not None
            else Ticket.requester == ticket.requester)
    connection = session.connection()
    others = (Ticket.id, Ticket.subject, Ticket.status, Ticket.priority)
    unresolved = (same, Ticket.id != ticket.id, Ticket.status.not_in(RESOLVED))
    open_count = connection.execute(
        select(func.count(Ticket.id)).where(*unresolved)).scalar_one()
    other_open = [
        TicketLine(id_, subject, status, priority, f"opened {_ago(now, created)}")
        for id_, subject, status, priority, created in connection.execute(
            select(*others, Ticket.created_at).where(*unresolved)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(OPEN_LISTED))
    ]
    recently_solved = [
        TicketLine(id_, subject, status, priority, f"solved {_ago(now, solved)}")
        for id_, subject, status, priority, solved in connection.execute(
            select(*others, Ticket.solved_at)
            .where(same, Ticket.id != ticket.id, Ticket.status.in_(RESOLVED),
                   Ticket.solved_at.is_not(None))
            .order_by(Ticket.solved_at.desc(), Ticket.id.desc()).limit(RECENTLY_SOLVED))
    ]
    return CustomerContext(int(open_count) + (ticket.status not in RESOLVED), other_open,
                           recently_solved)


def _ago(now: datetime, then: datetime | None) -> str:
    return f"{spoken_span(now - then)} ago" if then is not None else "at an unknown time"
