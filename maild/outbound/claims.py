"""Who holds which outbox mail: claims with an owner, the owners' heartbeats, and the
takeover of a silent owner's claims.

A sender claims a few mails at a time under its owner id and keeps a row in
outbox_senders whose `beat_at` it renews every few seconds while it works (heartbeat.py).
A claim is good while its owner beats; every change to a claimed mail (sent, deferred,
failed, released) is made only `WHERE owner = me`, so a sender that lost its claim can no
longer record anything on that mail. A sender silent for its silence limit
(outbound.sender_silence_seconds, 15 s by default) is taken for dead: the heartbeat of a
sender at work, or the first claim of a sender's round, deletes its row and frees its
mail. Every sender on a database should be given the same limit.

Liveness is elapsed real time on one clock that every sender shares, the database's:
not the injected clock, which MAILD_NOW may fix for a whole run and which differs between
machines by their skew. Due times (next_attempt_at, sent_at) stay on the injected clock.

Each function works in the caller's transaction (a Session), like queue_mail.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import FunctionElement

from maild.db.models import OutboxMail, OutboxSender, UTCDateTime

log = logging.getLogger(__name__)

# A sender beats while it holds claims, also in the middle of a slow SMTP transaction:
# several times within the silence limit, so that one late or failed beat does not make
# a live sender look dead, and at least every 3 s whatever the limit, since each beat
# also looks for silent senders: a busy sender takes a dead one's mail over within
# seconds of the limit.
BEATS_WITHIN_SILENCE = 5
LONGEST_BEAT_INTERVAL = timedelta(seconds=3)
# Mails claimed at once: few, so that what a sender holds is what it is about to send.
CLAIM_BATCH = 5


class database_time(FunctionElement[datetime]):  # lower case, as SQL functions are
    """The database's clock now, shifted by `offset_seconds`: clock_timestamp() on
    PostgreSQL (real time, not the transaction's start), strftime('now') on SQLite in
    the format SQLAlchemy writes datetimes in, so that stored values compare as text."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = float(offset_seconds)
        super().__init__()


@compiles(database_time, "postgresql")
def _postgresql_time(element: database_time, compiler: Any, **kw: Any) -> str:
    return f"(clock_timestamp() + interval '{element.offset_seconds:.3f} seconds')"


@compiles(database_time, "sqlite")
def _sqlite_time(element: database_time, compiler: Any, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '{element.offset_seconds:+.3f} seconds')"


def beat_interval(silence_limit: timedelta) -> timedelta:
    """How often a sender at work beats, for senders taken for dead after
    `silence_limit`: 3 s for the default 15 s, 0.6 s for 3 s."""
    return min(LONGEST_BEAT_INTERVAL, silence_limit / BEATS_WITHIN_SILENCE)


@dataclass(frozen=True)
class Claimed:
    """A mail in a sender's hands."""

    id: int
    mail_from: str
    recipients: list[str]
    raw: bytes | None
    raw_sha256: str | None
    attempts: int  # counting this one


@dataclass(frozen=True)
class Recorded:
    """What a guarded update found on the mail it changed, for the ticket's event."""

    ticket_id: int | None
    message_id: str
    purpose: str
    recipients: list[str]


class SenderIdentity:
    """The owner id of one sender: new for each process start, and new again after
    another sender declared it dead (what it held then is no longer its own)."""

    def __init__(self) -> None:
        self.host = socket.gethostname()[:80]
        self.pid = os.getpid()
        self.owner = self._new()

    def _new(self) -> str:
        return f"{self.host}:{self.pid}:{secrets.token_hex(4)}"

    def renew(self) -> None:
        self.owner = self._new()


def register(session: Session, identity: SenderIdentity, now: datetime) -> None:
    """The sender's row, beating from now on (created when it has none)."""
    if not beat(session, identity.owner):
        session.connection().execute(insert(OutboxSender).values(
            owner=identity.owner, host=identity.host, pid=identity.pid, started_at=now,
            beat_at=database_time()))


def beat(session: Session, owner: str) -> bool:
    """Renew the owner's heartbeat; False when its row is gone: another sender found it
    silent and took its claims over."""
    renewed = session.connection().execute(
        update(OutboxSender).where(OutboxSender.owner == owner)
        .values(beat_at=database_time()))
    return renewed.rowcount > 0


def take_over_silent(session: Session, silence_limit: timedelta) -> int:
    """Free the claims of every sender silent for `silence_limit`; how many mails were
    freed."""
    silent = session.connection().execute(
        delete(OutboxSender)
        .where(OutboxSender.beat_at < database_time(-silence_limit.total_seconds()))
        .returning(OutboxSender.owner, OutboxSender.beat_at)
    ).all()
    freed = 0
    for owner, last_beat in silent:
        count = _release(session, owner)
        freed += count
        log.warning("sender %s went silent (last heartbeat %s); %d claimed mail(s) taken "
                    "over", owner, last_beat.isoformat(timespec="seconds"), count)
    return freed


def claim(session: Session, identity: SenderIdentity, now: datetime, limit: int, *,
          silence_limit: timedelta, beating: bool = False) -> list[Claimed]:
    """Up to `limit` due mails, claimed for `identity`, oldest due first, in one
    statement. A mail held by a live sender is not offered; one whose owner is silent
    (for `silence_limit`) or gone is.

    `beating`: the sender's heartbeat is at work (heartbeat.py). It keeps the sender's row
    and takes silent senders' claims over every few seconds, so this claim does
    neither; the first claim of a round does both."""
    if not beating:
        take_over_silent(session, silence_limit)
    rows = sorted(session.connection().execute(_CLAIM, {
        "limit": limit, "now": now, "owner": identity.owner}),
        key=lambda row: (row.next_attempt_at, row.id))  # RETURNING keeps no order
    if rows and not beating:
        register(session, identity, now)
    return [Claimed(row.id, row.mail_from, list(row.recipients), row.raw, row.raw_sha256,
                    row.attempts) for row in rows]


# Built once: every claim runs it. The due mails are chosen and claimed in one UPDATE
# (FOR UPDATE SKIP LOCKED on PostgreSQL, so that two senders never wait on each other's
# mails; SQLite has one writer at a time). The subquery reads an alias of the outbox, so
# that it is not correlated to the table the UPDATE changes.
_DUE = aliased(OutboxMail)
_CLAIM = (
    update(OutboxMail)
    .where(OutboxMail.id.in_(
        select(_DUE.id)
        .where(_DUE.status == "queued",
               _DUE.next_attempt_at <= bindparam("now", type_=OutboxMail.next_attempt_at.type),
               or_(_DUE.owner.is_(None),
                   ~exists().where(OutboxSender.owner == _DUE.owner)))
        .order_by(_DUE.next_attempt_at, _DUE.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=_DUE)))
    .values(owner=bindparam("owner"),
            claimed_at=bindparam("now", type_=OutboxMail.claimed_at.type),
            attempts=OutboxMail.attempts + 1)
    .returning(OutboxMail.id, OutboxMail.mail_from, OutboxMail.recipients, OutboxMail.raw,
               OutboxMail.raw_sha256, OutboxMail.attempts, OutboxMail.next_attempt_at)
)


def _ours(outbox_id: int, owner: str) -> Any:
    return (OutboxMail.id == outbox_id, OutboxMail.owner == owner,
            OutboxMail.status == "queued")


# Built once: every mail sent runs it.
_MARK_SENT = (
    update(OutboxMail)
    .where(OutboxMail.id == bindparam("outbox_id"), OutboxMail.owner == bindparam("sender"),
           OutboxMail.status == "queued")
    .values(status="sent", sent_at=bindparam("at", type_=OutboxMail.sent_at.type),
            last_error=bindparam("error", type_=OutboxMail.last_error.type))
    .returning(OutboxMail.ticket_id, OutboxMail.message_id, OutboxMail.purpose,
               OutboxMail.recipients)
)


def mark_sent(session: Session, owner: str, outbox_id: int, at: datetime,
              error: str | None) -> Recorded | None:
    """The mail sent, if it is still `owner`'s; None when it was taken over."""
    row = session.connection().execute(_MARK_SENT, {
        "outbox_id": outbox_id, "sender": owner, "at": at, "error": error}).one_or_none()
    return None if row is None else Recorded(row[0], row[1], row[2], list(row[3]))


_MARK_ALL_SENT = (
    update(OutboxMail)
    .where(OutboxMail.id.in_(bindparam("outbox_ids", expanding=True)),
           OutboxMail.owner == bindparam("sender"), OutboxMail.status == "queued")
    .values(status="sent", sent_at=bindparam("at", type_=OutboxMail.sent_at.type),
            last_error=None)
    .returning(OutboxMail.id, OutboxMail.ticket_id, OutboxMail.message_id,
               OutboxMail.purpose, OutboxMail.recipients)
)


def mark_all_sent(session: Session, owner: str, outbox_ids: list[int], at: datetime
                  ) -> dict[int, Recorded]:
    """The mails the relay took for every recipient, sent in one statement, those of them
    still `owner`'s; the others (taken over) are not in the answer."""
    if not outbox_ids:
        return {}
    rows = session.connection().execute(_MARK_ALL_SENT, {
        "outbox_ids": outbox_ids, "sender": owner, "at": at})
    return {row[0]: Recorded(row[1], row[2], row[3], list(row[4])) for row in rows}


def defer(session: Session, owner: str, outbox_id: int, until: datetime, reason: str
          ) -> bool:
    """The mail put back for another attempt at `until`, if it is still `owner`'s."""
    deferred = session.connection().execute(
        update(OutboxMail).where(*_ours(outbox_id, owner))
        .values(next_attempt_at=until, last_error=reason, owner=None, claimed_at=None))
    return deferred.rowcount > 0


def mark_failed(session: Session, owner: str, outbox_id: int, reason: str
                ) -> Recorded | None:
    """The mail given up on, if it is still `owner`'s; None when it was taken over."""
    row = session.connection().execute(
        update(OutboxMail).where(*_ours(outbox_id, owner))
        .values(status="failed", last_error=reason)
        .returning(OutboxMail.ticket_id, OutboxMail.message_id, OutboxMail.purpose,
                   OutboxMail.recipients)
    ).one_or_none()
    return None if row is None else Recorded(row[0], row[1], row[2], list(row[3]))


def retire(session: Session, owner: str, unsent: list[int]) -> int:
    """The sender done for now (its batch sent, or told to stop): the mails it claimed
    and did not try are free again at once, for any sender (the claim's attempt not
    counted), and its row is gone. How many mails were freed."""
    freed = 0
    if unsent:
        freed = session.connection().execute(
            update(OutboxMail)
            .where(OutboxMail.id.in_(unsent), OutboxMail.owner == owner,
                   OutboxMail.status == "queued")
            .values(owner=None, claimed_at=None, attempts=OutboxMail.attempts - 1)
        ).rowcount
    freed += _release(session, owner)
    session.connection().execute(delete(OutboxSender).where(OutboxSender.owner == owner))
    if freed:
        log.info("outbox sender %s released %d claimed mail(s) it did not send; any sender "
                 "may take them now", owner, freed)
    return freed


def _release(session: Session, owner: str) -> int:
    released = session.connection().execute(
        update(OutboxMail).where(OutboxMail.owner == owner, OutboxMail.status == "queued")
        .values(owner=None, claimed_at=None))
    return released.rowcount

