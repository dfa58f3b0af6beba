"""Trades made outside tradepipe, imported for the tax lots.

``imports`` has one row per file imported; ``imported_fills`` its executions
(one per account and execution id, so importing again adds nothing);
``imported_closed_lots`` the lots the broker says each imported sale relieved.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger.schema import ExactDecimal, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("import_id", sa.String(40), nullable=False, unique=True),
        sa.Column("account", sa.String(), nullable=False, index=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.Column("reporting", sa.String(24), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
    )
    op.create_table(
        "imported_fills",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("import_id", sa.String(40), nullable=False, index=True),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("execution_id", sa.String(128), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("trade_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=False),
        sa.Column("commission", ExactDecimal(), nullable=False),
        sa.Column("multiplier", ExactDecimal(), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("cancelled_by", sa.String(40), nullable=True),
        sa.UniqueConstraint("account", "execution_id", name="uq_imported_fills_account_exec"),
    )
    op.create_table(
        "imported_closed_lots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("import_id", sa.String(40), nullable=False, index=True),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("execution_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("imported_closed_lots")
    op.drop_table("imported_fills")
    op.drop_table("imports")
