"""notifications.outcome: what the receiver did with a delivered message (Slack's "posted",
a webhook's status), apart from ``last_error``, which now holds only the last failed attempt's
error; delivered rows move their note from ``last_error`` to ``outcome`` (issue 14)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("outcome", sa.Text()))
    op.execute("UPDATE notifications SET outcome = last_error, last_error = NULL WHERE state = 'delivered'")


def downgrade() -> None:
    op.execute("UPDATE notifications SET last_error = outcome WHERE state = 'delivered'")
    op.drop_column("notifications", "outcome")
