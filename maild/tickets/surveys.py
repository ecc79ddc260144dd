"""Customer satisfaction: one short survey when a ticket is solved, and its answer.

The survey is due from the database (a solved ticket with no `survey_sent_at`), so a
restart or a second scheduler never sends it twice. A ticket solved for want of an
answer is asked in the notice that says so (followups.py): one mail, not two at once. An
answer ("good", "bad", or 1-5, with an optional comment) is recorded on the ticket and
never reopens it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from maild.clock import Clock
from maild.db.database import Database
from maild.db.loads import SWEEP_LOADS, claim_tickets
from maild.db.models import OutboxMail, Ticket
from maild.outbound.caps import automatic_mail_waits
from maild.outbound.mails import Mails
from maild.tickets.failed_steps import SURVEY, each_ticket, forget_settled, not_held_back
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import record

log = logging.getLogger(__name__)

_WORDS = {"good": 5, "great": 5, "excellent": 5, "bad": 1, "poor": 1, "terrible": 1}
_ANSWER = re.compile(r"^\s*(?P<rating>[1-5]\b|[a-z]+)[\s.!,:;-]*(?P<comment>.*)$",
                     re.IGNORECASE | re.DOTALL)


def read_rating(text: str) -> tuple[int, str] | None:
    """(rating 1-5, comment) from an answer to the survey, or None if it is not one."""
    match = _ANSWER.match(text)
    if match is None:
        return None
    word = match.group("rating").lower()
    rating = int(word) if word.isdigit() else _WORDS.get(word)
    if rating is None:
        return None
    return rating, " ".join(match.group("comment").split())


# The mails that ask the satisfaction question: the survey, and the notice of an
# auto-solve, which asks it in the same mail.
ASKING_PURPOSES = ("survey", "auto_solved")


def answers_survey(session: Session, thread_ids: list[str]) -> bool:
    if not thread_ids:
        return False
    return session.scalar(
        select(OutboxMail.id).where(OutboxMail.message_id.in_(thread_ids),
                                    OutboxMail.purpose.in_(ASKING_PURPOSES))
    ) is not None


@dataclass(frozen=True)
class Surveys:
    db: Database
    clock: Clock
    mails: Mails
    automatic_per_hour: int  # outbound.auto_replies_per_hour: to one address, at most

    def _survey(self, session: Session, ticket: Ticket, now: datetime) -> bool:
        ticket.survey_sent_at = now
        waits = automatic_mail_waits(session, ticket.requester, now, self.automatic_per_hour)
        if waits:
            # A survey is a favour asked, not owed: one too many is left out.
            record(ticket, now, SYSTEM_ACTOR, "survey_withheld", detail=waits)
            return False
        self.mails.to_customer(session, ticket, "survey", "survey")
        record(ticket, now, SYSTEM_ACTOR, "survey_sent")
        return True

    def send(self, batch: int = 500) -> int:
        """The survey to every solved ticket that has not had it (an auto-solved ticket
        had it with the notice that solved it)."""
        now = self.clock.now()
        sent = 0
        while True:
            with self.db.transaction() as session:
                forget_settled(session, SURVEY, and_(Ticket.status == "solved",
                                                     Ticket.survey_sent_at.is_(None)))
                tickets = session.scalars(claim_tickets(
                    Ticket.status == "solved", Ticket.survey_sent_at.is_(None),
                    not_held_back(SURVEY, now), limit=batch, loads=SWEEP_LOADS,
                )).all()
                sent += sum(each_ticket(session, SURVEY, tickets, now,
                                        lambda ticket: self._survey(session, ticket, now)).done)
            if len(tickets) < batch:
                break
        if sent:
            log.info("sent %d satisfaction surveys", sent)
        return sent
