"""Customers who stop answering: nudged after 2 and 4 business days, solved after 6,
closed 72 hours later. Stories told with the injected clock, never by sleeping."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from maild.clock import FixedClock
from maild.intake.pipeline import ingest
from maild.runtime.app import App, build_app
from maild.runtime.sweeps import close_solved_tickets, run_sweeps
from tests.helpers import at_once, notice_to, show
from tests.mailbuilder import make_mail, staff_reply

LA = ZoneInfo("America/Los_Angeles")


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=LA)


def system_mails(app: App, ticket_id: int) -> list[dict[str, object]]:
    return [m for m in show(app, ticket_id)["messages"] if m["kind"] == "system"][1:]  # no ack


def friday_evening_ticket(app: App, clock: FixedClock) -> int:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    clock.set(at(11, 27, 16))  # Friday 16:00, an hour before the weekend
    ingest(app.intake, staff_reply(ticket_id, "Please try the new driver.\n",
                answering=notice_to(app, ticket_id)), "test")
    assert show(app, ticket_id)["status"] == "pending"
    return ticket_id


def test_a_customer_who_never_answers_is_nudged_twice_then_solved_then_closed(
    app: App, clock: FixedClock
) -> None:
    ticket_id = friday_evening_ticket(app, clock)
    run_sweeps(app)
    # Tuesday 16:00 in Los Angeles: Friday's last hour, Monday, and Tuesday until 16:00.
    assert show(app, ticket_id)["followup_due_at"] == "2026-12-02T00:00:00+00:00"

    clock.set(at(12, 1, 15, 59))  # Tuesday: 2 business days are not yet over
    assert run_sweeps(app)["nudged"] == 0
    clock.set(at(12, 1, 16))
    assert run_sweeps(app)["nudged"] == 1
    first = system_mails(app, ticket_id)
    assert len(first) == 1
    assert "have not heard back from you yet" in str(first[0]["body"])

    clock.set(at(12, 3, 16))  # Thursday: 4 business days
    assert run_sweeps(app)["nudged"] == 1
    second = system_mails(app, ticket_id)[-1]
    assert "checking once more" in str(second["body"])
    assert "by Monday 07 December, 16:00 PST" in str(second["body"])

    clock.set(at(12, 7, 16))  # Monday: 6 business days
    done = run_sweeps(app)
    assert (done["auto_solved"], done["surveys_sent"]) == (1, 0)
    ticket = show(app, ticket_id)
    assert (ticket["status"], ticket["nudges_sent"]) == ("solved", 2)
    # One mail says it is solved and asks how we did: not a notice and a survey at once.
    mails = system_mails(app, ticket_id)
    assert len(mails) == 3
    assert "marked ticket" in str(mails[-1]["body"])
    assert "how did we do?" in str(mails[-1]["body"])
    clock.set(at(12, 7, 16, 1))
    assert run_sweeps(app)["surveys_sent"] == 0

    clock.set(at(12, 10, 16))  # 72 hours later
    assert run_sweeps(app)["close_solved_tickets"] == 1
    assert show(app, ticket_id)["status"] == "closed"


def test_nothing_is_sent_twice_across_a_restart(app: App, clock: FixedClock) -> None:
    ticket_id = friday_evening_ticket(app, clock)
    run_sweeps(app)
    clock.set(at(12, 1, 16, 30))
    assert run_sweeps(app)["nudged"] == 1

    restarted = build_app(app.config, clock)
    try:
        assert run_sweeps(restarted) == {"nudged": 0, "auto_solved": 0, "postponed": 0,
                                         "surveys_sent": 0, "close_solved_tickets": 0,
                                         "sla_alerts": 0, "digests_sent": 0}
    finally:
        restarted.close()
    assert len(system_mails(app, ticket_id)) == 1


def test_a_customer_who_answers_after_the_first_nudge_is_not_nudged_again(
    app: App, clock: FixedClock
) -> None:
    ticket_id = friday_evening_ticket(app, clock)
    run_sweeps(app)
    clock.set(at(12, 1, 16))
    run_sweeps(app)
    clock.set(at(12, 2, 9))
    ingest(app.intake,
        make_mail(subject=f"Re: [#{ticket_id}] Printer on fire",
                  message_id="<answer@customer.example>",
                  in_reply_to="<first@customer.example>", body="Works now!\n"), "test")

    for day in (3, 7, 14):
        clock.set(at(12, day, 17))
        done = run_sweeps(app)
        assert (done["nudged"], done["auto_solved"], done["surveys_sent"]) == (0, 0, 0)
    ticket = show(app, ticket_id)
    assert (ticket["status"], ticket["nudges_sent"]) == ("open", 1)
    assert ticket["followup_due_at"] is None


def test_a_ticket_on_hold_is_never_nudged(app: App, clock: FixedClock) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, staff_reply(ticket_id, "#hold\nWaiting on the vendor.\n",
                answering=notice_to(app, ticket_id)), "test")
    assert show(app, ticket_id)["status"] == "on_hold"
    for day in (1, 3, 7, 30):
        clock.set(at(12, day, 12))
        assert run_sweeps(app)["nudged"] == 0


def test_a_reply_to_an_auto_solved_ticket_reopens_it(app: App, clock: FixedClock) -> None:
    ticket_id = friday_evening_ticket(app, clock)
    for moment in (at(11, 27, 16, 1), at(12, 1, 16), at(12, 3, 16), at(12, 7, 16)):
        clock.set(moment)
        run_sweeps(app)
    assert show(app, ticket_id)["status"] == "solved"

    clock.set(at(12, 8, 10))
    ingest(app.intake,
        make_mail(subject=f"Re: [#{ticket_id}] Printer on fire",
                  message_id="<late@customer.example>",
                  in_reply_to="<first@customer.example>", body="Sorry, still broken.\n"),
        "test")
    ticket = show(app, ticket_id)
    assert ticket["status"] == "open"
    assert ticket["solved_at"] is None


def test_two_schedulers_at_once_send_every_nudge_exactly_once(
    app: App, clock: FixedClock
) -> None:
    tickets = []
    for n in range(40):
        clock.set(at(11, 23, 10))
        ticket_id = ingest(app.intake,
            make_mail(sender=f"c{n}@customer.example",
                      message_id=f"<m{n}@customer.example>"), "test").ticket_id
        clock.set(at(11, 27, 16))
        ingest(app.intake,
            make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                      message_id=f"<d{n}@example.com>",
                      in_reply_to=notice_to(app, ticket_id), body="Try this.\n"), "test")
        tickets.append(ticket_id)
    run_sweeps(app)
    clock.set(at(12, 1, 16))

    results = at_once(app, lambda scheduler: scheduler.followups.send(batch=5))
    assert sum(r["nudged"] for r in results) == 40
    assert all(len(system_mails(app, t)) == 1 for t in tickets)


def test_every_due_solved_ticket_is_closed_in_one_sweep_not_500_a_minute(
    app: App, clock: FixedClock
) -> None:
    for n in range(7):
        ticket_id = ingest(app.intake, make_mail(sender=f"s{n}@customer.example",
                                                 message_id=f"<s{n}@customer.example>"),
                           "test").ticket_id
        ingest(app.intake,
            make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                      message_id=f"<sd{n}@example.com>",
                      in_reply_to=notice_to(app, ticket_id), body="#solve\nDone.\n"),
            "test")
    clock.set(at(12, 10, 12))
    assert close_solved_tickets(app, batch=3) == 7


def test_a_nudge_across_the_spring_dst_change_keeps_the_wall_clock_time(
    app: App, clock: FixedClock
) -> None:
    clock.set(datetime(2027, 3, 12, 10, tzinfo=LA))
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    clock.set(datetime(2027, 3, 12, 16, tzinfo=LA))  # Friday 16:00 PST; Sunday 14th is 23 h
    ingest(app.intake, staff_reply(ticket_id, "Try this.\n",
                answering=notice_to(app, ticket_id)), "test")
    run_sweeps(app)
    # Tuesday 16:00, now PDT (UTC-7): the same wall-clock time as without the change.
    assert show(app, ticket_id)["followup_due_at"] == "2027-03-16T23:00:00+00:00"


def test_a_holiday_is_not_a_business_day_for_nudges(app: App, clock: FixedClock) -> None:
    hours = app.config.business_hours.model_copy(update={"holidays": ["2026-12-25"]})
    festive = build_app(app.config.model_copy(update={"business_hours": hours}), clock)
    try:
        clock.set(at(12, 23, 10))
        ticket_id = ingest(festive.intake, make_mail(), "test").ticket_id
        clock.set(at(12, 23, 16))  # Wednesday 16:00
        ingest(festive.intake, staff_reply(ticket_id, "Try this.\n",
                answering=notice_to(festive, ticket_id)), "test")
        run_sweeps(festive)
        # Wednesday 1 h, Thursday 8 h, Christmas Friday none, Monday 7 h: Monday 16:00.
        assert show(festive, ticket_id)["followup_due_at"] == "2026-12-29T00:00:00+00:00"
        clock.set(at(12, 25, 16))
        assert run_sweeps(festive)["nudged"] == 0
        clock.set(at(12, 28, 16))
        assert run_sweeps(festive)["nudged"] == 1
    finally:
        festive.close()


def test_after_two_weeks_down_the_customer_gets_one_step_and_the_rest_keep_their_spacing(
    app: App, clock: FixedClock
) -> None:
    ticket_id = friday_evening_ticket(app, clock)
    run_sweeps(app)  # nudge 1 planned for Tuesday 1 December, 16:00
    clock.set(at(12, 1, 16))
    assert run_sweeps(app)["nudged"] == 1

    # Down from Tuesday evening until Tuesday two weeks later: nudge 2 (Thursday 3rd) and
    # the auto-solve (Monday 7th) were both missed. Three runs minutes apart: one mail.
    for minutes in (0, 3, 6):
        clock.set(at(12, 15, 10, minutes))
        run_sweeps(app)
    mails = system_mails(app, ticket_id)
    assert len(mails) == 2
    assert "checking once more" in str(mails[-1]["body"])
    # Solved two business days after this nudge went out, as the schedule spaces them,
    # and the mail promises just that: a time to come, not one already gone.
    promised = at(12, 17, 10)
    assert "by Thursday 17 December, 10:00 PST" in str(mails[-1]["body"])
    ticket = show(app, ticket_id)
    assert (ticket["status"], ticket["nudges_sent"]) == ("pending", 2)
    assert ticket["followup_due_at"] == promised.astimezone(UTC).isoformat()
    assert promised > clock.now()

    clock.set(at(12, 17, 9, 59))
    assert run_sweeps(app)["auto_solved"] == 0
    clock.set(promised)
    assert run_sweeps(app)["auto_solved"] == 1
    assert len(system_mails(app, ticket_id)) == 3


def test_after_downtime_the_first_nudge_alone_goes_out_and_the_next_is_planned_from_it(
    app: App, clock: FixedClock
) -> None:
    ticket_id = friday_evening_ticket(app, clock)
    run_sweeps(app)
    for minutes in (0, 2, 4, 6):  # two weeks late: every step is past its first plan
        clock.set(at(12, 15, 10, minutes))
        run_sweeps(app)
    assert len(system_mails(app, ticket_id)) == 1
    ticket = show(app, ticket_id)
    assert ticket["nudges_sent"] == 1
    assert ticket["followup_due_at"] == at(12, 17, 10).astimezone(UTC).isoformat()

    clock.set(at(12, 17, 10))
    run_sweeps(app)
    # Thursday 10:00 + 2 business days: Thursday 7 h, Friday 8 h, Monday 1 h.
    assert "by Monday 21 December, 10:00 PST" in str(system_mails(app, ticket_id)[-1]["body"])
