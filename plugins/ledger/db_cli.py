"""``tradepipe db current|upgrade|downgrade``: the ledger's schema version, and moving it."""

from __future__ import annotations

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from tradepipe import PersistenceError
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import print_json
from tradepipe.plugins.ledger.db import (
    downgrade,
    head,
    known,
    open_engine,
    reason,
    revision,
    state,
    undone,
    upgrade,
)
from tradepipe.plugins.ledger.queries import ledger_sink
from tradepipe.plugins.ledger.running import one_running_here


@click.group("db")
def db() -> None:
    """The ledger database: schema version and migrations."""


def _engine(app: AppContext) -> tuple[Engine, str]:
    sink = ledger_sink(app.settings, app.host, required=True)
    engine = open_engine(sink.url, sink.settings.synchronous, migrate=False)
    # Opened without a connection: find out here whether the ledger can be reached.
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        engine.dispose()
        raise PersistenceError(f"cannot open the ledger at {sink.where}: {reason(exc)}") from exc
    return engine, sink.where


@db.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def current(app: AppContext, as_json: bool) -> None:
    """Show the ledger's schema revision and the newest this tradepipe knows."""
    try:
        engine, where = _engine(app)
        try:
            found = revision(engine)
        finally:
            engine.dispose()
    except PersistenceError as exc:
        if not as_json:
            raise
        # A script reading the JSON gets JSON: the state says why there is no revision.
        message = str(exc) if app.redaction is None else app.redaction.redact(str(exc))
        sink = ledger_sink(app.settings, app.host, required=True)
        print_json(
            {
                "ledger": sink.where,
                "revision": None,
                "head": head(),
                "up_to_date": False,
                "state": "error",
                "error": message,
            }
        )
        click.echo(f"error: {message}", err=True)
        raise SystemExit(1) from None
    where_it_stands = state(found)
    data = {
        "ledger": where,
        "revision": found,
        "head": head(),
        "up_to_date": where_it_stands == "current",
        "state": where_it_stands,
    }
    if as_json:
        print_json(data)
    else:
        said = {
            "current": "up to date",
            "behind": "behind; run `tradepipe db upgrade`",
            "ahead": "made by a newer tradepipe, which this one cannot use; upgrade "
            "tradepipe, or take the ledger back with the newer one: "
            f"`tradepipe db downgrade --to {data['head']}`",
        }[where_it_stands]
        click.echo(f"{where}: schema {found or 'none'} (newest {data['head']}), {said}")
    if where_it_stands == "ahead":
        raise SystemExit(1)


@db.command("upgrade")
@pass_app
def upgrade_command(app: AppContext) -> None:
    """Apply the migrations the ledger lacks (every command that opens it does too)."""
    engine, where = _engine(app)
    try:
        changed = upgrade(engine)
    finally:
        engine.dispose()
    if changed is None:
        click.echo(f"{where}: schema {head()} is up to date; nothing to do")
    else:
        before, after = changed
        click.echo(f"{where}: schema {before or 'none'} -> {after}")


@db.command("downgrade")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="REV",
    help="The schema to go back to: the older tradepipe's newest (its `db current`).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def downgrade_command(app: AppContext, target: str, yes: bool) -> None:
    """Take the ledger back to an older schema, for an older tradepipe.

    Undoes the migrations after REV, newest first, in one transaction: a failure
    changes nothing, and so does answering no. What a migration added goes with
    it (a column, a table): copy the ledger first. Stop every run that uses it.
    An older tradepipe's `tradepipe db current` gives the schema it knows as
    "newest".
    """
    revisions = known()
    if target not in revisions:
        raise click.UsageError(
            f"--to {target!r}: not a schema this tradepipe knows "
            f"({min(revisions)} to {max(revisions)})"
        )
    engine, where = _engine(app)
    try:
        found = revision(engine)
        if found is None:
            raise PersistenceError(f"{where} has no schema revision: nothing to take back")
        if found not in revisions:
            raise PersistenceError(
                f"{where}: schema {found} was made by a newer tradepipe, which this one does "
                f"not know; take it back with that one (`tradepipe db downgrade --to {head()}` "
                "gives this one's newest)"
            )
        if target == found:
            click.echo(f"{where}: schema {found} already; nothing to do")
            return
        if target > found:
            raise click.UsageError(
                f"--to {target} is newer than the ledger's schema ({found}); "
                "`tradepipe db upgrade` moves it forward"
            )
        running = _running_here(engine)
        if running:
            raise PersistenceError(f"run {running} is still running against {where}: stop it first")
        click.echo(f"{where}: schema {found} -> {target} undoes")
        for rev, what in undone(found, target):
            click.echo(f"  {rev}  {what}")
        if not yes:
            click.confirm("Take the ledger back?", abort=True)
        downgrade(engine, target)
    finally:
        engine.dispose()
    click.echo(
        f"{where}: schema {found} -> {target}, done: a tradepipe whose newest schema is "
        f"{target} can open it (this one would upgrade it again)"
    )


def _running_here(engine: Engine) -> str | None:
    """A run still going on this host whose process is alive, if one is."""
    with engine.connect() as conn:
        return one_running_here(conn)
