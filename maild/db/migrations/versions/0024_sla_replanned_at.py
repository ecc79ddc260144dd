"""A ticket's due times moved by the SLA sweep, noted apart from its activity

The SLA sweep plans an unresolved ticket's due times afresh when one of its alerts comes
due, in case the policies, the business hours or the customer's plan changed since. Such
a move is no activity on the ticket, so it never set `updated_at`, and the report's kept
weeks (report_rollup.py), which find changed tickets by `updated_at`, kept showing the
targets as first planned. The move is now noted in `sla_replanned_at`, indexed as
`updated_at` is for the same question: which tickets changed since a week was kept.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import maild.db.models

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_replanned_at",
                                      maild.db.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index("ix_tickets_sla_replanned_at", ["sla_replanned_at"],
                              unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_sla_replanned_at", table_name="tickets")
    # SQLite drops a column in place (3.35 and later): copying the table, which other
    # tables refer to, would break their foreign keys.
    with op.batch_alter_table("tickets", recreate="never") as batch_op:
        batch_op.drop_column("sla_replanned_at")
