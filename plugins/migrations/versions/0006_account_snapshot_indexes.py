"""Account snapshots are indexed for the equity curve: by time, and by account, run and time.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_account_snapshots_ts", "account_snapshots", ["ts"])
    op.create_index(
        "ix_account_snapshots_account_run_ts",
        "account_snapshots",
        ["account_id", "run_id", "ts"],
    )


def downgrade() -> None:
    op.drop_index("ix_account_snapshots_account_run_ts", table_name="account_snapshots")
    op.drop_index("ix_account_snapshots_ts", table_name="account_snapshots")
