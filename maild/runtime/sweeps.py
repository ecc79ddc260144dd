"""Actions that are due because time passed. Each reads "now" from the injected clock."""

from __future__ import annotations

import logging

from sqlalchemy import select

from maild.db.loads import CLOSE_LOADS, claim_tickets
from maild.db.models import Ticket
from maild.runtime.app import App
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import set_status

log = logging.getLogger(__name__)


def close_solved_tickets(app: App, batch: int = 500) -> int:
    """Solved tickets become closed (final) once `followup.close_after_solved` has passed.

    Oldest solved first: the first one not yet due ends the sweep, since every ticket
    after it was solved later still. Due-ness is decided from (id, solved_at) alone, so
    the minute-by-minute sweep over tickets still inside their wait reads no more.
    """
    now = app.clock.now()
    wait = app.config.followup.close_after_solved
    closed = 0
    while True:
        with app.db.transaction() as session:
            candidates = session.execute(
                select(Ticket.id, Ticket.solved_at)
                .where(Ticket.status == "solved", Ticket.solved_at.is_not(None))
                .order_by(Ticket.solved_at)
                .limit(batch)
            ).all()
            due: list[int] = []
            for ticket_id, solved_at in candidates:
                if solved_at is None or app.calendar.add(solved_at, wait) > now:
                    break  # the rest were solved later: none is due
                due.append(ticket_id)
            if not due:
                break
            tickets = session.scalars(claim_tickets(
                Ticket.id.in_(due), Ticket.status == "solved", loads=CLOSE_LOADS,
            )).all()
            for ticket in tickets:
                set_status(ticket, "closed", actor=SYSTEM_ACTOR, now=now, clocks=app.sla,
                           detail=f"solved for {wait}")
            closed += len(tickets)
        if len(due) < batch or not tickets:  # none claimed: another scheduler has them
            break
    if closed:
        log.info("closed %d solved tickets", closed)
    return closed


def run_sweeps(app: App) -> dict[str, int]:
    timed = app.metrics.sweep
    with timed("followups"):
        followups = app.followups.send()
    with timed("surveys"):
        surveys = app.surveys.send()
    with timed("close_solved_tickets"):
        closed = close_solved_tickets(app)
    with timed("sla_alerts"):
        alerts = app.sla_alerts.send()
    with timed("digest"):
        digests = app.digest.send()
    return {**followups, "surveys_sent": surveys, "close_solved_tickets": closed,
            "sla_alerts": alerts, "digests_sent": digests}
