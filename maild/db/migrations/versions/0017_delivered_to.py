"""Which of our addresses a ticket's first mail was delivered to, when not a mailbox's

A mail the SMTP listener takes for feedback@ (one of `[inbound_smtp] addresses`) is
answered from feedback@, as a mailbox's tickets are answered from the mailbox's address.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_to", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("delivered_to")
