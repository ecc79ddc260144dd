"""Building test mail the way real clients write it."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path


def make_mail(
    sender: str = "Ann Customer <ann@customer.example>",
    to: str = "support@example.com",
    subject: str = "Printer on fire",
    body: str = "It is on fire.\n",
    *,
    message_id: str | None = "<first@customer.example>",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    cc: str | None = None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
    date: datetime | None = None,
) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 11, 23, 18, 0, tzinfo=UTC))
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        message[name] = value
    if body is not None:
        message.set_content(body)
    if html is not None:
        if body is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    return message.as_bytes()


def staff_reply(ticket_id: int, body: str, message_id: str = "<dan@example.com>",
                answering: str | None = None) -> bytes:
    """Dan, an SE, answering ticket N: the notification maild sent him (`answering`, its
    Message-ID: see tests.helpers.notice_to), which is how an engineer proves to be one;
    without it, the customer's first mail, as anyone could."""
    first = "<first@customer.example>"
    return make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                     message_id=message_id, in_reply_to=answering or first,
                     references=[first, answering] if answering else None, body=body)


def read_eml(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the mail has no text/plain part"
    return part.get_content().replace("\r\n", "\n")
