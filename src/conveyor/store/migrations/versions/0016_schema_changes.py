"""safe database changes: migration reports, acknowledgements and runs; deployment options (issue 16)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("maintenance", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("with_database", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "migration_reports",
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("service_id", _ID, nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("destructive", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_migration_reports_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_migration_reports_service_id_services")),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_migration_reports")),
    )
    op.create_index("ix_migration_reports_service_sha", "migration_reports", ["service_id", "sha"])
    op.create_table(
        "migration_acks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("service_id", _ID, nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_migration_acks_service_id_services")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_acks")),
    )
    op.create_index("ix_migration_acks_service_sha", "migration_acks", ["service_id", "sha"])
    op.create_table(
        "migration_runs",
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("service_id", _ID, nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("release_id", _ID, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("maintenance", sa.Boolean(), nullable=False),
        sa.Column("backup", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_migration_runs_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_migration_runs_service_id_services")),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name=op.f("fk_migration_runs_release_id_releases")),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_migration_runs")),
    )
    op.create_index("ix_migration_runs_service_env", "migration_runs", ["service_id", "environment"])


def downgrade() -> None:
    op.drop_table("migration_runs")
    op.drop_table("migration_acks")
    op.drop_table("migration_reports")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("with_database")
        batch.drop_column("maintenance")
