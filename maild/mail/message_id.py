"""Message-IDs: found in the headers that carry them, and made for the mail maild writes."""

from __future__ import annotations

import re
import uuid

from maild.mail.addresses import ascii_domain

# As real clients write them (docs/design.md, "Threading"): whatever stands between angle
# brackets, of any length, without spaces; stricter grammars lose real mail.
MSG_ID = r"<[^<>\s]+>"
_MSG_ID = re.compile(MSG_ID)

# The longest ID a header line can carry after the space that folds it (RFC 5322 2.1.1).
_LONGEST_WRITABLE = 997
# References keeps the first ID and the latest ones (RFC 5322 3.6.4 lets a writer trim).
REFERENCES_KEPT = 20


# What threading reads of a mail's own headers: In-Reply-To names what it answers (one
# ID, a few when it answers several), References the thread, oldest first. A client
# keeps the first and the latest when it trims (RFC 5322 3.6.4 allows it), and so do
# we: a header of 130,000 IDs costs no more than one of 48.
IN_REPLY_TO_READ = 8
REFERENCES_READ = 40


def read_in_reply_to(ids: list[str]) -> list[str]:
    """The In-Reply-To IDs threading reads: the first few."""
    return ids[:IN_REPLY_TO_READ]


def read_references(ids: list[str]) -> list[str]:
    """The References IDs threading reads: the first (the thread's start) and the latest."""
    if len(ids) <= REFERENCES_READ:
        return ids
    return [ids[0], *ids[-(REFERENCES_READ - 1):]]


def message_ids(value: str) -> list[str]:
    """Every Message-ID in a header value (Message-ID, In-Reply-To, References), in order."""
    return _MSG_ID.findall(value)


def writable(message_id: str) -> bool:
    """Whether an ID can be written in a 7-bit header as it is: printable ASCII, within a
    line. One that came to us in raw 8-bit or at absurd length cannot."""
    return (len(message_id) <= _LONGEST_WRITABLE and message_id.isascii()
            and message_id.isprintable())


def references(thread: list[str]) -> list[str]:
    """The References of a mail answering `thread` (its IDs, oldest first): the writable
    ones, the first and the latest when there are many."""
    ids = [i for i in thread if writable(i)]
    if len(ids) <= REFERENCES_KEPT:
        return ids
    return [ids[0], *ids[-(REFERENCES_KEPT - 1):]]


def new_message_id(domain: str, ticket_id: int | None = None, token: str | None = None
                   ) -> str:
    """`<maild.N.RANDOM@domain>`, or `<maild.N.RANDOM.TOKEN@domain>` for a mail to staff
    (maild/mail/reply_tokens.py): a dot-atom on both sides of the @, as RFC 5322 asks,
    the domain in its ASCII form."""
    prefix = f"maild.{ticket_id}." if ticket_id is not None else "maild."
    suffix = f".{token}" if token else ""
    return f"<{prefix}{uuid.uuid4().hex}{suffix}@{ascii_domain(domain)}>"


def weekly_message_id(kind: str, week: str, domain: str) -> str:
    """The Message-ID of a mail maild sends once a week ("digest", "2026-W48"): the same
    for everyone who would send it, so that it is queued once."""
    return f"<maild.{kind}.{week}@{ascii_domain(domain)}>"
