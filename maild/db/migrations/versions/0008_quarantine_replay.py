"""Quarantine replays: how often, when last, and what became of the message

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import maild.db.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replays", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column(
            "replayed_at", maild.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_column("outcome")
        batch_op.drop_column("replayed_at")
        batch_op.drop_column("replays")
