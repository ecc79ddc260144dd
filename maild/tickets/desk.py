"""The desk at a glance, as it stands now: what /metrics and the dashboard count.

Each is one indexed query over the tickets that are not resolved, so that it costs the
same on a desk of a hundred tickets as on one of a hundred thousand closed ones.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from maild.db.models import Ticket
from maild.tickets.model import UNRESOLVED


def open_by_status(session: Session) -> dict[str, int]:
    """Tickets not resolved, by status (every such status, zero included)."""
    counted: dict[str, int] = {status: count for status, count in session.execute(
        select(Ticket.status, func.count(Ticket.id))
        .where(Ticket.status.in_(UNRESOLVED))
        .group_by(Ticket.status)
    )}
    return {status: counted.get(status, 0) for status in UNRESOLVED}


def sla_breaches(session: Session, now: datetime) -> dict[str, int]:
    """Tickets not resolved whose promise has passed unmet, by target.

    first_response: no public reply and the response due time is past. resolution: the due
    time passed while the clock ran (a ticket paused since before its due time is in
    breach; one paused earlier than that is not, its clock stands still)."""
    unresolved = Ticket.status.in_(UNRESOLVED)
    first_response = and_(Ticket.first_response_at.is_(None), Ticket.response_due_at < now)
    resolution = or_(
        and_(Ticket.sla_paused_at.is_(None), Ticket.resolution_due_at < now),
        Ticket.resolution_due_at < Ticket.sla_paused_at,
    )
    row = session.execute(
        select(func.count(Ticket.id).filter(first_response),
               func.count(Ticket.id).filter(resolution))
        .where(unresolved)
    ).one()
    return {"first_response": int(row[0] or 0), "resolution": int(row[1] or 0)}
