"""What the dashboard and /metrics read of the desk, on a real database: the tickets not
resolved, the promises broken, the outbox's backlog, the report week by week, and the
read-only transactions they are read in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from maild.clock import FixedClock
from maild.errors import MaildError
from maild.intake.pipeline import ingest
from maild.outbound.outbox import backlog
from maild.runtime.app import App
from maild.runtime.daemon import web_sources
from maild.tickets.desk import open_by_status, sla_breaches
from maild.tickets.report import report_with_weeks, week_starts
from maild.tickets.service import set_priority, set_status
from maild.tickets.views import get_ticket
from maild.web.auth import Authenticator, safe_next
from maild.web.charts import Series, bar_chart
from maild.web.pages import Pages
from tests.mailbuilder import make_mail
from tests.test_followups import at
from tests.test_report import story


def _new(app: App, n: int, priority: str = "p2") -> int:
    ticket_id = ingest(app.intake, make_mail(sender=f"c{n}@customer.example",
                                      message_id=f"<{n}@customer.example>"), "test").ticket_id
    assert ticket_id is not None
    if priority != "p2":
        with app.db.transaction() as session:
            set_priority(get_ticket(session, ticket_id), priority, actor="test",
                         now=app.clock.now(), clocks=app.sla)
    return ticket_id


def test_broken_promises_are_counted_while_the_clock_runs(app: App, clock: FixedClock) -> None:
    clock.set(at(11, 23, 10))  # Monday 10:00
    _new(app, 1, "p1")  # unanswered  # severity 1: 24 hours to answer, 72 to resolve
    answered = _new(app, 2, "p1")
    paused_late = _new(app, 3, "p1")
    paused_early = _new(app, 4, "p1")
    solved = _new(app, 5, "p1")
    _new(app, 6)  # severity 2: a business week to answer
    with app.db.transaction() as session:
        for number in (answered, paused_late, paused_early, solved):
            ticket = get_ticket(session, number)
            ticket.first_response_at = clock.now()
            app.sla.refresh(ticket)
        set_status(get_ticket(session, paused_early), "pending", actor="test", now=clock.now(),
                   clocks=app.sla)
    clock.set(at(11, 27, 10))  # four days on: every 72 hours have passed
    with app.db.transaction() as session:
        set_status(get_ticket(session, paused_late), "pending", actor="test", now=clock.now(),
                   clocks=app.sla)
        set_status(get_ticket(session, solved), "solved", actor="test", now=clock.now(),
                   clocks=app.sla)
    with app.db.reading() as session:
        assert sla_breaches(session, clock.now()) == {
            # No answer in 24 hours; no resolution in 72 (paused only after they passed).
            "first_response": 1, "resolution": 3}
        assert open_by_status(session) == {"new": 3, "open": 0, "pending": 2, "on_hold": 0}


def test_the_outbox_backlog_and_its_oldest_mail(app: App, clock: FixedClock) -> None:
    with app.db.reading() as session:
        assert backlog(session).queued == 0 and backlog(session).oldest is None
    _new(app, 1)  # its acknowledgment and the staff's notification wait to be sent
    queued_at = clock.now()
    clock.advance(timedelta(minutes=5))
    _new(app, 2)
    with app.db.reading() as session:
        waiting = backlog(session)
    assert (waiting.queued, waiting.oldest, waiting.failed) == (4, queued_at, 0)


def test_the_report_week_by_week_agrees_with_the_report(app: App, clock: FixedClock) -> None:
    story(app, clock)  # three tickets on Monday 23 November; two solved by silence later
    now = clock.now()  # Thursday 10 December
    starts = week_starts(app.calendar, now, 4)
    assert [s.date().isoformat() for s in starts] == [
        "2026-11-16", "2026-11-23", "2026-11-30", "2026-12-07", "2026-12-14"]
    with app.db.reading() as session:
        summary, weeks = report_with_weeks(session, app.calendar, starts, now)
    assert [w["opened"] for w in weeks] == [0, 3, 0, 0]
    assert sum(w["solved"] for w in weeks) == summary["tickets"]["solved"] == 2
    assert weeks[1]["first_response"] == summary["first_response"]
    # A target counts in the week it was settled (met, or missed when its due time passed),
    # so the weeks' shares add up to the whole range's.
    for target in ("first_response", "resolution"):
        shares = [w["sla"][target] for w in weeks]
        whole = summary["sla"][target]["all"]
        assert sum(s["total"] for s in shares) == whole["total"]
        assert sum(s["met"] for s in shares) == whole["met"]
    assert weeks[0]["first_response"]["count"] == 0
    solved = [w["solved"] for w in weeks]
    assert [w["backlog"] for w in weeks] == [
        0, 3 - solved[1], 3 - sum(solved[:3]), 3 - sum(solved)]
    assert weeks[-1]["backlog"] == summary["backlog"]["total"] == 1


def test_reading_transactions_cannot_write(app: App) -> None:
    with pytest.raises(MaildError if not app.db.is_postgresql else Exception):
        with app.db.reading() as session:
            session.execute(text("DELETE FROM tickets"))


def test_the_dashboard_session_is_signed_with_the_token_and_ends() -> None:
    auth = Authenticator("the-token-0123456789")
    now = at(11, 23, 10)
    cookie = auth.new_session(now)
    assert "the-token" not in cookie
    assert auth.session_valid(cookie, now + timedelta(hours=11))
    assert not auth.session_valid(cookie, now + timedelta(hours=13))
    assert not Authenticator("another-token-0123456").session_valid(cookie, now)
    expires, signature = cookie.split(".")
    assert not auth.session_valid(f"{int(expires) + 3600}.{signature}", now)
    assert not auth.session_valid("", now) and not auth.session_valid("x.y", now)
    assert auth.bearer_matches("Bearer the-token-0123456789")
    assert auth.bearer_matches("bearer  the-token-0123456789")
    assert not auth.bearer_matches("Basic the-token-0123456789")
    assert not auth.bearer_matches("Bearer the-token-012345678")
    assert [safe_next(p) for p in ("/tickets/1", "//evil.example", "https://x", None,
                                   "/\\evil")] == ["/tickets/1", "/", "/", "/", "/"]


def test_a_bar_chart_scales_its_bars_to_a_round_axis() -> None:
    chart = bar_chart("Opened", "", ["w1", "w2", "w3"],
                      [Series("opened", [4, None, 7]), Series("solved", [8, 2, 0])])
    assert [t.text for t in chart.ticks] == ["0", "2.5", "5", "7.5", "10"]
    heights = {b.title: b.height for b in chart.bars}
    assert "w2: opened" not in " ".join(heights)  # nothing to show that week: no bar
    assert heights["w3: opened 7"] == pytest.approx(0.7 * heights["w1: solved 8"] / 0.8, 0.01)
    assert heights["w3: solved 0"] == 0
    percent = bar_chart("SLA", "%", ["w1"], [Series("met", [50])], top=100)
    assert percent.ticks[-1].text == "100" and percent.bars[0].title == "w1: met 50%"


def test_a_report_is_shown_at_once_and_rebuilt_beside_the_views(app: App) -> None:
    """Nobody waits for a report they have seen: one over a minute old is shown once more
    while the next is built in the background."""
    seconds = [1000.0]
    pages = Pages(web_sources(app), monotonic=lambda: seconds[0])
    pages.refresh_report().join()  # as the web part does when it starts
    _new(app, 1)
    first = pages.report(8)
    assert "<b>0</b> opened" in first  # built before the ticket came
    _new(app, 2)
    seconds[0] += 30
    assert pages.report(8) == first  # built half a minute ago: shown as it is
    seconds[0] += 31
    assert pages.report(8) == first  # over a minute: shown, and built again beside it
    pages.refresh_report().join()
    rebuilt = pages.report(8)
    assert "<b>2</b> opened" in rebuilt
    assert pages.report(8) == rebuilt
