"""Start-up benchmark: ``tradepipe --help`` and ``tradepipe --version`` in fresh processes.

    python tests/benchmarks/startup.py [--runs 10] [--top 20] [--json]

Runs ``tradepipe --help`` and ``--version`` (the script beside this Python)
``--runs`` times each, after one run not counted, each in a new process in
the current directory (so with its ``settings.toml``), and prints the fastest
and the median wall time and the largest peak RSS (Linux's ``ru_maxrss``).
Then runs ``--help`` once more under ``-X importtime`` and prints the imports
that took longest, counting what each imported in turn, and which of the
libraries only a command's work needs were loaded. ``PYTHONDONTWRITEBYTECODE``
is dropped from the commands' environment: a user's Python caches compiled
modules, and without the cache every start compiles tradepipe again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tradepipe.cli.lazy import HEAVY

#: The commands' environment: as a user's, with compiled modules cached.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def command() -> list[str]:
    """The ``tradepipe`` script beside this Python, as a user runs it; else ``-m tradepipe``."""
    script = Path(sys.executable).with_name("tradepipe")
    return [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "tradepipe"]


def run_once(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (kB) of one ``tradepipe ARGS``."""
    argv = [*command(), *args]
    quiet = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    t0 = time.perf_counter()
    pid = os.posix_spawn(sys.executable, argv, ENV, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"tradepipe {' '.join(args)} failed")
    return elapsed, usage.ru_maxrss


def measure(args: list[str], runs: int) -> dict[str, Any]:
    run_once(args)
    samples = [run_once(args) for _ in range(runs)]
    times = [t for t, _ in samples]
    return {
        "command": " ".join(["tradepipe", *args]),
        "runs": runs,
        "min_seconds": round(min(times), 3),
        "median_seconds": round(statistics.median(times), 3),
        "peak_rss_mb": round(max(rss for _, rss in samples) / 1024, 1),
    }


def imports(args: list[str]) -> list[tuple[int, int, str]]:
    """``(cumulative µs, self µs, module)`` of every import, from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command()[1:], *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        if own.strip().isdigit():  # not the header
            found.append((int(cumulative), int(own), name.rstrip()))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=20, help="imports to list")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    results = [measure(["--help"], args.runs), measure(["--version"], args.runs)]
    found = imports(["--help"])
    loaded = {name.strip() for _, _, name in found}
    heavy = [lib for lib in HEAVY if lib in loaded]
    top = sorted(found, reverse=True)[: args.top]
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "startup",
                    "results": results,
                    "help_heavy_imports": heavy,
                    "help_top_imports": [
                        {"module": n.strip(), "cumulative_ms": round(c / 1000, 1)}
                        for c, _, n in top
                    ],
                }
            )
        )
        return 0
    for r in results:
        print(
            f"{r['command']:<20} min {r['min_seconds']:.3f} s  median {r['median_seconds']:.3f} s"
            f"  peak RSS {r['peak_rss_mb']:.0f} MB  ({r['runs']} runs)"
        )
    print(f"heavy libraries imported by --help: {', '.join(heavy) or 'none'}")
    print(f"\nslowest imports of tradepipe --help ({len(found)} modules; an indent is nesting):")
    print(f"{'cumulative':>12} {'self':>9}  module")
    for cumulative, own, name in top:
        print(f"{cumulative / 1000:>9.1f} ms {own / 1000:>6.1f} ms {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
