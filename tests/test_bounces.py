"""Bounces in the styles real MTAs write them: attached to the ticket whose mail bounced,
marking that delivery failed, never opening a ticket or answering."""

from __future__ import annotations

from email.message import Message

import pytest

from maild.intake.parse import parse
from maild.intake.pipeline import ingest
from maild.mail.policy import MailPolicies
from maild.runtime.app import App
from tests.conftest import Sink
from tests.helpers import show
from tests.mailbuilder import make_mail
from tests.realmail import BOUNCES, bounce

DSN_HEADERS = "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"


def _report(sender: str, subject: str, original: str, action: str, status: str,
            diagnostic: str, returned: str) -> bytes:
    """A multipart/report (RFC 3464) the way Postfix, Exchange and Gmail shape it."""
    return (
        f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <dsn-{status}-{action}@mx.example>\r\nReturn-Path: <>\r\n{DSN_HEADERS}"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Your message could not be delivered to one or more recipients.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
        f"Final-Recipient: rfc822; ann@customer.example\r\nAction: {action}\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        f"--B\r\n{returned}\r\n"
        f"Message-ID: {original}\r\nFrom: support@example.com\r\nTo: ann@customer.example\r\n"
        "Subject: Re: [#1] Printer on fire\r\n\r\n"
        "--B--\r\n"
    ).encode()


def postfix(original: str) -> bytes:
    return _report("MAILER-DAEMON@mail.example.com (Mail Delivery System)",
                   "Undelivered Mail Returned to Sender", original, "failed", "5.1.1",
                   "550 5.1.1 <ann@customer.example>: Recipient address rejected",
                   "Content-Type: text/rfc822-headers\r\n")


def exchange(original: str) -> bytes:
    return _report("postmaster@customer.example", "Undeliverable: Re: [#1] Printer on fire",
                   original, "failed", "5.2.2", "554 5.2.2 mailbox full",
                   "Content-Type: message/rfc822\r\n")


def gmail_delayed(original: str) -> bytes:
    return _report("Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                   "Delivery Status Notification (Delay)", original, "delayed", "4.4.1",
                   "421 4.4.1 connection timed out", "Content-Type: text/rfc822-headers\r\n")


def qmail(original: str, recipient: str = "ann@customer.example") -> bytes:
    """qmail writes prose and quotes the original message below a line."""
    return (
        "From: MAILER-DAEMON@mx.customer.example\r\nTo: support@example.com\r\n"
        "Subject: failure notice\r\nMessage-ID: <qmail-bounce@mx.customer.example>\r\n"
        "Return-Path: <>\r\n\r\n"
        "Hi. This is the qmail-send program at mx.customer.example.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{recipient}>:\r\n"
        "Sorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Message-ID: {original}\r\nFrom: support@example.com\r\n"
        "Subject: Re: [#1] Printer on fire\r\n\r\nThank you for writing.\r\n"
    ).encode()


def _acknowledged_ticket(app: App) -> tuple[int, str]:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    app.sender.deliver_due()
    ack = show(app, ticket_id)["messages"][1]
    assert ack["delivery"]["status"] == "sent"
    return ticket_id, ack["delivery"]["message_id"]


def test_a_postfix_bounce_marks_the_acknowledgment_failed(app: App, sink: Sink) -> None:
    ticket_id, ack_id = _acknowledged_ticket(app)

    result = ingest(app.intake, postfix(ack_id), "test")

    assert result.ticket_id == ticket_id
    ticket = show(app, ticket_id)
    delivery = ticket["messages"][1]["delivery"]
    assert delivery["status"] == "failed"
    assert delivery["error"] == (
        "bounced for ann@customer.example: 5.1.1 smtp; 550 5.1.1 <ann@customer.example>: "
        "Recipient address rejected")
    bounce = ticket["messages"][-1]
    assert (bounce["direction"], bounce["kind"]) == ("in", "internal")
    assert ticket["status"] == "new"  # a bounce reopens and answers nothing
    assert [e["kind"] for e in ticket["events"]][-1] == "delivery_failed"
    assert len(show(app, ticket_id)["messages"]) == 3


def test_exchange_and_qmail_bounces_find_their_mail_too(app: App, sink: Sink) -> None:
    ticket_id, ack_id = _acknowledged_ticket(app)
    assert ingest(app.intake, exchange(ack_id), "test").ticket_id == ticket_id
    assert "554 5.2.2 mailbox full" in show(app, ticket_id)["messages"][1]["delivery"]["error"]

    other = ingest(app.intake,
        make_mail(sender="carl@customer.example", message_id="<c@x.example>"),
        "test").ticket_id
    app.sender.deliver_due()
    other_ack = show(app, other)["messages"][1]["delivery"]["message_id"]
    assert ingest(app.intake, qmail(other_ack, "carl@customer.example"), "test").ticket_id \
        == other
    delivery = show(app, other)["messages"][1]["delivery"]
    assert delivery["status"] == "failed"
    assert "(#5.1.1)" in delivery["error"]


def test_a_delay_warning_is_kept_but_fails_nothing(app: App, sink: Sink) -> None:
    ticket_id, ack_id = _acknowledged_ticket(app)
    ingest(app.intake, gmail_delayed(ack_id), "test")
    ticket = show(app, ticket_id)
    assert ticket["messages"][1]["delivery"]["status"] == "sent"
    assert ticket["messages"][-1]["kind"] == "internal"


def test_a_bounce_of_mail_we_never_sent_is_ignored_with_its_reason(app: App) -> None:
    result = ingest(app.intake, postfix("<someone-else@elsewhere.example>"), "test")
    assert result.outcome == "ignored"
    assert "automatic message that belongs to no ticket" in result.reason


def test_the_recipient_a_bounce_reports_is_read_where_each_mta_writes_it() -> None:
    def reported(raw: bytes) -> list[str]:
        bounce = parse(raw, MailPolicies().reading).bounce
        assert bounce is not None
        return bounce.recipients

    assert reported(postfix("<a@example.com>")) == ["ann@customer.example"]
    assert reported(qmail("<a@example.com>", "Carl@Customer.example")) == [
        "carl@customer.example"]
    exim = qmail("<a@example.com>").replace(b"<ann@customer.example>:\r\n", b"").replace(
        b"Return-Path: <>\r\n", b"Return-Path: <>\r\nX-Failed-Recipients: bob@customer.example\r\n")
    assert reported(exim) == ["bob@customer.example"]
    # No field names the recipient: the returned headers' To does.
    fieldless = exchange("<a@example.com>").replace(
        b"Final-Recipient: rfc822; ann@customer.example\r\n", b"")
    assert reported(fieldless) == ["ann@customer.example"]


def _sent(ack_id: str) -> Message:
    """Our acknowledgment as a bounce returns it."""
    sent = Message()
    for name, value in (("From", "support@example.com"), ("To", "ann@customer.example"),
                        ("Subject", "Re: [#1] Printer on fire"), ("Message-ID", ack_id),
                        ("Date", "Mon, 23 Nov 2026 18:00:00 +0000")):
        sent[name] = value
    return sent


@pytest.mark.parametrize("mta", BOUNCES)
def test_each_mta_and_gateway_bounce_fails_our_delivery_and_reopens_nothing(
    app: App, sink: Sink, mta: str
) -> None:
    ticket_id, ack_id = _acknowledged_ticket(app)
    raw = bounce(mta, _sent(ack_id), "ann@customer.example", "Mon, 23 Nov 2026 18:05:00 +0000",
                 f"<{mta}-ndr@mx.customer.example>")

    result = ingest(app.intake, raw, "test")

    assert (result.outcome, result.ticket_id) == ("stored", ticket_id), result.reason
    ticket = show(app, ticket_id)
    assert ticket["messages"][1]["delivery"]["status"] == "failed"
    assert ticket["status"] == "new"
    assert ticket["messages"][-1]["kind"] == "internal"
    app.sender.deliver_due()
    assert [m["Subject"] for m in sink.messages()
            if m["Delivered-To"] == "ann@customer.example"] == ["Re: [#1] Printer on fire"]


def test_prose_bounces_from_gateways_name_their_recipient_a_forwarded_one_does_not(
) -> None:
    """InterScan and a corporate gateway write prose, from no mailer-daemon: flufl.bounce
    reads the recipient they report."""
    for mta in ("interscan", "gateway"):
        raw = bounce(mta, _sent("<ack@example.com>"), "Bob@Customer.example",
                     "Mon, 23 Nov 2026 18:05:00 +0000", "<ndr@gw.customer.example>")
        found = parse(raw, MailPolicies().reading).bounce
        assert found is not None, mta
        assert (found.recipients, found.original_ids) == (["bob@customer.example"],
                                                          ["<ack@example.com>"])
    # A person forwarding such prose to ask about it is a person writing.
    raw = make_mail(subject="Fwd: Undeliverable: Re: [#1] Printer on fire",
                    body=("Why did your answer bounce?\n\n---------- Forwarded message ---------\n"
                          "This message was created automatically by mail delivery software.\n"
                          "A message that you sent could not be delivered to one or more of "
                          "its recipients.\n\n  ann@customer.example\n"))
    assert parse(raw, MailPolicies().reading).bounce is None
