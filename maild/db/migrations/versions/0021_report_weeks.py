"""The report's closed weeks kept, and tickets found by when they last changed

The dashboard's report read every ticket of its weeks on each build (3 seconds of work
for 52 weeks of a desk of 100,000 tickets). A closed week's figures only change when one
of its tickets does: they are kept in report_weeks with the tickets they read, and worked
out again only for the weeks a changed ticket (found by ix_tickets_updated_at) touches.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import maild.db.models

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_weeks",
        sa.Column("definition", sa.String(length=64), nullable=False),
        sa.Column("week_start", maild.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", maild.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("tickets", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("definition", "week_start", name=op.f("pk_report_weeks")),
    )
    op.create_index("ix_tickets_updated_at", "tickets", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_updated_at", table_name="tickets")
    op.drop_table("report_weeks")
