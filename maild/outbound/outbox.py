"""Writing mail into the outbox, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maild.db.models import Message, OutboxMail
from maild.db.raw_mail import fits_in_row
from maild.db.rawstore import RawStore
from maild.outbound.compose import OutgoingMail
from maild.tickets.conversation import sent_as


def mail_bytes(raw: bytes | None, raw_sha256: str | None, raw_store: RawStore) -> bytes:
    """The bytes of a queued mail, from its row or its file; OSError when the file is
    gone."""
    if raw is not None:
        return raw
    assert raw_sha256 is not None  # the table's check constraint
    return raw_store.get(raw_sha256)


def queue_mail(
    session: Session, raw_store: RawStore, raw: bytes, mail: OutgoingMail, *, purpose: str,
    now: datetime, ticket_id: int | None = None, message: Message | None = None,
) -> OutboxMail:
    """`mail` in the outbox, as `raw`, its bytes: in its row, written with the change that
    caused it, unless it is too large (a relayed reply with its attachments), then in a
    file of the raw store."""
    inline = fits_in_row(raw)
    row = OutboxMail(
        ticket_id=ticket_id,
        purpose=purpose,
        message_id=mail.message_id,
        mail_from=mail.sender.address,
        recipients=mail.recipients,
        raw=raw if inline else None,
        raw_sha256=None if inline else raw_store.put(raw),
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    if message is not None:
        row.message = message
        sent_as(message, mail.message_id)
    session.add(row)
    return row


@dataclass(frozen=True)
class Backlog:
    queued: int  # waiting to be sent, including those deferred after a failed attempt
    oldest: datetime | None  # when the oldest of them was queued
    failed: int  # given up on: visible on their tickets


def backlog(session: Session) -> Backlog:
    queued, oldest = session.execute(
        select(func.count(OutboxMail.id), func.min(OutboxMail.created_at))
        .where(OutboxMail.status == "queued")
    ).one()
    failed = session.scalar(
        select(func.count(OutboxMail.id)).where(OutboxMail.status == "failed"))
    return Backlog(int(queued or 0), oldest, int(failed or 0))
