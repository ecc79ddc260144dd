"""The report's weeks read by time; how each mailbox's reader stands

The dashboard's report reads the tickets opened and the events of a kind in a range of
weeks without going through every ticket and event of the desk; /metrics and
/healthz tell whether each IMAP mailbox is connected and when it was last looked at, the
same from every maild that shares the database.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"], unique=False)
    op.create_index("ix_events_kind_at", "events", ["kind", "at"], unique=False)
    op.create_table(
        "mailbox_connections",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("last_poll_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_mailbox_connections")),
    )


def downgrade() -> None:
    op.drop_table("mailbox_connections")
    op.drop_index("ix_events_kind_at", table_name="events")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
