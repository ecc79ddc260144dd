"""Telling the team before an SLA due time passes, when it has passed, and escalating a
ticket unresolved into its third week to the leads.

What is due lives in the database (`sla_alert_at`, planned by sla.py); the sweep claims
due tickets with FOR UPDATE SKIP LOCKED and, in one transaction, queues the mail and
records the alert as sent, so a restart or a second scheduler never sends one twice. Each
ticket has a savepoint of its own: one whose alert fails is held back alone
(failed_steps.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from maild.clock import Clock
from maild.config import StaffConfig
from maild.db.database import Database
from maild.db.loads import SWEEP_LOADS, claim_tickets
from maild.db.models import Ticket
from maild.outbound.mails import Mails
from maild.tickets.failed_steps import SLA_ALERT, each_ticket, forget_settled, not_held_back
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import record
from maild.tickets.sla import Alert, SlaClocks, worth_telling
from maild.tickets.staff import escalation_recipients, staff_recipients

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlaAlerts:
    db: Database
    clock: Clock
    sla: SlaClocks
    mails: Mails
    staff: StaffConfig

    def _alert(self, session: Session, ticket: Ticket, due: list[Alert], now: datetime) -> int:
        sent = 0
        told = worth_telling(due)
        slipping = [a for a in told if a.stage in ("warning", "breach")]
        if slipping:
            recipients = staff_recipients(ticket, self.staff)
            if recipients:
                self.mails.to_staff(session, ticket, "sla_alert", "sla_alert", recipients,
                                    alerts=slipping, now=now)
                sent += 1
            for alert in slipping:
                record(ticket, now, SYSTEM_ACTOR, f"sla_{alert.stage}",
                       detail=f"{alert.target} due {alert.due.isoformat()}; told "
                              f"{', '.join(recipients) or 'nobody (no staff addresses)'}")
        if any(a.stage == "escalation" for a in told):
            leads, copied = escalation_recipients(ticket, self.staff)
            if leads:
                self.mails.to_staff(session, ticket, "escalation", "escalation", leads,
                                    cc=copied, now=now,
                                    escalate_after=self.sla.config.escalate_after)
                sent += 1
            ticket.escalated_at = now
            record(ticket, now, SYSTEM_ACTOR, "escalated",
                   detail=f"unresolved after {self.sla.config.escalate_after}; told "
                          f"{', '.join(leads) or 'nobody (no leads or staff addresses)'}")
        # Warnings passed over for their breach count as sent too: they are never news again.
        ticket.sla_alerts_sent = [*(ticket.sla_alerts_sent or []), *(a.key for a in due)]
        return sent

    def _check(self, session: Session, ticket: Ticket, now: datetime) -> int:
        # Planned afresh: the policies may have changed since (a new config, an upgrade).
        self.sla.replan(ticket, now)
        due = self.sla.due_alerts(ticket, now)
        if not due:
            return 0
        sent = self._alert(session, ticket, due, now)
        self.sla.plan_alerts(ticket)
        return sent

    def send(self, batch: int = 500) -> int:
        """The warnings, breaches and escalations that are due."""
        now = self.clock.now()
        sent = 0
        while True:
            with self.db.transaction() as session:
                forget_settled(session, SLA_ALERT, Ticket.sla_alert_at.is_not(None))
                tickets = session.scalars(claim_tickets(
                    Ticket.sla_alert_at <= now, not_held_back(SLA_ALERT, now),
                    order_by=Ticket.sla_alert_at, limit=batch, loads=SWEEP_LOADS,
                )).all()
                sent += sum(each_ticket(session, SLA_ALERT, tickets, now,
                                        lambda ticket: self._check(session, ticket, now)).done)
            if len(tickets) < batch:
                break
        if sent:
            log.info("SLA: %d alerts sent", sent)
        return sent
