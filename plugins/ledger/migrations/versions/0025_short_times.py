"""On SQLite a time in UTC to the second is stored as its seconds since 1970.

A decision's, judging's, order's, fill's and status change's time was ISO text
with its UTC offset (``2022-01-05T18:11:00+00:00``, 26 bytes); a replay's five
of them an order were about 130 of its 900 bytes. A time in UTC without a
fraction of a second, as every replay's is, is now the text of its seconds
since 1970 (``1641406260``, 11 bytes). The views ``decisions``,
``judgements``, ``orders``, ``fills`` and ``order_events`` give it back as the
ISO text it was; a time with a fraction of a second or another offset is
written as before. Rows already written keep their text: nothing is converted,
so the upgrade takes no time.

PostgreSQL stores times as ``timestamptz`` (8 bytes), and nothing changes there.

A downgrade writes the ISO text into every row that holds seconds.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger.migrations import earlier

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

#: Each view of 0022, its table and its time column.
TIMES = {
    "decisions": ("decision_rows", "created_at"),
    "judgements": ("judgement_rows", "ts"),
    "orders": ("order_rows", "created_at"),
    "fills": ("fill_rows", "ts"),
}


def seconds(column: str) -> str:
    """SQL: whether ``column`` holds seconds since 1970 (at most 12 characters,
    years 1 to 9999, where ISO text has at least 19; a change's empty time is its
    order's)."""
    return f"(length({column}) < 13 AND {column} <> '')"


def iso(column: str) -> str:
    """SQL giving ``column`` as ISO text, as Python's ``isoformat`` wrote it."""
    return (
        f"CASE WHEN {seconds(column)} "
        f"THEN strftime('%Y-%m-%dT%H:%M:%S+00:00', {column}, 'unixepoch') "
        f"ELSE {column} END"
    )


def _view(bind: Any, view: str, short: bool) -> str:
    """``view`` as 0022 made it, its time given as ISO text where it is ``short``:
    its columns in the order the view has them."""
    rows, time = TIMES[view]
    columns = [c["name"] for c in sa.inspect(bind).get_columns(view)]
    shown = ", ".join(
        "runs.run_id"
        if name == "run_id"
        else f"{iso(f'{rows}.{name}')} AS {name}"
        if short and name == time
        else f"{rows}.{name}"
        for name in columns
    )
    return (
        f"CREATE VIEW {view} AS SELECT {shown} FROM {rows} JOIN runs ON runs.run_no = {rows}.run_no"
    )


def _order_events(short: bool) -> str:
    """``order_events`` as 0023 made it on SQLite, a change's own time given as ISO
    text where it is ``short``."""
    made = earlier("0023_status_codes.py")._view("sqlite", coded=True)
    if not short:
        return str(made)
    plain = "ELSE status_changes.ts END AS ts"
    assert made.count(plain) == 1
    return str(made).replace(plain, f"ELSE {iso('status_changes.ts')} END AS ts")


def _remake(bind: Any, short: bool) -> None:
    """Make the views over the times again, reading them ``short`` or not."""
    views = {view: _view(bind, view, short) for view in TIMES}
    for view in ("verdicts", "order_events", *TIMES):
        bind.exec_driver_sql(f"DROP VIEW {view}")
    for sql in views.values():
        bind.exec_driver_sql(sql)
    bind.exec_driver_sql(_order_events(short))
    bind.exec_driver_sql(earlier("0024_figure_names.py").SQLITE_VIEW)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _remake(bind, short=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for rows, time in [*TIMES.values(), ("status_changes", "ts")]:
        bind.exec_driver_sql(f"UPDATE {rows} SET {time} = {iso(time)} WHERE {seconds(time)}")
    _remake(bind, short=False)
