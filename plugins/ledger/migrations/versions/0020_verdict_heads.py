"""What a run's verdicts repeat is written once: ``verdict_heads``.

A judging's verdicts (``judgements.verdicts``, migration 0018) each wrote out
their filter's place and name, the outcome, the reason and the quantity before
and after, though a run's chain gives the same few of those again and again:
about half of a judging's 500 bytes. A verdict may now name a head of its run
(``verdict_heads``: place, filter, outcome, reason) by its number and leave out
its quantities when it kept the judging's (``judgements.quantity``). The
``verdicts`` view reads both forms, and the verdicts already written keep the
one they have: nothing is converted, so the upgrade takes no time.

A downgrade writes every verdict out in full again.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

#: Judgings rewritten per statement on a downgrade.
CHUNK = 10_000

# A verdict written out in full has seven elements; one naming a head two or four.
# A head missing from the ledger (none is written so) gives NULLs, never another
# element read as the wrong column.
# The tables keep their names in the view (no alias): query plans then name them.
SQLITE_VIEW = """
CREATE VIEW verdicts AS
SELECT judgements.id * 1000 + e.key AS id, judgements.run_id, judgements.decision_id,
       judgements.client_order_id,
       CASE WHEN json_array_length(e.value) = 7 THEN json_extract(e.value, '$[0]')
            ELSE verdict_heads.seq END AS seq,
       CASE WHEN json_array_length(e.value) = 7 THEN json_extract(e.value, '$[1]')
            ELSE verdict_heads.filter END AS filter,
       CASE WHEN json_array_length(e.value) = 7 THEN json_extract(e.value, '$[2]')
            ELSE verdict_heads.outcome END AS outcome,
       CASE WHEN json_array_length(e.value) = 7 THEN json_extract(e.value, '$[3]')
            ELSE verdict_heads.reason END AS reason,
       CASE json_array_length(e.value) WHEN 7 THEN json_extract(e.value, '$[4]')
            WHEN 2 THEN judgements.quantity
            WHEN 4 THEN json_extract(e.value, '$[2]') END AS quantity_before,
       CASE json_array_length(e.value) WHEN 7 THEN json_extract(e.value, '$[5]')
            WHEN 2 THEN judgements.quantity
            WHEN 4 THEN json_extract(e.value, '$[3]') END AS quantity_after,
       CASE json_array_length(e.value) WHEN 7 THEN json_extract(e.value, '$[6]')
            WHEN 2 THEN json_extract(e.value, '$[1]')
            WHEN 4 THEN json_extract(e.value, '$[1]') END AS figures,
       judgements.ts
FROM judgements, json_each(judgements.verdicts) AS e
LEFT JOIN verdict_heads ON json_array_length(e.value) IN (2, 4)
     AND verdict_heads.run_id = judgements.run_id
     AND verdict_heads.n = json_extract(e.value, '$[0]')
"""

POSTGRESQL_VIEW = """
CREATE VIEW verdicts AS
SELECT j.id::bigint * 1000 + e.n - 1 AS id, j.run_id, j.decision_id, j.client_order_id,
       CASE WHEN json_array_length(e.v) = 7 THEN (e.v ->> 0)::integer ELSE h.seq END AS seq,
       CASE WHEN json_array_length(e.v) = 7 THEN e.v ->> 1 ELSE h.filter END AS filter,
       CASE WHEN json_array_length(e.v) = 7 THEN e.v ->> 2 ELSE h.outcome END AS outcome,
       CASE WHEN json_array_length(e.v) = 7 THEN e.v ->> 3 ELSE h.reason END AS reason,
       CASE json_array_length(e.v) WHEN 7 THEN (e.v ->> 4)::numeric
            WHEN 2 THEN j.quantity
            WHEN 4 THEN (e.v ->> 2)::numeric END AS quantity_before,
       CASE json_array_length(e.v) WHEN 7 THEN (e.v ->> 5)::numeric
            WHEN 2 THEN j.quantity
            WHEN 4 THEN (e.v ->> 3)::numeric END AS quantity_after,
       CASE json_array_length(e.v) WHEN 7 THEN e.v ->> 6
            WHEN 2 THEN e.v ->> 1
            WHEN 4 THEN e.v ->> 1 END AS figures,
       j.ts
FROM judgements AS j
CROSS JOIN LATERAL json_array_elements(j.verdicts::json) WITH ORDINALITY AS e(v, n)
LEFT JOIN verdict_heads AS h ON json_array_length(e.v) IN (2, 4)
     AND h.run_id = j.run_id AND h.n = (e.v ->> 0)::integer
"""


def _migration_0018() -> Any:
    """Migration 0018's module: a downgrade makes its view again."""
    path = Path(__file__).with_name("0018_judgements.py")
    spec = importlib.util.spec_from_file_location("tradepipe_ledger_0018", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _money(dialect: str) -> Any:
    return sa.Numeric() if dialect == "postgresql" else sa.String(48)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "verdict_heads",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("n", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.add_column("judgements", sa.Column("quantity", _money(dialect), nullable=True))
    op.execute("DROP VIEW verdicts")
    op.execute(POSTGRESQL_VIEW if dialect == "postgresql" else SQLITE_VIEW)


def _written_out(
    judging: int, verdicts: str, quantity: Any, heads: dict[int, tuple[int, str, str, str]]
) -> str:
    """A judging's verdicts all written out in full."""
    items = []
    for item in json.loads(verdicts):
        if len(item) in (2, 4):
            head = heads.get(item[0])
            if head is None:
                raise RuntimeError(
                    f"judging {judging} names verdict head {item[0]} of its run, which the "
                    "ledger does not hold: nothing was downgraded"
                )
            seq, name, outcome, reason = head
            before, after = (str(quantity), str(quantity)) if len(item) == 2 else item[2:]
            item = [seq, name, outcome, reason, before, after, item[1]]
        items.append(json.dumps(item, separators=(",", ":")))
    return "[" + ",".join(items) + "]"


#: Runs whose heads a downgrade holds at once.
HEADS_HELD = 100


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    mark = "?" if bind.dialect.paramstyle == "qmark" else "%s"
    heads: dict[str, dict[int, tuple[int, str, str, str]]] = {}

    def heads_of(run: str) -> dict[int, tuple[int, str, str, str]]:
        found = heads.get(run)
        if found is None:
            if len(heads) >= HEADS_HELD:
                heads.clear()
            found = heads[run] = {
                n: (seq, name, outcome, reason)
                for n, seq, name, outcome, reason in bind.exec_driver_sql(
                    "SELECT n, seq, filter, outcome, reason FROM verdict_heads "
                    f"WHERE run_id = {mark}",
                    (run,),
                )
            }
        return found

    select = (
        "SELECT id, run_id, verdicts, quantity FROM judgements "
        f"WHERE quantity IS NOT NULL AND id > {mark} ORDER BY id LIMIT {CHUNK}"
    )
    update = f"UPDATE judgements SET verdicts = {mark} WHERE id = {mark}"
    last = 0
    while rows := bind.exec_driver_sql(select, (last,)).all():
        bind.exec_driver_sql(
            update,
            [
                (_written_out(id_, verdicts, quantity, heads_of(run)), id_)
                for id_, run, verdicts, quantity in rows
            ],
        )
        last = rows[-1][0]
    op.execute("DROP VIEW verdicts")
    if dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        # No DROP COLUMN before SQLite 3.35: the table is copied, and its indexes
        # (one partial) are made again as 0018 made them.
        op.drop_index("ix_judgements_denied", table_name="judgements")
        op.drop_index("ix_judgements_decision", table_name="judgements")
        with op.batch_alter_table("judgements", recreate="always") as batch:
            batch.drop_column("quantity")
        op.create_index("ix_judgements_decision", "judgements", ["decision_id"])
        denied = sa.text("denied_by IS NOT NULL")
        op.create_index(
            "ix_judgements_denied", "judgements", ["run_id", "denied_by"], sqlite_where=denied
        )
    else:
        op.drop_column("judgements", "quantity")
    op.drop_table("verdict_heads")
    old = _migration_0018()
    op.execute(old.POSTGRESQL_VIEW if dialect == "postgresql" else old.SQLITE_VIEW)
