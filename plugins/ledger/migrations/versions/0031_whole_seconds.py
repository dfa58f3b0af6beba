"""On SQLite a time stored as seconds since 1970 is kept as an integer.

Since migration 0025 a time in UTC to the second is written as the text of its
seconds since 1970 (``1641406260``). Its column was declared ``VARCHAR`` (text
affinity), so SQLite kept it as text: 11 bytes with its header. The time
columns of decisions, judgings, orders, fills and status changes are now
declared ``DATETIME`` (numeric affinity), and SQLite stores such text as the
integer it spells: 5 bytes, about 25 of a churn order's 610. ISO text (a time
with a fraction of a second or another offset) and a status change's empty
time stay text. The views read both as before, so nothing a reader gets
changes. SQLite cannot change a column's declared type: each table is made
again (its rows copied, as 0022 did), with its indexes, and the views and the
trigger over them are made again as they were.

PostgreSQL stores times as ``timestamptz``, and nothing changes there.

A downgrade declares the columns ``VARCHAR(40)`` again; the integers go back to
their text.

Revision ID: 0031
Revises: 0030
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op
from tradepipe.plugins.ledger.migrations import say_how_long

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

#: Each table of a run's rows and its time column.
TIMES = {
    "decision_rows": "created_at",
    "judgement_rows": "ts",
    "order_rows": "created_at",
    "fill_rows": "ts",
    "status_changes": "ts",
}

#: The declared types: text affinity before, numeric after.
TEXT, NUMERIC = "VARCHAR(40)", "DATETIME"


def _declare(bind: Any, table: str, time: str, was: str, now: str) -> None:
    """Make ``table`` again with its ``time`` column declared ``now`` where it was
    ``was``, its rows and ids copied, its indexes made again."""
    made, indexes = None, []
    for kind, sql in bind.exec_driver_sql(
        "SELECT type, sql FROM sqlite_schema WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY rowid",
        (table,),
    ):
        if kind == "table":
            made = sql
        elif kind == "index":
            indexes.append(sql)
    declared = re.compile(rf"\b{time} {re.escape(was)}( |,|$)", re.MULTILINE)
    named = re.compile(rf'^CREATE TABLE (IF NOT EXISTS )?"?{table}"? \(')
    if made is None or len(declared.findall(made)) != 1 or not named.match(made):
        raise RuntimeError(f"{table} is not as the migrations before 0031 made it: {made!r}")
    made = declared.sub(lambda m: f"{time} {now}{m.group(1)}", made)
    bind.exec_driver_sql(named.sub(f"CREATE TABLE {table}_new (", made))
    bind.exec_driver_sql(f"INSERT INTO {table}_new SELECT * FROM {table}")
    bind.exec_driver_sql(f"DROP TABLE {table}")
    bind.exec_driver_sql(f"ALTER TABLE {table}_new RENAME TO {table}")
    for sql in indexes:
        bind.exec_driver_sql(sql)


def _retype(was: str, now: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # The views and the trigger go first (SQLite checks them all when a table is
    # renamed), and come back as they were, in the order they were made.
    over = bind.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_schema WHERE type IN ('view', 'trigger') ORDER BY rowid"
    ).all()
    for kind, name, _sql in reversed(over):
        bind.exec_driver_sql(f"DROP {kind.upper()} {name}")
    for table, time in TIMES.items():
        say_how_long(bind, table, f"rows' times are declared {now}")
        _declare(bind, table, time, was, now)
    for _kind, _name, sql in over:
        bind.exec_driver_sql(sql)


def upgrade() -> None:
    _retype(TEXT, NUMERIC)


def downgrade() -> None:
    _retype(NUMERIC, TEXT)
