"""Scheduled jobs that belong to no ticket and failed, held back with their reason

The weekly digest that fails (its template, say) was held back in the scheduler's memory:
a restart forgot it, and a daemon in a crash loop tried it at every start. This table
keeps which job failed, how often, why, and when it is tried again (5, 10, 20, 40
minutes, then hourly, as a ticket's failed step).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_jobs",
        sa.Column("job", sa.String(40), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("first_failed_at", UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=False),
        sa.Column("retry_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_failed_jobs")),
    )


def downgrade() -> None:
    op.drop_table("failed_jobs")
