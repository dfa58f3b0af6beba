"""Tax lots carry the name a person reads and types.

``tax_lots`` and ``lot_realizations`` are rebuilt whole from the fills each
time they are read, so the column starts empty and is filled by the next
rebuild.

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

_TABLES = ("tax_lots", "lot_realizations")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("name", sa.String(240), nullable=False, server_default=""))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("name")
