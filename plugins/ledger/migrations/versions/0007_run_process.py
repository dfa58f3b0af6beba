"""Runs record the process that runs them (host, pid, its start time).

A run whose process died without closing it (SIGKILL, a power cut) would
say "running" forever; with the process recorded, the next start on the same
host sees that it is gone and marks the run "killed".

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pid_started", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pid_started")
        batch.drop_column("pid")
        batch.drop_column("host")
