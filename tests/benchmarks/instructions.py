"""Instructions a replay's pipeline process executes per bar, counted by Valgrind.

    python tests/benchmarks/instructions.py --workload churn|sma [--small N] [--large N]
        [--python PATH]

Wall time on a shared machine moves by 10-20% from one run to the next, more
than most single changes to the hot path gain or lose. The number of machine
instructions does not move: this runs ``replay.py`` under Valgrind's callgrind
at two sizes (``--small`` and ``--large`` bars, side by side) and prints the
difference divided by the extra bars, which leaves out start-up, loading the
plugins and opening the ledger. Reading or generating the bars is counted the
same way (``replay.py --load-only`` at both sizes) and taken off, as
``replay.py`` leaves it out of its ``seconds``. Only the pipeline process is
counted; the ledger's writer process runs on the other core and is not.

To compare two commits, run it with each checkout's interpreter (``--python``,
e.g. a second worktree's virtual environment): the figures of one commit repeat
to within 0.3%. Under Valgrind a replay runs about 80 times slower: the
defaults (1,000 and 3,000 bars of churn) take about three minutes, two
replays at a time (both cores of a 2-core machine, with their ledger writers).
Needs ``valgrind`` (Debian: ``apt install valgrind``).

``instructions_per_order`` is the run's count divided by the orders the extra
bars made: on ``churn`` the same figure as per bar, on ``sma`` what a bar costs
on average over its orders.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPLAY = Path(__file__).with_name("replay.py")
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def count(python: str, workload: str, bars: int, *extra: str) -> tuple[int, dict[str, Any]]:
    """Instructions of one replay of ``bars`` bars, and what the replay printed."""
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict layouts every run
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--log-fd=2",  # its summary on stderr, whatever a ~/.valgrindrc says
            python,
            str(REPLAY),
            "--workload",
            workload,
            "--bars",
            str(bars),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    found = COLLECTED.search(done.stderr)
    if done.returncode or found is None:
        sys.exit(f"the replay under valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1)), json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Needs valgrind; takes minutes; prints one JSON line.",
    )
    parser.add_argument(
        "--workload", choices=["sma", "churn"], default="churn", help="default: %(default)s"
    )
    parser.add_argument(
        "--small", type=int, default=1_000, help="bars of the shorter replay (default: %(default)s)"
    )
    parser.add_argument(
        "--large", type=int, default=3_000, help="bars of the longer replay (default: %(default)s)"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter to measure, with the tradepipe to measure installed "
        "(default: this one)",
    )
    parser.add_argument(
        "--without",
        action="append",
        choices=["ledger", "filters"],
        default=[],
        help="leave a part of the pipeline out (replay.py --without; repeatable)",
    )
    args = parser.parse_args(argv)
    if args.large <= args.small:
        parser.error("--large must be more bars than --small")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt install valgrind)")
    without = [arg for part in args.without for arg in ("--without", part)]
    runs = [
        (args.small, *without),
        (args.large, *without),
        (args.small, "--load-only"),
        (args.large, "--load-only"),
    ]
    with ThreadPoolExecutor(2) as pool:
        (small, s_out), (large, l_out), (small_load, _), (large_load, _) = pool.map(
            lambda run: count(args.python, args.workload, *run), runs
        )
    extra = args.large - args.small
    orders = int(l_out["orders"]) - int(s_out["orders"])
    loading = large_load - small_load
    running = large - small - loading
    out = {
        "workload": args.workload,
        **({"without": args.without} if args.without else {}),
        "python": args.python,
        "bars": [args.small, args.large],
        "instructions": [small, large],
        "loading_per_bar": round(loading / extra),
        "instructions_per_bar": round(running / extra),
        "instructions_per_order": round(running / orders) if orders else None,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
