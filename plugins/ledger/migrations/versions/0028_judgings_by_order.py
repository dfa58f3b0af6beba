"""A judging names its order by the order's row: ``judgement_rows.order_id``.

A judging repeated its order's client order id (24 characters). A judging of an
order its run holds now names the order's row (``order_id``) and leaves the id
to it: its ``client_order_id`` is NULL. A judging without an order in its run
(a denial, or one whose order was written in a later batch) keeps the id. The
``judgements`` view, and ``verdicts`` over it, give every judging its id as
before. A judging keeps its decision id, by which ``explain`` and the dashboard
find it through its index.

The sink writes a batch's orders before its judgings, so that a judging finds
its order's row.

A downgrade writes the ids back into every judging.

Revision ID: 0028
Revises: 0027
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

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

#: Only the denials, which a run's summary counts by filter (as 0022 made it).
DENIED = sa.text("denied_by IS NOT NULL")

#: A judging's columns after its ids, as the view and the table have them.
REST = ("ts", "denied_by", "verdicts", "quantity")


def _rest(dialect: str) -> str:
    """The rest of a judging's columns in the view (on SQLite its time as ISO text,
    as migration 0025 reads it)."""
    shown = []
    for name in REST:
        column = f"judgement_rows.{name}"
        if name == "ts" and dialect == "sqlite":
            column = f"{earlier('0025_short_times.py').iso(column)} AS ts"
        shown.append(column)
    return ", ".join(shown)


def view(dialect: str, keyed: bool = True) -> str:
    """``judgements``: every judging with its client order id, its own or its
    order's (``keyed``), or as 0022 made it (and 0025 on SQLite). The tables keep
    their names (no alias): query plans then name them."""
    if not keyed:
        return (
            "CREATE VIEW judgements AS SELECT judgement_rows.id, runs.run_id, "
            "judgement_rows.decision_id, judgement_rows.client_order_id, "
            f"{_rest(dialect)} FROM judgement_rows JOIN runs ON runs.run_no = judgement_rows.run_no"
        )
    return f"""
CREATE VIEW judgements AS
SELECT judgement_rows.id, runs.run_id, judgement_rows.decision_id,
       COALESCE(judgement_rows.client_order_id, order_rows.client_order_id) AS client_order_id,
       {_rest(dialect)}
FROM judgement_rows JOIN runs ON runs.run_no = judgement_rows.run_no
LEFT JOIN order_rows ON order_rows.id = judgement_rows.order_id
"""


def _verdicts(dialect: str) -> str:
    """``verdicts`` as 0024 made it, over ``judgements``."""
    made = earlier("0024_figure_names.py")
    return str(made.POSTGRESQL_VIEW if dialect == "postgresql" else made.SQLITE_VIEW)


def denied_index() -> None:
    """The index of the denials, which a run's summary counts by filter."""
    op.create_index(
        "ix_judgements_denied",
        "judgement_rows",
        ["run_no", "denied_by"],
        sqlite_where=DENIED,
        postgresql_where=DENIED,
    )


def _rebuild(bind: Any, columns: list[sa.Column[Any]], copy: str, keyed: bool) -> None:
    """Make ``judgement_rows`` again with ``columns``, its rows copied by the SELECT
    ``copy`` (over the old table, named ``j``), its indexes and views as the layout
    has them (``keyed``: judgings name their order's row, as after this migration)."""
    dialect = bind.dialect.name

    def indexes() -> None:
        op.create_index("ix_judgements_decision", "judgement_rows", ["decision_id"])
        denied_index()

    views = ("verdicts", "judgements")
    remake(bind, "judgement_rows", columns, copy, views=views, indexes=indexes)
    bind.exec_driver_sql(view(dialect, keyed))
    bind.exec_driver_sql(_verdicts(dialect))


def upgrade() -> None:
    bind = op.get_bind()
    say_how_long(bind, "judgement_rows", "judgings name their order's row")
    old = table_columns(bind, "judgement_rows")
    key = sa.Column("order_id", sa.Integer(), nullable=True)
    cid = sa.Column("client_order_id", old["client_order_id"].type, nullable=True)
    rest = [old[name] for name in REST]
    columns = [old["run_no"], key, old["decision_id"], cid, *rest]
    # A judging takes the row of its run's order of its client order id, if the
    # run holds one, and leaves the id to it.
    copy = (
        "SELECT j.id, j.run_no, o.id, j.decision_id, "
        "CASE WHEN o.id IS NULL THEN j.client_order_id END, "
        f"{', '.join('j.' + name for name in REST)} "
        "FROM judgement_rows AS j LEFT JOIN order_rows AS o "
        "ON o.run_no = j.run_no AND o.client_order_id = j.client_order_id"
    )
    _rebuild(bind, columns, copy, keyed=True)


def downgrade() -> None:
    bind = op.get_bind()
    old = table_columns(bind, "judgement_rows")
    cid = sa.Column("client_order_id", old["client_order_id"].type, nullable=False)
    rest = [old[name] for name in REST]
    columns = [old["run_no"], old["decision_id"], cid, *rest]
    copy = (
        "SELECT j.id, j.run_no, j.decision_id, COALESCE(j.client_order_id, o.client_order_id), "
        f"{', '.join('j.' + name for name in REST)} "
        "FROM judgement_rows AS j LEFT JOIN order_rows AS o ON o.id = j.order_id"
    )
    _rebuild(bind, columns, copy, keyed=False)
