"""``tradepipe reconcile [--fix]``: the ledger against the broker, difference by difference.

It compares what the ledger recorded with what the broker reports now: orders
the ledger left open (and what became of them), orders working at the broker
that the ledger does not know, executions the ledger lacks, and the positions
of the ledger's last snapshot against the broker's. Each difference is printed
with what it means. With ``--fix`` the broker's word is adopted: an earlier
order's end and fills go into the history of the run that sent it, stray
executions and the broker's positions into a reconciliation run of their own,
and every difference gets an audit row saying what was done.
"""

from __future__ import annotations

import datetime as dt

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, print_json, table
from tradepipe.clock import SystemClock
from tradepipe.differences import Comparison, compare
from tradepipe.errors import ConfigError, PersistenceError
from tradepipe.logs import redact_accounts
from tradepipe.pipeline import connect_broker, make_component
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.plugins.ledger.reconcile import adopt


@click.command("reconcile")
@click.option("--since", type=click.DateTime(), help="Executions since (UTC; default 7 days).")
@click.option(
    "--fix", is_flag=True, help="Adopt the broker's word into the ledger, with audit rows."
)
@click.option("--broker", "broker_name", metavar="NAME", help="Use this broker ([run] broker).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def reconcile(
    app: AppContext, since: dt.datetime | None, fix: bool, broker_name: str | None, as_json: bool
) -> None:
    """Compare the ledger with the broker; with --fix, adopt the broker's word."""
    app.setup_logging()
    settings = app.settings
    if broker_name:
        settings = settings.model_copy(
            update={"run": settings.run.model_copy(update={"broker": broker_name})}
        )
    now = SystemClock().now()
    start = since.replace(tzinfo=dt.UTC) if since else now - dt.timedelta(days=7)
    sink = make_component(app.host, settings, "sink", "sql")
    engine = sink.engine()
    click.get_current_context().call_on_close(engine.dispose)
    ledger = Ledger(engine, sink.where)
    broker = make_component(app.host, settings, "broker", settings.run.broker)
    if broker.name == "paper" and not getattr(broker.settings, "state_file", ""):
        raise ConfigError(
            "the paper simulator keeps no account between runs, so there is nothing to "
            "reconcile with; set [brokers.paper] state_file",
            key="brokers.paper.state_file",
        )
    going = sorted(sink.running_elsewhere()) if fix else []
    if going:
        raise PersistenceError(
            f"run {going[0]} is still going on this host and records its own orders; --fix "
            "would write into its history as well. Stop it first, or compare without --fix"
        )
    try:
        status = connect_broker(broker, settings)
        unsettled = ledger.unsettled(None)
        if unsettled:
            start = min(start, *(u.intent.created_at for u in unsettled))
        latest = ledger.latest_positions()
        found = compare(
            broker,
            unsettled=unsettled,
            known_orders=ledger.all_client_ids(),
            recorded_executions=ledger.execution_ids(),
            ledger_positions=latest[1] if latest else None,
            since=start,
            now=now,
        )
        run_id = adopt(sink, found, settings.env, broker, status.account_id, now) if fix else None
    finally:
        broker.disconnect()
    _show(found, run_id, as_json)
    if found.differences and not fix:
        raise SystemExit(1)


def _show(found: Comparison, run_id: str | None, as_json: bool) -> None:
    rows = [
        {
            "kind": d.kind,
            "subject": d.subject,
            "ledger": d.ledger,
            "broker": d.broker,
            "meaning": d.meaning,
            "action": d.action if run_id else "none (run with --fix to adopt)",
        }
        for d in found.differences
    ]
    if as_json:
        print_json({"differences": rows, "reconcile_run": run_id})
        return
    out = console()
    if not rows:
        out.print("The ledger and the broker agree.")
        return
    out.print(
        table(
            f"{len(rows)} difference(s)",
            ["kind", "subject", "ledger", "broker", "what it means", "action"],
            [
                [
                    None if v is None else (Id if k == "subject" else str)(redact_accounts(str(v)))
                    for k, v in r.items()
                ]
                for r in rows
            ],
        )
    )
    if run_id:
        out.print(f"Adopted into the ledger by run {run_id}, with an audit row for each.")
