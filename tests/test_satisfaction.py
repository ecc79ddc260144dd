"""One short survey when a ticket is solved; the answer is recorded, never reopens, and
shows in the report."""

from __future__ import annotations

import itertools

import pytest

from maild.clock import FixedClock
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.runtime.sweeps import run_sweeps
from maild.tickets.report import build_report
from maild.tickets.surveys import read_rating
from tests.helpers import notice_to, show
from tests.mailbuilder import make_mail
from tests.test_followups import at

ANSWERS = itertools.count()


def solved_with_survey(app: App, clock: FixedClock, n: int = 0) -> tuple[int, str]:
    ticket_id = ingest(app.intake,
        make_mail(sender=f"c{n}@customer.example",
                  message_id=f"<q{n}@customer.example>"), "test").ticket_id
    ingest(app.intake, make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                                 message_id=f"<fix{n}@example.com>",
                                 in_reply_to=notice_to(app, ticket_id),
                                 body="#solve\nFixed in 2.4.1.\n"), "test")
    assert run_sweeps(app)["surveys_sent"] == 1
    survey = show(app, ticket_id)["messages"][-1]
    assert "How did we do?" in survey["body"]
    return ticket_id, survey["delivery"]["message_id"]


def answer(ticket_id: int, survey_id: str, body: str, n: int = 0) -> bytes:
    return make_mail(sender=f"c{n}@customer.example",
                     subject=f"Re: How did we do? [#{ticket_id}]",
                     message_id=f"<answer{next(ANSWERS)}@customer.example>",
                     in_reply_to=survey_id, body=body)


def test_a_rating_is_recorded_and_reopens_nothing(app: App, clock: FixedClock) -> None:
    ticket_id, survey_id = solved_with_survey(app, clock)
    ingest(app.intake, answer(ticket_id, survey_id, "bad - took three days to get an answer\n"),
           "test")

    ticket = show(app, ticket_id)
    assert ticket["status"] == "solved"
    assert (ticket["satisfaction"], ticket["satisfaction_comment"]) == (
        1, "took three days to get an answer")
    assert run_sweeps(app)["surveys_sent"] == 0  # once only


def test_a_reply_to_the_survey_that_is_no_rating_is_a_normal_reply(
    app: App, clock: FixedClock
) -> None:
    ticket_id, survey_id = solved_with_survey(app, clock)
    ingest(app.intake,
        answer(ticket_id, survey_id, "Actually it broke again this morning.\n"), "test")
    ticket = show(app, ticket_id)
    assert ticket["status"] == "open"
    assert ticket["satisfaction"] is None


@pytest.mark.parametrize(("text", "expected"), [
    ("good", (5, "")), ("Great!", (5, "")), ("5", (5, "")),
    ("4 quick and kind", (4, "quick and kind")),
    ("BAD.\nNobody read my logs.", (1, "Nobody read my logs.")), ("2: slow", (2, "slow")),
    ("Thanks, all good", None), ("7", None), ("", None),
])
def test_reading_a_rating(text: str, expected: tuple[int, str] | None) -> None:
    assert read_rating(text) == expected


def test_the_report_counts_the_latest_answer_per_ticket(app: App, clock: FixedClock) -> None:
    first, first_survey = solved_with_survey(app, clock, 1)
    second, second_survey = solved_with_survey(app, clock, 2)
    ingest(app.intake, answer(first, first_survey, "2", 1), "test")
    ingest(app.intake, answer(first, first_survey, "5 sorted it out after all", 1), "test")
    ingest(app.intake, answer(second, second_survey, "bad", 2), "test")

    with app.db.transaction() as session:
        report = build_report(session, app.calendar, at(11, 1, 0), at(12, 1, 0), clock.now())
    satisfaction = report["satisfaction"]
    assert {key: satisfaction[key] for key in ("answers", "average", "satisfied_percent")} == {
        "answers": 2, "average": 3.0, "satisfied_percent": 50.0}
    assert [(c["ticket"], c["rating"], c["comment"]) for c in satisfaction["comments"]] == [
        (first, 5, "sorted it out after all")]
