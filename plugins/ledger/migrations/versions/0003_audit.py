"""Reconciliation keeps an audit row for every difference it finds and what it did.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger import schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("ts", schema.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("ledger_value", sa.Text(), nullable=True),
        sa.Column("broker_value", sa.Text(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_run_id", "audit", ["run_id"])


def downgrade() -> None:
    op.drop_table("audit")
