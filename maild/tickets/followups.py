"""Nudging customers who stopped answering, then solving for them ([followup]).

What is due lives in the database: `followup_due_at` on each pending ticket. The sweep
claims due tickets with FOR UPDATE SKIP LOCKED, sends and records in one transaction,
and sets the next due time, so a restart, a clock jump or a second scheduler can
neither lose a nudge nor send one twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from maild.db.loads import SWEEP_LOADS, claim_tickets
from maild.db.models import Ticket
from maild.outbound.caps import HOUR, automatic_mail_waits
from maild.outbound.mails import Mails
from maild.runtime.app import App
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import record, set_status

log = logging.getLogger(__name__)


def next_due(app: App, ticket: Ticket) -> datetime:
    """When the next nudge (or, after the last, the auto-solve) is due."""
    assert ticket.pending_since is not None
    followup = app.config.followup
    step = (followup.nudges[ticket.nudges_sent] if ticket.nudges_sent < len(followup.nudges)
            else followup.auto_solve_after)
    return app.calendar.add(ticket.pending_since, step)


def _schedule_new(app: App, batch: int) -> None:
    """Tickets that just went pending get their first due time."""
    with app.db.transaction() as session:
        for ticket in session.scalars(claim_tickets(
            Ticket.status == "pending", Ticket.followup_due_at.is_(None),
            Ticket.pending_since.is_not(None), limit=batch,
        )):
            ticket.followup_due_at = next_due(app, ticket)


def _follow_up(app: App, mails: Mails, ticket: Ticket, now: datetime) -> str:
    followup = app.config.followup
    waits = automatic_mail_waits(mails.session, ticket.requester, now,
                                 app.config.outbound.auto_replies_per_hour)
    if waits:
        # The step is not lost: it comes an hour later, when the address has room again.
        ticket.followup_due_at = now + HOUR
        record(ticket, now, SYSTEM_ACTOR, "followup_postponed", detail=waits)
        return "postponed"
    if ticket.nudges_sent < len(followup.nudges):
        number = ticket.nudges_sent + 1
        ticket.nudges_sent = number
        auto_solve_at = app.calendar.add(ticket.pending_since or now, followup.auto_solve_after)
        mails.to_customer(ticket, "nudge", "nudge", nudge_number=number,
                          last=number == len(followup.nudges), auto_solve_at=auto_solve_at)
        record(ticket, now, SYSTEM_ACTOR, "nudged",
               detail=f"nudge {number} of {len(followup.nudges)}")
        ticket.followup_due_at = next_due(app, ticket)
        return "nudged"
    mails.to_customer(ticket, "auto_solved", "auto_solved")
    set_status(ticket, "solved", actor=SYSTEM_ACTOR, now=now, clocks=app.sla,
               detail=f"no answer {followup.auto_solve_after} after it went pending")
    return "auto_solved"


def send_followups(app: App, batch: int = 500) -> dict[str, int]:
    _schedule_new(app, batch)
    now = app.clock.now()
    done = {"nudged": 0, "auto_solved": 0, "postponed": 0}
    while True:
        with app.db.transaction() as session:
            due = session.scalars(claim_tickets(
                Ticket.status == "pending", Ticket.followup_due_at <= now,
                order_by=Ticket.followup_due_at, limit=batch, loads=SWEEP_LOADS,
            )).all()
            mails = Mails(app, session)
            for ticket in due:
                done[_follow_up(app, mails, ticket, now)] += 1
        if len(due) < batch:
            break
    if any(done.values()):
        log.info("follow-ups: %d nudged, %d auto-solved, %d postponed by the hourly cap",
                 done["nudged"], done["auto_solved"], done["postponed"])
    return done
