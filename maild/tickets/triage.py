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
from sqlalchemy.orm import Session

from maild.db.models import Customer, Ticket
from maild.tickets.model import DEFAULT_TIER, TIERS, WAITING_ON_US

# A ticket of no known organisation ranks with the tier a new customer gets.
UNKNOWN_TIER = DEFAULT_TIER


@dataclass(frozen=True)
class Pick:
    ticket: Ticket
    why: str


def _due(ticket: Ticket) -> datetime | None:
    return ticket.response_due_at if ticket.first_response_at is None else ticket.resolution_due_at


def _tier(ticket: Ticket) -> str:
    return ticket.customer.tier if ticket.customer is not None else UNKNOWN_TIER


def _ranked(session: Session, limit: int, engineer: str | None) -> list[Ticket]:
    tier_rank = case(
        {tier: rank for rank, tier in enumerate(TIERS)},
        value=func.coalesce(Customer.tier, UNKNOWN_TIER),
    )
    due = case(
        (Ticket.first_response_at.is_(None), Ticket.response_due_at),
        else_=Ticket.resolution_due_at,
    )
    query = (
        select(Ticket)
        .outerjoin(Customer, Ticket.customer_id == Customer.id)
        .where(Ticket.status.in_(WAITING_ON_US))
    )
    if engineer is not None:
        query = query.where(or_(Ticket.assignee == engineer, Ticket.assignee.is_(None)))
    return list(session.scalars(
        query.order_by(Ticket.priority, tier_rank, due.is_(None), due, Ticket.created_at, Ticket.id)
        .limit(limit)
    ))


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%a %d %b %H:%M %Z") if value else "no due time"


def pick_next(session: Session, zone: ZoneInfo, now: datetime,
              engineer: str | None = None) -> Pick | None:
    """The number-one ticket, for the whole desk or for one `engineer` (an address)."""
    ranked = _ranked(session, 2, engineer)
    if not ranked:
        return None
    first = ranked[0]
    due = _due(first)
    what = "first response" if first.first_response_at is None else "resolution"
    facts = (f"{first.priority}, {_tier(first)} tier, {what} due {_when(due, zone)}"
             f"{' (overdue)' if due and due < now else ''}, "
             f"waiting since {_when(first.created_at, zone)}")
    if len(ranked) == 1:
        alone = "the only ticket waiting on us" if engineer is None else (
            f"the only ticket waiting on us that is {engineer}'s or nobody's")
        return Pick(first, f"{facts}; {alone}")
    second = ranked[1]
    if first.priority != second.priority:
        decided = f"higher priority than #{second.id} ({second.priority})"
    elif _tier(first) != _tier(second):
        decided = f"higher tier than #{second.id} ({_tier(second)})"
    elif due != _due(second):
        decided = f"due sooner than #{second.id} ({_when(_due(second), zone)})"
    else:
        decided = f"waiting longer than #{second.id}"
    return Pick(first, f"{facts}; {decided}")
