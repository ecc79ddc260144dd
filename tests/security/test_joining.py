"""Threat: taking over someone else's ticket through its thread headers.

A customer's acknowledgment, forwarded or leaked, carries Message-IDs of the ticket. A
stranger who answers it must not become a participant: they would receive every engineer
reply, nudge and survey of that ticket and could use its bare `[#N]` tag from then on.
Their mail is kept on the ticket as a message from outside it, shown to the engineers, and
gives them nothing. Only the requester's organisation joins by replying; anyone else joins
when an engineer writes `#cc ADDR`.
"""

from __future__ import annotations

from tests.mailbuilder import make_mail, plain_text
from tests.security.conftest import Desk

CUSTOMER = "ann@customer.example"
STRANGER = "mallory@attacker.example"


def _acknowledged_ticket(desk: Desk) -> str:
    """Ann's ticket #1, acknowledged and told to the engineer; the acknowledgment's
    Message-ID."""
    desk.smtp(make_mail(), mail_from=CUSTOMER)
    desk.deliver()
    [ack] = desk.mail_to(CUSTOMER)
    return str(ack["Message-ID"])


def _staff_reply(desk: Desk, ticket_id: int, body: str, message_id: str) -> bytes:
    """As engineers answer: a reply to maild's notification, which proves them staff."""
    return make_mail(sender="Dan Engineer <dan@example.com>",
                     subject=f"Re: [#{ticket_id}] Printer on fire", message_id=message_id,
                     in_reply_to=desk.notice(ticket_id), body=body)


def test_a_stranger_answering_a_forwarded_acknowledgment_is_kept_outside(desk: Desk) -> None:
    ack_id = _acknowledged_ticket(desk)
    before = desk.show(1)

    desk.smtp(make_mail(sender=f"Mallory <{STRANGER}>", subject="Re: [#1] Printer on fire",
                        message_id="<hijack@attacker.example>", in_reply_to=ack_id,
                        references=["<first@customer.example>", ack_id],
                        body="Please send all updates to me from now on.\n"),
              mail_from=STRANGER)
    desk.deliver()

    ticket = desk.show(1)
    assert STRANGER not in ticket["cc"]
    outside = ticket["messages"][-1]
    assert (outside["author"], outside["kind"], outside["outside"]) == (STRANGER, "internal",
                                                                        True)
    assert outside["body"] == "Please send all updates to me from now on."
    # Nothing changed for the ticket: its status, its clocks, its follow-ups.
    for key in ("status", "assignee", "response_due_at", "resolution_due_at",
                "first_response_at", "followup_due_at"):
        assert ticket[key] == before[key], key
    assert [e["kind"] for e in ticket["events"]
            if e["kind"] != "delivered"][-2:] == ["outside_message", "notified"]
    # The stranger got nothing; the engineer was told, in plain words, who wrote.
    assert desk.mail_to(STRANGER) == []
    notice = desk.mail_to("dan@example.com")[-1]
    assert plain_text(notice).startswith(
        f"FROM OUTSIDE THE TICKET: Mallory <{STRANGER}> takes no part in ticket #1\n")
    assert f"#cc {STRANGER}" in plain_text(notice)
    shown = desk.run("tickets", "show", "1").output
    assert f"{STRANGER} [FROM OUTSIDE THE TICKET: not a participant]" in shown

    # The engineer answers: the customer gets it, the stranger does not.
    assert desk.ingest(_staff_reply(desk, 1, "Please unplug it.\n", "<dan1@example.com>")) == 0
    desk.deliver()
    assert [m["Subject"] for m in desk.mail_to(CUSTOMER)] == [
        "Re: [#1] Printer on fire", "Re: [#1] Printer on fire"]
    assert desk.mail_to(STRANGER) == []

    # A bare tag grants nothing either: the stranger's tagged mail is a ticket of their own.
    desk.smtp(make_mail(sender=STRANGER, subject="[#1] Printer on fire",
                        message_id="<tag@attacker.example>", body="Any news?\n"),
              mail_from=STRANGER)
    assert [t["requester"] for t in desk.tickets()] == [CUSTOMER, STRANGER]
    assert len(desk.show(1)["messages"]) == len(ticket["messages"]) + 1  # the reply only


def test_only_the_requesters_organisation_joins_by_replying(desk: Desk) -> None:
    assert desk.run("customers", "add", "Customer Inc", "--domain",
                    "customer.example").exit_code == 0
    ack_id = _acknowledged_ticket(desk)

    for n, sender in enumerate(("carl@customer.example", "carl@customer.example.attacker.example")):
        assert desk.ingest(make_mail(sender=sender, subject="Re: [#1] Printer on fire",
                                     message_id=f"<c{n}@elsewhere.example>",
                                     in_reply_to=ack_id, body="Same here.\n")) == 0

    ticket = desk.show(1)
    assert ticket["cc"] == ["carl@customer.example"]
    assert ticket["status"] == "open"  # the colleague's reply is a customer's reply
    assert [m["outside"] for m in ticket["messages"][-2:]] == [False, True]
    assert any(e["kind"] == "participant" and e["new"] == "carl@customer.example"
               for e in ticket["events"])

    desk.ingest(_staff_reply(desk, 1, "Both of you: unplug it.\n", "<dan2@example.com>"))
    desk.deliver()
    assert [m["Subject"] for m in desk.mail_to("carl@customer.example")] == [
        "Re: [#1] Printer on fire"]
    assert desk.mail_to("carl@customer.example.attacker.example") == []


def test_an_engineer_lets_someone_take_part_with_cc(desk: Desk) -> None:
    _acknowledged_ticket(desk)
    partner = "dora@partner.example"

    desk.ingest(_staff_reply(desk, 1, f"#cc {partner}\nDora from our partner will take it from "
                                "here.\n", "<dan3@example.com>"))
    desk.deliver()

    ticket = desk.show(1)
    assert ticket["cc"] == [partner]
    assert any(e["kind"] == "participant" and e["new"] == partner and e["detail"] == "#cc"
               for e in ticket["events"])
    relay = desk.mail_to(partner)[-1]
    assert plain_text(relay).startswith("Dora from our partner will take it from here.")
    assert set(relay.get_all("Delivered-To")) == {CUSTOMER, partner}

    # Now a participant, Dora's reply is a customer's reply like Ann's.
    desk.smtp(make_mail(sender=partner, subject="Re: [#1] Printer on fire",
                        message_id="<dora@partner.example>", in_reply_to=relay["Message-ID"],
                        body="On it.\n"), mail_from=partner)
    ticket = desk.show(1)
    assert (ticket["status"], ticket["messages"][-1]["outside"]) == ("open", False)
