"""evidence provenance: repository binding, delivery ids, event times (issue 11)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # the GitHub repository a service's evidence must come from (configured, or the first verified delivery)
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("github_repository", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("github_repository_id", sa.BigInteger(), nullable=True))
    # reviews and checks: where they came from, the event's own time, the delivery that carried them
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repository_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("event_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("delivery_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repository", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("repository_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("event_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("delivery_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("pull_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repository_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("event_at", sa.DateTime(timezone=True), nullable=True))
    # every X-GitHub-Delivery id seen, so a replayed delivery is recognised and ignored
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_received_at")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("pull_requests", schema=None) as batch_op:
        batch_op.drop_column("event_at")
        batch_op.drop_column("repository_id")
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_column("delivery_id")
        batch_op.drop_column("event_at")
        batch_op.drop_column("repository_id")
        batch_op.drop_column("repository")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("delivery_id")
        batch_op.drop_column("event_at")
        batch_op.drop_column("repository_id")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("github_repository_id")
        batch_op.drop_column("github_repository")
