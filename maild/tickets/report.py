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

import itertools
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from maild.db.models import Customer, Event, Message, Ticket
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


def _plan(plan: str | None) -> str:
    return plan or "none"


def _severity(severity: int | None) -> str:
    return str(severity) if severity is not None else "none"


@dataclass(frozen=True)
class _Ticket:
    """What the report knows of one ticket, worked out once however many weeks read it."""

    id: int
    subject: str
    status: str
    priority: str
    severity: int | None
    plan: str
    assignee: str | None
    created_at: datetime
    solved_at: datetime | None
    first_response_at: datetime | None
    by_staff: bool  # opened by an engineer: outreach, not a request
    responder: str | None  # author of the first public reply
    first_response_time: timedelta | None  # business hours, for requests answered
    resolution_time: timedelta | None  # business hours, for requests solved
    outcomes: tuple[Outcome, ...]  # settled targets, for requests

    def engineer(self, target: str) -> str:
        """Whose the target was: the first response's author, or the assignee."""
        if target != "resolution" and self.first_response_at is not None:
            return self.responder or self.assignee or UNASSIGNED
        return self.assignee or UNASSIGNED


@dataclass(frozen=True)
class _Settled:
    ticket: _Ticket
    outcome: Outcome
    engineer: str


def _load(session: Session, calendar: BusinessCalendar, since: datetime, until: datetime,
          now: datetime) -> list[_Ticket]:
    """Every ticket a figure of [since, until) or of now can count: those still open, and
    those opened before `until` with anything (opened, answered, solved, a due time, a
    satisfaction answer) at or after `since`."""
    answered_in_range = select(Event.ticket_id).where(
        Event.kind == "satisfaction", Event.at >= since, Event.at < until)
    relevant: ColumnElement[bool] = or_(
        Ticket.status.not_in(RESOLVED),
        and_(Ticket.created_at < until, or_(
            Ticket.created_at >= since,
            Ticket.solved_at >= since,
            Ticket.first_response_at >= since,
            Ticket.response_due_at >= since,
            Ticket.internal_response_due_at >= since,
            Ticket.resolution_due_at >= since,
            Ticket.id.in_(answered_in_range),
        )),
    )
    rows = session.execute(
        select(Ticket.id, Ticket.subject, Ticket.status, Ticket.priority, Ticket.severity,
               Customer.plan, Ticket.assignee, Ticket.created_at, Ticket.solved_at,
               Ticket.first_response_at, Ticket.response_due_at,
               Ticket.internal_response_due_at, Ticket.resolution_due_at,
               Ticket.sla_paused_at, Ticket.first_response_business_seconds,
               Ticket.resolution_business_seconds)
        .outerjoin(Customer, Ticket.customer_id == Customer.id)
        .where(relevant).order_by(Ticket.id)).all()
    opened_by_staff, responder = _first_messages(session, [row.id for row in rows])
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    tickets = []
    for row in rows:
        by_staff = row.id in opened_by_staff
        answered, solved = row.first_response_at, row.solved_at
        tickets.append(_Ticket(
            id=row.id, subject=row.subject, status=row.status, priority=row.priority,
            severity=row.severity, plan=_plan(row.plan), assignee=row.assignee,
            created_at=row.created_at, solved_at=solved, first_response_at=answered,
            by_staff=by_staff, responder=responder.get(row.id),
            first_response_time=(
                _business_time(calendar, row.created_at, answered,
                               row.first_response_business_seconds)
                if answered is not None and not by_staff and row.created_at >= since
                else None),
            resolution_time=(
                _business_time(calendar, row.created_at, solved,
                               row.resolution_business_seconds)
                if solved is not None and not by_staff and since <= solved < until
                else None),
            outcomes=() if by_staff else tuple(outcomes(row, now)),
        ))
    return tickets


def _business_time(calendar: BusinessCalendar, opened: datetime, until: datetime,
                   known: float | None) -> timedelta:
    """As kept on the ticket when it happened; worked out for tickets from before that."""
    if known is not None:
        return timedelta(seconds=known)
    return calendar.business_time_between(opened, until)


def _first_messages(session: Session, ticket_ids: list[int]) -> tuple[set[int], dict[int, str]]:
    """Of these tickets: those whose first message was staff's (opened by an engineer),
    and the author of each one's first public reply."""
    opened_by_staff: set[int] = set()
    responder: dict[int, str] = {}
    for start in range(0, len(ticket_ids), 500):  # by the ticket index, a chunk at a time
        seen: set[int] = set()
        for ticket_id, direction, kind, author in session.execute(
            select(Message.ticket_id, Message.direction, Message.kind, Message.author)
            .where(Message.ticket_id.in_(ticket_ids[start:start + 500]))
            .order_by(Message.ticket_id, Message.id)
        ):
            if ticket_id not in seen:
                seen.add(ticket_id)
                if direction == "out":
                    opened_by_staff.add(ticket_id)
            if direction == "out" and kind == "public" and ticket_id not in responder:
                responder[ticket_id] = author
    return opened_by_staff, responder


class _Window:
    """The figures of the tickets in [since, until) that are about that range, by the
    module's definitions. `tickets` may hold more than the range touches; never less."""

    def __init__(self, tickets: Iterable[_Ticket], since: datetime, until: datetime) -> None:
        # Compared in UTC as the database gives them: comparing across time zones asks
        # each zone for its offset, every time.
        since, until = since.astimezone(UTC), until.astimezone(UTC)

        def within(moment: datetime | None) -> bool:
            return moment is not None and since <= moment < until

        self.opened: list[_Ticket] = []
        self.solved: list[_Ticket] = []
        self.first_response_times: dict[int, timedelta] = {}
        self.resolution_times: list[timedelta] = []
        self.settled: dict[str, list[_Settled]] = defaultdict(list)
        for ticket in tickets:
            if within(ticket.created_at):
                self.opened.append(ticket)
                if ticket.first_response_time is not None:
                    self.first_response_times[ticket.id] = ticket.first_response_time
            if within(ticket.solved_at):
                self.solved.append(ticket)
                if ticket.resolution_time is not None:
                    self.resolution_times.append(ticket.resolution_time)
            for found in ticket.outcomes:
                if within(found.settled_at):
                    self.settled[found.target].append(
                        _Settled(ticket, found, ticket.engineer(found.target)))

    def counts(self) -> dict[str, int]:
        return {"opened": len(self.opened),
                "opened_by_staff": sum(t.by_staff for t in self.opened),
                "solved": len(self.solved)}


def build_report(session: Session, calendar: BusinessCalendar, since: datetime,
                 until: datetime, now: datetime) -> dict[str, Any]:
    tickets = _load(session, calendar, since, until, now)
    return _report(session, tickets, calendar, since, until, now)


def _report(session: Session, tickets: list[_Ticket], calendar: BusinessCalendar,
            since: datetime, until: datetime, now: datetime) -> dict[str, Any]:
    window = _Window(tickets, since, until)
    settled = window.settled
    open_breaches = sorted(((ticket, found) for ticket in tickets for found in ticket.outcomes
                            if found.open), key=lambda pair: (pair[1].due, pair[0].id))
    events = _Events(session, since, until)
    by_id = {t.id: t for t in tickets}
    answers = events.answers()
    sla = {
        "first_response": _attainment(settled["first_response"]),
        "resolution": _attainment(settled["resolution"]),
        "internal_first_response": _attainment(settled["internal_first_response"]),
        # Targets missed in the range: the customer's promises, and our own target.
        "breaches": sum(not s.outcome.met for t in CUSTOMER_TARGETS for s in settled[t]),
        "internal_breaches": sum(not s.outcome.met for s in settled["internal_first_response"]),
        "escalations": events.count("escalated"),
        "open_breaches": [_open_breach(ticket, found, now) for ticket, found in open_breaches],
    }
    backlog = [t for t in tickets if t.status not in RESOLVED]
    return {
        "since": since.isoformat(), "until": until.isoformat(), "now": now.isoformat(),
        "timezone": calendar.zone.key,
        "percentile_method": PERCENTILE_METHOD,
        "tickets": window.counts(),
        "first_response": hours_summary(window.first_response_times.values()),
        "resolution": hours_summary(window.resolution_times),
        "sla": sla,
        "engineers": _engineers(by_id, window, events.assignments(), answers, backlog),
        "backlog": _backlog(backlog, now),
        "followups": {"nudges_sent": events.count("nudged"),
                      "auto_solved": events.count("status", actor=SYSTEM_ACTOR, new="solved")},
        "satisfaction": _satisfaction(by_id, answers),
    }


def _attainment(settled: list[_Settled]) -> dict[str, Any]:
    groups: dict[str, dict[str, list[bool]]] = {"by_plan": {}, "by_severity": {},
                                                 "by_engineer": {}}
    for item in settled:
        for group, key in (("by_plan", item.ticket.plan),
                           ("by_severity", _severity(item.ticket.severity)),
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
            "plan": s.ticket.plan, "engineer": s.engineer,
            "due_at": _iso(s.outcome.due), "late_hours": _hours(s.outcome.late),
            "open": s.outcome.open,
        } for s in missed],
    }


def _open_breach(ticket: _Ticket, found: Outcome, now: datetime) -> dict[str, Any]:
    return {"ticket": ticket.id, "subject": ticket.subject, "target": found.target,
            "status": ticket.status, "priority": ticket.priority,
            "severity": ticket.severity, "plan": ticket.plan,
            "assignee": ticket.assignee, "due_at": _iso(found.due),
            "overdue_hours": _hours(now - found.due)}


Answer = tuple[int, str | None, str | None, datetime]  # ticket, rating, comment, when


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

    def answers(self) -> list[Answer]:
        """The survey answers given in the range, in order."""
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


def _latest_ratings(answers: list[Answer]) -> dict[int, int]:
    """The rating of each ticket answered, the latest (a customer may change their
    mind)."""
    latest: dict[int, int] = {}
    for ticket_id, rating, _, _ in answers:
        if rating is not None and rating.isdigit():
            latest[ticket_id] = int(rating)
    return latest


def _satisfaction(by_id: dict[int, _Ticket], answers: list[Answer]) -> dict[str, Any]:
    comments = []
    for ticket_id, rating, comment, at in answers:
        ticket = by_id.get(ticket_id)
        if comment and ticket is not None:
            comments.append({
                "ticket": ticket_id, "subject": ticket.subject,
                "rating": int(rating) if rating and rating.isdigit() else None,
                "comment": comment, "at": at.isoformat(), "engineer": ticket.assignee,
            })
    return {**_ratings(list(_latest_ratings(answers).values())), "comments": comments}


def _engineers(by_id: dict[int, _Ticket], window: _Window, assigned: dict[str, set[int]],
               answers: list[Answer], backlog: list[_Ticket]) -> dict[str, Any]:
    responses: dict[str, list[timedelta]] = defaultdict(list)
    for ticket_id, took in window.first_response_times.items():
        responses[by_id[ticket_id].responder or UNASSIGNED].append(took)
    ratings: dict[str, list[int]] = defaultdict(list)
    for ticket_id, rating in _latest_ratings(answers).items():
        ticket = by_id.get(ticket_id)
        if ticket is not None and ticket.assignee:
            ratings[ticket.assignee].append(rating)
    solved_by = _count(t.assignee for t in window.solved if t.assignee)
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


def _backlog(backlog: list[_Ticket], now: datetime) -> dict[str, Any]:
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


def report_with_weeks(session: Session, calendar: BusinessCalendar, starts: list[datetime],
                      now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report over the weeks between `starts` (each a week's start, the last one the
    end of the range), and its figures week by week, each by the report's definitions,
    with the backlog as each week ended. The tickets are read once for all of them."""
    since, until = starts[0], starts[-1]
    tickets = _load(session, calendar, since, until, now)
    summary = _report(session, tickets, calendar, since, until, now)
    return summary, _weeks(session, tickets, starts, now)


def weekly_trends(session: Session, calendar: BusinessCalendar, starts: list[datetime],
                  now: datetime) -> list[dict[str, Any]]:
    return report_with_weeks(session, calendar, starts, now)[1]


def _weeks(session: Session, tickets: list[_Ticket], starts: list[datetime],
           now: datetime) -> list[dict[str, Any]]:
    bounds = [start.astimezone(UTC) for start in starts]

    def week_of(moment: datetime | None) -> int | None:
        if moment is None or not bounds[0] <= moment < bounds[-1]:
            return None
        return bisect_right(bounds, moment) - 1

    # Each week gets the tickets with something in it, so that a week's figures read
    # a week's tickets, not the whole range's.
    touching: list[dict[int, _Ticket]] = [{} for _ in starts[1:]]
    for ticket in tickets:
        for moment in (ticket.created_at, ticket.solved_at,
                       *(found.settled_at for found in ticket.outcomes)):
            week = week_of(moment)
            if week is not None:
                touching[week][ticket.id] = ticket
    answers: list[list[Answer]] = [[] for _ in starts[1:]]
    for answer in _Events(session, starts[0], starts[-1]).answers():
        answers[bisect_right(bounds, answer[3]) - 1].append(answer)
    backlog = _backlog_at(session, starts[0])
    weeks = []
    for n, (start, end) in enumerate(itertools.pairwise(starts)):
        window = _Window(touching[n].values(), start, end)
        counts = window.counts()
        ended = min(end, now)
        backlog += (sum(1 for t in window.opened if t.created_at < ended)
                    - sum(1 for t in window.solved if t.solved_at and t.solved_at < ended))
        ratings = _ratings(list(_latest_ratings(answers[n]).values()))
        weeks.append({
            "start": start.isoformat(),
            "opened": counts["opened"],
            "solved": counts["solved"],
            "first_response": hours_summary(window.first_response_times.values()),
            "resolution": hours_summary(window.resolution_times),
            "sla": {target: _share([s.outcome.met for s in window.settled[target]])
                    for target in CUSTOMER_TARGETS},
            "backlog": backlog,
            "satisfaction": {key: ratings[key] for key in ("answers", "average")},
        })
    return weeks


def _backlog_at(session: Session, at: datetime) -> int:
    """Tickets opened before `at` and not solved before it (as the tickets stand now: a
    ticket reopened since counts from its last solve)."""
    opened = session.scalar(select(func.count(Ticket.id)).where(Ticket.created_at < at)) or 0
    solved = session.scalar(select(func.count(Ticket.id)).where(Ticket.solved_at < at)) or 0
    return opened - solved
