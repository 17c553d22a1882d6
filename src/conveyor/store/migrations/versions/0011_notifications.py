"""notifications: each message a notifier is to send with its delivery state, and the Slack
thread or GitHub deployment a destination keeps per deployment (issue 14)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("position", Id, nullable=False),
        sa.Column("deployment_id", sa.String(length=36)),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("notifier", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("text", sa.Text()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("position", "destination", name="uq_notifications_position_destination"),
    )
    op.create_index("ix_notifications_state_destination", "notifications", ["state", "destination"])
    op.create_index("ix_notifications_deployment_id", "notifications", ["deployment_id"])
    op.create_table(
        "notification_threads",
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("ref", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("destination", "deployment_id", name=op.f("pk_notification_threads")),
    )


def downgrade() -> None:
    op.drop_table("notification_threads")
    op.drop_index("ix_notifications_deployment_id", table_name="notifications")
    op.drop_index("ix_notifications_state_destination", table_name="notifications")
    op.drop_table("notifications")
