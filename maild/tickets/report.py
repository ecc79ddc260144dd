"""`maild report`: what a support lead reads over a date range, as plain data.

`build_report` returns dicts, lists, numbers and strings only, so that the command line
(report_text.py), the weekly digest and the web dashboard all render the same figures.
Every figure is defined here once, in words a lead can check by hand:

- Times to first response and to resolution are business hours. First responses are
  those of the tickets opened in the range, resolutions those of the tickets solved in
  it. Percentiles are by nearest rank: the p-th is the smallest value such that at
  least p % of the values are at or under it (the ceil(p/100 * n)-th smallest), and
  each comes with how many values are within it.
- Tickets opened by staff (an engineer's mail to a customer with the support address
  in Cc, whose first message is the engineer's) are outreach, not requests: they are
  counted apart and left out of every time and SLA figure. They are in the backlog and
  in their engineer's assigned, solved and backlog counts.
- SLA targets (targets.py): a target counts in the range in which it was settled, met
  or missed, and a target whose due time passed unmet is missed, solved or not. The
  customer's promises (first response, resolution) and the team's own internal
  first-response target are reported apart, each with its breaching tickets.
  `open_breaches` lists every unresolved ticket past a due time now, whatever its age.
- Per engineer: tickets assigned to them in the range; first responses they gave (of
  the tickets opened in the range); tickets solved in the range while theirs; the
  satisfaction answers on their tickets; their backlog now. A ticket's engineer for SLA
  attainment is the author of its first response (for that target) or its assignee.
- Backlog and open breaches are as of now. Follow-ups come from the event log, so they
  are exact whatever restarts happened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, selectinload

from maild.db.models import Event, Message, Ticket
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.model import RESOLVED, STATUSES, SYSTEM_ACTOR
from maild.tickets.targets import Outcome, outcomes

AGE_BUCKETS = (("under 1 day", 1), ("1-3 days", 3), ("3-7 days", 7), ("1-3 weeks", 21),
               ("over 3 weeks", None))
PERCENTILE_METHOD = "nearest rank"
UNASSIGNED = "unassigned"
CUSTOMER_TARGETS = ("first_response", "resolution")
SATISFIED_FROM = 4  # a rating of 4 or 5 of 5 is a satisfied customer


def nearest_rank(ordered: list[float], percent: int) -> float:
    """The smallest of `ordered` (ascending) with at least `percent` % of them at or
    under it."""
    rank = max(1, -(-percent * len(ordered) // 100))  # ceil, in whole numbers
    return ordered[rank - 1]


def hours_summary(values: Iterable[timedelta]) -> dict[str, Any]:
    hours = sorted(v.total_seconds() / 3600 for v in values)
    if not hours:
        return {"count": 0, "median_hours": None, "p90_hours": None, "median_within": 0,
                "p90_within": 0, "max_hours": None}
    median, p90 = nearest_rank(hours, 50), nearest_rank(hours, 90)
    return {"count": len(hours),
            "median_hours": round(median, 1), "median_within": sum(h <= median for h in hours),
            "p90_hours": round(p90, 1), "p90_within": sum(h <= p90 for h in hours),
            "max_hours": round(hours[-1], 1)}


def _share(met: list[bool]) -> dict[str, Any]:
    return {"met": sum(met), "missed": len(met) - sum(met), "total": len(met),
            "percent": round(100 * sum(met) / len(met), 1) if met else None}


def _hours(value: timedelta) -> float:
    return round(value.total_seconds() / 3600, 1)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _plan(ticket: Ticket) -> str:
    return ticket.customer.plan if ticket.customer and ticket.customer.plan else "none"


def _severity(ticket: Ticket) -> str:
    return str(ticket.severity) if ticket.severity is not None else "none"


@dataclass(frozen=True)
class _Settled:
    ticket: Ticket
    outcome: Outcome
    engineer: str


class _Desk:
    """The tickets the report reads, with what it needs to know of their messages."""

    def __init__(self, session: Session, since: datetime, until: datetime) -> None:
        answered_in_range = select(Event.ticket_id).where(
            Event.kind == "satisfaction", Event.at >= since, Event.at < until)
        relevant: ColumnElement[bool] = or_(
            Ticket.status.not_in(RESOLVED),
            Ticket.created_at >= since,
            Ticket.solved_at >= since,
            Ticket.first_response_at >= since,
            Ticket.response_due_at >= since,
            Ticket.internal_response_due_at >= since,
            Ticket.resolution_due_at >= since,
            Ticket.id.in_(answered_in_range),
        )
        self.tickets = list(session.scalars(
            select(Ticket).options(selectinload(Ticket.customer)).where(relevant)
            .order_by(Ticket.id)
        ))
        in_view = select(Ticket.id).where(relevant)
        first_messages = (select(func.min(Message.id)).where(Message.ticket_id.in_(in_view))
                          .group_by(Message.ticket_id))
        self.opened_by_staff = set(session.scalars(
            select(Message.ticket_id).where(Message.id.in_(first_messages),
                                            Message.direction == "out")))
        first_replies = (select(func.min(Message.id))
                         .where(Message.ticket_id.in_(in_view), Message.direction == "out",
                                Message.kind == "public")
                         .group_by(Message.ticket_id))
        self.responder: dict[int, str] = {
            ticket_id: author for ticket_id, author in session.execute(
                select(Message.ticket_id, Message.author).where(Message.id.in_(first_replies)))
        }

    def requests(self) -> list[Ticket]:
        """The tickets customers opened (not staff's outreach)."""
        return [t for t in self.tickets if t.id not in self.opened_by_staff]

    def engineer(self, ticket: Ticket, target: str) -> str:
        if target != "resolution" and ticket.first_response_at is not None:
            return self.responder.get(ticket.id) or ticket.assignee or UNASSIGNED
        return ticket.assignee or UNASSIGNED


def build_report(session: Session, calendar: BusinessCalendar, since: datetime,
                 until: datetime, now: datetime) -> dict[str, Any]:
    desk = _Desk(session, since, until)

    def within(moment: datetime | None) -> bool:
        return moment is not None and since <= moment < until

    opened = [t for t in desk.tickets if within(t.created_at)]
    solved = [t for t in desk.tickets if within(t.solved_at)]
    requests = desk.requests()
    answered = [t for t in requests if within(t.created_at) and t.first_response_at]
    first_response_times = {
        t.id: calendar.business_time_between(t.created_at, t.first_response_at)
        for t in answered if t.first_response_at}
    resolution_times = [calendar.business_time_between(t.created_at, t.solved_at)
                        for t in solved if t.solved_at and t.id not in desk.opened_by_staff]

    settled: dict[str, list[_Settled]] = defaultdict(list)
    open_breaches = []
    for ticket in requests:
        for found in outcomes(ticket, now):
            if within(found.settled_at):
                settled[found.target].append(
                    _Settled(ticket, found, desk.engineer(ticket, found.target)))
            if found.open:
                open_breaches.append((ticket, found))

    events = _Events(session, since, until)
    satisfaction = _satisfaction(desk, events)
    sla = {
        "first_response": _attainment(settled["first_response"]),
        "resolution": _attainment(settled["resolution"]),
        "internal_first_response": _attainment(settled["internal_first_response"]),
        # Targets missed in the range: the customer's promises, and our own target.
        "breaches": sum(not s.outcome.met for t in CUSTOMER_TARGETS for s in settled[t]),
        "internal_breaches": sum(not s.outcome.met for s in settled["internal_first_response"]),
        "escalations": events.count("escalated"),
        "open_breaches": [_open_breach(ticket, found, now) for ticket, found in
                          sorted(open_breaches, key=lambda pair: (pair[1].due, pair[0].id))],
    }
    backlog = [t for t in desk.tickets if t.status not in RESOLVED]
    return {
        "since": since.isoformat(), "until": until.isoformat(), "now": now.isoformat(),
        "timezone": calendar.zone.key,
        "percentile_method": PERCENTILE_METHOD,
        "tickets": {"opened": len(opened),
                    "opened_by_staff": sum(t.id in desk.opened_by_staff for t in opened),
                    "solved": len(solved)},
        "first_response": hours_summary(first_response_times.values()),
        "resolution": hours_summary(resolution_times),
        "sla": sla,
        "engineers": _engineers(desk, events, first_response_times, solved, backlog),
        "backlog": _backlog(backlog, now),
        "followups": {"nudges_sent": events.count("nudged"),
                      "auto_solved": events.count("status", actor=SYSTEM_ACTOR, new="solved")},
        "satisfaction": satisfaction,
    }


def _attainment(settled: list[_Settled]) -> dict[str, Any]:
    groups: dict[str, dict[str, list[bool]]] = {"by_plan": {}, "by_severity": {},
                                                 "by_engineer": {}}
    for item in settled:
        for group, key in (("by_plan", _plan(item.ticket)),
                           ("by_severity", _severity(item.ticket)),
                           ("by_engineer", item.engineer)):
            groups[group].setdefault(key, []).append(item.outcome.met)
    missed = sorted((s for s in settled if not s.outcome.met),
                    key=lambda s: (s.outcome.due, s.ticket.id))
    return {
        "all": _share([s.outcome.met for s in settled]),
        **{group: {key: _share(met) for key, met in sorted(values.items())}
           for group, values in groups.items()},
        "breaching_tickets": [{
            "ticket": s.ticket.id, "subject": s.ticket.subject,
            "priority": s.ticket.priority, "severity": s.ticket.severity,
            "plan": _plan(s.ticket), "engineer": s.engineer,
            "due_at": _iso(s.outcome.due), "late_hours": _hours(s.outcome.late),
            "open": s.outcome.open,
        } for s in missed],
    }


def _open_breach(ticket: Ticket, found: Outcome, now: datetime) -> dict[str, Any]:
    return {"ticket": ticket.id, "subject": ticket.subject, "target": found.target,
            "status": ticket.status, "priority": ticket.priority,
            "severity": ticket.severity, "plan": _plan(ticket),
            "assignee": ticket.assignee, "due_at": _iso(found.due),
            "overdue_hours": _hours(now - found.due)}


class _Events:
    """What the event log says happened in the range."""

    def __init__(self, session: Session, since: datetime, until: datetime) -> None:
        self.session, self.since, self.until = session, since, until

    def _in_range(self, kind: str) -> Any:
        return (Event.kind == kind, Event.at >= self.since, Event.at < self.until)

    def count(self, kind: str, **match: str) -> int:
        query = select(func.count(Event.id)).where(*self._in_range(kind))
        for column, value in match.items():
            query = query.where(getattr(Event, column) == value)
        return self.session.scalar(query) or 0

    def assignments(self) -> dict[str, set[int]]:
        """The tickets each engineer was given in the range."""
        given: dict[str, set[int]] = defaultdict(set)
        for ticket_id, assignee in self.session.execute(
            select(Event.ticket_id, Event.new).where(*self._in_range("assignee"),
                                                     Event.new.is_not(None))
        ):
            given[str(assignee)].add(ticket_id)
        return given

    def answers(self) -> list[tuple[int, str | None, str | None, datetime]]:
        """The survey answers given in the range, in order: ticket, rating, comment, when."""
        return [(ticket_id, rating, comment, at) for ticket_id, rating, comment, at in
                self.session.execute(
                    select(Event.ticket_id, Event.new, Event.detail, Event.at)
                    .where(*self._in_range("satisfaction")).order_by(Event.id))]


def _ratings(ratings: list[int]) -> dict[str, Any]:
    if not ratings:
        return {"answers": 0, "satisfied": 0, "average": None, "satisfied_percent": None}
    satisfied = sum(1 for r in ratings if r >= SATISFIED_FROM)
    return {"answers": len(ratings), "satisfied": satisfied,
            "average": round(sum(ratings) / len(ratings), 2),
            "satisfied_percent": round(100 * satisfied / len(ratings), 1)}


def _latest_ratings(events: _Events) -> dict[int, int]:
    """The rating of each ticket answered in the range, the latest (a customer may
    change their mind)."""
    latest: dict[int, int] = {}
    for ticket_id, rating, _, _ in events.answers():
        if rating is not None and rating.isdigit():
            latest[ticket_id] = int(rating)
    return latest


def _satisfaction(desk: _Desk, events: _Events) -> dict[str, Any]:
    by_id = {t.id: t for t in desk.tickets}
    comments = []
    for ticket_id, rating, comment, at in events.answers():
        ticket = by_id.get(ticket_id)
        if comment and ticket is not None:
            comments.append({
                "ticket": ticket_id, "subject": ticket.subject,
                "rating": int(rating) if rating and rating.isdigit() else None,
                "comment": comment, "at": at.isoformat(), "engineer": ticket.assignee,
            })
    return {**_ratings(list(_latest_ratings(events).values())), "comments": comments}


def _engineers(desk: _Desk, events: _Events, first_response_times: dict[int, timedelta],
               solved: list[Ticket], backlog: list[Ticket]) -> dict[str, Any]:
    by_id = {t.id: t for t in desk.tickets}
    assigned = events.assignments()
    responses: dict[str, list[timedelta]] = defaultdict(list)
    for ticket_id, took in first_response_times.items():
        responses[desk.responder.get(ticket_id) or UNASSIGNED].append(took)
    ratings: dict[str, list[int]] = defaultdict(list)
    for ticket_id, rating in _latest_ratings(events).items():
        ticket = by_id.get(ticket_id)
        if ticket is not None and ticket.assignee:
            ratings[ticket.assignee].append(rating)
    solved_by = _count(t.assignee for t in solved if t.assignee)
    waiting = _count(t.assignee for t in backlog if t.assignee)
    names = set(assigned) | set(responses) | set(ratings) | set(solved_by) | set(waiting)
    names.discard(UNASSIGNED)
    return {name: {
        "assigned": len(assigned.get(name, ())),
        "first_responses": hours_summary(responses.get(name, [])),
        "solved": solved_by.get(name, 0),
        "satisfaction": _ratings(ratings.get(name, [])),
        "backlog": waiting.get(name, 0),
    } for name in sorted(names)}


def _count(values: Iterable[str | None]) -> dict[str, int]:
    counted: dict[str, int] = defaultdict(int)
    for value in values:
        if value:
            counted[value] += 1
    return counted


def _backlog(backlog: list[Ticket], now: datetime) -> dict[str, Any]:
    by_status = {s: 0 for s in STATUSES if s not in RESOLVED}
    by_age = {name: 0 for name, _ in AGE_BUCKETS}
    for ticket in backlog:
        by_status[ticket.status] += 1
        age_days = (now - ticket.created_at).total_seconds() / 86400
        name = next(n for n, limit in AGE_BUCKETS if limit is None or age_days < limit)
        by_age[name] += 1
    return {"total": len(backlog), "by_status": by_status, "by_age": by_age,
            "unassigned": sum(1 for t in backlog if not t.assignee)}


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
    """The report's figures week by week (each by `build_report`'s definitions), for the
    weeks between `starts` (each a week's start, the last one the end of the range), with
    the backlog as each week ended."""
    weeks = []
    for start, end in zip(starts, starts[1:], strict=False):
        week = build_report(session, calendar, start, end, now)
        weeks.append({
            "start": start.isoformat(),
            "opened": week["tickets"]["opened"],
            "solved": week["tickets"]["solved"],
            "first_response": week["first_response"],
            "resolution": week["resolution"],
            "sla": {target: week["sla"][target]["all"] for target in CUSTOMER_TARGETS},
            "backlog": _backlog_at(session, min(end, now)),
            "satisfaction": {key: week["satisfaction"][key] for key in ("answers", "average")},
        })
    return weeks


def _backlog_at(session: Session, at: datetime) -> int:
    """Tickets opened before `at` and not solved before it (as the tickets stand now: a
    ticket reopened since counts from its last solve)."""
    opened = session.scalar(select(func.count(Ticket.id)).where(Ticket.created_at < at)) or 0
    solved = session.scalar(select(func.count(Ticket.id)).where(Ticket.solved_at < at)) or 0
    return opened - solved


def report_with_weeks(session: Session, calendar: BusinessCalendar, starts: list[datetime],
                      now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`build_report` over the weeks between `starts`, and `weekly_trends` of them."""
    return (build_report(session, calendar, starts[0], starts[-1], now),
            weekly_trends(session, calendar, starts, now))
