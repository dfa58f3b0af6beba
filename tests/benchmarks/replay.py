"""Replay benchmark: the full pipeline over one symbol's bars, ledger on.

    python tests/benchmarks/replay.py --workload sma|churn [--data BARS.csv] [--bars N]

Workloads (market orders decided on bar t fill at the open of bar t+1; no
commission, no slippage):

* ``sma``   — SMA(10)/SMA(30) crossover on closes: long 100 shares when the fast
  average crosses above the slow one, flat when it crosses below (long only).
* ``churn`` — every bar alternately buy 100 / sell 100.

Every stage runs as in a live run: the strategy, sizing, the four default risk
filters, the paper simulator, and the SQL ledger (a temporary SQLite file), with
every decision, verdict, order event and fill written. Logging is set up as
``tradepipe run-pipeline`` sets it up with the default settings (a log file at
``INFO``, in the temporary folder). ``--data`` takes a CSV
with ``timestamp,open,high,low,close,volume`` (ISO-8601 UTC bar start times, one
symbol); without it bars are generated (1-minute random walk, fixed seed).

``--without ledger`` leaves the SQL ledger out (no sink: the summary is the
simulator's account) and ``--without filters`` the four risk filters (the
guards stay), to see what each costs.

Prints one JSON line. ``seconds`` times the run only, from connecting the broker
to the last ledger commit and the summary read back from it; ``load_seconds``
times reading or generating the bars; ``peak_rss_mb`` is the peak memory of the
process and its writer process together.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradepipe import Action, Bar, Decision, Strategy, StrategyContext, hookimpl
from tradepipe.clock import ManualClock
from tradepipe.host import load_host
from tradepipe.logs import setup_logging
from tradepipe.pipeline import build_pipeline, run_pipeline
from tradepipe.settings import validate_settings

SYMBOL = "BENCH"
HUNDRED = Decimal(100)


class Churn(Strategy):
    """Buy 100 on even bars, sell 100 on odd bars."""

    name = "churn"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._n = 0

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision:
        action = Action.BUY if self._n % 2 == 0 else Action.SELL
        self._n += 1
        return self.trusted_decision(
            ctx, symbol=bar.symbol, action=action, confidence=100.0, quantity=HUNDRED
        )


class BenchPlugin:
    __name__ = "benchmark"

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(Churn)


class TreeMemory:
    """The peak resident memory of this process and its children together (the
    ledger's writer process), sampled every 20 ms from /proc by a watcher process
    of its own (a thread here would take the interpreter's lock from the run): what
    the machine must have. A child's own ``ru_maxrss`` counts the parent's pages it
    was forked with, so the two peaks cannot simply be added. A child that has not
    yet replaced itself with its program (between ``fork`` and ``exec``; its command
    line is still the parent's) is left out: it shows the parent's pages as its own,
    and a sample in that moment counted the whole run twice (a peak of 250 MB in one
    `sma` run of three where the others peaked at 195)."""

    WATCH = """
import os, sys, select
pid = int(sys.argv[1])
def rss(p):
    try:
        with open(f"/proc/{p}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
def children(p):
    try:
        with open(f"/proc/{p}/task/{p}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []
def command(p):
    try:
        with open(f"/proc/{p}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
run = command(pid)
def own(c):
    return c != os.getpid() and command(c) != run
peak = 0
while not select.select([sys.stdin], [], [], 0.02)[0]:
    peak = max(peak, rss(pid) + sum(rss(c) for c in children(pid) if own(c)))
print(peak / 2**20)
"""

    def __init__(self) -> None:
        self._watcher = subprocess.Popen(
            [sys.executable, "-c", self.WATCH, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> float:
        out, _ = self._watcher.communicate("stop\n", timeout=10)
        return float(out.strip() or 0)


def settings_for(
    workload: str, data: str | None, bars: int, ledger: Path, without: Collection[str] = ()
) -> Any:
    feed = "csv" if data else "synthetic"
    feeds = (
        {"csv": {"paths": [data], "symbol": SYMBOL}}
        if data
        else {"synthetic": {"symbols": [SYMBOL], "bars": bars, "interval": "1m", "seed": 1}}
    )
    run: dict[str, Any] = {
        "broker": "paper",
        "feed": feed,
        "strategies": ["sma_cross" if workload == "sma" else "churn"],
        "sinks": [] if "ledger" in without else ["sql"],
        "batch_size": 20_000,
    }
    if "filters" in without:
        run["risk_filters"] = []
    return validate_settings(
        {
            "run": run,
            "strategies": {
                "sma_cross": {
                    "fast": 10,
                    "slow": 30,
                    "quantity": 100,
                    "confidence": 100,
                    "counter_trend_confidence": 100,
                }
            },
            "risk": {"max_position_value": {"limit": 1_000_000_000}},
            "sizing": {"max_position_value": 1_000_000_000},
            "brokers": {"paper": {"initial_cash": 1_000_000_000, "commission": "none"}},
            "feeds": feeds,
            "sinks": {"sql": {"path": str(ledger), "synchronous": "normal"}},
            # The command line's logging, the defaults included: a log file at INFO.
            "logging": {"dir": str(ledger.parent / "logs")},
        },
        source="benchmark",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["sma", "churn"], required=True)
    parser.add_argument("--data", help="CSV of bars (timestamp,open,high,low,close,volume)")
    parser.add_argument("--bars", type=int, help="bars to generate (default 1e6 sma, 1e5 churn)")
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="only read or generate the bars, as the run would, and stop (instructions.py "
        "takes this from a run's count)",
    )
    parser.add_argument(
        "--without",
        action="append",
        choices=["ledger", "filters"],
        default=[],
        help="leave a part out, to see what it costs (repeatable)",
    )
    args = parser.parse_args(argv)
    bars = args.bars or (1_000_000 if args.workload == "sma" else 100_000)

    sampler = TreeMemory()
    with tempfile.TemporaryDirectory(prefix="tradepipe-bench-") as tmp:
        ledger = Path(tmp) / "ledger.db"
        settings = settings_for(args.workload, args.data, bars, ledger, args.without)
        logs = settings.logging
        setup_logging(
            level=logs.level,
            console_level=logs.console_level,
            directory=logs.dir,
            keep_days=logs.keep_days,
        )
        host = load_host(settings.plugins, [BenchPlugin()])
        pipeline = build_pipeline(settings, host, clock=ManualClock())
        if args.load_only:
            t0 = time.perf_counter()
            pipeline.feed.load()
            loaded = {"bars": pipeline.feed.total(), "load_seconds": time.perf_counter() - t0}
            sampler.stop()
            print(json.dumps({"framework": "tradepipe", "workload": args.workload, **loaded}))
            return 0
        t0 = time.perf_counter()
        result, summary = run_pipeline(pipeline, progress=None)
        total = time.perf_counter() - t0
    load = pipeline.timings["load_seconds"]
    seconds = total - load
    realized = (
        summary["realized_pnl"]
        if "realized_pnl" in summary
        else pipeline.broker.account().realized_pnl
    )
    position = next((p["quantity"] for p in summary["positions"] if p["symbol"] == SYMBOL), "0")
    peak_mb = max(sampler.stop(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out = {
        "framework": "tradepipe",
        "workload": args.workload,
        **({"without": args.without} if args.without else {}),
        "bars": result.bars,
        "orders": summary["orders"]["total"],
        "fills": summary["fills"],
        "final_position": float(position),
        "realized_pnl": float(realized or 0),
        "seconds": round(seconds, 3),
        "load_seconds": round(load, 3),
        "bars_per_second": round(result.bars / seconds),
        "orders_per_second": round(summary["orders"]["total"] / seconds),
        "peak_rss_mb": round(peak_mb),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
