"""One replay of a sweep, as a Dask worker (or the calling process) runs it.

:func:`run_task` takes a :class:`TaskSpec`, everything the replay needs as
plain data (the settings without their secrets, the parameters to set, the
period), and returns a :class:`TaskResult`: the metrics and the daily equity,
or the error. It never raises: a failed replay is a result that says why.

The feed's bars are read once per worker process and kept (:data:`_BARS`,
keyed by the feed's settings), so a worker running many tasks over the same
data reads it once. They are kept as columns (:class:`~tradepipe.market.BarColumns`,
about 50 bytes a bar against about 350 as a list of bars), and each task reads
its period and the history before it in place. Each task records into memory
(:class:`SeriesSink`): what its metrics need, the day-close snapshots and the
fills, nothing on disk.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tradepipe import AccountSummary, Position
from tradepipe.feed import Feed
from tradepipe.market import Bar, BarColumns
from tradepipe.orders import Fill
from tradepipe.sink import Sink

#: (Sweep, feed key) → the feed's bars, in this process (one worker's cache): the
#: latest few sweeps' only.
_BARS: dict[str, BarColumns] = {}
_KEEP = 2
#: ``[plugins]`` settings → the plugin host of this process, loaded once for them.
_HOSTS: dict[str, Any] = {}


@dataclass(frozen=True)
class TaskSpec:
    """A replay to run: ``settings`` (a plain dict, secrets left out) with ``params``
    set (dotted keys), over ``start``–``end`` (ISO dates; empty: open)."""

    key: str
    settings: dict[str, Any]
    params: dict[str, Any]
    start: str = ""
    end: str = ""
    #: The sweep it belongs to: a worker reads the bars again for each sweep (a
    #: long-lived cluster never serves an earlier sweep's data).
    group: str = ""


@dataclass
class TaskResult:
    key: str
    params: dict[str, Any]
    start: str
    end: str
    #: Filled in by the process that collects results (:func:`~tradepipe.plugins.
    #: research.sweep.complete`), where pandas is loaded once, not in every worker.
    metrics: dict[str, Any] = field(default_factory=dict)
    #: (ISO date, equity) and (ISO date, position value) at each day's close.
    equity: list[tuple[str, float]] = field(default_factory=list)
    invested: list[tuple[str, float]] = field(default_factory=list)
    #: :class:`~tradepipe.plugins.research.metrics.TradeFigures` as a dict.
    trades: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    #: How many bars the replay read, and whether this worker read the feed for it.
    bars: int = 0
    loaded: bool = False


def feed_key(settings: dict[str, Any]) -> str:
    """What identifies a feed's data: its name and its settings table."""
    name = settings.get("run", {}).get("feed", "")
    table = settings.get("feeds", {}).get(name, {})
    text = json.dumps([name, table], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def with_params(settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with each dotted key of ``params`` set (tables made as needed)."""
    out = copy.deepcopy(settings)
    for dotted, value in params.items():
        *path, leaf = dotted.split(".")
        table = out
        for part in path:
            table = table.setdefault(part, {})
        table[leaf] = value
    return out


class SeriesSink(Sink):
    """Keeps what a run's metrics need: each snapshot's equity and position value, the fills."""

    name = "series"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.snapshots: list[tuple[dt.datetime, float, float]] = []
        self.fills: list[Fill] = []

    def record_fill(self, fill: Fill) -> None:
        # A combo's legs are what positions and trades are made of.
        self.fills.extend(fill.legs or (fill,))

    def record_snapshot(self, positions: Sequence[Position], account: AccountSummary) -> None:
        gross = sum(abs(float(p.market_value or 0)) for p in positions)
        self.snapshots.append((account.ts, float(account.equity), gross))


class CachedFeed(Feed):
    """Bars read before, in a window of time."""

    name = "cached"

    def __init__(
        self, bars: BarColumns, start: dt.datetime | None, end: dt.datetime | None
    ) -> None:
        super().__init__()
        self._window = bars.window(start, end)

    def load(self) -> None:
        pass

    def bars(self) -> Iterator[Bar]:
        return iter(self._window)

    def symbols(self) -> list[str]:
        return self._window.symbols()

    def total(self) -> int | None:
        return len(self._window)


def _host(settings: Any) -> Any:
    from tradepipe.host import load_host

    key = settings.plugins.model_dump_json()
    if key not in _HOSTS:
        host = load_host(settings.plugins)
        host.configure(settings)
        _HOSTS[key] = host
    return _HOSTS[key]


def load_bars(settings: Any, host: Any, key: str) -> tuple[BarColumns, bool]:
    """The feed's bars, read now or earlier in this process; whether they were read now."""
    if key in _BARS:
        return _BARS[key], False
    from tradepipe.pipeline import make_component

    feed = make_component(host, settings, "feed", settings.run.feed)
    feed.load()
    bars = BarColumns(feed.bars())
    while len(_BARS) >= _KEEP:
        del _BARS[next(iter(_BARS))]  # the oldest sweep's
    _BARS[key] = bars
    return bars, True


def _moment(day: str) -> dt.datetime | None:
    """Midnight in New York at the start of ``day`` (an ISO date), or ``None``."""
    from tradepipe.clock import NEW_YORK

    if not day:
        return None
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=NEW_YORK)


def run_task(spec: TaskSpec) -> TaskResult:
    """Run one replay; a failure is returned, with its error, never raised."""
    started = time.perf_counter()
    result = TaskResult(spec.key, spec.params, spec.start, spec.end)
    try:
        _replay(spec, result)
    except Exception as exc:  # a task's failure is its result
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
        result.error = f"{type(exc).__name__}: {exc}{where}"
    result.seconds = time.perf_counter() - started
    return result


def warm_up(executor: Any, pipeline: Any, history: Sequence[Bar]) -> None:
    """The bars before a period, as a live run's history: prices for the context and
    the simulator, and each strategy's ``warm_up``; nothing is traded on them."""
    ctx = executor.ctx
    for bar in history:
        ctx.set_price(bar.symbol, bar.close)
    pipeline.broker.on_history(history)
    for strategy in pipeline.strategies:
        strategy.warm_up(history, ctx)


def _replay(spec: TaskSpec, result: TaskResult) -> None:
    from tradepipe.settings import validate_settings

    # The halt filters' state file is the replay's own (in a folder removed after):
    # parallel replays never share one, nor read or write a live account's.
    scratch = tempfile.mkdtemp(prefix="tradepipe-sweep-")
    try:
        state = str(Path(scratch) / "halt.json")
        own = {"risk.halt.state_file": state, "risk.max_daily_loss.state_file": state}
        settings = validate_settings(
            with_params(spec.settings, {**spec.params, **own}), "sweep task"
        )
        _run(spec, settings, result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(spec: TaskSpec, settings: Any, result: TaskResult) -> None:
    from tradepipe.errors import ConfigError
    from tradepipe.pipeline import build_pipeline, open_run
    from tradepipe.plugins.research.metrics import day_closes, trade_figures

    host = _host(settings)
    bars, result.loaded = load_bars(settings, host, f"{spec.group}/{feed_key(spec.settings)}")
    pipeline = build_pipeline(settings, host)
    if not pipeline.broker.simulated:
        raise ConfigError(
            f"a sweep replays on a simulator, and broker {pipeline.broker.name!r} is none "
            '([run] broker = "paper")',
            key="run.broker",
        )
    start, end = _moment(spec.start), _moment(spec.end)
    pipeline.feed = CachedFeed(bars, start, end)
    sink = SeriesSink()
    pipeline.sinks = [sink]
    # The feed's bars before the period warm the strategies up (a test window's
    # indicators start from the past, not from nothing); they are not traded.
    history: Sequence[Bar] = bars.window(None, start) if start is not None else ()
    with open_run(pipeline, log_events=settings.logging.replay_events) as executor:
        if history:
            warm_up(executor, pipeline, history)
        outcome = executor.run()
    result.bars = outcome.bars
    equity, invested = day_closes(sink.snapshots)
    result.trades = asdict(trade_figures(sink.fills))
    result.equity = [(day.isoformat(), value) for day, value in equity]
    result.invested = [(day.isoformat(), value) for day, value in invested]
