"""Message-IDs: found in the headers that carry them, and made for the mail maild writes."""

from __future__ import annotations

import re
import uuid

# As real clients write them (docs/design.md, "Threading"): whatever stands between angle
# brackets, of any length, without spaces; stricter grammars lose real mail.
MSG_ID = r"<[^<>\s]+>"
_MSG_ID = re.compile(MSG_ID)


def message_ids(value: str) -> list[str]:
    """Every Message-ID in a header value (Message-ID, In-Reply-To, References), in order."""
    return _MSG_ID.findall(value)


def new_message_id(domain: str, ticket_id: int | None = None) -> str:
    prefix = f"maild.{ticket_id}." if ticket_id is not None else "maild."
    return f"<{prefix}{uuid.uuid4().hex}@{domain}>"


def weekly_message_id(kind: str, week: str, domain: str) -> str:
    """The Message-ID of a mail maild sends once a week ("digest", "2026-W48"): the same
    for everyone who would send it, so that it is queued once."""
    return f"<maild.{kind}.{week}@{domain}>"
