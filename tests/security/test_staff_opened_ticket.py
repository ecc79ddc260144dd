"""An engineer writes to a customer with support@ in Cc: there is no notification to
answer, so nothing proves the mail is theirs. The ticket is opened for the customer all the
same, flagged and assigned to nobody, and the engineer is asked to confirm by answering
maild's notice; then it is theirs, as if proven at once. A forger, who never sees the
notice, cannot confirm; and no mail of maild's reaches the customer either way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from maild.clock import FixedClock
from maild.config import Config
from tests.conftest import Sink
from tests.mailbuilder import make_mail, plain_text
from tests.security.staff_desk import SE, Desk, open_desk

CAROL = "carol@customer.example"


@pytest.fixture
def desk(config: Config, config_file: Path, clock: FixedClock, sink: Sink) -> Iterator[Desk]:
    with open_desk(config, config_file, clock, sink) as running:
        yield running


def outreach(desk: Desk) -> None:
    desk.send(make_mail(sender="Dan <dan@example.com>", to="Carol <carol@customer.example>",
                        cc="support@example.com", subject="Your upgrade next week",
                        message_id="<outreach@example.com>",
                        body="#priority p1\nShall we plan it?\n"), SE)


def test_the_ticket_waits_for_the_engineer_and_is_theirs_once_confirmed(
    desk: Desk, clock: FixedClock
) -> None:
    outreach(desk)
    ticket = desk.show(1)
    assert (ticket["requester"], ticket["status"], ticket["assignee"]) == (CAROL, "new", None)
    assert ticket["priority"] == "p2"  # its command was not run
    [opening] = ticket["messages"]
    assert (opening["direction"], opening["kind"]) == ("in", "public")
    assert opening["unproven_staff"] == (
        f"claims staff address {SE}, but answers no mail maild sent to that address")
    assert opening["ignored_commands"] == ["#priority p1"]
    assert desk.mails_to(CAROL) == []  # no acknowledgment: she asked nothing

    [notice] = desk.mails_to(SE)
    assert notice["Subject"] == "[#1] Confirm: did you open this ticket for carol@customer.example?"
    assert notice["In-Reply-To"] == "<outreach@example.com>"
    assert "If you wrote it: reply to this mail." in plain_text(notice)

    clock.advance(timedelta(minutes=20))
    desk.send(make_mail(sender="Dan <dan@example.com>", subject=f"Re: {notice['Subject']}",
                        message_id="<yes@example.com>", in_reply_to=notice["Message-ID"],
                        body="Yes, that was me.\n\nOn Mon, Example Support wrote:\n> Confirm\n"),
              SE)
    ticket = desk.show(1)
    assert (ticket["status"], ticket["assignee"]) == ("pending", SE)
    assert ticket["first_response_at"] == "2026-11-23T18:00:00+00:00"  # when he wrote to her
    opening, confirmation = ticket["messages"]
    assert (opening["direction"], opening["kind"], opening["unproven_staff"]) == (
        "out", "public", None)
    assert (confirmation["kind"], confirmation["body"]) == ("internal", "Yes, that was me.")
    assert [e["actor"] for e in ticket["events"] if e["kind"] == "staff_confirmed"] == [SE]
    assert desk.mails_to(CAROL) == []  # his answer to maild stays internal

    # Carol answers Dan's mail: the ticket's conversation goes on.
    desk.send(make_mail(sender=CAROL, to=SE, cc="support@example.com",
                        subject="Re: Your upgrade next week", message_id="<carol@customer.example>",
                        in_reply_to="<outreach@example.com>", body="Tuesday works.\n"), CAROL)
    assert desk.show(1)["status"] == "open"


def test_a_forger_cannot_confirm(desk: Desk) -> None:
    outreach(desk)
    # The forger saw their own mail, not maild's notice to Dan: they answer what they know.
    guess = f"<maild.1.{'0' * 32}.{'0' * 32}@example.com>"  # a token made up
    for n, answering in enumerate(["<outreach@example.com>", guess]):
        assert desk.ingest(make_mail(
            sender="dan@example.com", subject="Re: [#1] Confirm",
            message_id=f"<fake{n}@evil.example>", in_reply_to=answering,
            references=["<outreach@example.com>", answering], body="Yes, that was me.\n")) == 0
    ticket = desk.show(1)
    assert (ticket["status"], ticket["assignee"]) == ("open", None)
    assert [m["unproven_staff"] is not None for m in ticket["messages"]] == [True, True, True]
    assert "staff_confirmed" not in [e["kind"] for e in ticket["events"]]
    assert desk.mails_to(CAROL) == []

    # Dan's own confirmation makes his opening mail his, and the forgeries stay theirs.
    notice = next(m for m in desk.mails_to(SE) if "Confirm:" in m["Subject"])
    desk.send(make_mail(sender=SE, subject=f"Re: {notice['Subject']}",
                        message_id="<yes@example.com>", in_reply_to=notice["Message-ID"],
                        body="Yes.\n"), SE)
    ticket = desk.show(1)
    assert ticket["assignee"] == SE
    assert [m["unproven_staff"] is not None for m in ticket["messages"]] == [
        False, True, True, False]
