"""Broker questions wait for a person too (reply policy ``ask``).

A request is a decision's (``kind`` ``decision``, ``attempt`` 0) or a broker's
question about its order (``kind`` ``question``, ``attempt`` the send it
approves), so one decision may wait more than once: the same decision waits
once per send. The question's words and ids are kept with it.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="decision")
        )
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("question", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("message_ids", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("answered", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("asked_order_id", sa.String(64), nullable=True))
        batch.drop_constraint("uq_approvals_decision", type_="unique")
        batch.create_unique_constraint(
            "uq_approvals_attempt", ["namespace", "decision_id", "attempt"]
        )


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_constraint("uq_approvals_attempt", type_="unique")
        batch.execute("DELETE FROM approvals WHERE attempt > 0")
        batch.create_unique_constraint("uq_approvals_decision", ["namespace", "decision_id"])
        for column in ("asked_order_id", "answered", "message_ids", "question", "attempt", "kind"):
            batch.drop_column(column)
