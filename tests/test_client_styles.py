"""Replies as Gmail, Outlook, Apple Mail and Thunderbird write them, to maild's
acknowledgment: each lands on its ticket with only the new text."""

from __future__ import annotations

import pytest

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
