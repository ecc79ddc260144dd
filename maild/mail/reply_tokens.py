"""Reply tokens: how an engineer's mail proves it answers maild's own mail to them.

Every mail maild sends to a staff address about ticket N has a Message-ID ending in a
token: an HMAC over N and that address, keyed by a secret of the site (kept in the
database, maild/db/secrets.py). Mail clients name the Message-ID they answer in
In-Reply-To and References, so an engineer's reply carries the token back. Only the
addressee has seen it, and it is good for that address on that ticket alone: a From
header and a ticket number prove nothing (docs/design.md, "Who may do what").
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from maild.mail.message_id import new_message_id

# Of the 256 bits, 128 are kept: out of reach of guessing, short enough for a Message-ID.
_TOKEN_HEX = 32
_TOKENED = re.compile(r"<maild\.(\d{1,18})\.[0-9a-f]{32}\.([0-9a-f]{32})@[^<>\s]+>",
                      re.IGNORECASE)


class ReplyTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, ticket_id: int, address: str) -> str:
        signed = f"reply-token\x00{ticket_id}\x00{address.lower()}".encode()
        return hmac.new(self._secret, signed, hashlib.sha256).hexdigest()[:_TOKEN_HEX]

    def message_id(self, domain: str, ticket_id: int, address: str) -> str:
        """A Message-ID for a mail to `address` about ticket `ticket_id`."""
        return new_message_id(domain, ticket_id, token=self.token(ticket_id, address))

    def answered_tickets(self, message_ids: Iterable[str], address: str) -> frozenset[int]:
        """The tickets on which these Message-IDs (those a mail answers) name a mail
        maild sent to `address`."""
        found = set()
        for message_id in message_ids:
            match = _TOKENED.fullmatch(message_id)
            if match is None:
                continue
            ticket_id = int(match.group(1))
            if hmac.compare_digest(match.group(2).lower(), self.token(ticket_id, address)):
                found.add(ticket_id)
        return frozenset(found)
