"""``tradepipe status``: is a live run up, and what is it doing."""

from __future__ import annotations

from typing import Any

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, as_id, console, print_json, table
from tradepipe.services.status import halt_reason, read_status, status_path


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Whether a live run is up, and its market, feed, orders and P&L (from its status file).

    Exit code 0 while a live run is up and writing; 1 when none is (never
    started, ended, killed, or stuck).
    """
    found = read_status(status_path(app.settings))
    if as_json:
        print_json(found)
    else:
        show(found)
    if not found["running"]:
        raise SystemExit(1)


def show(s: dict[str, Any]) -> None:
    out = console()
    out.print(s["summary"], markup=False, highlight=False)
    if s["liveness"] == "none":
        return
    feed = s.get("feed") or {}
    market = s.get("market") or {}
    counts = s.get("counts") or {}
    pnl = s.get("pnl_today") or {}
    halt = s.get("halt") or {}
    link = "connected" if feed.get("connected") else "not connected"
    if feed.get("stalled"):
        link = "stalled"
    rows = [
        ("run", as_id(s.get("run_id"))),
        ("state", f"{s.get('state')}, env {s.get('env')}, mode {s.get('mode')}"),
        ("session", s.get("session")),
        (
            "broker",
            f"{s.get('broker')}, account {s.get('account')}"
            + (", paper" if s.get("paper") else ", LIVE" if s.get("paper") is False else ""),
        ),
        (
            "feed",
            f"{feed.get('name')}: {link} ({feed.get('message')}), "
            f"lag {_secs(feed.get('lag_seconds'))}, {feed.get('bars', 0)} bars, "
            f"{feed.get('gap_count', 0)} gaps",
        ),
        ("market", f"{market.get('calendar')}: {market.get('description')}"),
        *(
            [("waiting", f"for the broker's session: {s['waiting_for']}")]
            if s.get("waiting_for")
            else []
        ),
        (
            "activity",
            f"{counts.get('bars', 0)} bars, {counts.get('decisions', 0)} decisions, "
            f"{counts.get('orders', 0)} orders ({s.get('open_order_count', 0)} open, "
            f"{counts.get('queued', 0)} queued), {counts.get('fills', 0)} fills",
        ),
        ("equity", f"{s.get('equity')} (cash {s.get('cash')})"),
        ("today's P&L", f"{pnl.get('pnl')} since {pnl.get('start_equity')} on {pnl.get('day')}"),
        ("halted", _halted(halt)),
        ("updated", f"{s.get('updated_at')} ({_secs(s.get('age_seconds'))} ago)"),
        ("status file", s.get("status_file")),
    ]
    out.print(table("Live run", ["", ""], rows))
    bars = feed.get("last_bars") or {}
    if bars:
        out.print(
            table(
                "Last bar per symbol",
                ["symbol", "bar start", "close", "age"],
                [
                    (sym, b.get("ts"), b.get("close"), _secs(b.get("age_seconds")))
                    for sym, b in bars.items()
                ],
            )
        )
    orders = s.get("open_orders") or []
    if orders:
        out.print(
            table(
                "Open orders",
                ["client order id", "symbol", "side", "quantity", "filled", "type", "status"],
                [
                    (
                        Id(o["client_order_id"]),
                        o["symbol"],
                        o["side"],
                        o["quantity"],
                        o["filled"],
                        o["order_type"],
                        o["status"],
                    )
                    for o in orders
                ],
            )
        )
    gaps = feed.get("gaps") or []
    if gaps:
        out.print(
            table(
                "Feed gaps",
                ["symbol", "from", "to", "why"],
                [(g["symbol"], g["start"], g["end"], g["reason"]) for g in gaps],
            )
        )


def _halted(halt: dict[str, Any]) -> str:
    if not halt:
        return "unknown"
    if halt.get("problem"):
        return f"yes: {halt_reason(halt)}"
    if not halt.get("halted"):
        return "no"
    return f"yes, {halt_reason(halt, since=True)}"


def _secs(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} s"
