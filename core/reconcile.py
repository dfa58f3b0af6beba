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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tradepipe.adapter import Broker, OrderReport
from tradepipe.errors import InvalidOrderTransition
from tradepipe.orders import Fill, Order, OrderEvent, OrderStatus
from tradepipe.sink import Unsettled

log = logging.getLogger("tradepipe.events")


@dataclass
class Settlement:
    """What was learnt about one earlier order."""

    unsettled: Unsettled
    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    note: str = ""


def settle(
    broker: Broker,
    unsettled: Sequence[Unsettled],
    working: dict[str, OrderReport],
    now: datetime,
) -> list[Settlement]:
    """Ask ``broker`` about ``unsettled`` orders; return what to record for each.

    :param working: the broker's open orders by client order id (already read).
    :raises BrokerError: the broker could not be asked; nothing is assumed.
    """
    if not unsettled:
        return []
    since = min(u.intent.created_at for u in unsettled)
    executions: dict[str, list[Fill]] = {}
    for fill in broker.fills(since):
        executions.setdefault(fill.client_order_id, []).append(fill)
    out = []
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
        result = Settlement(u)
        for fill in sorted(executions.get(cid, []), key=lambda f: f.ts):
            if fill.execution_id in u.executions:
                continue
            fill = fill.model_copy(update={"decision_id": u.intent.decision_id})
            result.fills.append(fill)
            try:
                result.events.append(order.apply_fill(fill))
            except InvalidOrderTransition as exc:
                log.error("earlier order %s: fill %s not applied: %s", cid, fill.execution_id, exc)
        report = working.get(cid)
        if report is None and not order.status.is_terminal:
            report = broker.order(cid)
        if report is None:
            if not order.status.is_terminal:
                result.note = "the broker does not know this order; left as it was"
                log.warning("earlier order %s (run %s): %s", cid, u.run_id, result.note)
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
                    "settled at start-up from the broker's report",
                    report.broker_order_id,
                )
            )
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
