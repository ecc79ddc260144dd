"""Small received mail kept in the database, in a row of raw_mail

The intake wrote every received message to a file of the raw store, named by its SHA-256,
created, synced and renamed before its batch committed: a fifth to a third of the
intake's time (bench/README.md). A message of up to 128 KB is now a row of `raw_mail`,
written in its batch's transaction; larger ones stay files. Nothing is moved: mail
received before stays in its file, where readers still find it.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_mail",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_raw_mail")),
    )


def downgrade() -> None:
    """The earlier version reads received mail only from files, and a migration does not
    know where the raw store is: with rows kept, the downgrade refuses rather than lose
    them."""
    kept = op.get_bind().execute(sa.text("SELECT count(*) FROM raw_mail")).scalar()
    if kept:
        raise RuntimeError(f"{kept} received message(s) are kept only in the database "
                           "(raw_mail), which the earlier version cannot read: restore the "
                           "backup taken before the upgrade instead of downgrading")
    op.drop_table("raw_mail")
