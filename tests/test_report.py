"""`maild report`: times in business hours, SLA attainment per plan, backlog, follow-ups."""

from __future__ import annotations

import json
from pathlib import Path

from maild.clock import FixedClock
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.runtime.sweeps import run_sweeps
from maild.tickets.customers import add_customer
from maild.tickets.report import build_report
from maild.tickets.service import set_priority
from maild.tickets.views import get_ticket
from tests.helpers import maild
from tests.mailbuilder import make_mail, staff_reply
from tests.test_followups import at


def story(app: App, clock: FixedClock) -> None:
    """Monday 10:00: three tickets. One of severity 1 (24 hours to a first response) is
    answered a day and two hours later; one of severity 2 (a business week) two hours
    later; the third never. Both answered are solved by the customers' silence."""
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Managed Co", domains=["managed.example"], plan="managed")
    quick = ingest(app.intake, make_mail(sender="a@managed.example", message_id="<a@x>"),
                   "test").ticket_id
    slow = ingest(app.intake, make_mail(sender="b@managed.example", message_id="<b@x>"),
                  "test").ticket_id
    ingest(app.intake, make_mail(sender="c@other.example", message_id="<c@x>"), "test")
    with app.db.transaction() as session:
        set_priority(get_ticket(session, slow), "p1", actor="test", now=clock.now(),
                     clocks=app.sla)
    clock.set(at(11, 23, 12))  # two business hours later
    ingest(app.intake, make_mail(sender="dan@example.com", subject=f"Re: [#{quick}]",
                                 message_id="<r1@example.com>", in_reply_to="<a@x>",
                                 body="Try this.\n"), "test")
    clock.set(at(11, 24, 12))  # a day and two hours later: past the 24-hour first response
    ingest(app.intake, make_mail(sender="dan@example.com", subject=f"Re: [#{slow}]",
                                 message_id="<r2@example.com>", in_reply_to="<b@x>",
                                 body="Sorry for the wait.\n"), "test")
    for day in (24, 30):
        clock.set(at(11, day, 12, 30))
        run_sweeps(app)
    for month, day in ((12, 2), (12, 3), (12, 7), (12, 10)):
        clock.set(at(month, day, 13))
        run_sweeps(app)


def test_the_report_over_a_story(app: App, clock: FixedClock) -> None:
    story(app, clock)
    with app.db.transaction() as session:
        report = build_report(session, app.calendar, at(11, 23, 0), at(12, 31, 0),
                              clock.now())

    assert report["tickets"] == {"opened": 3, "solved": 2}
    # 2 business hours, and 10 (Monday 10:00-17:00, Tuesday 9:00-12:00).
    assert report["first_response"] == {"count": 2, "median_hours": 6.0, "p90_hours": 10.0}
    sla = report["sla"]["first_response"]
    assert sla["all"] == {"met": 1, "total": 3, "percent": 33.3}  # the third came due unanswered
    assert sla["by_plan"]["managed"] == {"met": 1, "total": 2, "percent": 50.0}
    assert sla["by_severity"] == {"1": {"met": 0, "total": 1, "percent": 0.0},
                                  "2": {"met": 1, "total": 2, "percent": 50.0}}
    # Severity 1's 72 hours to resolve: stopped when it went pending, 26 hours in.
    assert report["sla"]["resolution"]["by_severity"] == {
        "1": {"met": 1, "total": 1, "percent": 100.0}}
    # Our own hour, 09:00-24:00 UTC: 10:00 in Los Angeles is 18:00 UTC, due 19:00 UTC.
    assert report["sla"]["internal_first_response"]["all"] == {
        "met": 0, "total": 3, "percent": 0.0}
    assert report["backlog"]["total"] == 1
    assert report["backlog"]["by_status"]["new"] == 1
    assert report["backlog"]["by_age"]["over 3 weeks"] == 0
    assert report["followups"] == {"nudges_sent": 4, "auto_solved": 2}


def test_report_on_the_command_line(config_file: Path) -> None:
    maild(config_file, "ingest", "-", stdin=make_mail())
    maild(config_file, "ingest", "-", stdin=staff_reply(1, "Done.\n"))

    text = maild(config_file, "report")
    assert text.exit_code == 0, text.output
    assert "  tickets opened 1, solved 0" in text.output
    assert "  first response: median 0.0 h, p90 0.0 h (business hours, 1 tickets)" in text.output
    data = json.loads(maild(config_file, "report", "--since", "2026-11-01", "--json").output)
    assert data["since"] == "2026-11-01T00:00:00-07:00"
    assert data["tickets"]["opened"] == 1
    assert data["until"] == "2026-11-24T00:00:00-08:00"  # through today, in Los Angeles
