"""One ticket's failing step stops nothing else: it is rolled back alone, told on the
ticket, held back with growing waits, listed for the operator, and done once fixed.

The failures are real: an operator's template that uses `customer.name`, which fails for
a ticket whose requester belongs to no known organisation, and a ticket row edited by
hand to a priority maild does not know. Time travels with the injected clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from maild.clock import FixedClock
from maild.db.models import Ticket
from maild.intake.pipeline import ingest
from maild.outbound.mails import Mails
from maild.runtime.app import App
from maild.runtime.sweeps import close_solved_tickets, run_sweeps
from maild.tickets.customers import add_customer
from maild.tickets.failed_steps import retry_delay
from tests.helpers import maild, notice_to, show, statements
from tests.mailbuilder import make_mail
from tests.test_followups import at

# Fails for a ticket with no organisation: `customer` is none there.
NAMING_THE_CUSTOMER = "Subject: {subject}\n\nHello {{{{ customer.name }}}} team,\n{body}\n"
FIXED = ("Subject: {subject}\n\nHello{{% if customer %}} {{{{ customer.name }}}} team"
         "{{% endif %}},\n{body}\n")


def override(directory: Path, name: str, shape: str, subject: str, body: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.txt.j2").write_text(shape.format(subject=subject, body=body))


def desk_with_templates(app: App, app_with: Callable[..., App], directory: Path) -> App:
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Acme", domains=["acme.example"])
    return app_with(templates=app.config.templates.model_copy(update={"dir": directory}))


def new_ticket(desk: App, sender: str, n: int) -> int:
    return ingest(desk.intake, make_mail(sender=sender, message_id=f"<q{n}@x.example>"),
                  "test").ticket_id


def engineer_answers(desk: App, ticket_id: int, body: str = "Try the new driver.\n") -> None:
    ingest(desk.intake, make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                                  message_id=f"<r{ticket_id}.{len(body)}@example.com>",
                                  in_reply_to=notice_to(desk, ticket_id), body=body), "test")


def events(desk: App, ticket_id: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in show(desk, ticket_id)["events"] if e["kind"] == kind]


def customer_mails(desk: App, ticket_id: int) -> list[str]:
    """The bodies of the automatic mails to the customer after the acknowledgment."""
    return [str(m["body"]) for m in show(desk, ticket_id)["messages"]
            if m["kind"] == "system"][1:]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def failing(config_file: Path, now: datetime, *args: str) -> Any:
    result = maild(config_file, "tickets", "list", "--failing", *args, now=now.isoformat())
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if "--json" in args else result.output


def test_the_waits_grow_to_an_hour() -> None:
    assert [retry_delay(n) for n in range(1, 7)] == [
        timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)]


def test_a_nudge_that_fails_for_one_ticket_holds_back_that_ticket_alone(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
    config_file: Path,
) -> None:
    templates = tmp_path / "templates"
    override(templates, "nudge", NAMING_THE_CUSTOMER, "Still there?", "are you still there?")
    desk = desk_with_templates(app, app_with, templates)
    # The one that fails is the oldest: first in the sweep's order.
    alone = new_ticket(desk, "bob@customer.example", 1)
    others = [new_ticket(desk, f"{name}@acme.example", n) for n, name in ((2, "ann"), (3, "cy"))]
    for ticket_id in (alone, *others):
        engineer_answers(desk, ticket_id)

    failed_at = at(11, 25, 10)  # two business days after Monday 10:00
    clock.set(failed_at)
    assert run_sweeps(desk)["nudged"] == 2
    for ticket_id in others:
        assert customer_mails(desk, ticket_id) == ["Hello Acme team,\nare you still there?"]
    assert show(desk, alone)["nudges_sent"] == 0
    assert customer_mails(desk, alone) == []
    [event] = events(desk, alone, "step_failed")
    assert event["new"] == "followup"
    # The template's file and line, and what is wrong there.
    assert event["detail"].startswith(
        f"{templates / 'nudge.txt.j2'} line 3: 'None' has no attribute 'name' (attempt 1;")

    [listed] = failing(config_file, failed_at, "--json")
    assert {k: listed[k] for k in ("id", "step", "attempts", "retry_at")} == {
        "id": alone, "step": "followup", "attempts": 1,
        "retry_at": iso(failed_at + timedelta(minutes=5))}
    assert listed["last_error"] == f"{templates / 'nudge.txt.j2'} line 3: 'None' has no " \
        "attribute 'name'"
    text = failing(config_file, failed_at)
    assert f"#{alone:<5} pending  followup  failed 1 time since 2026-11-25 10:00 PST" in text
    assert "next try 2026-11-25 10:05 PST" in text

    # Not every minute: held back for five minutes, then ten.
    for minutes in (1, 2, 4):
        clock.set(failed_at + timedelta(minutes=minutes))
        assert run_sweeps(desk)["nudged"] == 0
    assert len(events(desk, alone, "step_failed")) == 1
    clock.set(failed_at + timedelta(minutes=5))
    run_sweeps(desk)
    assert len(events(desk, alone, "step_failed")) == 2
    [listed] = failing(config_file, clock.now(), "--json")
    assert (listed["attempts"], listed["retry_at"]) == (
        2, iso(failed_at + timedelta(minutes=15)))
    clock.set(failed_at + timedelta(minutes=14))
    run_sweeps(desk)
    assert len(events(desk, alone, "step_failed")) == 2

    # The operator fixes the template: the next try sends the nudge, and the row goes.
    override(templates, "nudge", FIXED, "Still there?", "are you still there?")
    clock.set(failed_at + timedelta(minutes=15))
    assert run_sweeps(desk)["nudged"] == 1
    assert customer_mails(desk, alone) == ["Hello,\nare you still there?"]
    [recovered] = events(desk, alone, "step_recovered")
    assert recovered["detail"] == "followup done after 2 failed attempts"
    assert failing(config_file, clock.now(), "--json") == []
    assert failing(config_file, clock.now()) == "no scheduled step is failing\n"
    # Its next nudge is planned from when this one went out.
    assert show(desk, alone)["followup_due_at"] == iso(at(11, 27, 10, 15))


def test_a_survey_that_fails_for_one_ticket_is_held_back_and_sent_once_fixed(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
) -> None:
    templates = tmp_path / "templates"
    override(templates, "survey", NAMING_THE_CUSTOMER, "How did we do?", "1 to 5?")
    desk = desk_with_templates(app, app_with, templates)
    alone = new_ticket(desk, "bob@customer.example", 1)
    other = new_ticket(desk, "ann@acme.example", 2)
    for ticket_id in (alone, other):
        engineer_answers(desk, ticket_id, "#solve\nFixed in 2.4.1.\n")

    assert run_sweeps(desk)["surveys_sent"] == 1
    assert customer_mails(desk, other) == ["Hello Acme team,\n1 to 5?"]
    assert show(desk, alone)["status"] == "solved"
    assert len(events(desk, alone, "step_failed")) == 1
    assert events(desk, alone, "survey_sent") == []

    clock.advance(timedelta(minutes=4))
    assert run_sweeps(desk)["surveys_sent"] == 0
    override(templates, "survey", FIXED, "How did we do?", "1 to 5?")
    clock.advance(timedelta(minutes=1))
    assert run_sweeps(desk)["surveys_sent"] == 1
    assert customer_mails(desk, alone) == ["Hello,\n1 to 5?"]
    assert len(events(desk, alone, "survey_sent")) == 1


def test_an_sla_alert_that_fails_for_one_ticket_stops_no_other_alert(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
) -> None:
    templates = tmp_path / "templates"
    override(templates, "sla_alert", NAMING_THE_CUSTOMER, "SLA", "a due time is near.")
    desk = desk_with_templates(app, app_with, templates)
    alone = new_ticket(desk, "bob@customer.example", 1)
    other = new_ticket(desk, "ann@acme.example", 2)

    clock.set(at(11, 23, 10, 45))  # our own first-response hour is nearly over
    assert run_sweeps(desk)["sla_alerts"] == 1
    assert [e["kind"] for e in events(desk, other, "sla_warning")] == ["sla_warning"]
    assert events(desk, alone, "sla_warning") == []
    assert len(events(desk, alone, "step_failed")) == 1

    override(templates, "sla_alert", FIXED, "SLA", "a due time is near.")
    clock.set(at(11, 23, 10, 50))
    assert run_sweeps(desk)["sla_alerts"] == 1
    assert len(events(desk, alone, "sla_warning")) == 1
    assert len(events(desk, alone, "step_recovered")) == 1


@pytest.mark.parametrize("batch", [1, 500])
def test_a_ticket_that_cannot_be_closed_does_not_stop_those_solved_after_it(
    app: App, clock: FixedClock, batch: int
) -> None:
    solved = []
    for n in range(3):
        ticket_id = new_ticket(app, f"c{n}@customer.example", n)
        engineer_answers(app, ticket_id, "#solve\nFixed.\n")
        solved.append(ticket_id)
        clock.advance(timedelta(hours=1))
    oldest = solved[0]
    # A row edited by hand to a priority maild does not know: its SLA clocks, which
    # closing stops, cannot be worked out.
    with app.db.transaction() as session:
        session.execute(update(Ticket).where(Ticket.id == oldest).values(priority="p7"))

    clock.advance(timedelta(hours=72))
    assert close_solved_tickets(app, batch=batch) == 2
    assert [show(app, t)["status"] for t in solved] == ["solved", "closed", "closed"]
    [event] = events(app, oldest, "step_failed")
    assert (event["new"], event["detail"].split(" (")[0]) == ("close", "KeyError: 'p7'")
    assert close_solved_tickets(app, batch=batch) == 0

    with app.db.transaction() as session:
        session.execute(update(Ticket).where(Ticket.id == oldest).values(priority="p2"))
    clock.advance(timedelta(minutes=5))
    assert close_solved_tickets(app, batch=batch) == 1
    assert show(app, oldest)["status"] == "closed"


def test_a_held_back_nudge_is_forgotten_when_the_customer_answers(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
    config_file: Path,
) -> None:
    templates = tmp_path / "templates"
    override(templates, "nudge", NAMING_THE_CUSTOMER, "Still there?", "are you still there?")
    desk = desk_with_templates(app, app_with, templates)
    ticket_id = new_ticket(desk, "bob@customer.example", 1)
    engineer_answers(desk, ticket_id)
    clock.set(at(11, 25, 10))
    run_sweeps(desk)
    assert [f["id"] for f in failing(config_file, clock.now(), "--json")] == [ticket_id]

    clock.set(at(11, 25, 10, 2))
    ingest(desk.intake, make_mail(sender="bob@customer.example",
                                  subject=f"Re: [#{ticket_id}] Printer on fire",
                                  message_id="<answer@customer.example>",
                                  in_reply_to="<q1@x.example>", body="Works now.\n"), "test")
    run_sweeps(desk)
    assert show(desk, ticket_id)["status"] == "open"
    assert failing(config_file, clock.now(), "--json") == []


def test_a_failing_digest_is_held_back_too_and_goes_out_once_fixed(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text(
        "Subject: The week {{ week }}\n\n{{ report.no_such_figure }}\n")
    desk = app_with(templates=app.config.templates.model_copy(update={"dir": templates}),
                    digest=app.config.digest.model_copy(update={"to": ["lead@example.com"]}))

    def digest_failures() -> float:
        return desk.metrics.registry.get_sample_value(
            "maild_sweep_failures_total", {"sweep": "digest"}) or 0

    clock.set(at(11, 30, 8))  # Monday 08:00: the digest is due
    assert run_sweeps(desk)["digests_sent"] == 0
    assert digest_failures() == 1
    for minutes in (1, 4):
        clock.set(at(11, 30, 8, minutes))
        run_sweeps(desk)
    assert digest_failures() == 1  # not every minute
    clock.set(at(11, 30, 8, 5))
    run_sweeps(desk)
    assert digest_failures() == 2

    (templates / "digest.txt.j2").unlink()
    clock.set(at(11, 30, 8, 15))
    assert run_sweeps(desk)["digests_sent"] == 1
    assert digest_failures() == 2


def test_a_failing_digest_stays_held_back_across_restarts(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
    config_file: Path,
) -> None:
    # A daemon that restarts (supervisord after a crash, say) must not try the failing
    # digest at every start: the wait is in the database, not in the scheduler's memory.
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text(
        "Subject: The week {{ week }}\n\n{{ report.no_such_figure }}\n")
    sections = {"templates": app.config.templates.model_copy(update={"dir": templates}),
                "digest": app.config.digest.model_copy(update={"to": ["lead@example.com"]})}

    def started_at(moment: datetime) -> App:
        clock.set(moment)
        return app_with(**sections)

    def tried(desk: App) -> float:
        run_sweeps(desk)
        return desk.metrics.registry.get_sample_value(
            "maild_sweep_failures_total", {"sweep": "digest"}) or 0

    def listed() -> list[tuple[Any, ...]]:
        return [(f["id"], f["step"], f["attempts"], f["retry_at"])
                for f in failing(config_file, clock.now(), "--json")]

    assert tried(started_at(at(11, 30, 8))) == 1  # Monday 08:00: due, and it fails
    assert listed() == [(None, "digest", 1, iso(at(11, 30, 8, 5)))]
    assert tried(started_at(at(11, 30, 8, 1))) == 0  # restarted: still held back
    assert tried(started_at(at(11, 30, 8, 4))) == 0
    assert tried(started_at(at(11, 30, 8, 5))) == 1  # the wait is over: tried once more
    assert listed() == [(None, "digest", 2, iso(at(11, 30, 8, 15)))]
    text = failing(config_file, clock.now())
    assert "digest    failed 2 times since 2026-11-30 08:00 PST, next try 2026-11-30 08:15" \
        in text
    assert "digest.txt.j2 line 3:" in text

    (templates / "digest.txt.j2").unlink()
    assert tried(started_at(at(11, 30, 8, 10))) == 0  # mended, but still waiting
    desk = started_at(at(11, 30, 8, 15))
    assert run_sweeps(desk)["digests_sent"] == 1
    assert listed() == []


def test_one_failing_alert_costs_its_batch_a_few_savepoints_not_one_a_ticket(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
) -> None:
    templates = tmp_path / "templates"
    override(templates, "sla_alert", NAMING_THE_CUSTOMER, "SLA", "a due time is near.")
    desk = desk_with_templates(app, app_with, templates)
    healthy = [new_ticket(desk, f"ann{n}@acme.example", n) for n in range(12)]
    alone = new_ticket(desk, "bob@customer.example", 100)
    healthy += [new_ticket(desk, f"ann{n}@acme.example", n) for n in range(12, 24)]
    clock.set(at(11, 23, 10, 45))  # our own first-response hour is nearly over
    with statements(desk.db.engine) as given:
        assert desk.sla_alerts.send() == len(healthy)
    savepoints = [statement for statement, _ in given if statement.startswith("SAVEPOINT")]

    # The batch, the tickets before the failing one again (if any: the order is by due
    # time), the tickets after it; not one for each of the 25.
    assert len(savepoints) <= 3
    assert all(len(events(desk, t, "sla_warning")) == 1 for t in healthy)
    assert events(desk, alone, "sla_warning") == []
    assert len(events(desk, alone, "step_failed")) == 1


def test_alerts_that_all_fail_are_each_tried_once(
    app: App, app_with: Callable[..., App], clock: FixedClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    templates = tmp_path / "templates"
    override(templates, "sla_alert", NAMING_THE_CUSTOMER, "SLA", "a due time is near.")
    desk = desk_with_templates(app, app_with, templates)
    failing = [new_ticket(desk, f"bob{n}@customer.example", n) for n in range(6)]
    tried: list[int] = []
    to_staff = Mails.to_staff

    def counted(self: Mails, session: Any, ticket: Ticket, *args: Any, **kwargs: Any) -> Any:
        tried.append(ticket.id)
        return to_staff(self, session, ticket, *args, **kwargs)

    monkeypatch.setattr(Mails, "to_staff", counted)
    clock.set(at(11, 23, 10, 45))
    assert desk.sla_alerts.send() == 0

    assert sorted(tried) == sorted(failing)
    assert all(len(events(desk, t, "step_failed")) == 1 for t in failing)
