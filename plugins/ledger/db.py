"""Opening a ledger database: the engine, SQLite's settings, the schema brought up to date.

Every ledger is versioned by the alembic migrations in
:mod:`tradepipe.plugins.ledger.migrations`. Opening one applies whatever migrations it
lacks, inside one transaction, and says so in the log; ``tradepipe db
upgrade`` does the same on demand, and ``tradepipe db downgrade`` takes a ledger
back to what an older tradepipe knows. A ledger made before migrations existed is
recognised by its tables and stamped with the revision it matches first, so
its rows are kept. Two processes opening one ledger at once are serialised
(PostgreSQL: an advisory lock; SQLite: the database lock and a re-check).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from tradepipe import PersistenceError
from tradepipe.plugins.ledger import migrations, schema
from tradepipe.plugins.ledger.running import one_running_here

log = logging.getLogger("tradepipe.plugins.ledger.queries")

# Any fixed number: the key of PostgreSQL's advisory lock for migrations.
_LOCK_KEY = 0x7470_6C65


def sqlite_pragmas(synchronous: str) -> list[str]:
    """WAL so readers never block the writer; a busy timeout so processes share."""
    return [
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous.upper()}",
        "PRAGMA busy_timeout=10000",
    ]


def shown(url: str) -> str:
    """``url`` safe to print: no password (nor, when it held an unencoded "@", the
    part of it the URL's parser took for the host)."""
    parsed = make_url(url)
    text = parsed.render_as_string(hide_password=True)
    if parsed.host and "@" in parsed.host:
        text = text.replace(parsed.host, "***@" + parsed.host.rsplit("@", 1)[1], 1)
    return text


def reason(exc: BaseException) -> str:
    """A database error as one line to show: without SQLAlchemy's link to its
    background page, the driver's further lines joined to the first."""
    text = str(exc).split("\n(Background on this error at:", 1)[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def open_engine(url: str, synchronous: str = "full", *, migrate: bool = True) -> Engine:
    """Create an engine for ``url`` with the ledger's schema up to date.

    SQLite files are created readable by their owner only, in WAL mode (readers
    do not block the writer), with a busy timeout so two processes can share one.

    :param migrate: apply missing migrations (off for read-only uses that
        follow an open which did).
    :raises PersistenceError: the database cannot be opened, created or upgraded.
    """
    try:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = Path(url[len("sqlite:///") :])
            if str(path) and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                for pragma in sqlite_pragmas(synchronous):
                    cursor.execute(pragma)
                cursor.close()

    except (SQLAlchemyError, OSError) as exc:
        raise PersistenceError(f"cannot open the ledger at {shown(url)}: {reason(exc)}") from exc
    except ImportError as exc:  # the URL names a database driver that is not installed
        raise PersistenceError(
            f"cannot open the ledger at {shown(url)}: its driver {exc.name or ''} is not "
            'installed; for PostgreSQL, pip install "tradepipe[postgres]" (psycopg) and a '
            "postgresql+psycopg:// URL"
        ) from exc
    if migrate:
        try:
            upgrade(engine)
        except BaseException as exc:
            engine.dispose()  # no connection left behind for the collector
            if isinstance(exc, SQLAlchemyError):
                raise PersistenceError(
                    f"cannot open the ledger at {shown(url)}: {reason(exc)}"
                ) from exc
            raise
    return engine


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest schema revision this tradepipe knows."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def revision(engine: Engine) -> str | None:
    """The ledger's schema revision (``None``: empty, or made before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str] | None:
    """Apply the migrations the ledger lacks; return ``(from, to)`` if any ran.

    :raises PersistenceError: the ledger is newer than this tradepipe.
    """
    target = head()
    if revision(engine) == target:
        return None  # as a rule: nothing to lock
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                _lock(conn)
                return _upgrade(conn, target)
        except SQLAlchemyError:
            # Another process may have been migrating the same ledger: look again.
            if attempt or revision(engine) != target:
                raise
    return None


def _lock(conn: Connection) -> None:
    """Hold the ledger for a migration, in the transaction ``conn`` is in.

    PostgreSQL: an advisory lock, so two processes never migrate at once. SQLite:
    the whole migration goes inside one transaction begun here, holding the
    database (Python's sqlite3 would otherwise commit each change of the schema
    on its own, so a migration that failed half way would stay half done).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


#: The views the migrations make (those the schema reads through); any other
#: would stop one that rebuilds a table.
OUR_VIEWS = frozenset(schema.views.tables)


def _refuse_to_migrate(conn: Connection, current: str) -> None:
    """Refuse to move the schema while a run on this host still writes to the
    ledger (its writes would fail against the new tables), or while views a user
    made over the ledger stand (a rebuilt table cannot keep them)."""
    found = inspect(conn)
    theirs = sorted(set(found.get_view_names()) - OUR_VIEWS)
    if theirs:
        raise PersistenceError(
            f"the ledger holds views tradepipe did not make ({', '.join(theirs)}): drop them "
            f"before its schema moves from {current}, and make them again after; "
            "nothing was changed"
        )
    columns = {c["name"] for c in found.get_columns("runs")}
    if {"status", "host", "pid", "pid_started"} <= columns:
        running = one_running_here(conn)
        if running:
            raise PersistenceError(
                f"run {running} is still running against the ledger, whose schema must move "
                f"from {current}: stop it first; nothing was changed"
            )


def _upgrade(conn: Connection, target: str) -> tuple[str | None, str] | None:
    config = _config(conn)
    current = MigrationContext.configure(conn).get_current_revision()
    if current == target:
        return None
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    if current is not None and current not in known:
        raise PersistenceError(
            f"the ledger's schema ({current}) is newer than this tradepipe knows ({target}); "
            "upgrade tradepipe, or take the ledger back with the newer one: "
            f"`tradepipe db downgrade --to {target}`"
        )
    where = shown(str(conn.engine.url))
    if current is None and "runs" in inspect(conn).get_table_names():
        # Made before the ledger had migrations: find which schema it has.
        columns = {c["name"] for c in inspect(conn).get_columns("orders")}
        current = "0002" if "instrument" in columns else "0001"
        command.stamp(config, current)
    if current is None:
        log.info("ledger at %s: creating its tables (schema %s)", where, target)
    else:
        _refuse_to_migrate(conn, current)
        log.warning("ledger at %s: upgrading its schema from %s to %s", where, current, target)
    command.upgrade(config, target)
    return current, target


def state(found: str | None) -> str:
    """Where a ledger at revision ``found`` stands: ``current``, ``behind`` (it lacks
    migrations) or ``ahead`` (made by a newer tradepipe, which this one refuses)."""
    if found == head():
        return "current"
    if found is None or found in known():
        return "behind"
    return "ahead"


def known() -> dict[str, str]:
    """Every revision this tradepipe knows, with the first line of what it does
    (plain text: the docstrings' literal markup left out)."""
    return {
        script.revision: (script.doc or "").strip().splitlines()[0].replace("``", "")
        if script.doc
        else ""
        for script in ScriptDirectory.from_config(_config()).walk_revisions()
    }


def undone(current: str, target: str) -> list[tuple[str, str]]:
    """The migrations a downgrade from ``current`` to ``target`` undoes, newest first,
    each with the first line of what it did.

    :raises PersistenceError: either revision is unknown, or ``target`` is not older.
    """
    revisions = known()
    for rev in (current, target):
        if rev not in revisions:
            raise PersistenceError(f"schema {rev!r} is not one this tradepipe knows")
    if target >= current:  # revisions are numbered in the order they apply
        raise PersistenceError(f"schema {target} is not older than the ledger's ({current})")
    return [
        (rev, revisions[rev]) for rev in sorted(revisions, reverse=True) if target < rev <= current
    ]


def downgrade(engine: Engine, target: str) -> tuple[str, str]:
    """Undo the migrations after ``target``, in one transaction; return ``(from, to)``.

    :raises PersistenceError: the ledger's schema or ``target`` is unknown, or not older.
    """
    with engine.begin() as conn:
        _lock(conn)
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None:
            raise PersistenceError("the ledger has no schema revision: nothing to take back")
        undone(current, target)
        _refuse_to_migrate(conn, current)
        log.warning(
            "ledger at %s: downgrading its schema from %s to %s",
            shown(str(conn.engine.url)),
            current,
            target,
        )
        command.downgrade(_config(conn), target)
    return current, target
