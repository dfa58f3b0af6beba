"""Sweep benchmark: the demo pipeline's replays in one process, then on a local Dask cluster.

    python tests/benchmarks/sweep.py [--tasks 32] [--workers 2] [--rounds 3]

The workload is the repository's ``settings.toml`` (the synthetic feed: 3
symbols, 750 daily bars; SMA cross; the default risk filters; the paper
simulator) with ``strategies.sma_cross.fast`` set to 3, 4, … (``--tasks``
values), one replay each, as ``tradepipe sweep`` sends them: a
:class:`~tradepipe.plugins.research.task.TaskSpec` of the settings without
secrets, sinks or log file. A fast average must be shorter than the slow one:
where the file's ``slow`` (30) is not longer than the largest ``fast``, ``slow``
is set one above it for every task (35 for 32 tasks).

* **Serial**: :func:`~tradepipe.plugins.research.task.run_task` called
  ``--tasks`` times in this process, first. The first call is cold, as a fresh
  worker's first task is: it imports what a replay needs, loads the plugins
  and reads the feed. ``serial_seconds`` counts it; ``serial_cold_seconds`` is
  that first call, ``serial_warm_task_ms`` the mean of the others.
* **Dask**: a :class:`~tradepipe.plugins.research.sweep.DaskRunner` with a
  LocalCluster of ``--workers`` processes (one thread each) on 127.0.0.1.
  ``cluster_start_seconds`` is making the runner (the scheduler up, the workers
  started and registered, the client connected); ``dask_seconds`` is from the
  first submit to the last result, every worker starting cold (its own imports,
  plugins and bars, as in a real sweep); ``dask_task_ms`` is the mean time a
  task took on its worker (``TaskResult.seconds``). ``cluster_stop_seconds`` is
  closing the runner. A sweep's user waits for start, run and stop.
* **Warm rounds**: with ``--rounds N`` the same replays go to the same cluster
  N-1 more times (new task keys); ``dask_warm_seconds`` is the fastest of those
  rounds, every worker warm: a long sweep's steady state.

``speedup`` is ``serial_seconds / dask_seconds``: both include their cold
starts, neither the cluster's start or stop. ``per_task_overhead_ms`` is what a
task costs the cluster in worker time beyond its serial cost:
``dask_seconds × workers / tasks − serial_seconds / tasks``. It counts the cold
starts of the workers beyond the one the serial run pays, Dask's scheduling and
transfers, CPU taken by the scheduler and the client (they share the machine's
cores with the workers) and a worker left idle at the end. ``speedup_warm`` and
``per_task_overhead_warm_ms`` are the same figures from the warm rounds against
the serial run's warm tasks. ``identical`` says every Dask result's metrics and
equity equal the serial run's; ``load_average`` is the machine's 1-minute load
when the benchmark started (other processes' work shows in every figure).

Prints one JSON line; exits 1 if a replay failed or a result differed. Nothing
is written to the current directory: the run happens in a temporary directory
(Dask's scratch space too), removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask
from tradepipe.plugins.research.sweep import DaskRunner, complete, plain_settings
from tradepipe.plugins.research.task import TaskResult, TaskSpec, run_task
from tradepipe.settings import load_settings

SETTINGS = Path(__file__).resolve().parents[2] / "settings.toml"
KEY = "strategies.sma_cross.fast"


def specs(settings: dict[str, Any], tasks: int, round_: int = 0) -> list[TaskSpec]:
    return [
        TaskSpec(f"bench:{round_}:{KEY}={fast}", settings, {KEY: fast})
        for fast in range(3, 3 + tasks)
    ]


def serial(work: list[TaskSpec]) -> tuple[list[TaskResult], list[float]]:
    results, times = [], []
    for spec in work:
        t0 = time.perf_counter()
        results.append(complete(run_task(spec)))  # as a sweep does: metrics here
        times.append(time.perf_counter() - t0)
    return results, times


def on_dask(runner: DaskRunner, work: list[TaskSpec]) -> tuple[list[TaskResult], float]:
    t0 = time.perf_counter()
    for spec in work:
        runner.submit(spec)
    results = [complete(r) for r in runner.results()]
    return results, time.perf_counter() - t0


def same(a: list[TaskResult], b: list[TaskResult]) -> bool:
    """The same replays' metrics and equity, whatever the order and the round."""

    def by_params(results: list[TaskResult]) -> dict[Any, Any]:
        return {r.params[KEY]: (r.error, r.metrics, r.equity) for r in results}

    return by_params(a) == by_params(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="Dask rounds (the first cold)")
    parser.add_argument(
        "--bars", type=int, default=0, help="Bars per symbol of the synthetic feed (0: the file's)"
    )
    args = parser.parse_args(argv)
    if args.tasks < 2 or args.workers < 1 or args.rounds < 1:
        parser.error("--tasks is at least 2, --workers and --rounds at least 1")
    for name in [n for n in os.environ if n.startswith("TRADEPIPE_")]:
        del os.environ[name]  # the benchmark's settings are the file's alone

    plain = plain_settings(load_settings(SETTINGS))
    sma = plain["strategies"]["sma_cross"]
    sma["slow"] = max(sma["slow"], 3 + args.tasks)
    if args.bars:
        plain["feeds"]["synthetic"]["bars"] = args.bars
    home = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="tradepipe-bench-") as tmp:
        os.chdir(tmp)
        try:
            with dask.config.set({"temporary-directory": tmp}):
                out = measure(plain, args.tasks, args.workers, args.rounds)
        finally:
            os.chdir(home)
    print(json.dumps(out))
    return 0 if out["identical"] and not out["failed"] else 1


def measure(plain: dict[str, Any], tasks: int, workers: int, rounds: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    expected, times = serial(specs(plain, tasks))
    serial_seconds = sum(times)
    warm_ms = sum(times[1:]) / (tasks - 1) * 1000

    t0 = time.perf_counter()
    runner = DaskRunner("", workers)
    cluster_start = time.perf_counter() - t0
    try:
        running = runner.workers
        got, dask_seconds = on_dask(runner, specs(plain, tasks))
        identical = same(expected, got)
        warm_rounds = []
        for number in range(1, rounds):
            again, seconds = on_dask(runner, specs(plain, tasks, number))
            identical = identical and same(expected, again)
            warm_rounds.append(seconds)
    finally:
        t0 = time.perf_counter()
        runner.close()
        cluster_stop = time.perf_counter() - t0

    out: dict[str, Any] = {
        "benchmark": "sweep",
        "tasks": tasks,
        "workers": running,
        "bars": expected[0].bars,
        "serial_seconds": round(serial_seconds, 3),
        "serial_cold_seconds": round(times[0], 3),
        "serial_warm_task_ms": round(warm_ms, 1),
        "cluster_start_seconds": round(cluster_start, 3),
        "dask_seconds": round(dask_seconds, 3),
        "speedup": round(serial_seconds / dask_seconds, 2),
        "per_task_overhead_ms": round((dask_seconds * running - serial_seconds) / tasks * 1000, 1),
        "dask_task_ms": round(sum(r.seconds for r in got) / tasks * 1000, 1),
        "cluster_stop_seconds": round(cluster_stop, 3),
        "failed": sum(1 for r in [*expected, *got] if r.error),
        "identical": identical,
        "load_average": round(load, 2),
    }
    if warm_rounds:
        warm = min(warm_rounds)
        out["dask_warm_seconds"] = round(warm, 3)
        out["speedup_warm"] = round(warm_ms / 1000 * tasks / warm, 2)
        out["per_task_overhead_warm_ms"] = round(warm * running / tasks * 1000 - warm_ms, 1)
    return out


if __name__ == "__main__":
    sys.exit(main())
