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

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import click
from tradepipe.adapter import Broker, OrderUpdate
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, print_json, table
from tradepipe.clock import SystemClock
from tradepipe.errors import ConfigError
from tradepipe.host import PluginHost
from tradepipe.logs import redact_accounts
from tradepipe.orders import Fill, Order, OrderEvent, OrderStatus
from tradepipe.pipeline import connect_broker, make_component
from tradepipe.plugins.ledger.queries import RECONCILE_NAMESPACE, Ledger, ledger_sink, open_ledger
from tradepipe.reconcile import Comparison, compare, settle
from tradepipe.settings import AppSettings
from tradepipe.sink import RunInfo, Unsettled, run_account


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
        run_id = _adopt(sink, found, settings.env, broker, status.account_id, now) if fix else None
    finally:
        broker.disconnect()
    _show(found, run_id, as_json)
    if found.differences and not fix:
        raise SystemExit(1)


def _reconcile_run(env: str, broker: Broker, account: str | None, now: dt.datetime) -> RunInfo:
    run_id = f"{now:%Y%m%dT%H%M%S}-reconcile-{uuid.uuid4().hex[:4]}"
    return RunInfo(
        run_id=run_id,
        namespace=RECONCILE_NAMESPACE,
        started_at=now,
        env=env,
        broker=broker.name,
        feed="",
        strategies=("reconcile",),
        account_id=account,
        account=run_account(broker, account, run_id),
    )


def settle_order(
    settings: AppSettings,
    host: PluginHost,
    broker: Broker,
    client_order_id: str,
    *,
    requested: OrderUpdate | None = None,
) -> str | None:
    """Write how one order the ledger left open ended, as ``reconcile --fix`` would.

    For a cancel: the order's end (and any fills before it) go into the
    history of the run that sent it, with an audit row, in a reconciliation run
    of their own. Nothing is written when the ledger is not configured or does
    not exist, does not know the order, or already has its end, or when the
    broker does not report it as ended.

    :returns: the reconciliation run's id, or ``None`` when nothing was written.
    :raises BrokerError: the broker could not be asked; nothing was written.
    """
    if "sql" not in settings.run.sinks:
        return None
    sink = ledger_sink(settings, host)
    if sink is None:
        return None
    engine = sink.engine()
    try:
        ledger = Ledger(engine, sink.where)
        unsettled = [
            u for u in ledger.unsettled(None) if u.intent.client_order_id == client_order_id
        ]
        if not unsettled:
            return None
        now = SystemClock().now()
        asked: list[OrderEvent] = []
        when = "by reconcile"
        if requested is not None:
            # The user's cancel goes into the history first, then how it ended.
            unsettled, asked = _cancel_requested(unsettled, requested)
            when = "after the cancel that was asked for"
        # No list of every open order: the broker is asked about this one (by the id
        # the ledger kept, where it has one).
        ended = [r for r in settle(broker, unsettled, {}, now, when=when) if r.events or r.fills]
        if not ended:
            return None
        ended[0].events[:0] = asked
        run = _reconcile_run(settings.env, broker, broker.status().account_id, now)
        sink.open(run)
        for result in ended:
            sink.record_reconciled(result.unsettled.run_id, result.events, result.fills)
            final = result.events[-1].status.value if result.events else None
            sink.record_audit(
                "order_end",
                client_order_id,
                result.unsettled.status.value,
                final,
                "adopted",
                f"{len(result.fills)} fill(s) recorded; the order's end is in run "
                f"{result.unsettled.run_id}",
                now,
            )
        sink.close(run, bars=0, status="completed")
        return run.run_id
    finally:
        engine.dispose()


@contextlib.contextmanager
def _ledger(settings: AppSettings, host: PluginHost) -> Iterator[Ledger | None]:
    """The configured ledger, read-only, or ``None`` when there is none yet."""
    if "sql" not in settings.run.sinks:
        yield None
        return
    with open_ledger(settings, host) as ledger:
        yield ledger


def follow_ledger(settings: AppSettings, host: PluginHost, broker: Broker) -> None:
    """Tell ``broker`` of the orders the ledger has open (:meth:`~tradepipe.Broker.track`).

    So a command knows them as a run would: by the broker's ids the ledger
    kept (a look-up without reading the order list), and a bracket's exits by
    name.
    """
    with _ledger(settings, host) as ledger:
        if ledger is not None:
            for u in ledger.unsettled(None):
                broker.track(u.intent, u.broker_order_id)


def named_fills(
    settings: AppSettings, host: PluginHost, broker: Broker, since: dt.datetime | None
) -> list[Fill]:
    """The broker's fills, each under the client order id the ledger knows it by.

    Executions that carry no client order id (a bracket's exits) are named
    from the ledger: by the exit orders still open there, which the broker is
    told to follow first, and by the fills already recorded.
    """
    with _ledger(settings, host) as ledger:
        if ledger is None:
            return broker.fills(since)
        for u in ledger.unsettled(None):
            broker.track(u.intent, u.broker_order_id)
        fills = broker.fills(since)
        names = ledger.orders_of_executions(f.execution_id for f in fills if not f.client_order_id)
    return [
        f.model_copy(update={"client_order_id": names[f.execution_id]})
        if f.execution_id in names
        else f
        for f in fills
    ]


def _cancel_requested(
    unsettled: list[Unsettled], requested: OrderUpdate
) -> tuple[list[Unsettled], list[OrderEvent]]:
    """The first open order with its cancel request applied, and that request's event."""
    first, rest = unsettled[0], unsettled[1:]
    order = Order.trusted(
        intent=first.intent,
        status=first.status,
        seq=first.seq,
        filled_quantity=first.filled,
        broker_order_id=first.broker_order_id,
        updated_at=first.intent.created_at,
    )
    if not order.can_transition(OrderStatus.PENDING_CANCEL):
        return unsettled, []
    event = order.transition(
        OrderStatus.PENDING_CANCEL,
        requested.ts,
        f"cancel requested ({requested.reason})" if requested.reason else "cancel requested",
        requested.broker_order_id,
    )
    moved = dataclasses.replace(first, status=OrderStatus.PENDING_CANCEL, seq=event.seq)
    return [moved, *rest], [event]


def _adopt(
    sink: Any, found: Comparison, env: str, broker: Broker, account: str | None, now: dt.datetime
) -> str:
    run = _reconcile_run(env, broker, account, now)
    sink.open(run)
    for result in found.settlements:
        sink.record_reconciled(result.unsettled.run_id, result.events, result.fills)
    for fill in found.stray_fills:
        sink.record_fill(fill)
    if found.positions:
        # The broker's positions and account become the ledger's latest snapshot.
        sink.record_snapshot(found.positions, broker.account())
    for diff in found.differences:
        if diff.kind == "unknown_order":
            diff.action = "noted"  # a run adopts working orders when it starts
        elif diff.kind == "order_unknown_to_broker":
            diff.action = "noted"  # nothing the broker said to adopt; changed nothing
        else:
            diff.action = "adopted"
        sink.record_audit(
            diff.kind, diff.subject, diff.ledger, diff.broker, diff.action, diff.meaning, now
        )
    sink.close(run, bars=0, status="completed")
    return run.run_id


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
