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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from maild.db.models import Customer, Event, Message, Ticket
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.model import RESOLVED, STATUSES, SYSTEM_ACTOR
from maild.tickets.targets import TARGETS, Outcome, outcomes

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
    return _summary_of_hours(v.total_seconds() / 3600 for v in values)


def _summary_of_hours(values: Iterable[float]) -> dict[str, Any]:
    hours = sorted(values)
    if not hours:
        return {"count": 0, "median_hours": None, "p90_hours": None, "median_within": 0,
                "p90_within": 0, "max_hours": None}
    median, p90 = nearest_rank(hours, 50), nearest_rank(hours, 90)
    return {"count": len(hours),
            "median_hours": round(median, 1), "median_within": bisect_right(hours, median),
            "p90_hours": round(p90, 1), "p90_within": bisect_right(hours, p90),
            "max_hours": round(hours[-1], 1)}


def _share(met: int, total: int) -> dict[str, Any]:
    return {"met": met, "missed": total - met, "total": total,
            "percent": round(100 * met / total, 1) if total else None}


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

    def moments(self) -> tuple[datetime | None, ...]:
        """When something the report counts happened to the ticket: opened, solved, a
        target settled. The week of each is a week whose figures read the ticket."""
        return (self.created_at, self.solved_at, *(found.settled_at for found in self.outcomes))

    def engineer(self, target: str) -> str:
        """Whose the target was: the first response's author, or the assignee."""
        if target != "resolution" and self.first_response_at is not None:
            return self.responder or self.assignee or UNASSIGNED
        return self.assignee or UNASSIGNED


ReportTicket = _Ticket  # the tickets unresolved now, as read_weeks gives them


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
    return _read(session, calendar, _relevant(since, until, answered_in_range), since, until,
                 now)


def tickets_as_of(session: Session, calendar: BusinessCalendar, ids: list[int],
                  now: datetime) -> list[_Ticket]:
    """These tickets as the report reads them now (their moments, say)."""
    found: list[_Ticket] = []
    for start in range(0, len(ids), 500):
        found += _read(session, calendar, Ticket.id.in_(ids[start:start + 500]), now, now, now)
    return found


def _relevant(since: datetime, until: datetime, answered_in_range: Any) -> ColumnElement[bool]:
    return or_(
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


def _read(session: Session, calendar: BusinessCalendar, relevant: ColumnElement[bool],
          since: datetime, until: datetime, now: datetime) -> list[_Ticket]:
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


Row = list[Any]  # a JSON array: what Figures keep of one item, kept in the database
SettledCounts = dict[str, dict[str, list[int]]]  # group ("all", "by_plan"...): key: [met, total]
ALL = "all"
GROUPS = ("by_plan", "by_severity", "by_engineer")


@dataclass
class Figures:
    """What a stretch of time [since, until) adds to the report, by the module's
    definitions: its counts, the times its percentiles are taken from, the targets settled
    in it and what its events say. The figures of consecutive stretches add up
    (`merged`) to those of the whole, so that a closed week's can be kept
    (report_rollup.py) and a range's read from its weeks. Plain lists and dicts only: it
    is kept as JSON."""

    opened: int = 0
    opened_by_staff: int = 0
    solved: int = 0
    # Opened and solved before the stretch ended (or now, if it has not): the backlog's
    # change over it.
    opened_by_end: int = 0
    solved_by_end: int = 0
    first_responses: list[Row] = field(default_factory=list)  # [business seconds, responder]
    resolutions: list[float] = field(default_factory=list)  # business seconds
    solved_by: dict[str, int] = field(default_factory=dict)  # assignee: tickets solved
    attainment: dict[str, SettledCounts] = field(default_factory=dict)  # by target
    # By target: [due, ticket, subject, priority, severity, plan, engineer, late seconds, open]
    missed: dict[str, list[Row]] = field(default_factory=dict)
    escalations: int = 0
    nudges_sent: int = 0
    auto_solved: int = 0
    assignments: dict[str, list[int]] = field(default_factory=dict)  # engineer: tickets
    # [event id, ticket, rating, comment, at, ticket known, subject, assignee]
    answers: list[Row] = field(default_factory=list)
    # With the lists of tickets the full report shows: those that missed a target, and
    # the survey comments. Without, only what the dashboard shows.
    lists: bool = True

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def figures_only(self) -> Figures:
        """Without the lists of tickets (a tenth of the size)."""
        return replace(self, missed={}, lists=False, answers=[
            [event_id, ticket_id, rating, None, None, known, None, assignee]
            for event_id, ticket_id, rating, _, _, known, _, assignee in self.answers])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Figures:
        return cls(**data)


def merged(parts: Iterable[Figures]) -> Figures:
    """The figures of consecutive stretches, as those of the stretch they make up."""
    whole = Figures()
    for part in parts:
        whole.lists = whole.lists and part.lists
        whole.opened += part.opened
        whole.opened_by_staff += part.opened_by_staff
        whole.solved += part.solved
        whole.opened_by_end += part.opened_by_end
        whole.solved_by_end += part.solved_by_end
        whole.first_responses += part.first_responses  # sorted runs: quick to sort
        whole.resolutions += part.resolutions
        _add_counts(whole.solved_by, part.solved_by)
        for target, groups in part.attainment.items():
            into = whole.attainment.setdefault(target, {})
            for group, counts in groups.items():
                for key, (met, total) in counts.items():
                    pair = into.setdefault(group, {}).setdefault(key, [0, 0])
                    pair[0] += met
                    pair[1] += total
        for target, rows in part.missed.items():
            whole.missed.setdefault(target, []).extend(rows)
        whole.escalations += part.escalations
        whole.nudges_sent += part.nudges_sent
        whole.auto_solved += part.auto_solved
        for name, ids in part.assignments.items():
            whole.assignments.setdefault(name, []).extend(ids)
        whole.answers += part.answers
    whole.answers.sort(key=lambda answer: answer[0])  # in the order they were given
    return whole


def _add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0) + count


# id, ticket, kind, new, detail, at
EventRow = tuple[int, int, str, str | None, str | None, datetime]


def _events(session: Session, since: datetime, until: datetime) -> list[EventRow]:
    """The events of [since, until) a figure counts, in the order they were recorded:
    survey answers, escalations, nudges, assignments and the system's solves."""
    found: list[EventRow] = []
    for kind in ("satisfaction", "escalated", "nudged", "assignee", "status"):
        query = select(Event.id, Event.ticket_id, Event.kind, Event.new, Event.detail,
                       Event.at).where(Event.kind == kind, Event.at >= since,
                                                     Event.at < until)
        if kind == "status":
            query = query.where(Event.actor == SYSTEM_ACTOR, Event.new == "solved")
        found.extend(tuple(row) for row in session.execute(query))  # type: ignore[misc]
    found.sort(key=lambda event: event[0])
    return found


def _figures(tickets: Iterable[_Ticket], events: Iterable[EventRow],
             by_id: dict[int, _Ticket], since: datetime, until: datetime,
             now: datetime) -> Figures:
    """The figures of [since, until): `tickets` and `events` may hold more than the range
    touches, never less; `by_id` holds every ticket an event of the range is about."""
    window = _Window(tickets, since, until)
    ended = min(until, now)
    figures = Figures(
        opened=len(window.opened), opened_by_staff=sum(t.by_staff for t in window.opened),
        solved=len(window.solved),
        opened_by_end=sum(1 for t in window.opened if t.created_at < ended),
        solved_by_end=sum(1 for t in window.solved if t.solved_at and t.solved_at < ended),
        first_responses=sorted([t.first_response_time.total_seconds(), t.responder or UNASSIGNED]
                               for t in window.opened if t.first_response_time is not None),
        resolutions=sorted(took.total_seconds() for took in window.resolution_times),
        solved_by=dict(_count(t.assignee for t in window.solved if t.assignee)),
    )
    for target, settled in window.settled.items():
        counts: SettledCounts = {}
        for item in settled:
            for group, key in ((ALL, ""), ("by_plan", item.ticket.plan),
                               ("by_severity", _severity(item.ticket.severity)),
                               ("by_engineer", item.engineer)):
                pair = counts.setdefault(group, {}).setdefault(key, [0, 0])
                pair[0] += item.outcome.met
                pair[1] += 1
        figures.attainment[target] = counts
        figures.missed[target] = [
            [_iso(s.outcome.due), s.ticket.id, s.ticket.subject, s.ticket.priority,
             s.ticket.severity, s.ticket.plan, s.engineer, s.outcome.late.total_seconds(),
             s.outcome.open] for s in settled if not s.outcome.met]
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    for event_id, ticket_id, kind, new, detail, at in events:
        if not since <= at < until:
            continue
        if kind == "satisfaction":
            ticket = by_id.get(ticket_id)
            figures.answers.append([
                event_id, ticket_id, new, detail, at.isoformat(), ticket is not None,
                ticket.subject if ticket else None, ticket.assignee if ticket else None])
        elif kind == "escalated":
            figures.escalations += 1
        elif kind == "nudged":
            figures.nudges_sent += 1
        elif kind == "assignee" and new is not None:
            figures.assignments.setdefault(str(new), []).append(ticket_id)
        elif kind == "status":
            figures.auto_solved += 1
    return figures


def build_report(session: Session, calendar: BusinessCalendar, since: datetime,
                 until: datetime, now: datetime) -> dict[str, Any]:
    tickets = _load(session, calendar, since, until, now)
    figures = _figures(tickets, _events(session, since, until), {t.id: t for t in tickets},
                       since, until, now)
    return _report(figures, _backlog_of(tickets), calendar, since, until, now)


def _backlog_of(tickets: Iterable[_Ticket]) -> list[_Ticket]:
    return [t for t in tickets if t.status not in RESOLVED]


def _report(figures: Figures, backlog: list[_Ticket], calendar: BusinessCalendar,
            since: datetime, until: datetime, now: datetime,
            full: bool = True) -> dict[str, Any]:
    """The report of [since, until) from its figures and the tickets unresolved now.
    Not `full`: what the dashboard shows, without the lists of tickets (breaching, open
    breaches, comments) and the figures of each engineer."""
    if full and not figures.lists:
        raise ValueError("the full report needs figures with their lists of tickets")
    attainment = {target: _attainment(figures.attainment.get(target, {}),
                                      figures.missed.get(target, []) if full else None, now)
                  for target in TARGETS}
    sla = {
        "first_response": attainment["first_response"],
        "resolution": attainment["resolution"],
        "internal_first_response": attainment["internal_first_response"],
        # Targets missed in the range: the customer's promises, and our own target.
        "breaches": sum(_missed(attainment[t]) for t in CUSTOMER_TARGETS),
        "internal_breaches": _missed(attainment["internal_first_response"]),
        "escalations": figures.escalations,
    }
    if full:
        open_breaches = sorted(((ticket, found) for ticket in backlog
                                for found in ticket.outcomes if found.open),
                               key=lambda pair: (pair[1].due, pair[0].id))
        sla["open_breaches"] = [_open_breach(ticket, found, now)
                                for ticket, found in open_breaches]
    return {
        "since": since.isoformat(), "until": until.isoformat(), "now": now.isoformat(),
        "timezone": calendar.zone.key,
        "percentile_method": PERCENTILE_METHOD,
        "tickets": {"opened": figures.opened, "opened_by_staff": figures.opened_by_staff,
                    "solved": figures.solved},
        "first_response": _seconds_summary(row[0] for row in figures.first_responses),
        "resolution": _seconds_summary(figures.resolutions),
        "sla": sla,
        **({"engineers": _engineers(figures, backlog)} if full else {}),
        "backlog": _backlog(backlog, now),
        "followups": {"nudges_sent": figures.nudges_sent, "auto_solved": figures.auto_solved},
        "satisfaction": _satisfaction(figures.answers, full),
    }


def _missed(attainment: dict[str, Any]) -> int:
    return int(attainment["all"]["missed"])


def _seconds_summary(seconds: Iterable[float]) -> dict[str, Any]:
    return _summary_of_hours(s / 3600 for s in seconds)


def _attainment(counts: SettledCounts, missed: list[Row] | None,
                now: datetime) -> dict[str, Any]:
    met, total = counts.get(ALL, {}).get("", [0, 0])
    shares = {"all": _share(met, total),
              **{group: {key: _share(*pair) for key, pair in sorted(counts.get(group, {}).items())}
                 for group in GROUPS}}
    if missed is None:
        return shares
    breaching = []
    for due, ticket, subject, priority, severity, plan, engineer, late, still_open in sorted(
            missed, key=lambda row: (datetime.fromisoformat(row[0]), row[1])):
        # An open breach is late by as long as it has been due.
        late_by = now - datetime.fromisoformat(due) if still_open else timedelta(seconds=late)
        breaching.append({
            "ticket": ticket, "subject": subject, "priority": priority, "severity": severity,
            "plan": plan, "engineer": engineer, "due_at": due, "late_hours": _hours(late_by),
            "open": still_open,
        })
    return {**shares, "breaching_tickets": breaching}
def _open_breach(ticket: _Ticket, found: Outcome, now: datetime) -> dict[str, Any]:
    return {"ticket": ticket.id, "subject": ticket.subject, "target": found.target,
            "status": ticket.status, "priority": ticket.priority,
            "severity": ticket.severity, "plan": ticket.plan,
            "assignee": ticket.assignee, "due_at": _iso(found.due),
            "overdue_hours": _hours(now - found.due)}


def _ratings(ratings: list[int]) -> dict[str, Any]:
    if not ratings:
        return {"answers": 0, "satisfied": 0, "average": None, "satisfied_percent": None}
    satisfied = sum(1 for r in ratings if r >= SATISFIED_FROM)
    return {"answers": len(ratings), "satisfied": satisfied,
            "average": round(sum(ratings) / len(ratings), 2),
            "satisfied_percent": round(100 * satisfied / len(ratings), 1)}


def _latest_ratings(answers: list[Row]) -> dict[int, int]:
    """The rating of each ticket answered, the latest (a customer may change their
    mind)."""
    latest: dict[int, int] = {}
    for _, ticket_id, rating, *_ in answers:
        if rating is not None and rating.isdigit():
            latest[ticket_id] = int(rating)
    return latest


def _satisfaction(answers: list[Row], lists: bool = True) -> dict[str, Any]:
    ratings = _ratings(list(_latest_ratings(answers).values()))
    if not lists:
        return ratings
    comments = []
    for _, ticket_id, rating, comment, at, known, subject, assignee in answers:
        if comment and known:
            comments.append({
                "ticket": ticket_id, "subject": subject,
                "rating": int(rating) if rating and rating.isdigit() else None,
                "comment": comment, "at": at, "engineer": assignee,
            })
    return {**ratings, "comments": comments}


def _engineers(figures: Figures, backlog: list[_Ticket]) -> dict[str, Any]:
    responses: dict[str, list[float]] = defaultdict(list)
    for took, responder in figures.first_responses:
        responses[responder].append(took)
    assignee_of = {answer[1]: answer[7] for answer in figures.answers if answer[5]}
    ratings: dict[str, list[int]] = defaultdict(list)
    for ticket_id, rating in _latest_ratings(figures.answers).items():
        assignee = assignee_of.get(ticket_id)
        if assignee:
            ratings[assignee].append(rating)
    assigned = {name: set(ids) for name, ids in figures.assignments.items()}
    solved_by = figures.solved_by
    waiting = _count(t.assignee for t in backlog if t.assignee)
    names = set(assigned) | set(responses) | set(ratings) | set(solved_by) | set(waiting)
    names.discard(UNASSIGNED)
    return {name: {
        "assigned": len(assigned.get(name, ())),
        "first_responses": _seconds_summary(responses.get(name, [])),
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


def week_start_of(calendar: BusinessCalendar, moment: datetime) -> datetime:
    """The start of the week `moment` is in (Monday midnight, business time zone), in UTC."""
    day = moment.astimezone(calendar.zone).date()
    return datetime.combine(day - timedelta(days=day.weekday()), time(0),
                            tzinfo=calendar.zone).astimezone(UTC)


def week_starts(calendar: BusinessCalendar, now: datetime, weeks: int) -> list[datetime]:
    """The Mondays (midnight, business time zone) that start the last `weeks` weeks, the
    current one last, and the Monday after it."""
    today = now.astimezone(calendar.zone).date()
    monday = today - timedelta(days=today.weekday())
    return [datetime.combine(monday - timedelta(weeks=weeks - 1 - n), time(0),
                             tzinfo=calendar.zone)
            for n in range(weeks + 1)]


@dataclass(frozen=True)
class WeeksRead:
    figures: list[Figures]  # of each week
    tickets: list[list[int]]  # of each week: the tickets its figures read
    unresolved: list[_Ticket]  # now


def read_weeks(session: Session, calendar: BusinessCalendar, starts: list[datetime],
               now: datetime) -> WeeksRead:
    """The figures of each week between `starts` (each a week's start, the last one the
    end of the range), the tickets each week's figures read, and the tickets unresolved
    now. The tickets are read once for all of them."""
    since, until = starts[0], starts[-1]
    tickets = _load(session, calendar, since, until, now)
    by_id = {t.id: t for t in tickets}
    bounds = [start.astimezone(UTC) for start in starts]

    def week_of(moment: datetime | None) -> int | None:
        if moment is None or not bounds[0] <= moment < bounds[-1]:
            return None
        return bisect_right(bounds, moment) - 1

    # Each week gets the tickets and events with something in it, so that a week's
    # figures read a week's tickets, not the whole range's.
    touching: list[dict[int, _Ticket]] = [{} for _ in starts[1:]]
    for ticket in tickets:
        for moment in ticket.moments():
            week = week_of(moment)
            if week is not None:
                touching[week][ticket.id] = ticket
    events: list[list[EventRow]] = [[] for _ in starts[1:]]
    for event in _events(session, since, until):
        events[bisect_right(bounds, event[5]) - 1].append(event)
    figures = [_figures(touching[n].values(), events[n], by_id, start, end, now)
               for n, (start, end) in enumerate(itertools.pairwise(starts))]
    # A survey answer's figures carry its ticket's subject and engineer.
    read = [sorted(set(touching[n]) | {event[1] for event in events[n]
                                       if event[2] == "satisfaction"})
            for n in range(len(figures))]
    return WeeksRead(figures, read, _backlog_of(tickets))


def report_of_weeks(calendar: BusinessCalendar, starts: list[datetime], weeks: list[Figures],
                    backlog_before: int, backlog: list[_Ticket], now: datetime,
                    full: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report over the weeks between `starts` from each week's figures, and its
    figures week by week, with the backlog as each week ended (`backlog_before`: as
    the first began, `backlog_at`)."""
    summary = _report(merged(weeks), backlog, calendar, starts[0], starts[-1], now, full)
    trends = []
    for n, (start, week) in enumerate(zip(starts, weeks, strict=False)):
        backlog_count = backlog_after(backlog_before, weeks[:n + 1])
        ratings = _ratings(list(_latest_ratings(week.answers).values()))
        trends.append({
            "start": start.isoformat(),
            "opened": week.opened,
            "solved": week.solved,
            "first_response": _seconds_summary(row[0] for row in week.first_responses),
            "resolution": _seconds_summary(week.resolutions),
            "sla": {target: _share(*week.attainment.get(target, {}).get(ALL, {}).get("", [0, 0]))
                    for target in CUSTOMER_TARGETS},
            "backlog": backlog_count,
            "satisfaction": {key: ratings[key] for key in ("answers", "average")},
        })
    return summary, trends


def report_with_weeks(session: Session, calendar: BusinessCalendar, starts: list[datetime],
                      now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report over the weeks between `starts`, and its figures week by week, each by
    the report's definitions."""
    read = read_weeks(session, calendar, starts, now)
    return report_of_weeks(calendar, starts, read.figures, backlog_at(session, starts[0]),
                           read.unresolved, now)


def weekly_trends(session: Session, calendar: BusinessCalendar, starts: list[datetime],
                  now: datetime) -> list[dict[str, Any]]:
    return report_with_weeks(session, calendar, starts, now)[1]


def backlog_after(backlog_before: int, weeks: Iterable[Figures]) -> int:
    """The backlog as the last of these weeks ended, from the backlog as the first began."""
    return backlog_before + sum(week.opened_by_end - week.solved_by_end for week in weeks)


def backlog_at(session: Session, at: datetime) -> int:
    """Tickets opened before `at` and not solved before it (as the tickets stand now: a
    ticket reopened since counts from its last solve)."""
    opened = session.scalar(select(func.count(Ticket.id)).where(Ticket.created_at < at)) or 0
    solved = session.scalar(select(func.count(Ticket.id)).where(Ticket.solved_at < at)) or 0
    return opened - solved
