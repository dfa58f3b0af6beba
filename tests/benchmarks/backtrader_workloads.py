"""The replay benchmark's workloads in backtrader, for the side-by-side comparison.

    python tests/benchmarks/backtrader_workloads.py --workload sma|churn --data BARS.csv

The same rules as ``replay.py``: ``sma`` is an SMA(10)/SMA(30) long-only crossover
of 100 shares, ``churn`` buys and sells 100 shares on alternate bars; a market order
decided on one bar fills at the next bar's open (backtrader's default), without
commission or slippage. ``seconds`` times ``cerebro.run()`` from bars already in
memory (reading the CSV is ``load_seconds``). Prints one JSON line with the trades'
figures, which ``compare.py`` checks against tradepipe's.

Needs backtrader (``pip install -e ".[bench]"``); ``compare.py`` runs it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import resource
import sys
import time
from typing import Any

import backtrader as bt

SHARES = 100


class Bars(bt.feeds.DataBase):
    """Bars from a list held in memory (the CSV read before the clock starts)."""

    def __init__(self, rows: list[tuple[dt.datetime, float, float, float, float, float]]) -> None:
        super().__init__()
        self._rows = rows
        self._i = 0

    def _load(self) -> bool:
        if self._i >= len(self._rows):
            return False
        ts, o, h, low, c, v = self._rows[self._i]
        self._i += 1
        line = self.lines
        line.datetime[0] = bt.date2num(ts)
        line.open[0], line.high[0], line.low[0], line.close[0] = o, h, low, c
        line.volume[0] = v
        line.openinterest[0] = 0.0
        return True


class Trades(bt.Strategy):
    """Counts fills and sums the realized P&L of closed trades."""

    def __init__(self) -> None:
        self.fills = 0
        self.orders = 0
        self.realized = 0.0

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            self.fills += 1

    def notify_trade(self, trade: Any) -> None:
        if trade.isclosed:
            self.realized += trade.pnl


class SmaCross(Trades):
    """tradepipe's documented rule, on backtrader's own averages: a cross above is
    fast <= slow on the bar before and fast > slow now (averages within a billionth
    of the slow one count as equal); it buys when flat, the mirror image sells."""

    def __init__(self) -> None:
        super().__init__()
        self.fast = bt.indicators.SMA(self.data.close, period=10)
        self.slow = bt.indicators.SMA(self.data.close, period=30)
        self.previous: float | None = None

    def next(self) -> None:
        slow = self.slow[0]
        diff = self.fast[0] - slow
        if abs(diff) < 1e-9 * abs(slow):
            diff = 0.0
        previous, self.previous = self.previous, diff
        if previous is None:
            return
        if previous <= 0 < diff and not self.position:
            self.orders += 1
            self.buy(size=SHARES)
        elif previous >= 0 > diff and self.position:
            self.orders += 1
            self.sell(size=self.position.size)


class Churn(Trades):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def next(self) -> None:
        self.orders += 1
        if self.n % 2 == 0:
            self.buy(size=SHARES)
        else:
            self.sell(size=SHARES)
        self.n += 1


def read(path: str) -> list[tuple[dt.datetime, float, float, float, float, float]]:
    with open(path, newline="") as f:
        return [
            (
                dt.datetime.fromisoformat(r["timestamp"]).replace(tzinfo=None),
                float(r["open"]),
                float(r["high"]),
                float(r["low"]),
                float(r["close"]),
                float(r["volume"]),
            )
            for r in csv.DictReader(f)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["sma", "churn"], required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = read(args.data)
    load = time.perf_counter() - t0
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(1_000_000_000.0)
    cerebro.adddata(Bars(rows))
    cerebro.addstrategy(SmaCross if args.workload == "sma" else Churn)
    t0 = time.perf_counter()
    [strategy] = cerebro.run()
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "framework": "backtrader",
                "workload": args.workload,
                "bars": len(rows),
                "orders": strategy.orders,
                "fills": strategy.fills,
                "final_position": float(strategy.position.size),
                "realized_pnl": round(strategy.realized, 2),
                "seconds": round(seconds, 3),
                "load_seconds": round(load, 3),
                "bars_per_second": round(len(rows) / seconds),
                "orders_per_second": round(strategy.orders / seconds),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
