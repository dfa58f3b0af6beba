"""Test helpers and pytest fixtures for tradepipe and its plugins.

A plugin's test suite gets them with one line in its ``conftest.py``::

    pytest_plugins = ["tradepipe.testing"]

Then ``tradepipe_host`` gives a plugin host with the installed plugins loaded,
``make_settings`` builds validated settings from plain dicts,
:func:`write_settings` writes a ``settings.toml``, :func:`replay`
runs a whole pipeline over a list of bars in memory, and :func:`live` runs it
live over the same list, each bar arriving as an accelerated clock passes its
end.
"""

from __future__ import annotations

import datetime as dt
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import tomli_w
from pydantic import Field
from tradepipe.clock import ManualClock, ScaledClock
from tradepipe.component import ComponentSettings
from tradepipe.decisions import Decision
from tradepipe.executor import RunResult
from tradepipe.feed import Feed
from tradepipe.hookspecs import hookimpl
from tradepipe.host import PluginHost, load_host
from tradepipe.live.feed import LiveFeed
from tradepipe.live.run import LiveRun
from tradepipe.market import Bar
from tradepipe.orders import Fill, Order, OrderEvent
from tradepipe.pipeline import Pipeline, build_pipeline, run_pipeline
from tradepipe.portfolio import AccountSummary, Position
from tradepipe.risk import RiskVerdict
from tradepipe.settings import AppSettings, validate_settings
from tradepipe.sink import RunInfo, Sink

T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


def bar(  # noqa: PLR0917 (the fields of Bar, in its order)
    symbol: str = "AAPL",
    ts: dt.datetime | int = 0,
    open: float = 100.0,
    high: float | None = None,
    low: float | None = None,
    close: float | None = None,
    volume: float = 1000.0,
) -> Bar:
    """A bar with sensible defaults; an int ``ts`` is that many days after :data:`T0`."""
    when = T0 + dt.timedelta(days=ts) if isinstance(ts, int) else ts
    close = open if close is None else close
    high = max(open, close) if high is None else high
    low = min(open, close) if low is None else low
    return Bar(symbol, when, open, high, low, close, volume)


def bars_from_closes(closes: Sequence[float], symbol: str = "AAPL") -> list[Bar]:
    """Daily bars whose open equals the previous close (open of the first = its close)."""
    out = []
    previous = closes[0]
    for day, close in enumerate(closes):
        out.append(bar(symbol, day, open=previous, close=close))
        previous = close
    return out


class ListFeed(Feed):
    """A feed over bars handed to it in code (``ListFeed.source = [...]``)."""

    name = "list"
    description = "bars from a Python list (tests)"
    source: ClassVar[list[Bar]] = []

    def bars(self) -> Iterator[Bar]:
        return iter(type(self).source)

    def symbols(self) -> list[str]:
        return sorted({b.symbol for b in type(self).source})

    def total(self) -> int:
        return len(type(self).source)


class MemorySink(Sink):
    """Keeps every record in lists; ``MemorySink.last`` is the latest instance."""

    name = "memory"
    description = "records kept in memory (tests)"
    last: MemorySink | None = None

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.decisions: list[Decision] = []
        self.rejected: list[tuple[Any, str, str]] = []
        self.verdicts: list[RiskVerdict] = []
        self.orders: list[Order] = []
        self.events: list[OrderEvent] = []
        self.fills: list[Fill] = []
        self.snapshots: list[tuple[Sequence[Position], AccountSummary]] = []
        self.approvals: list[Any] = []
        self.flushes = 0
        self.closed: tuple[int, str] | None = None
        MemorySink.last = self

    def record_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def record_decision_rejected(self, raw: Any, source: str, error: str) -> None:
        self.rejected.append((raw, source, error))

    def record_verdict(self, verdict: RiskVerdict) -> None:
        self.verdicts.append(verdict)

    def record_order(self, order: Order) -> None:
        self.orders.append(order)

    def record_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)

    def record_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def record_snapshot(self, positions: Sequence[Position], account: AccountSummary) -> None:
        self.snapshots.append((positions, account))

    def record_approval(self, request: Any) -> None:
        self.approvals.append(request)

    def flush(self) -> None:
        self.flushes += 1

    def close(self, run: RunInfo, bars: int, status: str) -> None:
        self.closed = (bars, status)


class ListLiveFeed(LiveFeed):
    """A live feed over bars handed to it in code (``ListLiveFeed.source = [...]``).

    On the run's clock, each bar is published once it has ended (its start
    plus ``bar_seconds``); the bars that had ended before the run started (or
    before ``ListLiveFeed.live_from``, when set) are its warm-up. :attr:`done`
    is set after the last one.
    """

    name = "list_live"
    description = "bars from a Python list, published as the run's clock passes their end (tests)"
    default_calendar = "always"
    source: ClassVar[list[Bar]] = []
    live_from: ClassVar[dt.datetime | None] = None

    class Settings(ComponentSettings):
        bar_seconds: float = Field(default=60.0, gt=0)

    settings: Settings

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.done = threading.Event()
        self._warm: list[Bar] = []
        self._live: list[Bar] = []

    @property
    def bar_seconds(self) -> float:
        return self.settings.bar_seconds

    def symbols(self) -> list[str]:
        return sorted({b.symbol for b in type(self).source})

    def open(self) -> None:
        length = dt.timedelta(seconds=self.bar_seconds)
        now = type(self).live_from or self.clock.now()
        source = type(self).source
        self._warm = [b for b in source if b.ts + length <= now]
        self._live = [b for b in source if b.ts + length > now]
        self.done.clear()
        self.set_connected(True, "bars from a list")
        self.spawn(self._play, "play")

    def warmup(self) -> list[Bar]:
        return list(self._warm)

    @property
    def live_bars(self) -> int:
        """How many bars this feed publishes live."""
        return len(self._live)

    def _play(self) -> None:
        length = dt.timedelta(seconds=self.bar_seconds)
        for bar in self._live:
            if not self.clock.wait(bar.ts + length, self.stopping):
                return
            self.publish(bar)
        self.done.set()


def live(
    bars: Iterable[Bar],
    *,
    host: PluginHost | None = None,
    start: dt.datetime | None = None,
    speed: float = 3000.0,
    timeout: float = 30.0,
    **tables: Any,
) -> tuple[Pipeline, RunResult, dict[str, Any], LiveRun]:
    """Run a pipeline live over ``bars`` (:class:`ListLiveFeed`, paper broker, memory sink).

    The run's clock starts at ``start`` (default: the first bar's start; bars
    that ended before it are the warm-up) and runs ``speed`` times as fast as
    the wall. The run is stopped once every live bar was handled (or after
    ``timeout`` wall seconds). Returns the pipeline, the executor's counts,
    the summary and the :class:`~tradepipe.live.run.LiveRun`.
    """
    ListLiveFeed.source = list(bars)
    run = {
        "feed": "list_live",
        "sinks": ["memory"],
        "broker": "paper",
        "mode": "live",
        "calendar": "always",
        "status_file": "",
        **tables.pop("run", {}),
    }
    app = settings(run=run, **tables)
    host = host or test_host()
    host.configure(app)  # plugins get this run's settings, as the CLI gives them
    # Import every component now: on a cold start that takes long enough, at this
    # speed, for the first prices to be stale by the time the run reads them.
    host.collect()
    first = start or (ListLiveFeed.source[0].ts if ListLiveFeed.source else T0)
    # The warm-up is what had ended at ``first``, however long the start takes.
    ListLiveFeed.live_from = first
    pipeline = build_pipeline(app, host, clock=ScaledClock(first, speed))
    runner = LiveRun(pipeline)
    feed = pipeline.feed
    assert isinstance(feed, ListLiveFeed)

    over = threading.Event()

    def stop_when_done() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not over.is_set():
            if feed.done.is_set() and runner.stats.bars >= feed.live_bars:
                break
            time.sleep(0.005)
        runner.request_stop("the list of bars is done")

    watcher = threading.Thread(target=stop_when_done, name="live-test-stop", daemon=True)
    watcher.start()
    try:
        result, summary = runner.run()
    finally:
        ListLiveFeed.live_from = None
        over.set()
        watcher.join()
    return pipeline, result, summary, runner


class TestComponents:
    """Registers :class:`ListFeed`, :class:`ListLiveFeed` and :class:`MemorySink`."""

    __name__ = "tradepipe.testing"

    @hookimpl
    def tradepipe_register_feeds(self, register: Any) -> None:
        register(ListFeed)
        register(ListLiveFeed)

    @hookimpl
    def tradepipe_register_sinks(self, register: Any) -> None:
        register(MemorySink)


def test_host(*extra: Any) -> PluginHost:
    """A host with the installed plugins, the test components and ``extra`` plugins."""
    return load_host(None, [TestComponents(), *extra])


test_host.__test__ = False  # type: ignore[attr-defined]


def write_settings(folder: Path | str = ".", text: str = "", /, **tables: Any) -> Path:
    """Write ``folder/settings.toml`` and return its path.

    ``text`` is TOML as a user writes it (indentation is removed); keyword tables
    are added under ``[default]``, e.g. ``write_settings(tmp_path, run={"broker":
    "paper"})`` writes ``[default.run]``. Both may be given.
    """
    path = Path(folder) / "settings.toml"
    body = textwrap.dedent(text).strip()
    if tables:
        body = f"{body}\n\n{tomli_w.dumps({'default': tables})}".strip()
    path.write_text(body + "\n", encoding="utf-8")
    return path


def settings(**tables: Any) -> AppSettings:
    """Validated settings from keyword tables, e.g. ``settings(run={"broker": "paper"})``."""
    return validate_settings(tables, source="test settings")


def paper_account_seeing(
    symbol: str,
    price: float,
    *,
    state_file: str = "paper.json",
    ts: dt.datetime | None = None,
) -> tuple[Any, list[Any]]:
    """Open the paper account file ``state_file``, pass it one bar of ``symbol`` at
    ``price`` (stamped ``ts``, else five minutes ago) and save it: what a pipeline
    run would leave behind. Returns the broker and what the bar made it report."""
    from tradepipe.brokers.paper.broker import PaperBroker

    when = ts or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    broker = PaperBroker(PaperBroker.Settings(state_file=state_file))
    broker.clock = ManualClock(when)
    broker.connect()
    events = list(broker.on_bar(Bar(symbol, when, price, price, price, price, 1000.0)))
    broker.disconnect()
    return broker, events


def replay(
    bars: Iterable[Bar],
    *,
    host: PluginHost | None = None,
    **tables: Any,
) -> tuple[Pipeline, RunResult, dict[str, Any]]:
    """Run a pipeline over ``bars`` (list feed, paper broker, memory sink by default).

    Keyword tables override settings, e.g. ``run={"strategies": ["mine"]}``.
    Returns the pipeline (its components hold their state), the executor's
    counts, and the summary.
    """
    ListFeed.source = list(bars)
    run = {"feed": "list", "sinks": ["memory"], "broker": "paper", **tables.pop("run", {})}
    app = settings(run=run, **tables)
    host = host or test_host()
    first = ListFeed.source[0].ts if ListFeed.source else T0
    pipeline = build_pipeline(app, host, clock=ManualClock(first))
    result, summary = run_pipeline(pipeline)
    return pipeline, result, summary


@pytest.fixture
def tradepipe_host() -> PluginHost:
    """A plugin host with the installed plugins and the test components."""
    return test_host()


@pytest.fixture
def make_settings() -> Any:
    """Build validated settings from keyword tables."""
    return settings


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(T0)
