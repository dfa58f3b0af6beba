"""A judging names its order by the order's row, not by its ids: ``judgement_rows.order_id``.

A judging repeated its decision's id (22 characters) and its order's client
order id (24), and an index over the decision id repeated the first again:
about 75 of a churn order's 760 bytes. A judging whose order the ledger holds
(in the same run, written before it or in the same batch) now names the
order's row (``order_id``) and leaves both ids to it: its ``client_order_id``
is NULL, and its ``decision_id`` too unless it differs from the order's. A
judging without an order (a denial, or one whose order came in a later batch)
keeps its ids. The ``judgements`` and ``verdicts`` views give every judging its
ids as before.

An index of order rows serves a lookup of an order's judgings; the index of
decision ids holds only the judgings that keep theirs.

A downgrade writes the ids back into every judging.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

log = logging.getLogger("tradepipe.plugins.ledger.queries")

#: A conversion of more judgings than this says how long it takes.
PROGRESS_EVERY = 1_000_000
#: Judgings copied a second on SQLite (0022 measured 175,000 rows a second).
ROWS_PER_SECOND = 175_000

#: The judgings with a decision id of their own, which the index holds (a lookup
#: by the id finds them through it: the id is not NULL).
WITH_IDS = sa.text("decision_id IS NOT NULL")
#: Only the denials, which a run's summary counts by filter (as 0022 made it).
DENIED = sa.text("denied_by IS NOT NULL")

#: A judging's columns after its ids, as the view and the table have them.
REST = ("ts", "denied_by", "verdicts", "quantity")


def _migration(name: str) -> Any:
    """An earlier migration's module: its views, trigger and time format are used
    again."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"tradepipe_ledger_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rest(dialect: str) -> str:
    """The rest of a judging's columns in the view (on SQLite its time as ISO text,
    as migration 0025 reads it)."""
    shown = []
    for name in REST:
        column = f"judgement_rows.{name}"
        if name == "ts" and dialect == "sqlite":
            column = f"{_migration('0025_short_times.py').iso(column)} AS ts"
        shown.append(column)
    return ", ".join(shown)


def view(dialect: str) -> str:
    """``judgements``: the judgings that leave their decision id to their order's row
    take its ids; the rest (those with a decision id of their own) theirs, the
    client order id from the order's row where they name one. A lookup by the
    decision id goes through the orders' index and that of judgings' own decision
    ids. The tables keep their names (no alias): query plans then name them."""
    rest = _rest(dialect)
    return f"""
CREATE VIEW judgements AS
SELECT judgement_rows.id, runs.run_id, order_rows.decision_id, order_rows.client_order_id,
       {rest}
FROM judgement_rows JOIN order_rows ON order_rows.id = judgement_rows.order_id
JOIN runs ON runs.run_no = judgement_rows.run_no
WHERE judgement_rows.decision_id IS NULL
UNION ALL
SELECT judgement_rows.id, runs.run_id, judgement_rows.decision_id,
       COALESCE(judgement_rows.client_order_id, order_rows.client_order_id) AS client_order_id,
       {rest}
FROM judgement_rows LEFT JOIN order_rows ON order_rows.id = judgement_rows.order_id
JOIN runs ON runs.run_no = judgement_rows.run_no
WHERE judgement_rows.decision_id IS NOT NULL
"""


def _old_view(dialect: str) -> str:
    """``judgements`` as 0022 made it (and 0025 on SQLite)."""
    return (
        "CREATE VIEW judgements AS SELECT judgement_rows.id, runs.run_id, "
        "judgement_rows.decision_id, judgement_rows.client_order_id, "
        f"{_rest(dialect)} FROM judgement_rows JOIN runs ON runs.run_no = judgement_rows.run_no"
    )


def _verdicts(dialect: str) -> str:
    """``verdicts`` as 0024 made it, over ``judgements``."""
    made = _migration("0024_figure_names.py")
    return str(made.POSTGRESQL_VIEW if dialect == "postgresql" else made.SQLITE_VIEW)


def _columns(bind: Any) -> dict[str, sa.Column[Any]]:
    """``judgement_rows``' columns as the database has them, but its id, by name."""
    found = sa.Table("judgement_rows", sa.MetaData(), autoload_with=bind)
    return {
        c.name: sa.Column(c.name, c.type, nullable=c.nullable, server_default=c.server_default)
        for c in found.columns
        if c.name != "id"
    }


def _rebuild(bind: Any, columns: list[sa.Column[Any]], copy: str, ids_kept: bool) -> None:
    """Make ``judgement_rows`` again with ``columns``, its rows copied by the SELECT
    ``copy`` (over the old table, named ``j``), its indexes as the layout has them
    (``ids_kept``: every judging keeps its ids, as before this migration), and the
    views over it."""
    dialect = bind.dialect.name
    if dialect == "sqlite":
        # SQLite checks every trigger and view when a table is renamed.
        op.execute("DROP TRIGGER runs_keep_rows")
    op.execute("DROP VIEW verdicts")
    op.execute("DROP VIEW judgements")
    op.create_table("judgement_rows_new", sa.Column("id", sa.Integer(), primary_key=True), *columns)
    names = ", ".join(c.name for c in columns)
    op.execute(f"INSERT INTO judgement_rows_new (id, {names}) {copy} ORDER BY j.id")
    op.drop_table("judgement_rows")
    op.rename_table("judgement_rows_new", "judgement_rows")
    if dialect == "postgresql":
        op.execute("ALTER SEQUENCE judgement_rows_new_id_seq RENAME TO judgement_rows_id_seq")
        op.execute("ALTER INDEX judgement_rows_new_pkey RENAME TO judgement_rows_pkey")
        bind.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('judgement_rows', 'id'), "
            "COALESCE((SELECT MAX(id) FROM judgement_rows), 0) + 1, false)"
        )
    if ids_kept:
        op.create_index("ix_judgements_decision", "judgement_rows", ["decision_id"])
    else:
        op.create_index("ix_judgements_order", "judgement_rows", ["order_id"])
        op.create_index(
            "ix_judgements_decision",
            "judgement_rows",
            ["decision_id"],
            sqlite_where=WITH_IDS,
            postgresql_where=WITH_IDS,
        )
    op.create_index(
        "ix_judgements_denied",
        "judgement_rows",
        ["run_no", "denied_by"],
        sqlite_where=DENIED,
        postgresql_where=DENIED,
    )
    if dialect == "sqlite":
        op.execute(_migration("0022_run_numbers.py").KEEP_RUNS_WITH_ROWS)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    total = bind.exec_driver_sql("SELECT COUNT(*) FROM judgement_rows").scalar() or 0
    if total > PROGRESS_EVERY:
        log.warning(
            "the ledger's %d judgings name their order's row: about %d s",
            total,
            max(1, round(total / ROWS_PER_SECOND)),
        )
    old = _columns(bind)
    order = sa.Column("order_id", sa.Integer(), nullable=True)
    ids = [
        sa.Column(name, old[name].type, nullable=True)
        for name in ("decision_id", "client_order_id")
    ]
    columns = [old["run_no"], order, *ids, *(old[name] for name in REST)]
    # A judging takes the row of its run's order of its client order id, if the
    # ledger holds one; its decision id stays where it is not the order's.
    copy = (
        "SELECT j.id, j.run_no, o.id, "
        "CASE WHEN o.id IS NULL OR o.decision_id <> j.decision_id THEN j.decision_id END, "
        "CASE WHEN o.id IS NULL THEN j.client_order_id END, "
        f"{', '.join('j.' + name for name in REST)} "
        "FROM judgement_rows AS j LEFT JOIN order_rows AS o "
        "ON o.run_no = j.run_no AND o.client_order_id = j.client_order_id"
    )
    _rebuild(bind, columns, copy, ids_kept=False)
    bind.exec_driver_sql(view(dialect))
    bind.exec_driver_sql(_verdicts(dialect))


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    old = _columns(bind)
    ids = [
        sa.Column(name, old[name].type, nullable=False)
        for name in ("decision_id", "client_order_id")
    ]
    columns = [old["run_no"], *ids, *(old[name] for name in REST)]
    copy = (
        "SELECT j.id, j.run_no, COALESCE(j.decision_id, o.decision_id), "
        "COALESCE(j.client_order_id, o.client_order_id), "
        f"{', '.join('j.' + name for name in REST)} "
        "FROM judgement_rows AS j LEFT JOIN order_rows AS o ON o.id = j.order_id"
    )
    _rebuild(bind, columns, copy, ids_kept=True)
    bind.exec_driver_sql(_old_view(dialect))
    bind.exec_driver_sql(_verdicts(dialect))
