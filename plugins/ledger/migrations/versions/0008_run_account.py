"""Runs record the account they traded against.

A replay's simulated account, a paper account file and a broker's account
each get a key (``replay:<run id>``, ``paper:<file>``, ``account:<id>``);
ledger reads, tax lots and the equity curve take one account at a time, so
replays never pool with each other or with an account's trades. Runs from
before this revision could have traded anything: each becomes an account of
its own (``run:<run id>``).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("account", sa.String(), nullable=True))
    op.execute("UPDATE runs SET account = 'run:' || run_id WHERE account IS NULL")
    op.create_index("ix_runs_account", "runs", ["account"])


def downgrade() -> None:
    op.drop_index("ix_runs_account", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("account")
