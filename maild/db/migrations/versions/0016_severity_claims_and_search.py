"""A customer's claimed severity until triage

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("claimed_priority", sa.String(2), nullable=True))
        batch_op.add_column(sa.Column("severity_claim", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("priority_triaged_at", UTCDateTime(timezone=True),
                                        nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("priority_triaged_at")
        batch_op.drop_column("severity_claim")
        batch_op.drop_column("claimed_priority")
