"""An index for the follow-up sweep: pending tickets by due time

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 03:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_status_followup_due_at", "tickets",
                    ["status", "followup_due_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_status_followup_due_at", table_name="tickets")
