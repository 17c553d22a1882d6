"""monitoring after a deploy: the window of each monitored deployment and its samples (issue 13)

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitorings",
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("interval", sa.Float(), nullable=False),
        sa.Column("on_breach", sa.String(length=16), nullable=False),
        sa.Column("judge_from", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=24), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("breach", sa.JSON(), nullable=True),
        sa.Column("alerted", sa.JSON(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=True),
        sa.Column("killed_flags", sa.JSON(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_monitorings_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_monitorings")),
    )
    op.create_table(
        "monitor_samples",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("latency_buckets", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(length=24), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_monitor_samples_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_samples")),
        sa.UniqueConstraint("deployment_id", "seq", name="uq_monitor_samples_deployment_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("monitor_samples")
    op.drop_table("monitorings")
