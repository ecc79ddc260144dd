"""Nudging customers who stopped answering, then solving for them ([followup]).

What is due lives in the database: `followup_due_at` on each pending ticket. The sweep
claims due tickets with FOR UPDATE SKIP LOCKED, sends and records in one transaction,
and sets the next due time, so a restart, a clock jump or a second scheduler can
neither lose a nudge nor send one twice.

The first step is due its wait after the ticket went pending; each later one is planned
from the moment the step before it was actually sent, as far after it as the schedule
spaces them. After downtime a customer gets the one step that is due, not every step
missed at once, and no mail promises a moment that has already passed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from maild.clock import Clock
from maild.config import FollowupConfig
from maild.db.database import Database
from maild.db.loads import SWEEP_LOADS, claim_tickets
from maild.db.models import Ticket
from maild.outbound.caps import HOUR, automatic_mail_waits
from maild.outbound.mails import Mails
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.durations import Duration
from maild.tickets.failed_steps import FOLLOWUP, each_ticket, forget_settled, not_held_back
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

    @property
    def steps(self) -> list[Duration]:
        """Each nudge's wait, then the auto-solve's, all counted from going pending."""
        return [*self.settings.nudges, self.settings.auto_solve_after]

    def first_due(self, ticket: Ticket) -> datetime:
        """When a ticket that just went pending gets its first nudge (or auto-solve)."""
        assert ticket.pending_since is not None
        return self.calendar.add(ticket.pending_since, self.steps[0])

    def plan_after(self, pending_since: datetime, done: int, sent_at: datetime
                   ) -> list[datetime]:
        """When each step after step number `done` (1 for the first nudge) is due, that
        step having been sent at `sent_at`: each as far after the one before it as the
        schedule spaces them, counted in the later step's kind of time."""
        steps = self.steps
        plan: list[datetime] = []
        at = sent_at
        for before, step in zip(steps[done - 1:], steps[done:], strict=False):
            # How far apart the schedule puts the two, counted as `step` counts time.
            scheduled = self.calendar.elapsed(
                pending_since, self.calendar.add(pending_since, before), step.business)
            spacing = max(self.calendar.business_length(step) - scheduled, timedelta())
            at = (self.calendar.add_business_time(at, spacing) if step.business
                  else at + spacing)
            plan.append(at)
        return plan

    def _schedule_new(self, batch: int) -> None:
        """Tickets that just went pending get their first due time."""
        with self.db.transaction() as session:
            for ticket in session.scalars(claim_tickets(
                Ticket.status == "pending", Ticket.followup_due_at.is_(None),
                Ticket.pending_since.is_not(None), limit=batch,
            )):
                ticket.followup_due_at = self.first_due(ticket)

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
            plan = self.plan_after(ticket.pending_since or now, number, now)
            self.mails.to_customer(session, ticket, "nudge", "nudge", nudge_number=number,
                                   last=number == len(settings.nudges),
                                   auto_solve_at=plan[-1])
            ticket.nudges_sent = number
            record(ticket, now, SYSTEM_ACTOR, "nudged",
                   detail=f"nudge {number} of {len(settings.nudges)}")
            ticket.followup_due_at = plan[0]
            return "nudged"
        # One mail: the notice that it is solved asks the satisfaction question too.
        self.mails.to_customer(session, ticket, "auto_solved", "auto_solved")
        set_status(ticket, "solved", actor=SYSTEM_ACTOR, now=now, clocks=self.sla,
                   detail=f"no answer {settings.auto_solve_after} after it went pending")
        ticket.survey_sent_at = now
        record(ticket, now, SYSTEM_ACTOR, "survey_sent", detail="with the auto-solve notice")
        return "auto_solved"

    def send(self, batch: int = 500) -> dict[str, int]:
        """The nudges and auto-solves that are due."""
        self._schedule_new(batch)
        now = self.clock.now()
        done = {"nudged": 0, "auto_solved": 0, "postponed": 0}
        failed = 0
        while True:
            with self.db.transaction() as session:
                forget_settled(session, FOLLOWUP, Ticket.status == "pending")
                due = session.scalars(claim_tickets(
                    Ticket.status == "pending", Ticket.followup_due_at <= now,
                    not_held_back(FOLLOWUP, now),
                    order_by=Ticket.followup_due_at, limit=batch, loads=SWEEP_LOADS,
                )).all()
                outcomes = each_ticket(session, FOLLOWUP, due, now,
                                       lambda ticket: self._follow_up(session, ticket, now))
                for outcome in outcomes.done:
                    done[outcome] += 1
                failed += len(outcomes.failed)
            if len(due) < batch:
                break
        if any(done.values()) or failed:
            log.info("follow-ups: %d nudged, %d auto-solved, %d postponed by the hourly cap, "
                     "%d failed and held back", done["nudged"], done["auto_solved"],
                     done["postponed"], failed)
        return done
