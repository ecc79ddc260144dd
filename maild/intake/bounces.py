"""Reading a bounce: which of our mails did not arrive, to whom, and why.

Which mail is a bounce, and the recipients it reports, is flufl.bounce's (GNU Mailman's
detectors): RFC 3464 delivery status notifications, as Postfix, Exchange, Gmail and
Sendmail send them, and the prose of Exim, qmail, GroupWise, InterScan and a dozen other
MTAs and gateways. It is asked only about mail a delivery system wrote (a report, a
mailer-daemon or postmaster sender, an empty Return-Path, a subject of undelivered mail):
a person who forwards a bounce to ask about it is a person writing. What flufl.bounce
does not read, this module does: the Message-ID of the original, in the returned message
or its headers, and the status and diagnostic of a report.

Anyone can write a mail that looks like a bounce: what it says is only a claim. So it
names the recipients it reports, and a delivery of ours counts as failed only for a
recipient we sent it to (intake/decide.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses

from maild.mail.addresses import InvalidAddress, is_mailer_daemon, normalise
from maild.mail.message_id import MSG_ID

# A Message-ID header line, as returned headers and prose bounces quote the original's.
_MESSAGE_ID_LINE = re.compile(rf"^\s*Message-ID:\s*({MSG_ID})", re.IGNORECASE | re.MULTILINE)
# qmail's bounce (QSBMF) names each failed recipient on a line of its own: `<address>:`.
_QMAIL_RECIPIENT = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*$", re.MULTILINE)
# The words delivery systems put in their reports' subjects, in the languages they write
# them in. At the start of the subject they make a bounce of any sender's mail; anywhere
# in it, of a mailer-daemon's ("Fwd: Undeliverable: …" is a person asking about one).
_BOUNCE_SUBJECT = re.compile(
    r"\s*(undeliver|delivery status notification|failure notice|returned mail|"
    r"(mail )?delivery (has )?fail|mail delivery (failed|system)|non.?delivery|"
    r"(your )?(message|mail) (could|can) ?not be delivered|delivery failure|"
    r"unzustellbar|nicht zustellbar|non remis|non distribuable|onbestelbaar|"
    r"no se puede entregar|non recapitabile|returned to sender|delivery notification)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Bounce:
    original_ids: list[str]  # the Message-IDs of the mail that bounced
    failed: bool  # False for "delayed" warnings: the mail may still arrive
    recipients: list[str] = field(default_factory=list)  # those it reports, normalised
    reason: str = ""


def _delivery_fields(report: Message) -> list[Message]:
    """The per-message and per-recipient field blocks of a message/delivery-status part."""
    payload = report.get_payload()
    return [block for block in payload if isinstance(block, Message)] if isinstance(
        payload, list) else []


def _address(value: str) -> str:
    """An address as a report writes it (`rfc822; <ann@example.com>`), normalised as
    maild stores addresses, so that it compares with the recipients of our mail."""
    bare = value.split(";")[-1].strip().strip("<>").strip()
    try:
        return normalise(bare)
    except InvalidAddress:
        return bare.lower()


def _from_report(message: EmailMessage) -> tuple[list[str], bool, str]:
    recipients: list[str] = []
    actions: list[str] = []
    reasons: list[str] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _delivery_fields(part):
            named = [str(block.get(name) or "") for name in ("Final-Recipient",
                                                           "Original-Recipient")]
            if any(named):
                recipients += [_address(value) for value in named if value]
                actions.append(str(block.get("Action") or "failed").strip().lower())
                status = str(block.get("Status") or "").strip()
                diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
                reasons.append(" ".join(x for x in (status, diagnostic) if x))
    failed = not actions or any(a == "failed" for a in actions)
    return list(dict.fromkeys(recipients)), failed, "; ".join(r for r in reasons if r)


def _returned_headers(message: EmailMessage) -> list[Message]:
    """The headers of the returned original, as a message/rfc822 part or as
    text/rfc822-headers."""
    found: list[Message] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                found.append(inner)
        elif content_type == "text/rfc822-headers":
            found.append(HeaderParser().parsestr(_part_text(part)))
    return found


def _returned_recipients(message: EmailMessage) -> list[str]:
    values = [str(value) for returned in _returned_headers(message)
              for value in returned.get_all("To", []) + returned.get_all("Cc", [])]
    return list(dict.fromkeys(_address(address) for _, address in getaddresses(values)
                              if address))


def _original_ids(message: EmailMessage, text: str) -> list[str]:
    found: list[str] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and inner.get("Message-ID"):
                found.append(str(inner["Message-ID"]).strip())
        elif content_type == "text/rfc822-headers":
            found += _MESSAGE_ID_LINE.findall(_part_text(part))
    found += _MESSAGE_ID_LINE.findall(text)  # prose bounces quote the original inline
    return list(dict.fromkeys(found))


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return str(part.get_payload())


def _written_by_a_delivery_system(message: EmailMessage, sender: str, subject: str) -> bool:
    return (message.get_content_type() == "multipart/report"
            or is_mailer_daemon(sender)
            or str(message.get("Return-Path", "")).strip() == "<>"
            or bool(_BOUNCE_SUBJECT.match(subject)))


def _failures(message: EmailMessage) -> tuple[list[str], list[str]]:
    """(delayed, failed) recipients as flufl.bounce finds them, normalised."""
    from flufl.bounce import all_failures  # see maild/intake/replies.py, _parser

    delayed, failed = all_failures(message)
    return ([_address(a.decode("utf-8", "replace")) for a in sorted(delayed)],
            [_address(a.decode("utf-8", "replace")) for a in sorted(failed)])


def read_bounce(message: EmailMessage, text: str, sender: str, subject: str) -> Bounce | None:
    """The bounce in this mail, or None if it is not one."""
    if not _written_by_a_delivery_system(message, sender, subject):
        return None
    is_report = (message.get_content_type() == "multipart/report"
                 and str(message.get_param("report-type", "")).lower() == "delivery-status")
    delayed, failed_for = _failures(message)
    if not (is_report or delayed or failed_for):
        # A machine's mail, but no report of a failed delivery that we can read: one
        # from a mailer-daemon about undelivered mail is still a bounce, without names.
        if not (is_mailer_daemon(sender) and _BOUNCE_SUBJECT.search(subject)):
            return None
    recipients, failed, reason = _from_report(message)
    if not recipients:
        recipients = list(dict.fromkeys(failed_for + delayed))
        failed = bool(failed_for) or not delayed
    failed_header = message.get("X-Failed-Recipients")
    if not recipients and failed_header:
        recipients = [_address(a) for a in str(failed_header).split(",") if a.strip()]
    if not recipients:
        recipients = list(dict.fromkeys(_address(a) for a in _QMAIL_RECIPIENT.findall(text)))
    if not recipients:
        recipients = _returned_recipients(message)
    if not reason:
        reason = _prose_reason(text)
    return Bounce(_original_ids(message, text), failed, recipients, reason)


def _prose_reason(text: str) -> str:
    """The first line that reads like an SMTP error, from a bounce written as prose."""
    for line in text.splitlines():
        if re.search(r"\b[45]\d\d\b|\b[45]\.\d{1,3}\.\d{1,3}\b", line):
            return " ".join(line.split())[:300]
    return "returned as undeliverable"
