"""`maild tickets next`: priority, then tier, then SLA due time, then age — and why."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from maild.clock import FixedClock
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.tickets.customers import add_customer
from maild.tickets.service import set_priority, set_status
from maild.tickets.triage import pick_next
from maild.tickets.views import get_ticket
from tests.helpers import maild
from tests.mailbuilder import make_mail


def open_ticket(app: App, sender: str, n: int) -> int:
    return ingest(app.intake, make_mail(sender=sender, subject=f"Problem {n}",
                                        message_id=f"<p{n}@x.example>"), "test").ticket_id


def change(app: App, ticket_id: int, *, priority: str | None = None,
           status: str | None = None) -> None:
    with app.db.transaction() as session:
        ticket = get_ticket(session, ticket_id)
        if priority:
            set_priority(ticket, priority, actor="test", now=app.clock.now(), clocks=app.sla)
        if status:
            set_status(ticket, status, actor="test", now=app.clock.now(), clocks=app.sla)


def first(app: App) -> tuple[int, str]:
    with app.db.transaction() as session:
        pick = pick_next(session, app.calendar.zone, app.clock.now())
        assert pick is not None
        return pick.ticket.id, pick.why


def test_priority_then_tier_then_due_time_then_age(app: App, clock: FixedClock) -> None:
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Big Corp", domains=["big.example"], tier="enterprise")
    oldest = open_ticket(app, "ann@small.example", 1)
    clock.advance(timedelta(minutes=5))
    enterprise = open_ticket(app, "bob@big.example", 2)
    clock.advance(timedelta(minutes=5))
    urgent = open_ticket(app, "cid@small.example", 3)

    change(app, urgent, priority="p1")
    ticket_id, why = first(app)
    assert ticket_id == urgent
    assert why.endswith(f"higher priority than #{enterprise} (p2)")

    change(app, urgent, status="pending")  # waiting on the customer: not ours to work
    ticket_id, why = first(app)
    assert ticket_id == enterprise
    assert why.startswith("p2, enterprise tier, first response due Mon 30 Nov 10:05 PST")
    assert why.endswith(f"higher tier than #{oldest} (free)")

    change(app, enterprise, status="on_hold")
    later = open_ticket(app, "dee@small.example", 4)
    ticket_id, why = first(app)
    assert ticket_id == oldest
    assert why.endswith(f"due sooner than #{later} (Mon 30 Nov 10:10 PST)")


def test_overdue_is_said_and_nothing_waiting_is_said_too(config_file: Path) -> None:
    assert maild(config_file, "tickets", "next").output == "nothing is waiting on us\n"

    maild(config_file, "ingest", "-", stdin=make_mail())
    late = "2026-12-01T10:00:00-08:00"
    shown = maild(config_file, "tickets", "next", now=late)
    assert shown.output.splitlines() == [
        "#1 Printer on fire (ann@customer.example)",
        "  first because: p2, free tier, first response due Mon 30 Nov 10:00 PST (overdue), "
        "waiting since Mon 23 Nov 10:00 PST; the only ticket waiting on us",
    ]
    as_json = maild(config_file, "tickets", "next", "--json", now=late)
    assert json.loads(as_json.output)["id"] == 1


def test_next_for_one_engineer_skips_what_is_someone_elses(config_file: Path) -> None:
    for n in (1, 2, 3):
        maild(config_file, "ingest", "-", stdin=make_mail(
            sender=f"c{n}@x.example", subject=f"Problem {n}", message_id=f"<p{n}@x.example>"))
    maild(config_file, "tickets", "set", "1", "--priority", "p1", "--assignee", "dan@example.com")
    maild(config_file, "tickets", "set", "2", "--assignee", "eve@example.com")

    assert maild(config_file, "tickets", "next").output.startswith("#1 Problem 1")
    for_eve = maild(config_file, "tickets", "next", "--for", "Eve@Example.com")
    assert for_eve.exit_code == 0, for_eve.output
    assert for_eve.output.splitlines()[0] == "#2 Problem 2 (c2@x.example)"
    assert for_eve.output.splitlines()[1].endswith("waiting longer than #3")
    for_someone = json.loads(maild(config_file, "tickets", "next", "--for",
                                   "zed@example.com", "--json").output)
    assert for_someone["id"] == 3  # only the unassigned one: #1 is Dan's, #2 Eve's

    maild(config_file, "tickets", "set", "2", "--status", "pending")
    maild(config_file, "tickets", "set", "3", "--status", "pending")
    assert maild(config_file, "tickets", "next", "--for", "eve@example.com").output == (
        "nothing is waiting on us that is eve@example.com's or nobody's\n")
    assert maild(config_file, "tickets", "next", "--for", "not an address").exit_code == 1
