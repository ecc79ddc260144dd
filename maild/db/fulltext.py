"""The full-text index of the messages, one per database, outside the ORM models.

- SQLite: `message_search`, a contentless FTS5 table (the words only, keyed by the
  message's row id). The intake adds each message in the transaction that stores it
  (`index_new_messages`).
- PostgreSQL: `messages.search_document`, a tsvector column the database generates from
  the subject (weighted higher) and the body, with a GIN index: current by construction.

Both use the 'simple' rules (no language's stemming or stop words), so that a word in
any language is found as written, case aside. maild's own automatic mail
(acknowledgments, nudges: kind `system`) is left out: it says the same in every ticket.
Created by migration 0016.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

SQLITE_TABLE = "message_search"
PG_COLUMN = "search_document"
PG_INDEX = "ix_messages_search_document"

# Every message not yet in the index: SQLite hands out ascending row ids and one writer at
# a time holds the database (BEGIN IMMEDIATE), so "after the newest indexed" is exact.
_INDEX_NEW = text(
    f"INSERT INTO {SQLITE_TABLE} (rowid, subject, body) "
    "SELECT id, coalesce(subject, ''), coalesce(body, '') FROM messages "
    f"WHERE id > (SELECT coalesce(max(rowid), 0) FROM {SQLITE_TABLE}) AND kind <> 'system'"
)


def index_new_messages(session: Session) -> None:
    """Add the messages written since the index was last brought up to date, in the
    session's transaction (nothing to do on PostgreSQL). Call it after a flush."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.execute(_INDEX_NEW)


def not_in_the_models(obj: Any, name: str | None, type_: str, reflected: bool,
                      compare_to: Any) -> bool:
    """For Alembic's comparison of the schema with the models: the index is not there."""
    if type_ == "table" and name is not None and name.startswith(SQLITE_TABLE):
        return False
    return not (type_ in ("column", "index") and name in (PG_COLUMN, PG_INDEX))
