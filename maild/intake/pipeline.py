"""One intake path for every channel: parse → dedupe → classify → thread → apply.

The raw bytes are made durable first; everything after that happens in one
transaction, outbox mail included. A message that cannot be processed is
quarantined with its reason and never stops the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maild.app import App
from maild.db.models import Message, OutboxMail, QuarantinedMail
from maild.errors import PermanentError, TemporaryError
from maild.intake.apply import apply
from maild.intake.classify import classify
from maild.intake.parse import ParsedMail, parse
from maild.intake.thread import find_ticket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    outcome: Literal["stored", "duplicate", "quarantined"]
    reason: str
    ticket_id: int | None = None
    message_id: str | None = None
    outbox_queued: int = 0


def _is_known(session: Session, message_id: str) -> bool:
    """DESIGN.md rule 1: a Message-ID maild already stored, received or sent."""
    return (
        session.scalar(select(Message.id).where(Message.message_id == message_id)) is not None
        or session.scalar(select(OutboxMail.id).where(OutboxMail.message_id == message_id))
        is not None
    )


def _duplicate(mail: ParsedMail) -> IngestResult:
    log.info("%s is already stored: a duplicate, nothing changes", mail.message_id)
    return IngestResult("duplicate", "already stored", message_id=mail.message_id)


def quarantine(app: App, raw_sha256: str, channel: str, reason: str) -> IngestResult:
    """Set a message aside with its reason; the same message set aside again is one
    entry, with the latest reason (after a replay, the one that still holds)."""
    with app.db.transaction() as session:
        held = session.scalar(
            select(QuarantinedMail).where(
                QuarantinedMail.raw_sha256 == raw_sha256, QuarantinedMail.status == "held"
            )
        )
        if held is not None:
            held.reason = reason
            return IngestResult("quarantined", reason)
        session.add(
            QuarantinedMail(
                raw_sha256=raw_sha256,
                channel=channel,
                reason=reason,
                received_at=app.clock.now(),
                status="held",
            )
        )
    log.warning("quarantined %s from %s: %s", raw_sha256[:12], channel, reason)
    return IngestResult("quarantined", reason)


def _process(
    app: App, raw_sha256: str, channel: str, mailbox: str | None, mail: ParsedMail
) -> IngestResult:
    verdict = classify(mail, app.config)
    if verdict.loop:
        raise PermanentError(f"mail loop: {verdict.loop}")
    with app.db.transaction() as session:
        if _is_known(session, mail.message_id):
            return _duplicate(mail)
        threading = find_ticket(session, mail, verdict.is_staff)
        applied = apply(app, session, mail, verdict, threading, raw_sha256, channel, mailbox)
    log.info(
        "stored %s on ticket #%s (%s; %s)",
        mail.message_id, applied.ticket_id, threading.reason, applied.summary,
    )
    return IngestResult(
        "stored", applied.summary, applied.ticket_id, mail.message_id, applied.outbox_queued
    )


def ingest(app: App, raw: bytes, channel: str, mailbox: str | None = None) -> IngestResult:
    """Take one raw message. Raises TemporaryError only when nothing could be kept.

    `mailbox` names the [[mailboxes]] entry it was read from, if any.
    """
    raw_sha256 = app.raw_store.put(raw)
    try:
        mail = parse(raw)
    except PermanentError as exc:
        return quarantine(app, raw_sha256, channel, str(exc))
    except Exception as exc:  # the stdlib parser on truly hostile input
        log.exception("parsing %s failed", raw_sha256[:12])
        return quarantine(app, raw_sha256, channel, f"unparseable message: {exc!r}")

    try:
        return _process(app, raw_sha256, channel, mailbox, mail)
    except IntegrityError:
        # Another process stored the same Message-ID between our check and our commit.
        with app.db.transaction() as session:
            if _is_known(session, mail.message_id):
                return _duplicate(mail)
        raise TemporaryError("a constraint failed while storing; will retry") from None
    except TemporaryError:
        raise
    except PermanentError as exc:
        return quarantine(app, raw_sha256, channel, str(exc))
    except Exception as exc:
        log.exception("processing %s failed", mail.message_id)
        return quarantine(app, raw_sha256, channel, f"internal error while processing: {exc!r}")

