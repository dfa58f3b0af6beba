"""A fill names its order by the order's row, not by its ids: ``fill_rows.order_id``.

A fill repeated its order's client order id (24 characters) and decision id
(22), and an index over the client order id repeated the first again: about 85
of a churn order's 830 bytes. A fill whose order the ledger holds (in the same
run) now names the order's row (``order_id``), and leaves both ids to it: its
``client_order_id`` is NULL, and its ``decision_id`` too unless it differs from
the order's. A fill of an order the ledger does not hold keeps its ids. The
``fills`` view gives every fill its ids as before.

An index of order rows serves a lookup of an order's fills; the index of client
order ids holds only the fills that keep their own. The view is a LEFT JOIN of
the order's row, so that a read of the newest fills, or of a run's, goes down
the fills' own keys as before; a reader that looks fills up by client order id
asks both indexes (``schema.fills_of_orders``), since neither database takes a
lookup of the view's merged id into its tables.

A downgrade writes the ids back into every fill.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger.migrations import (
    earlier,
    remake,
    say_how_long,
    table_columns,
)

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

#: The fills that keep their own client order id, which the index holds.
OWN_ID = sa.text("client_order_id IS NOT NULL")

#: The fill's columns after its ids, as the view and the table have them.
REST = (
    "broker_order_id, symbol, side, quantity, price, commission, multiplier, ts, kind, "
    "is_combo, combo_execution_id"
)


def _rest(dialect: str) -> str:
    """The rest of a fill's columns in the view (on SQLite its time as ISO text,
    as migration 0025 reads it)."""
    shown = []
    for name in REST.split(", "):
        column = f"fill_rows.{name}"
        if name == "ts" and dialect == "sqlite":
            column = f"{earlier('0025_short_times.py').iso(column)} AS ts"
        shown.append(column)
    return ", ".join(shown)


def view(dialect: str) -> str:
    """``fills``: every fill with its ids, its own or its order's. The order's row
    is a LEFT JOIN by its key: a read that takes no id then goes down the fills'
    own keys. The tables keep their names (no alias): query plans then name them."""
    rest = _rest(dialect)
    return f"""
CREATE VIEW fills AS
SELECT fill_rows.id, runs.run_id, fill_rows.execution_id,
       COALESCE(fill_rows.client_order_id, order_rows.client_order_id) AS client_order_id,
       COALESCE(fill_rows.decision_id, order_rows.decision_id) AS decision_id, {rest}
FROM fill_rows JOIN runs ON runs.run_no = fill_rows.run_no
LEFT JOIN order_rows ON order_rows.id = fill_rows.order_id
"""


def _old_view(dialect: str) -> str:
    """``fills`` as 0022 made it (and 0025 on SQLite)."""
    rest = _rest(dialect)
    return (
        "CREATE VIEW fills AS SELECT fill_rows.id, runs.run_id, fill_rows.execution_id, "
        f"fill_rows.client_order_id, fill_rows.decision_id, {rest} "
        "FROM fill_rows JOIN runs ON runs.run_no = fill_rows.run_no"
    )


def _rebuild(bind: Any, columns: list[sa.Column[Any]], copy: str, ids_kept: bool) -> None:
    """Make ``fill_rows`` again with ``columns``, its rows copied by the SELECT
    ``copy`` (over the old table, named ``f``), its indexes as the layout has them
    (``ids_kept``: every fill keeps its ids, as before this migration)."""

    def indexes() -> None:
        if ids_kept:
            op.create_index("ix_fills_client_order_id", "fill_rows", ["client_order_id"])
            return
        op.create_index("ix_fills_order", "fill_rows", ["order_id"])
        op.create_index(
            "ix_fills_client_order_id",
            "fill_rows",
            ["client_order_id"],
            sqlite_where=OWN_ID,
            postgresql_where=OWN_ID,
        )

    unique = ("uq_fills_run_exec", ["run_no", "execution_id"])
    remake(bind, "fill_rows", columns, copy, views=("fills",), indexes=indexes, unique=unique)


def upgrade() -> None:
    bind = op.get_bind()
    say_how_long(bind, "fill_rows", "fills name their order's row")
    old = table_columns(bind, "fill_rows")
    order = sa.Column("order_id", sa.Integer(), nullable=True)
    ids = [
        sa.Column(name, old[name].type, nullable=True)
        for name in ("client_order_id", "decision_id")
    ]
    rest = [old[name] for name in REST.split(", ")]
    columns = [old["run_no"], order, old["execution_id"], *ids, *rest]
    # A fill takes the row of its run's order of its client order id, if the ledger
    # holds one; its decision id stays where it is not the order's.
    copy = (
        "SELECT f.id, f.run_no, o.id, f.execution_id, "
        "CASE WHEN o.id IS NULL THEN f.client_order_id END, "
        "CASE WHEN o.id IS NULL OR o.decision_id <> f.decision_id THEN f.decision_id END, "
        f"{', '.join('f.' + name for name in REST.split(', '))} "
        "FROM fill_rows AS f LEFT JOIN order_rows AS o "
        "ON o.run_no = f.run_no AND o.client_order_id = f.client_order_id"
    )
    _rebuild(bind, columns, copy, ids_kept=False)
    bind.exec_driver_sql(view(bind.dialect.name))


def downgrade() -> None:
    bind = op.get_bind()
    old = table_columns(bind, "fill_rows")
    ids = [
        sa.Column(name, old[name].type, nullable=False)
        for name in ("client_order_id", "decision_id")
    ]
    rest = [old[name] for name in REST.split(", ")]
    columns = [old["run_no"], old["execution_id"], *ids, *rest]
    copy = (
        "SELECT f.id, f.run_no, f.execution_id, COALESCE(f.client_order_id, o.client_order_id), "
        "COALESCE(f.decision_id, o.decision_id), "
        f"{', '.join('f.' + name for name in REST.split(', '))} "
        "FROM fill_rows AS f LEFT JOIN order_rows AS o ON o.id = f.order_id"
    )
    _rebuild(bind, columns, copy, ids_kept=True)
    bind.exec_driver_sql(_old_view(bind.dialect.name))
