"""The ledger as tradepipe first wrote it: runs, decisions, verdicts, orders, events, fills.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("ts", schema.UTCDateTime(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("cash", schema.ExactDecimal(), nullable=False),
        sa.Column("equity", schema.ExactDecimal(), nullable=False),
        sa.Column("buying_power", schema.ExactDecimal(), nullable=False),
        sa.Column("gross_position_value", schema.ExactDecimal(), nullable=False),
        sa.Column("realized_pnl", schema.ExactDecimal(), nullable=False),
        sa.Column("unrealized_pnl", schema.ExactDecimal(), nullable=False),
    )
    op.create_index("ix_account_snapshots_run_id", "account_snapshots", ["run_id"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("quantity", schema.ExactDecimal(), nullable=True),
        sa.Column("order_type", sa.String(), nullable=False),
        sa.Column("limit_price", schema.ExactDecimal(), nullable=True),
        sa.Column("stop_price", schema.ExactDecimal(), nullable=True),
        sa.Column("stop_loss", schema.ExactDecimal(), nullable=True),
        sa.Column("take_profit", schema.ExactDecimal(), nullable=True),
        sa.Column("tif", sa.String(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=True),
    )
    op.create_index("ix_decisions_run_decision", "decisions", ["run_id", "decision_id"])
    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("execution_id", sa.String(128), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("broker_order_id", sa.String(), nullable=True),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", schema.ExactDecimal(), nullable=False),
        sa.Column("price", schema.ExactDecimal(), nullable=False),
        sa.Column("commission", schema.ExactDecimal(), nullable=False),
        sa.Column("multiplier", schema.ExactDecimal(), nullable=False),
        sa.Column("ts", schema.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "execution_id", name="uq_fills_run_exec"),
    )
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])
    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("previous", sa.String(), nullable=True),
        sa.Column("ts", schema.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("broker_order_id", sa.String(), nullable=True),
        sa.UniqueConstraint("run_id", "client_order_id", "seq", name="uq_order_events_seq"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", schema.ExactDecimal(), nullable=False),
        sa.Column("order_type", sa.String(), nullable=False),
        sa.Column("limit_price", schema.ExactDecimal(), nullable=True),
        sa.Column("stop_price", schema.ExactDecimal(), nullable=True),
        sa.Column("tif", sa.String(), nullable=False),
        sa.Column("outside_rth", sa.Boolean(), nullable=False),
        sa.Column("stop_loss", schema.ExactDecimal(), nullable=True),
        sa.Column("take_profit", schema.ExactDecimal(), nullable=True),
        sa.Column("reference_price", schema.ExactDecimal(), nullable=True),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "client_order_id", name="uq_orders_run_cid"),
    )
    op.create_table(
        "position_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("ts", schema.UTCDateTime(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("quantity", schema.ExactDecimal(), nullable=False),
        sa.Column("avg_cost", schema.ExactDecimal(), nullable=False),
        sa.Column("multiplier", schema.ExactDecimal(), nullable=False),
        sa.Column("mark_price", schema.ExactDecimal(), nullable=True),
        sa.Column("realized_pnl", schema.ExactDecimal(), nullable=False),
    )
    op.create_index("ix_position_snapshots_run_id", "position_snapshots", ["run_id"])
    op.create_table(
        "rejected_decisions",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("ts", schema.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
    )
    op.create_index("ix_rejected_decisions_run_id", "rejected_decisions", ["run_id"])
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True, nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("started_at", schema.UTCDateTime(), nullable=False),
        sa.Column("finished_at", schema.UTCDateTime(), nullable=True),
        sa.Column("env", sa.String(), nullable=False),
        sa.Column("broker", sa.String(), nullable=False),
        sa.Column("feed", sa.String(), nullable=False),
        sa.Column("strategies", sa.Text(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("bars", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quantity_before", schema.ExactDecimal(), nullable=False),
        sa.Column("quantity_after", schema.ExactDecimal(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("ts", schema.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_verdicts_run_order", "verdicts", ["run_id", "client_order_id"])


def downgrade() -> None:
    op.drop_table("verdicts")
    op.drop_table("runs")
    op.drop_table("rejected_decisions")
    op.drop_table("position_snapshots")
    op.drop_table("orders")
    op.drop_table("order_events")
    op.drop_table("fills")
    op.drop_table("decisions")
    op.drop_table("account_snapshots")
