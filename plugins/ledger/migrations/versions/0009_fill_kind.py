"""Fills say what made them: a trade, or an option's expiry, exercise or assignment.

Settlement fills are recorded under the order that opened the position they
close; ``kind`` tells them from that order's own executions. Existing rows
are trades.

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
    with op.batch_alter_table("fills") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="trade")
        )


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("kind")
