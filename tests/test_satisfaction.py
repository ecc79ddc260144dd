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


def test_an_auto_solved_ticket_is_asked_in_the_notice_and_the_answer_is_recorded(
    app: App, clock: FixedClock
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                                 message_id="<try@example.com>",
                                 in_reply_to=notice_to(app, ticket_id),
                                 body="Please try the new driver.\n"), "test")
    run_sweeps(app)
    for day in (25, 27):  # the two nudges
        clock.set(at(11, day, 10))
        run_sweeps(app)
    clock.set(at(12, 1, 10))  # six business days: solved for want of an answer
    done = run_sweeps(app)
    assert (done["auto_solved"], done["surveys_sent"]) == (1, 0)
    clock.set(at(12, 1, 10, 5))
    assert run_sweeps(app)["surveys_sent"] == 0

    shown = show(app, ticket_id)
    notice = shown["messages"][-1]
    assert sum(m["kind"] == "system" for m in shown["messages"]) == 4  # ack, 2 nudges, this
    assert "marked ticket" in notice["body"] and "how did we do?" in notice["body"]
    assert '"good" or "bad", or a number from 1 (poor) to 5 (excellent)' in notice["body"]

    ingest(app.intake, make_mail(subject=f"Re: [#{ticket_id}] Printer on fire",
                                 message_id="<rated@customer.example>",
                                 in_reply_to=notice["delivery"]["message_id"],
                                 body="4 fine, it works now\n"), "test")
    ticket = show(app, ticket_id)
    assert ticket["status"] == "solved"
    assert (ticket["satisfaction"], ticket["satisfaction_comment"]) == (4, "fine, it works now")
