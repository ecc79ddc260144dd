"""Threat: forged bounces.

Anyone can write a mail shaped like a delivery status notification, from
`MAILER-DAEMON@` any domain, naming one of our Message-IDs (it is in every mail we send,
and so in every forward of it). Believed, it would mark our delivery failed with the
forger's text. A bounce counts only for a recipient we sent that very mail to; any other
is kept as what it is, and no bounce ever changes a ticket's status or opens a ticket.
"""

from __future__ import annotations

from tests.mailbuilder import make_mail
from tests.security.conftest import Desk

CUSTOMER = "ann@customer.example"


def dsn(original: str, recipient: str | None, *, n: int = 0) -> bytes:
    """A multipart/report as Postfix writes it, for `recipient` (None: it names nobody)."""
    fields = f"Final-Recipient: rfc822; {recipient}\r\n" if recipient else ""
    return (
        "From: MAILER-DAEMON@evil.example (Mail Delivery System)\r\n"
        f"To: support@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn{n}@evil.example>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.evil.example\r\n\r\n"
        f"{fields}Action: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 your support desk has been hacked\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original}\r\nFrom: support@example.com\r\n"
        "Subject: Re: [#1] Printer on fire\r\n\r\n"
        "--B--\r\n"
    ).encode()


def _acknowledgment(desk: Desk) -> str:
    desk.smtp(make_mail(), mail_from=CUSTOMER)
    desk.deliver()
    [ack] = desk.mail_to(CUSTOMER)
    return str(ack["Message-ID"])


def _ack_delivery(desk: Desk) -> dict[str, object]:
    return dict(desk.show(1)["messages"][1]["delivery"])


def test_a_bounce_for_someone_we_did_not_send_the_mail_to_fails_nothing(desk: Desk) -> None:
    ack_id = _acknowledgment(desk)

    desk.smtp(dsn(ack_id, "mallory@attacker.example"), mail_from="")
    assert desk.ingest(dsn(ack_id, None, n=1)) == 0

    ticket = desk.show(1)
    assert _ack_delivery(desk)["status"] == "sent"
    assert ticket["status"] == "new"
    assert not any(e["kind"] == "delivery_failed" for e in ticket["events"])
    kept = ticket["messages"][-2:]  # both kept on the ticket, as what they are
    assert [(m["kind"], m["direction"]) for m in kept] == [("internal", "in")] * 2
    assert len(desk.tickets()) == 1

    # A bounce that does report the customer still counts, and still changes no status.
    desk.smtp(dsn(ack_id, CUSTOMER, n=2), mail_from="")
    delivery = _ack_delivery(desk)
    assert delivery["status"] == "failed"
    assert delivery["error"] == (f"bounced for {CUSTOMER}: 5.1.1 smtp; 550 5.1.1 your support "
                                 "desk has been hacked")
    assert desk.show(1)["status"] == "new"


def test_a_forged_bounce_of_an_engineers_reply_changes_nothing_and_opens_nothing(
    desk: Desk
) -> None:
    _acknowledgment(desk)
    desk.ingest(make_mail(sender="dan@example.com", subject="Re: [#1] Printer on fire",
                          message_id="<dan1@example.com>", in_reply_to=desk.notice(1),
                          body="#solve\nFixed in 2.3.1.\n"))
    desk.deliver()
    [_, reply] = desk.mail_to(CUSTOMER)

    desk.smtp(dsn(str(reply["Message-ID"]), "bob@customer.example"), mail_from="")
    desk.smtp(dsn("<never-sent@example.com>", CUSTOMER, n=1), mail_from="")
    desk.deliver()

    ticket = desk.show(1)
    assert ticket["status"] == "solved"
    assert ticket["messages"][2]["delivery"]["status"] == "sent"
    assert len(desk.tickets()) == 1  # the bounce of a mail we never sent is only kept
    assert len(desk.deliveries()) == 3  # acknowledgment, notification, reply; nothing since
