"""Run a sweep: many replays on Dask, each result recorded as it comes in.

A sweep is a grid (or a sample) of parameter combinations, run over one or
more periods; or a walk-forward test: on each window, every combination runs
over the training period, the best by the chosen metric is then traded over
the test period that follows, and the test periods are stitched into one
out-of-sample result. A test run is only submitted once its window's
training runs are all in, and only their results choose it: the test period
never takes part in choosing what is traded in it.

Replays run on a :class:`DaskRunner`: a local cluster of worker processes on
127.0.0.1, or an existing Dask scheduler by address. With the number of
workers left to tradepipe, an :class:`AutoRunner` runs the first replays in
this process and starts a local cluster (one worker per core) only when the
replays left would take long enough here for the cluster to pay for its start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, get_args

from tradepipe.errors import ConfigError
from tradepipe.plugins.research.grid import Params, Period, Window, walk_forward_windows
from tradepipe.plugins.research.metrics import YEAR_DAYS
from tradepipe.plugins.research.store import Stored, SweepStore
from tradepipe.plugins.research.task import TaskResult, TaskSpec, run_task
from tradepipe.settings import SweepSettings

log = logging.getLogger(__name__)

#: Metrics a sweep may choose by (``[sweep] metric``): higher is better for each
#: (a drawdown is negative).
METRICS: tuple[str, ...] = get_args(SweepSettings.model_fields["metric"].annotation)


def plain_settings(settings: Any) -> dict[str, Any]:
    """The settings as plain data for the workers, every secret left out (a replay
    needs none, and they would cross the network to a remote cluster)."""
    data: dict[str, Any] = settings.model_dump(mode="json", exclude={"secret_keys", "sources"})
    for dotted in settings.secret_keys:
        *path, leaf = dotted.split(".")
        table: Any = data
        for part in path:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict):
            table.pop(leaf, None)
    # Nothing a replay on a worker writes: no ledger, no status file, no log file,
    # and no paper account file: each replay starts from the same cash, in memory,
    # never from (or into) the account a person keeps.
    data["run"].update(sinks=[], status_file="", mode="replay")
    data["logging"].update(file=False)
    for table in data.get("brokers", {}).values():
        if isinstance(table, dict):
            table.pop("state_file", None)
    return data


def sweep_id(spec: dict[str, Any], settings: dict[str, Any]) -> str:
    """The same sweep of the same settings is the same sweep: its id is their hash."""
    text = json.dumps([spec, settings], sort_keys=True, default=str)
    return "sw-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def complete(result: TaskResult) -> TaskResult:
    """Add a replay's metrics to its result, from its equity and trade figures."""
    from tradepipe.plugins.research.metrics import TradeFigures, run_metrics

    if result.error or result.metrics or not result.trades:
        return result
    equity = [(dt.date.fromisoformat(day), value) for day, value in result.equity]
    invested = [(dt.date.fromisoformat(day), value) for day, value in result.invested]
    figures = TradeFigures(**result.trades)
    result.metrics = run_metrics(equity, figures, invested=invested).as_dict()
    return result


def task_key(kind: str, window: int, params: Params, period: Period) -> str:
    shown = ",".join(f"{k}={params[k]}" for k in sorted(params))
    return f"{kind}:{window}:{period.label()}:{shown}"


def score(metrics: dict[str, Any], metric: str) -> float:
    """The metric to rank by; a missing one ranks below every real value."""
    value = metrics.get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else -math.inf


class Runner(Protocol):
    """Runs tasks somewhere and hands back their results as they finish."""

    def submit(self, spec: TaskSpec) -> None: ...

    def results(self) -> Iterator[TaskResult]: ...

    def running(self) -> int: ...

    def close(self) -> None: ...


#: How long a scheduler given by address may take to have its first worker.
WORKER_WAIT_SECONDS = 10.0


class DaskRunner:
    """Tasks on Dask: a local cluster on 127.0.0.1 (``workers`` processes, default one
    per core), or the scheduler at ``address``."""

    def __init__(self, address: str = "", workers: int = 0, given_as: str = "") -> None:
        from dask.distributed import Client, LocalCluster, as_completed

        self._cluster: Any = None
        if address:
            named = given_as or "[sweep] scheduler"
            try:
                self.client = Client(address, timeout="10s")
            except OSError as exc:
                raise ConfigError(
                    f"no Dask scheduler answers at {address} ({named}): {exc}",
                    key="sweep.scheduler",
                ) from exc
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except TimeoutError:
                self.client.close()
                raise ConfigError(
                    f"the Dask scheduler at {address} ({named}) has no workers after "
                    f"{WORKER_WAIT_SECONDS:g} s: start some (`dask worker {address}`)",
                    key="sweep.scheduler",
                ) from None
            except ValueError as exc:
                raise ConfigError(
                    f"{named} {address!r} is no scheduler address (tcp://host:port): {exc}",
                    key="sweep.scheduler",
                ) from exc
        else:
            import dask

            # Everything on loopback, on ports the system picks: the scheduler's and
            # the workers' HTTP servers (health, metrics) too, not 8787 on every host.
            with dask.config.set({"distributed.worker.dashboard.address": "127.0.0.1:0"}):
                self._cluster = LocalCluster(  # closed again if the client cannot start
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                )
            try:
                self.client = Client(self._cluster)
            except BaseException:
                self._cluster.close()
                raise
        self._pending = as_completed()
        #: Dask's key → the future and its task.
        self._futures: dict[Any, tuple[Any, TaskSpec]] = {}

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def submit(self, spec: TaskSpec) -> None:
        # Dask takes one name for one task across its clients: the sweep is in it.
        name = f"{spec.group}/{spec.key}"
        key = "tradepipe-" + hashlib.blake2b(name.encode(), digest_size=10).hexdigest()
        future = self.client.submit(run_task, spec, key=key, pure=False, retries=0)
        self._futures[future.key] = (future, spec)
        self._pending.add(future)

    def results(self) -> Iterator[TaskResult]:
        for future in self._pending:
            _, spec = self._futures.pop(future.key)
            try:
                result: TaskResult = future.result()
            except Exception as exc:  # its worker was lost: the task failed
                result = TaskResult(
                    spec.key,
                    spec.params,
                    spec.start,
                    spec.end,
                    error=f"{type(exc).__name__}: {exc}",
                )
            yield result

    def running(self) -> int:
        processing = self.client.processing()
        return sum(len(tasks) for tasks in processing.values())

    def close(self) -> None:
        for future, _ in self._futures.values():
            future.cancel()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


class SerialRunner:
    """Tasks one after another in this process: ``--workers 1`` with no scheduler,
    where a cluster would only cost its start."""

    workers = 1

    def __init__(self) -> None:
        self._queue: list[TaskSpec] = []

    def submit(self, spec: TaskSpec) -> None:
        self._queue.append(spec)

    def results(self) -> Iterator[TaskResult]:
        while self._queue:
            yield run_task(self._queue.pop(0))

    def running(self) -> int:
        return 0

    def close(self) -> None:
        self._queue.clear()


#: What starting a local cluster costs before its first result, beyond a replay's cold
#: start in each worker (measured on 2 cores: the scheduler, two nannies and two
#: workers up and registered in about a second).
CLUSTER_START_SECONDS = 1.0


class AutoRunner:
    """This process until the replays show a local cluster of ``workers`` would pay.

    The first replay runs here cold (imports, plugins, bars: what each worker
    would pay once), the second warm. The cluster saves about ``(1 - 1/workers)``
    of the remaining replays' time and costs its start and a cold replay in
    every worker; it is started only when it saves twice what it costs (it also
    takes cores this process shares), else every replay runs here.

    :param start: makes the cluster (a :class:`DaskRunner`).
    :param say: told, once, where the rest runs and why.
    """

    def __init__(self, workers: int, start: Any, say: Any = None, *, trial: int = 2) -> None:
        self.cores = workers
        self._start = start
        self._say = say or (lambda text: None)
        self._trial = trial
        self._queue: list[TaskSpec] = []
        self._times: list[float] = []
        self._decided = workers <= 1
        self.cluster: DaskRunner | None = None

    @property
    def workers(self) -> int:
        return self.cluster.workers if self.cluster is not None else 1

    def submit(self, spec: TaskSpec) -> None:
        if self.cluster is not None:
            self.cluster.submit(spec)
        else:
            self._queue.append(spec)

    def results(self) -> Iterator[TaskResult]:
        while self._queue and self.cluster is None:
            result = run_task(self._queue.pop(0))
            self._times.append(result.seconds)
            if not self._decided and (len(self._times) >= self._trial or not self._queue):
                self._decide()
            yield result
        if self.cluster is not None:
            yield from self.cluster.results()

    def _decide(self) -> None:
        self._decided = True
        left = len(self._queue)
        cold, warm = self._times[0], self._times[-1]
        saves = left * warm * (1 - 1 / self.cores)
        costs = CLUSTER_START_SECONDS + cold
        if left and saves > 2 * costs:
            self._say(
                f"replays take about {warm * 1000:.0f} ms here: starting a local Dask "
                f"cluster of {self.cores} workers for the {left} queued"
            )
            self.cluster = self._start()
            for spec in self._queue:
                self.cluster.submit(spec)
            self._queue.clear()
        elif left:
            self._say(
                f"replays take about {warm * 1000:.0f} ms here: the {left} queued run in this "
                f"process, sooner than a local cluster would start and warm up "
                "(--workers N starts one anyway)"
            )

    def running(self) -> int:
        return self.cluster.running() if self.cluster is not None else 0

    def close(self) -> None:
        self._queue.clear()
        if self.cluster is not None:
            self.cluster.close()


class Progress(Protocol):
    def update(self, done: int, failed: int, running: int, total: int) -> None: ...


@dataclass
class SweepOutcome:
    sweep_id: str
    metric: str
    results: list[Stored]
    combinations: int
    windows: list[Window] = field(default_factory=list)
    status: str = "completed"

    def ranked(self, kind: str = "grid") -> list[Stored]:
        """Successful results of ``kind``, best first by the metric."""
        done = [r for r in self.results if r.kind == kind and not r.error]
        return sorted(done, key=lambda r: score(r.metrics, self.metric), reverse=True)

    def failed(self) -> list[Stored]:
        return [r for r in self.results if r.error]


def _stored(result: TaskResult, kind: str, window: int) -> Stored:
    return Stored(
        key=result.key,
        kind=kind,
        window=window,
        params=result.params,
        start=result.start,
        end=result.end,
        metrics=result.metrics,
        equity=result.equity,
        error=result.error,
        seconds=result.seconds,
    )


@dataclass
class Sweep:
    """What to run: ``combos`` over ``periods``, or walk-forward over ``windows``."""

    settings: dict[str, Any]
    combos: list[Params]
    metric: str
    periods: list[Period] = field(default_factory=lambda: [Period(None, None)])
    windows: list[Window] = field(default_factory=list)

    @property
    def total(self) -> int:
        if self.windows:
            return len(self.windows) * (len(self.combos) + 1)
        return len(self.combos) * len(self.periods)

    def run(
        self,
        store: SweepStore,
        runner: Runner,
        spec: dict[str, Any],
        progress: Progress | None = None,
    ) -> SweepOutcome:
        """Run what the store does not have yet; record each result as it arrives.

        A result that failed before is tried again. On Ctrl-C the sweep is
        marked ``interrupted`` (what came in is kept) and the interrupt goes on.
        """
        have = store.open(self.metric, spec, self.total)
        state = _State(self, runner, [r for r in have.values() if not r.error], store.sweep_id)
        state.submit_all()
        status = "interrupted"
        try:
            state.report(progress)
            for result in runner.results():
                state.take(store, result)
                state.report(progress)
            status = "completed"  # every task ran; the failures are listed
        finally:
            store.finish(status)
        return SweepOutcome(
            store.sweep_id,
            self.metric,
            state.results + state.failed,
            len(self.combos),
            self.windows,
            status,
        )


class _State:
    """A sweep while it runs: what was submitted, what came back."""

    def __init__(self, sweep: Sweep, runner: Runner, results: list[Stored], group: str) -> None:
        self.sweep = sweep
        self.group = group
        self.runner = runner
        self.results = results
        self.failed: list[Stored] = []
        self.done = {r.key for r in results}
        self.kinds: dict[str, tuple[str, int]] = {}
        self.tested = {r.window for r in results if r.kind == "test"}

    def submit(self, kind: str, window: int, params: Params, period: Period) -> None:
        key = task_key(kind, window, params, period)
        if key in self.done:
            return
        self.kinds[key] = (kind, window)
        start = period.start.isoformat() if period.start else ""
        end = period.end.isoformat() if period.end else ""
        self.runner.submit(TaskSpec(key, self.sweep.settings, params, start, end, self.group))

    def submit_all(self) -> None:
        sweep = self.sweep
        if not sweep.windows:
            for period in sweep.periods:
                for params in sweep.combos:
                    self.submit("grid", 0, params, period)
            return
        for window in sweep.windows:
            for params in sweep.combos:
                self.submit("train", window.number, params, window.train)
        for window in sweep.windows:
            self.test_when_trained(window)

    def test_when_trained(self, window: Window) -> None:
        """Submit ``window``'s test run once all its training runs are in: the best of
        them, by the metric, is what it trades."""
        number = window.number
        trained = [r for r in self.results if r.kind == "train" and r.window == number]
        lost = sum(1 for r in self.failed if r.kind == "train" and r.window == number)
        if number in self.tested or not trained or len(trained) + lost < len(self.sweep.combos):
            return
        best = max(trained, key=lambda r: score(r.metrics, self.sweep.metric))
        self.tested.add(number)
        self.submit("test", number, best.params, window.test)

    def take(self, store: SweepStore, result: TaskResult) -> None:
        complete(result)
        kind, window = self.kinds.get(result.key, ("grid", 0))
        store.add(result, kind, window)
        stored = _stored(result, kind, window)
        if result.error:
            self.failed.append(stored)
            log.info("sweep task %s failed: %s", result.key, result.error)
        else:
            self.results.append(stored)
        if kind == "train":
            self.test_when_trained(next(w for w in self.sweep.windows if w.number == window))

    def report(self, progress: Progress | None) -> None:
        if progress is not None:
            progress.update(
                len(self.results), len(self.failed), self.runner.running(), self.sweep.total
            )


def data_dates(settings: Any, host: Any, group: str = "") -> tuple[dt.date, dt.date]:
    """The first and last New York date of the feed's bars (read once, here)."""
    from tradepipe.clock import NEW_YORK
    from tradepipe.plugins.research.task import feed_key, load_bars

    # Kept under the sweep's key: a sweep run in this process reads the bars once.
    bars, _ = load_bars(settings, host, f"{group}/{feed_key(plain_settings(settings))}")
    if not bars:
        raise ConfigError(f"feed {settings.run.feed!r} has no bars to sweep over", key="run.feed")
    first = min(b.ts for b in bars).astimezone(NEW_YORK).date()
    last = max(b.ts for b in bars).astimezone(NEW_YORK).date()
    return first, last


def windows_for(settings: Any, host: Any, spans: dict[str, str], group: str = "") -> list[Window]:
    first, last = data_dates(settings, host, group)
    return walk_forward_windows(first, last, spans)


def stitched(tests: Sequence[Stored], start_equity: float) -> list[tuple[str, float]]:
    """The test periods' equity chained into one curve: each period's daily returns
    compounded from where the one before ended, starting at ``start_equity``."""
    curve: list[tuple[str, float]] = []
    level = start_equity
    for result in sorted(tests, key=lambda r: r.start):
        points = result.equity
        for (_, before), (day, after) in itertools.pairwise(points):
            level *= after / before if before else 1.0
            curve.append((day, level))
    return curve


def deflated_sharpe(returns: Sequence[float], trial_sharpes: Sequence[float]) -> float | None:
    """The probability that the best Sharpe ratio of ``len(trial_sharpes)`` trials is
    more than luck (Bailey and López de Prado's deflated Sharpe ratio).

    :param returns: the chosen run's daily returns.
    :param trial_sharpes: every trial's annualised Sharpe ratio.
    """
    from scipy import stats

    n = len(returns)
    trials = [s for s in trial_sharpes if math.isfinite(s)]
    if n < 3 or len(trials) < 2:
        return None
    mean = sum(returns) / n
    deviation = math.sqrt(sum((r - mean) ** 2 for r in returns) / (n - 1))
    if not deviation:
        return None
    sharpe = mean / deviation  # per day, as the formula wants
    skew = float(stats.skew(returns))
    kurtosis = float(stats.kurtosis(returns, fisher=False))
    per_day = [s / math.sqrt(YEAR_DAYS) for s in trials]
    average = sum(per_day) / len(per_day)
    spread = math.sqrt(sum((s - average) ** 2 for s in per_day) / (len(per_day) - 1))
    euler = 0.5772156649015329
    count = len(trials)
    expected_max = spread * (
        (1 - euler) * stats.norm.ppf(1 - 1 / count)
        + euler * stats.norm.ppf(1 - 1 / (count * math.e))
    )
    denominator = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if denominator <= 0:
        return None
    return float(
        stats.norm.cdf((sharpe - expected_max) * math.sqrt(n - 1) / math.sqrt(denominator))
    )


def returns_of(equity: Sequence[tuple[str, float]]) -> list[float]:
    values = [v for _, v in equity]
    return [after / before - 1 for before, after in itertools.pairwise(values) if before]
