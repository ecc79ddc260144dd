"""SLA per severity and plan: the internal target, the paused resolution clock, alerts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import maild.db.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = maild.db.models.UTCDateTime(timezone=True)
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("severity", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("internal_response_due_at", when, nullable=True))
        batch_op.add_column(sa.Column("sla_paused_at", when, nullable=True))
        batch_op.add_column(sa.Column("sla_alert_at", when, nullable=True))
        batch_op.add_column(sa.Column("sla_alerts_sent", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", when, nullable=True))
        batch_op.create_index("ix_tickets_sla_alert_at", ["sla_alert_at"], unique=False)
    # Unresolved tickets are planned by the next sweep, under the policies now configured.
    op.execute("UPDATE tickets SET sla_alert_at = updated_at "
               "WHERE status NOT IN ('solved', 'closed')")


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_sla_alert_at")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("sla_alerts_sent")
        batch_op.drop_column("sla_alert_at")
        batch_op.drop_column("sla_paused_at")
        batch_op.drop_column("internal_response_due_at")
        batch_op.drop_column("severity")
