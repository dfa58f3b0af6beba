"""``tradepipe explain DECISION_OR_ORDER_ID``: why an order was (or was not) sent.

Reads the ledger of ``[sinks.sql]`` and prints, for every run that saw the id,
the chain decision → each risk verdict with its figures → order → status
changes → fills. An option's expiry, exercise or assignment is listed among the
fills of the order that opened the position (kind ``expired``, ``exercised``,
``assigned``), with the underlying's fill of an exercise or assignment, even
when a later run of the session recorded them.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, as_id, console, print_json, table
from tradepipe.errors import ConfigError
from tradepipe.plugins.ledger.cli import command_ledger
from tradepipe.plugins.ledger.history import fill_kind
from tradepipe.plugins.ledger.queries import NotInLedger


def _figures(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in figures.items())


def _print(chain: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]run {chain['run_id']}[/bold] (started {chain['started_at']})")
    decision = chain["decision"]
    if decision is None:
        out.print(f"decision {chain['decision_id']}: not recorded in this run")
    else:
        out.print(
            table(
                f"Decision {chain['decision_id']}",
                ["source", "created", "symbol", "action", "confidence", "quantity", "rationale"],
                [
                    (
                        decision["source"],
                        decision["created_at"],
                        decision["symbol"],
                        decision["action"],
                        decision["confidence"],
                        decision["quantity"],
                        decision["rationale"],
                    )
                ],
            )
        )
    out.print(
        table(
            "Risk verdicts",
            ["#", "filter", "outcome", "quantity", "reason", "figures"],
            [
                (
                    v["seq"],
                    v["filter"],
                    v["outcome"],
                    f"{v['quantity_before']} → {v['quantity_after']}",
                    v["reason"],
                    _figures(v["figures"]),
                )
                for v in chain["verdicts"]
            ],
        )
    )
    for approval in chain.get("approvals") or []:
        answered = (
            f", answered by {approval['decided_by']} at {approval['decided_at']}"
            if approval.get("decided_by")
            else ""
        )
        # Reasons name settings tables ("[approval] sources"): text, not markup.
        out.print(
            escape(
                f"approval {approval['approval_id']}: waited ({approval['reason']}) from "
                f"{approval['created_at']} until {approval['expires_at']}; {approval['status']}"
                f"{answered}" + (f" ({approval['note']})" if approval.get("note") else "")
            )
        )
    if not chain["orders"]:
        out.print("no order was made")
    for item in chain["orders"]:
        o = item["order"]
        out.print(
            f"order {o['client_order_id']}: {o['side']} {o['quantity']} {o['symbol']} "
            f"{o['order_type']} {o['tif']}"
            + (f" limit {o['limit_price']}" if o["limit_price"] else "")
            + (f" stop {o['stop_price']}" if o["stop_price"] else "")
        )
        out.print(
            table(
                "Status changes",
                ["#", "time", "from", "to", "reason", "broker id"],
                [
                    (
                        e["seq"],
                        e["ts"],
                        e["previous"],
                        e["status"],
                        e["reason"],
                        as_id(e["broker_order_id"]),
                    )
                    for e in item["events"]
                ],
            )
        )
        if item["fills"]:
            out.print(
                table(
                    "Fills",
                    [
                        "time",
                        "execution",
                        "kind",
                        "symbol",
                        "side",
                        "quantity",
                        "price",
                        "commission",
                    ],
                    [
                        (
                            f["ts"],
                            Id(f["execution_id"]),
                            fill_kind(f),
                            Id(f["symbol"]),
                            f["side"],
                            f["quantity"],
                            f["price"],
                            f["commission"],
                        )
                        for f in item["fills"]
                    ],
                )
            )


@click.command("explain")
@click.argument("key", metavar="DECISION_OR_ORDER_ID")
@click.option(
    "--run",
    "run_id",
    metavar="RUN_ID|latest",
    help=(
        "Only this run's record of the id (a replay run again records it again); "
        "latest: the newest run that recorded it."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def explain(app: AppContext, key: str, run_id: str | None, as_json: bool) -> None:
    """Show a decision's verdicts, order, status changes and fills, from the ledger.

    \b
    Examples:
      tradepipe explain ai-42
      tradepipe explain d-fcbd8f85c01ca5c86614 --run latest
      tradepipe explain tp-43f2593594d1b2c9e8a7f0 --json
    """
    try:
        chains = command_ledger(app).explained(key, run_id)
    except NotInLedger as exc:
        hint = " (`tradepipe ledger runs` lists them)" if exc.no_run else ""
        raise ConfigError(f"{exc}{hint}", key="explain") from exc
    if as_json:
        print_json(chains)
        return
    for chain in chains:
        _print(chain)
