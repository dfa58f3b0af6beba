"""Tax lots: the open lots and the realized (closed) pieces, rebuilt from the fills.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger import schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _lot_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("lot_id", sa.String(200), nullable=False),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("quantity", schema.ExactDecimal(), nullable=False),
        sa.Column("multiplier", schema.ExactDecimal(), nullable=False),
        sa.Column("opened_at", schema.UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "tax_lots",
        *_lot_columns(),
        sa.Column("purchased", sa.Date(), nullable=False),
        sa.Column("acquired", sa.Date(), nullable=False),
        sa.Column("basis", schema.ExactDecimal(), nullable=False),
        sa.Column("wash_adjustment", schema.ExactDecimal(), nullable=False),
    )
    op.create_table(
        "lot_realizations",
        *_lot_columns(),
        sa.Column("closed_at", schema.UTCDateTime(), nullable=False),
        sa.Column("close_execution_id", sa.String(200), nullable=False),
        sa.Column("acquired", sa.Date(), nullable=False),
        sa.Column("sold", sa.Date(), nullable=False),
        sa.Column("proceeds", schema.ExactDecimal(), nullable=False),
        sa.Column("basis", schema.ExactDecimal(), nullable=False),
        sa.Column("adjustment", schema.ExactDecimal(), nullable=False),
        sa.Column("gain", schema.ExactDecimal(), nullable=False),
        sa.Column("term", sa.String(8), nullable=False),
    )
    op.create_index("ix_lot_realizations_sold", "lot_realizations", ["sold"])


def downgrade() -> None:
    op.drop_table("lot_realizations")
    op.drop_table("tax_lots")
