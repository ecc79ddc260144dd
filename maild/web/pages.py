"""The dashboard's pages: each reads the desk through the ticket domain (the queue in
`tickets next` order, a ticket as `tickets show` has it, the report of `maild report`)
in a read-only transaction, and renders it with Jinja2, autoescaped: mail is hostile,
and a subject full of markup is shown as the text it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import func, select

from maild.db.models import Ticket
from maild.errors import TemporaryError
from maild.tickets.desk import open_by_status, sla_breaches
from maild.tickets.durations import spoken_span
from maild.tickets.report import backlog_after, report_of_weeks, week_starts
from maild.tickets.report_rollup import KeptWeeks, WeekRollup
from maild.tickets.triage import due, first_of, queue, queue_length, tier
from maild.tickets.views import WholeTexts, get_ticket, thread
from maild.web.charts import Chart, Series, bar_chart
from maild.web.sources import WebSources

log = logging.getLogger(__name__)

PAGES = Path(str(files("maild.web") / "pages"))
PAGE_SIZE = 50
REPORT_WEEKS = 8
MAX_REPORT_WEEKS = 52
# The report's closed weeks are kept in the database (report_rollup.py); the week under
# way and the unresolved tickets are read when the web part starts, and again beside the
# page views once a minute old (the page says when). Every range is put together from
# those, so a page view never waits for the tickets of its weeks to be read.
REPORT_FRESH_SECONDS = 60.0


@dataclass(frozen=True)
class QueueRow:
    rank: int
    ticket: Ticket
    tier: str
    target: str  # which promise the due time is: first response or resolution
    due: datetime | None
    overdue: bool
    countdown: str


def countdown(moment: datetime | None, now: datetime) -> str:
    """How long until a due time ("in 3 h 20 min"), or how long past it."""
    if moment is None:
        return "no promise"
    if moment >= now:
        return f"in {spoken_span(moment - now)}"
    return f"overdue {spoken_span(now - moment)}"


class Pages:
    def __init__(self, app: WebSources,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self._monotonic = monotonic  # the age of built reports, real time
        self.env = Environment(loader=FileSystemLoader(str(PAGES)), autoescape=True,
                               undefined=StrictUndefined)
        self.env.filters["when"] = self._when
        self.env.filters["span"] = spoken_span
        self.env.globals["support_name"] = app.config.support.name
        self._reports: dict[int, tuple[float, str]] = {}  # weeks: (monotonic time, page)
        self._rollup = WeekRollup(app.db, app.calendar)
        self._guard = threading.Lock()  # _reports, _desk and _refreshing
        self._desk: KeptWeeks | None = None
        self._refreshing: threading.Thread | None = None
        self._whole_texts = WholeTexts(app.raw_store, app.mail_policy)
        for name in self.env.list_templates(extensions=["j2"]):  # compiled before any view
            self.env.get_template(name)

    def _when(self, value: datetime | None, fmt: str = "%a %d %b %Y, %H:%M") -> str:
        if value is None:
            return "-"
        return value.astimezone(self.app.calendar.zone).strftime(fmt)

    def _render(self, name: str, as_of: datetime | None = None, **context: Any) -> str:
        """The page, saying when its figures are from: `as_of`, or now."""
        return self.env.get_template(name).render(now=as_of or self.app.clock.now(),
                                                  **context)

    def login(self, next_path: str, failed: bool = False) -> str:
        return self._render("login.html.j2", next_path=next_path, failed=failed)

    def not_found(self, what: str) -> str:
        return self._render("not_found.html.j2", what=what)

    def queue(self, page: int) -> str:
        now = self.app.clock.now()
        offset = (page - 1) * PAGE_SIZE
        with self.app.db.reading() as session:
            waiting = queue_length(session)
            tickets = queue(session, PAGE_SIZE, offset)
            statuses = open_by_status(session)
            breaches = sla_breaches(session, now)
        first = first_of(tickets[:2], self.app.calendar.zone, now) if page == 1 else None
        rows = []
        for n, ticket in enumerate(tickets, start=offset + 1):
            when = due(ticket)
            rows.append(QueueRow(
                rank=n, ticket=ticket, tier=tier(ticket),
                target="first response" if ticket.first_response_at is None else "resolution",
                due=when, overdue=when is not None and when < now,
                countdown=countdown(when, now),
            ))
        pages = max(1, -(-waiting // PAGE_SIZE))
        return self._render("queue.html.j2", rows=rows, waiting=waiting, page=page,
                            pages=pages, first=first, statuses=statuses, breaches=breaches)

    def ticket(self, ticket_id: int) -> str:
        """Raises NotFound for a ticket that does not exist."""
        now = self.app.clock.now()
        with self.app.db.reading() as session:
            ticket = get_ticket(session, ticket_id)
            entries = thread(session, ticket, self._whole_texts)
        return self._render("ticket.html.j2", ticket=ticket, entries=entries,
                            tier=tier(ticket), due=due(ticket),
                            countdown=countdown(due(ticket), now)
                            if ticket.status in ("new", "open") else None)

    def prepare(self) -> None:
        """What the web part does as it starts, beside the first views: read the report's
        figures, and show the newest ticket once, so that the first view of a ticket
        finds its queries compiled and the database's pages read."""
        self.refresh_report()
        threading.Thread(target=self._show_newest_ticket, name="web-warm", daemon=True).start()

    def _show_newest_ticket(self) -> None:
        try:
            with self.app.db.reading() as session:
                newest = session.scalar(select(func.max(Ticket.id)))
            if newest is not None:
                self.ticket(newest)
        except Exception:  # a view will do it instead, a few milliseconds slower
            log.exception("web: the newest ticket could not be shown at start")

    def report(self, weeks: int) -> str:
        with self._guard:
            built = self._reports.get(weeks)
            desk = self._desk
        if built is not None:
            if self._monotonic() - built[0] >= REPORT_FRESH_SECONDS:
                self.refresh_report()
            return built[1]
        if desk is None:  # the figures are being read for the first time: wait for them
            self.refresh_report().join()
            with self._guard:
                desk = self._desk
            if desk is None:
                raise TemporaryError("the report's figures could not be read")
        return self._compose_and_keep(weeks, desk)

    def refresh_report(self) -> threading.Thread:
        """Read the report's weeks again beside the page views, unless it is being done."""
        with self._guard:
            if self._refreshing is None:
                self._refreshing = threading.Thread(target=self._refresh, name="report",
                                                    daemon=True)
                self._refreshing.start()
            return self._refreshing

    def _refresh(self) -> None:
        try:
            now = self.app.clock.now()
            starts = week_starts(self.app.calendar, now, MAX_REPORT_WEEKS)
            desk = self._rollup.weeks(starts, now)
            with self._guard:
                self._desk = desk
                shown = list(self._reports)
            for weeks in shown:  # the ranges viewed so far, ready with the new figures
                self._compose_and_keep(weeks, desk)
        except Exception:  # the page keeps showing the report built before, with its time
            log.exception("the report's figures could not be read")
        finally:
            with self._guard:
                self._refreshing = None

    def _compose_and_keep(self, weeks: int, desk: KeptWeeks) -> str:
        page = self._compose(weeks, desk)
        with self._guard:
            self._reports[weeks] = (self._monotonic(), page)
        return page

    def _compose(self, weeks: int, desk: KeptWeeks) -> str:
        """The last `weeks` of the weeks read: the figures without the lists of tickets
        (the command line's `maild report` has those)."""
        calendar = self.app.calendar
        starts = week_starts(calendar, desk.now, weeks)
        earlier, shown = desk.weeks[:-weeks], desk.weeks[-weeks:]
        summary, trends = report_of_weeks(
            calendar, starts, shown, backlog_after(desk.backlog_before, earlier),
            desk.unresolved, desk.now, full=False)
        return self._render("report.html.j2", as_of=desk.now, summary=summary, weeks=weeks,
                            charts=_charts(trends, calendar.zone),
                            last_day=starts[-1] - timedelta(days=1))


def _charts(trends: list[dict[str, Any]], zone: Any) -> list[Chart]:
    labels = [datetime.fromisoformat(w["start"]).astimezone(zone).strftime("%d %b")
              for w in trends]

    def each(*path: str) -> list[float | None]:
        found: list[float | None] = []
        for week in trends:
            value: Any = week
            for key in path:
                value = value[key]
            found.append(value)
        return found

    return [
        bar_chart("Tickets opened and solved", "", labels,
                  [Series("opened", each("opened")), Series("solved", each("solved"))]),
        bar_chart("First response, business hours", " h", labels,
                  [Series("median", each("first_response", "median_hours")),
                   Series("p90", each("first_response", "p90_hours"))]),
        bar_chart("Resolution, business hours", " h", labels,
                  [Series("median", each("resolution", "median_hours")),
                   Series("p90", each("resolution", "p90_hours"))]),
        bar_chart("SLA met", "%", labels,
                  [Series("first response", each("sla", "first_response", "percent")),
                   Series("resolution", each("sla", "resolution", "percent"))], top=100),
        bar_chart("Backlog as each week ended", "", labels, [Series("backlog", each("backlog"))]),
        bar_chart("Satisfaction, average of 1 to 5", "", labels,
                  [Series("average", each("satisfaction", "average"))], top=5),
    ]
