"""``tradepipe db upgrade|current``: the ledger's schema version, and moving it forward."""

from __future__ import annotations

import click
from sqlalchemy import Engine
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import print_json
from tradepipe.plugins.ledger.db import head, open_engine, revision, upgrade
from tradepipe.plugins.ledger.queries import ledger_sink


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
    data = {"ledger": where, "revision": found, "head": head(), "up_to_date": found == head()}
    if as_json:
        print_json(data)
    else:
        state = "up to date" if data["up_to_date"] else "behind; run `tradepipe db upgrade`"
        click.echo(f"{where}: schema {found or 'none'} (newest {data['head']}), {state}")


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
