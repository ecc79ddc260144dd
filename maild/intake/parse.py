"""From raw bytes to a ParsedMail: headers decoded, text extracted, nothing raised for bad input
but a ParseError saying what is wrong."""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from mimetypes import guess_type

from maild.errors import PermanentError
from maild.intake.bounces import Bounce, read_bounce
from maild.intake.large import STORED_PART, Skeleton, StoredPart
from maild.intake.replies import new_text
from maild.intake.tnef import is_tnef
from maild.intake.tnef import unpack as unpack_tnef
from maild.mail.addresses import (
    InvalidAddress,
    Mailbox,
    normalise,
    parse_mailboxes,
    recovered_mailboxes,
)
from maild.mail.message_id import message_ids, read_in_reply_to, read_references
from maild.mail.printable import printable_line, printable_text

log = logging.getLogger(__name__)


class ParseError(PermanentError):
    pass


@dataclass(frozen=True)
class Attachment:
    filename: str  # as the sender named it: for display and relaying, never for a path
    content_type: str
    size: int
    data: bytes = field(default=b"", repr=False, compare=False)
    # Set when a large part was streamed to the attachment store instead (see large.py).
    stored_sha256: str | None = None


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    subject: str
    sender: Mailbox
    to: list[Mailbox]
    cc: list[Mailbox]
    date: datetime | None
    in_reply_to: list[str]  # the first few, as threading reads them
    references: list[str]  # the first and the latest, as threading reads them
    text: str  # the whole text body
    new_text: str  # what the author wrote now, quoted history removed
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names, first value
    content_type: str = "text/plain"
    attachments: list[Attachment] = field(default_factory=list)
    bounce: Bounce | None = None  # set when this is a report that one of our mails bounced
    authentication_results: list[str] = field(default_factory=list)  # every such header

    @property
    def thread_ids(self) -> list[str]:
        """Message-IDs this mail answers, nearest first."""
        ids = list(self.in_reply_to)
        ids += [ref for ref in reversed(self.references) if ref not in ids]
        return ids


# A header longer than this is read as it came, unfolded, not through email's parser:
# its structured parse takes time that grows faster than its length (a References of
# 130,000 IDs, 1.7 MB, took 28 s), and nothing honest is that long.
LONGEST_PARSED_HEADER = 16 * 1024
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _Headers:
    """A message's headers as text: the first value of a name as `Message.get` reads it,
    or every value as it came. `get` goes through every header for each name asked;
    this goes through them once."""

    def __init__(self, message: Message) -> None:
        self._message = message
        self._by_name: dict[str, list[tuple[str, str]]] = {}
        for name, raw in message.raw_items():
            self._by_name.setdefault(name.lower(), []).append((name, raw))

    def __getitem__(self, name: str) -> str:
        """The header as text, "" when absent; one the parser cannot decode degrades to
        its raw form."""
        found = self._by_name.get(name.lower())
        if not found:
            return ""
        if len(found[0][1]) > LONGEST_PARSED_HEADER:
            value = _LINE_BREAK.sub("", found[0][1])  # unfolded (RFC 5322 2.2.3)
        else:
            try:
                value = self._message.policy.header_fetch_parse(*found[0])
            except Exception:  # email's header classes raise several types on broken input
                value = found[0][1]
        text = str(value).replace("\x00", "")  # PostgreSQL text cannot hold NUL
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip()

    def every(self, name: str) -> list[str]:
        """Every value of the header, unparsed."""
        return [str(raw) for _, raw in self._by_name.get(name.lower(), [])]


def decode_text_part(part: Message) -> str:
    """The text of one part, in any charset Python knows; unknown ones become U+FFFD."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="strict")
    except (LookupError, UnicodeDecodeError):
        # A wrong or unknown label: windows-1252 sent as "utf-8" is the usual case.
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = payload.decode("windows-1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


# The libraries parsing uses, each imported where it is first used (see
# maild/intake/replies.py, _parser); the parser process loads them as it starts.
PARSING_LIBRARIES = ("inscriptis", "flufl.bounce", "mailparser_reply", "tnefparse")


def html_to_text(html: str) -> str:
    from inscriptis import get_text  # see maild/intake/replies.py, _parser

    return get_text(html).strip()


def _parts(message: Message) -> Iterator[Message]:
    """The leaf parts in order; a forwarded message (message/rfc822) is one leaf."""
    stack = [message]
    while stack:
        part = stack.pop()
        if part.get_content_type() != "message/rfc822" and part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
            continue
        yield part


@dataclass(frozen=True)
class _Content:
    body: str  # what the author wrote (quoted history still in it)
    forwarded: list[str]  # forwarded messages, each as the SE should read it
    attachments: list[Attachment]

    @property
    def text(self) -> str:
        return _paragraphs(self.body, *self.forwarded)


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(t for t in texts if t)


def _forwarded(part: Message) -> _Content:
    """A forwarded message as the SE should read it: who, when, what, then its text."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return _Content("", [], [])
    content = _content(inner)
    lines = ["---------- Forwarded message ----------"]
    headers = _Headers(inner)
    for name in ("From", "Date", "Subject", "To"):
        value = headers[name]
        if value:
            lines.append(f"{name}: {printable_line(value)}")
    return _Content("\n".join(lines) + "\n\n" + content.text, [], content.attachments)


def _attachment(filename: str, content_type: str, data: bytes) -> Attachment:
    return Attachment(filename=_safe_filename(filename), content_type=content_type,
                      size=len(data), data=data)


_NOTHING_STORED: Mapping[str, StoredPart] = {}


def _content(message: Message, stored: Mapping[str, StoredPart] = _NOTHING_STORED) -> _Content:
    plain: str | None = None
    html: str | None = None
    forwarded: list[str] = []
    carried = ""  # the text a winmail.dat carried, for mail whose body is only that
    attachments: list[Attachment] = []
    for part in _parts(message):
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = _forwarded(part)
            forwarded.append(inner.body)
            attachments += inner.attachments
            continue
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and content_type not in ("text/plain",)):
            kept = stored.get(str(part.get(STORED_PART, "")).strip())
            if kept is not None:
                attachments.append(Attachment(
                    filename=_safe_filename(str(filename or "unnamed")),
                    content_type=content_type, size=kept.size, stored_sha256=kept.sha256,
                ))
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            unpacked = unpack_tnef(data) if is_tnef(content_type, str(filename or "")) else None
            if unpacked is not None:
                carried = carried or unpacked.text
                attachments += [_attachment(name, guess_type(name)[0] or
                                            "application/octet-stream", content)
                                for name, content in unpacked.files]
            if unpacked is None or not unpacked.files:  # nothing found: keep it as it came
                attachments.append(_attachment(str(filename or "unnamed"), content_type, data))
            continue
        if part.get_content_maintype() == "multipart" and plain is None:
            # A multipart without a boundary cannot be split: its words are still words.
            plain = decode_text_part(part)
        elif content_type == "text/plain" and plain is None:
            plain = decode_text_part(part)
        elif content_type == "text/html" and html is None:
            html = decode_text_part(part)
    if plain is not None and plain.strip():
        body = plain.strip()
    elif html is not None:
        body = html_to_text(html)
    else:
        body = (plain or "").strip() or carried
    return _Content(body, forwarded, attachments)


def _safe_filename(name: str) -> str:
    """The last path component, without control characters: what a recipient may be shown."""
    name = "".join(c for c in name if c >= " " and c != "\x7f")
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip(" .")
    return name[:200] or "unnamed"


def _printable(mailboxes: list[Mailbox]) -> list[Mailbox]:
    """Display names as they may be shown: on one line, without control characters."""
    return [Mailbox(m.address, printable_line(m.name)) if m.name else m for m in mailboxes]


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _bounce(message: EmailMessage, text: str, sender: str, subject: str) -> Bounce | None:
    """A report too broken to read is kept as an ordinary automatic mail, not lost."""
    try:
        return read_bounce(message, text, sender, subject)
    except Exception:  # the stdlib parser's many errors on hostile report parts
        log.warning("could not read the delivery report in a mail from %s", sender)
        return None


def _sender(header: _Headers) -> Mailbox:
    """Who wrote the mail, as a person reads the From header: a value that is not RFC
    5322 (an unquoted comma in the name, no angle brackets, which the header parser turns
    into something else) is read again as it came, and its one address taken."""
    from_value = header["From"]
    if not from_value:
        raise ParseError("the message has no From header")
    senders = parse_mailboxes([from_value])
    if senders:
        return senders[0]
    as_written = str(make_header(decode_header(header.every("From")[0])))
    recovered = recovered_mailboxes(as_written)
    if len(recovered) == 1:
        return recovered[0]
    if recovered:
        raise ParseError(f"invalid sender: {as_written!r} names several addresses, "
                         "none of them clearly the author")
    claimed = getaddresses([from_value])[0][1] or from_value
    try:
        normalise(claimed)
    except InvalidAddress as exc:
        raise ParseError(f"invalid sender: {exc}") from None
    raise ParseError(f"invalid sender: {from_value!r} names no address")


def parse(raw: bytes, policy: EmailPolicy, *, large: Skeleton | None = None,
          raw_sha256: str | None = None) -> ParsedMail:
    """`policy`: how headers are read (MailPolicies.reading, maild/mail/policy.py).
    `large`: the skeleton of `raw` whose large parts are already stored; then `raw`
    is not needed in memory, only its SHA-256 (given when known: it is not computed
    again)."""
    if large is None and not raw.strip():
        raise ParseError("the message is empty")
    try:
        return _parse(raw, policy, large, raw_sha256)
    except RecursionError:
        raise ParseError("MIME parts nested too deeply to read") from None


def whole_text(raw: bytes, policy: EmailPolicy) -> str:
    """The mail's whole text body as `parse` reads it, and nothing else of it: what a page
    folds under the new text of a mail taken in before."""
    message = email.message_from_bytes(raw, policy=policy)
    return printable_text(_content(message).text)


def _parse(raw: bytes, policy: EmailPolicy, large: Skeleton | None, raw_sha256: str | None
           ) -> ParsedMail:
    message = email.message_from_bytes(large.raw if large else raw, policy=policy)
    assert isinstance(message, EmailMessage)

    header = _Headers(message)
    if len(header.every("From")) > 1:
        # Which one is the sender? Mail systems disagree, and that is how authenticity
        # checks are fooled; RFC 5322 allows exactly one.
        raise ParseError("more than one From header")
    sender = _sender(header)

    own_ids = message_ids(header["Message-ID"])
    if own_ids:
        message_id = own_ids[0]
    else:
        digest = raw_sha256 or hashlib.sha256(raw).hexdigest()
        message_id = f"<{digest}@no-message-id.maild>"

    content = _content(message, large.stored if large else _NOTHING_STORED)
    headers = {
        name: header[name]
        for name in (
            "auto-submitted",
            "delivered-to",
            "x-original-to",
            "precedence",
            "list-id",
            "list-unsubscribe",
            "return-path",
            "x-auto-response-suppress",
            "x-autoreply",
            "x-autorespond",
            "x-autoresponder",
            "x-autoreply-from",
            "x-mail-autoreply",
            "x-autogenerated",
            "x-fc-machinegenerated",
            "x-precedence",
            "x-loop",
        )
    }
    return ParsedMail(
        message_id=message_id,
        subject=printable_line(header["Subject"]),
        sender=_printable([sender])[0],
        to=_printable(parse_mailboxes(header.every("To"))),
        cc=_printable(parse_mailboxes(header.every("Cc"))),
        date=_date(header["Date"]),
        in_reply_to=read_in_reply_to(message_ids(header["In-Reply-To"])),
        references=read_references(message_ids(header["References"])),
        text=printable_text(content.text),
        new_text=printable_text(_paragraphs(new_text(content.body), *content.forwarded)),
        headers={k: v for k, v in headers.items() if v},
        content_type=message.get_content_type(),
        attachments=content.attachments,
        bounce=_bounce(message, content.text, sender.address, header["Subject"]),
        authentication_results=[" ".join(v.split())
                                for v in header.every("Authentication-Results")],
    )
