"""A status change at the time its order was placed leaves its time to the order (SQLite).

An order is submitted, and at a simulator or a quick broker accepted too, at
the time it was placed: two of a replayed order's three changes wrote that time
again as 25 characters of text (about 50 of an order's 1,270 bytes). On SQLite
the sink now writes such a change's ``ts`` empty, and the ``order_events`` view
gives the order's ``created_at`` for it. PostgreSQL keeps every time (eight
bytes) and its view is unchanged. Nothing is converted: changes written before
keep their times. A downgrade writes the order's time into every empty one.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_CHANGE = "seq, status, previous, ts, reason, broker_order_id"
_OLD = f"id, run_id, client_order_id, decision_id, {_CHANGE}"


def _view(ts: str) -> str:
    """The ``order_events`` view, its ``ts`` column being ``ts``."""
    columns = ", ".join(ts if c == "ts" else f"status_changes.{c}" for c in _CHANGE.split(", "))
    # The tables keep their names in the view (no alias): query plans then name them.
    return f"""
CREATE VIEW order_events AS
SELECT status_changes.id, orders.run_id, orders.client_order_id, orders.decision_id,
       {columns}
FROM status_changes JOIN orders ON orders.id = status_changes.order_id
UNION ALL
SELECT {_OLD} FROM order_events_unmatched
"""


SQLITE_VIEW = _view(
    "CASE WHEN status_changes.ts = '' THEN orders.created_at ELSE status_changes.ts END AS ts"
)
#: As migration 0019 made it.
VIEW_0019 = _view("status_changes.ts")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP VIEW order_events")
        op.execute(SQLITE_VIEW)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "UPDATE status_changes SET ts = (SELECT created_at FROM orders "
            "WHERE orders.id = status_changes.order_id) WHERE ts = ''"
        )
        op.execute("DROP VIEW order_events")
        op.execute(VIEW_0019)
