"""IBKR's market data for live runs: ``ibkr_stream`` (WebSocket) and ``ibkr_poll`` (snapshots).

Both take their data through the run's broker when it is one of IBKR's (``[run] broker =
"client_portal"`` or ``"web_api"``): the same session, the same pacing budget, the same
keep-alive. With another broker (the paper simulator: paper trading on IBKR's real-time
data) they open a session of their own, for data only, through the IBKR adapter ``via``
names (``client_portal`` by default, set up by its ``[brokers.…]`` table).

``ibkr_stream`` opens IBKR's WebSocket (:mod:`tradepipe.brokers.ibkr.stream`): ``smd``
quotes for the configured symbols, whose trades make bars of ``bar_size``
(:class:`~tradepipe.brokers.ibkr.bars.BarBuilder`, an interval without a trade gives no
bar), and ``sor`` order updates, each of which makes the run ask the broker at once, so a
fill reaches the ledger within a second instead of at the next poll. A dropped socket
reconnects with backoff; the bars it missed come from IBKR's history, and what history
cannot give is reported as a gap, never made up. A stream that stays stalled
(``fallback_after`` stalls in a row while the market is open) is backed by paced snapshot
polling until it flows again.

``ibkr_poll`` asks ``/iserver/marketdata/snapshot`` every ``poll_seconds`` (IBKR refreshes
snapshots about every 500 ms and allows 10 a second), for networks where the WebSocket is
blocked. A last price that moved counts as a trade at that moment; the bars it makes sample
the market at the polling pace (no volume), which the feed says in its status.

Warm-up: both read ``warmup_bars`` of history per symbol at the start (at ``bar_size``, or
the nearest size IBKR's history offers), so indicators are ready at the first live bar.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator
from tradepipe import Bar, ComponentSettings, hookimpl
from tradepipe.errors import BrokerError, ConfigError
from tradepipe.live.feed import LiveFeed

log = logging.getLogger(__name__)


class IbkrFeedSettings(ComponentSettings):
    """What both IBKR feeds take."""

    symbols: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "SPY"], min_length=1)
    #: Bars built from the market's trades: 5s, 1min, 5min, 1h…
    bar_size: str = "1min"
    #: History bars per symbol read at the start (0: none).
    warmup_bars: int = Field(default=100, ge=0, le=1000)
    #: Snapshot polling (``ibkr_poll``, and ``ibkr_stream``'s fallback): seconds between polls.
    poll_seconds: float = Field(default=1.0, ge=0.2, le=60)
    #: When the run's broker is not IBKR's: the IBKR adapter the data comes through.
    via: Literal["client_portal", "web_api"] = "client_portal"

    @field_validator("symbols")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [s.strip().upper() for s in value]

    @field_validator("bar_size")
    @classmethod
    def _size(cls, value: str) -> str:
        from tradepipe.brokers.ibkr.bars import bar_seconds

        bar_seconds(value)  # a ConfigError (a ValueError) names what is expected
        return value


class _IbkrFeed(LiveFeed):
    """What both feeds share: the broker, the bars, the warm-up, the snapshot poller."""

    settings: IbkrFeedSettings

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        from tradepipe.brokers.ibkr.bars import BarBuilder, bar_seconds

        self._app: Any = None
        self._own: Any = None  # a data-only IBKR session, when the run's broker is not IBKR

        self._seconds = bar_seconds(self.settings.bar_size)
        self._builder = BarBuilder(self.settings.bar_size, grace_seconds=1.0)
        self._build_lock = threading.Lock()
        self._polling = threading.Event()
        self._polled_last: dict[str, Any] = {}

    def symbols(self) -> list[str]:
        return list(self.settings.symbols)

    @property
    def bar_seconds(self) -> float | None:
        return self._seconds

    def attach(self, runtime: Any) -> None:
        self._app = runtime.settings

    def _ibkr(self) -> Any:
        """The IBKR adapter the data comes through: the run's broker, or a session of its own."""
        from tradepipe.brokers.ibkr.broker import WebApiBroker

        broker = self.broker
        if isinstance(broker, WebApiBroker):
            return broker
        if self._own is None:
            self._own = self._data_session()
        return self._own

    def _data_session(self) -> Any:
        """A connected IBKR adapter (``via``) used for market data only, never for orders."""
        from tradepipe.brokers.ibkr.broker import WebApiBroker
        from tradepipe.brokers.ibkr.client_portal import ClientPortalBroker
        from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker

        via = self.settings.via
        cls: Any = {"client_portal": ClientPortalBroker, "web_api": WebApiOAuthBroker}[via]
        table = self._app.component_table("brokers", via) if self._app is not None else {}
        try:
            adapter: WebApiBroker = cls(cls.Settings.model_validate(table))
        except ValueError as exc:
            raise ConfigError(
                f"feed {self.name!r} reads IBKR's data through [brokers.{via}]: {exc}",
                key=f"brokers.{via}",
            ) from exc
        adapter.clock = self.clock
        log.info("feed %s: market data through a %s session of its own", self.name, via)
        adapter.connect()
        return adapter

    def close(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            own.disconnect()

    def _market_open(self) -> bool:
        hours = self.hours
        return hours is None or hours.session_at(self.clock.now()) is not None

    # -- bars -------------------------------------------------------------------------

    def _trade(self, symbol: str, price: float, size: float = 0.0) -> None:
        with self._build_lock:
            done = self._builder.add(symbol, self.clock.now(), price, size)
        for bar in done:
            self.publish(bar)

    def _flush(self) -> None:
        with self._build_lock:
            done = self._builder.flush(self.clock.now())
        for bar in sorted(done, key=lambda b: (b.ts, b.symbol)):
            self.publish(bar)

    def warmup(self) -> list[Bar]:
        count = self.settings.warmup_bars
        if count <= 0:
            return []
        from tradepipe.brokers.ibkr.bars import HISTORY_BARS

        broker = self._ibkr()
        # The nearest size IBKR's history has (its smallest is a minute).
        size = HISTORY_BARS.get(int(self._seconds)) or "1min"
        length = timedelta(seconds=60 * _minutes(size))
        now = self.clock.now()
        out: list[Bar] = []
        for symbol in self.settings.symbols:
            try:
                bars = broker.history(symbol, bars=count, bar_size=size)
            except BrokerError as exc:
                log.warning("feed %s: no warm-up history for %s: %s", self.name, symbol, exc)
                continue
            # A bar still in progress is not history yet.
            out.extend(b for b in bars if b.ts + length <= now)
        out.sort(key=lambda b: (b.ts, b.symbol))
        return out

    # -- snapshot polling ----------------------------------------------------------------

    def _poll_loop(self) -> None:
        """Ask IBKR's snapshots every ``poll_seconds`` while polling is on (and the market open)."""
        broker = self._ibkr()
        every = self.settings.poll_seconds
        while not self.stopping.wait(every):
            self._flush()
            if not self._polling.is_set() or not self._market_open():
                continue
            try:
                quotes = broker.quotes(self.settings.symbols)
            except BrokerError as exc:
                self.set_connected(False, f"snapshots failed: {exc}")
                continue
            self.set_connected(True, self._polled_message())
            for quote in quotes:
                self.publish_quote(quote)
                last = quote.last
                key = (quote.last, quote.volume)
                if last is None or last <= 0 or self._polled_last.get(quote.symbol) == key:
                    continue
                first = quote.symbol not in self._polled_last
                self._polled_last[quote.symbol] = key
                if not first:  # the first answer is the market's state, not a trade
                    self._trade(quote.symbol, float(last))

    def _polled_message(self) -> str:
        return (
            f"polling snapshots every {self.settings.poll_seconds:g} s (bars sample the last "
            "price; no volume)"
        )


def _minutes(size: str) -> int:
    from tradepipe.brokers.ibkr.market import BAR_MINUTES

    return BAR_MINUTES[size]


class IbkrPollFeed(_IbkrFeed):
    """IBKR's market data by paced snapshot polling."""

    name = "ibkr_poll"
    description = "IBKR market-data snapshots polled at a steady pace, bars built from them"

    class Settings(IbkrFeedSettings):
        pass

    def open(self) -> None:
        self._ibkr()
        self._polling.set()
        self.set_connected(True, self._polled_message())
        self.spawn(self._poll_loop, "poll")


class IbkrStreamFeed(_IbkrFeed):
    """IBKR's market data and order updates over its WebSocket."""

    name = "ibkr_stream"
    description = "IBKR's WebSocket: streamed quotes make bars; order updates reach the ledger"

    class Settings(IbkrFeedSettings):
        #: The account's market-data lines (IBKR's default is 100); more symbols is an error.
        market_data_lines: int = Field(default=100, ge=1, le=10_000)
        #: Seconds without data (while the market is open) before the stream counts as stalled.
        stall_seconds: float = Field(default=30.0, ge=5, le=600)
        #: Stalls in a row before snapshot polling backs the stream until it flows again.
        fallback_after: int = Field(default=2, ge=1, le=20)

    settings: Settings

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._stream: Any = None
        #: Options for the stream client (tests give an in-memory connection and a clock).
        self.stream_options: dict[str, Any] = {}

    def open(self) -> None:
        from tradepipe.brokers.ibkr.stream import MarketStream

        broker = self._ibkr()
        s = self.settings
        options = {
            "should_flow": self._market_open,
            "max_lines": s.market_data_lines,
            "stall_seconds": s.stall_seconds,
            "clock": self.clock,
            **self.stream_options,
        }
        self._stream = MarketStream.for_broker(broker, s.symbols, **options)
        self._stream.start()
        self.set_connected(False, "connecting to IBKR's WebSocket")
        self.spawn(self._pump, "stream")
        self.spawn(self._poll_loop, "fallback")

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
        super().close()

    def _pump(self) -> None:
        from tradepipe.brokers.ibkr.stream import StateChanged, SubscriptionRefused
        from tradepipe.brokers.ibkr.topics import OrderChanged, QuoteUpdate

        stream = self._stream
        assert stream is not None
        broker = self._ibkr()
        stalls = 0
        lost = False
        while not self.stopping.is_set():
            # A login that comes back reopens the socket at once, not at the end of a
            # backoff grown long while nobody was logged in.
            was_lost, lost = lost, broker.session_problem() is not None
            if was_lost and not lost:
                stream.retry_now()
            try:
                event = stream.events.get(timeout=0.25)
            except queue.Empty:
                self._flush()
                continue
            if isinstance(event, QuoteUpdate):
                stalls = 0
                if self._polling.is_set():
                    self._polling.clear()
                    log.info("feed %s: the stream flows again; snapshot polling off", self.name)
                self.publish_quote(event.quote)
                with self._build_lock:
                    done = self._builder.add_update(event)  # trades only, at IBKR's times
                for bar in done:
                    self.publish(bar)
            elif isinstance(event, OrderChanged):
                self.broker_news()
            elif isinstance(event, SubscriptionRefused):
                log.error("feed %s: %s", self.name, event.reason)
                self.set_connected(False, event.reason)
            elif isinstance(event, StateChanged):
                stalls = self._state(event, stalls)
            self._flush()

    def _state(self, event: Any, stalls: int) -> int:
        from tradepipe.brokers.ibkr.stream import StreamState

        state = event.state
        connected = state in (StreamState.CONNECTED, StreamState.STALLED)
        self.set_connected(connected, f"WebSocket {state.value}: {event.reason}")
        if state is StreamState.STALLED:
            stalls += 1
            if stalls >= self.settings.fallback_after and not self._polling.is_set():
                log.warning(
                    "feed %s: the stream stalled %d times in a row; polling snapshots "
                    "until it flows again",
                    self.name,
                    stalls,
                )
                self._polling.set()
        if event.gap is not None:
            self._fill_gap(*event.gap)
        return stalls

    def _fill_gap(self, start: Any, end: Any) -> None:
        """After a reconnect: the missed bars from IBKR's history, or a reported gap."""
        from tradepipe.brokers.ibkr.bars import backfill

        broker = self._ibkr()
        now = self.clock.now()
        for symbol in self.settings.symbols:
            with self._build_lock:
                since = self._builder.last_end(symbol) or self._builder.align(start)
                until = self._builder.align(end)
            got = backfill(broker.market, symbol, self._seconds, since, until, now=now)
            for bar in got.bars:
                self.publish(bar)
            if got.gap is not None:
                self.gap(symbol, got.gap.start, got.gap.end, got.gap.reason)


@hookimpl
def tradepipe_register_feeds(register: Any) -> None:
    register(IbkrStreamFeed)
    register(IbkrPollFeed)


__all__: Sequence[str] = ("IbkrPollFeed", "IbkrStreamFeed")
