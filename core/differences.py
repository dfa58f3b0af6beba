"""The ledger against the broker, difference by difference: what ``tradepipe reconcile`` shows.

Read only: it compares what the records hold with what the broker reports now
(orders the ledger left open and what became of them, orders working at the
broker that the ledger does not know, executions the ledger lacks, positions)
and says what each difference means. Adopting the broker's word is
``reconcile --fix``'s, in the ledger plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradepipe.adapter import Broker
from tradepipe.orders import Fill
from tradepipe.portfolio import Position
from tradepipe.reconcile import Settlement, settle
from tradepipe.sink import Unsettled


@dataclass
class Difference:
    """One way the records and the broker disagree, and what it means."""

    kind: str
    subject: str
    ledger: str | None
    broker: str | None
    meaning: str
    action: str = "noted"


@dataclass
class Comparison:
    """Everything :func:`compare` found, and what ``--fix`` would record."""

    differences: list[Difference] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)
    stray_fills: list[Fill] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)


def compare(
    broker: Broker,
    *,
    unsettled: Sequence[Unsettled],
    known_orders: set[str],
    recorded_executions: set[str],
    ledger_positions: dict[str, Decimal] | None,
    since: datetime,
    now: datetime,
) -> Comparison:
    """Compare the ledger's view with the broker's: orders, executions, positions.

    Reads only; every broker failure raises (a timeout is never "nothing").
    """
    out = Comparison()
    reports = broker.open_orders()
    working = {r.client_order_id: r for r in reports if r.client_order_id}
    for report in reports:
        if report.client_order_id not in known_orders:
            out.differences.append(
                Difference(
                    "unknown_order",
                    report.client_order_id or f"broker order {report.broker_order_id}",
                    None,
                    f"{report.status.value} {report.side} {report.quantity} {report.symbol}",
                    "working at the broker but not in the ledger: placed by another tool, "
                    "or its record was lost",
                )
            )
    for u in unsettled:
        broker.track(u.intent, u.broker_order_id)  # before the executions are read
    oldest = min([since, *(u.intent.created_at for u in unsettled)])
    fills = broker.fills(oldest)  # one read of the executions serves both uses below
    for result in settle(broker, unsettled, working, now, when="by reconcile", fills=fills):
        u = result.unsettled
        cid = u.intent.client_order_id
        if result.events or result.fills:
            out.settlements.append(result)
            final = result.events[-1].status.value if result.events else u.status.value
            out.differences.append(
                Difference(
                    "order_end",
                    cid,
                    u.status.value,
                    f"{final}, {len(result.fills)} new fill(s)",
                    f"the ledger missed how this order of run {u.run_id} went on "
                    "(the run stopped before the broker reported it)",
                )
            )
        elif result.note:
            out.differences.append(
                Difference("order_unknown_to_broker", cid, u.status.value, None, result.note)
            )
    settled = {f.execution_id for r in out.settlements for f in r.fills}
    for fill in fills:
        if fill.ts < since:
            continue
        if fill.execution_id in recorded_executions or fill.execution_id in settled:
            continue
        out.stray_fills.append(fill)
        out.differences.append(
            Difference(
                "unrecorded_fill",
                fill.execution_id,
                None,
                f"{fill.side} {fill.quantity} {fill.symbol} @ {fill.price}",
                "an execution the ledger does not have: a trade made elsewhere, or lost",
            )
        )
    positions = broker.positions()
    if ledger_positions is not None:
        out.differences += _position_differences(positions, ledger_positions)
    if any(d.kind == "position" for d in out.differences) or ledger_positions is None:
        out.positions = positions
    return out


def _position_differences(
    positions: Sequence[Position], ledger_positions: dict[str, Decimal]
) -> list[Difference]:
    """One difference per symbol whose quantity the ledger's last snapshot has otherwise."""
    held = {p.symbol: p.quantity for p in positions if p.quantity}
    out = []
    for symbol in sorted(set(held) | set(ledger_positions)):
        ours, theirs = ledger_positions.get(symbol), held.get(symbol)
        if ours != theirs:
            out.append(
                Difference(
                    "position",
                    symbol,
                    None if ours is None else str(ours),
                    None if theirs is None else str(theirs),
                    "the ledger's last snapshot and the broker's position differ",
                )
            )
    return out
