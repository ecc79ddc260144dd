"""Nudging customers who stopped answering, then solving for them ([followup]).

What is due lives in the database: `followup_due_at` on each pending ticket. The sweep
claims due tickets with FOR UPDATE SKIP LOCKED, sends and records in one transaction,
and sets the next due time, so a restart, a clock jump or a second scheduler can
neither lose a nudge nor send one twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from maild.clock import Clock
from maild.config import FollowupConfig
from maild.db.database import Database
from maild.db.loads import SWEEP_LOADS, claim_tickets
from maild.db.models import Ticket
from maild.outbound.caps import HOUR, automatic_mail_waits
from maild.outbound.mails import Mails
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import record, set_status
from maild.tickets.sla import SlaClocks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FollowUps:
    db: Database
    clock: Clock
    calendar: BusinessCalendar  # the waits count business days
    sla: SlaClocks
    mails: Mails
    settings: FollowupConfig
    automatic_per_hour: int  # outbound.auto_replies_per_hour: to one address, at most

    def next_due(self, ticket: Ticket) -> datetime:
        """When the next nudge (or, after the last, the auto-solve) is due."""
        assert ticket.pending_since is not None
        nudges = self.settings.nudges
        step = (nudges[ticket.nudges_sent] if ticket.nudges_sent < len(nudges)
                else self.settings.auto_solve_after)
        return self.calendar.add(ticket.pending_since, step)

    def _schedule_new(self, batch: int) -> None:
        """Tickets that just went pending get their first due time."""
        with self.db.transaction() as session:
            for ticket in session.scalars(claim_tickets(
                Ticket.status == "pending", Ticket.followup_due_at.is_(None),
                Ticket.pending_since.is_not(None), limit=batch,
            )):
                ticket.followup_due_at = self.next_due(ticket)

    def _follow_up(self, session: Session, ticket: Ticket, now: datetime) -> str:
        settings = self.settings
        waits = automatic_mail_waits(session, ticket.requester, now, self.automatic_per_hour)
        if waits:
            # The step is not lost: it comes an hour later, when the address has room again.
            ticket.followup_due_at = now + HOUR
            record(ticket, now, SYSTEM_ACTOR, "followup_postponed", detail=waits)
            return "postponed"
        if ticket.nudges_sent < len(settings.nudges):
            number = ticket.nudges_sent + 1
            ticket.nudges_sent = number
            auto_solve_at = self.calendar.add(ticket.pending_since or now,
                                              settings.auto_solve_after)
            self.mails.to_customer(session, ticket, "nudge", "nudge", nudge_number=number,
                                   last=number == len(settings.nudges),
                                   auto_solve_at=auto_solve_at)
            record(ticket, now, SYSTEM_ACTOR, "nudged",
                   detail=f"nudge {number} of {len(settings.nudges)}")
            ticket.followup_due_at = self.next_due(ticket)
            return "nudged"
        self.mails.to_customer(session, ticket, "auto_solved", "auto_solved")
        set_status(ticket, "solved", actor=SYSTEM_ACTOR, now=now, clocks=self.sla,
                   detail=f"no answer {settings.auto_solve_after} after it went pending")
        return "auto_solved"

    def send(self, batch: int = 500) -> dict[str, int]:
        """The nudges and auto-solves that are due."""
        self._schedule_new(batch)
        now = self.clock.now()
        done = {"nudged": 0, "auto_solved": 0, "postponed": 0}
        while True:
            with self.db.transaction() as session:
                due = session.scalars(claim_tickets(
                    Ticket.status == "pending", Ticket.followup_due_at <= now,
                    order_by=Ticket.followup_due_at, limit=batch, loads=SWEEP_LOADS,
                )).all()
                for ticket in due:
                    done[self._follow_up(session, ticket, now)] += 1
            if len(due) < batch:
                break
        if any(done.values()):
            log.info("follow-ups: %d nudged, %d auto-solved, %d postponed by the hourly cap",
                     done["nudged"], done["auto_solved"], done["postponed"])
        return done
