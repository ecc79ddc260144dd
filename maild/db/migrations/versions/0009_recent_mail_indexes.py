"""Indexes for a requester's recent automatic mail, read for every new ticket

The count went through every system message of the last hour (kind, created_at), which
grows with the whole desk's traffic; it now reads the requester's recently touched
tickets and their messages of that kind.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 13:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_messages_kind_created_at", table_name="messages")
    op.create_index("ix_messages_ticket_id_kind_created_at", "messages",
                    ["ticket_id", "kind", "created_at"], unique=False)
    op.drop_index("ix_tickets_requester", table_name="tickets")
    op.create_index("ix_tickets_requester_updated_at", "tickets",
                    ["requester", "updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_requester_updated_at", table_name="tickets")
    op.create_index("ix_tickets_requester", "tickets", ["requester"], unique=False)
    op.drop_index("ix_messages_ticket_id_kind_created_at", table_name="messages")
    op.create_index("ix_messages_kind_created_at", "messages", ["kind", "created_at"],
                    unique=False)
