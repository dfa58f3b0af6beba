"""An order's status changes are keyed by its row: ``status_changes``, and an ``order_events`` view.

Each change of an order's status was a row repeating the order's run, client
order id and decision, with a unique index over the run, the client order id
and the place: for an order's three or so changes that was about 600 bytes of
its 1,900 on disk, the index's entries going to random places as the ledger
grew. A change now names its order by the order's row id (``orders.id``), and
the ``order_events`` view joins the two back into the old columns, so
everything reading ``order_events`` reads what it did. A change keeps its id.

A change whose order has no row (none is written so, but a ledger could hold
one) is kept as it was in ``order_events_unmatched``, which the view reads too;
new changes take ids after those as well. A later migration that rebuilds
``orders`` (SQLite's copy-and-rename) must drop the view first and make it again.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

#: A conversion of more changes than this says how long it takes.
PROGRESS_EVERY = 1_000_000
#: Changes converted a second on SQLite (300,000 took 2.1 s on the development machine).
CHANGES_PER_SECOND = 140_000

log = logging.getLogger("tradepipe.plugins.ledger.queries")

_CHANGE = "seq, status, previous, ts, reason, broker_order_id"
_OLD = f"id, run_id, client_order_id, decision_id, {_CHANGE}"
# An order is its run and client order id, as the sink finds it for a new change.
_SAME_ORDER = (
    "orders.run_id = order_events.run_id AND orders.client_order_id = order_events.client_order_id"
)

# The tables keep their names in the view (no alias): query plans then name them.
VIEW = f"""
CREATE VIEW order_events AS
SELECT status_changes.id, orders.run_id, orders.client_order_id, orders.decision_id,
       {", ".join(f"status_changes.{c}" for c in _CHANGE.split(", "))}
FROM status_changes JOIN orders ON orders.id = status_changes.order_id
UNION ALL
SELECT {_OLD} FROM order_events_unmatched
"""


def _timestamp(dialect: str) -> Any:
    return sa.DateTime(timezone=True) if dialect == "postgresql" else sa.String(40)


def _change_columns(dialect: str) -> list[sa.Column[Any]]:
    """The columns of a change itself, after what names its order."""
    return [
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("previous", sa.String(), nullable=True),
        sa.Column("ts", _timestamp(dialect), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("broker_order_id", sa.String(), nullable=True),
    ]


def _old_columns(dialect: str) -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        *_change_columns(dialect),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "status_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), nullable=False),
        *_change_columns(dialect),
        sa.UniqueConstraint("order_id", "seq", name="uq_status_changes_seq"),
        # A new change never takes the id of one kept in order_events_unmatched
        # (the view lists both): SQLite would otherwise reuse ids above its own.
        sqlite_autoincrement=True,
    )
    op.create_table(
        "order_events_unmatched",
        *_old_columns(dialect),
        sa.UniqueConstraint(
            "run_id", "client_order_id", "seq", name="uq_order_events_unmatched_seq"
        ),
    )
    total = bind.exec_driver_sql("SELECT COUNT(*) FROM order_events").scalar() or 0
    if total > PROGRESS_EVERY:
        log.warning(
            "the ledger's %d order status changes are keyed by their orders: about %d s",
            total,
            max(1, round(total / CHANGES_PER_SECOND)),
        )
    change = ", ".join(f"order_events.{c}" for c in _CHANGE.split(", "))
    op.execute(
        f"INSERT INTO status_changes (id, order_id, {_CHANGE}) "
        f"SELECT order_events.id, orders.id, {change} "
        f"FROM order_events JOIN orders ON {_SAME_ORDER} ORDER BY order_events.id"
    )
    # No order row: kept as they were.
    op.execute(
        f"INSERT INTO order_events_unmatched ({_OLD}) SELECT {_OLD} FROM order_events "
        f"WHERE NOT EXISTS (SELECT 1 FROM orders WHERE {_SAME_ORDER}) ORDER BY id"
    )
    unmatched = bind.exec_driver_sql("SELECT COUNT(*) FROM order_events_unmatched").scalar()
    if unmatched:
        log.warning(
            "%d order status changes have no order in the ledger: kept in "
            "order_events_unmatched (order_events lists them too)",
            unmatched,
        )
    other = bind.exec_driver_sql(
        f"SELECT COUNT(*) FROM order_events JOIN orders ON {_SAME_ORDER} "
        "WHERE orders.decision_id <> order_events.decision_id"
    ).scalar()
    if other:
        # None is written so: an order's changes carry its decision.
        log.warning(
            "%d order status changes named another decision than their order's: "
            "order_events now gives the order's",
            other,
        )
    op.drop_table("order_events")
    if dialect == "sqlite":
        # Ids were given explicitly: the next one the sink takes follows them all.
        bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'status_changes'")
        bind.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'status_changes', "
            "MAX(COALESCE((SELECT MAX(id) FROM status_changes), 0), "
            "COALESCE((SELECT MAX(id) FROM order_events_unmatched), 0))"
        )
    if dialect == "postgresql":
        # Ids were given explicitly: the next one the sink takes follows them.
        bind.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('status_changes', 'id'), "
            "GREATEST(COALESCE((SELECT MAX(id) FROM status_changes), 0), "
            "COALESCE((SELECT MAX(id) FROM order_events_unmatched), 0)) + 1, false)"
        )
    op.execute(VIEW)


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "order_events_restored",
        *_old_columns(dialect),
        sa.UniqueConstraint("run_id", "client_order_id", "seq", name="uq_order_events_seq"),
    )
    op.execute(
        f"INSERT INTO order_events_restored ({_OLD}) SELECT {_OLD} FROM order_events ORDER BY id"
    )
    op.execute("DROP VIEW order_events")
    op.drop_table("status_changes")
    op.drop_table("order_events_unmatched")
    op.rename_table("order_events_restored", "order_events")
    if dialect == "postgresql":
        # The names the table had before 0019.
        op.execute("ALTER SEQUENCE order_events_restored_id_seq RENAME TO order_events_id_seq")
        op.execute("ALTER INDEX order_events_restored_pkey RENAME TO order_events_pkey")
        bind.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('order_events', 'id'), "
            "COALESCE((SELECT MAX(id) FROM order_events), 0) + 1, false)"
        )
