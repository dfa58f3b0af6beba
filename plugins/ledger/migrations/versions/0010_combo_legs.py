"""A combo's fill is booked per leg.

Each combo fill is one row for the order (``is_combo``, at the net price) and
one row per leg (``combo_execution_id`` names the combo's row), so positions,
cash and tax lots see each leg's OCC symbol, quantity and price. Fills from
before this revision are plain rows.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.add_column(
            sa.Column("is_combo", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("combo_execution_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("combo_execution_id")
        batch.drop_column("is_combo")
