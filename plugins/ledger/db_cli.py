"""``tradepipe db current|upgrade|downgrade``: the ledger's schema version, and moving it."""

from __future__ import annotations

import click
from sqlalchemy import Engine
from tradepipe import PersistenceError
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import print_json
from tradepipe.plugins.ledger.db import (
    downgrade,
    head,
    open_engine,
    revision,
    state,
    undone,
    upgrade,
)
from tradepipe.plugins.ledger.queries import ledger_sink
from tradepipe.process import ProcessId, is_alive


@click.group("db")
def db() -> None:
    """The ledger database: schema version and migrations."""


def _engine(app: AppContext) -> tuple[Engine, str]:
    sink = ledger_sink(app.settings, app.host, required=True)
    return open_engine(sink.url, sink.settings.synchronous, migrate=False), sink.where


@db.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def current(app: AppContext, as_json: bool) -> None:
    """Show the ledger's schema revision and the newest this tradepipe knows."""
    engine, where = _engine(app)
    try:
        found = revision(engine)
    finally:
        engine.dispose()
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
            "ahead": "made by a newer tradepipe, which this one cannot use; upgrade tradepipe",
        }[where_it_stands]
        click.echo(f"{where}: schema {found or 'none'} (newest {data['head']}), {said}")
    if where_it_stands == "ahead":
        raise SystemExit(1)


@db.command("upgrade")
@pass_app
def upgrade_command(app: AppContext) -> None:
    """Apply the migrations the ledger lacks (runs also do this when they start)."""
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
@click.option("--to", "target", required=True, help="The schema revision to go back to (0019 …).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def downgrade_command(app: AppContext, target: str, yes: bool) -> None:
    """Take the ledger back to an older schema, for an older tradepipe.

    Undoes the migrations after ``--to``, newest first, in one transaction: a
    failure changes nothing. What a migration added goes with it (a column, a
    table), so copy the ledger first. Stop every run that uses the ledger.
    """
    engine, where = _engine(app)
    try:
        found = revision(engine)
        if found is None:
            raise click.ClickException(f"{where} has no schema revision: nothing to take back")
        try:
            steps = undone(found, target)
        except PersistenceError as exc:
            raise click.ClickException(str(exc)) from exc
        running = _running_here(engine)
        if running:
            raise click.ClickException(
                f"run {running} is still running against {where}: stop it first"
            )
        click.echo(f"{where}: schema {found} -> {target} undoes")
        for rev, what in steps:
            click.echo(f"  {rev}  {what}")
        if not yes:
            click.confirm("Take the ledger back?", abort=True)
        try:
            downgrade(engine, target)
        except PersistenceError as exc:
            raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"{where}: schema {found} -> {target}")


def _running_here(engine: Engine) -> str | None:
    """A run still going on this host whose process is alive, if one is."""
    from sqlalchemy import select
    from tradepipe.plugins.ledger.schema import RunRow

    runs = RunRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.run_id, runs.c.host, runs.c.pid, runs.c.pid_started).where(
                (runs.c.status == "running") & runs.c.pid.is_not(None)
            )
        ).all()
    for run_id, host, pid, started in rows:
        if host and is_alive(ProcessId(host, pid, started)):
            return str(run_id)
    return None
