"""Building the bytes of a mail that Gmail, Outlook and Thunderbird all show and thread right."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime

from maild.mail.addresses import InvalidAddress, ascii_domain
from maild.mail.message_id import references, writable
from maild.mail.policy import address_header
from maild.mail.subject import tagged

# A boundary has only to be absent from the parts it separates, and every part maild
# writes is quoted-printable, which never holds two "=" in a row, or base64, which never
# holds a "-"; a boundary line starts "--==". So maild's two boundaries are fixed (in
# email's own format), rather than email drawing one per mail and compiling a regular
# expression to search the whole mail for it; and the headers naming them are parsed
# and folded once. Being random would add nothing: every mail maild sends shows them.
_ALTERNATIVE = "===============4761837522406173921=="
_MIXED = "===============0930276457183905512=="


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
    # Who it is delivered to, when not everyone in To and Cc (each engineer's own copy)
    envelope_to: list[str] | None = None

    @property
    def recipients(self) -> list[str]:
        if self.envelope_to is not None:
            return list(self.envelope_to)
        return [p.address for p in [*self.to, *self.cc]]


def one_line(value: str) -> str:
    """No customer-controlled value can start a header of its own."""
    return " ".join(value.replace("\x00", "").split())


def tag_subject(subject: str, ticket_id: int) -> str:
    """`[#N]` once, in front of the subject without its Re:/AW: prefixes."""
    return tagged(one_line(subject), ticket_id)


def _mailbox(party: Party) -> tuple[str, str, str]:
    """Display name, local part and domain as the header carries them: the domain in its
    ASCII form (an encoded word is no domain); a local part that is not ASCII is written
    as UTF-8 (`render_mail`)."""
    username, _, domain = party.address.rpartition("@")
    try:
        domain = ascii_domain(domain)
    except InvalidAddress:
        pass  # kept as stored: its delivery fails, saying why (outbound/smtp.py)
    return one_line(party.name), username, domain


def _addresses(policy: EmailPolicy, name: str, *parties: Party) -> object:
    return address_header(policy, name, tuple(_mailbox(p) for p in parties))


def render_mail(mail: OutgoingMail, policy: EmailPolicy) -> bytes:
    """`policy`: how headers are written (MailPolicies.writing, maild/mail/policy.py)."""
    return _message(mail, policy).as_bytes()


def render_copies(mail: OutgoingMail, policy: EmailPolicy, message_ids: list[str]
                  ) -> list[bytes]:
    """`mail` once per Message-ID in `message_ids` (each engineer's copy of a mail to
    the team), each as `render_mail` writes it: the message is built once, and only
    its Message-ID changes from one copy to the next."""
    message = _message(mail, policy)
    copies = []
    for message_id in message_ids:
        message.replace_header("Message-ID", message_id)
        copies.append(message.as_bytes())
    return copies


def _message(mail: OutgoingMail, policy: EmailPolicy) -> EmailMessage:
    parties = [mail.sender, *mail.to, *mail.cc, *([mail.reply_to] if mail.reply_to else [])]
    # An address that is not ASCII as written (its local part) can only be written as
    # UTF-8 (RFC 6532); such a mail travels only with SMTPUTF8 anyway.
    if not all("".join(_mailbox(party)[1:]).isascii() for party in parties):
        policy = policy.clone(utf8=True)
    message = EmailMessage(policy=policy)
    message["From"] = _addresses(policy, "From", mail.sender)
    message["To"] = _addresses(policy, "To", *mail.to)
    if mail.cc:
        message["Cc"] = _addresses(policy, "Cc", *mail.cc)
    if mail.reply_to:
        message["Reply-To"] = _addresses(policy, "Reply-To", mail.reply_to)
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
    return message
