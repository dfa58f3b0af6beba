"""Parameter sweeps and walk-forward tests: one row per sweep, one per replay.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger.schema import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("sweep_id", sa.String(40), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
    )
    op.create_table(
        "sweep_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sweep_id", sa.String(40), nullable=False, index=True),
        sa.Column("task_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("start", sa.String(10), nullable=False),
        sa.Column("end", sa.String(10), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("equity", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("sweep_id", "task_key", name="uq_sweep_results_task"),
    )


def downgrade() -> None:
    op.drop_table("sweep_results")
    op.drop_table("sweeps")
