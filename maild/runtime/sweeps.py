"""Actions that are due because time passed. Each reads "now" from the injected clock.

Each sweep runs apart from the others: one that fails is logged and counted, and the
rest still run. Within a sweep each ticket has a savepoint of its own
(maild/tickets/failed_steps.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select

from maild.db.loads import CLOSE_LOADS, claim_tickets
from maild.db.models import Ticket
from maild.errors import TemporaryError
from maild.runtime.app import App
from maild.tickets.failed_steps import CLOSE, each_ticket, forget_settled, not_held_back
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import set_status

log = logging.getLogger(__name__)

T = TypeVar("T")


def close_solved_tickets(app: App, batch: int = 500) -> int:
    """Solved tickets become closed (final) once `followup.close_after_solved` has passed.

    Oldest solved first: the first one not yet due ends the sweep, since every ticket
    after it was solved later still. A ticket whose closing failed and is held back is
    left out of that order, so it never stops the ones behind it. Due-ness is decided
    from (id, solved_at) alone, so the minute-by-minute sweep over tickets still inside
    their wait reads no more.
    """
    now = app.clock.now()
    wait = app.config.followup.close_after_solved
    closed = 0

    def close(ticket: Ticket) -> None:
        set_status(ticket, "closed", actor=SYSTEM_ACTOR, now=now, clocks=app.sla,
                   detail=f"solved for {wait}")

    while True:
        with app.db.transaction() as session:
            forget_settled(session, CLOSE, Ticket.status == "solved")
            candidates = session.execute(
                select(Ticket.id, Ticket.solved_at)
                .where(Ticket.status == "solved", Ticket.solved_at.is_not(None),
                       not_held_back(CLOSE, now))
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
            closed += len(each_ticket(session, CLOSE, tickets, now, close).done)
        if len(due) < batch or not tickets:  # none claimed: another scheduler has them
            break
    if closed:
        log.info("closed %d solved tickets", closed)
    return closed


def _apart(app: App, name: str, sweep: Callable[[], T], nothing: T) -> T:
    """One sweep, so that its failure is logged and counted but stops no other."""
    try:
        with app.metrics.sweep(name):
            return sweep()
    except TemporaryError as exc:
        log.warning("sweep %s: %s; tried again on the next run", name, exc)
    except Exception:
        log.exception("sweep %s failed; the other sweeps go on", name)
    return nothing


def run_sweeps(app: App) -> dict[str, int]:
    followups = _apart(app, "followups", app.followups.send,
                       {"nudged": 0, "auto_solved": 0, "postponed": 0})
    surveys = _apart(app, "surveys", app.surveys.send, 0)
    closed = _apart(app, "close_solved_tickets", lambda: close_solved_tickets(app), 0)
    alerts = _apart(app, "sla_alerts", app.sla_alerts.send, 0)
    digests = _apart(app, "digest", app.digest.send, 0)
    return {**followups, "surveys_sent": surveys, "close_solved_tickets": closed,
            "sla_alerts": alerts, "digests_sent": digests}
