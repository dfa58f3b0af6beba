"""Indexes for the reads that look records up by id or time rather than by run.

``tradepipe explain`` and the dashboard's recent activity find decisions,
orders and verdicts by decision id or client order id in any run; the equity
curve finds the latest account snapshot by time, then each run's span. The
verdicts' (run, order) index served none of these and goes.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NEW = [
    ("ix_decisions_decision", "decisions", ["decision_id"]),
    ("ix_orders_client_order", "orders", ["client_order_id"]),
    ("ix_orders_decision", "orders", ["decision_id"]),
    ("ix_verdicts_decision", "verdicts", ["decision_id"]),
    ("ix_account_snapshots_ts", "account_snapshots", ["ts"]),
    ("ix_account_snapshots_account_run_ts", "account_snapshots", ["account_id", "run_id", "ts"]),
]


def upgrade() -> None:
    op.drop_index("ix_verdicts_run_order", table_name="verdicts")
    for name, table, columns in _NEW:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_NEW):
        op.drop_index(name, table_name=table)
    op.create_index("ix_verdicts_run_order", "verdicts", ["run_id", "client_order_id"])
