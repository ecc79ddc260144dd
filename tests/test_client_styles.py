"""Replies as Gmail, Outlook, Apple Mail and Thunderbird write them, to maild's
acknowledgment: each lands on its ticket with only the new text."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from maild.clock import FixedClock
from maild.db.models import Ticket
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from tests.helpers import show
from tests.mailbuilder import make_mail


def _ack(app: App) -> tuple[int, str]:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    return ticket_id, show(app, ticket_id)["messages"][1]["delivery"]["message_id"]


def gmail(ticket_id: int, ack: str) -> bytes:
    return make_mail(
        subject=f"Re: [#{ticket_id}] Printer on fire", message_id="<CAGmail123@mail.gmail.com>",
        in_reply_to=ack, references=["<first@customer.example>", ack],
        body=("It is still smoking.\n\n"
              "On Mon, Nov 23, 2026 at 10:00 AM Example Support <support@example.com> wrote:\n\n"
              "> Hello,\n>\n> Thank you for writing to Example Support.\n"),
    )


def outlook_subject_only(ticket_id: int, ack: str) -> bytes:
    """Outlook across some gateways keeps neither In-Reply-To nor References."""
    return make_mail(
        subject=f"RE: [#{ticket_id}] Printer on fire",
        message_id="<DM6PR01MB1234@namprd01.prod.outlook.com>",
        headers={"Thread-Index": "AQHZ1234567890abcdef=="},
        body=("It is still smoking.\n\n"
              "________________________________\n"
              "From: Example Support <support@example.com>\n"
              "Sent: Monday, November 23, 2026 10:00 AM\n"
              "To: Ann Customer <ann@customer.example>\n"
              f"Subject: Re: [#{ticket_id}] Printer on fire\n\n"
              "Hello,\n\nThank you for writing to Example Support.\n"),
    )


def outlook_in_reply_to_only(ticket_id: int, ack: str) -> bytes:
    return make_mail(
        subject=f"AW: [#{ticket_id}] Printer on fire", in_reply_to=ack,
        message_id="<AM0PR02MB5678@eurprd02.prod.outlook.com>",
        body=("It is still smoking.\n\n"
              "Von: Example Support <support@example.com>\n"
              "Gesendet: Montag, 23. November 2026 19:00\n"
              "An: Ann Customer <ann@customer.example>\n"
              f"Betreff: Re: [#{ticket_id}] Printer on fire\n\nHello,\n"),
    )


def apple_mail(ticket_id: int, ack: str) -> bytes:
    return make_mail(
        subject=f"Re: [#{ticket_id}] Printer on fire",
        message_id="<7E1F2A3B-4C5D-6E7F-8091-A2B3C4D5E6F7@customer.example>",
        in_reply_to=ack, references=["<first@customer.example>", ack],
        body=("It is still smoking.\n\n"
              "> On 23 Nov 2026, at 18:00, Example Support <support@example.com> wrote:\n"
              ">\n> Hello,\n> Thank you for writing to Example Support.\n"),
    )


def thunderbird(ticket_id: int, ack: str) -> bytes:
    return make_mail(
        subject=f"Re: [#{ticket_id}] Printer on fire",
        message_id="<5a6b7c8d-1234-4321-abcd-0123456789ab@customer.example>",
        in_reply_to=ack, references=["<first@customer.example>", ack],
        body=("On 23/11/2026 19:00, Example Support wrote:\n"
              "> Hello,\n> Thank you for writing to Example Support.\n\n"
              "It is still smoking.\n"),
    )


@pytest.mark.parametrize("client", [gmail, outlook_subject_only, outlook_in_reply_to_only,
                                    apple_mail, thunderbird])
def test_a_reply_from_each_client_lands_on_its_ticket_with_the_new_text(
    app: App, client: object
) -> None:
    ticket_id, ack = _ack(app)
    result = ingest(app.intake, client(ticket_id, ack), "test")  # type: ignore[operator]

    assert result.outcome == "stored"
    assert result.ticket_id == ticket_id
    ticket = show(app, ticket_id)
    assert ticket["status"] == "open"
    assert ticket["messages"][-1]["body"] == "It is still smoking."


# --- Rule 4: Outlook answering the customer's own mail ---------------------------------------

OUTLOOK_ID = "<AM9PR07MB7059A1@AM9PR07MB7059.eurprd07.prod.outlook.com>"


def outlook_reply_to_own_mail(prefix: str = "RE",
                              sender: str = "Ann Customer <ann@customer.example>",
                              message_id: str = OUTLOOK_ID) -> bytes:
    """What Outlook sends when the customer answers the mail in their Sent Items: the
    subject with Outlook's prefix in the customer's language, no In-Reply-To, no
    References, no tag, and their first mail quoted below the Original Message line."""
    return make_mail(
        sender=sender, subject=f"{prefix}: Cannot log in", message_id=message_id,
        headers={"Thread-Topic": "Cannot log in", "Thread-Index": "AQHZ9xyzABCDEF=="},
        body=("Any news? Nobody here can work.\n\n"
              "-----Original Message-----\n"
              "From: Ann Customer <ann@customer.example>\n"
              "Sent: Monday, November 23, 2026 10:00 AM\n"
              "To: support@example.com\n"
              "Subject: Cannot log in\n\n"
              "Since this morning the login page says 'invalid token'.\n"),
    )


def _tickets(app: App) -> int:
    with app.db.transaction() as session:
        return int(session.scalar(select(func.count(Ticket.id))) or 0)


def _first_mail(app: App) -> int:
    ticket_id = ingest(app.intake, make_mail(subject="Cannot log in",
                                             body="Since this morning the login page says "
                                                  "'invalid token'.\n"), "test").ticket_id
    assert ticket_id is not None
    return ticket_id


@pytest.mark.parametrize("prefix", ["RE", "Re", "AW", "SV", "VS", "Antw", "RIF", "R", "TR",
                                    "Odp", "RES", "Re[2]", "RE: RE"])
def test_the_requesters_outlook_reply_without_headers_or_tag_lands_on_the_ticket(
    app: App, prefix: str
) -> None:
    ticket_id = _first_mail(app)
    result = ingest(app.intake, outlook_reply_to_own_mail(prefix), "test")

    assert result.ticket_id == ticket_id
    ticket = show(app, ticket_id)
    assert ticket["status"] == "open"
    assert ticket["messages"][-1]["body"] == "Any news? Nobody here can work."
    assert _tickets(app) == 1


def test_a_stranger_with_the_same_subject_opens_a_ticket_of_their_own(app: App) -> None:
    ticket_id = _first_mail(app)
    stranger = outlook_reply_to_own_mail(sender="Mallory <mallory@elsewhere.example>",
                                         message_id="<m@elsewhere.example>")
    result = ingest(app.intake, stranger, "test")

    assert result.ticket_id not in (None, ticket_id)
    assert show(app, result.ticket_id)["requester"] == "mallory@elsewhere.example"
    # The requester's own reply, after the stranger's, still finds the ticket.
    assert ingest(app.intake, outlook_reply_to_own_mail(), "test").ticket_id == ticket_id
    assert [m["author"] for m in show(app, ticket_id)["messages"]
            if m["direction"] == "in"] == ["ann@customer.example"] * 2


def test_a_cc_of_the_ticket_is_not_its_requester_either(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(subject="Cannot log in",
                                             cc="Bob <bob@customer.example>"), "test").ticket_id
    assert "bob@customer.example" in show(app, ticket_id)["cc"]
    result = ingest(app.intake, outlook_reply_to_own_mail(
        sender="Bob <bob@customer.example>", message_id="<bob@customer.example>"), "test")
    assert result.ticket_id not in (None, ticket_id)
    assert ingest(app.intake, outlook_reply_to_own_mail(), "test").ticket_id == ticket_id


def test_a_same_subject_reply_after_thirty_quiet_days_or_to_a_closed_ticket_is_new(
    app: App, clock: FixedClock
) -> None:
    quiet = _first_mail(app)
    clock.advance(timedelta(days=29))
    in_time = ingest(app.intake, outlook_reply_to_own_mail(message_id="<soon@customer.example>"),
                     "test")
    assert in_time.ticket_id == quiet
    clock.advance(timedelta(days=31))
    late = ingest(app.intake, outlook_reply_to_own_mail(), "test")
    assert late.ticket_id not in (None, quiet)

    with app.db.transaction() as session:
        closed = session.get(Ticket, late.ticket_id)
        assert closed is not None
        closed.status = "closed"
    again = ingest(app.intake, outlook_reply_to_own_mail(message_id="<again@customer.example>"),
                   "test")
    assert again.ticket_id not in (None, quiet, late.ticket_id)


def test_a_different_subject_or_no_reply_prefix_is_a_new_conversation(app: App) -> None:
    ticket_id = _first_mail(app)
    other = ingest(app.intake, make_mail(subject="RE: Cannot log out",
                                         message_id="<out@customer.example>"), "test")
    same_words = ingest(app.intake, make_mail(subject="Cannot log in",
                                              message_id="<anew@customer.example>"), "test")
    assert ticket_id not in (other.ticket_id, same_words.ticket_id)
    # Prefixes and spacing aside, the same subject is the same conversation.
    assert ingest(app.intake, make_mail(subject="AW:  RE: cannot LOG in",
                                        message_id="<aw@customer.example>"),
                  "test").ticket_id == same_words.ticket_id
