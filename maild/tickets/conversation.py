"""Which message of a ticket's conversation an engineer's reply answers."""

from __future__ import annotations

from maild.db.models import Message, Ticket


def written_by_the_customer(message: Message) -> bool:
    """A mail a person on the customer's side wrote to us: not our own, not a note, not
    automatic (an out-of-office or a bounce asks nothing), not from outside the ticket
    (its participants are not to read a stranger's mail)."""
    return (message.direction == "in" and message.kind == "public" and not message.automatic
            and not message.outside)


def answered(ticket: Ticket, thread_ids: list[str]) -> Message | None:
    """The customer's message a reply answers, for the relay to quote: the nearest one
    its In-Reply-To and References name (`thread_ids`, nearest first; maild's
    notification to the engineer names the message it tells of), else the latest one."""
    written = [m for m in ticket.messages if written_by_the_customer(m)]
    by_id = {m.message_id: m for m in written}
    named = next((by_id[i] for i in thread_ids if i in by_id), None)
    return named or (written[-1] if written else None)
