"""Building the bytes of a mail that Gmail, Outlook and Thunderbird all show and thread right."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from maild.mail.addresses import ascii_domain, domain_of, local_part
from maild.mail.message_id import references, writable
from maild.mail.policy import WRITING, WRITING_UTF8, WRITTEN_HEADERS
from maild.mail.subject import tagged


def _boundary() -> str:
    return f"{'=' * 15}{secrets.randbelow(10 ** 19):019d}=="


# A boundary has only to be absent from the parts it separates, and every part maild
# writes is quoted-printable, which never holds two "=" in a row, or base64, which never
# holds a "-"; a boundary line starts "--==". So each process draws its two boundaries
# once (in email's own format), rather than email drawing one per mail and compiling a
# regular expression to search the whole mail for it; and the headers naming them are
# parsed and folded once.
_ALTERNATIVE = _boundary()
_MIXED = _boundary()


@dataclass(frozen=True)
class Party:
    address: str
    name: str = ""


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class OutgoingMail:
    sender: Party
    to: list[Party]
    subject: str
    text: str
    message_id: str
    date: datetime
    cc: list[Party] = field(default_factory=list)
    html: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    reply_to: Party | None = None
    auto_submitted: str | None = None  # "auto-replied" | "auto-generated"
    attachments: list[OutgoingAttachment] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        return [p.address for p in [*self.to, *self.cc]]


def one_line(value: str) -> str:
    """No customer-controlled value can start a header of its own."""
    return " ".join(value.replace("\x00", "").split())


def tag_subject(subject: str, ticket_id: int) -> str:
    """`[#N]` once, in front of the subject without its Re:/AW: prefixes."""
    return tagged(one_line(subject), ticket_id)


def _written_address(address: str) -> tuple[str, str]:
    """Local part and domain as the header carries them: the domain in ASCII form."""
    return local_part(address), ascii_domain(domain_of(address))


@lru_cache(maxsize=1024)
def _mailboxes(name: str, parties: tuple[Party, ...]) -> Any:
    """An address header, made once for parties that repeat (the desk's own From and
    Reply-To): set from `Address` objects, so that each display name is written as
    meant (maild/mail/headers.py), never read back from text."""
    mailboxes = []
    for party in parties:
        username, domain = _written_address(party.address)
        mailboxes.append(Address(display_name=one_line(party.name), username=username,
                                 domain=domain))
    return WRITTEN_HEADERS(name, mailboxes)


def _needs_utf8(mail: OutgoingMail) -> bool:
    """An address with a non-ASCII local part is written only in UTF-8 headers (RFC 6532)."""
    parties = [mail.sender, *mail.to, *mail.cc, *([mail.reply_to] if mail.reply_to else [])]
    return not all("".join(_written_address(p.address)).isascii() for p in parties)


def render_mail(mail: OutgoingMail) -> bytes:
    message = EmailMessage(policy=WRITING_UTF8 if _needs_utf8(mail) else WRITING)
    message["From"] = _mailboxes("From", (mail.sender,))
    message["To"] = _mailboxes("To", tuple(mail.to))
    if mail.cc:
        message["Cc"] = _mailboxes("Cc", tuple(mail.cc))
    if mail.reply_to:
        message["Reply-To"] = _mailboxes("Reply-To", (mail.reply_to,))
    message["Subject"] = one_line(mail.subject)
    message["Date"] = format_datetime(mail.date)
    message["Message-ID"] = mail.message_id
    if mail.in_reply_to and writable(mail.in_reply_to):
        message["In-Reply-To"] = mail.in_reply_to
    chain = references(mail.references)
    if chain:
        message["References"] = " ".join(chain)
    if mail.auto_submitted:
        message["Auto-Submitted"] = mail.auto_submitted
        # Ask Exchange/Outlook not to answer this with an out-of-office reply.
        message["X-Auto-Response-Suppress"] = "All"
    message.set_content(mail.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if mail.html is not None:
        message.make_alternative(boundary=_ALTERNATIVE)
        message.add_alternative(mail.html, subtype="html", charset="utf-8", cte="quoted-printable")
    if mail.attachments:
        message.make_mixed(boundary=_MIXED)
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        # The filename is encoded per RFC 2231 when it is not ASCII.
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                               filename=one_line(attachment.filename))
    return message.as_bytes()
