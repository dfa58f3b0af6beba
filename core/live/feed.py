"""The base class of live feeds: market data that arrives while a run goes on.

A replay's :class:`~tradepipe.feed.Feed` hands the executor a finished list of
bars. A live feed instead runs its own thread(s) — a WebSocket reader, a
poller, a generator of synthetic prices — and hands what it receives to the
one pipeline loop through a queue; the loop never waits on the network. The
run's loop (:mod:`tradepipe.live.run`) drives it:

1. :meth:`LiveFeed.start` with the run's clock and trading hours: connect,
   start the threads;
2. :meth:`LiveFeed.warmup`: history before now, so indicators are ready at the
   first live bar (handed to strategies' ``warm_up``, never traded on);
3. :meth:`LiveFeed.next` in a loop: a completed :class:`~tradepipe.Bar`, a
   :class:`~tradepipe.Quote` (marks prices between bars), or ``None`` when
   nothing arrived in time;
4. :meth:`LiveFeed.stop`: end the threads, disconnect.

A subclass implements :meth:`LiveFeed.open` (start its threads with
:meth:`LiveFeed.spawn`) and, from those threads, reports through
:meth:`LiveFeed.publish`, :meth:`LiveFeed.publish_quote`,
:meth:`LiveFeed.set_connected` and :meth:`LiveFeed.gap`. Bars are published
only once their interval has ended on the run's clock, stamped with their
start (as every :class:`~tradepipe.Bar`); a bar that cannot be had is a gap,
reported, never made up. :meth:`LiveFeed.state` is what ``tradepipe status``
shows about the feed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from tradepipe.adapter import Broker
from tradepipe.clock import LiveClock, SystemClock
from tradepipe.errors import FeedError
from tradepipe.feed import Feed
from tradepipe.market import Bar, Quote

log = logging.getLogger(__name__)

#: What :meth:`LiveFeed.next` hands the loop.
MarketEvent = Bar | Quote
_WAKE = object()
#: Gaps kept for the status (the log has them all).
_GAPS_KEPT = 20


class TradingHours(Protocol):
    """When the market the run trades is open (see :class:`tradepipe.schedule.MarketSchedule`)."""

    def session_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The session ``(open, close)`` that ``at`` falls in, or ``None`` while closed."""
        ...

    def next_open(self, at: datetime) -> datetime:
        """The first opening after ``at``."""
        ...

    def previous_session(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The last session that closed at or before ``at``."""
        ...


@dataclass
class Gap:
    """Bars that could not be had: ``start`` to ``end`` of ``symbol`` (``*``: every symbol)."""

    symbol: str
    start: datetime
    end: datetime
    reason: str


@dataclass
class FeedState:
    """A live feed as the status shows it."""

    name: str
    connected: bool
    message: str
    bar_seconds: float | None
    bars: int
    quotes: int
    last_bars: dict[str, Bar] = field(default_factory=dict)
    last_data: datetime | None = None
    gaps: list[Gap] = field(default_factory=list)
    gap_count: int = 0

    def lag_seconds(self, now: datetime) -> float | None:
        """How far the newest bar's end is behind ``now`` (``None`` before the first bar)."""
        if not self.last_bars or self.bar_seconds is None:
            return None
        newest = max(b.ts for b in self.last_bars.values())
        return max(0.0, (now - newest).total_seconds() - self.bar_seconds)

    def stalled(self, now: datetime, after: float) -> bool:
        """Connected but silent for ``after`` seconds (the caller knows the market is open)."""
        return self.last_data is not None and (now - self.last_data).total_seconds() > after


class LiveFeed(Feed):
    """Market data that arrives while the run goes on (see the module docstring).

    Subclasses set ``name``, a nested ``Settings`` and implement :meth:`open`;
    :meth:`warmup`, :meth:`close`, :attr:`bar_seconds` and :attr:`speed` are
    optional.
    """

    #: The calendar used when ``[run] calendar`` is not set: ``"always"`` for a
    #: feed that has data around the clock (``synthetic_live``); ``None``: the
    #: run's default (``XNYS``).
    default_calendar: ClassVar[str | None] = None

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.clock: LiveClock = SystemClock()
        self.hours: TradingHours | None = None
        #: The run's broker, for a feed whose data comes through it (IBKR's stream);
        #: set by the run before :meth:`start`.
        self.broker: Broker | None = None
        self._news = threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._connected = False
        self._message = "not started"
        self._bar_count = 0
        self._quote_count = 0
        self._last_bars: dict[str, Bar] = {}
        self._last_data: datetime | None = None
        self._gaps: deque[Gap] = deque(maxlen=_GAPS_KEPT)
        self._gap_count = 0

    # -- for subclasses ----------------------------------------------------------

    @property
    def bar_seconds(self) -> float | None:
        """The length of this feed's bars in seconds, if fixed."""
        return None

    @property
    def speed(self) -> float:
        """How many times faster than the wall this feed's market runs (1: real time).

        A feed faster than real time (a demo) makes the run's clock a
        :class:`~tradepipe.clock.ScaledClock` of that speed, so bars, orders and
        the calendar all follow one clock.
        """
        return 1.0

    def open(self) -> None:
        """Connect and start the feed's threads (with :meth:`spawn`)."""
        raise NotImplementedError

    def close(self) -> None:
        """Disconnect; called after the threads have ended. Optional."""

    def warmup(self) -> list[Bar]:
        """Completed bars before now, time-ordered: indicators are ready at the first live bar."""
        return []

    def spawn(self, target: Callable[[], None], name: str) -> None:
        """Run ``target`` in a daemon thread; an exception in it is logged and disconnects."""

        def guarded() -> None:
            try:
                target()
            except Exception as exc:
                log.error("feed %s: %s stopped: %s: %s", self.name, name, type(exc).__name__, exc)
                self.set_connected(False, f"{name} stopped: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=guarded, name=f"{self.name}-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    @property
    def stopping(self) -> threading.Event:
        """Set when the run stops; threads end when they see it."""
        return self._stop

    def publish(self, bar: Bar) -> None:
        """Hand a completed bar to the run (from any thread)."""
        with self._lock:
            self._bar_count += 1
            self._last_bars[bar.symbol] = bar
            self._last_data = self.clock.now()
        self._queue.put((bar, time.monotonic()))

    def publish_quote(self, quote: Quote) -> None:
        """Hand a quote to the run (from any thread); it marks the symbol's price."""
        with self._lock:
            self._quote_count += 1
            self._last_data = self.clock.now()
        self._queue.put((quote, time.monotonic()))

    def set_connected(self, connected: bool, message: str = "") -> None:
        with self._lock:
            self._connected = connected
            self._message = message or ("connected" if connected else "disconnected")

    def gap(self, symbol: str, start: datetime, end: datetime, reason: str) -> None:
        """Bars from ``start`` to ``end`` could not be had; logged and shown in the status."""
        log.warning(
            "feed %s: no bars for %s from %s to %s: %s",
            self.name,
            symbol,
            start.isoformat(),
            end.isoformat(),
            reason,
        )
        with self._lock:
            self._gaps.append(Gap(symbol, start, end, reason))
            self._gap_count += 1

    # -- for the run -------------------------------------------------------------

    def start(self, clock: LiveClock, hours: TradingHours | None) -> None:
        """Start the feed on the run's ``clock``; ``hours`` ``None`` means always open."""
        self.clock = clock
        self.hours = hours
        self._stop.clear()
        self.open()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads (waiting up to ``timeout`` seconds in all) and disconnect."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("feed %s: thread %s did not stop in time", self.name, thread.name)
        self._threads.clear()
        try:
            self.close()
        finally:
            self.set_connected(False, "stopped")

    def next(self, timeout: float) -> tuple[MarketEvent, float] | None:
        """The next bar or quote with the monotonic time it was published, waiting up to
        ``timeout`` wall seconds; ``None`` when nothing came (or :meth:`wake` was called)."""
        try:
            item = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if item is _WAKE:
            return None
        event: tuple[MarketEvent, float] = item
        return event

    def wake(self) -> None:
        """Make a waiting :meth:`next` return at once (a stop was asked for)."""
        self._queue.put(_WAKE)

    def broker_news(self) -> None:
        """The broker has news of an order (IBKR's order stream said so), from any thread:
        the run asks the broker at once instead of at its polling pace."""
        self._news.set()
        self._queue.put(_WAKE)

    def take_broker_news(self) -> bool:
        """Whether :meth:`broker_news` was called since the last time this was asked."""
        if not self._news.is_set():
            return False
        self._news.clear()
        return True

    def state(self) -> FeedState:
        with self._lock:
            return FeedState(
                name=self.name,
                connected=self._connected,
                message=self._message,
                bar_seconds=self.bar_seconds,
                bars=self._bar_count,
                quotes=self._quote_count,
                last_bars=dict(self._last_bars),
                last_data=self._last_data,
                gaps=list(self._gaps),
                gap_count=self._gap_count,
            )

    # -- not a replay ------------------------------------------------------------

    def bars(self) -> Iterator[Bar]:
        raise FeedError(
            f"feed {self.name!r} is live: it runs with `tradepipe run-pipeline --live` "
            '([run] mode = "live"), not in a replay',
            feed=self.name,
        )

    def total(self) -> int | None:
        return None


def session_bar_times(
    hours: TradingHours | None, before: datetime, step: timedelta, count: int
) -> list[datetime]:
    """Start times of the ``count`` bars of length ``step`` that ended at or before ``before``.

    Bars are aligned to the session's open (to multiples of ``step`` since the
    epoch when ``hours`` is ``None``: always open), and the last bar of a
    session ends at its close. Oldest first.
    """
    out: list[datetime] = []
    if count <= 0:
        return out
    if hours is None:
        end = align(before, step, None)
        while len(out) < count:
            end -= step
            out.append(end)
        out.reverse()
        return out
    session = hours.session_at(before)
    if session is not None:
        first = align(before, step, session[0])
        bounds: Sequence[tuple[datetime, datetime]] = [(session[0], first)]
    else:
        bounds = []
    cursor = before
    while len(out) < count:
        if bounds:
            opened, end = bounds[0]
            bounds = []
        else:
            previous = hours.previous_session(cursor)
            if previous is None:
                break
            opened, end = previous
        starts: list[datetime] = []
        t = opened
        while t < end:
            starts.append(t)
            t += step
        out.extend(reversed(starts))
        cursor = opened - timedelta(microseconds=1)
    out = out[:count]
    out.reverse()
    return out


def align(at: datetime, step: timedelta, origin: datetime | None) -> datetime:
    """The start of the bar of length ``step`` that ``at`` falls in, counted from ``origin``
    (the epoch when ``None``)."""
    base = origin if origin is not None else datetime(1970, 1, 1, tzinfo=at.tzinfo)
    steps = (at - base) // step
    return base + steps * step
