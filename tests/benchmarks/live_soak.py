"""Live soak: a simulated trading week of ``synthetic_live`` on the paper simulator, ledger on.

    python tests/benchmarks/live_soak.py [--days 5] [--speed 600] [--bar-size 5s] [--symbols 3]

A live run (``tradepipe.live.run.LiveRun``) on an accelerated clock that starts on
a Monday before the New York open, follows the XNYS calendar and leaps over
nights and the weekend, until the close of the last day: every bar through
the SMA-crossover strategy, sizing, the four default risk filters, the paper
simulator and the SQL ledger (a temporary SQLite file, its writer process),
the status file rewritten every second.

Prints one JSON line, then the same for people:

* ``bars_per_second``: bars handled per wall second of trading;
* ``feed_to_decision_ms``: p50/p99 wall time from the feed publishing a bar to
  the executor being done with it (decisions sized, judged, recorded, sent),
  for bars that led to a decision; ``bar_ms`` the same for every bar;
* ``order_update_ms``: p50/p99 wall time from an order being submitted to its
  fill being recorded (the simulator fills a market order at the open of the
  first bar that starts after it was placed, so this is about two bars of the
  run's clock; ``order_update_clock_s`` in the run's seconds);
* ``rss_mb``: the process's resident memory after the first trading hour and
  at the end of the week, and the growth between them (targets: p99
  feed-to-decision under 50 ms; growth under 10%).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tradepipe import hookimpl
from tradepipe.clock import ScaledClock
from tradepipe.host import load_host
from tradepipe.live.run import LiveRun
from tradepipe.pipeline import build_pipeline
from tradepipe.settings import validate_settings

#: Monday 2 March 2026, 09:20 New York: ten minutes before the week's first open.
MONDAY = dt.datetime(2026, 3, 2, 14, 20, tzinfo=dt.UTC)
SYMBOLS = ["AAPL", "MSFT", "SPY", "QQQ", "IWM", "NVDA", "AMZN", "GOOG"]


def rss_mb() -> float:
    """The resident memory of this process now (not its peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class OrderTimes:
    """Observes order events: when each order was submitted and when it filled."""

    __name__ = "soak-orders"

    def __init__(self) -> None:
        self.submitted: dict[str, tuple[float, dt.datetime]] = {}
        self.wall: list[float] = []
        self.clock: list[float] = []

    @hookimpl
    def tradepipe_order_event(self, order: Any, event: Any) -> None:
        name = event.name
        if name == "OrderSubmitted":
            self.submitted[order.client_order_id] = (time.monotonic(), event.ts)
        elif name == "OrderFilled":
            sent = self.submitted.pop(order.client_order_id, None)
            if sent is not None:
                self.wall.append(time.monotonic() - sent[0])
                self.clock.append((event.ts - sent[1]).total_seconds())


def settings_for(args: argparse.Namespace, tmp: Path) -> Any:
    return validate_settings(
        {
            "run": {
                "mode": "live",
                "broker": "paper",
                "feed": "synthetic_live",
                "calendar": "XNYS",
                "strategies": ["sma_cross"],
                "sinks": ["sql"],
                "status_file": str(tmp / "status.json"),
                "status_seconds": 1,
                "batch_size": 5000,
            },
            "feeds": {
                "synthetic_live": {
                    "symbols": SYMBOLS[: args.symbols],
                    "bar_size": args.bar_size,
                    "quote_seconds": 0,
                    "warmup_bars": 60,
                }
            },
            "strategies": {
                "sma_cross": {
                    "fast": 10,
                    "slow": 30,
                    "quantity": 10,
                    "confidence": 90,
                    "counter_trend_confidence": 90,
                }
            },
            "risk": {"max_position_value": {"limit": 1_000_000}},
            "sizing": {"max_position_value": 1_000_000},
            "brokers": {"paper": {"initial_cash": 10_000_000}},
            "sinks": {"sql": {"path": str(tmp / "ledger.db")}},
            "logging": {"level": "WARNING", "file": False},
        },
        source="live soak",
    )


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float] | None:
    if len(values) < 2:
        return None
    cuts = statistics.quantiles(values, n=100)
    return {"p50": round(cuts[49] * scale, 2), "p99": round(cuts[98] * scale, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=5, help="trading days (default 5)")
    parser.add_argument("--speed", type=float, default=600, help="run seconds per wall second")
    parser.add_argument("--bar-size", default="5s", help="bar length (default 5s)")
    parser.add_argument("--symbols", type=int, default=3, choices=range(1, len(SYMBOLS) + 1))
    args = parser.parse_args(argv)
    # Gaps (the feed thread woke a bar late on a busy machine) are counted, not printed.
    logging.getLogger("tradepipe").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="tradepipe-soak-") as name:
        tmp = Path(name)
        settings = settings_for(args, tmp)
        orders = OrderTimes()
        host = load_host(settings.plugins, [orders])
        clock = ScaledClock(MONDAY, args.speed)
        pipeline = build_pipeline(settings, host, clock=clock)
        schedule_end = None
        memory: dict[str, float] = {}

        runner: LiveRun

        def sample(_status: dict[str, Any]) -> None:
            now = clock.now()
            if "start" not in memory and now >= MONDAY + dt.timedelta(hours=1, minutes=10):
                memory["start"] = rss_mb()  # after the first trading hour
            memory["end"] = rss_mb()

        runner = LiveRun(pipeline, skip_closed=True, view=sample)
        sessions = runner.schedule.calendar.sessions(  # type: ignore[union-attr]
            MONDAY.date(), MONDAY.date() + dt.timedelta(days=14)
        )[: args.days]
        schedule_end = sessions[-1].close

        trading = {"wall": 0.0}

        def stop_after_the_week() -> None:
            last = time.monotonic()
            while clock.now() < schedule_end:
                time.sleep(0.02)
                now = time.monotonic()
                if runner.market is not None and runner.market.open:
                    trading["wall"] += now - last
                last = now
            runner.request_stop("the week is over")

        watcher = threading.Thread(target=stop_after_the_week, daemon=True)
        started = time.monotonic()
        cpu = time.process_time()
        watcher.start()
        result, summary = runner.run()
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu
        watcher.join()
        feed = runner.feed.state()

    stats = runner.stats
    out = {
        "benchmark": "live_soak",
        "days": args.days,
        "speed": args.speed,
        "bar_size": args.bar_size,
        "symbols": args.symbols,
        "bars": stats.bars,
        "decisions": result.decisions,
        "orders": result.orders,
        "fills": result.fills,
        "gaps": feed.gap_count,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "cpu_us_per_bar": round(cpu / stats.bars * 1e6) if stats.bars else None,
        "trading_wall_seconds": round(trading["wall"], 1),
        "bars_per_second": round(stats.bars / trading["wall"]) if trading["wall"] else None,
        "feed_to_decision_ms": percentiles(list(stats.decision_latency)),
        "bar_ms": percentiles(list(stats.bar_latency)),
        "order_update_ms": percentiles(orders.wall),
        "order_update_clock_s": percentiles(orders.clock, scale=1.0),
        "rss_mb": {
            "start": round(memory.get("start", 0), 1),
            "end": round(memory.get("end", 0), 1),
            "growth_pct": round(100 * (memory["end"] / memory["start"] - 1), 1)
            if memory.get("start")
            else None,
            "peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
        "status": summary["status"],
    }
    print(json.dumps(out))
    d, b, o = out["feed_to_decision_ms"], out["bar_ms"], out["order_update_ms"]
    print(
        f"{out['bars']} bars in {out['trading_wall_seconds']} s of trading "
        f"({out['bars_per_second']} bars/s, {out['cpu_us_per_bar']} μs of CPU each, "
        f"{out['gaps']} gaps), {out['orders']} orders, {out['fills']} fills",
        file=sys.stderr,
    )
    print(f"feed to decision: {d} ms; every bar: {b} ms; order to fill: {o} ms", file=sys.stderr)
    print(f"memory: {out['rss_mb']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
