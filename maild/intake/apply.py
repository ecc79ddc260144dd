"""Acting on what a mail means for its ticket (the decision is maild/intake/decide.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from maild.db.models import Message, OutboxMail, Ticket
from maild.errors import PermanentError, TemplateFailed
from maild.intake.classify import Verdict
from maild.intake.commands import Commands
from maild.intake.decide import Decision, Kind
from maild.intake.parse import Attachment, ParsedMail
from maild.mail.subject import bare
from maild.outbound.caps import automatic_mails_to, notices_about
from maild.tickets.conversation import add_message, answered
from maild.tickets.customer_context import customer_context
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import (
    add_cc,
    add_participant,
    claim_severity,
    first_response,
    open_ticket,
    record,
    set_assignee,
    set_status,
    triage_priority,
    untriaged_claim,
)
from maild.tickets.severity_claims import read_claim
from maild.tickets.staff import CONFIRMATION_NOTICE, UNPROVEN_NOTICE, staff_recipients

if TYPE_CHECKING:
    from maild.intake.pipeline import Intake

log = logging.getLogger(__name__)

# The customer's replies on one ticket after which, with the cause still unknown, the
# notification suggests a call: by then mail is costing both sides more than talking.
CALL_AFTER_REPLIES = 3


# The notices about unproven mail in an engineer's name sent lately: they are capped per
# address, so that forged mail cannot flood the engineer it names.
_UNPROVEN_NOTICES_SINCE = (
    select(OutboxMail.recipients)
    .where(OutboxMail.purpose.in_([UNPROVEN_NOTICE, CONFIRMATION_NOTICE]),
           OutboxMail.created_at >= bindparam("since", type_=OutboxMail.created_at.type))
)


@dataclass(frozen=True)
class Applied:
    ticket_id: int
    summary: str
    outbox_queued: int = 0


class _Apply:
    def __init__(
        self, intake: Intake, session: Session, mail: ParsedMail, verdict: Verdict,
        raw_sha256: str, channel: str, mailbox: str | None,
    ) -> None:
        self.config = intake.config
        self.sla = intake.sla
        self.mails = intake.mails
        self.attachment_store = intake.attachment_store
        self.session = session
        self.mail = mail
        self.verdict = verdict
        self.raw_sha256 = raw_sha256
        self.channel = channel
        self.now = intake.clock.now()
        self.mailbox = mailbox or self._mailbox_written_to()
        self.delivered_to = None if self.mailbox else self._own_address_delivered_to()
        self.queued = 0

    # --- helpers -------------------------------------------------------------------------

    def _mailbox_written_to(self) -> str | None:
        """For channels that are not a mailbox (SMTP, `maild ingest`): the mailbox addressed."""
        addressed = {m.address for m in [*self.mail.to, *self.mail.cc]}
        return next(
            (box.name for box in self.config.mailboxes if box.address in addressed), None
        )

    def _own_address_delivered_to(self) -> str | None:
        """Which of our addresses the mail came to, by the delivering server's record
        first (the SMTP listener writes Delivered-To, as Postfix does), then as written:
        a mail Bcc'd to feedback@ names it only in the envelope."""
        own = self.config.own_addresses
        headers = self.mail.headers
        candidates = [headers.get("delivered-to", ""), headers.get("x-original-to", ""),
                      *(m.address for m in [*self.mail.to, *self.mail.cc])]
        return next((c for c in (c.strip().strip("<>").lower() for c in candidates)
                     if c in own), None)

    def _open_ticket(self, requester: str, follow_up_of: Ticket | None = None) -> Ticket:
        # A follow-up's subject is the conversation's own, without the Re: and the old
        # ticket's tag that a reply to it carries.
        subject = bare(self.mail.subject) if follow_up_of else self.mail.subject
        return open_ticket(
            self.session, subject=subject, requester=requester, now=self.now,
            clocks=self.sla, follow_up_of=follow_up_of,
            mailbox=self.mailbox or (follow_up_of.mailbox if follow_up_of else None),
            delivered_to=self.delivered_to or (follow_up_of.delivered_to if follow_up_of
                                               else None),
        )

    def _take_claim(self, ticket: Ticket) -> None:
        """A severity the customer claims in the mail that opens the ticket is believed
        until an engineer triages: before the acknowledgment, which states its promise."""
        claim = read_claim(self.mail.subject, self.mail.new_text, self.sla.config)
        if claim is not None:
            claim_severity(ticket, claim, now=self.now, clocks=self.sla)

    def _store(self, ticket: Ticket, *, direction: str, kind: str, body: str,
               unproven: Decision | None = None) -> Message:
        """`unproven`: the decision that this mail from a staff address proved nothing;
        the message is flagged with its reason, and the commands it held are listed."""
        reason = unproven.unproven_staff if unproven else None
        if unproven is not None:
            record(ticket, self.now, SYSTEM_ACTOR, "staff_unverified",
                   detail=f"{self.mail.message_id} {reason}")
            if unproven.ignored_commands:
                record(ticket, self.now, SYSTEM_ACTOR, "commands_ignored",
                       detail=f"{self.mail.message_id}: {'; '.join(unproven.ignored_commands)}")
        message = Message(
            message_id=self.mail.message_id,
            direction=direction,
            kind=kind,
            author=self.mail.sender.address,
            author_name=self.mail.sender.name or None,
            created_at=self.now,
            subject=self.mail.subject,
            body=body,
            raw_sha256=self.raw_sha256,
            channel=self.channel,
            automatic=self.verdict.automatic,
            unproven_staff=reason,
            attachments=[self._keep(attachment) for attachment in self.mail.attachments],
        )
        add_message(ticket, message)
        ticket.updated_at = self.now
        return message

    def _keep(self, attachment: Attachment) -> dict[str, object]:
        """Store an attachment by its content's hash, unless it is over the limit."""
        kept: dict[str, object] = {
            "filename": attachment.filename, "content_type": attachment.content_type,
            "size": attachment.size, "sha256": None,
        }
        if attachment.size > self.config.storage.max_attachment_bytes:
            kept["note"] = ("larger than storage.max_attachment_bytes: kept only in the raw "
                            "message, not relayed")
        else:
            kept["sha256"] = attachment.stored_sha256 or self.attachment_store.put(
                attachment.data)
        return kept

    def _compose(self, ticket: Ticket, what: str, compose: Callable[[], object]) -> int:
        """Queue one mail about `ticket` (`compose`); 1 if it was queued. A template that
        cannot make it fails that mail alone: the customer's mail and the ticket are kept,
        and the failure is an event on the ticket and an error in the log, for the operator
        to mend the template (`maild check` names what is wrong)."""
        try:
            compose()
        except TemplateFailed as exc:
            record(ticket, self.now, SYSTEM_ACTOR, "mail_failed",
                   detail=f"{what} not sent: {exc}")
            log.error("ticket #%s: %s not sent for %s: template %s",
                      ticket.id, what, self.mail.message_id, exc)
            return 0
        return 1

    def _automatic_mails_lately(self, requester: str) -> int:
        """How many automatic mails `requester` got from us in the last hour, asked before
        the new ticket is written."""
        return automatic_mails_to(self.session, requester, self.now)

    def _acknowledge(self, ticket: Ticket, message: Message, recent: int,
                     follows: Ticket | None = None) -> int:
        """Queue the acknowledgment unless this requester already got enough automatic
        mail lately (`recent`). `follows`: the closed ticket a follow-up links to."""
        limit = self.config.outbound.auto_replies_per_hour
        if recent >= limit:
            record(ticket, self.now, SYSTEM_ACTOR, "ack_withheld",
                   detail=f"{recent} automatic mails to {ticket.requester} in the last hour")
            return 0
        return self._compose(ticket, "acknowledgment", lambda: self.mails.acknowledgment(
            self.session, ticket, message, follows))

    def _notify(self, ticket: Ticket, message: Message, headline: str,
                unproven: bool = False) -> int:
        """Tell the assignee, or while there is none the staff list, what the customer wrote
        (`unproven`: a staff address wrote it, and proved nothing); unless the staff were
        told about this sender often enough in the last hour: then the mail is held back,
        and the next notification about them says so."""
        staff = self.config.staff
        if not staff.notify:
            return 0
        sender = self.mail.sender.address
        recipients = staff_recipients(ticket, staff, author=sender)
        if not recipients:
            return 0
        notices = notices_about(self.session, sender, self.now)
        if notices.sent_lately >= staff.notify_per_sender_per_hour:
            message.staff_notice = "held"
            record(ticket, self.now, SYSTEM_ACTOR, "notification_held",
                   detail=f"{notices.sent_lately} notifications about {sender} in the last hour")
            return 0
        customer_replies = ticket.requester_mails - 1  # their first mail is no reply
        if unproven:
            headline = ("Caution: this mail claims a staff address but failed the "
                        f"authenticity check; it was handled as a customer's.\n\n{headline}")
        context = customer_context(self.session, ticket, self.now)
        if not self._compose(ticket, "notification", lambda: self.mails.notification(
            self.session, ticket, message, recipients,
            headline=headline,
            open_tickets=context.open_count,
            other_open=context.other_open,
            recently_solved=context.recently_solved,
            customer_replies=customer_replies,
            suggest_call=customer_replies >= CALL_AFTER_REPLIES and ticket.cause is None,
            held_back=notices.held, held_tickets=notices.held_tickets,
            notify_cap=staff.notify_per_sender_per_hour,
            severity_claim=untriaged_claim(ticket),
        )):
            return 0
        message.staff_notice = "sent"
        record(ticket, self.now, SYSTEM_ACTOR, "notified", detail=", ".join(recipients))
        return 1

    def _tell_engineer(self, ticket: Ticket, message: Message, decision: Decision,
                       notice: str) -> int:
        """Tell the engineer whose address unproven mail used (`notice`: that it was
        handled as a customer's, or asking them to confirm the ticket it opened), at most
        outbound.auto_replies_per_hour times an hour, whoever writes in their name."""
        engineer = self.mail.sender.address
        limit = self.config.outbound.auto_replies_per_hour
        told = sum(engineer in recipients for recipients in self.session.connection().execute(
            _UNPROVEN_NOTICES_SINCE, {"since": self.now - timedelta(hours=1)}).scalars())
        if told >= limit:
            record(ticket, self.now, SYSTEM_ACTOR, "staff_notice_withheld",
                   detail=f"{told} notices of unproven mail to {engineer} in the last hour")
            return 0
        if not self._compose(ticket, f"{notice} notice", lambda: self.mails.to_staff(
                self.session, ticket, notice, notice, [engineer],
                in_reply_to=message.message_id, message=message,
                reason=decision.unproven_staff,
                ignored_commands=list(decision.ignored_commands))):
            return 0
        record(ticket, self.now, SYSTEM_ACTOR, "notified", detail=engineer)
        return 1

    def _who(self) -> str:
        sender = self.mail.sender
        return f"{sender.name} <{sender.address}>" if sender.name else sender.address

    # --- the cases -------------------------------------------------------------------------

    def noise(self, decision: Decision) -> Applied:
        """Never a ticket, never answered: filed as ignored before it comes here
        (pipeline.ignore_stage)."""
        raise PermanentError(decision.reason)

    def new_conversation(self, decision: Decision) -> Applied:
        assert decision.requester is not None
        recent = self._automatic_mails_lately(decision.requester)
        ticket = self._open_ticket(decision.requester)
        for address in decision.cc:
            add_participant(ticket, address, "cc")
        message = self._store(ticket, direction="in", kind="public", body=self.mail.new_text)
        self._take_claim(ticket)
        acknowledged = self._acknowledge(ticket, message, recent)
        notified = self._notify(ticket, message, f"New ticket from {self._who()}:")
        summary = "new ticket, acknowledged" if acknowledged else "new ticket, not acknowledged"
        return Applied(ticket.id, summary, acknowledged + notified)

    def staff_brings_in_customer(self, decision: Decision) -> Applied:
        """The customer the SE wrote to is the requester."""
        assert decision.requester is not None
        se = self.mail.sender.address
        ticket = self._open_ticket(decision.requester)
        for address in decision.cc:
            add_participant(ticket, address, "cc")
        self._store(ticket, direction="out", kind="public", body=self.mail.new_text)
        set_assignee(ticket, se, actor=se, now=self.now)
        first_response(ticket, now=self.now, clocks=self.sla)
        set_status(ticket, "pending", actor=se, now=self.now, clocks=self.sla,
                   detail="opened by staff writing to the customer")
        return Applied(ticket.id, decision.reason)

    def staff_brings_in_customer_unproven(self, decision: Decision) -> Applied:
        """Opened for the customer all the same, but flagged and assigned to nobody; the
        engineer whose address was used is asked to confirm (`staff_confirms`)."""
        assert decision.requester is not None
        ticket = self._open_ticket(decision.requester)
        for address in decision.cc:
            add_participant(ticket, address, "cc")
        message = self._store(ticket, direction="in", kind="public", body=self.mail.new_text,
                              unproven=decision)
        told = self._tell_engineer(ticket, message, decision, CONFIRMATION_NOTICE)
        return Applied(ticket.id, decision.reason, told)

    def staff_confirms(self, ticket: Ticket, decision: Decision) -> Applied:
        """The engineer answered the notice about the ticket opened in their name: their
        mail to the customer is theirs, and the ticket is as it would have been had it
        proved so at once. The answer is an internal note: nobody outside sees it."""
        commands = decision.commands
        assert commands is not None
        se = self.mail.sender.address
        # Only the mail that opened the ticket is confirmed: any later mail in their name
        # stays what it was, a customer's.
        opening = ticket.messages[0]
        self._store(ticket, direction="out", kind="internal", body=commands.text)
        if opening.unproven_staff and opening.author == se:
            opening.direction = "out"
            opening.unproven_staff = None
            record(ticket, self.now, se, "staff_confirmed", detail=opening.message_id)
            if ticket.assignee is None:
                set_assignee(ticket, se, actor=se, now=self.now)
            first_response(ticket, now=opening.created_at, clocks=self.sla)
            if ticket.status == "new":
                set_status(ticket, "pending", actor=se, now=self.now, clocks=self.sla,
                           detail="opened by staff writing to the customer")
        self._run_commands(ticket, commands)
        return Applied(ticket.id, decision.reason, self.queued)

    def follow_up(self, closed: Ticket, decision: Decision) -> Applied:
        recent = self._automatic_mails_lately(self.mail.sender.address)
        ticket = self._open_ticket(self.mail.sender.address, follow_up_of=closed)
        for address in closed.cc:
            add_participant(ticket, address, "cc")
        if closed.assignee:
            set_assignee(ticket, closed.assignee, actor=SYSTEM_ACTOR, now=self.now)
        message = self._store(ticket, direction="in", kind="public", body=self.mail.new_text)
        self._take_claim(ticket)
        acknowledged = self._acknowledge(ticket, message, recent, follows=closed)
        notified = self._notify(
            ticket, message,
            f"{self._who()} wrote again after ticket #{closed.id} was closed; "
            f"this follow-up links to it:",
        )
        return Applied(ticket.id, decision.reason, acknowledged + notified)

    def customer_reply(self, ticket: Ticket, decision: Decision) -> Applied:
        """Also mail from a staff address that proved nothing: a customer's words, which
        make that address no participant; its engineer is told."""
        sender = self.mail.sender.address
        unproven = decision if decision.unproven_staff else None
        message = self._store(ticket, direction="in", kind="public", body=self.mail.new_text,
                              unproven=unproven)
        joins = "joined by replying: of the requester's organisation" if sender in decision.cc \
            else f"put in copy by {sender}"
        for address in decision.cc:
            add_cc(ticket, address, actor=sender, now=self.now, detail=joins)
        set_status(ticket, "open", actor=sender, now=self.now,
                   clocks=self.sla, detail="customer replied")
        notified = self._notify(ticket, message, f"{self._who()} replied:",
                                unproven=unproven is not None)
        if unproven is not None:
            notified += self._tell_engineer(ticket, message, unproven, UNPROVEN_NOTICE)
        return Applied(ticket.id, decision.reason, notified)

    def outside_message(self, ticket: Ticket, decision: Decision) -> Applied:
        """From someone who takes no part in the ticket: kept for the engineers, marked, and
        nothing else; its sender gets nothing and the ticket does not change."""
        sender = self.mail.sender.address
        message = self._store(ticket, direction="in", kind="internal", body=self.mail.new_text)
        message.outside = True
        record(ticket, self.now, sender, "outside_message", detail=self.mail.message_id)
        if self.verdict.automatic:
            return Applied(ticket.id, decision.reason)
        notified = self._notify(
            ticket, message,
            f"FROM OUTSIDE THE TICKET: {self._who()} takes no part in ticket #{ticket.id}\n"
            f"(not its requester, not in copy, not staff). Nothing was sent to them, and\n"
            f"the ticket did not change. A reply to this mail goes to the ticket's\n"
            f"participants, not to them; to let them take part, reply with the one line\n"
            f"#cc {sender}\n\nThey wrote:",
        )
        return Applied(ticket.id, decision.reason, notified)

    def automatic_reply(self, ticket: Ticket, decision: Decision) -> Applied:
        """Out-of-office and the like: on the record, but they reopen nothing."""
        self._store(ticket, direction="in", kind="public", body=self.mail.new_text)
        return Applied(ticket.id, decision.reason)

    def bounce(self, ticket: Ticket, decision: Decision) -> Applied:
        """Kept on the ticket of the mail that bounced."""
        self._store(ticket, direction="in", kind="internal", body=self.mail.new_text)
        return Applied(ticket.id, decision.reason)

    def delivery_failed(self, ticket: Ticket, decision: Decision) -> Applied:
        """Kept on the ticket of the mail that bounced, whose delivery is marked failed."""
        bounce = self.mail.bounce
        assert bounce is not None
        self._store(ticket, direction="in", kind="internal", body=self.mail.new_text)
        bounced = self.session.scalars(
            select(OutboxMail).where(OutboxMail.message_id == decision.bounced)
        ).one()
        to = ", ".join(decision.bounced_to)
        bounced.status = "failed"
        bounced.last_error = f"bounced for {to}: {bounce.reason}"
        record(ticket, self.now, self.mail.sender.address, "delivery_failed",
               detail=f"{bounced.message_id} to {to}: {bounce.reason}")
        return Applied(ticket.id, decision.reason)

    def survey_answer(self, ticket: Ticket, decision: Decision) -> Applied:
        """Recorded on the ticket, with or without a rating. Whatever the rating, it
        reopens nothing, unless it says the problem is back: then it is also the
        customer's reply (on a closed ticket, the mail that opens its follow-up)."""
        rating, comment = decision.rating, decision.comment
        if not decision.reopens:
            self._store(ticket, direction="in", kind="public", body=self.mail.new_text)
            applied = Applied(ticket.id, decision.reason)
        elif ticket.status == "closed":
            applied = self.follow_up(ticket, decision)
        else:
            applied = self.customer_reply(ticket, decision)
        record(ticket, self.now, self.mail.sender.address, "satisfaction",
               str(ticket.satisfaction) if ticket.satisfaction else None,
               str(rating) if rating is not None else None, detail=comment or None)
        if rating is not None:
            ticket.satisfaction = rating
        ticket.satisfaction_comment = comment or ticket.satisfaction_comment
        return applied

    def automatic_staff_mail(self, ticket: Ticket, decision: Decision) -> Applied:
        """An SE's out-of-office answering a notification: kept, never relayed."""
        self._store(ticket, direction="in", kind="internal", body=self.mail.new_text)
        return Applied(ticket.id, decision.reason)

    def commands_rejected(self, ticket: Ticket, decision: Decision) -> Applied:
        assert decision.commands is not None
        se = self.mail.sender.address
        errors = decision.commands.errors
        note = self._store(ticket, direction="out", kind="internal", body=self.mail.new_text)
        told = self._compose(ticket, "command error notice", lambda: self.mails.command_error(
            self.session, ticket, se, errors, note))
        record(ticket, self.now, se, "command_rejected", detail="; ".join(errors))
        return Applied(ticket.id, decision.reason, told)

    def staff_reply(self, ticket: Ticket, decision: Decision) -> Applied:
        commands = decision.commands
        assert commands is not None
        se = self.mail.sender.address
        add_participant(ticket, se, "staff")
        for address in decision.cc:
            how = "#cc" if address in commands.cc else "in copy of a staff reply"
            add_cc(ticket, address, actor=se, now=self.now, detail=how)
        public = not commands.internal and bool(commands.text)
        kind = "public" if public else "internal"
        reply = self._store(ticket, direction="out", kind=kind, body=commands.text)
        summary = [f"staff {kind} reply"]
        if public:
            recipients = self._relay_recipients(ticket)
            relayed = 0
            if recipients:
                answering = answered(ticket, self.mail.thread_ids)
                relayed = self._compose(ticket, "reply", lambda: self.mails.relay(
                    self.session, ticket, reply, recipients, answering=answering))
                self.queued += relayed
            summary.append(f"relayed to {len(recipients)}" if relayed or not recipients
                           else "not relayed: its template failed")
            first_response(ticket, now=self.now, clocks=self.sla)
            if ticket.assignee is None:
                set_assignee(ticket, se, actor=se, now=self.now)
            if commands.status is None:
                set_status(ticket, "pending", actor=se, now=self.now,
                           clocks=self.sla, detail="staff replied")
        self._run_commands(ticket, commands)
        return Applied(ticket.id, ", ".join(summary), self.queued)

    def _relay_recipients(self, ticket: Ticket) -> list[str]:
        """Requester and cc's, less whoever the SE already wrote to directly."""
        already = {m.address for m in [*self.mail.to, *self.mail.cc]}
        wanted = [ticket.requester, *ticket.cc]
        return [a for a in wanted if a not in already and a != self.mail.sender.address]

    def _run_commands(self, ticket: Ticket, commands: Commands) -> None:
        se = self.mail.sender.address
        if commands.priority and triage_priority(ticket, commands.priority, actor=se,
                                                 now=self.now, clocks=self.sla):
            self.queued += self._compose(
                ticket, "severity change notice",
                lambda: self.mails.severity_changed(self.session, ticket))
        if commands.assign:
            assignee = se if commands.assign == "me" else commands.assign
            set_assignee(ticket, assignee, actor=se, now=self.now)
        if commands.status:
            set_status(ticket, commands.status, actor=se, now=self.now,
                       clocks=self.sla, detail="command in a staff reply")
        if commands.cause:
            record(ticket, self.now, se, "cause", ticket.cause, commands.cause)
            ticket.cause = commands.cause


# What each decision does (maild/intake/decide.py): a mail that belongs to no ticket
# opens one or is set aside; any other acts on the ticket it threads to.
_OPENING: dict[Kind, Callable[[_Apply, Decision], Applied]] = {
    "noise": _Apply.noise,
    "new_conversation": _Apply.new_conversation,
    "staff_brings_in_customer": _Apply.staff_brings_in_customer,
    "staff_brings_in_customer_unproven": _Apply.staff_brings_in_customer_unproven,
}
_ON_TICKET: dict[Kind, Callable[[_Apply, Ticket, Decision], Applied]] = {
    "follow_up": _Apply.follow_up,
    "customer_reply": _Apply.customer_reply,
    "outside_message": _Apply.outside_message,
    "automatic_reply": _Apply.automatic_reply,
    "bounce": _Apply.bounce,
    "delivery_failed": _Apply.delivery_failed,
    "survey_answer": _Apply.survey_answer,
    "automatic_staff_mail": _Apply.automatic_staff_mail,
    "commands_rejected": _Apply.commands_rejected,
    "staff_reply": _Apply.staff_reply,
    "staff_confirms": _Apply.staff_confirms,
}


def apply(
    intake: Intake, session: Session, mail: ParsedMail, verdict: Verdict, ticket: Ticket | None,
    decision: Decision, raw_sha256: str, channel: str, mailbox: str | None = None,
) -> Applied:
    """Act on `decision` about `mail`, on the `ticket` it threads to, if any."""
    step = _Apply(intake, session, mail, verdict, raw_sha256, channel, mailbox)
    if ticket is None:
        return _OPENING[decision.kind](step, decision)
    return _ON_TICKET[decision.kind](step, ticket, decision)
