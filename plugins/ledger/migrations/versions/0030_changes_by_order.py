"""A status change is keyed by its order's row and its place: no id of its own.

A change had an id of its own and a unique index over its order's row and its
place in the order's history (``seq``), through which every read found it:
about 45 of a churn order's 660 bytes went to that index. The order's row and
the place are now the table's key (``PRIMARY KEY (order_id, seq)``; on SQLite
the table is one with its rows in the key's order, ``WITHOUT ROWID``), and a
change has no other id. The ``order_events`` view gives every change an ``id``
made of its key, its order's row times 2\\ :sup:`20` (1,048,576) plus its
place, so an order's changes are numbered in order and every id stays unique;
a change kept from before migration 0019 without its order
(``order_events_unmatched``) shows its own id negated, so the two never meet.
What an id was before the upgrade is not kept: nothing in tradepipe reads it,
and the order changes were recorded in is each one's ``ts``.

A downgrade gives the changes ids of their own again, numbered in the order of
their keys after the highest id kept in ``order_events_unmatched``.

Revision ID: 0030
Revises: 0029
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger.migrations import earlier, say_how_long, table_columns

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

#: A change's id in the view: its order's row times this, plus its place.
PER_ORDER = 1 << 20

#: The highest id of a change kept without its order (0 without one).
_KEPT = "(SELECT COALESCE(MAX(id), 0) FROM order_events_unmatched)"

#: A change's columns after its key, as the table has them.
REST = ("status", "previous", "ts", "reason", "broker_order_id")


def _before(dialect: str) -> str:
    """``order_events`` as the migrations before this one made it (0025 on SQLite,
    0023 on PostgreSQL)."""
    return str(earlier("0027_orders_by_decision.py")._order_events(dialect))


def view(dialect: str) -> str:
    """``order_events``, each change's id made of its key, those kept without an
    order negated."""
    made = _before(dialect)
    ids = {
        "SELECT status_changes.id,": (
            f"SELECT status_changes.order_id * {PER_ORDER} + status_changes.seq AS id,"
        ),
        "SELECT id, run_id,": "SELECT -id AS id, run_id,",
    }
    for old, new in ids.items():
        if made.count(old) != 1:  # the text of 0023 is not the one this expects
            raise RuntimeError(f"order_events as made before 0030 lacks {old!r}")
        made = made.replace(old, new)
    return made


def _rebuild(bind: Any, keyed: bool) -> None:
    """Make ``status_changes`` again, keyed by its order's row and place
    (``keyed``) or with an id of its own (as before), its rows copied in order."""
    dialect = bind.dialect.name
    old = table_columns(bind, "status_changes")
    key = [sa.Column(name, sa.Integer(), nullable=False) for name in ("order_id", "seq")]
    rest = [old[name] for name in REST]
    names = ", ".join(c.name for c in [*key, *rest])
    op.execute("DROP VIEW order_events")
    if keyed:
        op.create_table(
            "status_changes_new",
            *key,
            *rest,
            sa.PrimaryKeyConstraint("order_id", "seq", name="pk_status_changes"),
            sqlite_with_rowid=False,
        )
        copy = f"SELECT {names} FROM status_changes"
        into = names
    else:
        op.create_table(
            "status_changes_new",
            sa.Column("id", sa.Integer(), primary_key=True),
            *key,
            *rest,
            sa.UniqueConstraint("order_id", "seq", name="uq_status_changes_seq"),
            # Ids are never reused: those kept in order_events_unmatched stay unique.
            sqlite_autoincrement=True,
        )
        copy = (
            f"SELECT ROW_NUMBER() OVER (ORDER BY order_id, seq) + {_KEPT}, {names} "
            "FROM status_changes"
        )
        into = f"id, {names}"
    op.execute(f"INSERT INTO status_changes_new ({into}) {copy} ORDER BY order_id, seq")
    op.execute("DROP TABLE status_changes")
    op.rename_table("status_changes_new", "status_changes")
    # The next id the sink takes follows every id given, and those kept (as 0019).
    highest = f"COALESCE((SELECT MAX(id) FROM status_changes), 0), {_KEPT}"
    if dialect == "sqlite" and not keyed:
        op.execute("DELETE FROM sqlite_sequence WHERE name = 'status_changes'")
        op.execute(
            f"INSERT INTO sqlite_sequence (name, seq) SELECT 'status_changes', MAX({highest})"
        )
    if dialect == "postgresql":
        if not keyed:
            # The sequence and constraint take the names the table had.
            op.execute("ALTER SEQUENCE status_changes_new_id_seq RENAME TO status_changes_id_seq")
            op.execute(
                "ALTER TABLE status_changes RENAME CONSTRAINT status_changes_new_pkey "
                "TO status_changes_pkey"
            )
            op.execute(f"SELECT setval('status_changes_id_seq', GREATEST({highest}) + 1, false)")
        # A new table has no statistics until autovacuum comes by (as in 0026).
        op.execute("ANALYZE status_changes")
    bind.exec_driver_sql(view(dialect) if keyed else _before(dialect))


def upgrade() -> None:
    bind = op.get_bind()
    say_how_long(bind, "status_changes", "status changes are keyed by order and place")
    _rebuild(bind, keyed=True)


def downgrade() -> None:
    _rebuild(op.get_bind(), keyed=False)
