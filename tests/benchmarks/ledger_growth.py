"""Replays into one growing ledger: does each take as long as the first?

    python tests/benchmarks/ledger_growth.py [--runs 6] [--orders 50000] [--ledger PATH]

Runs the ``churn`` workload of ``replay.py`` (an order every bar, every record
written) ``--runs`` times into the same ledger file, as a user's replays
accumulate in ``tradepipe.db``, and prints one JSON line per replay: its
seconds (the run, its last commit and its summary), the CPU of the pipeline's
process and of the ledger's writer process, what the writer wrote to disk
(the kernel's count of 512-byte blocks; on Linux) and the ledger's size after
it, in MB and in bytes an order. Without ``--ledger`` the file is a temporary
one, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import replay
from tradepipe.clock import ManualClock
from tradepipe.host import load_host
from tradepipe.pipeline import build_pipeline, run_pipeline


def one(ledger: Path, orders: int, number: int) -> dict[str, object]:
    settings = replay.settings_for("churn", None, orders, ledger)
    host = load_host(settings.plugins, [replay.BenchPlugin()])
    pipeline = build_pipeline(settings, host, clock=ManualClock())
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result, summary = run_pipeline(pipeline, progress=None)
    seconds = time.perf_counter() - t0 - pipeline.timings["load_seconds"]
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the writer, waited for
    return {
        "replay": number,
        "orders": summary["orders"]["total"],
        "seconds": round(seconds, 2),
        "pipeline_cpu": round(me.ru_utime - me0.ru_utime + me.ru_stime - me0.ru_stime, 2),
        "writer_cpu": round(kids.ru_utime - kids0.ru_utime + kids.ru_stime - kids0.ru_stime, 2),
        "writer_blocks_out": kids.ru_oublock - kids0.ru_oublock,
        "ledger_mb": round(ledger.stat().st_size / 2**20),
        # The whole file over every order written to it so far.
        "bytes_per_order": round(ledger.stat().st_size / (orders * number)),
        "bars": result.bars,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--orders", type=int, default=50_000, help="orders (bars) per replay")
    parser.add_argument("--ledger", help="the ledger file (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tradepipe-growth-") as tmp:
        ledger = Path(args.ledger) if args.ledger else Path(tmp) / "ledger.db"
        for number in range(1, args.runs + 1):
            print(json.dumps(one(ledger, args.orders, number)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
