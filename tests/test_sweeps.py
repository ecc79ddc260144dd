"""Time-driven actions, travelling in time with the injected clock."""

from __future__ import annotations

from datetime import timedelta

from maild.clock import FixedClock
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.runtime.sweeps import close_solved_tickets
from tests.helpers import notice_to, show
from tests.mailbuilder import make_mail, staff_reply


def test_solved_ticket_closes_after_close_after_solved(app: App, clock: FixedClock) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake,
        staff_reply(ticket_id, "#solve\nFixed in 2.3.1.\n", "<s@example.com>",
                answering=notice_to(app, ticket_id)), "test")

    clock.advance(timedelta(hours=71, minutes=59))
    assert close_solved_tickets(app) == 0
    assert show(app, ticket_id)["status"] == "solved"

    clock.advance(timedelta(minutes=1))
    assert close_solved_tickets(app) == 1
    ticket = show(app, ticket_id)
    assert ticket["status"] == "closed"
    assert ticket["closed_at"] == clock.now().isoformat()
    assert close_solved_tickets(app) == 0


def test_reopened_ticket_is_not_closed(app: App, clock: FixedClock) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, staff_reply(ticket_id, "#solve\nFixed.\n", "<s@example.com>",
                answering=notice_to(app, ticket_id)), "test")
    ingest(app.intake,
        make_mail(message_id="<again@customer.example>", in_reply_to="<s@example.com>",
                  body="Not fixed for me.\n"), "test")

    clock.advance(timedelta(days=10))
    assert close_solved_tickets(app) == 0
    ticket = show(app, ticket_id)
    assert (ticket["status"], ticket["solved_at"]) == ("open", None)
