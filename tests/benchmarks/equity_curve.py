"""Equity-curve benchmark: the dashboard's ``/equity`` read on a ledger of many replays.

    python tests/benchmarks/equity_curve.py [--runs 100] [--days 2600] [--limit 500]

Fills a temporary SQLite ledger with ``--runs`` replays of one paper account,
each with a snapshot at every day's close for ``--days`` days over the same
dates (what ``[run] daily_snapshots`` writes: a 1,000,000-bar minute replay
spans about 2,600 trading days), then times :meth:`Ledger.equity_curve` with
and without a limit. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from tradepipe.plugins.ledger.db import open_engine
from tradepipe.plugins.ledger.queries import Ledger

START = dt.datetime(2015, 1, 2, 21, 0, tzinfo=dt.UTC)


def fill(path: Path, runs: int, days: int) -> None:
    columns = (
        "run_id, ts, account_id, currency, cash, equity, buying_power, "
        "gross_position_value, realized_pnl, unrealized_pnl"
    )
    with sqlite3.connect(path) as db:
        for run in range(runs):
            db.executemany(
                f"INSERT INTO account_snapshots ({columns}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        f"replay-{run:04d}",
                        (START + dt.timedelta(days=day)).isoformat(),
                        "PAPER",
                        "USD",
                        "100000",
                        str(100_000 + day),
                        "100000",
                        "0",
                        "0",
                        "0",
                    )
                    for day in range(days)
                ],
            )


def timed(ledger: Ledger, limit: int | None) -> tuple[float, int]:
    t0 = time.perf_counter()
    points = ledger.equity_curve(limit)
    return time.perf_counter() - t0, len(points)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--days", type=int, default=2600)
    parser.add_argument("--limit", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tradepipe-bench-") as tmp:
        path = Path(tmp) / "ledger.db"
        engine = open_engine(f"sqlite:///{path}", "normal")
        try:
            fill(path, args.runs, args.days)
            ledger = Ledger(engine, str(path))
            limited, limited_points = timed(ledger, args.limit)
            whole, whole_points = timed(ledger, None)
        finally:
            engine.dispose()
    print(
        json.dumps(
            {
                "benchmark": "equity_curve",
                "snapshots": args.runs * args.days,
                "limit": args.limit,
                "limited_seconds": round(limited, 3),
                "limited_points": limited_points,
                "whole_seconds": round(whole, 3),
                "whole_points": whole_points,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
