"""Staff proven by reply tokens: the key, the flag on unproven staff mail, the notices' index

Every mail to a staff address carries a token keyed by a secret of the site, kept in
site_secrets so that all processes on the database share it. Mail from a staff address
that proves nothing is kept as a customer's, with the reason in messages.unproven_staff.
The notices telling an engineer of it are capped per hour: ix_outbox_purpose_created_at
finds the recent ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maild.db.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_secrets",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_site_secrets"),
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("unproven_staff", sa.Text(), nullable=True))
    op.create_index("ix_outbox_purpose_created_at", "outbox", ["purpose", "created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_purpose_created_at", table_name="outbox")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("unproven_staff")
    op.drop_table("site_secrets")
