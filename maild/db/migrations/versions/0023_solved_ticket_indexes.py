"""Solved tickets found by index: the minute's close and survey sweeps

The close sweep reads the solved tickets in the order they were solved, and the survey
sweep those solved without a survey. Both went through every solved ticket on each run
(status alone is indexed), so the idle sweep grew with the tickets solved in the last
days: 6 ms over a desk of 10,000 tickets, 11 ms over 100,000.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 17:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_status_solved_at", "tickets", ["status", "solved_at"],
                    unique=False)
    op.create_index("ix_tickets_status_survey_sent_at", "tickets",
                    ["status", "survey_sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_status_survey_sent_at", table_name="tickets")
    op.drop_index("ix_tickets_status_solved_at", table_name="tickets")
