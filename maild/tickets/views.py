"""Tickets as the command line, exports and the dashboard show them: the shape of
`tickets show --json`, the text of `tickets show` (times in the business time zone, as in
mails), and the thread with its quoted history for /tickets/N."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.policy import EmailPolicy
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from maild.db.models import Message, Ticket
from maild.db.raw_mail import read_raw
from maild.db.rawstore import RawStore
from maild.errors import NotFound
from maild.intake.commands import command_lines
from maild.intake.parse import whole_text


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def local_time(value: str | None, zone: ZoneInfo) -> str:
    """An ISO timestamp of the JSON as people read it: in the business time zone, to
    the minute ("Mon 23 Nov 2026 10:00 PST")."""
    if value is None:
        return "-"
    return datetime.fromisoformat(value).astimezone(zone).strftime("%a %d %b %Y %H:%M %Z")


def message_json(message: Message) -> dict[str, Any]:
    outbox = message.outbox
    return {
        "message_id": message.message_id,
        "direction": message.direction,
        "author": message.author,
        "author_name": message.author_name,
        "kind": message.kind,
        "created_at": iso(message.created_at),
        "subject": message.subject,
        "body": message.body,
        "automatic": message.automatic,
        # From someone who takes no part in the ticket: kept, sent on to nobody.
        "outside": message.outside,
        "staff_notice": message.staff_notice,
        # Mail from a staff address that proved nothing: why, and the commands it held,
        # which were not run (docs/design.md, "Who may do what").
        "unproven_staff": message.unproven_staff,
        "ignored_commands": command_lines(message.body) if message.unproven_staff else [],
        "attachments": message.attachments,
        "delivery": None if outbox is None else {
            "message_id": outbox.message_id,
            "recipients": outbox.recipients,
            "status": outbox.status,
            "attempts": outbox.attempts,
            "sent_at": iso(outbox.sent_at),
            "error": outbox.last_error,
        },
    }


def ticket_json(ticket: Ticket, *, with_messages: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "requester": ticket.requester,
        "cc": ticket.cc,
        "assignee": ticket.assignee,
        "organization": ticket.customer.name if ticket.customer else None,
        "mailbox": ticket.mailbox,
        "cause": ticket.cause,
        "tier": ticket.customer.tier if ticket.customer else None,
        "plan": ticket.customer.plan if ticket.customer else None,
        "follow_up_of": ticket.follow_up_of_id,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "first_response_at": iso(ticket.first_response_at),
        "solved_at": iso(ticket.solved_at),
        "closed_at": iso(ticket.closed_at),
        "severity": ticket.severity,
        # What the customer claimed (priority and their words), and when an engineer's
        # priority settled it (None: the ticket runs on the claim)
        "claimed_priority": ticket.claimed_priority,
        "severity_claim": ticket.severity_claim,
        "priority_triaged_at": iso(ticket.priority_triaged_at),
        "response_due_at": iso(ticket.response_due_at),
        "resolution_due_at": iso(ticket.resolution_due_at),
        "internal_response_due_at": iso(ticket.internal_response_due_at),
        "sla_paused_at": iso(ticket.sla_paused_at),
        "escalated_at": iso(ticket.escalated_at),
        "nudges_sent": ticket.nudges_sent,
        "followup_due_at": iso(ticket.followup_due_at),
        "satisfaction": ticket.satisfaction,
        "satisfaction_comment": ticket.satisfaction_comment,
    }
    if with_messages:
        data["follow_ups"] = [later.id for later in ticket.follow_ups]
        data["messages"] = [message_json(m) for m in ticket.messages]
        data["events"] = [
            {"at": iso(e.at), "actor": e.actor, "kind": e.kind, "old": e.old, "new": e.new,
             "detail": e.detail}
            for e in ticket.events
        ]
    return data


_FULL = (
    selectinload(Ticket.messages).selectinload(Message.outbox),
    selectinload(Ticket.events),
    selectinload(Ticket.participants),
    selectinload(Ticket.customer),
    selectinload(Ticket.follow_ups),
)


def get_ticket(session: Session, ticket_id: int, *, for_update: bool = False) -> Ticket:
    """`for_update`: to change it, its row locked until the transaction ends, as the
    intake and the sweeps lock the tickets they change: what the ticket keeps of its
    thread and its pauses is read, changed and written back whole."""
    query = select(Ticket).where(Ticket.id == ticket_id).options(*_FULL)
    if for_update:
        query = query.with_for_update(of=Ticket)
    ticket = session.scalar(query)
    if ticket is None:
        raise NotFound(f"there is no ticket #{ticket_id}")
    return ticket


def list_tickets(session: Session, status: str | None = None) -> list[Ticket]:
    query = select(Ticket).options(selectinload(Ticket.participants),
                                   selectinload(Ticket.customer)).order_by(Ticket.id)
    if status:
        query = query.where(Ticket.status == status)
    return list(session.scalars(query))


def export_tickets(session: Session, batch: int = 200) -> Iterator[dict[str, Any]]:
    """Every ticket with its messages, in id order, a batch at a time."""
    last_id = 0
    while True:
        tickets = session.scalars(
            select(Ticket).where(Ticket.id > last_id).order_by(Ticket.id).limit(batch)
            .options(*_FULL)
        ).all()
        if not tickets:
            return
        for ticket in tickets:
            yield ticket_json(ticket)
        last_id = tickets[-1].id
        session.expunge_all()


# A received mail larger than this is not parsed again for its quoted history on a page
# view (an attachment of many megabytes would make the page slow for one fold).
QUOTED_HISTORY_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ThreadEntry:
    """One message of a ticket as an engineer reads it: the new text it stored, and what
    else the mail said (the quoted history), when it said more."""

    message: Message
    quoted: str | None


class WholeTexts:
    """Received mails' whole texts, read again from their raw bytes for the quoted history
    a page folds under each message. Raw mail is stored by its SHA-256 and never changes,
    so the texts read lately are kept (the smaller ones, a few hundred) for the next view."""

    KEPT = 256
    KEPT_CHARS = 64 * 1024

    def __init__(self, raw_store: RawStore, policy: EmailPolicy) -> None:
        self.raw_store = raw_store
        self.policy = policy
        self._kept: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, session: Session, raw_sha256: str) -> str | None:
        """None for mail too large to read on a page view, and for raw mail that is gone or
        cannot be read (the stored text then stands alone)."""
        with self._lock:
            if raw_sha256 in self._kept:
                self._kept.move_to_end(raw_sha256)
                return self._kept[raw_sha256]
        try:
            raw = read_raw(session, self.raw_store, raw_sha256,
                           at_most=QUOTED_HISTORY_MAX_BYTES + 1)
            whole: str | None = (whole_text(raw, self.policy)
                                 if len(raw) <= QUOTED_HISTORY_MAX_BYTES else None)
        except Exception:  # hostile or lost raw mail costs the fold, never the page
            whole = None
        if whole is None or len(whole) <= self.KEPT_CHARS:
            with self._lock:
                self._kept[raw_sha256] = whole
                while len(self._kept) > self.KEPT:
                    self._kept.popitem(last=False)
        return whole


def thread(session: Session, ticket: Ticket, whole_texts: WholeTexts) -> list[ThreadEntry]:
    return [ThreadEntry(m, _quoted(session, whole_texts, m)) for m in ticket.messages]


def _quoted(session: Session, whole_texts: WholeTexts, message: Message) -> str | None:
    """A received mail's whole text, when it is more than the text stored."""
    if message.raw_sha256 is None or message.direction != "in":
        return None
    whole = whole_texts.of(session, message.raw_sha256)
    return whole if whole is not None and whole.strip() != message.body.strip() else None
def ticket_text(data: dict[str, Any], zone: ZoneInfo) -> str:
    """`tickets show`: the ticket from its JSON, then its messages, oldest first."""
    lines = [
        f"#{data['id']} {data['subject']}",
        f"status {data['status']}, priority {data['priority']}, "
        f"requester {data['requester']}, assignee {data['assignee'] or '-'}",
    ]
    if data["organization"]:
        lines.append(f"organization {data['organization']} ({data['tier']}, "
                     f"{data['plan'] or '-'})")
    lines.append(f"created {local_time(data['created_at'], zone)}, "
                 f"severity {data['severity'] or '-'}")
    if data["follow_up_of"]:
        lines.append(f"follow-up of #{data['follow_up_of']}")
    if data.get("follow_ups"):
        lines.append("followed up in " + ", ".join(f"#{n}" for n in data["follow_ups"]))
    lines.append(_sla_line(data, zone))
    for message in data["messages"]:
        delivery = message["delivery"]
        sent = f" [{delivery['status']}]" if delivery else ""
        outside = " [FROM OUTSIDE THE TICKET: not a participant]" if message["outside"] else ""
        lines.append(f"\n--- {local_time(message['created_at'], zone)} {message['direction']} "
                     f"{message['kind']} {message['author']}{sent}{outside}")
        if message["unproven_staff"]:
            lines.append(f"!!! UNPROVEN: {message['unproven_staff']}; handled as a customer's")
            lines.extend(f"!!! not run: {command}" for command in message["ignored_commands"])
        lines.append(message["body"])
    return "\n".join(lines)


def _sla_line(data: dict[str, Any], zone: ZoneInfo) -> str:
    if data["first_response_at"]:
        parts = [f"first response {local_time(data['first_response_at'], zone)}"]
    else:
        parts = [f"first response due {local_time(data['response_due_at'], zone)} "
                 f"(our target {local_time(data['internal_response_due_at'], zone)})"]
    paused = (f", paused since {local_time(data['sla_paused_at'], zone)}"
              if data["sla_paused_at"] else "")
    parts.append(f"resolution due {local_time(data['resolution_due_at'], zone)}{paused}")
    if data["escalated_at"]:
        parts.append(f"escalated {local_time(data['escalated_at'], zone)}")
    return "SLA: " + "; ".join(parts)
