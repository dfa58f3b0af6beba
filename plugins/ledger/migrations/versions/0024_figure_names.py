"""A verdict's figure names are its head's: ``verdict_heads.figures``.

Each verdict wrote its figures as a JSON object, and a run's filters name the
same figures every time (``price``, ``position``, ``value_after``, ``limit``):
about 90 of a churn order's 970 bytes were those names. A head (place, filter,
outcome, reason) may now hold the names too, in ``figures``, a JSON list, and
its verdicts then write only the values, in that order, as a list. The
``verdicts`` view joins names and values back into the object each verdict
always gave, as the same text. Verdicts already written keep their objects:
nothing is converted, so the upgrade takes no time.

In such a list a decimal or plain text is a JSON string, an integer (within
64 bits) a number, true, false and null themselves, and anything else (a
float, a larger integer) a list of one string: its JSON text as written.
SQLite reads a float's number back through a double and prints it with 15
digits, so the text is kept, which both databases give back exactly.

A downgrade writes those verdicts' objects out again and drops the column.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger.migrations import earlier

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

#: Judgings rewritten per statement on a downgrade.
CHUNK = 10_000


def _sqlite_figures(element: str, names: str) -> str:
    """SQLite: a verdict's figures object from a values list (``element``'s second
    item) and its head's names (``names``), as the text the sink wrote before.

    Aggregates follow the rows they read, here ``json_each``'s in list order.
    (``->``, which would give a value's JSON text, needs SQLite 3.38.)"""
    at = "'$[1][' || n.key || ']'"
    value = (
        f"CASE json_type({element}, {at}) "
        f"WHEN 'array' THEN json_extract({element}, {at} || '[0]') "
        f"WHEN 'text' THEN json_quote(json_extract({element}, {at})) "
        f"WHEN 'integer' THEN json_extract({element}, {at}) "
        f"ELSE json_type({element}, {at}) END"
    )
    return (
        f"(SELECT '{{' || coalesce(group_concat('\"' || n.value || '\":' || {value}, ','), '') "
        f"|| '}}' FROM json_each({names}) AS n)"
    )


# As 0020 made the view, with figures read from a head's names and a list of
# values where the head has names. A head missing from the ledger (none is
# written so) gives NULLs, as before: its values too, having no names.
SQLITE_VIEW = f"""
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
       CASE WHEN json_array_length(e.value) = 7 THEN json_extract(e.value, '$[6]')
            WHEN verdict_heads.figures IS NOT NULL
            THEN {_sqlite_figures("e.value", "verdict_heads.figures")}
            WHEN json_type(e.value, '$[1]') = 'array' THEN NULL
            ELSE json_extract(e.value, '$[1]') END AS figures,
       judgements.ts
FROM judgements, json_each(judgements.verdicts) AS e
LEFT JOIN verdict_heads ON json_array_length(e.value) IN (2, 4)
     AND verdict_heads.run_id = judgements.run_id
     AND verdict_heads.n = json_extract(e.value, '$[0]')
"""

# PostgreSQL's json (not jsonb) gives a value's text as it was written; names and
# values are read side by side, each list parsed once.
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
       CASE WHEN json_array_length(e.v) = 7 THEN e.v ->> 6
            WHEN h.figures IS NOT NULL THEN (
                SELECT '{' || coalesce(string_agg('"' || z.name || '":' ||
                    CASE json_typeof(z.v) WHEN 'array' THEN z.v ->> 0 ELSE z.v::text END,
                    ',' ORDER BY z.i), '') || '}'
                FROM ROWS FROM (json_array_elements_text(h.figures::json),
                                json_array_elements(e.v -> 1)) WITH ORDINALITY AS z(name, v, i))
            WHEN json_typeof(e.v -> 1) = 'array' THEN NULL
            ELSE e.v ->> 1 END AS figures,
       j.ts
FROM judgements AS j
CROSS JOIN LATERAL json_array_elements(j.verdicts::json) WITH ORDINALITY AS e(v, n)
LEFT JOIN verdict_heads AS h ON json_array_length(e.v) IN (2, 4)
     AND h.run_id = j.run_id AND h.n = (e.v ->> 0)::integer
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("verdict_heads", sa.Column("figures", sa.Text(), nullable=True))
    op.execute("DROP VIEW verdicts")
    op.execute(POSTGRESQL_VIEW if dialect == "postgresql" else SQLITE_VIEW)


def _value_json(value: Any) -> str:
    """A value of a values list as the figures object held it."""
    if isinstance(value, list):
        return str(value[0])
    return json.dumps(value, ensure_ascii=True)


def named(judging: int, element: list[Any], names: list[str]) -> str:
    """A verdict (``[head, values, …]``) with its figures as the object again, as
    JSON text the way the sink writes it."""
    values = element[1]
    if not isinstance(values, list) or len(values) != len(names):
        raise RuntimeError(
            f"judging {judging} has a verdict whose figures do not match its head's "
            f"{len(names)} names: nothing was downgraded"
        )
    figures = ",".join(
        f"{json.dumps(name)}:{_value_json(value)}"
        for name, value in zip(names, values, strict=True)
    )
    rest = "".join("," + json.dumps(item) for item in element[2:])
    return f"[{element[0]},{{{figures}}}{rest}]"


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    mark = "?" if bind.dialect.paramstyle == "qmark" else "%s"
    names: dict[tuple[str, int], list[str]] = {
        (run_id, n): json.loads(figures)
        for run_id, n, figures in bind.exec_driver_sql(
            "SELECT run_id, n, figures FROM verdict_heads WHERE figures IS NOT NULL"
        )
    }
    # Every judging, in chunks (a list of values whose head was deleted by hand
    # stops the downgrade, whether or not any head holds names); those with a
    # verdict naming a head that holds names are written again, each such verdict
    # with its object back.
    select = (
        f"SELECT id, run_id, verdicts FROM judgements WHERE id > {mark} ORDER BY id LIMIT {CHUNK}"
    )
    update = f"UPDATE judgement_rows SET verdicts = {mark} WHERE id = {mark}"
    last = 0
    while rows := bind.exec_driver_sql(select, (last,)).all():
        changed = []
        for id_, run, verdicts in rows:
            items = json.loads(verdicts)
            heads = [names.get((run, item[0])) if len(item) in (2, 4) else None for item in items]
            for item, head in zip(items, heads, strict=True):
                if head is None and len(item) in (2, 4) and isinstance(item[1], list):
                    raise RuntimeError(
                        f"judging {id_} names verdict head {item[0]} of its run for "
                        "its figures' names, which the ledger does not hold: nothing "
                        "was downgraded"
                    )
            if any(heads):
                texts = [
                    json.dumps(item, separators=(",", ":"))
                    if head is None
                    else named(id_, item, head)
                    for item, head in zip(items, heads, strict=True)
                ]
                changed.append(("[" + ",".join(texts) + "]", id_))
        if changed:
            bind.exec_driver_sql(update, changed)
        last = rows[-1][0]
    op.execute("DROP VIEW verdicts")
    with op.batch_alter_table("verdict_heads") as batch:
        batch.drop_column("figures")
    old = earlier("0020_verdict_heads.py")
    op.execute(old.POSTGRESQL_VIEW if dialect == "postgresql" else old.SQLITE_VIEW)
