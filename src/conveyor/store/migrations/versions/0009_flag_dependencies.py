"""flags: variant stickiness and dependent flags (issue 17)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.add_column(
            sa.Column("variant_stickiness", sa.String(length=128), server_default="default", nullable=False)
        )
        batch.add_column(sa.Column("dependencies", sa.JSON(), server_default="[]", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("dependencies")
        batch.drop_column("variant_stickiness")
