"""The hourly caps on automatic mail (docs/security.md): what a customer's address got from
us lately, and how many of the staff's notifications were about one sender.

Both count what is written: the intake asks before anything of its message is, and
every message before it is (see pipeline._is_known); a sweep flushes first. Asked on the
connection, without the ORM's flush.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from maild.db.models import Message, Ticket

# "In the last hour": after this long ago; a mail sent exactly an hour ago no longer counts.
HOUR = timedelta(hours=1)

# A ticket is touched whenever an automatic mail goes into its thread (Mails), and that
# mail goes to its requester alone, so the requester's tickets touched since then hold
# them all: the count reads those few, by index, however busy the desk is.
_AUTOMATIC_MAILS_SINCE = (
    select(func.count(Message.id))
    .select_from(Ticket)
    .join(Message, Message.ticket_id == Ticket.id)
    .where(
        Ticket.requester == bindparam("address"),
        Ticket.updated_at > bindparam("since", type_=Ticket.updated_at.type),
        Message.kind == "system",
        Message.created_at > bindparam("since", type_=Message.created_at.type),
    )
)

_BY_SENDER = Message.author == bindparam("sender")
_NOTIFIED = aliased(Message)
# The mails from a sender held back since the last notification about them was sent.
_HELD = (
    _BY_SENDER,
    Message.staff_notice == "held",
    Message.id > func.coalesce(
        select(func.max(_NOTIFIED.id)).where(_NOTIFIED.author == bindparam("sender"),
                                             _NOTIFIED.staff_notice == "sent")
        .scalar_subquery(), 0),
)
_NOTICES = select(
    select(func.count(Message.id)).where(
        _BY_SENDER, Message.staff_notice == "sent",
        Message.created_at > bindparam("since", type_=Message.created_at.type),
    ).scalar_subquery(),
    select(func.count(Message.id)).where(*_HELD).scalar_subquery(),
)
# The held mails' tickets a notification names; the rest are only counted.
NAMED_TICKETS = 20
_HELD_TICKETS = (
    select(Message.ticket_id).where(*_HELD).group_by(Message.ticket_id)
    .order_by(func.min(Message.id)).limit(NAMED_TICKETS)
)


def automatic_mails_to(session: Session, address: str, now: datetime) -> int:
    """The automatic mails (acknowledgments, nudges, surveys, notices) `address` got from
    us in the last hour."""
    return int(session.connection().execute(
        _AUTOMATIC_MAILS_SINCE, {"address": address, "since": now - HOUR}).scalar_one())


@dataclass(frozen=True)
class Notices:
    """The staff's notifications about one sender."""

    sent_lately: int  # in the last hour
    held: int  # mails held back since the last one sent
    held_tickets: list[int]  # their tickets, the first NAMED_TICKETS of them


def notices_about(session: Session, sender: str, now: datetime) -> Notices:
    connection = session.connection()
    values = {"sender": sender, "since": now - HOUR}
    sent, held = connection.execute(_NOTICES, values).one()
    tickets = ([ticket_id for (ticket_id,) in connection.execute(_HELD_TICKETS, values)]
               if held else [])
    return Notices(int(sent), int(held), tickets)


def automatic_mail_waits(session: Session, requester: str, now: datetime, limit: int
                         ) -> str | None:
    """For a sweep about to send `requester` an automatic mail: why it must wait (the
    address had its hourly share), or None. What the sweep queued so far is flushed
    first, so that it counts."""
    session.flush()
    sent = automatic_mails_to(session, requester, now)
    if sent < limit:
        return None
    return f"{sent} automatic mails to {requester} in the last hour"
