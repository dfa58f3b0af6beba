"""Adopting the broker's word into the ledger: what ``reconcile --fix`` and a cancel write.

An earlier order's end and fills go into the history of the run that sent it,
stray executions and the broker's positions into a reconciliation run of their
own, and every difference gets an audit row saying what was done.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

from tradepipe.adapter import Broker, OrderUpdate
from tradepipe.clock import SystemClock
from tradepipe.differences import Comparison
from tradepipe.orders import Order, OrderEvent, OrderStatus
from tradepipe.plugins.ledger.queries import RECONCILE_NAMESPACE, Ledger
from tradepipe.reconcile import settle
from tradepipe.sink import RunInfo, Unsettled, run_account

if TYPE_CHECKING:
    from tradepipe.plugins.ledger.sink import SqlSink

log = logging.getLogger(__name__)


def reconcile_run(env: str, broker: Broker, account: str | None, now: dt.datetime) -> RunInfo:
    """A reconciliation run of its own, for what ``reconcile --fix`` or a cancel writes."""
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
    sink: SqlSink,
    env: str,
    broker: Broker,
    client_order_id: str,
    requested: OrderUpdate | None = None,
) -> str | None:
    """Write how one order the ledger left open ended, as ``reconcile --fix`` would.

    For a cancel: the order's end (and any fills before it) go into the
    history of the run that sent it, with an audit row, in a reconciliation run
    of their own. Nothing is written when the ledger does not know the order or
    already has its end, or when the broker does not report it as ended.

    :returns: the reconciliation run's id, or ``None`` when nothing was written.
    :raises BrokerError: the broker could not be asked; nothing was written.
    """
    ledger = Ledger(sink.engine(), sink.where)
    unsettled = [u for u in ledger.unsettled(None) if u.intent.client_order_id == client_order_id]
    if not unsettled:
        return None
    going = sink.running_elsewhere()
    for u in unsettled:
        if u.run_id in going:
            # Written here too, the end would collide with the one that run writes.
            log.info(
                "order %s is run %s's, still going on this host: that run records its end",
                client_order_id,
                u.run_id,
            )
            return None
    now = SystemClock().now()
    asked: list[OrderEvent] = []
    when = "by reconcile"
    if requested is not None:
        # The user's cancel goes into the history first, then how it ended.
        unsettled, asked = cancel_requested(unsettled, requested)
        when = "after the cancel that was asked for"
    # No list of every open order: the broker is asked about this one (by the id
    # the ledger kept, where it has one).
    ended = [r for r in settle(broker, unsettled, {}, now, when=when) if r.events or r.fills]
    if not ended:
        return None
    ended[0].events[:0] = asked
    run = reconcile_run(env, broker, broker.status().account_id, now)
    sink.open(run)
    for result in ended:
        sink.record_reconciled(result.unsettled.run_id, result.events, result.fills)
        final = result.events[-1].status.value if result.events else None
        sink.record_audit(
            "order_end",
            client_order_id,
            ledger_value=result.unsettled.status.value,
            broker_value=final,
            action="adopted",
            detail=f"{len(result.fills)} fill(s) recorded; the order's end is in run "
            f"{result.unsettled.run_id}",
            ts=now,
        )
    sink.close(run, bars=0, status="completed")
    return run.run_id


def cancel_requested(
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


def adopt(
    sink: Any, found: Comparison, env: str, broker: Broker, account: str | None, now: dt.datetime
) -> str:
    """Write ``found`` into the ledger as the broker has it, with an audit row each."""
    run = reconcile_run(env, broker, account, now)
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
            diff.kind,
            diff.subject,
            ledger_value=diff.ledger,
            broker_value=diff.broker,
            action=diff.action,
            detail=diff.meaning,
            ts=now,
        )
    sink.close(run, bars=0, status="completed")
    return run.run_id
