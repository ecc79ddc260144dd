"""`maild tickets next`: the one ticket to work on now, and why it comes first.

Order (docs/design.md): priority, then the customer's tier, then the SLA due time (the first
response while there is none, else the resolution), then age. Only tickets whose next
step is ours count: new and open. For one engineer: their own tickets and the unassigned
ones, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, contains_eager

from maild.db.models import Customer, Ticket
from maild.tickets.model import DEFAULT_TIER, TIERS, WAITING_ON_US
from maild.tickets.service import untriaged_claim

# A ticket of no known organisation ranks with the tier a new customer gets.
UNKNOWN_TIER = DEFAULT_TIER


@dataclass(frozen=True)
class Pick:
    ticket: Ticket
    why: str


def due(ticket: Ticket) -> datetime | None:
    """The SLA due time the queue ranks a ticket by: its first response while there is
    none, else its resolution."""
    return ticket.response_due_at if ticket.first_response_at is None else ticket.resolution_due_at


def tier(ticket: Ticket) -> str:
    return ticket.customer.tier if ticket.customer is not None else UNKNOWN_TIER


def queue(session: Session, limit: int, offset: int = 0, engineer: str | None = None
          ) -> list[Ticket]:
    """The tickets waiting on us, in `tickets next` order, `limit` of them from `offset`
    (with their customers); for one `engineer`, theirs and nobody's."""
    tier_rank = case(
        {name: rank for rank, name in enumerate(TIERS)},
        value=func.coalesce(Customer.tier, UNKNOWN_TIER),
    )
    due_at = case(
        (Ticket.first_response_at.is_(None), Ticket.response_due_at),
        else_=Ticket.resolution_due_at,
    )
    query = (
        select(Ticket)
        .outerjoin(Customer, Ticket.customer_id == Customer.id)
        .options(contains_eager(Ticket.customer))
        .where(Ticket.status.in_(WAITING_ON_US))
    )
    if engineer is not None:
        query = query.where(or_(Ticket.assignee == engineer, Ticket.assignee.is_(None)))
    return list(session.scalars(
        query.order_by(Ticket.priority, tier_rank, due_at.is_(None), due_at, Ticket.created_at,
                       Ticket.id)
        .limit(limit).offset(offset)
    ))


def queue_length(session: Session) -> int:
    return session.scalar(
        select(func.count(Ticket.id)).where(Ticket.status.in_(WAITING_ON_US))) or 0


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%a %d %b %H:%M %Z") if value else "no due time"


def pick_next(session: Session, zone: ZoneInfo, now: datetime,
              engineer: str | None = None) -> Pick | None:
    """The number-one ticket, for the whole desk or for one `engineer` (an address)."""
    return first_of(queue(session, 2, engineer=engineer), zone, now, engineer)


def first_of(ranked: list[Ticket], zone: ZoneInfo, now: datetime,
             engineer: str | None = None) -> Pick | None:
    """The first of the queue's first two tickets, and why it comes first."""
    if not ranked:
        return None
    first = ranked[0]
    first_due = due(first)
    what = "first response" if first.first_response_at is None else "resolution"
    claim = untriaged_claim(first)
    claimed = f" as the customer claimed (\"{claim}\"), not triaged yet" if claim else ""
    facts = (f"{first.priority}{claimed}, {tier(first)} tier, {what} due {_when(first_due, zone)}"
             f"{' (overdue)' if first_due and first_due < now else ''}, "
             f"waiting since {_when(first.created_at, zone)}")
    if len(ranked) == 1:
        alone = "the only ticket waiting on us" if engineer is None else (
            f"the only ticket waiting on us that is {engineer}'s or nobody's")
        return Pick(first, f"{facts}; {alone}")
    second = ranked[1]
    if first.priority != second.priority:
        decided = f"higher priority than #{second.id} ({second.priority})"
    elif tier(first) != tier(second):
        decided = f"higher tier than #{second.id} ({tier(second)})"
    elif first_due != due(second):
        decided = f"due sooner than #{second.id} ({_when(due(second), zone)})"
    else:
        decided = f"waiting longer than #{second.id}"
    return Pick(first, f"{facts}; {decided}")
