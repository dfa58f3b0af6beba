"""A run's denials have an index of their own.

A run's summary counts its denials by filter (``not_sent``). The verdicts had
no index by run, so that count read every verdict of every run in the ledger:
a ledger that keeps every replay made each summary slower than the last. The
index is partial: it holds the denials only, a handful of entries where a run
has thousands of verdicts, so writing a verdict that passes costs nothing more.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

DENIED = sa.text("outcome = 'deny'")


def upgrade() -> None:
    op.create_index(
        "ix_verdicts_denied",
        "verdicts",
        ["run_id", "filter"],
        sqlite_where=DENIED,
        postgresql_where=DENIED,
    )


def downgrade() -> None:
    op.drop_index("ix_verdicts_denied", table_name="verdicts")
