"""Filing messages away on the server once maild has them: MOVE, or COPY + delete."""

from __future__ import annotations

import logging

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError

log = logging.getLogger(__name__)


def ensure_folder(client: IMAPClient, folder: str) -> None:
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClientError:
        if not client.folder_exists(folder):  # another process may have just made it
            raise
    log.info("created folder %s", folder)


def file_away(client: IMAPClient, uids: list[int], folder: str) -> None:
    """Take messages out of the selected folder into `folder`.

    Without MOVE (RFC 6851) the same happens in three steps; a crash between them leaves
    the message in both folders, and reading it again only finds a duplicate.
    """
    if not uids:
        return
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
    else:
        # Without UIDPLUS, EXPUNGE is the only way, and it also removes whatever else in
        # this folder was marked \Deleted: a dedicated support mailbox has nothing else.
        client.expunge()
