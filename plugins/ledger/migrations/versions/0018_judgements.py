"""A judging's verdicts are one row: ``judgements``, and a ``verdicts`` view.

The guards and risk filters judge an order in a chain, and each verdict was a
row of its own repeating the run, the decision, the order and the time: four
filters made four rows, and four entries in the index by decision. One row per
judging now holds the verdicts as a JSON list, in the order they were given,
and names the filter that denied (a denial ends a chain). The ``verdicts``
view gives the old rows back, one per verdict, with the same columns; its
``id`` is the judging's times 1,000 plus the verdict's place in the list.

Existing verdicts are grouped as the sink groups new ones: consecutive verdicts
of one run with the same decision, order and time, while their places go up
(guards share place 0), never past a denial, and at most 1,000. A judging keeps
the id of its first verdict, so the view lists each run's verdicts in the order
they had. Figures whose text JSON functions would refuse or change (``NaN``,
``Infinity``, escaped characters) are kept as a JSON string of that text; a NUL
or lone surrogate in a filter's name or reason becomes U+FFFD.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

DENIED = sa.text("denied_by IS NOT NULL")
OLD_DENIED = sa.text("outcome = 'deny'")

#: Verdicts converted per statement.
CHUNK = 10_000
#: The most verdicts in one judging (the view's ids leave room for 1,000).
MOST_VERDICTS = 1000
#: A conversion of more verdicts than this says how long it takes, and how far it is.
PROGRESS_EVERY = 1_000_000
#: Verdicts converted a second on SQLite (590,000 took 5.3 s on the development machine).
VERDICTS_PER_SECOND = 100_000

log = logging.getLogger("tradepipe.plugins.ledger.queries")

# The table keeps its name in the view (no alias): query plans then name it.
SQLITE_VIEW = """
CREATE VIEW verdicts AS
SELECT judgements.id * 1000 + e.key AS id, judgements.run_id, judgements.decision_id,
       judgements.client_order_id,
       json_extract(e.value, '$[0]') AS seq,
       json_extract(e.value, '$[1]') AS filter,
       json_extract(e.value, '$[2]') AS outcome,
       json_extract(e.value, '$[3]') AS reason,
       json_extract(e.value, '$[4]') AS quantity_before,
       json_extract(e.value, '$[5]') AS quantity_after,
       json_extract(e.value, '$[6]') AS figures,
       judgements.ts
FROM judgements, json_each(judgements.verdicts) AS e
"""

# json, not jsonb: jsonb would put the keys of the figures in an order of its own.
POSTGRESQL_VIEW = """
CREATE VIEW verdicts AS
SELECT j.id::bigint * 1000 + e.n - 1 AS id, j.run_id, j.decision_id, j.client_order_id,
       (e.v ->> 0)::integer AS seq,
       e.v ->> 1 AS filter,
       e.v ->> 2 AS outcome,
       e.v ->> 3 AS reason,
       (e.v ->> 4)::numeric AS quantity_before,
       (e.v ->> 5)::numeric AS quantity_after,
       e.v ->> 6 AS figures,
       j.ts
FROM judgements AS j
CROSS JOIN LATERAL json_array_elements(j.verdicts::json) WITH ORDINALITY AS e(v, n)
"""

_OLD_COLUMNS = (
    "id, run_id, decision_id, client_order_id, seq, filter, outcome, reason, "
    "quantity_before, quantity_after, figures, ts"
)


def _timestamp(dialect: str) -> Any:
    return sa.DateTime(timezone=True) if dialect == "postgresql" else sa.String(40)


def _money(dialect: str) -> Any:
    return sa.Numeric() if dialect == "postgresql" else sa.String(48)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "judgements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("ts", _timestamp(dialect), nullable=False),
        sa.Column("denied_by", sa.String(), nullable=True),
        sa.Column("verdicts", sa.Text(), nullable=False),
    )
    _convert(bind)
    op.create_index("ix_judgements_decision", "judgements", ["decision_id"])
    op.create_index(
        "ix_judgements_denied",
        "judgements",
        ["run_id", "denied_by"],
        sqlite_where=DENIED,
        postgresql_where=DENIED,
    )
    op.drop_index("ix_verdicts_denied", table_name="verdicts")
    op.drop_index("ix_verdicts_decision", table_name="verdicts")
    op.drop_table("verdicts")
    op.execute(POSTGRESQL_VIEW if dialect == "postgresql" else SQLITE_VIEW)


def _old_rows(bind: Any) -> Iterator[tuple[Any, ...]]:
    result = bind.exec_driver_sql(
        f"SELECT {_OLD_COLUMNS} FROM verdicts ORDER BY id",
        execution_options={"stream_results": True},
    )
    while rows := result.fetchmany(CHUNK):
        yield from rows


def _judgings(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The old rows grouped into judgings: one open judging per run (a run's
    verdicts were written in the order given; runs interleave by batches)."""
    open_: dict[str, list[Any]] = {}
    for id_, run, decision, cid, seq, name, outcome, reason, before, after, figures, ts in rows:
        item = json.dumps(
            [int(seq), _clean(name), _clean(outcome), _clean(reason or ""), str(before), str(after)]
        )
        item = f"{item[:-1]},{_figures(figures or '{}')}]"
        group = open_.get(run)
        if (
            group is not None
            and len(group[7]) < MOST_VERDICTS
            and group[2] == decision
            and group[3] == cid
            and group[4] == ts
            and group[5] is None
            and (seq > group[6] or seq == group[6] == 0)
        ):
            group[7].append(item)
            group[6] = seq
        else:
            if group is not None:
                yield _row(group)
            group = open_[run] = [id_, run, decision, cid, ts, None, seq, [item]]
        if outcome == "deny":
            group[5] = name
            yield _row(open_.pop(run))
    for group in open_.values():
        yield _row(group)


def _clean(text: str) -> str:
    """NUL and lone surrogates as U+FFFD: SQLite's JSON functions cut a string at a
    NUL, and neither database's JSON takes a lone surrogate."""
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in text)


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _figures(text: str) -> str:
    """The figures as the judging's list holds them: the JSON object itself when
    the databases' JSON functions read it back as written, else its text as a
    JSON string (``NaN`` and ``Infinity``, escaped characters, or text that is
    not JSON at all)."""
    try:
        json.loads(text, parse_constant=_refuse)
    except ValueError:
        return json.dumps(_clean(text))
    return text if "\\u" not in text else json.dumps(_clean(text))


def _row(group: list[Any]) -> tuple[Any, ...]:
    id_, run, decision, cid, ts, denied, _seq, items = group
    return (id_, run, decision, cid, ts, denied, "[" + ",".join(items) + "]")


def _convert(bind: Any) -> None:
    # The old rows are read a chunk at a time while the judgings are written, on
    # the one connection of the migration's transaction.
    mark = "?" if bind.dialect.paramstyle == "qmark" else "%s"
    sql = (
        "INSERT INTO judgements (id, run_id, decision_id, client_order_id, ts, denied_by, "
        f"verdicts) VALUES ({', '.join([mark] * 7)})"
    )
    total = bind.exec_driver_sql("SELECT COUNT(*) FROM verdicts").scalar() or 0
    if total > PROGRESS_EVERY:
        log.warning(
            "the ledger's %d verdicts become one row per judging: about %d s",
            total,
            max(1, round(total / VERDICTS_PER_SECOND)),
        )
    batch: list[tuple[Any, ...]] = []
    written = said = 0
    for row in _judgings(_old_rows(bind)):
        batch.append(row)
        if len(batch) >= CHUNK:
            bind.exec_driver_sql(sql, batch)
            written += len(batch)
            batch = []
            if total > PROGRESS_EVERY and written - said >= PROGRESS_EVERY // 4:
                said = written
                log.warning("%d judgings written so far", written)
    if batch:
        bind.exec_driver_sql(sql, batch)
    if bind.dialect.name == "postgresql":
        # Ids were given explicitly: the next one the sink takes follows them.
        bind.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('judgements', 'id'), "
            "COALESCE((SELECT MAX(id) FROM judgements), 0) + 1, false)"
        )


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "verdicts_restored",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quantity_before", _money(dialect), nullable=False),
        sa.Column("quantity_after", _money(dialect), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("ts", _timestamp(dialect), nullable=False),
    )
    columns = _OLD_COLUMNS.replace("id, ", "", 1)
    op.execute(
        f"INSERT INTO verdicts_restored ({columns}) SELECT {columns} FROM verdicts ORDER BY id"
    )
    op.execute("DROP VIEW verdicts")
    op.drop_index("ix_judgements_denied", table_name="judgements")
    op.drop_index("ix_judgements_decision", table_name="judgements")
    op.drop_table("judgements")
    op.rename_table("verdicts_restored", "verdicts")
    if dialect == "postgresql":
        # The names the table had before 0018 (a later upgrade drops them by table).
        op.execute("ALTER SEQUENCE verdicts_restored_id_seq RENAME TO verdicts_id_seq")
        op.execute("ALTER INDEX verdicts_restored_pkey RENAME TO verdicts_pkey")
    op.create_index("ix_verdicts_decision", "verdicts", ["decision_id"])
    op.create_index(
        "ix_verdicts_denied",
        "verdicts",
        ["run_id", "filter"],
        sqlite_where=OLD_DENIED,
        postgresql_where=OLD_DENIED,
    )
