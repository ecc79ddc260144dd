"""A ticket's conversation: its messages, what the ticket keeps at hand of them, and
which message an engineer's reply answers.

Every message joins its ticket through `add_message`, which keeps on the ticket what the
mail maild writes about it reads of the thread (its References, the greeting, the count
of the requester's mails): a reply on a long thread is answered without loading it."""

from __future__ import annotations

from sqlalchemy.orm import object_session

from maild.db.models import Message, Ticket


def written_by_the_customer(message: Message) -> bool:
    """A mail a person on the customer's side wrote to us: not our own, not a note, not
    automatic (an out-of-office or a bounce asks nothing), not from outside the ticket
    (its participants are not to read a stranger's mail)."""
    return (message.direction == "in" and message.kind == "public" and not message.automatic
            and not message.outside)


def signed_name(message: Message) -> str | None:
    """The name a message's author signs with, for "Hello Ann,"; None when they gave none
    (or only their address again)."""
    name = message.author_name
    return str(name) if name and "@" not in name else None


def add_message(ticket: Ticket, message: Message) -> None:
    """`message` joins the ticket's thread, the newest, and the ticket keeps what mail
    about it reads of the thread. Linked from the message's side: appending to
    ticket.messages would first load the whole thread, only to add one."""
    message.ticket = ticket
    session = object_session(ticket)
    if session is not None:
        session.add(message)
    if message.kind != "internal":
        ticket.thread_ids = [*(ticket.thread_ids or []), message.message_id]
    if message.direction == "in" and message.author == ticket.requester:
        ticket.requester_name = signed_name(message) or ticket.requester_name
        if message.kind == "public" and not message.automatic:
            ticket.requester_mails = (ticket.requester_mails or 0) + 1


def sent_as(message: Message, message_id: str) -> None:
    """The customer got `message` as a mail of ours with another Message-ID (an
    engineer's reply, relayed): their client knows the thread by that one."""
    ticket = message.ticket
    if message_id == message.message_id or ticket is None:
        return
    ticket.thread_ids = [message_id if i == message.message_id else i
                         for i in ticket.thread_ids or []]


def answered(ticket: Ticket, thread_ids: list[str]) -> Message | None:
    """The customer's message a reply answers, for the relay to quote: the nearest one
    its In-Reply-To and References name (`thread_ids`, nearest first; maild's
    notification to the engineer names the message it tells of), else the latest one."""
    written = [m for m in ticket.messages if written_by_the_customer(m)]
    by_id = {m.message_id: m for m in written}
    named = next((by_id[i] for i in thread_ids if i in by_id), None)
    return named or (written[-1] if written else None)
