"""Who the customer is, at a glance, for the engineer's notification: their other open
tickets and the last few solved, one line each (the support workflow's "build context").

A customer is the registered organisation of the ticket, or without one its requester.
Read on the connection: the ticket in hand may not be written yet, and every other one is
(maild/intake/pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    bindparam,
    func,
    literal,
    null,
    select,
    type_coerce,
    union_all,
)
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


def _context_query(same: ColumnElement[bool]) -> CompoundSelect[Any]:
    """One query for all three: the count of the customer's other unresolved tickets
    (part 0), the newest of them (part 1), the latest solved (part 2). `same` names the
    customer's tickets by a bound parameter, "customer"."""
    other = (same, Ticket.id != bindparam("ticket_id"))
    unresolved = (*other, Ticket.status.not_in(RESOLVED))
    columns = (Ticket.id, Ticket.subject, Ticket.status, Ticket.priority)
    newest_open = (select(*columns, Ticket.created_at.label("at")).where(*unresolved)
                   .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(OPEN_LISTED)
                   .subquery())
    latest_solved = (select(*columns, Ticket.solved_at.label("at"))
                     .where(*other, Ticket.status.in_(RESOLVED), Ticket.solved_at.is_not(None))
                     .order_by(Ticket.solved_at.desc(), Ticket.id.desc())
                     .limit(RECENTLY_SOLVED).subquery())
    # The first part gives the columns their types, the datetime's conversion included.
    return union_all(
        select(literal(0).label("part"), func.count(Ticket.id).label("id"),
               *(type_coerce(null(), column.type) for column in columns[1:]),
               type_coerce(null(), Ticket.created_at.type).label("at")).where(*unresolved),
        select(literal(1), *newest_open.c),
        select(literal(2), *latest_solved.c),
    )


# Built once, a variant for each way of naming the customer's tickets.
_BY_CUSTOMER = _context_query(Ticket.customer_id == bindparam("customer"))
_BY_REQUESTER = _context_query(Ticket.requester == bindparam("customer"))


def customer_context(session: Session, ticket: Ticket, now: datetime) -> CustomerContext:
    query, customer = (_BY_CUSTOMER, ticket.customer.id) if ticket.customer is not None \
        else (_BY_REQUESTER, ticket.requester)
    open_count = 0
    listed: dict[int, list[tuple[datetime, int, str, str, str]]] = {1: [], 2: []}
    for part, id_, subject, status, priority, at in session.connection().execute(
            query, {"customer": customer, "ticket_id": ticket.id}):
        if part == 0:
            open_count = int(id_)
        else:
            listed[part].append((at, id_, subject, status, priority))
    # Newest first, in each part: a UNION ALL keeps no order of its parts' own.
    other_open, recently_solved = (
        [TicketLine(id_, subject, status, priority, f"{verb} {_ago(now, at)}")
         for at, id_, subject, status, priority in sorted(listed[part], reverse=True)]
        for part, verb in ((1, "opened"), (2, "solved")))
    return CustomerContext(open_count + (ticket.status not in RESOLVED), other_open,
                           recently_solved)


def _ago(now: datetime, then: datetime | None) -> str:
    return f"{spoken_span(now - then)} ago" if then is not None else "at an unknown time"
