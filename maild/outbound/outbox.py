"""Writing mail into the outbox, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from maild.db.models import Message, OutboxMail
from maild.outbound.compose import OutgoingMail, render_mail
from maild.rawstore import RawStore


def queue_mail(
    session: Session,
    raw_store: RawStore,
    mail: OutgoingMail,
    *,
    purpose: str,
    now: datetime,
    ticket_id: int | None = None,
    message: Message | None = None,
) -> OutboxMail:
    raw = render_mail(mail)
    row = OutboxMail(
        ticket_id=ticket_id,
        purpose=purpose,
        message_id=mail.message_id,
        mail_from=mail.sender.address,
        recipients=mail.recipients,
        raw_sha256=raw_store.put(raw),
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    if message is not None:
        row.message = message
    session.add(row)
    return row
