"""The report's closed weeks, kept in the database (report_weeks) so that a range of weeks
is read from its weeks' figures instead of from every ticket of the range.

A closed week's figures (report.py `Figures`) depend only on the tickets opened before
it ended: every figure of a week is about something that happened in it to a ticket that
existed by then. Every change to a ticket goes through the service that records its
event and sets its `updated_at` (service.py `record`), so a kept week is worked out again
when a ticket opened before the week's end changed since the week was; the week under way
is always worked out afresh. Weeks are kept under a `definition`: the report's version,
the business calendar and the customers' plans (a plan changes without a ticket event);
weeks kept under another definition are not read, and are dropped at the next write.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maild.db.database import Database
from maild.db.models import Customer, ReportWeek, Ticket
from maild.errors import TemporaryError
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.report import Figures, ReportTicket, backlog_at, read_weeks

log = logging.getLogger(__name__)

# Raise it when a definition in report.py changes: the weeks kept are then worked out anew.
REPORT_VERSION = 1
# A change carries the time its transaction took from the clock and may commit a little
# later, after a week was worked out from a snapshot without it: a kept week is checked
# against the changes stamped from this long before it was worked out.
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
        self._kept: dict[datetime, tuple[datetime, Figures]] = {}  # start: built at, figures
        self._checked_at: datetime | None = None  # changes before this were looked at

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
                self._definition, self._kept, self._checked_at = current, {}, None
            self._read_kept(session, current, closed)
            changed = self._changed(session, now)
            missing = [start for start in closed if start not in self._kept or start in changed]
            built: dict[datetime, Figures] = {}
            for run in _runs(starts, missing):
                figures, _ = read_weeks(session, self.calendar, run, now)
                built.update((start, week.figures_only())
                             for start, week in zip(run, figures, strict=False))
            under_way, unresolved = read_weeks(session, self.calendar, starts[len(closed):], now)
            before = backlog_at(session, starts[0])
        if built:
            self._keep(current, built, now)
        return KeptWeeks(now, [self._kept[start][1] for start in closed] + under_way, before,
                         unresolved)

    def _read_kept(self, session: Session, current: str, closed: list[datetime]) -> None:
        wanted = [start for start in closed if start not in self._kept]
        if not wanted:
            return
        for week_start, built_at, figures in session.execute(
                select(ReportWeek.week_start, ReportWeek.built_at, ReportWeek.figures)
                .where(ReportWeek.definition == current, ReportWeek.week_start.in_(wanted))):
            self._kept[week_start] = (built_at, Figures.from_json(figures))
            # Weeks read from the database may be older than the last look at changes.
            if self._checked_at is not None:
                self._checked_at = min(self._checked_at, built_at)

    def _changed(self, session: Session, now: datetime) -> set[datetime]:
        """The kept weeks a ticket changed since they were worked out may have changed."""
        if not self._kept:
            self._checked_at = now
            return set()
        since = self._checked_at or min(built_at for built_at, _ in self._kept.values())
        changes = sorted((created, updated) for created, updated in session.execute(
            select(Ticket.created_at, Ticket.updated_at)
            .where(Ticket.updated_at >= since - CHANGES_SETTLE)))
        self._checked_at = now
        # The latest change among the tickets opened before each moment.
        opened = [created for created, _ in changes]
        latest = list(itertools.accumulate((updated for _, updated in changes), max))
        stale = set()
        for start, (built_at, _) in self._kept.items():
            before_end = bisect_left(opened, self._week_end(start))
            if before_end and latest[before_end - 1] >= built_at - CHANGES_SETTLE:
                stale.add(start)
        return stale

    def _week_end(self, start: datetime) -> datetime:
        """The next Monday's midnight in the business time zone (weeks with a change of
        daylight saving time are an hour longer or shorter)."""
        local = start.astimezone(self.calendar.zone).date() + timedelta(days=7)
        return datetime.combine(local, time(0), tzinfo=self.calendar.zone).astimezone(UTC)

    def _keep(self, current: str, built: dict[datetime, Figures], now: datetime) -> None:
        for start, figures in built.items():
            self._kept[start] = (now, figures)
        try:
            with self.db.transaction() as session:
                session.execute(delete(ReportWeek).where(
                    (ReportWeek.definition != current) | ReportWeek.week_start.in_(list(built))))
                session.add_all(ReportWeek(definition=current, week_start=start, built_at=now,
                                           figures=figures.as_json())
                                for start, figures in built.items())
        except IntegrityError:  # another process kept the same weeks at the same moment
            log.info("report: %d weeks worked out, kept by another process", len(built))
        except TemporaryError as exc:  # kept in this process; in the database next time
            log.warning("report: %d weeks worked out, not kept: %s", len(built), exc)
        else:
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
