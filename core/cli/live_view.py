"""The console view of a live run: feed, market, decisions, orders and P&L, redrawn in place."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from tradepipe.cli.output import Id, add_column, err_console
from tradepipe.services.status import halt_reason


class LiveView:
    """A rich ``Live`` display on stderr, redrawn from each status document."""

    def __init__(self) -> None:
        # Drawn when the status changes (every [run] status_seconds), not on a timer;
        # log messages meanwhile print above the panel (stderr is redirected).
        self._live = Live(
            Text("starting…"), console=err_console(), auto_refresh=False, redirect_stderr=True
        )
        self._started = False

    def __enter__(self) -> LiveView:
        self._live.start()
        self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._live.stop()
            self._started = False

    def __call__(self, status: dict[str, Any]) -> None:
        self._live.update(render(status), refresh=True)


def render(s: dict[str, Any]) -> Panel:
    """One status document as a panel."""
    feed = s.get("feed") or {}
    market = s.get("market") or {}
    counts = s.get("counts") or {}
    lag = feed.get("lag_seconds")
    link = "connected" if feed.get("connected") else "DISCONNECTED"
    if feed.get("stalled"):
        link = "STALLED"
    speed = (s.get("clock") or {}).get("speed", 1)
    lines = [
        f"broker {s.get('broker')} ({s.get('account')}, {'paper' if s.get('paper') else 'LIVE'})"
        f" · feed {feed.get('name')}: {link}, lag {_num(lag)} s, {feed.get('bars', 0)} bars,"
        f" {feed.get('gap_count', 0)} gaps" + (f" · clock at {speed:g}x" if speed != 1 else ""),
        f"market {market.get('calendar')}: {market.get('description')}",
        f"decisions {counts.get('decisions', 0)} · orders {counts.get('orders', 0)}"
        f" ({s.get('open_order_count', 0)} open, {counts.get('queued', 0)} queued)"
        f" · fills {counts.get('fills', 0)} · equity {s.get('equity', '?')}"
        f" · today {(s.get('pnl_today') or {}).get('pnl', '?')}",
    ]
    summary = Text("\n".join(lines))
    halt = s.get("halt") or {}
    if halt.get("halted"):
        summary.append("\nHALTED", style="bold red")
        summary.append(f": {halt_reason(halt)}")
    bars = Table(show_header=True, box=None, pad_edge=False)
    for column in ("symbol", "last bar", "close", "age s"):
        bars.add_column(column)
    for symbol, bar in (feed.get("last_bars") or {}).items():
        bars.add_row(
            escape(symbol),
            escape(str(bar.get("ts", ""))[11:19]),
            f"{bar.get('close', 0):.2f}",
            _num(bar.get("age_seconds")),
        )
    parts: list[Any] = [summary, bars]
    orders = (s.get("open_orders") or [])[-5:]
    if orders:
        table = Table(show_header=True, box=None, pad_edge=False, title="open orders")
        # Whole, never wrapped: the id is what `tradepipe explain` and `broker cancel` take.
        add_column(table, "order", [Id(o["client_order_id"]) for o in orders])
        for column in ("symbol", "side", "qty", "filled", "status"):
            table.add_column(column)
        for o in orders:
            table.add_row(
                escape(o["client_order_id"]),
                escape(o["symbol"]),
                escape(o["side"]),
                escape(o["quantity"]),
                escape(o["filled"]),
                escape(o["status"]),
            )
        parts.append(table)
    title = f"tradepipe live · run {s.get('run_id')} · {s.get('state')}"
    return Panel(
        Group(*parts),
        title=escape(title),
        subtitle="Ctrl-C stops (twice: at once)",
        title_align="left",
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"
