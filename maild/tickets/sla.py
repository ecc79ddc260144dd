"""SLA clocks: what a ticket's policy promises, and when each promise comes due.

Due times are a function of the ticket alone: when it came in, the severity its priority
maps to, its customer's plan and its status history. `SlaClocks.refresh` recomputes
them after every change (workflow.py calls it), so they are right whatever changed.

- First response: counted from arrival, met by the first public SE reply. An automatic
  acknowledgment is no response.
- Resolution: the clock runs only while the next step is ours (new, open). While the
  ticket waits on the customer or a third party, or is solved, it stands still; when
  the ticket comes back to us the due time moves by the time it stood.
- Internal target: the team's own first-response goal, in its own hours.
- Escalation: a ticket still unresolved `escalate_after` its arrival goes to the leads,
  once, whatever the pauses.

Alerts (a warning before a due time, a notice at the breach, the escalation) are planned
here and sent by sla_alerts.py. Each has a key naming its due time: a key already sent
is never sent again, and a due time that moves gets alerts of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from maild.config import SlaConfig, SlaPolicyConfig
from maild.db.models import Ticket
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.durations import Duration
from maild.tickets.model import RESOLVED, WAITING_ON_US


@dataclass(frozen=True)
class Alert:
    target: str  # internal_response | first_response | resolution
    stage: str  # warning | breach | escalation
    at: datetime  # when to send it
    due: datetime  # the due time it is about

    @property
    def key(self) -> str:
        return f"{self.target}:{self.stage}:{self.due.isoformat()}"


Pause = tuple[datetime, datetime | None]  # from, until (None: still paused)


def pauses(ticket: Ticket) -> list[Pause]:
    """When the ticket was not waiting on us: kept on the ticket as its status changes
    (`status_changed`), as its status events tell it."""
    return [(datetime.fromisoformat(str(since)),
             datetime.fromisoformat(until) if until else None)
            for since, until in ticket.sla_pauses or []]


def status_changed(ticket: Ticket, old: str, new: str, at: datetime) -> None:
    """Keep the ticket's pauses as its status goes from `old` to `new` at `at`: a pause
    begins when the next step stops being ours, and ends when it is ours again."""
    kept = list(ticket.sla_pauses or [])
    if old in WAITING_ON_US and new not in WAITING_ON_US:
        kept.append([at.astimezone(UTC).isoformat(), None])
    elif old not in WAITING_ON_US and new in WAITING_ON_US and kept and kept[-1][1] is None:
        kept[-1] = [kept[-1][0], at.astimezone(UTC).isoformat()]
    else:
        return
    ticket.sla_pauses = kept


class SlaClocks:
    def __init__(self, config: SlaConfig, calendar: BusinessCalendar) -> None:
        self.config = config
        self.calendar = calendar
        self.internal_calendar = BusinessCalendar(config.internal)

    def policy(self, ticket: Ticket) -> SlaPolicyConfig | None:
        plan = ticket.customer.plan if ticket.customer is not None else None
        return self.config.policy(self.config.severity(ticket.priority), plan)

    def promises(self, plan: str | None) -> list[tuple[int, SlaPolicyConfig]]:
        """What a customer on `plan` is promised, per severity in use, most severe first."""
        found = []
        for severity in sorted(set(self.config.severities.values())):
            policy = self.config.policy(severity, plan)
            if policy is not None:
                found.append((severity, policy))
        return found

    def refresh(self, ticket: Ticket) -> None:
        """Recompute the ticket's due times and when its next alert is due."""
        policy = self.policy(ticket)
        ticket.severity = self.config.severity(ticket.priority)
        ticket.response_due_at = (
            self.calendar.add(ticket.created_at, policy.first_response)
            if policy is not None and policy.first_response is not None else None
        )
        internal = self.config.internal
        ticket.internal_response_due_at = (
            self.internal_calendar.add(ticket.created_at, internal.first_response)
            if internal.enabled else None
        )
        stopped = pauses(ticket)
        ticket.sla_paused_at = stopped[-1][0] if stopped and stopped[-1][1] is None else None
        ticket.resolution_due_at = (
            self._resolution_due(ticket.created_at, policy.resolution, stopped)
            if policy is not None and policy.resolution is not None else None
        )
        ticket.first_response_business_seconds = self._business_seconds(
            ticket, ticket.first_response_at, ticket.first_response_business_seconds)
        ticket.resolution_business_seconds = self._business_seconds(
            ticket, ticket.solved_at, ticket.resolution_business_seconds)
        self.plan_alerts(ticket)

    def replan(self, ticket: Ticket, now: datetime) -> None:
        """`refresh` with nothing happening to the ticket: the SLA sweep plans it afresh,
        as the policies, the business hours or the customer's plan may have changed since.
        Targets that move are a change the report's kept weeks must see, but no activity
        on the ticket: noted in `sla_replanned_at`, not in `updated_at`."""
        planned = _targets(ticket)
        self.refresh(ticket)
        if _targets(ticket) != planned:
            ticket.sla_replanned_at = now

    def _business_seconds(self, ticket: Ticket, until: datetime | None,
                          known: float | None) -> float | None:
        """Business time from the ticket's opening to `until`, for the report; worked out
        once, as `until` (a first response, a solve) does not move once it happened."""
        if until is None:
            return None
        if known is not None:
            return known
        return self.calendar.business_time_between(ticket.created_at, until).total_seconds()

    def plan_alerts(self, ticket: Ticket) -> None:
        """When the ticket's next unsent alert is due (its due times as they stand)."""
        sent = set(ticket.sla_alerts_sent or [])
        ticket.sla_alert_at = min(
            (alert.at for alert in self.alerts(ticket) if alert.key not in sent), default=None
        )

    def _resolution_due(self, start: datetime, target: Duration,
                        stopped: list[Pause]) -> datetime:
        """When the running time since `start`, pauses left out, reaches `target`.

        While paused, it is the due time as it stood when the pause began.
        """
        business = target.business
        remaining = self.calendar.business_length(target) if business else target.wall_clock

        def after(moment: datetime, amount: timedelta) -> datetime:
            return (self.calendar.add_business_time(moment, amount) if business
                    else moment + amount)

        cursor = start
        for since, until in stopped:
            if since > cursor:
                ran = self.calendar.elapsed(cursor, since, business)
                if remaining <= ran:
                    return after(cursor, remaining)
                remaining -= ran
                cursor = since
            if until is None:
                return after(cursor, remaining)
            cursor = max(cursor, until)
        return after(cursor, remaining)

    def alerts(self, ticket: Ticket) -> list[Alert]:
        """Every alert the ticket calls for as it stands, sent or not."""
        planned: list[Alert] = []
        if ticket.status in WAITING_ON_US:
            warn = self.config.warn_before.wall_clock
            dues = [("resolution", ticket.resolution_due_at, warn)]
            if ticket.first_response_at is None:
                dues += [
                    ("internal_response", ticket.internal_response_due_at,
                     self.config.internal.warn_before.wall_clock),
                    ("first_response", ticket.response_due_at, warn),
                ]
            for target, due, before in dues:
                if due is not None:
                    planned.append(Alert(target, "warning", due - before, due))
                    planned.append(Alert(target, "breach", due, due))
        if ticket.status not in RESOLVED and ticket.escalated_at is None:
            at = self.calendar.add(ticket.created_at, self.config.escalate_after)
            planned.append(Alert("resolution", "escalation", at, at))
        return planned

    def due_alerts(self, ticket: Ticket, now: datetime) -> list[Alert]:
        """The alerts due by `now` that have not been sent."""
        sent = set(ticket.sla_alerts_sent or [])
        return [a for a in self.alerts(ticket) if a.at <= now and a.key not in sent]


def _targets(ticket: Ticket) -> tuple[object, ...]:
    """What the report reads of the ticket's SLA as planned (targets.py, its severity)."""
    return (ticket.severity, ticket.response_due_at, ticket.internal_response_due_at,
            ticket.resolution_due_at, ticket.sla_paused_at)


def worth_telling(due: list[Alert]) -> list[Alert]:
    """A warning is news only while its breach is not due as well (after a pause in the
    sweeps, say): then the breach alone is told."""
    breached = {(a.target, a.due) for a in due if a.stage == "breach"}
    return [a for a in due if not (a.stage == "warning" and (a.target, a.due) in breached)]
