"""Messages from outside a ticket, and the cap on the staff's notifications per sender

A mail matched to a ticket by its headers, from someone who takes no part in it, is kept
on the ticket marked `outside`. Each mail records whether the staff's notification of it
was sent or held back by the cap on notifications about one sender, and one sender's
recent mail is found by (author, created_at).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("outside", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("staff_notice", sa.String(4), nullable=True))
    op.create_index("ix_messages_author_created_at", "messages", ["author", "created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_author_created_at", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("staff_notice")
        batch.drop_column("outside")
