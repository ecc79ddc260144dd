"""Whether mail from a staff address comes from that engineer (docs/design.md, "Who may
do what"). A From header proves nothing; two things do:

- A reply token (verify = "reply-token", the default): the mail answers, in In-Reply-To
  or References, a mail maild sent to that very address about the ticket, whose
  Message-ID carries a token only that address has seen (maild/mail/reply_tokens.py).
  It proves the sender on that ticket only.
- The receiving server's verdict, when trusted_authserv_ids is set (in either mode): the
  topmost Authentication-Results header written by a trusted authserv-id (RFC 8601)
  shows dkim passing for the address's domain (header.d, or header.i as Gmail writes it),
  spf passing for a sender in it (smtp.mailfrom), or dmarc passing for it (header.from).
  Headers further down were in the mail before our server saw it: the sender's own words
  (RFC 8601 section 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maild.config import StaffConfig
from maild.mail.addresses import InvalidAddress, ascii_domain, domain_of
from maild.mail.reply_tokens import ReplyTokens


@dataclass(frozen=True)
class StaffProof:
    """What mail from a staff address proves about its sender."""

    address: str
    everywhere: bool  # on any ticket: verify = "none", or the receiving server's pass
    tickets: frozenset[int] = frozenset()  # the tickets whose mail to the address it answers
    by_token: bool = False  # a reply token would prove it (verify = "reply-token")
    server_says: str | None = None  # what the receiving server's verdict lacks, if asked

    def proves(self, ticket_id: int | None) -> bool:
        return self.everywhere or (ticket_id is not None and ticket_id in self.tickets)

    def why_not(self, ticket_id: int | None) -> str | None:
        """Why the mail is not the engineer's on `ticket_id` (None: no ticket), or None."""
        if self.proves(ticket_id):
            return None
        lacking = []
        if self.by_token:
            about = f" about ticket #{ticket_id}" if ticket_id is not None else ""
            lacking.append(f"answers no mail maild sent to that address{about}")
        if self.server_says:
            lacking.append(self.server_says)
        return f"claims staff address {self.address}, but {', and '.join(lacking)}"


def staff_proof(address: str, answers: list[str], authentication_results: list[str],
                staff: StaffConfig, tokens: ReplyTokens) -> StaffProof:
    """`answers`: the Message-IDs the mail answers; `authentication_results`: its
    Authentication-Results headers, topmost first."""
    if staff.verify == "none":
        return StaffProof(address, everywhere=True)
    server_says = (_receiving_server_failure(address, authentication_results, staff)
                   if staff.trusted_authserv_ids else None)
    if staff.trusted_authserv_ids and server_says is None:
        return StaffProof(address, everywhere=True)
    if staff.verify == "authentication-results":
        return StaffProof(address, everywhere=False, server_says=server_says)
    return StaffProof(address, everywhere=False,
                      tickets=tokens.answered_tickets(answers, address), by_token=True,
                      server_says=server_says)


def _receiving_server_failure(address: str, headers: list[str], staff: StaffConfig
                              ) -> str | None:
    """None when the topmost trusted Authentication-Results passes for the address's
    domain, else what it (or its absence) says."""
    trusted = {server.lower() for server in staff.trusted_authserv_ids}
    try:
        domain = ascii_domain(domain_of(address)).lower()
    except InvalidAddress:
        domain = domain_of(address).lower()
    for header in headers:
        authserv_id, results = _parse(header)
        if authserv_id not in trusted:
            continue
        # The topmost one our server wrote: whatever lies below it, the sender wrote.
        if any(_passes(method, result, properties, domain)
               for method, result, properties in results):
            return None
        return (f"the topmost Authentication-Results from {authserv_id} shows no dkim, spf "
                f"or dmarc pass for {domain}")
    return f"no Authentication-Results from {', '.join(sorted(trusted))} is on it"


Result = tuple[str, str, dict[str, str]]  # method, result, {ptype.property: value}

_METHOD = re.compile(r"([a-z0-9_-]+)(?:/[0-9]+)?\s*=\s*([a-z]+)", re.IGNORECASE)
_PROPERTY = re.compile(r"([a-z0-9_-]+\.[a-z0-9_-]+)\s*=\s*(\"(?:[^\"\\]|\\.)*\"|[^\s\"]+)",
                       re.IGNORECASE)


def _passes(method: str, result: str, properties: dict[str, str], domain: str) -> bool:
    if result != "pass":
        return False
    if method == "dkim":  # Gmail names the signer by header.i (@domain), others by header.d
        return domain in (_domain(properties.get("header.d", "")),
                          _domain(properties.get("header.i", "")))
    if method == "spf":
        return _domain(properties.get("smtp.mailfrom", "")) == domain
    if method == "dmarc":
        return _domain(properties.get("header.from", "")) == domain
    return False


def _domain(value: str) -> str:
    return domain_of(value.strip('"')).strip().lower().rstrip(".")


def _parse(header: str) -> tuple[str, list[Result]]:
    """(authserv-id, its results) of one Authentication-Results value. Comments are
    dropped and quoted strings kept whole first, so that text the sender controls
    inside them (an address, a reason) cannot read as a result of its own."""
    statements = _statements(header)
    head = statements[0].split() if statements else []
    authserv_id = head[0].lower() if head else ""
    results: list[Result] = []
    for statement in statements[1:]:
        method = _METHOD.match(statement.strip())
        if method is None:
            continue
        rest = statement.strip()[method.end():]
        properties = {name.lower(): value for name, value in _PROPERTY.findall(rest)}
        results.append((method.group(1).lower(), method.group(2).lower(), properties))
    return authserv_id, results


_PIECE = re.compile(r'\\.|[()";]|[^\\()";]+', re.DOTALL)


def _statements(header: str) -> list[str]:
    """The value split at the semicolons that are neither quoted nor in a comment, with
    the comments removed (RFC 5322 CFWS, nested, with quoted-pairs)."""
    statements: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    for piece in _PIECE.findall(header):
        if depth:
            if piece == "(":
                depth += 1
            elif piece == ")":
                depth -= 1
        elif quoted:
            current.append(piece)
            quoted = piece != '"'
        elif piece == "(":
            depth = 1
            current.append(" ")
        elif piece == '"':
            quoted = True
            current.append(piece)
        elif piece == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(piece)
    statements.append("".join(current))
    return statements
