"""Outbox claims with an owner and the senders' heartbeats

A sender claimed outbox mail under a five-minute lease and marked it sent by row id alone:
a slow relay let the lease run out and a second sender sent the same mail again, and a
killed sender's mail waited five minutes. A claim now names its owner, the owner beats in
outbox_senders, and a silent owner's claims are taken over within seconds.

Queued mail of the older version has no owner and is free to claim at once; its
next_attempt_at may still carry an old lease (up to five minutes ahead): it waits that out.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("owner", sa.String(120), nullable=True))
        batch.add_column(sa.Column("claimed_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_outbox_owner", ["owner"], unique=False)
    op.create_table(
        "outbox_senders",
        sa.Column("owner", sa.String(120), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("beat_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_outbox_senders")),
    )


def downgrade() -> None:
    op.drop_table("outbox_senders")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_owner")
        batch.drop_column("claimed_at")
        batch.drop_column("owner")
