"""Time-driven actions, travelling in time with the injected clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from maild.clock import FixedClock
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.runtime.sweeps import close_solved_tickets, run_sweeps
from tests.helpers import notice_to, show, sqlite_plan, statements
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


def _sweep_plans(app: App, *fragments: str) -> dict[str, list[str]]:
    """SQLite's plan for each statement of one run of the sweeps holding a fragment."""
    with statements(app.db.engine) as given:
        run_sweeps(app)
    found: dict[str, tuple[str, Any]] = {}
    for statement, parameters in given:
        for fragment in fragments:
            if fragment in " ".join(statement.split()):
                found.setdefault(fragment, (statement, parameters))
    return {fragment: sqlite_plan(app.db.engine, statement, parameters)
            for fragment, (statement, parameters) in found.items()}


def test_the_minutes_close_and_survey_sweeps_find_solved_tickets_by_index(
    app: App, clock: FixedClock
) -> None:
    """Run every minute, they read the solved tickets by index: in the order they were
    solved (the close sweep stops at the first not yet due) and those without their
    survey. Through the status alone they went through every ticket solved in the last
    days, each minute, and sorted them."""
    if app.db.is_postgresql:
        pytest.skip("SQLite's plan is fixed by its indexes; PostgreSQL's by statistics")
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, staff_reply(ticket_id, "#solve\nFixed.\n", "<s@example.com>",
                                   answering=notice_to(app, ticket_id)), "test")
    closing = "FROM tickets WHERE tickets.status = ? AND tickets.solved_at IS NOT NULL"
    surveying = "FROM tickets WHERE tickets.status = ? AND tickets.survey_sent_at IS NULL"
    plans = _sweep_plans(app, closing, surveying)
    assert plans.keys() == {closing, surveying}
    [close] = [step for step in plans[closing] if step.startswith("SEARCH tickets")]
    assert "ix_tickets_status_solved_at (status=? AND solved_at>?)" in close, close
    assert not any("TEMP B-TREE" in step for step in plans[closing]), plans[closing]
    [survey] = [step for step in plans[surveying] if step.startswith("SEARCH tickets")]
    assert "ix_tickets_status_survey_sent_at (status=? AND survey_sent_at=?)" in survey, survey
