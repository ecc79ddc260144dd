"""Which ticket a mail belongs to (docs/design.md, threading rules 2–5).

What it looks up is bounded whatever the mail says: the IDs of In-Reply-To and
References as parse.py keeps them (maild/mail/message_id.py), the first few IDs a bounce
names, the requester's own tickets of the last 30 days (rule 4)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, bindparam, literal, select, union_all
from sqlalchemy.orm import Session

from maild.db.loads import INTAKE_LOADS
from maild.db.models import Message, OutboxMail, Ticket
from maild.intake.decide import NO_TICKET, SentMail, TicketFacts
from maild.intake.parse import ParsedMail
from maild.mail.subject import conversation, is_reply, tags_in
from maild.tickets.service import customer_id_for, takes_part
from maild.tickets.staff import CONFIRMATION_NOTICE
from maild.tickets.surveys import SURVEY_PURPOSE, asking_mail_answered

# The ticket of each Message-ID: as a message of ours (rank 0), else as a mail we sent
# (rank 1; a welcome mail belongs to no ticket).
_TICKETS_OF: CompoundSelect[*tuple[Any, ...]] = union_all(
    select(Message.message_id, Message.ticket_id, literal(0).label("rank"))
    .where(Message.message_id.in_(bindparam("ids", expanding=True))),
    select(OutboxMail.message_id, OutboxMail.ticket_id, literal(1).label("rank"))
    .where(OutboxMail.message_id.in_(bindparam("ids", expanding=True)),
           OutboxMail.ticket_id.is_not(None)),
).order_by("rank")


# A bounce names the one mail that bounced; a prose bounce may quote a few IDs. The
# first of them are read, however many a crafted report lists.
BOUNCED_IDS_READ = 8


def bounced_ids(mail: ParsedMail) -> list[str]:
    return mail.bounce.original_ids[:BOUNCED_IDS_READ] if mail.bounce is not None else []


def _locked(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket, locked, with what the intake's steps read of it (INTAKE_LOADS), in one
    query. The lock names the ticket's row alone: PostgreSQL refuses to lock the nullable
    side of an outer join."""
    return session.get(Ticket, ticket_id, with_for_update={"of": Ticket},
                       options=INTAKE_LOADS)


@dataclass(frozen=True)
class Threading:
    ticket: Ticket | None
    reason: str


def _by_headers(session: Session, mail: ParsedMail) -> Threading | None:
    ids = mail.thread_ids
    if not ids:
        return None
    found: dict[str, int] = {}
    # On the connection, without the ORM's flush: nothing of this message is written
    # yet, and every message before it is (see pipeline._is_known).
    for message_id, ticket_id, _rank in session.connection().execute(_TICKETS_OF, {"ids": ids}):
        found.setdefault(message_id, ticket_id)  # a message's own ticket before its mail's
    for message_id in ids:  # nearest first: In-Reply-To, then References from the end
        if message_id in found:
            ticket = _locked(session, found[message_id])
            return Threading(ticket, f"answers {message_id}")
    return None


def _by_tag(session: Session, mail: ParsedMail, staff_on: Callable[[int], bool]
            ) -> Threading | None:
    for number in tags_in(mail.subject):
        ticket = _locked(session, number)
        if ticket is None:
            continue
        if staff_on(ticket.id) or takes_part(ticket, mail.sender.address):
            return Threading(ticket, f"subject tag [#{ticket.id}] from a participant")
    return None


def _by_bounce(session: Session, mail: ParsedMail) -> Threading | None:
    """A bounce belongs to the ticket of the mail that bounced."""
    if not bounced_ids(mail):
        return None
    for message_id, ticket_id in session.execute(
        select(OutboxMail.message_id, OutboxMail.ticket_id)
        .where(OutboxMail.message_id.in_(bounced_ids(mail)))
    ):
        if ticket_id is not None:
            ticket = _locked(session, ticket_id)
            return Threading(ticket, f"bounce of {message_id}")
    return None


# Rule 4: how long after its last change a ticket still takes its requester's reply by
# subject alone.
SAME_SUBJECT_WINDOW = timedelta(days=30)

# The requester's tickets changed since a time that are not closed, newest first.
_REQUESTERS_OPEN_TICKETS = (
    select(Ticket.id, Ticket.subject)
    .where(Ticket.requester == bindparam("requester"),
           Ticket.updated_at >= bindparam("since", type_=Ticket.updated_at.type),
           Ticket.status != "closed")
    .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
)


def _by_own_subject(session: Session, mail: ParsedMail, now: datetime) -> Threading | None:
    """Rule 4: a reply without headers that name anything of ours and without a tag
    ("RE: Cannot log in", as Outlook writes when a customer answers their own mail) from
    the requester of a ticket that is not closed and has the same subject, changed
    within SAME_SUBJECT_WINDOW. Only the requester's own mail: a subject grants nothing
    to anyone else, who opens a ticket of their own."""
    if mail.bounce is not None or tags_in(mail.subject) or not is_reply(mail.subject):
        return None
    subject = conversation(mail.subject)
    if not subject:
        return None
    found = session.connection().execute(_REQUESTERS_OPEN_TICKETS, {
        "requester": mail.sender.address, "since": now - SAME_SUBJECT_WINDOW})
    for ticket_id, ticket_subject in found:
        if conversation(ticket_subject) == subject:
            ticket = _locked(session, ticket_id)
            return Threading(ticket, f"the requester's reply to ticket #{ticket_id}'s subject")
    return None


def find_ticket(session: Session, mail: ParsedMail, staff_on: Callable[[int], bool],
                now: datetime) -> Threading:
    """`staff_on`: whether the sender is proven staff on a ticket (its tag then suffices)."""
    return (
        _by_bounce(session, mail)
        or _by_headers(session, mail)
        or _by_tag(session, mail, staff_on)
        or _by_own_subject(session, mail, now)
        or Threading(None, "new conversation")
    )


# The notice asking an engineer to confirm a ticket opened in their name, among the
# Message-IDs a mail answers.
_CONFIRMATION_NOTICES = (
    select(OutboxMail.recipients)
    .where(OutboxMail.message_id.in_(bindparam("ids", expanding=True)),
           OutboxMail.ticket_id == bindparam("ticket_id"),
           OutboxMail.purpose == CONFIRMATION_NOTICE)
)


def _answers_confirmation(session: Session, mail: ParsedMail, ticket: Ticket) -> bool:
    if not mail.thread_ids:
        return False
    found = session.connection().execute(
        _CONFIRMATION_NOTICES, {"ids": mail.thread_ids, "ticket_id": ticket.id}).scalars()
    return any(mail.sender.address in recipients for recipients in found)


def ticket_facts(session: Session, mail: ParsedMail, ticket: Ticket | None, *,
                 claims_staff: bool = False) -> TicketFacts:
    """What `decide` needs to know of the ticket, read before anything is written.
    `claims_staff`: the sender's address is staff's (only they confirm tickets)."""
    if ticket is None:
        return NO_TICKET
    bounced: tuple[SentMail, ...] = ()
    if bounced_ids(mail):
        bounced = tuple(
            SentMail(message_id, frozenset(recipients))
            for message_id, recipients in session.execute(
                select(OutboxMail.message_id, OutboxMail.recipients)
                .where(OutboxMail.message_id.in_(bounced_ids(mail)))
                .order_by(OutboxMail.id)
            )
        )
    participants = frozenset(p.address for p in ticket.participants)
    sender = mail.sender.address
    survey_sent = ticket.survey_sent_at is not None
    asking = asking_mail_answered(session, mail.thread_ids) if survey_sent else None
    return TicketFacts(
        ticket_id=ticket.id,
        status=ticket.status,
        requester=ticket.requester,
        participants=participants,
        colleague=(sender not in participants and ticket.customer_id is not None
                   and customer_id_for(session, sender) == ticket.customer_id),
        survey_sent=survey_sent,
        answers_survey=asking is not None,
        survey_invites_reopen=asking not in (None, SURVEY_PURPOSE),
        bounced=bounced,
        answers_confirmation=claims_staff and _answers_confirmation(session, mail, ticket),
    )
