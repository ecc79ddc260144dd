"""The mails maild writes, each from its template, queued in the caller's transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from email.policy import EmailPolicy
from typing import Any

from sqlalchemy.orm import Session

from maild.clock import Clock
from maild.config import Config
from maild.db.models import Customer, Message, OutboxMail, Ticket
from maild.db.rawstore import RawStore
from maild.mail.addresses import domain_of
from maild.mail.message_id import new_message_id
from maild.mail.reply_tokens import ReplyTokens
from maild.outbound.compose import (
    OutgoingAttachment,
    OutgoingMail,
    Party,
    render_copies,
    render_mail,
    tag_subject,
)
from maild.outbound.outbox import queue_mail
from maild.outbound.templates import Templates
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.conversation import add_message
from maild.tickets.report_text import report_text
from maild.tickets.sla import SlaClocks

log = logging.getLogger(__name__)


def thread_ids(ticket: Ticket) -> list[str]:
    """The Message-IDs of the conversation as the customer saw it, oldest first: kept on
    the ticket as it grows (maild/tickets/conversation.py)."""
    return list(ticket.thread_ids or [])


def greeting_name(ticket: Ticket) -> str | None:
    """The requester's name as they sign their mail, for "Hello Ann,"; None when they
    gave none (or only their address again). Kept on the ticket as it grows."""
    return ticket.requester_name


def _desk_of(ticket: Ticket | None) -> tuple[str | None, str | None]:
    """The mailbox and the delivered-to address a ticket's mail goes out by."""
    return (ticket.mailbox, ticket.delivered_to) if ticket else (None, None)


def mail_context(config: Config, clock: Clock, calendar: BusinessCalendar,
                 ticket: Ticket | None = None, **extra: Any) -> dict[str, Any]:
    """What every template receives (templates/README.md), and `extra`, what its own
    mail adds. `maild check` renders its samples with this too (outbound/samples.py)."""
    address, name = config.desk_address(*_desk_of(ticket))
    context: dict[str, Any] = {
        "support": {"name": name, "address": address},
        "now": clock.now(),
        "timezone": calendar.zone,
        "business_hours": config.business_hours,
        "internal_target": config.sla.internal if config.sla.internal.enabled else None,
        "ticket": ticket,
        "customer": ticket.customer if ticket else None,
        "requester_name": greeting_name(ticket) if ticket else None,
    }
    context.update(extra)
    return context


@dataclass(frozen=True)
class Mails:
    """Every kind of mail maild writes, from its template; each is queued in the session
    it is given, so that it is sent only if the change that caused it commits."""

    config: Config  # the desk's addresses (support and mailboxes) and business hours
    templates: Templates
    clock: Clock
    calendar: BusinessCalendar
    sla: SlaClocks
    raw_store: RawStore  # where a mail too large for its outbox row goes
    policy: EmailPolicy  # how the mail's headers are written (MailPolicies.writing)
    attachment_store: RawStore  # where a relayed reply's attachments are read from
    reply_tokens: ReplyTokens  # what a mail to staff carries for their answer to prove them

    def _desk(self, ticket: Ticket | None, display_name: str | None = None) -> Party:
        """Who a ticket's mail is from: the mailbox it came in through, else support@."""
        address, name = self.config.desk_address(*_desk_of(ticket))
        return Party(address, display_name or name)

    def _message_id(self, ticket: Ticket | None) -> str:
        domain = domain_of(self._desk(ticket).address)
        return new_message_id(domain, ticket.id if ticket else None)

    def _staff_message_id(self, ticket: Ticket, staff_address: str) -> str:
        """The Message-ID of a mail to one engineer: with the token that their answer
        brings back as proof that it is theirs (maild/mail/reply_tokens.py)."""
        domain = domain_of(self._desk(ticket).address)
        return self.reply_tokens.message_id(domain, ticket.id, staff_address)

    def _context(self, ticket: Ticket | None = None, **extra: Any) -> dict[str, Any]:
        return mail_context(self.config, self.clock, self.calendar, ticket, **extra)

    def _queue(
        self,
        session: Session,
        mail: OutgoingMail,
        purpose: str,
        ticket: Ticket | None,
        message: Message | None = None,
    ) -> OutboxMail:
        return queue_mail(
            session,
            self.raw_store,
            render_mail(mail, self.policy),
            mail,
            purpose=purpose,
            now=self.clock.now(),
            ticket_id=ticket.id if ticket else None,
            message=message,
        )

    def _system_message(self, ticket: Ticket, message_id: str, subject: str, text: str) -> Message:
        """The automatic mail kept in the ticket's thread. It touches the ticket: the count
        of a requester's recent automatic mail relies on that (intake/apply.py)."""
        desk = self._desk(ticket)
        now = self.clock.now()
        ticket.updated_at = max(ticket.updated_at, now)
        message = Message(
            message_id=message_id,
            direction="out",
            kind="system",
            author=desk.address,
            author_name=desk.name,
            created_at=now,
            subject=subject,
            body=text.strip(),
            channel="outbox",
            attachments=[],
        )
        add_message(ticket, message)
        return message

    def acknowledgment(self, session: Session, ticket: Ticket, answering: Message,
                       follows: Ticket | None = None) -> OutboxMail:
        """`follows`: the closed ticket this one follows up."""
        return self.to_customer(session, ticket, "ack", "ack", answering=answering,
                                auto_submitted="auto-replied",
                                message=answering, follows=follows)

    def relay(self, session: Session, ticket: Ticket, reply: Message, recipients: list[str],
              answering: Message | None) -> OutboxMail:
        """An SE's public reply, sent to the customer from the support address, quoting
        `answering`, the customer's message it answers."""
        rendered = self.templates.render(
            "reply", self._context(ticket, reply=reply, answering=answering)
        )
        subject = tag_subject(rendered.subject, ticket.id)
        references = [i for i in thread_ids(ticket) if i != reply.message_id]
        mail = OutgoingMail(
            sender=self._desk(ticket, display_name=reply.author_name),
            to=[Party(address) for address in recipients[:1]],
            cc=[Party(address) for address in recipients[1:]],
            reply_to=self._desk(ticket),
            subject=subject,
            text=rendered.text,
            html=rendered.html,
            message_id=self._message_id(ticket),
            date=self.clock.now(),
            in_reply_to=answering.message_id if answering else (
                references[-1] if references else None),
            references=references,
            attachments=self._stored_attachments(reply),
        )
        return self._queue(session, mail, "reply", ticket, reply)

    def _stored_attachments(self, message: Message) -> list[OutgoingAttachment]:
        found = []
        for attachment in message.attachments:
            if not attachment.get("sha256"):
                continue  # over the size limit: it stays in the raw message only
            try:
                data = self.attachment_store.get(attachment["sha256"])
            except OSError as exc:
                log.warning("attachment %s of %s is missing from storage (%s); relayed "
                            "without it", attachment["filename"], message.message_id, exc)
                continue
            found.append(OutgoingAttachment(attachment["filename"], attachment["content_type"],
                                            data))
        return found

    def notification(
        self, session: Session, ticket: Ticket, message: Message, recipients: list[str],
        **context: Any,
    ) -> list[OutboxMail]:
        """Tells the assignee (or the staff list) what the customer wrote, in the ticket's
        thread, so that replying to it answers the customer."""
        return self.to_staff(session, ticket, "notify", "notify", recipients, message=message,
                             in_reply_to=message.message_id, **context)

    def to_staff(
        self, session: Session, ticket: Ticket, template: str, purpose: str,
        recipients: list[str], *, cc: list[str] | None = None,
        in_reply_to: str | None = None, **context: Any,
    ) -> list[OutboxMail]:
        """An automatic mail to the team about a ticket (a notification, an SLA warning, an
        escalation), in the ticket's thread, so that replying to it answers the customer.
        It answers `in_reply_to`, by default the conversation's latest mail.

        Each engineer gets a copy of their own, with To and Cc as written but a
        Message-ID carrying their own reply token."""
        rendered = self.templates.render(template, self._context(ticket, **context))
        references = thread_ids(ticket)
        to = [Party(address) for address in recipients]
        copied = [Party(address) for address in cc or []]
        mail = OutgoingMail(
            sender=self._desk(ticket),
            to=to,
            cc=copied,
            reply_to=self._desk(ticket),
            subject=tag_subject(rendered.subject, ticket.id),
            text=rendered.text,
            html=rendered.html,
            message_id="",  # each engineer's own, below
            date=self.clock.now(),
            in_reply_to=in_reply_to or (references[-1] if references else None),
            references=references,
            auto_submitted="auto-generated",
        )
        engineers = [party.address for party in dict.fromkeys([*to, *copied])]
        message_ids = [self._staff_message_id(ticket, address) for address in engineers]
        copies = render_copies(mail, self.policy, message_ids)
        return [
            queue_mail(session, self.raw_store, raw,
                       replace(mail, envelope_to=[address], message_id=message_id),
                       purpose=purpose, now=self.clock.now(), ticket_id=ticket.id)
            for address, message_id, raw in zip(engineers, message_ids, copies, strict=True)
        ]

    def to_customer(
        self, session: Session, ticket: Ticket, template: str, purpose: str, *,
        answering: Message | None = None, auto_submitted: str = "auto-generated",
        **context: Any,
    ) -> OutboxMail:
        """An automatic mail to the requester in the ticket's thread (the acknowledgment, a
        nudge, the survey, the auto-solve notice), kept as a system message. The requester
        alone: the cc's get engineers' replies, never automatic mail (docs/security.md)."""
        rendered = self.templates.render(template, self._context(ticket, **context))
        subject = tag_subject(rendered.subject, ticket.id)
        message_id = self._message_id(ticket)
        references = thread_ids(ticket)
        mail = OutgoingMail(
            sender=self._desk(ticket),
            to=[Party(ticket.requester)],
            subject=subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            date=self.clock.now(),
            in_reply_to=answering.message_id if answering else (
                references[-1] if references else None),
            references=references,
            auto_submitted=auto_submitted,
        )
        message = self._system_message(ticket, message_id, subject, rendered.text)
        return self._queue(session, mail, purpose, ticket, message)

    def severity_changed(self, session: Session, ticket: Ticket) -> OutboxMail:
        """Tells the requester that the engineer set another severity than they claimed,
        and what it now promises."""
        claimed = self.sla.config.severity(str(ticket.claimed_priority))
        return self.to_customer(session, ticket, "severity_changed", "severity_changed",
                                claimed_severity=claimed)

    def command_error(
        self, session: Session, ticket: Ticket, staff_address: str, errors: list[str],
        reply: Message,
    ) -> OutboxMail:
        """Told to the SE alone: their commands were not understood and nothing changed."""
        rendered = self.templates.render(
            "command_error", self._context(ticket, errors=errors, reply=reply)
        )
        mail = OutgoingMail(
            sender=self._desk(ticket),
            to=[Party(staff_address)],
            subject=tag_subject(rendered.subject, ticket.id),
            text=rendered.text,
            html=rendered.html,
            message_id=self._staff_message_id(ticket, staff_address),
            date=self.clock.now(),
            in_reply_to=reply.message_id,
            references=[reply.message_id],
            auto_submitted="auto-replied",
        )
        return self._queue(session, mail, "command_error", ticket)

    def welcome(self, session: Session, customer: Customer, contact: str) -> OutboxMail:
        rendered = self.templates.render(
            "welcome", self._context(None, customer=customer, contact=contact,
                                     promises=self.sla.promises(customer.plan))
        )
        mail = OutgoingMail(
            sender=self._desk(None),
            to=[Party(contact)],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=self._message_id(None),
            date=self.clock.now(),
            auto_submitted="auto-generated",
        )
        return self._queue(session, mail, "welcome", None)

    def digest(self, session: Session, recipients: list[str], report: dict[str, Any],
               week: str, message_id: str) -> OutboxMail:
        """The weekly report to the leads: text, and HTML with charts made of tables."""
        rendered = self.templates.render(
            "digest", self._context(None, report=report, report_text=report_text(report),
                                    week=week))
        mail = OutgoingMail(
            sender=self._desk(None),
            to=[Party(address) for address in recipients],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            date=self.clock.now(),
            auto_submitted="auto-generated",
        )
        return self._queue(session, mail, "digest", None)
