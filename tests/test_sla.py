"""SLA clocks and the alerts they raise: policies per plan and severity, the team's own
first-response target, the resolution clock that stands still while the customer has
the ball, warnings before a due time, the breach, and the escalation in week three.
Stories told with the injected clock, never by sleeping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from maild.clock import FixedClock
from maild.config import parse_config
from maild.db.models import OutboxMail
from maild.errors import ConfigError
from maild.intake.pipeline import ingest
from maild.runtime.app import App, build_app
from maild.runtime.sweeps import run_sweeps
from maild.tickets.customers import add_customer
from maild.tickets.service import set_priority
from maild.tickets.views import get_ticket
from tests.conftest import Sink, config_text
from tests.helpers import at_once, delivered_notice, maild, notice_to, show
from tests.mailbuilder import make_mail, plain_text, staff_reply
from tests.test_followups import at

SLA_TOML = """
[sla]
warn_before = "2 hours"

[[sla.policies]]
plans = ["cloud"]
severity = 1
first_response = "4 hours"
resolution = "24 hours"

[[sla.policies]]
severity = 1
first_response = "24 hours"
resolution = "72 hours"

[[sla.policies]]
severity = 2
first_response = "1 business week"
"""


MakeApp = Callable[..., App]


@pytest.fixture
def make_app(
    tmp_path: Path, database_url: str, sink: Sink, clock: FixedClock
) -> Iterator[MakeApp]:
    """A desk with the SLA settings of the test (by default SLA_TOML and a lead)."""
    built: list[App] = []

    def build(extra: str = SLA_TOML, staff_extra: str = 'leads = ["lead@example.com"]') -> App:
        config = parse_config(config_text(database_url, tmp_path / "storage", sink.port,
                                          extra=extra, staff_extra=staff_extra))
        app = build_app(config, clock)
        built.append(app)
        return app

    yield build
    for app in built:
        app.close()


@pytest.fixture
def desk(make_app: MakeApp) -> App:
    return make_app()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def raise_priority(app: App, ticket_id: int, priority: str) -> None:
    with app.db.transaction() as session:
        set_priority(get_ticket(session, ticket_id), priority, actor="test",
                     now=app.clock.now(), clocks=app.sla)


def customer_writes(app: App, n: int, body: str = "Still broken.\n") -> None:
    ingest(app.intake, make_mail(subject="Re: [#1] Printer on fire",
                                 message_id=f"<again{n}@customer.example>",
                                 in_reply_to="<first@customer.example>", body=body), "test")


def alert_mails(app: App, sink: Sink) -> list[EmailMessage]:
    """The SLA alerts and escalations delivered so far, through the real SMTP sink."""
    app.sender.deliver_due()
    return [m for m in sink.messages()
            if "SLA" in str(m["Subject"]) or "Escalated" in str(m["Subject"])]


# --- due times ---------------------------------------------------------------------------


def test_the_policy_follows_severity_and_plan_and_moves_with_the_priority(desk: App) -> None:
    with desk.db.transaction() as session:
        add_customer(desk.mails, session, "Cloud Co", domains=["cloud.example"], plan="cloud")
    cloud = ingest(desk.intake, make_mail(sender="ann@cloud.example"), "test").ticket_id
    other = ingest(desk.intake, make_mail(sender="bob@other.example", message_id="<b@x>"),
                   "test").ticket_id

    ticket = show(desk, cloud)
    assert ticket["severity"] == 2  # p2 by default
    assert ticket["response_due_at"] == iso(at(11, 30, 10))  # one business week
    assert ticket["resolution_due_at"] is None  # severity 2 promises no resolution time

    # An SE's note raises it: severity 1, on the cloud plan's terms. A note is no response.
    ingest(desk.intake,
        make_mail(sender="dan@example.com", subject=f"Re: [#{cloud}]",
                  message_id="<n@example.com>", in_reply_to=notice_to(desk, cloud),
                  body="#priority p1\n#note\nProduction is down for them.\n"), "test")
    ticket = show(desk, cloud)
    assert (ticket["priority"], ticket["severity"]) == ("p1", 1)
    assert ticket["response_due_at"] == iso(at(11, 23, 14))
    assert ticket["resolution_due_at"] == iso(at(11, 24, 10))
    assert ticket["first_response_at"] is None

    raise_priority(desk, other, "p0")  # severity 1, no plan: the general policy
    ticket = show(desk, other)
    assert ticket["response_due_at"] == iso(at(11, 24, 10))
    assert ticket["resolution_due_at"] == iso(at(11, 26, 10))


def test_only_a_public_se_reply_is_a_first_response(desk: App, clock: FixedClock) -> None:
    ticket_id = ingest(desk.intake, make_mail(), "test").ticket_id
    assert show(desk, ticket_id)["first_response_at"] is None  # the acknowledgment went out

    clock.set(at(11, 23, 10, 30))
    ingest(desk.intake, staff_reply(ticket_id, "#note\nChecking the logs first.\n",
                                    "<note@example.com>",
                answering=notice_to(desk, ticket_id)), "test")
    assert show(desk, ticket_id)["first_response_at"] is None

    clock.set(at(11, 23, 10, 40))
    ingest(desk.intake, staff_reply(ticket_id, "Please send the model number.\n",
                answering=notice_to(desk, ticket_id)), "test")
    assert show(desk, ticket_id)["first_response_at"] == iso(at(11, 23, 10, 40))


def test_the_internal_target_counts_in_its_own_hours(desk: App, clock: FixedClock) -> None:
    # Monday 10:00 in Los Angeles is 18:00 UTC: an hour later, inside 09:00-24:00 UTC.
    first = ingest(desk.intake, make_mail(), "test").ticket_id
    assert show(desk, first)["internal_response_due_at"] == "2026-11-23T19:00:00+00:00"

    # Friday 23:30 UTC: half an hour that evening (until 24:00), half on Monday at 09:00.
    clock.set(datetime.fromisoformat("2026-11-27T23:30:00+00:00"))
    friday = ingest(desk.intake, make_mail(message_id="<fri@customer.example>"), "test").ticket_id
    assert show(desk, friday)["internal_response_due_at"] == "2026-11-30T09:30:00+00:00"

    # Saturday: nothing runs until Monday 09:00 UTC.
    clock.set(datetime.fromisoformat("2026-11-28T12:00:00+00:00"))
    saturday = ingest(desk.intake, make_mail(message_id="<sat@customer.example>"), "test").ticket_id
    assert show(desk, saturday)["internal_response_due_at"] == "2026-11-30T10:00:00+00:00"


def test_the_resolution_clock_stands_still_while_the_customer_or_a_third_party_has_it(
    desk: App, clock: FixedClock
) -> None:
    ticket_id = ingest(desk.intake, make_mail(), "test").ticket_id
    raise_priority(desk, ticket_id, "p1")  # 72 hours to resolve
    assert show(desk, ticket_id)["resolution_due_at"] == iso(at(11, 26, 10))

    clock.set(at(11, 23, 12))
    ingest(desk.intake, staff_reply(ticket_id, "Try turning it off.\n",
                answering=notice_to(desk, ticket_id)), "test")  # pending
    ticket = show(desk, ticket_id)
    assert ticket["sla_paused_at"] == iso(at(11, 23, 12))
    assert ticket["resolution_due_at"] == iso(at(11, 26, 10))

    clock.set(at(11, 25, 12))  # two days with the customer
    customer_writes(desk, 1)
    ticket = show(desk, ticket_id)
    assert (ticket["status"], ticket["sla_paused_at"]) == ("open", None)
    assert ticket["resolution_due_at"] == iso(at(11, 28, 10))

    clock.set(at(11, 26, 12))
    ingest(desk.intake, staff_reply(ticket_id, "#hold\nWaiting on the vendor.\n",
                                    "<hold@example.com>",
                answering=notice_to(desk, ticket_id)), "test")
    clock.set(at(11, 30, 12))  # four days with the vendor, then the customer nudges us
    customer_writes(desk, 2)
    assert show(desk, ticket_id)["resolution_due_at"] == iso(at(12, 2, 10))


def test_a_resolution_time_in_business_hours_skips_the_pause_and_the_night(
    make_app: MakeApp, clock: FixedClock
) -> None:
    desk = make_app(extra="""
[[sla.policies]]
severity = 2
resolution = "16 business hours"
""")
    ticket_id = ingest(desk.intake, make_mail(), "test").ticket_id
    # Monday 10-17 is 7 hours, Tuesday 9-17 another 8, then Wednesday 9-10.
    assert show(desk, ticket_id)["resolution_due_at"] == iso(at(11, 25, 10))

    clock.set(at(11, 23, 12))  # 2 hours used
    ingest(desk.intake, staff_reply(ticket_id, "Try this.\n",
                answering=notice_to(desk, ticket_id)), "test")
    clock.set(at(11, 25, 12))
    customer_writes(desk, 1)
    # 14 left from Wednesday 12:00: 5 that day, 8 on Thursday, 1 on Friday.
    assert show(desk, ticket_id)["resolution_due_at"] == iso(at(11, 27, 10))


# --- alerts ------------------------------------------------------------------------------


def test_a_warning_before_the_internal_target_then_the_breach_each_once(
    desk: App, clock: FixedClock, sink: Sink
) -> None:
    ingest(desk.intake, make_mail(), "test")
    clock.set(at(11, 23, 10, 44))
    assert desk.sla_alerts.send() == 0
    clock.set(at(11, 23, 10, 45))  # 15 minutes before our own hour is up
    assert desk.sla_alerts.send() == 1
    clock.set(at(11, 23, 10, 50))
    assert desk.sla_alerts.send() == 0

    [warning] = alert_mails(desk, sink)
    assert warning["Subject"] == "[#1] SLA due soon: Printer on fire"
    assert warning["Delivered-To"] == "dan@example.com"  # nobody assigned: the staff list
    assert "<first@customer.example>" in str(warning["References"])  # in the ticket's thread
    assert warning["Auto-Submitted"] == "auto-generated"
    assert plain_text(warning).startswith(
        "Our own first-response target is due Monday 23 November, 11:00 PST, in 15 min.\n")

    clock.set(at(11, 23, 11))
    assert desk.sla_alerts.send() == 1
    restarted = build_app(desk.config, clock)
    try:
        clock.set(at(11, 23, 11, 30))
        assert restarted.sla_alerts.send() == 0
    finally:
        restarted.close()
    breach = alert_mails(desk, sink)[-1]
    assert breach["Subject"] == "[#1] SLA breached: Printer on fire"
    assert plain_text(breach).startswith(
        "Our own first-response target was due Monday 23 November, 11:00 PST and has passed.")
    kinds = [e["kind"] for e in show(desk, 1)["events"]]
    assert (kinds.count("sla_warning"), kinds.count("sla_breach")) == (1, 1)


def test_after_a_pause_in_the_sweeps_the_breach_is_told_without_its_stale_warning(
    desk: App, clock: FixedClock, sink: Sink
) -> None:
    ingest(desk.intake, make_mail(), "test")
    clock.set(at(11, 23, 10, 50))
    desk.sla_alerts.send()  # the internal target's warning
    clock.set(at(12, 1, 9))  # down all week: the promised first response is a day late
    assert desk.sla_alerts.send() == 1
    late = alert_mails(desk, sink)[-1]
    text = plain_text(late)
    assert late["Subject"] == "[#1] SLA breached: Printer on fire"
    assert "Our own first-response target was due Monday 23 November, 11:00 PST" in text
    assert ("The first response promised to the customer was due Monday 30 November, "
            "10:00 PST and has passed (23 h ago).") in text
    assert "is due" not in text  # no warning for what has passed
    clock.set(at(12, 1, 10))
    assert desk.sla_alerts.send() == 0


def test_warnings_go_to_the_assignee_and_stop_once_the_se_answers(
    desk: App, clock: FixedClock, sink: Sink
) -> None:
    ticket_id = ingest(desk.intake, make_mail(), "test").ticket_id
    ingest(desk.intake,
        staff_reply(ticket_id, "#assign eve@staff.example.com\n#note\nEve knows it.\n",
                    "<assign@example.com>",
                answering=notice_to(desk, ticket_id)), "test")
    raise_priority(desk, ticket_id, "p1")
    clock.set(at(11, 23, 10, 45))
    desk.sla_alerts.send()
    assert [m["Delivered-To"] for m in alert_mails(desk, sink)] == ["eve@staff.example.com"]

    clock.set(at(11, 23, 10, 55))
    ingest(desk.intake, make_mail(sender="eve@staff.example.com", subject=f"Re: [#{ticket_id}]",
                                  message_id="<eve@staff.example.com>",
                                  in_reply_to=notice_to(desk, ticket_id, "eve@staff.example.com"),
                                  body="Unplug it, please.\n"), "test")
    for moment in (at(11, 23, 11), at(11, 24, 8), at(11, 24, 10), at(11, 26, 10)):
        clock.set(moment)
        assert desk.sla_alerts.send() == 0  # answered, and pending: no clock is running

    clock.set(at(11, 25, 9))
    customer_writes(desk, 1)  # back with us: the resolution clock runs again
    due = show(desk, ticket_id)["resolution_due_at"]
    assert due == iso(at(11, 28, 8, 5))  # 55 minutes ran before Eve answered: 71 h 5 min left
    clock.set(at(11, 28, 6, 5))
    assert desk.sla_alerts.send() == 1
    assert "The resolution promised to the customer is due Saturday 28 November, 08:05 PST" \
        in plain_text(alert_mails(desk, sink)[-1])


def test_a_ticket_into_its_third_week_goes_to_the_leads_once(
    desk: App, clock: FixedClock, sink: Sink
) -> None:
    ticket_id = ingest(desk.intake, make_mail(), "test").ticket_id
    ingest(desk.intake, staff_reply(ticket_id, "#hold\nThe vendor is looking into it.\n",
                answering=notice_to(desk, ticket_id)), "test")
    clock.set(at(12, 7, 9, 59))
    assert desk.sla_alerts.send() == 0  # on hold: no warnings, but the weeks still count
    clock.set(at(12, 7, 10))
    assert desk.sla_alerts.send() == 1
    clock.set(at(12, 14, 10))
    assert desk.sla_alerts.send() == 0

    # A copy for each, the same To and Cc, each with its own reply token.
    escalations = alert_mails(desk, sink)
    assert sorted(m["Delivered-To"] for m in escalations) == ["dan@example.com",
                                                               "lead@example.com"]
    assert len({m["Message-ID"] for m in escalations}) == 2
    escalation = escalations[0]
    assert escalation["Subject"] == "[#1] Escalated, unresolved for 14 days: Printer on fire"
    assert escalation["To"] == "lead@example.com"
    assert escalation["Cc"] == "dan@example.com"  # the assignee
    assert "still not resolved, 14 days later. It is on_hold, assigned to dan@example.com" \
        in plain_text(escalation)
    ticket = show(desk, ticket_id)
    assert ticket["escalated_at"] == iso(at(12, 7, 10))


def test_a_solved_ticket_is_never_escalated(desk: App, clock: FixedClock) -> None:
    ticket_id = ingest(desk.intake, make_mail(), "test").ticket_id
    ingest(desk.intake, staff_reply(ticket_id, "#solve\nFixed in 2.1.\n",
                answering=notice_to(desk, ticket_id)), "test")
    clock.set(at(12, 31, 10))
    assert desk.sla_alerts.send() == 0
    assert show(desk, ticket_id)["escalated_at"] is None


def test_two_schedulers_at_once_send_every_alert_exactly_once(
    desk: App, clock: FixedClock
) -> None:
    for n in range(30):
        ingest(desk.intake, make_mail(sender=f"c{n}@customer.example",
                                      message_id=f"<m{n}@customer.example>"), "test")
    clock.set(at(11, 23, 10, 50))
    results = at_once(desk, lambda scheduler: scheduler.sla_alerts.send(batch=4))
    assert sum(results) == 30
    with desk.db.transaction() as session:
        per_ticket = [t for (t,) in session.execute(
            select(OutboxMail.ticket_id).where(OutboxMail.purpose == "sla_alert"))]
    assert sorted(per_ticket) == list(range(1, 31))


def test_the_daemon_sweep_runs_the_alerts(desk: App, clock: FixedClock) -> None:
    ingest(desk.intake, make_mail(), "test")
    clock.set(at(11, 23, 10, 45))
    assert run_sweeps(desk)["sla_alerts"] == 1


# --- the welcome mail and the config -----------------------------------------------------


def test_the_welcome_mail_states_the_plans_promises(desk: App, sink: Sink) -> None:
    with desk.db.transaction() as session:
        add_customer(desk.mails, session, "Cloud Co", domains=["cloud.example"], plan="cloud",
                     contacts=["it@cloud.example"], welcome=True)
    desk.sender.deliver_due()
    [welcome] = sink.messages()
    text = plain_text(welcome)
    assert ("Severity 1 (a production system down or unusable): a first answer within "
            "4 hours, resolved within 24 hours, not counting the time we wait for you.") in text
    assert "Severity 2: a first answer within 1 business week." in text


@pytest.mark.parametrize(("toml", "error"), [
    ("[[sla.policies]]\nseverity = 1\n",
     "sla.policies[0]: set first_response, resolution or both"),
    ("[[sla.policies]]\nseverity = 5\nfirst_response = \"1 hour\"\n",
     "sla.policies[0].severity: Input should be less than or equal to 4"),
    ("[sla]\nwarn_before = \"1 business day\"\n",
     "sla.warn_before: must be wall-clock time, such as \"2 hours\" (not business time)"),
    ("[sla.internal]\nend = \"25:00\"\n", "sla.internal.end"),
    ("[sla]\nseverities = { p9 = 1 }\n", "sla.severities.p9"),
])
def test_bad_sla_settings_name_the_key(toml: str, error: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(config_text("sqlite:///x.db", tmp_path, 2526, extra=toml))
    assert any(error in line for line in raised.value.problems), raised.value.problems


def test_run_once_at_a_given_moment_sends_the_warning(config_file: Path, sink: Sink) -> None:
    maild(config_file, "ingest", "-", stdin=make_mail())
    early = maild(config_file, "run", "--once", now="2026-11-23T10:44:00-08:00")
    assert early.output.endswith("; SLA alerts 0\n"), early.output
    due = maild(config_file, "run", "--once", now="2026-11-23T10:45:00-08:00")
    assert due.exit_code == 0, due.output
    assert due.output.endswith("; SLA alerts 1\n")
    subjects = [str(m["Subject"]) for m in sink.messages()]
    assert "[#1] SLA due soon: Printer on fire" in subjects


def test_tickets_show_says_where_the_clocks_stand(config_file: Path, sink: Sink) -> None:
    maild(config_file, "ingest", "-", stdin=make_mail())
    waiting = maild(config_file, "tickets", "show", "1").output.splitlines()
    assert "created Mon 23 Nov 2026 10:00 PST, severity 2" in waiting
    assert ("SLA: first response due Mon 30 Nov 2026 10:00 PST (our target "
            "Mon 23 Nov 2026 11:00 PST); resolution due -") in waiting

    maild(config_file, "ingest", "-", stdin=staff_reply(
        1, "#priority p1\nTry this.\n", answering=delivered_notice(config_file, sink)),
          now="2026-11-23T10:30:00-08:00")
    answered = maild(config_file, "tickets", "show", "1").output.splitlines()
    assert ("SLA: first response Mon 23 Nov 2026 10:30 PST; resolution due "
            "Thu 26 Nov 2026 10:00 PST, paused since Mon 23 Nov 2026 10:30 PST") in answered
