"""`maild report`: what a support lead reads over a date range.

Times to first response and to resolution are counted in business hours. Backlog is as
of now. Follow-ups come from the event log, so they are exact whatever restarts happened.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from maild.db.models import Event, Ticket
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.model import RESOLVED, STATUSES, SYSTEM_ACTOR

AGE_BUCKETS = (("under 1 day", 1), ("1-3 days", 3), ("3-7 days", 7), ("1-3 weeks", 21),
               ("over 3 weeks", None))


def _hours(values: list[timedelta]) -> dict[str, Any]:
    hours = sorted(v.total_seconds() / 3600 for v in values)
    if not hours:
        return {"count": 0, "median_hours": None, "p90_hours": None}
    p90 = hours[min(len(hours) - 1, int(round(0.9 * (len(hours) - 1))))]
    return {"count": len(hours), "median_hours": round(statistics.median(hours), 1),
            "p90_hours": round(p90, 1)}


@dataclass(frozen=True)
class Outcome:
    """Whether one ticket met one SLA target, and what it is grouped by."""

    plan: str
    severity: int | None
    met: bool


def _share(values: list[bool]) -> dict[str, Any]:
    return {"met": sum(values), "total": len(values),
            "percent": round(100 * sum(values) / len(values), 1) if values else None}


def _attainment(outcomes: list[Outcome]) -> dict[str, Any]:
    by_plan: dict[str, list[bool]] = {}
    by_severity: dict[str, list[bool]] = {}
    for outcome in outcomes:
        by_plan.setdefault(outcome.plan, []).append(outcome.met)
        severity = str(outcome.severity) if outcome.severity is not None else "none"
        by_severity.setdefault(severity, []).append(outcome.met)
    return {"all": _share([o.met for o in outcomes]),
            "by_plan": {p: _share(v) for p, v in sorted(by_plan.items())},
            "by_severity": {s: _share(v) for s, v in sorted(by_severity.items())}}


def _responded_in_time(tickets: list[Ticket], due_of: Callable[[Ticket], datetime | None],
                       now: datetime) -> list[Outcome]:
    """A first-response target counts once it has come due or been answered."""
    found = []
    for ticket in tickets:
        due = due_of(ticket)
        if due is None or (ticket.first_response_at is None and due > now):
            continue
        met = ticket.first_response_at is not None and ticket.first_response_at <= due
        found.append(Outcome(_plan(ticket), ticket.severity, met))
    return found


def _resolved_in_time(tickets: list[Ticket]) -> list[Outcome]:
    """Met when the resolution clock stopped (for the last time) before it ran out."""
    return [
        Outcome(_plan(t), t.severity, (t.sla_paused_at or t.solved_at) <= t.resolution_due_at)
        for t in tickets if t.solved_at and t.resolution_due_at
    ]


def _plan(ticket: Ticket) -> str:
    return ticket.customer.plan if ticket.customer and ticket.customer.plan else "none"


def build_report(session: Session, calendar: BusinessCalendar, since: datetime,
                 until: datetime, now: datetime) -> dict[str, Any]:
    opened = list(session.scalars(
        select(Ticket).options(selectinload(Ticket.customer))
        .where(Ticket.created_at >= since, Ticket.created_at < until)
    ))
    solved = list(session.scalars(
        select(Ticket).options(selectinload(Ticket.customer))
        .where(Ticket.solved_at >= since, Ticket.solved_at < until)
    ))

    first_response = [calendar.business_time_between(t.created_at, t.first_response_at)
                      for t in opened if t.first_response_at]
    resolution = [calendar.business_time_between(t.created_at, t.solved_at)
                  for t in solved if t.solved_at]

    backlog_tickets = list(session.scalars(
        select(Ticket).where(Ticket.status.not_in(RESOLVED))
    ))
    by_status = {s: 0 for s in STATUSES if s not in RESOLVED}
    by_age = {name: 0 for name, _ in AGE_BUCKETS}
    for ticket in backlog_tickets:
        by_status[ticket.status] += 1
        age_days = (now - ticket.created_at).total_seconds() / 86400
        name = next(n for n, limit in AGE_BUCKETS if limit is None or age_days < limit)
        by_age[name] += 1

    def events(kind: str, **match: str) -> int:
        query = select(func.count(Event.id)).where(
            Event.kind == kind, Event.at >= since, Event.at < until)
        for column, value in match.items():
            query = query.where(getattr(Event, column) == value)
        return session.scalar(query) or 0

    return {
        "since": since.isoformat(), "until": until.isoformat(),
        "tickets": {"opened": len(opened), "solved": len(solved)},
        "first_response": _hours(first_response),
        "resolution": _hours(resolution),
        "sla": {
            "first_response": _attainment(
                _responded_in_time(opened, lambda t: t.response_due_at, now)),
            "resolution": _attainment(_resolved_in_time(solved)),
            "internal_first_response": _attainment(
                _responded_in_time(opened, lambda t: t.internal_response_due_at, now)),
            "breaches": events("sla_breach"),
            "escalations": events("escalated"),
        },
        "backlog": {"total": len(backlog_tickets), "by_status": by_status, "by_age": by_age},
        "followups": {"nudges_sent": events("nudged"),
                      "auto_solved": events("status", actor=SYSTEM_ACTOR, new="solved")},
        "satisfaction": _satisfaction(session, since, until),
    }


def _satisfaction(session: Session, since: datetime, until: datetime) -> dict[str, Any]:
    """Answers given in the range, the latest per ticket (a customer may change their mind)."""
    latest: dict[int, int] = {}
    for ticket_id, rating in session.execute(
        select(Event.ticket_id, Event.new)
        .where(Event.kind == "satisfaction", Event.at >= since, Event.at < until,
               Event.new.is_not(None))
        .order_by(Event.id)
    ):
        latest[ticket_id] = int(rating or 0)
    ratings = list(latest.values())
    if not ratings:
        return {"answers": 0, "average": None, "satisfied_percent": None}
    satisfied = sum(1 for r in ratings if r >= 4)
    return {"answers": len(ratings), "average": round(statistics.mean(ratings), 2),
            "satisfied_percent": round(100 * satisfied / len(ratings), 1)}


def report_text(report: dict[str, Any]) -> str:
    def hours(block: dict[str, Any]) -> str:
        if not block["count"]:
            return "none yet"
        return (f"median {block['median_hours']} h, p90 {block['p90_hours']} h "
                f"(business hours, {block['count']} tickets)")

    def attained(block: dict[str, Any]) -> str:
        every = block["all"]
        if not every["total"]:
            return "nothing due yet"
        plans = ", ".join(f"{p} {v['percent']}%" for p, v in block["by_plan"].items())
        severities = ", ".join(f"severity {s} {v['percent']}%"
                               for s, v in block["by_severity"].items())
        return f"{every['percent']}% ({every['met']} of {every['total']}; {plans}; {severities})"

    backlog = report["backlog"]
    csat = report["satisfaction"]
    return "\n".join([
        f"maild report {report['since'][:10]} to {report['until'][:10]}",
        f"  tickets opened {report['tickets']['opened']}, solved {report['tickets']['solved']}",
        f"  first response: {hours(report['first_response'])}",
        f"  resolution:     {hours(report['resolution'])}",
        f"  SLA first response met: {attained(report['sla']['first_response'])}",
        f"  SLA resolution met:     {attained(report['sla']['resolution'])}",
        f"  internal first-response target met: "
        f"{attained(report['sla']['internal_first_response'])}",
        f"  SLA breaches told {report['sla']['breaches']}, "
        f"tickets escalated {report['sla']['escalations']}",
        f"  backlog {backlog['total']}: "
        + ", ".join(f"{k} {v}" for k, v in backlog["by_status"].items()),
        "    by age: " + ", ".join(f"{k} {v}" for k, v in backlog["by_age"].items()),
        f"  follow-ups: {report['followups']['nudges_sent']} nudges sent, "
        f"{report['followups']['auto_solved']} tickets auto-solved",
        "  satisfaction: " + (
            f"{csat['satisfied_percent']}% satisfied, average {csat['average']} of 5 "
            f"({csat['answers']} answers)" if csat["answers"] else "no answers yet"),
    ])
