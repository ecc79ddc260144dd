"""How far reading a mailbox got: the folder's UIDVALIDITY and the last UID filed away."""

from __future__ import annotations

import logging

from maild.clock import Clock
from maild.db.database import Database
from maild.db.models import MailboxState

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
