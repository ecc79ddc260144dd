"""Message-IDs: found in the headers that carry them, and made for the mail maild writes."""

from __future__ import annotations

import re
import uuid

from maild.mail.addresses import ascii_domain

# As real clients write them (docs/design.md, "Threading"): whatever stands between angle
# brackets, of any length, without spaces; stricter grammars lose real mail.
MSG_ID = r"<[^<>\s]+>"
_MSG_ID = re.compile(MSG_ID)


def message_ids(value: str) -> list[str]:
    """Every Message-ID in a header value (Message-ID, In-Reply-To, References), in order."""
    return _MSG_ID.findall(value)


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
