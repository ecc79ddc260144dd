"""What a message means for its ticket, decided from plain values (docs/design.md).

`decide` is pure: the parsed mail, the verdict about it and the facts about its ticket,
read from the database beforehand (`thread.ticket_facts`), go in; a `Decision` naming the
case, with its reason and what acting on it needs, comes out. Acting on it is
`apply.apply`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from maild.intake.classify import Verdict
from maild.intake.commands import Commands, command_lines, parse_commands
from maild.intake.parse import ParsedMail
from maild.tickets.surveys import only_thanks, read_answer

Kind = Literal[
    "noise",  # automatic mail that belongs to no ticket
    "new_conversation",
    "staff_brings_in_customer",  # an SE wrote to a customer with support@ in Cc
    # The same from a staff address that proved nothing: opened, flagged, assigned to
    # nobody until the engineer confirms by answering maild's notice
    "staff_brings_in_customer_unproven",
    "staff_confirms",  # the engineer answered that notice: the ticket is theirs
    "follow_up",  # the customer wrote again on a closed ticket
    "customer_reply",
    "outside_message",  # from someone who takes no part in the ticket: kept, grants nothing
    "automatic_reply",  # out-of-office and the like on a ticket: kept, reopens nothing
    "bounce",  # kept on the ticket; no delivery of ours is marked failed
    "delivery_failed",  # a bounce that marks our delivery `bounced` failed
    "survey_answer",  # a reply to the survey: recorded; reopens only if the problem is back
    "staff_reply",
    "commands_rejected",  # a staff reply whose commands do not parse: nothing changes
    "automatic_staff_mail",  # an SE's out-of-office: kept internal, never relayed
]


@dataclass(frozen=True)
class SentMail:
    """A mail of ours, and to whom we sent it."""

    message_id: str
    recipients: frozenset[str]


@dataclass(frozen=True)
class TicketFacts:
    """What the decision needs to know of the ticket the mail threads to."""

    ticket_id: int | None = None  # None: the mail belongs to no ticket
    status: str | None = None
    requester: str | None = None
    participants: frozenset[str] = frozenset()  # the requester, cc's and staff
    colleague: bool = False  # the sender belongs to the requester's registered organisation
    survey_sent: bool = False
    answers_survey: bool = False  # the mail answers the survey sent on this ticket
    # The mail it answers asks for a rating and also invites a reply to reopen (not the
    # survey itself, which says an answer reopens nothing)
    survey_invites_reopen: bool = False
    # The mail answers the notice asking its sender to confirm they opened this ticket
    answers_confirmation: bool = False
    bounced: tuple[SentMail, ...] = ()  # the mails of ours a bounce names


NO_TICKET = TicketFacts()


@dataclass(frozen=True)
class Decision:
    kind: Kind
    reason: str  # for the log and the result's summary
    requester: str | None = None  # a ticket to open: whose it is
    cc: tuple[str, ...] = ()  # who becomes a participant (of the ticket opened, or this one)
    rating: int | None = None  # a survey answer, if it gave one
    comment: str = ""  # a survey answer
    reopens: bool = False  # a survey answer saying the problem is back
    commands: Commands | None = None  # a staff reply
    bounced: str | None = None  # a failed delivery: the Message-ID of our mail
    bounced_to: tuple[str, ...] = ()  # a failed delivery: the recipients it failed for
    # Mail from a staff address that proved nothing, handled as a customer's: why, and
    # the commands it would have given (not run)
    unproven_staff: str | None = None
    ignored_commands: tuple[str, ...] = ()


def others(mail: ParsedMail, addresses: list[str], own: frozenset[str],
           is_staff: Callable[[str], bool]) -> tuple[str, ...]:
    """Addresses that are neither us, nor staff, nor the sender."""
    return tuple(a for a in addresses
                 if a not in own and a != mail.sender.address and not is_staff(a))


def decide(mail: ParsedMail, verdict: Verdict, facts: TicketFacts, *,
           own: frozenset[str], is_staff: Callable[[str], bool]) -> Decision:
    """`own`: every address maild answers as; `is_staff`: whether an address is staff's."""
    if facts.ticket_id is None:
        return _no_ticket(mail, verdict, own, is_staff)
    if mail.bounce is not None:
        return _bounce(mail, facts)
    sender = mail.sender.address
    # Staff take part in every ticket. A staff address whose mail failed the staff check
    # is handled as a customer's (classify.py), flagged, but not as an outsider's.
    takes_part = (sender == facts.requester or sender in facts.participants
                  or is_staff(sender))
    if not (verdict.is_staff or takes_part or facts.colleague):
        return Decision("outside_message",
                        f"from {sender}, who takes no part in ticket #{facts.ticket_id}: "
                        "kept, nothing sent, nothing changed")
    if facts.survey_sent and facts.answers_survey and not verdict.is_staff \
            and not verdict.automatic:
        answer = read_answer(mail.new_text)
        rated = (f"satisfaction {answer.rating} of 5" if answer.rating
                 else "survey answer without a rating")
        # Words without a rating to a mail that invites a reply to reopen are a reply,
        # unless they only thank us.
        if answer.rating is not None or not facts.survey_invites_reopen \
                or only_thanks(mail.new_text):
            if not answer.problem_is_back:
                return Decision("survey_answer", rated,
                                rating=answer.rating, comment=answer.comment)
            again = ("a follow-up opened" if facts.status == "closed"
                     else "the ticket reopened")
            return Decision("survey_answer",
                            f"{rated}, saying the problem is back: {again}",
                            rating=answer.rating, comment=answer.comment, reopens=True)
    if verdict.automatic and facts.status == "closed":
        return Decision("automatic_reply", f"automatic reply stored ({verdict.automatic})")
    if facts.status == "closed":
        return Decision("follow_up", f"follow-up of closed ticket #{facts.ticket_id}",
                        requester=mail.sender.address)
    if verdict.is_staff and mail.sender.address != facts.requester:
        if verdict.automatic:
            return Decision("automatic_staff_mail",
                            f"automatic staff mail kept internal ({verdict.automatic})")
        commands = parse_commands(mail.new_text)
        if commands.errors:
            return Decision("commands_rejected", "commands rejected, nothing changed",
                            commands=commands)
        added = [a for a in commands.cc if a not in own]
        cc = _new(facts, [*_addressed(mail, own, is_staff), *added])
        if facts.answers_confirmation:
            return Decision("staff_confirms", "the engineer confirmed opening the ticket",
                            commands=commands, cc=cc)
        return Decision("staff_reply", "staff reply", commands=commands, cc=cc)
    if verdict.automatic:
        return Decision("automatic_reply", f"automatic reply stored ({verdict.automatic})")
    if verdict.unverified_staff and sender != facts.requester:
        return Decision("customer_reply", "staff address unproven: a customer's mail",
                        unproven_staff=verdict.unverified_staff,
                        ignored_commands=tuple(command_lines(mail.new_text)))
    if not takes_part:
        return Decision("customer_reply",
                        "customer reply from the requester's organisation, who joins",
                        cc=(sender,))
    if sender == facts.requester:
        return Decision("customer_reply", "customer reply",
                        cc=_new(facts, _addressed(mail, own, is_staff)))
    return Decision("customer_reply", "customer reply")


def _addressed(mail: ParsedMail, own: frozenset[str],
               is_staff: Callable[[str], bool]) -> tuple[str, ...]:
    return others(mail, [m.address for m in [*mail.to, *mail.cc]], own, is_staff)


def _new(facts: TicketFacts, addresses: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Those of `addresses` who do not take part in the ticket yet."""
    return tuple(a for a in dict.fromkeys(addresses)
                 if a not in facts.participants and a != facts.requester)


def _no_ticket(mail: ParsedMail, verdict: Verdict, own: frozenset[str],
               is_staff: Callable[[str], bool]) -> Decision:
    if verdict.automatic:
        # An auto-reply or bounce that answers nothing we know: never a ticket, never answered.
        return Decision("noise",
                        f"automatic message that belongs to no ticket ({verdict.automatic})")
    recipients = [m.address for m in [*mail.to, *mail.cc]]
    customers = others(mail, [m.address for m in mail.to], own, is_staff)
    claims_staff = verdict.is_staff or verdict.unverified_staff is not None
    if claims_staff and own.intersection(recipients) and customers:
        cc = others(mail, recipients, own, is_staff)[1:]
        if verdict.is_staff:
            return Decision("staff_brings_in_customer",
                            "ticket opened by staff for the customer",
                            requester=customers[0], cc=cc)
        return Decision("staff_brings_in_customer_unproven",
                        "ticket opened for the customer by a staff address that proved "
                        "nothing: waiting for the engineer to confirm",
                        requester=customers[0], cc=cc,
                        unproven_staff=verdict.unverified_staff,
                        ignored_commands=tuple(command_lines(mail.new_text)))
    return Decision("new_conversation", "new conversation", requester=mail.sender.address,
                    cc=others(mail, recipients, own, is_staff))


def _bounce(mail: ParsedMail, facts: TicketFacts) -> Decision:
    """A bounce is a claim: it fails a delivery of ours only for a recipient we sent that
    mail to. Whatever it says, it changes no ticket and answers nobody."""
    bounce = mail.bounce
    assert bounce is not None
    if not facts.bounced:
        return Decision("bounce", "bounce stored")
    if not bounce.failed:
        return Decision("bounce", "delivery delay warning stored")
    for sent in facts.bounced:
        failed_for = tuple(r for r in bounce.recipients if r in sent.recipients)
        if failed_for:
            return Decision("delivery_failed", f"bounce: delivery of {sent.message_id} failed",
                            bounced=sent.message_id, bounced_to=failed_for)
    return Decision("bounce", "bounce stored: it reports no recipient of the mail it names, "
                              "whose delivery stays as it was")
