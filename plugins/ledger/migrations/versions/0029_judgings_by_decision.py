"""A judging names its decision by the decision's row: ``judgement_rows.decision_row``.

A judging repeated its decision's id (22 characters), and an index over it
repeated it again at a random place: about 45 of a churn order's 700 bytes. A
judging of a decision its run recorded now names the decision's row
(``decision_row``) and leaves the id to it: its ``decision_id`` is NULL. A
judging of a decision its run did not record (an approval's, sent from an
earlier run) keeps its id. The ``judgements`` view, and ``verdicts`` over it,
give every judging its decision id as before.

An index of decision rows serves a lookup of a decision's judgings; the index of
decision ids holds only the judgings that keep theirs. Neither database looks a
view's merged id up through an index, so ``verdicts`` now also names each
verdict's judging (``judging``), and readers find a decision's judgings first
(``schema.judgings_of_decisions``), then their verdicts by it.

A downgrade writes the ids back into every judging.

Revision ID: 0029
Revises: 0028
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

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

#: The judgings that keep their own decision id, which the index holds.
OWN_ID = sa.text("decision_id IS NOT NULL")

#: What 0028 made, which a downgrade gives back.
_BEFORE = "0028_judgings_by_order.py"


def view(dialect: str) -> str:
    """``judgements``: every judging with its decision id its own or its decision
    row's, and its client order id its own or its order's. The tables keep their
    names (no alias): query plans then name them."""
    return f"""
CREATE VIEW judgements AS
SELECT judgement_rows.id, runs.run_id,
       COALESCE(judgement_rows.decision_id, decision_rows.decision_id) AS decision_id,
       COALESCE(judgement_rows.client_order_id, order_rows.client_order_id) AS client_order_id,
       {earlier(_BEFORE)._rest(dialect)}
FROM judgement_rows JOIN runs ON runs.run_no = judgement_rows.run_no
LEFT JOIN order_rows ON order_rows.id = judgement_rows.order_id
LEFT JOIN decision_rows ON decision_rows.id = judgement_rows.decision_row
"""


def verdicts(dialect: str) -> str:
    """``verdicts`` as 0024 made it, and after its columns each verdict's judging
    (``judging``): a condition on it is a lookup of the judgings' own ids."""
    made = str(earlier(_BEFORE)._verdicts(dialect))
    judging = "j" if dialect == "postgresql" else "judgements"
    last = f"{judging}.ts\nFROM"
    if made.count(last) != 1:  # the text 0024 made is not the one this expects
        raise RuntimeError(f"the verdicts view of 0024 does not end its columns with {last!r}")
    return made.replace(last, f"{judging}.ts, {judging}.id AS judging\nFROM")


def _rebuild(bind: Any, columns: list[sa.Column[Any]], copy: str, keyed: bool) -> None:
    """Make ``judgement_rows`` again with ``columns``, its rows copied by the SELECT
    ``copy`` (over the old table, named ``j``), its indexes and views as the layout
    has them (``keyed``: judgings name their decision's row, as after this migration)."""
    dialect = bind.dialect.name
    before = earlier(_BEFORE)

    def indexes() -> None:
        if not keyed:
            op.create_index("ix_judgements_decision", "judgement_rows", ["decision_id"])
        else:
            op.create_index("ix_judgements_decision_row", "judgement_rows", ["decision_row"])
            op.create_index(
                "ix_judgements_decision",
                "judgement_rows",
                ["decision_id"],
                sqlite_where=OWN_ID,
                postgresql_where=OWN_ID,
            )
        before.denied_index()

    views = ("verdicts", "judgements")
    remake(bind, "judgement_rows", columns, copy, views=views, indexes=indexes)
    bind.exec_driver_sql(view(dialect) if keyed else before.view(dialect))
    bind.exec_driver_sql(verdicts(dialect) if keyed else before._verdicts(dialect))


def upgrade() -> None:
    bind = op.get_bind()
    say_how_long(bind, "judgement_rows", "judgings name their decision's row")
    old = table_columns(bind, "judgement_rows")
    key = sa.Column("decision_row", sa.Integer(), nullable=True)
    decision = sa.Column("decision_id", old["decision_id"].type, nullable=True)
    rest = [c for name, c in old.items() if name not in ("run_no", "order_id", "decision_id")]
    columns = [old["run_no"], old["order_id"], key, decision, *rest]
    # A judging takes the row of its run's decision of its id (the first, should the
    # run have recorded the id twice, as an order does), and leaves the id to it.
    found = (
        "(SELECT MIN(d.id) FROM decision_rows AS d "
        "WHERE d.run_no = j.run_no AND d.decision_id = j.decision_id)"
    )
    copy = (
        f"SELECT j.id, j.run_no, j.order_id, {found}, "
        f"CASE WHEN {found} IS NULL THEN j.decision_id END, "
        f"{', '.join('j.' + c.name for c in rest)} FROM judgement_rows AS j"
    )
    _rebuild(bind, columns, copy, keyed=True)


def downgrade() -> None:
    bind = op.get_bind()
    old = table_columns(bind, "judgement_rows")
    decision = sa.Column("decision_id", old["decision_id"].type, nullable=False)
    rest = [
        c
        for name, c in old.items()
        if name not in ("run_no", "order_id", "decision_row", "decision_id")
    ]
    columns = [old["run_no"], old["order_id"], decision, *rest]
    copy = (
        "SELECT j.id, j.run_no, j.order_id, COALESCE(j.decision_id, d.decision_id), "
        f"{', '.join('j.' + c.name for c in rest)} "
        "FROM judgement_rows AS j LEFT JOIN decision_rows AS d ON d.id = j.decision_row"
    )
    _rebuild(bind, columns, copy, keyed=False)
