"""The ledger's schema history, as alembic migrations shipped in the package.

``tradepipe db upgrade`` applies them, and every ledger is brought up to date
when it is opened (:func:`tradepipe.plugins.ledger.db.upgrade`). A new schema
change is a new module in ``versions/`` whose ``down_revision`` is the current
head; the revision ids are short sequence numbers so the history reads in order.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

log = logging.getLogger("tradepipe.plugins.ledger.queries")

#: A conversion of more rows than this says first how long it should take.
PROGRESS_EVERY = 1_000_000
#: Rows copied a second on SQLite (0022 measured 175,000 rows a second).
ROWS_PER_SECOND = 175_000


def earlier(name: str) -> Any:
    """The module of an earlier migration, by its file's name in ``versions/``: a
    migration makes its views again, or takes back to them, as that one made them.
    (The files' names start with digits: they cannot be imported by name.)"""
    path = Path(__file__).with_name("versions") / name
    spec = importlib.util.spec_from_file_location(f"tradepipe_ledger_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_columns(bind: Any, table: str) -> dict[str, sa.Column[Any]]:
    """``table``'s columns as the database has them, but its id, by name: to make
    the table again with some of them changed."""
    found = sa.Table(table, sa.MetaData(), autoload_with=bind)
    return {
        c.name: sa.Column(c.name, c.type, nullable=c.nullable, server_default=c.server_default)
        for c in found.columns
        if c.name != "id"
    }


def say_how_long(bind: Any, table: str, what: str) -> None:
    """Before ``table`` is copied, say how long it should take (``what`` its rows
    come to), when it holds more than :data:`PROGRESS_EVERY` rows."""
    total = bind.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() or 0
    if total > PROGRESS_EVERY:
        log.warning(
            "the ledger's %d %s: about %d s", total, what, max(1, round(total / ROWS_PER_SECOND))
        )


def copy_table(
    bind: Any,
    table: str,
    columns: list[sa.Column[Any]],
    copy: str,
    unique: tuple[str, list[str]] | None = None,
) -> None:
    """Make ``table`` again with ``columns`` (after its id) and the ``unique``
    constraint (its name and columns), its rows copied by the SELECT ``copy``
    (over the old table, named by its first letter), in the order of their ids,
    which they keep. The views
    and triggers over ``table`` must be gone first (SQLite checks them all when a
    table is renamed); its indexes are the caller's to make again."""
    sqlite = bind.dialect.name == "sqlite"
    op.create_table(
        f"{table}_new",
        sa.Column("id", sa.Integer(), primary_key=True),
        *columns,
        *([sa.UniqueConstraint(*unique[1], name=unique[0])] if sqlite and unique else []),
    )
    names = ", ".join(c.name for c in columns)
    op.execute(f"INSERT INTO {table}_new (id, {names}) {copy} ORDER BY {table[0]}.id")
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)
    if not sqlite:
        # The sequence and primary key take the table's names again, and the
        # sequence goes on after the highest id.
        op.execute(f"ALTER SEQUENCE {table}_new_id_seq RENAME TO {table}_id_seq")
        op.execute(f"ALTER INDEX {table}_new_pkey RENAME TO {table}_pkey")
        bind.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )
        if unique:
            op.create_unique_constraint(unique[0], table, unique[1])


def remake(
    bind: Any,
    table: str,
    columns: list[sa.Column[Any]],
    copy: str,
    *,
    views: tuple[str, ...],
    indexes: Callable[[], None],
    unique: tuple[str, list[str]] | None = None,
) -> None:
    """:func:`copy_table` under the views over ``table``: they are dropped first
    (``views``, dependents first; the caller makes them again), and on SQLite the
    trigger that keeps a run's row while rows name it (0022) too, which comes back
    after. ``indexes`` makes the table's indexes. On PostgreSQL the new table is
    analyzed: it has no statistics until autovacuum comes by, and without them
    PostgreSQL took a lookup of a few rows by id through a scan of them all."""
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        # SQLite checks every trigger and view when a table is renamed.
        op.execute("DROP TRIGGER runs_keep_rows")
    for view in views:
        op.execute(f"DROP VIEW {view}")
    copy_table(bind, table, columns, copy, unique)
    indexes()
    if sqlite:
        op.execute(earlier("0022_run_numbers.py").KEEP_RUNS_WITH_ROWS)
    else:
        op.execute(f"ANALYZE {table}")
