"""How far reading a mailbox got (the folder's UIDVALIDITY and the last UID filed away), and
how its reader stands (connected or not, and when it last looked)."""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from maild.clock import Clock
from maild.db.database import Database
from maild.db.models import MailboxConnection, MailboxState
from maild.errors import TemporaryError

log = logging.getLogger(__name__)


def last_uid_for(db: Database, clock: Clock, name: str, folder: str, uidvalidity: int) -> int:
    """The last UID handled, or 0 when the folder is new to us or was renumbered.

    A changed UIDVALIDITY means the server renumbered the folder (restored, rebuilt,
    moved to another server): every message in it is looked at again, and those
    already stored are recognised as duplicates.
    """
    with db.transaction() as session:
        state = session.get(MailboxState, name)
        if state is not None and state.folder == folder and state.uidvalidity == uidvalidity:
            return state.last_uid
        if state is None:
            state = MailboxState(name=name)
            session.add(state)
        else:
            log.warning(
                "mailbox %s: %s has UIDVALIDITY %s (was %s in %s): rescanning the whole folder",
                name, folder, uidvalidity, state.uidvalidity, state.folder,
            )
        state.folder = folder
        state.uidvalidity = uidvalidity
        state.last_uid = 0
        state.updated_at = clock.now()
        return 0


def remember_last_uid(db: Database, clock: Clock, name: str, last_uid: int) -> None:
    with db.transaction() as session:
        state = session.get(MailboxState, name)
        if state is not None and last_uid > state.last_uid:
            state.last_uid = last_uid
            state.updated_at = clock.now()


# --- how the reader stands, for /healthz and /metrics ------------------------------------

def record_connection(db: Database, clock: Clock, name: str, state: str,
                      detail: str | None = None) -> None:
    """The reader holding mailbox `name` is now `state` (connected | backoff | stopped).

    Written by the maild that reads the mailbox, so that every maild sharing the database
    reports the same. Best effort: a database that is away does not stop the reader."""
    now = clock.now()
    try:
        with db.transaction() as session:
            row = session.get(MailboxConnection, name)
            if row is None:
                row = MailboxConnection(name=name, changed_at=now)
                session.add(row)
            if row.state != state:
                row.changed_at = now
            row.state = state
            row.detail = detail
            if state == "connected":
                row.last_poll_at = now
    except TemporaryError as exc:
        log.warning("mailbox %s: cannot record that it is %s: %s", name, state, exc)


_POLLED = update(MailboxConnection).where(
    MailboxConnection.name == bindparam("mailbox")).values(last_poll_at=bindparam("at"))


def record_poll(db: Database, clock: Clock, name: str) -> None:
    """The reader looked at the folder just now and the server answered."""
    try:
        with db.transaction() as session:
            session.connection().execute(_POLLED, {"mailbox": name, "at": clock.now()})
    except TemporaryError as exc:
        log.warning("mailbox %s: cannot record the last look at it: %s", name, exc)


def connections(session: Session) -> dict[str, MailboxConnection]:
    """How each mailbox's reader stands, by mailbox name (a mailbox never read: absent)."""
    return {row.name: row for row in session.scalars(select(MailboxConnection))}
