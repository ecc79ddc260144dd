"""Scheduled steps that failed for one ticket, held back with their reason

A nudge, survey, closing or SLA alert that fails for one ticket is rolled back for that
ticket alone and retried later (5, 10, 20, 40 minutes, then hourly); this table says
which step, how often it failed, why, and when it is tried again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_steps",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("first_failed_at", UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=False),
        sa.Column("retry_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name=op.f("fk_failed_steps_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("ticket_id", "step", name=op.f("pk_failed_steps")),
    )
    op.create_index("ix_failed_steps_step_retry_at", "failed_steps", ["step", "retry_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_failed_steps_step_retry_at", table_name="failed_steps")
    op.drop_table("failed_steps")
