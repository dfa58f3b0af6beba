"""A run's rows name it by number: ``runs.run_no``, and views with the old names.

Every decision, judging, order and fill repeated its run's id (22 characters,
``20261207T131856-4a1d69``), and the indexes over the run and an order's or a
decision's id repeated it again: about 176 of a replayed order's 1,220 bytes.
Each run now has a number (``runs.run_no``, given in the order the runs
started), and the rows sit in ``decision_rows``, ``judgement_rows``,
``order_rows`` and ``fill_rows``, naming their run by it. The views
``decisions``, ``judgements``, ``orders`` and ``fills`` join them back to the
runs and give the columns the tables had, in the same order, so everything
reading them (and the ``verdicts`` and ``order_events`` views, made again over
them) reads what it did. Rows keep their ids.

The indexes change with them. A decision's and an order's index lead with its
id and end with the run's number, so one index serves a lookup by the id
alone and by the run and the id, where there were two; a run's decisions and
orders are found through an index of run numbers alone, a few bytes an entry.

A row whose run has no row in ``runs`` (none is written so, but a ledger could
hold one, its run's row deleted by hand) is kept under a row made for its run:
status ``unknown``, and namespace and account ``(rows without a run)``, so that
no command takes it for the latest run, or settles or follows its orders, as
none did before. A run's row can no longer be deleted while rows name it: the
database refuses, as its number would otherwise be taken by the next run.

A downgrade puts the tables back as they were.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op
from tradepipe.plugins.ledger.migrations import earlier

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

log = logging.getLogger("tradepipe.plugins.ledger.queries")

#: A conversion of more rows than this says how long it takes.
PROGRESS_EVERY = 1_000_000
#: Rows converted a second on SQLite, indexes included (200,000 measured).
ROWS_PER_SECOND = 175_000

#: The namespace and account of a run made for rows whose run had no row
#: (``queries.ORPHANED``).
ORPHANED = "(rows without a run)"

DENIED = sa.text("denied_by IS NOT NULL")

NUMBER_NEW_RUNS = """
CREATE TRIGGER runs_run_no AFTER INSERT ON runs WHEN NEW.run_no IS NULL
BEGIN
    UPDATE runs SET run_no = (SELECT COALESCE(MAX(run_no), 0) + 1 FROM runs)
    WHERE run_id = NEW.run_id;
END
"""

#: A run's row stays while rows name its number (SQLite; the tables without an
#: index by run are looked at last, only for a run without decisions or orders).
KEEP_RUNS_WITH_ROWS = """
CREATE TRIGGER runs_keep_rows BEFORE DELETE ON runs
WHEN EXISTS (SELECT 1 FROM decision_rows WHERE run_no = OLD.run_no)
  OR EXISTS (SELECT 1 FROM order_rows WHERE run_no = OLD.run_no)
  OR EXISTS (SELECT 1 FROM fill_rows WHERE run_no = OLD.run_no)
  OR EXISTS (SELECT 1 FROM judgement_rows WHERE run_no = OLD.run_no)
BEGIN
    SELECT RAISE(ABORT, 'a run cannot be deleted while the ledger holds its rows');
END
"""

KEEP_RUNS_WITH_ROWS_POSTGRESQL = """
CREATE FUNCTION runs_keep_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM decision_rows WHERE run_no = OLD.run_no)
       OR EXISTS (SELECT 1 FROM order_rows WHERE run_no = OLD.run_no)
       OR EXISTS (SELECT 1 FROM fill_rows WHERE run_no = OLD.run_no)
       OR EXISTS (SELECT 1 FROM judgement_rows WHERE run_no = OLD.run_no) THEN
        RAISE EXCEPTION 'run % cannot be deleted while the ledger holds its rows', OLD.run_id;
    END IF;
    RETURN OLD;
END
$$
"""

NUMBER_NEW_RUNS_POSTGRESQL = """
CREATE FUNCTION runs_run_no() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.run_no IS NULL THEN
        NEW.run_no := nextval('runs_run_no_seq');
    END IF;
    RETURN NEW;
END
$$
"""

#: Each view, its table, the time column a run made of its rows alone starts at,
#: and the table's unique constraints and indexes before (``run_id``) and after
#: (``run_no``): (name, columns). An index led by an id serves lookups by the id
#: alone and by the run and the id; one by the run's number alone (a few bytes
#: an entry) serves reading a run's rows.
TABLES: dict[str, dict[str, Any]] = {
    "decisions": {
        "rows": "decision_rows",
        "time": "created_at",
        "old": {
            "unique": [],
            "indexes": [
                ("ix_decisions_run_decision", ["run_id", "decision_id"]),
                ("ix_decisions_decision", ["decision_id"]),
            ],
        },
        "new": {
            "unique": [],
            "indexes": [
                ("ix_decisions_decision", ["decision_id", "run_no"]),
                ("ix_decisions_run", ["run_no"]),
            ],
        },
    },
    "judgements": {
        "rows": "judgement_rows",
        "time": "ts",
        "old": {
            "unique": [],
            "indexes": [
                ("ix_judgements_decision", ["decision_id"]),
                ("ix_judgements_denied", ["run_id", "denied_by"]),
            ],
        },
        "new": {
            "unique": [],
            "indexes": [
                ("ix_judgements_decision", ["decision_id"]),
                ("ix_judgements_denied", ["run_no", "denied_by"]),
            ],
        },
    },
    "orders": {
        "rows": "order_rows",
        "time": "created_at",
        "old": {
            "unique": [("uq_orders_run_cid", ["run_id", "client_order_id"])],
            "indexes": [
                ("ix_orders_client_order", ["client_order_id"]),
                ("ix_orders_decision", ["decision_id"]),
            ],
        },
        "new": {
            "unique": [("uq_orders_cid_run", ["client_order_id", "run_no"])],
            "indexes": [
                ("ix_orders_run", ["run_no"]),
                ("ix_orders_decision", ["decision_id"]),
            ],
        },
    },
    "fills": {
        "rows": "fill_rows",
        "time": "ts",
        "old": {
            "unique": [("uq_fills_run_exec", ["run_id", "execution_id"])],
            "indexes": [("ix_fills_client_order_id", ["client_order_id"])],
        },
        "new": {
            "unique": [("uq_fills_run_exec", ["run_no", "execution_id"])],
            "indexes": [("ix_fills_client_order_id", ["client_order_id"])],
        },
    },
}


def _dependent_views(dialect: str) -> list[str]:
    """The views over these tables, as the latest migration made each."""
    heads = earlier("0020_verdict_heads.py")
    times = earlier("0021_change_times.py")
    if dialect == "postgresql":
        return [heads.POSTGRESQL_VIEW, times.VIEW_0019]
    return [heads.SQLITE_VIEW, times.SQLITE_VIEW]


def _columns(bind: Any, table: str) -> list[sa.Column[Any]]:
    """``table``'s columns as the database has them, but its id."""
    found = sa.Table(table, sa.MetaData(), autoload_with=bind)
    return [
        sa.Column(c.name, c.type, nullable=c.nullable, server_default=c.server_default)
        for c in found.columns
        if c.name != "id"
    ]


def _create(
    bind: Any, name: str, keys: dict[str, Any], run: sa.Column[Any], columns: list[Any]
) -> None:
    """Make table ``name`` with ``run`` as its run's column (its unique constraints
    on SQLite, where they are part of the table)."""
    unique = []
    if bind.dialect.name == "sqlite":
        unique = [sa.UniqueConstraint(*cols, name=n) for n, cols in keys["unique"]]
    op.create_table(name, sa.Column("id", sa.Integer(), primary_key=True), run, *columns, *unique)


def _index(bind: Any, table: str, keys: dict[str, Any]) -> None:
    """``table``'s indexes, and on PostgreSQL its unique constraints (whose names
    are its schema's: the table that had them must be gone)."""
    if bind.dialect.name == "postgresql":
        for name, cols in keys["unique"]:
            op.create_unique_constraint(name, table, cols)
    for name, cols in keys["indexes"]:
        # Only the denials, which a run's summary counts by filter.
        where = DENIED if name == "ix_judgements_denied" else None
        op.create_index(name, table, cols, sqlite_where=where, postgresql_where=where)


def _restart_ids(bind: Any, table: str) -> None:
    """Ids were given explicitly: PostgreSQL's next one follows them."""
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


def _number_runs(bind: Any) -> None:
    """Give every run a number, in the order they started; a run that rows name
    but ``runs`` lacks gets a row of its own first."""
    for view, spec in TABLES.items():
        lost = bind.exec_driver_sql(
            f"SELECT run_id, MIN({spec['time']}) FROM {view} "
            "WHERE run_id NOT IN (SELECT run_id FROM runs) GROUP BY run_id"
        ).all()
        for run_id, started in lost:
            log.warning(
                "run %s has %s in the ledger but no row in runs: kept under one made for "
                "it, in namespace %s",
                run_id,
                view,
                ORPHANED,
            )
            bind.execute(
                sa.text(
                    "INSERT INTO runs (run_id, namespace, started_at, env, broker, feed, "
                    "strategies, bars, status, account) VALUES (:run, :orphaned, :started, "
                    "'', '', '', '[]', 0, 'unknown', :orphaned)"
                ),
                {"run": run_id, "started": started, "orphaned": ORPHANED},
            )
    op.add_column("runs", sa.Column("run_no", sa.Integer(), nullable=True))
    numbered = "SELECT run_id, ROW_NUMBER() OVER (ORDER BY started_at, run_id) AS n FROM runs"
    if bind.dialect.name == "postgresql":
        op.execute(
            f"UPDATE runs SET run_no = numbered.n FROM ({numbered}) AS numbered "
            "WHERE numbered.run_id = runs.run_id"
        )
        # New runs take the next number from a sequence: two runs starting at once
        # never take the same one.
        op.execute("CREATE SEQUENCE runs_run_no_seq OWNED BY runs.run_no")
        op.execute(
            "SELECT setval('runs_run_no_seq', COALESCE((SELECT MAX(run_no) FROM runs), 0) + 1, "
            "false)"
        )
        op.execute("ALTER TABLE runs ALTER COLUMN run_no SET DEFAULT nextval('runs_run_no_seq')")
        # A row that names no number (NULL, as an ORM writes an unset field) gets one too.
        op.execute(NUMBER_NEW_RUNS_POSTGRESQL)
        op.execute(
            "CREATE TRIGGER runs_run_no BEFORE INSERT ON runs FOR EACH ROW "
            "EXECUTE FUNCTION runs_run_no()"
        )
    else:
        op.execute(
            f"UPDATE runs SET run_no = (SELECT n FROM ({numbered}) AS numbered "
            "WHERE numbered.run_id = runs.run_id)"
        )
        # A new run takes the next number as its row goes in (SQLite allows no
        # default but a constant); the writer holds the database while it does.
        op.execute(NUMBER_NEW_RUNS)
    op.create_index("uq_runs_run_no", "runs", ["run_no"], unique=True)


def upgrade() -> None:
    bind = op.get_bind()
    total = sum(
        bind.exec_driver_sql(f"SELECT COUNT(*) FROM {view}").scalar() or 0 for view in TABLES
    )
    if total > PROGRESS_EVERY:
        log.warning(
            "the ledger's %d decisions, judgings, orders and fills name their run by "
            "number: about %d s",
            total,
            max(1, round(total / ROWS_PER_SECOND)),
        )
    _number_runs(bind)
    for view in ("verdicts", "order_events"):
        op.execute(f"DROP VIEW {view}")
    for view, spec in TABLES.items():
        columns = _columns(bind, view)
        names = [c.name for c in columns if c.name != "run_id"]
        run = sa.Column("run_no", sa.Integer(), nullable=False)
        _create(bind, spec["rows"], spec["new"], run, [c for c in columns if c.name != "run_id"])
        listed = ", ".join(names)
        old = ", ".join(f"{view}.{n}" for n in names)
        op.execute(
            f"INSERT INTO {spec['rows']} (id, run_no, {listed}) "
            f"SELECT {view}.id, runs.run_no, {old} FROM {view} "
            f"JOIN runs ON runs.run_id = {view}.run_id ORDER BY {view}.id"
        )
        op.drop_table(view)
        _index(bind, spec["rows"], spec["new"])
        _restart_ids(bind, spec["rows"])
        # The columns in the order the table had them.
        shown = ", ".join(
            "runs.run_id" if c.name == "run_id" else f"{spec['rows']}.{c.name}"
            for c in [sa.Column("id", sa.Integer()), *columns]
        )
        op.execute(
            f"CREATE VIEW {view} AS SELECT {shown} FROM {spec['rows']} "
            f"JOIN runs ON runs.run_no = {spec['rows']}.run_no"
        )
    for sql in _dependent_views(bind.dialect.name):
        op.execute(sql)
    if bind.dialect.name == "postgresql":
        op.execute(KEEP_RUNS_WITH_ROWS_POSTGRESQL)
        op.execute(
            "CREATE TRIGGER runs_keep_rows BEFORE DELETE ON runs FOR EACH ROW "
            "EXECUTE FUNCTION runs_keep_rows()"
        )
    else:
        op.execute(KEEP_RUNS_WITH_ROWS)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER runs_keep_rows ON runs")
        op.execute("DROP FUNCTION runs_keep_rows()")
    else:
        op.execute("DROP TRIGGER runs_keep_rows")
    for view in ("verdicts", "order_events"):
        op.execute(f"DROP VIEW {view}")
    for view, spec in TABLES.items():
        columns = _columns(bind, spec["rows"])
        names = [c.name for c in columns if c.name != "run_no"]
        run = sa.Column("run_id", sa.String(64), nullable=False)
        restored = f"{view}_restored"
        _create(bind, restored, spec["old"], run, [c for c in columns if c.name != "run_no"])
        listed = ", ".join(names)
        op.execute(
            f"INSERT INTO {restored} (id, run_id, {listed}) SELECT id, run_id, {listed} "
            f"FROM {view} ORDER BY id"
        )
        op.execute(f"DROP VIEW {view}")
        op.drop_table(spec["rows"])
        op.rename_table(restored, view)
        if bind.dialect.name == "postgresql":
            # The names the table had before 0022.
            op.execute(f"ALTER SEQUENCE {restored}_id_seq RENAME TO {view}_id_seq")
            op.execute(f"ALTER INDEX {restored}_pkey RENAME TO {view}_pkey")
        _index(bind, view, spec["old"])
        _restart_ids(bind, view)
    # The runs made for rows without one go: their rows have their run's id again.
    bind.execute(sa.text("DELETE FROM runs WHERE namespace = :orphaned"), {"orphaned": ORPHANED})
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER runs_run_no")
    else:
        op.execute("DROP TRIGGER runs_run_no ON runs")
        op.execute("DROP FUNCTION runs_run_no()")
    op.drop_index("uq_runs_run_no", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("run_no")
    for sql in _dependent_views(bind.dialect.name):
        op.execute(sql)
