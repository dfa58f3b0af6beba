"""The live run: a feed's bars through the executor, on the wall clock, until stopped.

A replay hands the executor a finished list of bars. A live run hands it
:meth:`LiveRun._events`, a generator that waits for the feed's next bar and,
between bars, does what a run that lasts a day must: ask the broker about
fills and orders whose sending had no clear outcome, make the ledger durable,
and notice a request to stop. Every bar then takes exactly the replay's path
through :meth:`Executor.run <tradepipe.executor.Executor.run>` (the broker
first, then every strategy, each decision sized, judged, recorded and sent),
so a live run and a replay of the same strategy differ only in the feed and
the clock.

The loop is the only thread that touches the executor; the feed's threads
hand it bars and quotes through a queue (see :mod:`tradepipe.live.feed`).
Quotes mark prices between bars.

The trading day: the run follows ``[run] calendar`` (an exchange's sessions,
or ``always``) and the broker's maintenance window (see
:mod:`tradepipe.schedule`). While the market is closed the feed sends
nothing and the run sleeps, waking ``[run] wake_before_open_seconds`` before
the open; it still polls the broker and still hears decisions that do not
wait for bars (files, standard input), which ``[run] when_closed`` denies,
queues until the open, or sends marked ``outside_rth`` (see
:mod:`tradepipe.live.gate`).

Stopping: :meth:`LiveRun.request_stop` (a signal handler calls it) ends the
bars; the bar in hand is finished, nothing new is decided, orders whose
sending is still unclear are settled for up to ``[run] stop_timeout_seconds``
(or stay ``unknown`` in the ledger, for the next start to settle), and the run
closes as ``stopped``.

Approvals: every few seconds while the market is open, the run sends what a
person approved for its session (``tradepipe approve``, the API, the
dashboard), each judged again first; it holds the broker's session and the
account, and follows the order to its end as any of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

from tradepipe.clock import LiveClock
from tradepipe.errors import PersistenceError
from tradepipe.executor import Executor, RunResult
from tradepipe.live.feed import LiveFeed
from tradepipe.live.gate import Gate
from tradepipe.live.setup import build_live_pipeline, market_schedule, require_live_feed
from tradepipe.live.status import StatusFile
from tradepipe.market import Bar, Quote
from tradepipe.money import cents
from tradepipe.pipeline import Pipeline, announce_end, open_run
from tradepipe.pipeline import summarize as summarize_run
from tradepipe.schedule import MarketSchedule, MarketState
from tradepipe.services.status import status_path
from tradepipe.signals import StopSignals
from tradepipe.strategy import Strategy

__all__ = [
    "LiveRun",
    "LiveStats",
    "build_live_pipeline",
    "market_schedule",
    "require_live_feed",
    "run_live",
]

log = logging.getLogger(__name__)

#: Latencies kept for the figures (the newest; enough for a p99).
_KEPT = 20_000
#: Seconds between two looks for what a person approved (sent while the market is open).
APPROVALS_EVERY = 2.0


@dataclass
class LiveStats:
    """Figures of a live run: bars and quotes taken, and how long bars took.

    Latencies are wall seconds from the moment the feed published a bar to the
    moment the executor was done with it (its decisions sized, judged and sent).
    """

    bars: int = 0
    quotes: int = 0
    bar_latency: deque[float] = field(default_factory=lambda: deque(maxlen=_KEPT))
    decision_latency: deque[float] = field(default_factory=lambda: deque(maxlen=_KEPT))
    last_lag: float | None = None


class LiveRun:
    """One live run of ``pipeline`` (see the module docstring)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        schedule: MarketSchedule | None = None,
        poll_seconds: float = 0.5,
        flush_seconds: float = 1.0,
        idle_seconds: float = 0.2,
        skip_closed: bool = False,
        view: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        clock = pipeline.clock
        if not hasattr(clock, "wait"):
            raise TypeError("a live run needs a clock it can wait on (a LiveClock)")
        feed = pipeline.feed
        if not isinstance(feed, LiveFeed):
            raise TypeError(f"a live run needs a live feed, not {type(feed).__name__}")
        self.p = pipeline
        self.feed: LiveFeed = feed
        self.clock: LiveClock = clock  # type: ignore[assignment]
        self.schedule = schedule or market_schedule(pipeline)
        #: The market as last seen; see :meth:`_watch_market`.
        self.market: MarketState | None = None
        self.gate: Gate | None = None
        self._skip_closed = skip_closed and hasattr(clock, "leap")
        self.stats = LiveStats()
        self.executor: Executor | None = None
        self.stop_reason = ""
        self._stop = threading.Event()
        self._poll_seconds = poll_seconds
        self._flush_seconds = flush_seconds
        self._idle = idle_seconds
        bar = self.feed.bar_seconds
        self._bar_length = None if bar is None else timedelta(seconds=bar)
        limit = pipeline.settings.run.max_quote_age_seconds
        if not limit:
            limit = 60.0 if bar is None else 2 * bar + 10.0
        #: The oldest price a decision may be sized and priced at.
        self.max_quote_age = timedelta(seconds=limit)
        #: When each symbol's latest price was true (a bar's end, a quote's time).
        self.price_at: dict[str, datetime] = {}
        run_settings = pipeline.settings.run
        where = status_path(pipeline.settings) if run_settings.status_file else None
        self.status = StatusFile(where, run_settings.status_seconds)
        self._status_every = run_settings.status_seconds
        self._view = view
        #: The run is closing its ledger: a second signal must not cut that short.
        self.finishing = False
        #: Strategies asked between bars too (they implement ``on_tick``).
        self._tickers = [s for s in pipeline.strategies if type(s).on_tick is not Strategy.on_tick]
        self._tick = timedelta(seconds=run_settings.tick_seconds)

    # -- control ---------------------------------------------------------------------

    def request_stop(self, reason: str = "asked to stop") -> None:
        """End the run after the bar in hand (safe from a signal handler or another thread)."""
        if self._stop.is_set():
            return
        self.stop_reason = reason
        self._stop.set()
        if self.executor is not None:
            self.executor.end_status = "stopped"
        self.feed.wake()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _market_is_open(self) -> bool:
        return self.market is None or self.market.open

    def _why_stop(self) -> str:
        return self.stop_reason if self._stop.is_set() else ""

    # -- the run ---------------------------------------------------------------------

    def run(self) -> tuple[RunResult, dict[str, Any]]:
        """Run until stopped; return the result and the summary read back from the ledger."""
        p = self.p
        t0 = time.perf_counter()
        self.status.claim(p.run.namespace)
        ended = "failed"
        try:
            with open_run(p) as executor:
                self.executor = executor
                if self._stop.is_set():
                    executor.end_status = "stopped"
                # A lost broker session is waited for inside the loop's thread: keep the
                # status current meanwhile, and let a stop end the wait.
                executor.on_wait = self._waiting
                self.gate = executor.gate = Gate(
                    executor,
                    self.schedule,
                    p.settings.run,
                    self.price_at,
                    stopping=self._why_stop,
                    max_quote_age=self.max_quote_age,
                )
                hours = None if self.schedule.always else self.schedule
                executor.ctx.set_market(self._market_is_open)
                gate = self.gate
                executor.ctx.set_freshness(lambda s: gate.price_is_fresh(s, self.clock.now()))
                try:
                    self._publish("starting")
                    self.feed.broker = p.broker
                    self.feed.start(self.clock, hours)
                    self._warm_up(self.feed.warmup())
                    # The stop settles what is still open (_settle_in_flight), within
                    # its own bound: nothing more to wait for once the bars end.
                    result = executor.run(self._events(), tune_gc=False, final_poll_seconds=0)
                    self._publish("stopping")
                    self.gate.drop_queue(
                        f"the run stopped ({self.stop_reason or 'ended'}) while it waited "
                        "for the market to open"
                    )
                    self._settle_in_flight()
                finally:
                    self.finishing = True
                    self.feed.stop()
            ended = result.status
        except KeyboardInterrupt:
            ended = "interrupted"
            raise
        finally:
            p.timings["run_seconds"] = time.perf_counter() - t0
            self._publish(ended)
        summary = summarize_run(p, result)
        log.info(
            "run %s %s (%s): %d bars, %d decisions, %d orders, %d fills",
            p.run.run_id,
            result.status,
            self.stop_reason or "ended",
            result.bars,
            result.decisions,
            result.orders,
            result.fills,
        )
        announce_end(p, result.status, summary)
        return result, summary

    def _waiting(self) -> bool:
        """While the broker's session is waited for: the status says so; False once stopping."""
        self._publish("waiting")
        return not self._stop.is_set()

    def _publish(self, state: str) -> None:
        """Rewrite the status file and redraw the console view."""
        if self.status.path is None and self._view is None:
            return
        try:
            document = self.status.write(self, state)
            if self._view is not None:
                self._view(document)
        except Exception as exc:  # the status must never stop a run
            log.error("could not update the run's status: %s: %s", type(exc).__name__, exc)

    def _warm_up(self, bars: Sequence[Bar]) -> None:
        """History before the first live bar: to strategies' ``warm_up``, as prices, and to
        the broker's ``on_history`` (a simulator learns the prices, fills nothing)."""
        ex = self._executor
        if not bars:
            return
        ctx = ex.ctx
        before: dict[str, Bar] = {}
        for bar in bars:
            ctx.set_price(bar.symbol, bar.close)
            # History may come in longer bars than the feed's (IBKR: a minute at least):
            # a bar's price is true at its own end.
            previous = before.get(bar.symbol)
            length = (bar.ts - previous.ts) if previous is not None else None
            ends = bar.ts + length if length else self._bar_end(bar, None)
            self.price_at[bar.symbol] = max(ends, self.price_at.get(bar.symbol, ends))
            before[bar.symbol] = bar
        self.p.broker.on_history(bars)
        for strategy in self.p.strategies:
            if type(strategy).warm_up is Strategy.warm_up:
                continue
            try:
                strategy.warm_up(bars, ctx)
            except Exception as exc:
                ex.strategy_failed(strategy, exc)
        log.info("warmed up on %d bars from %s", len(bars), bars[0].ts.isoformat())

    def _events(self) -> Iterator[Bar]:
        """The feed's bars as they complete; the loop's other duties in between."""
        ex = self._executor
        feed, clock, stats = self.feed, self.clock, self.stats
        set_price = ex.ctx.set_price
        price_at = self.price_at
        stop = self._stop
        gate = self.gate
        assert gate is not None
        monotonic = time.monotonic
        duties = _Duties(monotonic(), clock.now(), self._watch_market(clock.now()))
        while not stop.is_set():
            self._do_duties(duties, monotonic())
            got = feed.next(self._idle)
            if got is None:
                continue
            event, published = got
            if type(event) is Bar:
                stats.bars += 1
                now = clock.now()
                end = self._bar_end(event, now)
                price_at[event.symbol] = end
                stats.last_lag = max(0.0, (now - end).total_seconds())
                decided = ex.decisions
                yield event
                latency = monotonic() - published
                stats.bar_latency.append(latency)
                if ex.decisions != decided:
                    stats.decision_latency.append(latency)
                if gate.queued:
                    self._release(clock.now())
            else:
                event = cast(Quote, event)
                price = event.last if event.last is not None else event.mid
                if price is not None and price > 0:
                    stats.quotes += 1
                    set_price(event.symbol, float(price))
                    price_at[event.symbol] = event.ts
                    ex.on_quote(event)  # a simulator fills at live quotes too

    def _do_duties(self, due: _Duties, now_m: float) -> None:
        """What the loop does between events, each when it falls due (``now_m``:
        the monotonic clock): the broker's news and session, flushing the ledger,
        the status file, the market's state, and the strategies asked between bars."""
        ex, clock = self._executor, self.clock
        if self.feed.take_broker_news():
            ex.refresh()  # an order changed: its fills reach the ledger now
            due.poll = now_m + self._poll_seconds
        elif now_m >= due.poll:
            lost = self.p.broker.session_problem()
            if lost is not None:
                # Wait here (the status says so) rather than read decisions that
                # could not be sent; a stop ends the wait.
                ex.await_session(lost)
            ex.settle()
            due.poll = time.monotonic() + self._poll_seconds
        if now_m >= due.flush:
            ex.flush()
            due.flush = now_m + self._flush_seconds
        if now_m >= due.approvals:
            if self.market is None or self.market.open:
                self._send_approved(clock.now())
            due.approvals = now_m + APPROVALS_EVERY
        if now_m >= due.status:
            self._publish("running" if self.market is None or self.market.open else "sleeping")
            due.status = now_m + self._status_every
        if due.market_changes is not None and clock.now() >= due.market_changes:
            due.market_changes = self._watch_market(clock.now())
        if self._tickers and now_m >= due.tick_wall:
            now = clock.now()
            if now >= due.tick:
                self._ask_tickers(now)
                due.tick = now + self._tick
                # At most twenty a second, however fast the clock runs.
                due.tick_wall = time.monotonic() + 0.05

    def _send_approved(self, now: datetime) -> None:
        """Send what a person approved for this session (``tradepipe approve``, the API,
        the dashboard): this run holds the broker's session and the account."""
        try:
            self._executor.send_approved(now)
        except PersistenceError as exc:
            # The ledger is out of reach for a moment: approvals wait for the next look.
            log.warning("could not read the approvals: %s", exc)

    def _ask_tickers(self, now: datetime) -> None:
        """Ask the strategies that act between bars (``on_tick``) what they decide now."""
        ex = self._executor
        ctx = ex.ctx
        for strategy in self._tickers:
            ex.ask(strategy, partial(strategy.on_tick, now, ctx))
        if self.gate is not None and self.gate.queued:
            self._release(now)

    def _watch_market(self, now: datetime) -> datetime | None:
        """Note the market's state (and say when it changes); return when to look again."""
        state = self.schedule.state(now)
        before = self.market
        self.market = state
        if before is not None and before.open and not state.open:
            self._day_summary()
        if before is None or (before.open, before.reason) != (state.open, state.reason):
            if state.open:
                log.info("market %s: %s", self.schedule.name, state.describe())
            else:
                wake = state.wake_at or state.maintenance_until
                log.info(
                    "market %s %s; sleeping%s",
                    self.schedule.name,
                    state.describe(),
                    f" until {wake:%Y-%m-%d %H:%M} UTC" if wake is not None else "",
                )
        if state.open and self.gate is not None and self.gate.queued:
            self._release(now)
        if not state.open and self._skip_closed and state.wake_at is not None:
            self.clock.leap(state.wake_at)  # type: ignore[attr-defined]
        return state.changes_at

    def _day_summary(self) -> None:
        """At the close: the day's P&L, equity and open positions, as an alert."""
        ex = self._executor
        equity = ex.ctx.equity()
        start = self.status.day_start
        pnl = "" if start is None else f", P&L today {cents(equity - start)}"
        held = ", ".join(f"{p.symbol} {p.quantity}" for p in ex.book.positions() if p.quantity)
        ex.record.alert(
            "daily_summary",
            f"{self.schedule.name} closed: equity {cents(equity)}{pnl}; "
            f"{self.stats.bars} bar(s) so far; open positions: {held or 'none'}",
        )

    def _release(self, now: datetime) -> None:
        """Judge the queued decisions the open has priced again."""
        assert self.gate is not None
        ex = self._executor
        for strategy, decision in self.gate.release(now):
            log.info("decision %s queued while closed: judged now", decision.id)
            ex.judge(strategy, decision, now)

    def _bar_end(self, bar: Bar, received: datetime | None) -> datetime:
        """When ``bar``'s price was true: its end (when bars have a fixed length), else now."""
        if self._bar_length is not None:
            return bar.ts + self._bar_length
        return received if received is not None else bar.ts

    def _settle_in_flight(self) -> None:
        """Ask about orders whose sending had no clear outcome, for a bounded time."""
        ex = self._executor
        ex.final_poll(self.p.settings.run.stop_timeout_seconds)
        if ex.unknown:
            log.warning(
                "stopping with %d order(s) whose sending is still unclear (%s): they stay "
                "`unknown` in the ledger, and the next start of session %r settles them",
                len(ex.unknown),
                ", ".join(sorted(ex.unknown)),
                self.p.run.namespace,
            )
        ex.flush()

    @property
    def _executor(self) -> Executor:
        if self.executor is None:
            raise RuntimeError("the live run has not started")
        return self.executor


def run_live(
    pipeline: Pipeline, *, signals: bool = True, **options: Any
) -> tuple[RunResult, dict[str, Any]]:
    """Run ``pipeline`` live until it is stopped; see :class:`LiveRun`.

    With ``signals`` (in the main thread), the first SIGINT or SIGTERM stops
    it gracefully and a second at once (:mod:`tradepipe.signals`).
    """
    runner = LiveRun(pipeline, **options)
    if not signals:
        return runner.run()
    with StopSignals(runner):
        return runner.run()


class _Duties:
    """When each of the live loop's duties next falls due (monotonic seconds,
    except ``tick`` and ``market_changes``: times on the run's clock)."""

    __slots__ = ("approvals", "flush", "market_changes", "poll", "status", "tick", "tick_wall")

    def __init__(self, now_m: float, now: datetime, market_changes: datetime | None) -> None:
        self.poll = self.flush = self.status = self.tick_wall = self.approvals = now_m
        self.tick = now
        self.market_changes = market_changes
