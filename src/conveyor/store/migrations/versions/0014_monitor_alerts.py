"""monitor alerts: Alertmanager alerts received by the webhook, a monitoring signal (issue 13)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("alertname", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=255), nullable=False),
        sa.Column("environment", sa.String(length=255), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("generator_url", sa.Text(), nullable=True),
        sa.Column("receiver", sa.String(length=255), nullable=False),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alerts")),
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_monitor_alerts_fingerprint_starts_at"),
    )
    op.create_index("ix_monitor_alerts_service_environment", "monitor_alerts", ["service", "environment"])


def downgrade() -> None:
    op.drop_index("ix_monitor_alerts_service_environment", table_name="monitor_alerts")
    op.drop_table("monitor_alerts")
