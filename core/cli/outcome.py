"""Printing what became of one decision: shared by ``tradepipe order`` and ``execute``."""

from __future__ import annotations

from typing import Any, NoReturn

import click
from rich.markup import escape
from tradepipe.cli.output import Id, as_id, console, print_json, table
from tradepipe.decisions import RejectedDecision
from tradepipe.direct import Outcome
from tradepipe.instruments import Combo, Option
from tradepipe.logs import redact_accounts


def report(outcome: Outcome, run_id: str | None, as_json: bool) -> None:
    """Print ``outcome`` (a table, or JSON); exit 1 if no order went through.

    :param run_id: the ledger run that recorded it (``None`` for a dry run).
    """
    if as_json:
        data = outcome.as_dict()
        data["run_id"] = run_id
        print_json(data)
    else:
        show(outcome, run_id)
    if outcome.waiting is not None:
        return  # accepted: it waits for a person
    if outcome.order is None or outcome.order.status.value in ("denied", "rejected"):
        raise SystemExit(1)


def report_rejected(
    item: RejectedDecision, run_id: str | None, as_json: bool, what: str = "decision"
) -> NoReturn:
    """Print why ``item`` became no order (JSON, or one line on stderr); exit 1.

    :param run_id: the ledger run that recorded the rejection (``None``: not recorded).
    :param what: what was rejected, for the line (``decision``, ``options order``).
    """
    if as_json:
        print_json({"rejected": {"error": item.error, "raw": item.raw}, "run_id": run_id})
    else:
        where = f"; recorded in ledger run {run_id}" if run_id else ""
        click.echo(f"{what} rejected: {item.error}{where}", err=True)
    raise SystemExit(1)


def show(outcome: Outcome, run_id: str | None) -> None:
    """Every risk verdict, then the order (and the broker's preview, if asked)."""
    out = console()
    rows: list[tuple[Any, ...]] = [
        (v.seq or "-", v.filter, v.outcome.value, v.quantity_before, v.quantity_after, v.reason)
        for v in outcome.verdicts
    ]
    if rows:
        out.print(
            table(
                "Risk verdicts",
                ["#", "filter", "verdict", "qty before", "qty after", "reason"],
                rows,
            )
        )
    order = outcome.order
    waiting = outcome.waiting
    if waiting is not None and waiting.kind == "decision":
        out.print(
            escape(  # the reason names a settings table: "[approval] sources"
                f"No order yet: it waits for a person as approval {waiting.approval_id} "
                f"({waiting.reason}) until {waiting.expires_at:%Y-%m-%d %H:%M} UTC. "
                f"`tradepipe approve {waiting.approval_id}` sends it (judged again then), "
                f"`tradepipe reject {waiting.approval_id} --reason …` drops it."
            )
        )
        return
    if order is None:
        out.print("No order: the decision was refused before any filter (see above).")
        return
    intent = order.intent
    lines = [
        ("client order id", Id(order.client_order_id)),
        # A dry run writes nothing: `tradepipe explain` would not find the id.
        ("recorded", None if run_id else "no (dry run: nothing written to the ledger)"),
        (
            "order",
            f"{intent.side.value} {intent.quantity} {intent.symbol} {intent.order_type.value}"
            f" {intent.tif.value}",
        ),
        ("instrument", _describe(intent.instrument)),
        (
            "status",
            order.status.value
            if outcome.sent or order.status.value == "denied"
            else "not sent (dry run)",
        ),
        ("broker order id", as_id(order.broker_order_id)),
        ("reason", redact_accounts(order.reason) if order.reason else None),
        (
            "filled",
            f"{order.filled_quantity}"
            + (f" @ {order.avg_fill_price}" if order.avg_fill_price is not None else ""),
        ),
        ("ledger run", as_id(run_id)),
    ]
    out.print(table("Order", ["", ""], [r for r in lines if r[1] not in (None, "")]))
    if waiting is not None:
        out.print(
            f"The broker's question waits for a person as approval {waiting.approval_id} "
            f"until {waiting.expires_at:%Y-%m-%d %H:%M} UTC. `tradepipe approve "
            f"{waiting.approval_id}` sends the order again with it confirmed (judged again "
            f"then), `tradepipe reject {waiting.approval_id} --reason …` drops it."
        )
    if outcome.preview is not None:
        out.print(table("What-if (broker preview)", ["", ""], _flatten(outcome.preview)))


def _describe(instrument: Any) -> str | None:
    if isinstance(instrument, Option):
        return instrument.symbol
    if isinstance(instrument, Combo):
        return ", ".join(
            f"{'buy' if leg.ratio > 0 else 'sell'} {abs(leg.ratio)} {leg.instrument.symbol}"
            for leg in instrument.legs
        )
    return None


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        elif value is not None:
            rows.append((name, redact_accounts(str(value))))
    return rows
