"""Pure decisions about a parsed mail, each with the reason it was made."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from maild.config import Config
from maild.intake.authenticity import StaffProof, staff_proof
from maild.intake.parse import ParsedMail
from maild.mail.addresses import is_mailer_daemon
from maild.mail.reply_tokens import ReplyTokens


@dataclass(frozen=True)
class Verdict:
    is_staff: bool
    automatic: str | None  # why the mail was written by a machine, or None
    loop: str | None  # why answering it would make a loop, or None
    # Why mail from a staff address is treated as a customer's (it failed the check)
    unverified_staff: str | None = None
    # What mail from a staff address proves; None for everyone else's mail
    staff_proof: StaffProof | None = None

    def staff_on(self, ticket_id: int | None) -> bool:
        """Whether the sender is proven staff on this ticket (None: on no ticket)."""
        return self.staff_proof is not None and self.staff_proof.proves(ticket_id)

    def on_ticket(self, ticket_id: int | None) -> Verdict:
        """The verdict once the ticket the mail belongs to is known: a reply token
        proves its sender on its own ticket only."""
        if self.staff_proof is None:
            return self
        return replace(self, is_staff=self.staff_proof.proves(ticket_id),
                       unverified_staff=self.staff_proof.why_not(ticket_id))


# What Exchange and Outlook write on their out-of-office replies instead of RFC 3834's
# Auto-Submitted: X-Auto-Response-Suppress (All, or naming OOF or AutoReply) asks that
# nobody answer the mail automatically, which a person's mail never asks.
_SUPPRESSES_REPLIES = re.compile(r"\b(all|oof|autoreply)\b", re.IGNORECASE)
# The prefixes out-of-office replies put before the subject they answer, in the languages
# clients write them; a colon follows ("Out of office message lost" is a person asking).
_OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|out of (the )?office( auto-?reply)?|"
    r"abwesenheitsnotiz|automatische antwort|réponse automatique|respuesta automática|"
    r"risposta automatica|automatisch antwoord|autosvar|automaattinen vastaus)\s*:",
    re.IGNORECASE,
)


def automatic_reason(mail: ParsedMail) -> str | None:
    """RFC 3834 and the de-facto headers of auto-responders, lists and bounces."""
    headers = mail.headers
    auto_submitted = headers.get("auto-submitted", "").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if "list-id" in headers:
        return "List-Id present (mailing list)"
    if headers.get("return-path", "").strip() == "<>":
        return "empty Return-Path (bounce)"
    if is_mailer_daemon(mail.sender.address):
        return f"sent by {mail.sender.address}"
    if mail.content_type == "multipart/report":
        return "delivery or disposition report"
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return "X-Autoreply present"
    suppress = headers.get("x-auto-response-suppress", "")
    if _SUPPRESSES_REPLIES.search(suppress):
        return f"X-Auto-Response-Suppress: {' '.join(suppress.split())[:60]}"
    if _OUT_OF_OFFICE_SUBJECT.match(mail.subject):
        return "out-of-office subject"
    return None


def loop_reason(mail: ParsedMail, config: Config) -> str | None:
    own = config.own_addresses
    if mail.sender.address in own:
        return f"sent from our own address {mail.sender.address}"
    x_loop = mail.headers.get("x-loop", "").lower()
    if any(address in x_loop for address in own):
        return "X-Loop names our address"
    return None


def classify(mail: ParsedMail, config: Config, tokens: ReplyTokens) -> Verdict:
    """The verdict before the mail's ticket is known (see `Verdict.on_ticket`)."""
    proof = None
    if config.staff.is_staff(mail.sender.address):
        proof = staff_proof(mail.sender.address, mail.thread_ids,
                            mail.authentication_results, config.staff, tokens)
    return Verdict(
        is_staff=proof is not None and proof.proves(None),
        automatic=automatic_reason(mail),
        loop=loop_reason(mail, config),
        unverified_staff=proof.why_not(None) if proof is not None else None,
        staff_proof=proof,
    )
