"""tradepipe against backtrader, side by side, on the same bars.

    python tests/benchmarks/compare.py [--workload sma|churn|both] [--rounds 3] [--bars N]

Writes the replay benchmark's generated bars (one symbol, 1-minute random walk,
seed 1: 1,000,000 for ``sma``, 100,000 for ``churn``) to a CSV once, then runs
``replay.py --data`` and ``backtrader_workloads.py --data`` on it in turns
(tradepipe, backtrader, tradepipe, …: the machine's mood falls on both alike),
each in a process of its own. Prints one JSON line per workload: each side's
best and median throughput, the ratio of the medians, peak memory, and whether
the trades agree (fills, final position and realized P&L equal: the two are
independent implementations of the same rules, each the other's oracle).

Needs backtrader: ``pip install -e ".[bench]"``. Exits 1 when the trades differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tradepipe.bar_csv import write_csv
from tradepipe.plugins.feeds.synthetic import SyntheticFeed

HERE = Path(__file__).resolve().parent
BARS = {"sma": 1_000_000, "churn": 100_000}
#: What each side's throughput is counted in.
RATE = {"sma": "bars_per_second", "churn": "orders_per_second"}


def bars_file(folder: Path, count: int) -> Path:
    feed = SyntheticFeed(
        SyntheticFeed.Settings(symbols=["BENCH"], bars=count, interval="1m", seed=1)
    )
    feed.load()
    path = folder / f"bars-{count}.csv"
    write_csv(path, feed.bars())
    return path


def run(script: str, workload: str, data: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / script), "--workload", workload, "--data", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{script} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(workload: str, rounds: int, count: int, folder: Path) -> dict[str, Any]:
    data = bars_file(folder, count)
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for _ in range(rounds):
        ours.append(run("replay.py", workload, data))
        theirs.append(run("backtrader_workloads.py", workload, data))
    rate = RATE[workload]
    keys = ("fills", "final_position", "realized_pnl")
    agree = all(
        (o[k] == t[k] if k != "realized_pnl" else abs(o[k] - t[k]) < 0.005)
        for o, t in zip(ours, theirs, strict=True)
        for k in keys
    )
    mine = [r[rate] for r in ours]
    other = [r[rate] for r in theirs]
    return {
        "workload": workload,
        "bars": count,
        "rounds": rounds,
        "measure": rate,
        "tradepipe": {"median": statistics.median(mine), "best": max(mine), "runs": mine},
        "backtrader": {"median": statistics.median(other), "best": max(other), "runs": other},
        "ratio": round(statistics.median(mine) / statistics.median(other), 2),
        "tradepipe_peak_mb": max(r["peak_rss_mb"] for r in ours),
        "backtrader_peak_mb": max(r["peak_rss_mb"] for r in theirs),
        "trades_agree": agree,
        "trades": {k: ours[0][k] for k in ("orders", *keys)},
        "backtrader_trades": {k: theirs[0][k] for k in ("orders", *keys)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["sma", "churn", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bars", type=int, help="bars (default 1e6 sma, 1e5 churn)")
    args = parser.parse_args(argv)
    workloads = ["sma", "churn"] if args.workload == "both" else [args.workload]
    ok = True
    with tempfile.TemporaryDirectory(prefix="tradepipe-compare-") as tmp:
        for workload in workloads:
            found = compare(workload, args.rounds, args.bars or BARS[workload], Path(tmp))
            ok = ok and found["trades_agree"]
            print(json.dumps(found), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
