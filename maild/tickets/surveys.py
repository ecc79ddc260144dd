"""Customer satisfaction: one short survey when a ticket is solved, and its answer.

The survey is due from the database (a solved ticket with no `survey_sent_at`), so a
restart or a second scheduler never sends it twice. A ticket solved for want of an
answer is asked in the notice that says so (followups.py): one mail, not two at once.
Every reply to the survey is an answer, recorded on the ticket with its comment: a rating
("good", "bad", or 1-5) when it starts with one, else the words alone ("Thanks a lot!").
An answer reopens the ticket only when it says the problem is back ("not solved", "still
broken", "funktioniert immer noch nicht"). The auto-solve notice also invites a reply to
reopen: to it, a rating or thanks alone is an answer, and other words are a reply.
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


# What a customer writes when the problem is not gone, in the languages our customers
# write in. Each is a phrase, never a lone word: "still" alone is in "still grateful".
_PROBLEM_IS_BACK = re.compile(
    r"""\b(?:
        not\s+(?:yet\s+)?(?:solved|fixed|resolved|working|gone)
      | (?:is|are|was|were)(?:n't|\s+not)\s+(?:yet\s+)?(?:solved|fixed|resolved|working|gone)
      | (?:does|do|did)(?:n't|\s+not)\s+(?:work|help|fix)
      | still\s+(?:broken|not|doesn't|does\s+not|don't|can't|cannot|fails|failing|
                  happening|happens|occurs|down|crashing|crashes|the\s+same|an?\s+(?:issue|problem)|
                  getting|seeing|having)
      | (?:problem|issue|error|bug|outage)(?:'s|\s+is|\s+has)\s+(?:come\s+)?back
      | came\s+back | (?:broke|broken|failing|failed|down|happening|crashing)\s+again
      | please\s+re-?open
      | nicht\s+(?:gelöst|behoben|erledigt) | funktioniert\s+(?:\w+\s+)?nicht
      | immer\s+noch\s+(?:nicht|kaputt|da|dasselbe|das\s+gleiche|defekt)
      | geht\s+(?:\w+\s+)?nicht | wieder\s+(?:da|aufgetreten|kaputt)
      | pas\s+(?:encore\s+)?(?:résolu|réglé|corrigé) | toujours\s+(?:pas|le\s+même|en\s+panne)
      | ne\s+(?:fonctionne|marche)\s+(?:toujours\s+|plus\s+)?pas | est\s+revenu
      | no\s+(?:está\s+)?(?:resuelto|solucionado|arreglado) | sigue\s+(?:fallando|sin|igual)
      | no\s+funciona | todavía\s+no
      | niet\s+opgelost | nog\s+steeds\s+(?:niet|kapot|hetzelfde) | werkt\s+(?:\w+\s+)?niet
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class SurveyAnswer:
    rating: int | None  # 1-5, or None: words without a rating
    comment: str
    problem_is_back: bool  # the customer says it is not solved: the ticket reopens


def read_answer(text: str) -> SurveyAnswer:
    """What a reply to the survey says: its rating if it starts with one, its comment,
    and whether it says the problem is back."""
    rated = read_rating(text)
    rating, comment = rated if rated is not None else (None, " ".join(text.split()))
    return SurveyAnswer(rating, comment, says_problem_is_back(text))


# A reply that only thanks or says all is well: "Thanks a lot!", "all good, cheers".
_THANKS = re.compile(
    r"\b(?:thanks?|thank\s+you|thx|cheers|great|perfect|all\s+good|works\s+(?:now|fine)|"
    r"(?:is\s+)?(?:solved|resolved|fixed)\s+now|danke|merci|gracias|bedankt|grazie)\b",
    re.IGNORECASE)
THANKS_AT_MOST_WORDS = 15


def only_thanks(text: str) -> bool:
    """Whether a short reply only thanks us or says all is well, and asks nothing."""
    words = text.split()
    return (0 < len(words) <= THANKS_AT_MOST_WORDS and "?" not in text
            and _THANKS.search(text) is not None and not says_problem_is_back(text))


def says_problem_is_back(text: str) -> bool:
    return _PROBLEM_IS_BACK.search(text.replace("\u2019", "'")) is not None


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


# The mails that ask the satisfaction question, by outbox purpose: the survey, and the
# notice of an auto-solve, which asks it in the same mail. The survey says an answer
# reopens nothing; the notice also invites a reply to reopen.
SURVEY_PURPOSE = "survey"
ASKING_PURPOSES = (SURVEY_PURPOSE, "auto_solved")


def asking_mail_answered(session: Session, thread_ids: list[str]) -> str | None:
    """The purpose of the mail asking the satisfaction question that a mail answers (its
    In-Reply-To or References name it), or None."""
    if not thread_ids:
        return None
    return session.scalar(
        select(OutboxMail.purpose).where(OutboxMail.message_id.in_(thread_ids),
                                         OutboxMail.purpose.in_(ASKING_PURPOSES))
        .order_by(OutboxMail.id.desc()).limit(1)
    )


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
