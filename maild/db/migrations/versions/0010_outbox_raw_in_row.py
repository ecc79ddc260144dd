"""Outgoing mail kept in its outbox row

An acknowledgment was a file of its own in the raw store, written, synced and moved into
place for every new ticket. Mail up to 256 KiB now lives in the row
that queues it; only larger mail (a relayed reply with attachments) is still a file.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 17:00:00
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))
        batch.alter_column("raw_sha256", existing_type=sa.String(64), nullable=True)
        batch.create_check_constraint("ck_outbox_raw_kept",
                                      "raw IS NOT NULL OR raw_sha256 IS NOT NULL")


def downgrade() -> None:
    """The older version reads outgoing mail only from files: mail still to be sent from
    its row would be lost, so the downgrade refuses until it has gone out. Rows of mail
    already sent keep the SHA-256 of their bytes, as before."""
    connection = op.get_bind()
    waiting = connection.execute(sa.text(
        "SELECT count(*) FROM outbox WHERE raw IS NOT NULL AND status = 'queued'")).scalar()
    if waiting:
        raise RuntimeError(f"{waiting} queued mail is kept only in the outbox: deliver it "
                           "(maild run --once --only outbound) before downgrading")
    rows = connection.execute(sa.text("SELECT id, raw FROM outbox WHERE raw IS NOT NULL"))
    for row_id, raw in rows.all():
        connection.execute(sa.text("UPDATE outbox SET raw_sha256 = :sha WHERE id = :id"),
                           {"sha": hashlib.sha256(raw).hexdigest(), "id": row_id})
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("ck_outbox_raw_kept", type_="check")
        batch.alter_column("raw_sha256", existing_type=sa.String(64), nullable=False)
        batch.drop_column("raw")
