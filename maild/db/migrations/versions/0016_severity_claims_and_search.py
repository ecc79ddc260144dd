"""A customer's claimed severity until triage; full-text search over the messages

The severity a customer claims (its priority and their words) and when an engineer's
priority settled it. The words of every message (maild's own automatic mail aside) in a
full-text index, existing messages included: an FTS5 table on SQLite, a generated tsvector
column with a GIN index on PostgreSQL (maild/db/fulltext.py).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("claimed_priority", sa.String(2), nullable=True))
        batch_op.add_column(sa.Column("severity_claim", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("priority_triaged_at", UTCDateTime(timezone=True),
                                      nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE message_search USING fts5("
                   "subject, body, content='', tokenize='unicode61 remove_diacritics 0')")
        op.execute("INSERT INTO message_search (rowid, subject, body) "
                   "SELECT id, coalesce(subject, ''), coalesce(body, '') FROM messages "
                   "WHERE kind <> 'system'")
    else:
        op.execute(
            "ALTER TABLE messages ADD COLUMN search_document tsvector GENERATED ALWAYS AS ("
            "CASE WHEN kind = 'system' THEN NULL ELSE "
            "setweight(to_tsvector('simple'::regconfig, coalesce(subject, '')), 'A') || "
            "setweight(to_tsvector('simple'::regconfig, coalesce(body, '')), 'B') END"
            ") STORED")
        op.execute("CREATE INDEX ix_messages_search_document ON messages "
                   "USING gin (search_document)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE message_search")
    else:
        op.execute("DROP INDEX ix_messages_search_document")
        op.execute("ALTER TABLE messages DROP COLUMN search_document")
    # SQLite drops a column in place (3.35 and later): copying the table, which other
    # tables refer to, would break their foreign keys.
    with op.batch_alter_table("tickets", recreate="never") as batch_op:
        batch_op.drop_column("priority_triaged_at")
        batch_op.drop_column("severity_claim")
        batch_op.drop_column("claimed_priority")
