"""Where a received message's bytes are, by their SHA-256.

A small message (most of them) is kept in a row of `raw_mail`, written in the very
transaction that stores what refers to it: it costs the intake no file to create, sync
and rename, and a backup of the database holds it. A large one is a file of the raw
store (rawstore.py), written as it arrives so that it is never whole in memory. Mail
received before the rows existed stays in files; readers look in both places.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from maild.db.models import ReceivedRaw
from maild.db.rawstore import RawStore

# The most a message (or an outgoing mail, outbox.py) may weigh to be kept in its row.
# Below it a row costs less than a file on SQLite, its later checkpoint counted; at
# 250 KB it costs a quarter more (bench/raw_keeping.py).
IN_ROW_BYTES = 128 * 1024


def fits_in_row(raw: bytes) -> bool:
    return len(raw) <= IN_ROW_BYTES


def keep_rows(session: Session, raws: Mapping[str, bytes]) -> None:
    """Add these messages' rows to the session's transaction, once each: a message stored
    before (the same bytes sent twice) keeps its row."""
    if not raws:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.connection().execute(
        dialect.insert(ReceivedRaw).on_conflict_do_nothing(),
        [{"sha256": sha256, "raw": raw} for sha256, raw in raws.items()])


def read_raw(session: Session, files: RawStore, sha256: str, *,
             at_most: int | None = None) -> bytes:
    """The message's bytes (their first `at_most`); OSError (FileNotFoundError) when it
    is in neither place."""
    raw = session.scalar(select(ReceivedRaw.raw).where(ReceivedRaw.sha256 == sha256))
    if raw is not None:
        return raw[:at_most]
    if at_most is None:
        return files.get(sha256)
    with files.path_for(sha256).open("rb") as handle:
        return handle.read(at_most)


def raw_place(session: Session, files: RawStore, sha256: str) -> tuple[Path | None, int | None]:
    """The file the message is kept in (None for a row) and its size in bytes (None when
    it is in neither place)."""
    size = session.scalar(
        select(func.length(ReceivedRaw.raw)).where(ReceivedRaw.sha256 == sha256))
    if size is not None:
        return None, int(size)
    path = files.path_for(sha256)
    try:
        return path, path.stat().st_size
    except OSError:
        return path, None
