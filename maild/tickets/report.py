"""`maild report`: what a support lead reads over a date range.

Times to first response and to resolution are counted in business hours. Backlog is as
of now. Follow-ups come from the event log, so they are exact whatever restarts happened.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from maild.db.models import Customer, Event, Ticket
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.model import SYSTEM_ACTOR, UNRESOLVED

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


@dataclass(frozen=True)
class TicketTimes:
    """What the report reads of one ticket: its times, its promises and its plan."""

    created_at: datetime
    first_response_at: datetime | None
    solved_at: datetime | None
    response_due_at: datetime | None
    internal_response_due_at: datetime | None
    resolution_due_at: datetime | None
    sla_paused_at: datetime | None
    severity: int | None
    plan: str  # "none" without a known organisation or plan


_TIMES = (
    select(Ticket.created_at, Ticket.first_response_at, Ticket.solved_at, Ticket.response_due_at,
           Ticket.internal_response_due_at, Ticket.resolution_due_at, Ticket.sla_paused_at,
           Ticket.severity, func.coalesce(func.nullif(Customer.plan, ""), "none"))
    .outerjoin(Customer, Ticket.customer_id == Customer.id)
)


def _times(session: Session, *where: ColumnElement[bool]) -> list[TicketTimes]:
    """The columns alone, not the ORM's objects: a report reads thousands of tickets."""
    return [TicketTimes(*row) for row in session.execute(_TIMES.where(*where))]


def _responded_in_time(tickets: list[TicketTimes],
                       due_of: Callable[[TicketTimes], datetime | None],
                       now: datetime) -> list[Outcome]:
    """A first-response target counts once it has come due or been answered."""
    found = []
    for ticket in tickets:
        due = due_of(ticket)
        if due is None or (ticket.first_response_at is None and due > now):
            continue
        met = ticket.first_response_at is not None and ticket.first_response_at <= due
        found.append(Outcome(ticket.plan, ticket.severity, met))
    return found


def _resolved_in_time(tickets: list[TicketTimes]) -> list[Outcome]:
    """Met when the resolution clock stopped (for the last time) before it ran out."""
    return [
        Outcome(t.plan, t.severity, (t.sla_paused_at or t.solved_at) <= t.resolution_due_at)
        for t in tickets if t.solved_at and t.resolution_due_at
    ]


class _Range:
    """The tickets opened and solved in a range, read once, with their business-hour
    times worked out once: the summary and the weeks both count them."""

    def __init__(self, session: Session, calendar: BusinessCalendar, since: datetime,
                 until: datetime) -> None:
        self.since, self.until = since, until
        self.opened = _times(session, Ticket.created_at >= since, Ticket.created_at < until)
        self.solved = _times(session, Ticket.solved_at >= since, Ticket.solved_at < until)
        self.first_response = {
            id(t): calendar.business_time_between(t.created_at, t.first_response_at)
            for t in self.opened if t.first_response_at}
        self.resolution = {
            id(t): calendar.business_time_between(t.created_at, t.solved_at)
            for t in self.solved if t.solved_at}

    def first_responses(self, tickets: list[TicketTimes]) -> list[timedelta]:
        return [self.first_response[id(t)] for t in tickets if id(t) in self.first_response]

    def resolutions(self, tickets: list[TicketTimes]) -> list[timedelta]:
        return [self.resolution[id(t)] for t in tickets if id(t) in self.resolution]


def build_report(session: Session, calendar: BusinessCalendar, since: datetime,
                 until: datetime, now: datetime) -> dict[str, Any]:
    return _summary(session, _Range(session, calendar, since, until), now)


def _backlog(session: Session, now: datetime) -> dict[str, Any]:
    by_status = {s: 0 for s in UNRESOLVED}
    by_age = {name: 0 for name, _ in AGE_BUCKETS}
    for status, created_at in session.execute(
        select(Ticket.status, Ticket.created_at).where(Ticket.status.in_(UNRESOLVED))
    ):
        by_status[status] += 1
        age_days = (now - created_at).total_seconds() / 86400
        name = next(n for n, limit in AGE_BUCKETS if limit is None or age_days < limit)
        by_age[name] += 1
    return {"total": sum(by_status.values()), "by_status": by_status, "by_age": by_age}


def _summary(session: Session, tickets: _Range, now: datetime) -> dict[str, Any]:
    since, until = tickets.since, tickets.until
    opened, solved = tickets.opened, tickets.solved

    def events(kind: str, **match: str) -> int:
        query = select(func.count(Event.id)).where(
            Event.kind == kind, Event.at >= since, Event.at < until)
        for column, value in match.items():
            query = query.where(getattr(Event, column) == value)
        return session.scalar(query) or 0

    return {
        "since": since.isoformat(), "until": until.isoformat(),
        "tickets": {"opened": len(opened), "solved": len(solved)},
        "first_response": _hours(tickets.first_responses(opened)),
        "resolution": _hours(tickets.resolutions(solved)),
        "sla": {
            "first_response": _attainment(
                _responded_in_time(opened, lambda t: t.response_due_at, now)),
            "resolution": _attainment(_resolved_in_time(solved)),
            "internal_first_response": _attainment(
                _responded_in_time(opened, lambda t: t.internal_response_due_at, now)),
            "breaches": events("sla_breach"),
            "escalations": events("escalated"),
        },
        "backlog": _backlog(session, now),
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


def week_starts(calendar: BusinessCalendar, now: datetime, weeks: int) -> list[datetime]:
    """The Mondays (midnight, business time zone) that start the last `weeks` weeks, the
    current one last, and the Monday after it."""
    today = now.astimezone(calendar.zone).date()
    monday = today - timedelta(days=today.weekday())
    return [datetime.combine(monday - timedelta(weeks=weeks - 1 - n), time(0),
                             tzinfo=calendar.zone)
            for n in range(weeks + 1)]


def weekly_trends(session: Session, calendar: BusinessCalendar, starts: list[datetime],
                  now: datetime) -> list[dict[str, Any]]:
    """The report's figures week by week, for the weeks between `starts` (each a week's
    start, the last one the end of the range)."""
    return _weeks(session, _Range(session, calendar, starts[0], starts[-1]), starts, now)


def report_with_weeks(session: Session, calendar: BusinessCalendar, starts: list[datetime],
                      now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`build_report` over the weeks between `starts`, and `weekly_trends` of them: the
    tickets read and their times worked out once for both."""
    tickets = _Range(session, calendar, starts[0], starts[-1])
    return _summary(session, tickets, now), _weeks(session, tickets, starts, now)


def _weeks(session: Session, tickets: _Range, starts: list[datetime],
           now: datetime) -> list[dict[str, Any]]:
    """Times and SLA attainment of the tickets opened (first response) and solved
    (resolution) each week, the backlog as the week ended (or now, for the current one),
    and the satisfaction answers given."""
    since, until = tickets.since, tickets.until
    weeks_utc = [start.astimezone(UTC) for start in starts]
    # Tickets opened before the range and not solved before it (as the tickets stand now:
    # a ticket reopened since counts from its last solve).
    backlog = ((session.scalar(select(func.count(Ticket.id)).where(Ticket.created_at < since))
                or 0)
               - (session.scalar(select(func.count(Ticket.id)).where(Ticket.solved_at < since))
                  or 0))
    answers: dict[int, dict[int, int]] = {}  # week: ticket: its latest rating that week
    for ticket_id, at, rating in session.execute(
        select(Event.ticket_id, Event.at, Event.new)
        .where(Event.kind == "satisfaction", Event.at >= since, Event.at < until,
               Event.new.is_not(None))
        .order_by(Event.id)
    ):
        answers.setdefault(_week_of(weeks_utc, at), {})[ticket_id] = int(rating or 0)

    opened_in: dict[int, list[TicketTimes]] = {}
    for ticket in tickets.opened:
        opened_in.setdefault(_week_of(weeks_utc, ticket.created_at), []).append(ticket)
    solved_in: dict[int, list[TicketTimes]] = {}
    for ticket in tickets.solved:
        if ticket.solved_at is not None:
            solved_in.setdefault(_week_of(weeks_utc, ticket.solved_at), []).append(ticket)

    weeks = []
    for n, start in enumerate(starts[:-1]):
        came, went = opened_in.get(n, []), solved_in.get(n, [])
        backlog += len(came) - len(went)
        ratings = list(answers.get(n, {}).values())
        weeks.append({
            "start": start.isoformat(),
            "opened": len(came),
            "solved": len(went),
            "first_response": _hours(tickets.first_responses(came)),
            "resolution": _hours(tickets.resolutions(went)),
            "sla": {
                "first_response": _share([o.met for o in _responded_in_time(
                    came, lambda t: t.response_due_at, now)]),
                "resolution": _share([o.met for o in _resolved_in_time(went)]),
            },
            "backlog": backlog,
            "satisfaction": {
                "answers": len(ratings),
                "average": round(statistics.mean(ratings), 2) if ratings else None,
            },
        })
    return weeks


def _week_of(starts: list[datetime], at: datetime) -> int:
    """`starts` in UTC, as `at` is: compared without a time zone's rules each time."""
    return bisect.bisect_right(starts, at) - 1
