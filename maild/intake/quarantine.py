"""The quarantine: mail that could not be processed, kept with its reason, and the way
back once the cause is fixed (a config change, a new maild version).

Replaying a message runs it through the intake again from its raw bytes, exactly as
if it had just arrived on its original channel. A message that now goes through is
released, with what became of it; one that fails again stays held with its new reason.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maild.config import Config
from maild.db.models import QuarantinedMail
from maild.db.raw_mail import raw_place, read_raw
from maild.db.rawstore import RawStore
from maild.errors import NotFound, PermanentError
from maild.intake.pipeline import IngestResult, Intake, ingest

PREVIEW_BYTES = 64 * 1024  # enough for the headers of any sane message


@dataclass(frozen=True)
class Replayed:
    entry_id: int
    result: IngestResult


def held(session: Session, *, everything: bool = False, status: str = "held"
         ) -> list[QuarantinedMail]:
    """`status`: held (waiting for an operator) or ignored (automatic mail for no
    ticket, filed with its reason); `everything`: whatever the status."""
    query = select(QuarantinedMail).order_by(QuarantinedMail.id)
    if not everything:
        query = query.where(QuarantinedMail.status == status)
    return list(session.scalars(query))


def held_count(session: Session) -> int:
    return session.scalar(
        select(func.count(QuarantinedMail.id)).where(QuarantinedMail.status == "held")) or 0


def get_entry(session: Session, entry_id: int) -> QuarantinedMail:
    entry = session.get(QuarantinedMail, entry_id)
    if entry is None:
        raise NotFound(f"there is no quarantined message {entry_id}")
    return entry


def headers_preview(session: Session, raw_store: RawStore, entry: QuarantinedMail
                    ) -> dict[str, str]:
    """From, To, Subject, Date and Message-ID as the sender wrote them, for a quick look.

    Read leniently from the head of the raw bytes: a message in quarantine may well be
    one that the full parser chokes on.
    """
    try:
        head = read_raw(session, raw_store, entry.raw_sha256, at_most=PREVIEW_BYTES)
    except OSError as exc:
        return {"error": f"raw message missing from storage: {exc.strerror}"}
    head = head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    try:
        parsed = email.message_from_bytes(head, policy=email.policy.compat32)
    except Exception as exc:  # the stdlib parser on truly hostile input
        return {"error": f"headers unreadable: {exc!r}"}
    preview = {}
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        value = parsed.get(name)
        if value is not None:
            preview[name.lower()] = " ".join(str(value).split())[:300]
    return preview


def entry_json(session: Session, raw_store: RawStore, entry: QuarantinedMail
               ) -> dict[str, Any]:
    """`raw_path` is None for a message kept in the database (`quarantine show --raw`
    writes out its bytes wherever they are)."""
    path, size = raw_place(session, raw_store, entry.raw_sha256)
    return {
        "id": entry.id,
        "status": entry.status,
        "reason": entry.reason,
        "channel": entry.channel,
        "received_at": entry.received_at.isoformat(),
        "raw_sha256": entry.raw_sha256,
        "raw_path": str(path) if path is not None else None,
        "size": size,
        "replays": entry.replays or 0,
        "replayed_at": entry.replayed_at.isoformat() if entry.replayed_at else None,
        "released_at": entry.released_at.isoformat() if entry.released_at else None,
        "outcome": entry.outcome,
        "headers": headers_preview(session, raw_store, entry),
    }


def _mailbox_of(config: Config, channel: str) -> str | None:
    """An IMAP channel ("imap:support") names the mailbox its ticket belongs to."""
    name = channel.removeprefix("imap:") if channel.startswith("imap:") else None
    return name if config.mailbox(name) is not None else None


def replay(intake: Intake, entry_id: int) -> Replayed:
    """Run one held message through the intake again. TemporaryError leaves it held."""
    with intake.db.transaction() as session:
        entry = get_entry(session, entry_id)
        if entry.status != "held":
            raise PermanentError(f"quarantined message {entry_id} was already {entry.status}")
        channel = entry.channel
        try:
            raw = read_raw(session, intake.raw_store, entry.raw_sha256)
        except OSError as exc:
            raise PermanentError(
                f"quarantined message {entry_id}: its raw bytes are missing from storage "
                f"({exc.strerror}); restore "
                f"{intake.raw_store.path_for(entry.raw_sha256)} first") from None
    result = ingest(intake, raw, channel, _mailbox_of(intake.config, channel))
    now = intake.clock.now()
    with intake.db.transaction() as session:
        entry = get_entry(session, entry_id)
        entry.replays = (entry.replays or 0) + 1
        entry.replayed_at = now
        if result.outcome == "stored":
            entry.status, entry.released_at = "released", now
            entry.outcome = f"stored on ticket #{result.ticket_id}: {result.reason}"
        elif result.outcome == "duplicate":
            entry.status, entry.released_at = "released", now
            entry.outcome = f"a duplicate of {result.message_id}, already stored"
        elif result.outcome == "ignored":
            entry.status, entry.released_at = "released", now
            entry.outcome = f"filed as ignored: {result.reason}"
    return Replayed(entry_id, result)
