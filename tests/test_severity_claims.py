"""A customer's "severity 1" is believed until an engineer triages: severity-1 clocks, the
claim shown to the engineer and in `tickets next`, `#priority` settles it, and the customer
is told when the engineer sets another severity."""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.config import SlaConfig
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.tickets.severity_claims import read_claim
from tests.conftest import Sink
from tests.helpers import maild, notice_to, show
from tests.mailbuilder import make_mail, plain_text
from tests.test_notifications import delivered

CUSTOMER = "ann@customer.example"


@pytest.mark.parametrize(("subject", "body", "severity", "priority", "words"), [
    ("Severity 1: production down", "", 1, "p1", "Severity 1"),
    ("URGENT: production down", "", 1, "p1", "URGENT"),
    ("[P0] outage", "", 1, "p0", "P0"),
    ("sev1: instance down", "", 1, "p1", "sev1"),
    ("Sev 2 - exports are slow", "", 2, "p2", "Sev 2"),
    ("P1 login fails for all users", "", 1, "p1", "P1"),
    ("Login fails", "Hello,\nthis is severity 1: nobody can log in.\n", 1, "p1", "severity 1"),
])
def test_each_way_of_claiming_a_severity(subject: str, body: str, severity: int,
                                         priority: str, words: str) -> None:
    claim = read_claim(subject, body, SlaConfig())
    assert claim is not None
    assert (claim.severity, claim.priority, claim.words) == (severity, priority, words)


@pytest.mark.parametrize(("subject", "body"), [
    ("Question about our invoice", "Not urgent: how do I change the billing address?\n"),
    ("Feature request", "Hello,\nthanks\nfor the help\nlast week. Severity 1 would be nice.\n"),
    ("Upgrade to P2P sync", "no outage, just a question"),
])
def test_no_claim(subject: str, body: str) -> None:
    assert read_claim(subject, body, SlaConfig()) is None


def test_a_claimed_severity_1_runs_on_severity_1_clocks_and_is_shown(
    app: App, sink: Sink, config_file: Path
) -> None:
    ticket_id = ingest(app.intake, make_mail(subject="Severity 1: production down",
                                             body="Nothing loads since 09:40.\n"),
                       "test").ticket_id

    ticket = show(app, ticket_id)
    assert (ticket["priority"], ticket["severity"]) == ("p1", 1)
    assert (ticket["claimed_priority"], ticket["severity_claim"]) == ("p1", "Severity 1")
    assert ticket["priority_triaged_at"] is None
    # The severity-1 promise (24 hours), not severity 2's business week.
    assert ticket["response_due_at"] == "2026-11-24T18:00:00+00:00"
    assert ticket["resolution_due_at"] == "2026-11-26T18:00:00+00:00"
    ack = ticket["messages"][1]["body"]
    assert "that is our commitment for severity 1" in ack

    text = plain_text(delivered(app, sink, "dan@example.com")[-1])
    assert ("Severity claimed by the customer (\"Severity 1\"), not triaged: the ticket runs "
            "on severity 1 clocks until you set #priority P") in text

    ingest(app.intake, make_mail(subject="A question", sender="bob@other.example",
                                 message_id="<q@other.example>"), "test")
    picked = maild(config_file, "tickets", "next")
    assert picked.exit_code == 0, picked.output
    assert f"#{ticket_id} Severity 1: production down" in picked.output
    assert 'p1 as the customer claimed ("Severity 1"), not triaged yet' in picked.output


def test_without_a_claim_the_default_priority(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(subject="How do I export my data?"),
                       "test").ticket_id
    ticket = show(app, ticket_id)
    assert (ticket["priority"], ticket["severity"], ticket["claimed_priority"]) == (
        "p2", 2, None)
    assert ticket["response_due_at"] == "2026-11-30T18:00:00+00:00"  # one business week


def test_the_engineers_priority_settles_the_claim_and_the_customer_is_told(
    app: App, sink: Sink
) -> None:
    ticket_id = ingest(app.intake, make_mail(subject="URGENT: production down"),
                       "test").ticket_id
    ingest(app.intake, make_mail(sender="dan@example.com",
                                 subject=f"Re: [#{ticket_id}] URGENT: production down",
                                 message_id="<triage@example.com>",
                                 in_reply_to=notice_to(app, ticket_id),
                                 body="#priority p2\nOnly the reports page is slow; "
                                      "we are on it.\n"), "test")

    ticket = show(app, ticket_id)
    assert (ticket["priority"], ticket["severity"]) == ("p2", 2)
    assert ticket["priority_triaged_at"] is not None
    assert ticket["resolution_due_at"] is None  # severity 2 promises no resolution time
    told = [m for m in delivered(app, sink, CUSTOMER)
            if "set it to severity 2" in plain_text(m)]
    assert len(told) == 1
    text = " ".join(plain_text(told[0]).split())
    assert ('You told us ticket #1, "URGENT: production down", is severity 1 ("URGENT"), '
            "and we treated it so. The engineer who looked at it has set it to severity 2.") \
        in text
    assert told[0]["Auto-Submitted"] == "auto-generated"

    # Settled: a later reply's notification no longer speaks of the claim.
    ingest(app.intake, make_mail(subject=f"Re: [#{ticket_id}] URGENT: production down",
                                 message_id="<again@customer.example>",
                                 in_reply_to="<triage@example.com>", body="Thanks.\n"), "test")
    assert "Severity claimed" not in plain_text(delivered(app, sink, "dan@example.com")[-1])


def test_a_priority_of_the_claimed_severity_tells_the_customer_nothing(
    app: App, sink: Sink
) -> None:
    ticket_id = ingest(app.intake, make_mail(subject="[P0] outage"), "test").ticket_id
    ingest(app.intake, make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                                 message_id="<triage@example.com>",
                                 in_reply_to=notice_to(app, ticket_id),
                                 body="#priority p1\n#note confirmed, all regions\n"), "test")
    ticket = show(app, ticket_id)
    assert (ticket["priority"], ticket["severity"]) == ("p1", 1)
    assert ticket["priority_triaged_at"] is not None
    assert [m["Subject"] for m in delivered(app, sink, CUSTOMER)] == [
        f"Re: [#{ticket_id}] [P0] outage"]  # the acknowledgment only


def test_the_command_line_settles_the_claim_too(app: App, sink: Sink,
                                                config_file: Path) -> None:
    ticket_id = ingest(app.intake, make_mail(subject="sev1: instance down"), "test").ticket_id
    changed = maild(config_file, "tickets", "set", str(ticket_id), "--priority", "p3",
                    "--actor", "dan@example.com")
    assert changed.exit_code == 0, changed.output
    ticket = show(app, ticket_id)
    assert (ticket["priority"], ticket["severity"]) == ("p3", 2)
    assert any("set it to severity 2" in plain_text(m)
               for m in delivered(app, sink, CUSTOMER))


def test_the_dashboard_queue_shows_the_claim_until_triage(app: App) -> None:
    from maild.runtime.daemon import web_sources
    from maild.web.pages import Pages

    ticket_id = ingest(app.intake, make_mail(subject="Severity 1: production down"),
                       "test").ticket_id
    page = Pages(web_sources(app)).queue(1)
    assert ('1 <span class="claimed" title="claimed by the customer: Severity 1">claimed, '
            'not triaged</span>') in page
    assert 'as the customer claimed (&#34;Severity 1&#34;), not triaged yet' in page

    ingest(app.intake, make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                                 message_id="<triage@example.com>",
                                 in_reply_to=notice_to(app, ticket_id),
                                 body="#priority p0\n#note all regions\n"), "test")
    assert "claimed" not in Pages(web_sources(app)).queue(1)
