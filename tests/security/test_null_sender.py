"""Threat: mail with a null envelope sender.

`MAIL FROM:<>` is what bounces and other automatic mail are sent with (RFC 5321, section
4.5.5): no one may answer it. Whatever its headers claim, it opens no ticket and is never
acknowledged; on a ticket it is kept and changes nothing. Otherwise anyone could make the
desk answer a forged From address with nothing to bounce back to them.
"""

from __future__ import annotations

import json

from tests.mailbuilder import make_mail
from tests.security.conftest import Desk

VICTIM = "ann@customer.example"


def test_a_null_sender_opens_no_ticket_and_is_never_answered(desk: Desk) -> None:
    desk.smtp(make_mail(sender=f"Ann <{VICTIM}>", subject="Please call me back"), mail_from="")
    desk.deliver()

    assert desk.tickets() == []
    assert desk.deliveries() == []
    assert json.loads(desk.run("quarantine", "list", "--json").output) == []
    [kept] = json.loads(desk.run("quarantine", "list", "--ignored", "--json").output)
    assert kept["reason"] == "automatic message that belongs to no ticket (empty Return-Path " \
                             "(bounce))"


def test_a_null_sender_on_a_ticket_changes_nothing(desk: Desk) -> None:
    desk.smtp(make_mail(), mail_from=VICTIM)
    desk.ingest(make_mail(sender="dan@example.com", subject="Re: [#1] Printer on fire",
                          message_id="<dan1@example.com>", in_reply_to=desk.notice(1),
                          body="Please try the new driver.\n"))
    desk.deliver()
    sent = len(desk.deliveries())

    desk.smtp(make_mail(subject="Re: [#1] Printer on fire", message_id="<null@customer.example>",
                        in_reply_to="<first@customer.example>", body="Thanks!\n"), mail_from="")
    desk.deliver()

    ticket = desk.show(1)
    assert ticket["status"] == "pending"  # a customer's reply would have made it open
    assert ticket["messages"][-1]["automatic"] == "empty Return-Path (bounce)"
    assert len(desk.deliveries()) == sent
