"""Settling orders an earlier run left open, from what the broker says now.

A pipeline can stop (a crash, a kill, a lost connection) while orders it sent
are still working. When a run of the same ``[run] session`` starts again, the
ledger knows those orders but not how they ended. For each one this asks the
broker: executions it had since (recorded once each, by execution id) and its
status now. What the broker states is written back to the run that sent the
order, so every order's history stays whole in one place. What the broker
does not know is left as it is and reported, never guessed.

The account itself needs no repair: the run's book starts from the broker's
positions and cash, which already include those fills.

At a run's start (:func:`start_up`) the orders working at the broker are taken
on too: an earlier run's is followed, any other adopted. During the run, a send
whose outcome was unknown is settled by asking the broker (:func:`ask_unknown`),
never by sending it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import ValidationError
from tradepipe.adapter import Broker, OrderReport, OrderUpdate
from tradepipe.decisions import validation_problems
from tradepipe.errors import BrokerAuthError, BrokerError, InvalidOrderTransition
from tradepipe.orders import Fill, Order, OrderEvent, OrderIntent, OrderStatus
from tradepipe.sink import Unsettled

if TYPE_CHECKING:
    from tradepipe.blotter import Blotter
    from tradepipe.clock import Clock
    from tradepipe.sink import Sink

log = logging.getLogger("tradepipe.events")


@dataclass
class Settlement:
    """What was learnt about one earlier order."""

    unsettled: Unsettled
    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    note: str = ""
    #: The order as it stands after what was learnt (``None`` until settled).
    order: Order | None = None


def settle(
    broker: Broker,
    unsettled: Sequence[Unsettled],
    working: dict[str, OrderReport],
    now: datetime,
    *,
    when: str = "at start-up",
    fills: Sequence[Fill] | None = None,
) -> list[Settlement]:
    """Ask ``broker`` about ``unsettled`` orders; return what to record for each.

    :param working: the broker's open orders by client order id (already read).
    :param when: how the reasons recorded say the order was settled ("at start-up",
        "by reconcile", "after the cancel the user asked for").
    :param fills: the broker's fills since the oldest of these orders, when the
        caller has just read them (IBKR allows one read of its executions per 5 s).
    :raises BrokerError: the broker could not be asked; nothing is assumed.
    """
    if not unsettled:
        return []
    for u in unsettled:
        broker.track(u.intent, u.broker_order_id)
    since = min(u.intent.created_at for u in unsettled)
    executions: dict[str, list[Fill]] = {}
    for fill in broker.fills(since) if fills is None else fills:
        if fill.ts >= since:
            executions.setdefault(fill.client_order_id, []).append(fill)
    out = []
    # One order can be unsettled in several runs (a run adopted it while it was
    # working, then stopped too): an execution is recovered into the first only.
    claimed: dict[str, Decimal] = {}
    for u in unsettled:
        cid = u.intent.client_order_id
        order = Order.trusted(
            intent=u.intent,
            status=u.status,
            seq=u.seq,
            filled_quantity=u.filled,
            broker_order_id=u.broker_order_id,
            updated_at=u.intent.created_at,
        )
        result = Settlement(u, order=order)
        _recover_fills(result, order, executions.get(cid, []), claimed)
        report = working.get(cid)
        if report is None and not order.status.is_terminal:
            report = broker.order(cid)
        _apply_report(broker, result, order, report, now, when)
        if result.events or result.fills:
            log.info(
                "earlier order %s (run %s): %s, %d fill(s) recovered",
                cid,
                u.run_id,
                order.status.value,
                len(result.fills),
            )
        out.append(result)
    return out


def _recover_fills(
    result: Settlement, order: Order, executions: Sequence[Fill], claimed: dict[str, Decimal]
) -> None:
    """The order's executions the records lack, applied to it in time order.

    One order can be unsettled in several runs: an execution is recovered into
    the first only (``claimed``), and only counted in the others.
    """
    u = result.unsettled
    cid = u.intent.client_order_id
    for fill in sorted(executions, key=lambda f: f.ts):
        if fill.execution_id in u.executions:
            continue
        if fill.execution_id in claimed:
            order.__dict__["filled_quantity"] += claimed[fill.execution_id]
            continue
        claimed[fill.execution_id] = fill.quantity
        fill = fill.model_copy(update={"decision_id": u.intent.decision_id})
        result.fills.append(fill)
        try:
            result.events.append(order.apply_fill(fill))
        except InvalidOrderTransition as exc:
            log.error("earlier order %s: fill %s not applied: %s", cid, fill.execution_id, exc)


def _apply_report(
    broker: Broker,
    result: Settlement,
    order: Order,
    report: OrderReport | None,
    now: datetime,
    when: str,
) -> None:
    """The order's end as the broker reports it (or, unreported, as its absence says)."""
    u = result.unsettled
    cid = u.intent.client_order_id
    if report is None:
        if order.status.is_terminal:
            pass
        elif never_arrived(broker, u, order, now):
            result.events.append(
                order.transition(
                    OrderStatus.REJECTED,
                    now,
                    "never reached the broker: its send had no clear answer and "
                    f"{broker.name} has no record of it (open orders, executions and "
                    "order lookups checked after "
                    f"{broker.order_visibility_seconds:g} s)",
                )
            )
        else:
            result.note = "the broker does not know this order; left as it was"
            if order.status in (OrderStatus.UNKNOWN, OrderStatus.SUBMITTED):
                result.note += (
                    f" (settled as never sent once {broker.order_visibility_seconds:g} s "
                    "have passed since its send)"
                )
            log.warning("earlier order %s (run %s): %s", cid, u.run_id, result.note)
    elif (
        # Filled by executions a later run recorded (it adopted the order
        # while it was working): the fills are in the ledger once, the
        # status is closed here without recording them again.
        report.status is OrderStatus.FILLED
        and not order.status.is_terminal
        and order.remaining <= 0
        and order.can_transition(OrderStatus.FILLED)
    ):
        result.events.append(
            order.transition(
                OrderStatus.FILLED,
                now,
                f"settled {when}: filled, executions recorded by a later run",
                report.broker_order_id,
            )
        )
    elif (
        # Fill statuses come from executions above; others are the broker's word.
        report.status not in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)
        and report.status is not order.status
        and order.can_transition(report.status)
    ):
        result.events.append(
            order.transition(
                report.status,
                now,
                f"settled {when} from the broker's report",
                report.broker_order_id,
            )
        )


def never_arrived(broker: Broker, u: Unsettled, order: Order, now: datetime) -> bool:
    """Whether an order the broker has no record of can be called never sent.

    Only an order whose send had no clear answer (``unknown``, or ``submitted``
    with no acknowledgement yet) qualifies, and only once the broker's
    :attr:`~tradepipe.Broker.order_visibility_seconds` have passed since the
    send: an order the broker acknowledged, or one it may still be taking in,
    is left alone.
    """
    if order.status not in (OrderStatus.UNKNOWN, OrderStatus.SUBMITTED):
        return False
    if u.broker_order_id or order.filled_quantity > 0:
        return False
    since = u.updated_at or u.intent.created_at
    return (now - since).total_seconds() >= broker.order_visibility_seconds


def adopted_intent(report: OrderReport, client_order_id: str, now: datetime) -> OrderIntent:
    """The intent an order at the broker that no run of ours placed is known by.

    :raises ValidationError: the report does not make a valid intent.
    """
    return OrderIntent(
        client_order_id=client_order_id,
        decision_id="",
        source="broker",
        symbol=report.symbol,
        side=report.side,
        quantity=report.quantity,
        order_type=report.order_type,
        limit_price=report.limit_price,
        stop_price=report.stop_price,
        created_at=now,
    )


def start_up(
    blotter: Blotter, broker: Broker, sinks: Sequence[Sink], namespace: str, clock: Clock
) -> None:
    """Settle what earlier runs of session ``namespace`` left open; take on working orders.

    Orders working at the broker are adopted, so they count in exposure and
    their fills are applied; a broker that cannot list them raises (never read
    as "none"). One the ledger already holds (any run, any session) is recorded
    once: it is settled like an earlier run's order, and what becomes of it is
    written to the run that holds it. Client order ids earlier runs of the
    session used go to ``blotter.sent``, so a restarted run never sends a
    decision twice.
    """
    reports = broker.open_orders()
    working = {r.client_order_id: r for r in reports if r.client_order_id}
    held: dict[str, Settlement] = {}
    for sink in sinks:
        blotter.sent.update(sink.sent_client_ids(namespace))
        earlier = sink.unsettled_orders(namespace)
        known = {u.intent.client_order_id for u in earlier}
        earlier += [u for u in sink.held_orders(working) if u.intent.client_order_id not in known]
        going = sink.running_elsewhere()
        if going:
            for u in earlier:
                if u.run_id in going:
                    _leave(blotter, u, working.get(u.intent.client_order_id))
            earlier = [u for u in earlier if u.run_id not in going]
        now = clock.now()
        for result in settle(broker, earlier, working, now):
            u = result.unsettled
            if u.intent.client_order_id in working:
                held.setdefault(u.intent.client_order_id, result)
            sink.record_reconciled(u.run_id, result.events, result.fills)
            if result.events or result.fills or result.note:
                final = result.events[-1].status.value if result.events else u.status.value
                sink.record_audit(
                    "order_end" if result.events or result.fills else "order_unknown_to_broker",
                    u.intent.client_order_id,
                    ledger_value=u.status.value,
                    broker_value=final if not result.note else None,
                    action="adopted" if not result.note else "noted",
                    detail=result.note
                    or f"settled at start-up in run {u.run_id}: "
                    f"{len(result.fills)} fill(s) recovered",
                    ts=now,
                )
    _adopt(blotter, reports, held, clock.now())


def _adopt(
    blotter: Blotter, reports: Sequence[OrderReport], held: dict[str, Settlement], now: datetime
) -> None:
    """Take on the orders working at the broker: follow an earlier run's, adopt any other."""
    for report in reports:
        if not report.status.is_working:
            continue
        cid = report.client_order_id or f"broker-{report.broker_order_id}"
        if cid in blotter.working:
            continue
        found = held.get(cid)
        if found is not None and found.order is not None and not found.order.status.is_terminal:
            _follow(blotter, found.unsettled, found.order, found.fills)
            continue
        try:
            intent = adopted_intent(report, cid, now)
        except ValidationError as exc:
            problems = validation_problems(exc)
            log.warning("open order %s at the broker not adopted: %s", cid, problems)
            continue
        order = Order.from_intent(intent)
        reason = "adopted at start-up: working at the broker"
        blotter.take_on(order, now, reason, report.broker_order_id)
        if report.filled_quantity > 0:
            # What already filled is in the broker's positions; only the rest counts.
            order.__dict__["filled_quantity"] = report.filled_quantity
            blotter.order_event(order, order.transition(OrderStatus.PARTIALLY_FILLED, now, reason))
        log.info(
            "adopted order %s (%s %s %s) working at the broker",
            cid,
            intent.side.value,
            intent.quantity,
            intent.symbol,
        )


def _leave(blotter: Blotter, u: Unsettled, report: OrderReport | None) -> None:
    """Leave an order of a run still going to that run; follow it while it works.

    Nothing of it is written here: its run records its fills and its end. While
    it works at the broker it counts in this run's exposure, and its fills move
    this run's book, as an order adopted at start-up does: what filled before
    the start is in the broker's positions.
    """
    cid = u.intent.client_order_id
    blotter.sent.add(cid)
    if report is None or not report.status.is_working or cid in blotter.working:
        return
    blotter.seen.update(u.executions)
    blotter.leave(cid, u.run_id)
    blotter.working[cid] = Order.trusted(
        intent=u.intent,
        status=u.status,
        seq=u.seq,
        filled_quantity=report.filled_quantity,
        broker_order_id=report.broker_order_id or u.broker_order_id,
        updated_at=u.updated_at or u.intent.created_at,
    )
    log.info("order %s is run %s's, still going: followed, left to it to record", cid, u.run_id)


def _follow(blotter: Blotter, held: Unsettled, order: Order, fills: Sequence[Fill]) -> None:
    """Follow an order an earlier run holds, without recording it again."""
    cid = order.client_order_id
    blotter.sent.add(cid)
    blotter.seen.update(held.executions, (f.execution_id for f in fills))
    blotter.record.belongs_to(cid, held.run_id)
    blotter.working[cid] = order
    log.info("following order %s of run %s, working at the broker", cid, held.run_id)


def ask_unknown(
    broker: Broker,
    unknown: dict[str, datetime],
    now: datetime,
    on_auth: Callable[[BrokerAuthError], None],
) -> Iterator[OrderUpdate]:
    """Ask ``broker`` about the ``unknown`` sends, one by one; yield what it settles.

    An order the broker has no record of is rejected as never sent once the
    broker's :attr:`~tradepipe.Broker.order_visibility_seconds` have passed
    since its send. A lost session goes to ``on_auth``; other failures leave
    the order unknown, to be asked about again.
    """
    for cid in list(unknown):
        try:
            report = broker.order(cid)
        except BrokerAuthError as exc:
            on_auth(exc)
            continue
        except BrokerError as exc:
            log.warning("order %s still unknown: %s", cid, exc)
            continue
        if report is None:
            # The broker answered and has no such order: once it has had the
            # time it may take to show one, the order never arrived.
            window = broker.order_visibility_seconds
            if (now - unknown[cid]).total_seconds() >= window:
                yield OrderUpdate.trusted(
                    client_order_id=cid,
                    status=OrderStatus.REJECTED,
                    ts=now,
                    reason="never reached the broker: the broker has no such order"
                    + (f" {window:g} s after the send" if window else ""),
                    broker_order_id=None,
                )
        elif report.status is not OrderStatus.UNKNOWN:
            yield OrderUpdate.trusted(
                client_order_id=cid,
                status=report.status,
                ts=now,
                reason="settled by asking the broker",
                broker_order_id=report.broker_order_id,
            )
