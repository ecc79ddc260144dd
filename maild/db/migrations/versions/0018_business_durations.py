"""Each ticket's business time to first response and to solve, kept on the ticket

The report (and the dashboard's weekly charts) sum these instead of walking the business
calendar for every ticket of every week. Tickets answered or solved before this revision
have none: the report works theirs out from the calendar as before.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("first_response_business_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("resolution_business_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("resolution_business_seconds")
        batch_op.drop_column("first_response_business_seconds")
