"""Reading a bounce: which of our mails did not arrive, to whom, and why.

Standard delivery status notifications (RFC 3464: multipart/report with a
message/delivery-status part, as Postfix, Exchange and Gmail send) say it in fields;
older MTAs (qmail, some Exim set-ups) only write prose and quote the original. Either
way the original Message-ID is found in the returned message or its headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from maild.mail.addresses import is_mailer_daemon
from maild.mail.message_id import MSG_ID

# A Message-ID header line, as returned headers and prose bounces quote the original's.
_MESSAGE_ID_LINE = re.compile(rf"^\s*Message-ID:\s*({MSG_ID})", re.IGNORECASE | re.MULTILINE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|failure notice|returned mail|"
    r"delivery (has )?failed|mail delivery failed|non.?delivery",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Bounce:
    original_ids: list[str]  # the Message-IDs of the mail that bounced
    failed: bool  # False for "delayed" warnings: the mail may still arrive
    recipients: list[str] = field(default_factory=list)
    reason: str = ""


def _delivery_fields(report: Message) -> list[Message]:
    """The per-message and per-recipient field blocks of a message/delivery-status part."""
    payload = report.get_payload()
    return [block for block in payload if isinstance(block, Message)] if isinstance(
        payload, list) else []


def _from_report(message: EmailMessage) -> tuple[list[str], bool, str]:
    recipients: list[str] = []
    actions: list[str] = []
    reasons: list[str] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _delivery_fields(part):
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            if recipient:
                recipients.append(recipient.split(";")[-1].strip().lower())
                actions.append(str(block.get("Action") or "failed").strip().lower())
                status = str(block.get("Status") or "").strip()
                diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
                reasons.append(" ".join(x for x in (status, diagnostic) if x))
    failed = not actions or any(a == "failed" for a in actions)
    return recipients, failed, "; ".join(r for r in reasons if r)


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


def read_bounce(message: EmailMessage, text: str, sender: str, subject: str) -> Bounce | None:
    """The bounce in this mail, or None if it is not one."""
    is_report = (message.get_content_type() == "multipart/report"
                 and str(message.get_param("report-type", "")).lower() == "delivery-status")
    if not is_report and not (is_mailer_daemon(sender) and _BOUNCE_SUBJECT.search(subject)):
        return None
    recipients, failed, reason = _from_report(message)
    failed_header = message.get("X-Failed-Recipients")
    if not recipients and failed_header:
        recipients = [a.strip().lower() for a in str(failed_header).split(",") if a.strip()]
    if not reason:
        reason = _prose_reason(text)
    return Bounce(_original_ids(message, text), failed, recipients, reason)


def _prose_reason(text: str) -> str:
    """The first line that reads like an SMTP error, from a bounce written as prose."""
    for line in text.splitlines():
        if re.search(r"\b[45]\d\d\b|\b[45]\.\d{1,3}\.\d{1,3}\b", line):
            return " ".join(line.split())[:300]
    return "returned as undeliverable"
