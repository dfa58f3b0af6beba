"""The live run: the replay's path, driven by a feed and a clock, until stopped."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tradepipe import Action, Bar, ConfigError, Decision, Strategy, StrategyContext, hookimpl
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.clock import ScaledClock
from tradepipe.errors import BrokerAuthError, BrokerUnavailableError
from tradepipe.live.run import LiveRun, build_live_pipeline
from tradepipe.pipeline import build_pipeline, run_pipeline
from tradepipe.plugins.feeds.synthetic import SyntheticFeed
from tradepipe.strategies.sma_cross import SmaCross
from tradepipe.testing import MemorySink, live, replay, settings, test_host


def market(count: int = 120, symbols: tuple[str, ...] = ("AAPL",)) -> list[Bar]:
    feed = SyntheticFeed(
        SyntheticFeed.Settings(symbols=list(symbols), bars=count, interval="1m", seed=5)
    )
    feed.load()
    return list(feed.bars())


class Pattern(Strategy):
    """Decides from the bar alone (never from the position), so timing cannot change it."""

    name = "pattern"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.seen: list[Bar] = []
        self.warmed: list[Bar] = []

    def warm_up(self, bars: Any, ctx: StrategyContext) -> None:
        self.warmed.extend(bars)

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision | None:
        self.seen.append(bar)
        if int(bar.close * 100) % 5:
            return None
        action = Action.BUY if bar.close > bar.open else Action.SELL
        return self.decision(ctx, symbol=bar.symbol, action=action, confidence=90, quantity=1)


class Plugin:
    __name__ = "live-tests"

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(Pattern)


PATTERN = {"strategies": ["pattern"], "risk_filters": []}


@pytest.fixture(autouse=True)
def workdir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Status and ledger files of these runs go to a folder of their own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


PAPER = {"paper": {"allow_short": True, "commission": "none"}}


def decided(sink: MemorySink) -> list[tuple[str, str, dt.datetime]]:
    return [(d.symbol, d.action.value, d.created_at) for d in sink.decisions]


@pytest.mark.slow
def test_a_live_run_decides_and_trades_as_a_replay_of_the_same_bars() -> None:
    bars = market(90, ("AAPL", "MSFT"))
    replayed = replay(bars, host=test_host(Plugin()), run=PATTERN, brokers=PAPER)[0]
    wanted = [(s, a) for s, a, _ in decided(replayed.sinks[0])]  # type: ignore[arg-type]

    # At 6,000 times the wall's pace a busy machine's hiccup of a few milliseconds ages
    # a price past the default limit; staleness has tests of its own.
    fresh = {**PATTERN, "max_quote_age_seconds": 86_400}
    pipeline, result, _summary, runner = live(
        bars, host=test_host(Plugin()), run=fresh, brokers=PAPER, speed=6000
    )
    sink = pipeline.sinks[0]
    assert isinstance(sink, MemorySink)
    assert [(s, a) for s, a, _ in decided(sink)] == wanted and wanted
    assert result.status == "stopped" and sink.closed == (len(bars), "stopped")
    assert result.orders == len(wanted) and result.fills > 0
    # Live decisions carry the run's clock: after their bar had ended.
    chosen = [b for b in bars if int(b.close * 100) % 5 == 0]
    for decision, bar in zip(sink.decisions, chosen, strict=True):
        assert decision.created_at >= bar.ts + dt.timedelta(minutes=1)
    assert runner.stats.bars == len(bars) and len(runner.stats.decision_latency) > 0
    assert not pipeline.feed._threads  # the feed's threads ended


@pytest.mark.slow
def test_warm_up_bars_reach_strategies_before_the_first_live_one_and_are_never_traded() -> None:
    bars = market(60)
    start = bars[40].ts + dt.timedelta(minutes=1, seconds=30)  # bars 0-40 had ended
    pipeline, result, _summary, _runner = live(
        bars, host=test_host(Plugin()), run=PATTERN, brokers=PAPER, start=start
    )
    strategy = pipeline.strategies[0]
    assert isinstance(strategy, Pattern)
    assert strategy.warmed == bars[:41] and strategy.seen == bars[41:]
    assert result.bars == 19
    assert all(d.created_at >= start for d in pipeline.sinks[0].decisions)  # type: ignore[attr-defined]


def test_sma_cross_is_ready_at_the_first_live_bar() -> None:
    bars = market(40)
    strategy = SmaCross(SmaCross.Settings(fast=5, slow=20))
    strategy.warm_up(bars[:30], None)  # type: ignore[arg-type]
    averages = strategy._averages["AAPL"]
    assert averages.slow_value is not None and "AAPL" in strategy._previous


def test_a_replay_feed_cannot_run_live_and_a_live_feed_cannot_replay() -> None:
    host = test_host()
    # The demo's replay feed gives way to the broker's own live feed (the simulator's)…
    pipeline = build_live_pipeline(settings(run={"feed": "synthetic", "sinks": []}), host)
    assert pipeline.feed.name == "synthetic_live"
    # … or to [run] live_feed; a replay feed named there (or with --feed) is an error.
    with pytest.raises(ConfigError, match="live feeds: .*list_live, synthetic_live"):
        build_live_pipeline(settings(run={"feed": "synthetic", "live_feed": "synthetic"}), host)
    pipeline = build_pipeline(settings(run={"feed": "synthetic_live", "sinks": []}), host)
    with pytest.raises(ConfigError, match="--live"):
        run_pipeline(pipeline)


class SpyPaper(PaperBroker):
    """Counts polls; its orders' sending can be made ambiguous."""

    name = "spy_paper"
    needs_polling = True
    ambiguous = False
    lookups_fail = 0

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.polls = 0
        self.lookups = 0

    def poll(self) -> Any:
        self.polls += 1
        return super().poll()

    def place(self, intent: Any) -> Any:
        update = super().place(intent)
        if type(self).ambiguous:
            raise BrokerUnavailableError("timed out after sending", broker=self.name)
        return update

    def order(self, client_order_id: str) -> Any:
        self.lookups += 1
        if self.lookups <= type(self).lookups_fail:
            raise BrokerUnavailableError("still no answer", broker=self.name)
        return super().order(client_order_id)


class SpyPlugin:
    __name__ = "spy-broker"

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(SpyPaper)


@pytest.mark.slow
def test_between_bars_the_broker_is_still_asked() -> None:
    bars = market(3)
    # The clock starts long after the bars: nothing live, only warm-up, for a while.
    start = bars[-1].ts + dt.timedelta(hours=1)
    host = test_host(Plugin(), SpyPlugin())
    app = settings(
        run={"feed": "list_live", "broker": "spy_paper", "sinks": ["memory"], **PATTERN},
    )
    from tradepipe.testing import ListLiveFeed

    ListLiveFeed.source = bars
    pipeline = build_pipeline(app, host, clock=ScaledClock(start, 1))
    runner = LiveRun(pipeline, poll_seconds=0.05)
    threading.Timer(0.4, runner.request_stop).start()
    result, _summary = runner.run()
    assert result.bars == 0 and result.status == "stopped"
    assert pipeline.broker.polls >= 4  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_stop_settles_orders_whose_sending_was_unclear(caplog: pytest.LogCaptureFixture) -> None:
    SpyPaper.ambiguous, SpyPaper.lookups_fail = True, 2
    try:
        pipeline, result, _s, _r = live(
            market(30),
            host=test_host(Plugin(), SpyPlugin()),
            run={**PATTERN, "broker": "spy_paper"},
        )
    finally:
        SpyPaper.ambiguous, SpyPaper.lookups_fail = False, 0
    sink = pipeline.sinks[0]
    assert isinstance(sink, MemorySink)
    assert result.orders > 0
    unknown = {e.client_order_id for e in sink.events if e.status.value == "unknown"}
    assert unknown
    final = {}
    for event in sink.events:
        final[event.client_order_id] = event.status.value
    assert all(final[cid] != "unknown" for cid in unknown), final


@pytest.mark.slow
def test_orders_still_unclear_at_the_stop_stay_unknown_and_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    SpyPaper.ambiguous, SpyPaper.lookups_fail = True, 10**6
    caplog.set_level(logging.WARNING, "tradepipe")
    started = time.monotonic()
    try:
        pipeline, result, _s, _r = live(
            market(20),
            host=test_host(Plugin(), SpyPlugin()),
            run={**PATTERN, "broker": "spy_paper", "stop_timeout_seconds": 0.3},
        )
    finally:
        SpyPaper.ambiguous, SpyPaper.lookups_fail = False, 0
    assert time.monotonic() - started < 10
    assert result.status == "stopped"
    assert "stay `unknown` in the ledger" in caplog.text
    sink = pipeline.sinks[0]
    assert isinstance(sink, MemorySink) and sink.closed is not None


def test_a_strategy_error_that_stops_the_run_stops_the_feed_too() -> None:
    class Broken(Strategy):
        name = "broken"

        def decide(self, bar: Bar, ctx: StrategyContext) -> None:
            raise RuntimeError("boom")

    class BrokenPlugin:
        __name__ = "broken"

        @hookimpl
        def tradepipe_register_strategies(self, register: Any) -> None:
            register(Broken)

    from tradepipe.errors import StrategyError

    with pytest.raises(StrategyError):
        live(
            market(5),
            host=test_host(BrokenPlugin()),
            run={"strategies": ["broken"], "on_strategy_error": "stop"},
        )
    assert MemorySink.last is not None and MemorySink.last.closed == (0, "failed")


@pytest.mark.slow
def test_quotes_mark_prices_between_bars() -> None:
    from tradepipe import Quote
    from tradepipe.testing import ListLiveFeed

    bars = market(2)
    ListLiveFeed.source = bars
    app = settings(run={"feed": "list_live", "sinks": ["memory"], **PATTERN})
    start = bars[-1].ts + dt.timedelta(minutes=5)
    pipeline = build_pipeline(app, test_host(Plugin()), clock=ScaledClock(start, 1))
    runner = LiveRun(pipeline)

    def quote() -> None:
        time.sleep(0.2)
        pipeline.feed.publish_quote(  # type: ignore[attr-defined]
            Quote(symbol="AAPL", ts=start, last=Decimal("123.45"))
        )
        time.sleep(0.3)
        runner.request_stop()

    threading.Thread(target=quote).start()
    runner.run()
    assert runner.executor is not None
    assert runner.executor.ctx.last_price("AAPL") == Decimal("123.45")
    assert runner.price_at["AAPL"] == start and runner.stats.quotes == 1


@pytest.mark.slow
def test_a_run_sleeps_through_the_weekend_and_wakes_for_mondays_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "tradepipe")
    friday = dt.datetime(2026, 3, 6, 20, 58, tzinfo=dt.UTC)  # 15:58 New York
    app = settings(
        run={
            "feed": "synthetic_live",
            "calendar": "XNYS",
            "wake_before_open_seconds": 30,
            "sinks": ["memory"],
            **PATTERN,
        },
        feeds={"synthetic_live": {"symbols": ["AAPL"], "bar_size": "1m", "warmup_bars": 5}},
    )
    clock = ScaledClock(friday, 100)  # the run must start within the last two minutes
    pipeline = build_pipeline(app, test_host(Plugin()), clock=clock)
    runner = LiveRun(pipeline, skip_closed=True)
    seen: list[dt.datetime] = []
    strategy = pipeline.strategies[0]
    assert isinstance(strategy, Pattern)

    def stop_on_monday() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(b.ts.weekday() == 0 for b in list(strategy.seen)):
                break
            time.sleep(0.01)
        runner.request_stop("Monday seen")

    threading.Thread(target=stop_on_monday, daemon=True).start()
    result, _summary = runner.run()
    seen = [b.ts for b in strategy.seen]
    assert result.status == "stopped"
    friday_bars = [t for t in seen if t.weekday() == 4]
    monday_bars = [t for t in seen if t.weekday() == 0]
    assert friday_bars and max(friday_bars) == dt.datetime(2026, 3, 6, 20, 59, tzinfo=dt.UTC)
    assert monday_bars and min(monday_bars) == dt.datetime(2026, 3, 9, 13, 30, tzinfo=dt.UTC)
    assert len(seen) == len(friday_bars) + len(monday_bars)  # nothing in between
    assert "closed (after the close) until 2026-03-09 13:30 UTC; sleeping until " in caplog.text
    assert "2026-03-09 13:29 UTC" in caplog.text  # woke 30 s before the bell
    assert "market XNYS: open until 2026-03-09 20:00 UTC" in caplog.text


class LostSession(PaperBroker):
    """A broker whose session is lost while ``lost`` is set; it comes back when cleared."""

    name = "lost_session"
    needs_polling = True
    lost = threading.Event()
    waits: ClassVar[list[str]] = []

    def poll(self) -> Any:
        if type(self).lost.is_set():
            raise BrokerAuthError("the gateway is not logged in", broker=self.name)
        return super().poll()

    def await_session(self, timeout: float, on_wait: Any = None) -> bool:
        while type(self).lost.is_set():
            if on_wait is not None and not on_wait():
                type(self).waits.append("ended")
                return False
            type(self).waits.append("waiting")
            time.sleep(0.02)
        return True


class NoticedLost(LostSession):
    """A broker whose keep-alive noticed the lost session: nothing needs to fail first."""

    name = "noticed_lost"

    def poll(self) -> Any:
        return PaperBroker.poll(self)

    def session_problem(self) -> BrokerAuthError | None:
        if type(self).lost.is_set():
            return BrokerAuthError("the gateway is not logged in", broker=self.name)
        return None


class LostPlugin:
    __name__ = "lost-broker"

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(LostSession)
        register(NoticedLost)


def lost_session_run(broker: str = "lost_session") -> tuple[Any, LiveRun]:
    from tradepipe.testing import ListLiveFeed

    bars = market(3)
    ListLiveFeed.source = bars
    app = settings(
        run={
            "feed": "list_live",
            "broker": broker,
            "sinks": ["memory"],
            "status_file": "status.json",
            "status_seconds": 0.2,
            **PATTERN,
        }
    )
    pipeline = build_pipeline(
        app, test_host(Plugin(), LostPlugin()), clock=ScaledClock(bars[-1].ts, 1)
    )
    return pipeline, LiveRun(pipeline, poll_seconds=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["lost_session", "noticed_lost"])
def test_a_live_run_waits_for_a_lost_session_saying_so_then_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str
) -> None:
    # Found by a failed poll, or noticed by the broker's own keep-alive with no order
    # or poll failing first: either way the run waits, and its status says so.
    monkeypatch.chdir(tmp_path)
    LostSession.waits.clear()
    LostSession.lost.set()
    _pipeline, runner = lost_session_run(broker)
    seen: list[Any] = []

    def look_then_log_in() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not seen:
            try:
                doc = json.loads((tmp_path / "status.json").read_text())
            except (OSError, ValueError):
                doc = {}
            if doc.get("state") == "waiting":
                seen.append(doc)
            time.sleep(0.02)
        LostSession.lost.clear()  # someone logged in again
        time.sleep(0.2)
        runner.request_stop()

    watcher = threading.Thread(target=look_then_log_in)
    watcher.start()
    result, _summary = runner.run()
    watcher.join()
    [doc] = seen
    assert doc["waiting_for"] == "the gateway is not logged in"
    assert result.status == "stopped"
    assert "waiting" in LostSession.waits and "ended" not in LostSession.waits


@pytest.mark.slow
def test_a_stop_ends_the_wait_for_a_lost_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    LostSession.waits.clear()
    LostSession.lost.set()
    try:
        _pipeline, runner = lost_session_run()
        threading.Timer(0.5, runner.request_stop).start()
        started = time.monotonic()
        result, _summary = runner.run()
    finally:
        LostSession.lost.clear()
    assert time.monotonic() - started < 5  # not [run] session_wait_seconds (30 minutes)
    assert result.status == "stopped"
    assert LostSession.waits[-1] == "ended"


class RealBroker(PaperBroker):
    """A broker that says it is not a simulator, as IBKR's adapters do."""

    name = "real_broker"
    simulated = False


class RealBrokerPlugin:
    __name__ = "live-real-broker"

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(RealBroker)


def test_a_live_run_on_a_real_broker_without_a_fixed_session_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "tradepipe")
    host = test_host(RealBrokerPlugin())
    run = {"feed": "synthetic_live", "broker": "real_broker", "sinks": []}
    build_live_pipeline(settings(run=run), host)
    assert "without a fixed [run] session" in caplog.text
    assert 'set [run] session (for example "real_broker-live")' in caplog.text
    caplog.clear()
    build_live_pipeline(settings(run={**run, "session": "real-live"}), host)
    build_live_pipeline(settings(run={**run, "broker": "paper"}), host)
    assert "[run] session" not in caplog.text
