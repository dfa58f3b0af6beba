"""A status change stores its statuses as numbers; ``order_events`` names them.

Each change of an order's status wrote its status and the one before it as
text (``partially_filled``, ``accepted``): about 18 of a change's 48 bytes, and
a replayed order has three changes. They are now small numbers (0 to 10, one
byte or none on SQLite; ``smallint`` on PostgreSQL), and the ``order_events``
view gives the names back, so everything reading it reads what it did.

A status this tradepipe does not know (none has ever been written) stops the
upgrade, naming it, and nothing is changed. A downgrade writes the names back.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op
from tradepipe import PersistenceError

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

#: As ``schema.STATUS_CODES`` has them (written out: a migration keeps what it did).
CODES = {
    "initialized": 0,
    "denied": 1,
    "submitted": 2,
    "unknown": 3,
    "accepted": 4,
    "rejected": 5,
    "partially_filled": 6,
    "filled": 7,
    "pending_cancel": 8,
    "canceled": 9,
    "expired": 10,
}

log = logging.getLogger("tradepipe.plugins.ledger.queries")

#: A conversion of more changes than this says how long it takes.
PROGRESS_EVERY = 1_000_000
#: Changes converted a second on SQLite (300,000 took 0.67 s).
CHANGES_PER_SECOND = 450_000

_CHANGE = "seq, status, previous, ts, reason, broker_order_id"
_OLD = f"id, run_id, client_order_id, decision_id, {_CHANGE}"


def _to_code(column: str) -> str:
    """SQL giving ``column``'s status name as its number."""
    whens = " ".join(f"WHEN '{name}' THEN {code}" for name, code in CODES.items())
    return f"CASE {column} {whens} END"


def _to_name(column: str) -> str:
    """SQL giving ``column``'s status number as its name (a number it does not
    know as its digits)."""
    whens = " ".join(f"WHEN {code} THEN '{name}'" for name, code in CODES.items())
    return f"CASE {column} {whens} ELSE CAST({column} AS VARCHAR) END"


def _view(dialect: str, coded: bool) -> str:
    """The ``order_events`` view over changes whose statuses are ``coded`` or not.

    As migration 0021 made it on SQLite (a change's empty ``ts`` is its order's
    ``created_at``) and 0019 on PostgreSQL.
    """
    shown = {
        "ts": "CASE WHEN status_changes.ts = '' THEN orders.created_at "
        "ELSE status_changes.ts END AS ts"
        if dialect == "sqlite"
        else "status_changes.ts",
        "status": f"{_to_name('status_changes.status')} AS status"
        if coded
        else "status_changes.status",
        "previous": f"{_to_name('status_changes.previous')} AS previous"
        if coded
        else "status_changes.previous",
    }
    columns = ", ".join(shown.get(c, f"status_changes.{c}") for c in _CHANGE.split(", "))
    # The tables keep their names in the view (no alias): query plans then name them.
    return f"""
CREATE VIEW order_events AS
SELECT status_changes.id, orders.run_id, orders.client_order_id, orders.decision_id,
       {columns}
FROM status_changes JOIN orders ON orders.id = status_changes.order_id
UNION ALL
SELECT {_OLD} FROM order_events_unmatched
"""


def _refuse_unknown(bind: Any) -> None:
    known = ", ".join(f"'{name}'" for name in CODES)
    unknown = sorted(
        {
            value
            for (value,) in bind.exec_driver_sql(
                f"SELECT DISTINCT status FROM status_changes WHERE status NOT IN ({known}) "
                "UNION SELECT DISTINCT previous FROM status_changes "
                f"WHERE previous IS NOT NULL AND previous NOT IN ({known})"
            )
        }
    )
    if unknown:
        raise PersistenceError(
            "the ledger's status changes hold statuses this tradepipe does not know "
            f"({', '.join(map(repr, unknown))}): nothing was upgraded"
        )


def _columns(dialect: str, status: Any) -> list[sa.Column[Any]]:
    """``status_changes``' columns, its statuses of type ``status``."""
    ts = sa.DateTime(timezone=True) if dialect == "postgresql" else sa.String(40)
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("previous", status, nullable=True),
        sa.Column("ts", ts, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("broker_order_id", sa.String(), nullable=True),
    ]


def _convert(bind: Any, status: Any, convert: Any) -> None:
    """Write every change's statuses as ``convert`` gives them, in columns of type
    ``status``; the view is made again after."""
    dialect = bind.dialect.name
    if dialect == "postgresql":
        # One statement: the table is rewritten once.
        kind = "smallint" if isinstance(status, sa.SmallInteger) else "varchar"
        op.execute(
            f"ALTER TABLE status_changes ALTER COLUMN status TYPE {kind} USING "
            f"{convert('status')}, ALTER COLUMN previous TYPE {kind} USING {convert('previous')}"
        )
        return
    # SQLite: copied into a new table and renamed, ids and their sequence kept.
    op.create_table(
        "status_changes_new",
        *_columns(dialect, status),
        sa.UniqueConstraint("order_id", "seq", name="uq_status_changes_seq"),
        sqlite_autoincrement=True,
    )
    columns = "id, order_id, seq, status, previous, ts, reason, broker_order_id"
    op.execute(
        f"INSERT INTO status_changes_new ({columns}) SELECT id, order_id, seq, "
        f"{convert('status')}, {convert('previous')}, ts, reason, broker_order_id "
        "FROM status_changes ORDER BY id"
    )
    last = bind.exec_driver_sql(
        "SELECT seq FROM sqlite_sequence WHERE name = 'status_changes'"
    ).scalar()
    op.drop_table("status_changes")
    op.rename_table("status_changes_new", "status_changes")
    bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'status_changes'")
    bind.exec_driver_sql(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'status_changes', "
        "MAX(COALESCE((SELECT MAX(id) FROM status_changes), 0), ?)",
        (last or 0,),
    )


def upgrade() -> None:
    bind = op.get_bind()
    _refuse_unknown(bind)
    total = bind.exec_driver_sql("SELECT COUNT(*) FROM status_changes").scalar() or 0
    if total > PROGRESS_EVERY:
        log.warning(
            "the ledger's %d order status changes store their statuses as numbers: about %d s",
            total,
            max(1, round(total / CHANGES_PER_SECOND)),
        )
    op.execute("DROP VIEW order_events")
    _convert(bind, sa.SmallInteger(), _to_code)
    op.execute(_view(bind.dialect.name, coded=True))


def downgrade() -> None:
    bind = op.get_bind()
    op.execute("DROP VIEW order_events")
    _convert(bind, sa.String(), _to_name)
    op.execute(_view(bind.dialect.name, coded=False))
