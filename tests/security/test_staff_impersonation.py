"""Threat: anyone writes `From: dan@example.com` (an engineer's address) with a ticket
number, to #assign the ticket to themselves, #solve it, or speak to the customer from
support@. A From header proves nothing: only an answer to mail maild sent to that address
about that ticket does (docs/security.md, "Who is staff")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maild.clock import FixedClock
from maild.config import Config
from tests.conftest import Sink
from tests.mailbuilder import make_mail, plain_text
from tests.security.staff_desk import CUSTOMER, SE, Desk, open_desk

ATTACK = "#assign mallory@evil.example\n#solve\nWe are closing this. Mail your password to us.\n"


@pytest.fixture
def desk(config: Config, config_file: Path, clock: FixedClock, sink: Sink) -> Iterator[Desk]:
    with open_desk(config, config_file, clock, sink) as running:  # the default: reply-token
        yield running


def customer_ticket(desk: Desk) -> str:
    """Ann's ticket #1; the Message-ID of her acknowledgment (she may forward it on)."""
    desk.send(make_mail(), CUSTOMER)
    [ack] = desk.mails_to(CUSTOMER)
    return str(ack["Message-ID"])


def assert_nothing_obeyed(desk: Desk, forged_id: str) -> None:
    ticket = desk.show(1)
    assert (ticket["status"], ticket["assignee"]) == ("open", None)  # a customer's words
    forged = next(m for m in ticket["messages"] if m["message_id"] == forged_id)
    assert (forged["direction"], forged["kind"]) == ("in", "public")
    assert forged["unproven_staff"].startswith(f"claims staff address {SE}, but answers no "
                                               "mail maild sent to that address about ticket #1")
    assert forged["ignored_commands"] == ["#assign mallory@evil.example", "#solve"]
    kinds = [e["kind"] for e in ticket["events"]]
    assert (kinds.count("staff_unverified"), kinds.count("commands_ignored")) == (1, 1)
    assert [e for e in ticket["events"] if e["kind"] == "assignee"] == []
    # Nothing reached the customer in the engineer's name: her acknowledgment is all.
    assert len(desk.mails_to(CUSTOMER)) == 1
    # The engineer whose address was used is told, with what was not done.
    [told] = [m for m in desk.mails_to(SE) if "handled as a customer's" in m["Subject"]]
    assert told["Subject"] == "[#1] Mail in your name was handled as a customer's"
    assert "Its commands were not run:\n  #assign mallory@evil.example\n  #solve\n" in \
        plain_text(told)


def test_a_forged_reply_in_the_thread_through_the_listener_obeys_nothing(desk: Desk) -> None:
    ack_id = customer_ticket(desk)
    forged = make_mail(sender="Dan Engineer <dan@example.com>", subject="Re: [#1] Printer on fire",
                       message_id="<forged@evil.example>", in_reply_to=ack_id,
                       references=["<first@customer.example>", ack_id], body=ATTACK)
    desk.send(forged, "dan@example.com")
    assert_nothing_obeyed(desk, "<forged@evil.example>")


def test_a_forged_tag_through_maild_ingest_obeys_nothing(desk: Desk) -> None:
    customer_ticket(desk)
    forged = make_mail(sender="dan@example.com", subject="[#1] closing",
                       message_id="<tag@evil.example>", body=ATTACK)
    # Dan is no participant yet, so the tag alone does not even reach ticket #1 ...
    assert desk.ingest(forged) == 0
    assert len(desk.show(1)["messages"]) == 2
    # ... and once he is (the assignee), it reaches it and still commands nothing.
    notice = next(m for m in desk.mails_to(SE) if m["Subject"] == "[#1] Printer on fire")
    desk.send(make_mail(sender="dan@example.com", subject=f"Re: {notice['Subject']}",
                        message_id="<take@example.com>", in_reply_to=notice["Message-ID"],
                        body="#take\n#note\nMine.\n"), SE)
    assert desk.show(1)["assignee"] == SE
    again = make_mail(sender="dan@example.com", subject="[#1] closing",
                      message_id="<tag2@evil.example>", body=ATTACK)
    assert desk.ingest(again) == 0
    ticket = desk.show(1)
    assert (ticket["status"], ticket["assignee"]) == ("open", SE)
    assert ticket["messages"][-1]["ignored_commands"] == ["#assign mallory@evil.example",
                                                          "#solve"]
    shown = desk.show_text(1)
    assert "!!! UNPROVEN: claims staff address dan@example.com" in shown
    assert "!!! not run: #solve" in shown
    assert len(desk.mails_to(CUSTOMER)) == 1


def test_only_the_answer_to_the_notification_proves_the_engineer(desk: Desk) -> None:
    customer_ticket(desk)
    words = "#priority p1\nUnplug it, please.\n"
    # The same words answering the customer's mail (as anyone could) do nothing ...
    desk.send(make_mail(sender="dan@example.com", subject="Re: [#1] Printer on fire",
                        message_id="<bare@example.com>", in_reply_to="<first@customer.example>",
                        body=words), SE)
    assert desk.show(1)["priority"] == "p2"
    # ... answering the notification maild sent to him, they count.
    notice = next(m for m in desk.mails_to(SE) if m["Subject"] == "[#1] Printer on fire")
    desk.send(make_mail(sender="Dan Engineer <dan@example.com>",
                        subject=f"Re: {notice['Subject']}", message_id="<real@example.com>",
                        in_reply_to=notice["Message-ID"],
                        references=[*str(notice["References"]).split(), notice["Message-ID"]],
                        body=words), SE)
    ticket = desk.show(1)
    assert (ticket["priority"], ticket["status"], ticket["assignee"]) == ("p1", "pending", SE)
    reply = ticket["messages"][-1]
    assert (reply["direction"], reply["kind"], reply["unproven_staff"]) == ("out", "public", None)
    relay = desk.mails_to(CUSTOMER)[-1]
    assert plain_text(relay).startswith("Unplug it, please.")
    # The token is the engineer's own: nothing of it reaches the customer.
    assert notice["Message-ID"] not in str(relay)


def test_a_token_proves_its_own_ticket_and_its_own_address_only(desk: Desk) -> None:
    customer_ticket(desk)
    notice_id = desk.mails_to(SE)[-1]["Message-ID"]
    desk.send(make_mail(sender="bob@customer.example", message_id="<bob1@customer.example>",
                        subject="Another problem"), "bob@customer.example")
    # Ticket #1's token, named in a mail that answers ticket #2.
    desk.send(make_mail(sender="dan@example.com", subject="Re: [#2] Another problem",
                        message_id="<cross@example.com>", in_reply_to="<bob1@customer.example>",
                        references=[notice_id, "<bob1@customer.example>"],
                        body="#solve\nDone.\n"), SE)
    assert desk.show(2)["status"] == "open"
    # Dan's token for ticket #1, sent in by another engineer's address.
    desk.send(make_mail(sender="eve@staff.example.com", subject="Re: [#1] Printer on fire",
                        message_id="<eve@staff.example.com>", in_reply_to=notice_id,
                        body="#solve\nDone.\n"), "eve@staff.example.com")
    ticket = desk.show(1)
    assert ticket["status"] == "open"
    assert ticket["messages"][-1]["unproven_staff"] == (
        "claims staff address eve@staff.example.com, but answers no mail maild sent to that "
        "address about ticket #1")


def test_the_engineer_is_told_at_most_a_few_times_an_hour_whoever_writes(desk: Desk) -> None:
    customer_ticket(desk)
    for n in range(8):
        desk.send(make_mail(sender="dan@example.com", subject="[#1]", in_reply_to=
                            "<first@customer.example>", message_id=f"<flood{n}@evil.example>",
                            body=f"#solve\nflood {n}\n"), SE)
    told = [m for m in desk.mails_to(SE) if "handled as a customer's" in m["Subject"]]
    limit = desk.app.config.outbound.auto_replies_per_hour
    assert len(told) == limit
    kinds = [e["kind"] for e in desk.show(1)["events"]]
    assert kinds.count("staff_unverified") == 8  # every one kept and flagged
    assert kinds.count("staff_notice_withheld") == 8 - limit
