"""Follow-ups: since when a ticket is pending, and when its next nudge is due

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import maild.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "pending_since", maild.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column(
            "followup_due_at", maild.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_tickets_followup_due_at"), ["followup_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_followup_due_at"))
        batch_op.drop_column("followup_due_at")
        batch_op.drop_column("pending_since")
