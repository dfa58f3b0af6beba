"""``tradepipe sweep``: what it tries, that it gives what the same replays give one by one,
that a failure loses nothing, that it resumes, and that walk-forward never peeks."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tradepipe.bar_csv import write_csv
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.errors import ConfigError
from tradepipe.market import Bar
from tradepipe.plugins.feeds.synthetic import SyntheticFeed
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.plugins.research.grid import (
    Period,
    combinations,
    parse_param,
    parse_period,
    parse_walk_forward,
    walk_forward_windows,
)
from tradepipe.plugins.research.store import SweepStore
from tradepipe.plugins.research.sweep import SerialRunner, Sweep, score, task_key
from tradepipe.plugins.research.task import TaskResult, TaskSpec

SETTINGS = """
[default.run]
broker = "paper"
feed = "synthetic"
strategies = ["sma_cross"]
risk_filters = ["min_confidence", "max_position_value"]
sinks = ["sql"]
[default.sizing]
method = "fixed_quantity"
quantity = 10
[default.risk.min_confidence]
threshold = 50
[default.risk.max_position_value]
limit = 50000
[default.strategies.sma_cross]
fast = 5
slow = 20
[default.feeds.synthetic]
symbols = ["AAPL", "MSFT"]
bars = 250
interval = "1d"
seed = 3
[default.sinks.sql]
path = "ledger.db"
[default.logging]
file = false
"""


# -- what a sweep tries ---------------------------------------------------------------------


def test_params_ranges_lists_and_their_combinations() -> None:
    assert parse_param("strategies.sma_cross.fast=5:20:5") == (
        "strategies.sma_cross.fast",
        [5, 10, 15, 20],
    )
    _, values = parse_param("sizing.risk_fraction=0.01:0.03:0.01")
    assert [str(v) for v in values] == ["0.01", "0.02", "0.03"]
    assert parse_param("risk.min_confidence.threshold=50,60")[1] == [50, 60]
    grid = combinations([("a.b.c", [1, 2]), ("a.b.d", ["x", "y", "z"])])
    assert grid[:4] == [
        {"a.b.c": 1, "a.b.d": "x"},
        {"a.b.c": 1, "a.b.d": "y"},
        {"a.b.c": 1, "a.b.d": "z"},
        {"a.b.c": 2, "a.b.d": "x"},
    ]
    sample = combinations([("a.b.c", list(range(10))), ("a.b.d", list(range(10)))], 5, seed=1)
    assert len(sample) == 5 and len({json.dumps(s) for s in sample}) == 5
    assert sample == combinations(
        [("a.b.c", list(range(10))), ("a.b.d", list(range(10)))], 5, seed=1
    )
    assert all(
        s in combinations([("a.b.c", list(range(10))), ("a.b.d", list(range(10)))]) for s in sample
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("run.broker=paper,x", "a sweep varies"),
        ("strategies.sma_cross.fast", "write KEY=START:STOP:STEP"),
        ("strategies.sma_cross.fast=5:1:1", "STOP at least START"),
        ("strategies.sma_cross.fast=1:5", "a range is START:STOP:STEP"),
        ("strategies.sma_cross.fast=5,5", "given twice"),
    ],
)
def test_a_bad_param_is_a_clear_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_param(text)


def test_walk_forward_windows_follow_each_other() -> None:
    spans = parse_walk_forward("train=1y,test=6m")
    assert spans == {"train": "1y", "test": "6m", "step": "6m"}
    windows = walk_forward_windows(dt.date(2022, 1, 3), dt.date(2024, 1, 31), spans)
    assert [(w.train.start, w.train.end, w.test.end) for w in windows] == [
        (dt.date(2022, 1, 3), dt.date(2023, 1, 3), dt.date(2023, 7, 3)),
        (dt.date(2022, 7, 3), dt.date(2023, 7, 3), dt.date(2024, 1, 3)),
    ]
    # Each test period starts where its training ends: it never overlaps it.
    assert all(w.test.start == w.train.end for w in windows)
    with pytest.raises(ConfigError, match="too short for one window"):
        walk_forward_windows(dt.date(2022, 1, 3), dt.date(2022, 6, 1), spans)
    with pytest.raises(ConfigError, match="no span"):
        parse_walk_forward("train=2q,test=6m")
    assert parse_period("2022-01-01:") == Period(dt.date(2022, 1, 1), None)


# -- against replays run one by one -----------------------------------------------------------


def tp(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)


@pytest.mark.slow
def test_a_sweep_gives_what_the_same_replays_give_one_by_one(workdir: Path) -> None:
    (workdir / "settings.toml").write_text(SETTINGS)
    swept = tp(
        "sweep", "--param", "strategies.sma_cross.fast=3,5", "--param",
        "strategies.sma_cross.slow=15,25", "--workers", "2", "--json",
    )  # fmt: skip
    assert swept.exit_code == 0, swept.output
    document = json.loads(swept.stdout)
    assert (document["status"], document["combinations"], document["ran"]) == ("completed", 4, 4)
    by_params = {
        (r["params"]["strategies.sma_cross.fast"], r["params"]["strategies.sma_cross.slow"]): r[
            "metrics"
        ]
        for r in document["top"]
    }
    for fast, slow in by_params:
        text = SETTINGS.replace("fast = 5", f"fast = {fast}").replace("slow = 20", f"slow = {slow}")
        (workdir / "settings.toml").write_text(text.replace("ledger.db", f"one-{fast}-{slow}.db"))
        assert tp("run-pipeline", "--no-progress").exit_code == 0
        alone = json.loads(tp("report", "--json").stdout)
        swept_metrics = by_params[(fast, slow)]
        for key in ("total_return", "sharpe", "max_drawdown", "trades", "fills", "commissions"):
            assert swept_metrics[key] == alone[key], (fast, slow, key)


# -- failures, interruptions ---------------------------------------------------------------------


class Interrupting(SerialRunner):
    """Runs tasks in this process, and is interrupted (Ctrl-C) after ``after`` results."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.submitted: list[TaskSpec] = []

    def submit(self, spec: TaskSpec) -> None:
        self.submitted.append(spec)
        super().submit(spec)

    def results(self) -> Iterator[TaskResult]:
        for n, result in enumerate(super().results(), 1):
            yield result
            if n == self.after:
                raise KeyboardInterrupt


def _sweep(workdir: Path, combos: list[dict[str, Any]]) -> tuple[Sweep, SweepStore]:
    from tradepipe.plugins.research.sweep import plain_settings

    (workdir / "settings.toml").write_text(SETTINGS)
    app = AppContext(settings_path="settings.toml")
    engine = open_engine(f"sqlite:///{workdir / 'ledger.db'}")
    job = Sweep(settings=plain_settings(app.settings), combos=combos, metric="sharpe")
    return job, SweepStore(engine, "sw-test", "ledger.db")


@pytest.mark.slow
def test_an_interrupted_sweep_keeps_its_results_and_runs_only_the_rest(workdir: Path) -> None:
    combos = [{"strategies.sma_cross.fast": f} for f in (3, 4, 5, 6)]
    job, store = _sweep(workdir, combos)
    first = Interrupting(after=2)
    with pytest.raises(KeyboardInterrupt):
        job.run(store, first, {"spec": 1})
    assert store.sweep().status == "interrupted"
    assert len(store.results()) == 2
    again = Interrupting(after=99)
    outcome = job.run(store, again, {"spec": 1})
    assert len(again.submitted) == 2  # only what was missing
    assert store.sweep().status == "completed"
    assert sorted(r.params["strategies.sma_cross.fast"] for r in outcome.results) == [3, 4, 5, 6]


@pytest.mark.slow
def test_a_failed_replay_is_reported_with_its_parameters_and_the_rest_stand(
    workdir: Path,
) -> None:
    combos = [{"strategies.sma_cross.fast": f} for f in (3, 0, 5)]  # fast = 0 is refused
    job, store = _sweep(workdir, combos)
    outcome = job.run(store, SerialRunner(), {"spec": 2})
    [failed] = outcome.failed()
    assert failed.params == {"strategies.sma_cross.fast": 0}
    assert "fast" in failed.error and "greater than or equal to 1" in failed.error
    assert [r.params["strategies.sma_cross.fast"] for r in outcome.ranked()] != []
    assert len(outcome.ranked()) == 2 and outcome.status == "completed"
    # Run again: the failure is tried again (and fails again), the others are not.
    again = Interrupting(after=99)
    job.run(store, again, {"spec": 2})
    assert [s.params for s in again.submitted] == [{"strategies.sma_cross.fast": 0}]


# -- walk-forward never peeks ---------------------------------------------------------------------


def _bars(seed: int, days: int) -> list[Bar]:
    feed = SyntheticFeed(
        SyntheticFeed.Settings(symbols=["AAPL"], bars=days, interval="1d", seed=seed)
    )
    feed.load()
    return list(feed.bars())


def _walk_forward(workdir: Path, bars: list[Bar], name: str) -> Any:
    from tradepipe.plugins.research.summary import sweep_document
    from tradepipe.plugins.research.sweep import plain_settings, windows_for

    write_csv(workdir / f"{name}.csv", bars)
    text = SETTINGS.replace('feed = "synthetic"', 'feed = "csv"') + (
        f'[default.feeds.csv]\npaths = ["{name}.csv"]\n'
    )
    (workdir / "settings.toml").write_text(text)
    app = AppContext(settings_path="settings.toml")
    spans = parse_walk_forward("train=6m,test=3m")
    job = Sweep(
        settings=plain_settings(app.settings),
        combos=[{"strategies.sma_cross.fast": f} for f in (2, 4, 8)],
        metric="total_return",
        windows=windows_for(app.settings, app.host, spans),
    )
    engine = open_engine(f"sqlite:///{workdir / (name + '.db')}")
    outcome = job.run(SweepStore(engine, f"sw-{name}", name), SerialRunner(), {"name": name})
    engine.dispose()
    return outcome, sweep_document(outcome)


@pytest.mark.slow
def test_walk_forward_chooses_from_the_training_window_alone(workdir: Path) -> None:
    from tradepipe.plugins.research.task import _BARS

    bars = _bars(seed=5, days=500)
    outcome, doc = _walk_forward(workdir, bars, "a")
    windows = doc["walk_forward"]["windows"]
    assert len(windows) >= 3
    for window, found in zip(outcome.windows, windows, strict=True):
        trained = [r for r in outcome.results if r.kind == "train" and r.window == window.number]
        best = max(trained, key=lambda r: score(r.metrics, "total_return"))
        assert found["chosen"] == best.params
        test = [r for r in outcome.results if r.kind == "test" and r.window == window.number]
        assert [r.key for r in test] == [task_key("test", window.number, best.params, window.test)]
        # A training replay ends before its test window; the test replay trades inside it.
        assert window.train.end is not None and window.test.start is not None
        assert all(day < window.train.end.isoformat() for r in trained for day, _ in r.equity)
        assert all(day >= window.test.start.isoformat() for r in test for day, _ in r.equity)
    # Change every bar from the first test window on: the first window's choice,
    # made before it, must not move.
    cut = dt.datetime.combine(outcome.windows[0].test.start, dt.time(), tzinfo=dt.UTC)
    changed = [
        b if b.ts < cut else b._replace(close=b.close * 1.3, high=b.high * 1.3) for b in bars
    ]
    _BARS.clear()
    _, doc_b = _walk_forward(workdir, changed, "b")
    assert doc_b["walk_forward"]["windows"][0]["chosen"] == windows[0]["chosen"]
    assert doc_b["walk_forward"]["windows"][0]["in_sample"] == windows[0]["in_sample"]


# -- where the replays run when tradepipe decides ---------------------------------------------


class FakeCluster:
    """Stands in for a DaskRunner: runs what it is given, and says so."""

    workers = 2

    def __init__(self) -> None:
        self.given: list[str] = []
        self.closed = False

    def submit(self, spec: TaskSpec) -> None:
        self.given.append(spec.key)

    def results(self) -> Iterator[TaskResult]:
        while self.given:
            key = self.given.pop(0)
            yield TaskResult(key, {}, None, None, seconds=0.0)

    def running(self) -> int:
        return len(self.given)

    def close(self) -> None:
        self.closed = True


def _auto(
    monkeypatch: pytest.MonkeyPatch, seconds: list[float], tasks: int
) -> tuple[Any, list[str], list[str], list[FakeCluster]]:
    from tradepipe.plugins.research import sweep

    times = iter(seconds)
    here: list[str] = []

    def run_here(spec: TaskSpec) -> TaskResult:
        here.append(spec.key)
        return TaskResult(spec.key, {}, None, None, seconds=next(times, seconds[-1]))

    monkeypatch.setattr(sweep, "run_task", run_here)
    said: list[str] = []
    started: list[FakeCluster] = []

    def start() -> FakeCluster:
        started.append(FakeCluster())
        return started[-1]

    runner = sweep.AutoRunner(2, start, said.append)
    for n in range(tasks):
        runner.submit(TaskSpec(f"t{n}", {}, {}))
    return runner, here, said, started


def test_short_replays_stay_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # 98 replays of 27 ms save 1.3 s on two workers; a cluster costs 1 s + the 0.4 s cold one.
    runner, here, said, started = _auto(monkeypatch, [0.4, 0.027], 100)
    keys = [r.key for r in runner.results()]
    assert keys == [f"t{n}" for n in range(100)] and len(here) == 100
    assert started == [] and runner.workers == 1
    assert said == [
        "replays take about 27 ms here: the 98 queued run in this process, sooner than a "
        "local cluster would start and warm up (--workers N starts one anyway)"
    ]


def test_long_replays_go_to_a_local_cluster_and_so_does_what_comes_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 98 replays of 0.5 s save 24.5 s: the cluster pays.
    runner, here, said, started = _auto(monkeypatch, [1.0, 0.5], 100)
    results = runner.results()
    first = [next(results).key for _ in range(2)]
    assert first == ["t0", "t1"] and here == ["t0", "t1"]
    [cluster] = started
    assert cluster.given[:1] == ["t2"] and len(cluster.given) == 98
    runner.submit(TaskSpec("test-window", {}, {}))  # a walk-forward's test, submitted later
    rest = [r.key for r in results]
    assert len(rest) == 99 and rest[-1] == "test-window" and here == ["t0", "t1"]
    assert said == [
        "replays take about 500 ms here: starting a local Dask cluster of 2 workers "
        "for the 98 queued"
    ]
    runner.close()
    assert cluster.closed


def test_one_core_or_one_replay_never_starts_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradepipe.plugins.research import sweep

    runner, _here, said, started = _auto(monkeypatch, [5.0], 1)
    assert [r.key for r in runner.results()] == ["t0"] and started == [] and said == []
    monkeypatch.setattr(
        sweep, "run_task", lambda spec: TaskResult(spec.key, {}, None, None, seconds=9.0)
    )
    single = sweep.AutoRunner(1, lambda: pytest.fail("no cluster on one core"))
    for n in range(50):
        single.submit(TaskSpec(f"t{n}", {}, {}))
    assert len(list(single.results())) == 50


# -- refused before anything runs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        # A component the pipeline does not run: the value would change nothing.
        (["--param", "strategies.nope.fast=5,10"], "--param strategies.nope.fast: the pipeline"),
        (["--param", "risk.nope.limit=1,2"], "--param risk.nope.limit: the pipeline"),
        # Spans of nothing would never end (or choose on no data).
        (
            ["--param", "strategies.sma_cross.fast=3,5", "--walk-forward", "train=1y,test=0m"],
            "test=0m: a span must be longer than nothing",
        ),
        (
            ["--param", "strategies.sma_cross.fast=3,5", "--walk-forward", "train=0y,test=6m"],
            "train=0y: a span must be longer than nothing",
        ),
        (
            ["--param", "strategies.sma_cross.fast=3,5", "--scheduler", "tcp://127.0.0.1:9",
             "--workers", "2"],
            "--workers sizes a local cluster",
        ),
        (["--param", "sizing.risk_fractionx=0.01,0.02"], "--param: [sizing] risk_fractionx = 0.01"),
    ],
)  # fmt: skip
def test_a_sweep_that_could_not_mean_anything_is_refused(
    workdir: Path, args: list[str], problem: str
) -> None:
    (workdir / "settings.toml").write_text(SETTINGS)
    refused = tp("sweep", "--no-progress", *args)
    assert refused.exit_code == 2, refused.output
    assert problem in refused.output
    assert list(workdir.glob("*.db")) == []  # refused before the ledger was opened


@pytest.mark.slow
def test_fresh_runs_every_replay_again(workdir: Path) -> None:
    (workdir / "settings.toml").write_text(SETTINGS)
    args = ["sweep", "--param", "strategies.sma_cross.fast=3,5", "--workers", "1", "--json"]
    first = json.loads(tp(*args).stdout)
    again = tp(*args[:-1], "--no-progress")
    assert "(2 in the ledger from an earlier run: not run again)" in again.output
    fresh = tp(*args[:-1], "--no-progress", "--fresh")
    assert "in the ledger from an earlier run" not in fresh.output
    assert json.loads(tp(*args).stdout)["top"] == first["top"]
