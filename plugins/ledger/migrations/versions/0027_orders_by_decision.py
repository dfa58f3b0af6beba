"""An order names its decision by the decision's row: ``order_rows.decision_row``.

An order repeated its decision's id (22 characters), and an index over it
repeated it again: about 45 of a churn order's 760 bytes. An order of a
decision its run recorded now names the decision's row (``decision_row``) and
leaves the id to it: its ``decision_id`` is NULL. An order of a decision its
run did not record (a decision an approval sent on from an earlier run, say)
keeps its id. The ``orders`` view, and ``order_events`` and ``fills`` over it,
give every order its decision id as before.

An index of decision rows serves a lookup of a decision's orders; the index of
decision ids holds only the orders that keep theirs. Readers that look orders
up by decision id ask both (``schema.orders_of_decisions``).

A downgrade writes the ids back into every order.

Revision ID: 0027
Revises: 0026
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

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

#: The orders that keep their own decision id, which the index holds.
OWN_ID = sa.text("decision_id IS NOT NULL")

#: The views over ``order_rows``, dropped while it is made again (dependents first).
VIEWS = ("order_events", "fills", "orders")


def _iso(column: str, dialect: str) -> str:
    """``column`` as the views show a time (on SQLite as 0025 reads it)."""
    if dialect != "sqlite":
        return column
    return f"{earlier('0025_short_times.py').iso(column)} AS {column.split('.')[-1]}"


def _orders_view(columns: list[str], dialect: str, keyed: bool) -> str:
    """``orders``, its ``columns`` in their order: with the decision id its own or
    its decision row's (``keyed``), or as 0022 made it (and 0025 on SQLite)."""
    shown = []
    for name in columns:
        if name == "run_id":
            shown.append("runs.run_id")
        elif name == "decision_id" and keyed:
            shown.append(
                "COALESCE(order_rows.decision_id, decision_rows.decision_id) AS decision_id"
            )
        elif name == "created_at":
            shown.append(_iso("order_rows.created_at", dialect))
        else:
            shown.append(f"order_rows.{name}")
    joined = "FROM order_rows JOIN runs ON runs.run_no = order_rows.run_no"
    if keyed:
        joined += " LEFT JOIN decision_rows ON decision_rows.id = order_rows.decision_row"
    return f"CREATE VIEW orders AS SELECT {', '.join(shown)} {joined}"


def fills_view(dialect: str) -> str:
    """``fills`` as 0026 made it, a fill's decision id its own, its order's, or its
    order's decision row's. The tables keep their names: query plans name them."""
    made = earlier("0026_fills_by_order.py")
    rest = made._rest(dialect)
    return f"""
CREATE VIEW fills AS
SELECT fill_rows.id, runs.run_id, fill_rows.execution_id,
       COALESCE(fill_rows.client_order_id, order_rows.client_order_id) AS client_order_id,
       COALESCE(fill_rows.decision_id, order_rows.decision_id, decision_rows.decision_id)
           AS decision_id, {rest}
FROM fill_rows JOIN runs ON runs.run_no = fill_rows.run_no
LEFT JOIN order_rows ON order_rows.id = fill_rows.order_id
LEFT JOIN decision_rows ON decision_rows.id = order_rows.decision_row
"""


def _order_events(dialect: str) -> str:
    """``order_events`` as the latest migration made it (0025 on SQLite, 0023 on
    PostgreSQL): over ``orders``, which gives it each order's decision id."""
    if dialect == "sqlite":
        return str(earlier("0025_short_times.py")._order_events(short=True))
    return str(earlier("0023_status_codes.py")._view("postgresql", coded=True))


def _rebuild(bind: Any, columns: list[sa.Column[Any]], copy: str, keyed: bool) -> None:
    """Make ``order_rows`` again with ``columns``, its rows copied by the SELECT
    ``copy`` (over the old table, named ``o``), its indexes and views as the layout
    has them (``keyed``: orders name their decision's row, as after this migration)."""
    dialect = bind.dialect.name
    shown = [c["name"] for c in sa.inspect(bind).get_columns("orders")]

    def indexes() -> None:
        op.create_index("ix_orders_run", "order_rows", ["run_no"])
        if not keyed:
            op.create_index("ix_orders_decision", "order_rows", ["decision_id"])
            return
        op.create_index("ix_orders_decision_row", "order_rows", ["decision_row"])
        op.create_index(
            "ix_orders_decision",
            "order_rows",
            ["decision_id"],
            sqlite_where=OWN_ID,
            postgresql_where=OWN_ID,
        )

    unique = ("uq_orders_cid_run", ["client_order_id", "run_no"])
    remake(bind, "order_rows", columns, copy, views=VIEWS, indexes=indexes, unique=unique)
    bind.exec_driver_sql(_orders_view(shown, dialect, keyed))
    bind.exec_driver_sql(
        fills_view(dialect) if keyed else earlier("0026_fills_by_order.py").view(dialect)
    )
    bind.exec_driver_sql(_order_events(dialect))


def upgrade() -> None:
    bind = op.get_bind()
    say_how_long(bind, "order_rows", "orders name their decision's row")
    old = table_columns(bind, "order_rows")
    key = sa.Column("decision_row", sa.Integer(), nullable=True)
    decision = sa.Column("decision_id", old["decision_id"].type, nullable=True)
    rest = [
        c for name, c in old.items() if name not in ("run_no", "client_order_id", "decision_id")
    ]
    columns = [old["run_no"], key, old["client_order_id"], decision, *rest]
    # An order takes the row of its run's decision of its id (the first, should the
    # run have recorded the id twice), and leaves the id to it.
    found = (
        "(SELECT MIN(d.id) FROM decision_rows AS d "
        "WHERE d.run_no = o.run_no AND d.decision_id = o.decision_id)"
    )
    copy = (
        f"SELECT o.id, o.run_no, {found}, o.client_order_id, "
        f"CASE WHEN {found} IS NULL THEN o.decision_id END, "
        f"{', '.join('o.' + c.name for c in rest)} FROM order_rows AS o"
    )
    _rebuild(bind, columns, copy, keyed=True)


def downgrade() -> None:
    bind = op.get_bind()
    old = table_columns(bind, "order_rows")
    decision = sa.Column("decision_id", old["decision_id"].type, nullable=False)
    rest = [
        c
        for name, c in old.items()
        if name not in ("run_no", "decision_row", "client_order_id", "decision_id")
    ]
    columns = [old["run_no"], old["client_order_id"], decision, *rest]
    copy = (
        "SELECT o.id, o.run_no, o.client_order_id, COALESCE(o.decision_id, d.decision_id), "
        f"{', '.join('o.' + c.name for c in rest)} "
        "FROM order_rows AS o LEFT JOIN decision_rows AS d ON d.id = o.decision_row"
    )
    _rebuild(bind, columns, copy, keyed=False)
