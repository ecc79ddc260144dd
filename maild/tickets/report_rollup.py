"""The report's closed weeks, kept in the database (report_weeks) so that a range of weeks
is read from its weeks' figures instead of from every ticket of the range.

A closed week's figures (report.py `Figures`) read the tickets with a moment in it
(opened, solved, a target settled: `moments`) and those answered in it; its events never
change, as events are only ever added, at the time they happen. Every change to a ticket
goes through the service that records its event and sets its `updated_at` (service.py
`record`), but one: the SLA sweep plans an unresolved ticket's due times afresh when an
alert of it comes due, and new policies, business hours or a new plan move them with
nothing happening to the ticket; it notes that in `sla_replanned_at` (sla.py `replan`).
So a kept week is worked out again when a ticket changed, either way, since the week was
last known right, and that ticket was read by the week's figures (kept with them), or has
a moment or a survey answer in the week now. The week under way is always worked out
afresh. Weeks are kept under a `definition`: the report's version, the business calendar
and the customers' plans (a plan changes without a ticket event); weeks kept under another
definition are not read, and are dropped at the next write. The SLA policies are not part
of it: the figures read them only through the tickets' due times, which new policies move
one ticket at a time, as the sweep comes to each (perhaps days after a report was read
under the new policies), and each such move is found as a changed ticket.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maild.db.database import Database
from maild.db.models import Customer, Event, ReportWeek, Ticket
from maild.errors import TemporaryError
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.report import (
    Figures,
    ReportTicket,
    backlog_at,
    read_weeks,
    tickets_as_of,
    week_start_of,
)

log = logging.getLogger(__name__)

# Raise it when a definition in report.py changes: the weeks kept are then worked out anew.
REPORT_VERSION = 1
# A change carries the time its transaction took from the clock and may commit a little
# later, after a week was found right in a snapshot without it: a kept week is checked
# against the changes stamped from this long before it was last found right.
CHANGES_SETTLE = timedelta(minutes=5)


def definition(session: Session, calendar: BusinessCalendar) -> str:
    plans = session.execute(select(Customer.id, Customer.plan).order_by(Customer.id)).all()
    described = json.dumps({
        "version": REPORT_VERSION, "zone": calendar.zone.key,
        "weekdays": sorted(calendar.weekdays), "start": str(calendar.start),
        "end": str(calendar.end), "holidays": sorted(str(day) for day in calendar.holidays),
        "plans": [[customer_id, plan] for customer_id, plan in plans],
    })
    return hashlib.sha256(described.encode()).hexdigest()


@dataclass(frozen=True)
class KeptWeeks:
    """A range's weeks as of `now`, and what the report reads besides."""

    now: datetime
    weeks: list[Figures]
    backlog_before: int  # as the first week began
    unresolved: list[ReportTicket]  # now


@dataclass(frozen=True)
class _Kept:
    checked_at: datetime  # the figures were right then: worked out, or found untouched
    figures: Figures
    tickets: frozenset[int]  # the tickets the figures read


class WeekRollup:
    """Each week's figures: closed weeks from those kept (worked out again when missing
    or changed, and kept), the week under way worked out now. What the dashboard shows
    only: the weeks are kept without their lists of tickets (`Figures.figures_only`).
    Safe to call from several threads; one works at a time."""

    def __init__(self, db: Database, calendar: BusinessCalendar) -> None:
        self.db = db
        self.calendar = calendar
        self._lock = threading.Lock()
        self._definition: str | None = None
        self._kept: dict[datetime, _Kept] = {}  # by the week's start, in UTC

    def weeks(self, starts: list[datetime], now: datetime) -> KeptWeeks:
        """The figures of each week between `starts` (week starts, the last one the end of
        the range), and what else the report reads as of now."""
        with self._lock:
            return self._weeks([start.astimezone(UTC) for start in starts], now)

    def _weeks(self, starts: list[datetime], now: datetime) -> KeptWeeks:
        closed = [start for start, end in itertools.pairwise(starts) if end <= now]
        with self.db.reading() as session:
            current = definition(session, self.calendar)
            if current != self._definition:
                self._definition, self._kept = current, {}
            self._read_kept(session, current, closed)
            changed = self._changed(session, now)
            missing = [start for start in closed if start not in self._kept or start in changed]
            built: dict[datetime, _Kept] = {}
            for run in _runs(starts, missing):
                read = read_weeks(session, self.calendar, run, now)
                built.update((start, _Kept(now, figures.figures_only(), frozenset(tickets)))
                             for start, figures, tickets
                             in zip(run, read.figures, read.tickets, strict=False))
            under_way = read_weeks(session, self.calendar, starts[len(closed):], now)
            before = backlog_at(session, starts[0])
        untouched = [start for start in closed if start not in built]
        self._kept = {**{start: _Kept(now, self._kept[start].figures, self._kept[start].tickets)
                         for start in untouched}, **built}
        self._keep(current, built, untouched, now)
        return KeptWeeks(now, [self._kept[start].figures for start in closed]
                         + under_way.figures, before, under_way.unresolved)

    def _read_kept(self, session: Session, current: str, closed: list[datetime]) -> None:
        wanted = [start for start in closed if start not in self._kept]
        if not wanted:
            return
        for week_start, checked_at, figures, tickets in session.execute(
                select(ReportWeek.week_start, ReportWeek.checked_at, ReportWeek.figures,
                       ReportWeek.tickets)
                .where(ReportWeek.definition == current, ReportWeek.week_start.in_(wanted))):
            self._kept[week_start] = _Kept(checked_at, Figures.from_json(figures),
                                           frozenset(tickets))

    def _changed(self, session: Session, now: datetime) -> set[datetime]:
        """The kept weeks whose figures a ticket changed since may have changed."""
        if not self._kept:
            return set()
        since = min(kept.checked_at for kept in self._kept.values()) - CHANGES_SETTLE
        changes = [(ticket_id, created_at, max(updated_at, replanned_at or updated_at))
                   for ticket_id, created_at, updated_at, replanned_at in session.execute(
                       select(Ticket.id, Ticket.created_at, Ticket.updated_at,
                              Ticket.sla_replanned_at)
                       .where(or_(Ticket.updated_at >= since,
                                  Ticket.sla_replanned_at >= since)))]
        stale: set[datetime] = set()
        # The tickets that changed since each week was found right and existed by its
        # end, and are not among those its figures read: have they a moment in it now?
        unread: dict[int, set[datetime]] = defaultdict(set)
        for start, kept in self._kept.items():
            end = self._week_end(start)
            for ticket_id, created_at, changed_at in changes:
                if created_at < end and changed_at >= kept.checked_at - CHANGES_SETTLE:
                    if ticket_id in kept.tickets:
                        stale.add(start)
                        break
                    unread[ticket_id].add(start)
        for ticket in tickets_as_of(session, self.calendar, sorted(unread), now):
            for moment in ticket.moments():
                if moment is not None and (week := week_start_of(self.calendar, moment)) in \
                        unread[ticket.id]:
                    stale.add(week)
        # A survey answer is counted in its week, as are the tickets answered in it, but
        # it is none of a ticket's moments: one committed after its week was kept (the
        # ticket long solved, so not read) is found here.
        for ticket_id, answered_at in self._answers(session, sorted(unread), since):
            if (week := week_start_of(self.calendar, answered_at)) in unread[ticket_id]:
                stale.add(week)
        return stale

    @staticmethod
    def _answers(session: Session, ticket_ids: list[int], since: datetime
                 ) -> list[tuple[int, datetime]]:
        """The survey answers to these tickets recorded at or after `since`."""
        found: list[tuple[int, datetime]] = []
        for start in range(0, len(ticket_ids), 500):  # by the ticket index, a chunk at a time
            found += [(ticket_id, at) for ticket_id, at in session.execute(
                select(Event.ticket_id, Event.at).where(
                    Event.ticket_id.in_(ticket_ids[start:start + 500]),
                    Event.kind == "satisfaction", Event.at >= since))]
        return found

    def _week_end(self, start: datetime) -> datetime:
        """The next Monday's midnight in the business time zone (weeks with a change of
        daylight saving time are an hour longer or shorter)."""
        local = start.astimezone(self.calendar.zone).date() + timedelta(days=7)
        return datetime.combine(local, time(0), tzinfo=self.calendar.zone).astimezone(UTC)

    def _keep(self, current: str, built: dict[datetime, _Kept], untouched: list[datetime],
              now: datetime) -> None:
        try:
            with self.db.transaction() as session:
                if untouched:
                    session.execute(update(ReportWeek).where(
                        ReportWeek.definition == current, ReportWeek.week_start.in_(untouched),
                    ).values(checked_at=now))
                if built:
                    session.execute(delete(ReportWeek).where(
                        (ReportWeek.definition != current)
                        | ReportWeek.week_start.in_(list(built))))
                    session.add_all(ReportWeek(
                        definition=current, week_start=start, checked_at=now,
                        figures=kept.figures.as_json(), tickets=sorted(kept.tickets))
                        for start, kept in built.items())
        except IntegrityError:  # another process kept the same weeks at the same moment
            log.info("report: %d weeks worked out, kept by another process", len(built))
        except TemporaryError as exc:  # kept in this process; in the database next time
            log.warning("report: %d weeks worked out, not kept: %s", len(built), exc)
        else:
            if built:
                log.info("report: %d weeks worked out and kept", len(built))


def _runs(starts: list[datetime], wanted: list[datetime]) -> list[list[datetime]]:
    """The wanted weeks of `starts` in runs of consecutive weeks, each run's starts
    followed by its end, to be read in one go."""
    runs: list[list[datetime]] = []
    wanted_set = set(wanted)
    for start, end in itertools.pairwise(starts):
        if start not in wanted_set:
            continue
        if runs and runs[-1][-1] == start:
            runs[-1].append(end)
        else:
            runs.append([start, end])
    return runs
