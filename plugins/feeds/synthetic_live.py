"""``synthetic_live``: a seeded random walk that ticks on the run's clock.

A live feed that needs no account and no network, for trying a live run on a
fresh machine (``tradepipe run-pipeline --live --feed synthetic_live``) and for
tests and benchmarks. Prices follow a geometric random walk (``drift`` and
``volatility`` per 6.5-hour trading day, scaled to each step, as the
``synthetic`` replay feed does); a quote is published every ``quote_seconds``
and a bar of every symbol once each ``bar_size`` interval has ended on the
run's clock. Bars are aligned to the session's open (to whole intervals since
the epoch when the run trades around the clock, the feed's default), and the
last bar of a session ends at its close. Nothing is produced while the market
is closed.

``speed`` runs the market faster than real time: at ``speed = 60`` a minute
of market passes every wall second. The whole run then runs on that clock
(orders, the calendar, the ledger's times), so its bars are still stamped
with the run's time, never back-dated. If the feed falls behind by a whole
interval (the process was paused), the missed bars are reported as a gap, not
made up.

Warm-up: ``warmup_bars`` bars per symbol before the first live one, from the
same walk, so indicators are ready at once; the live walk goes on from their
last close. Every start begins the walk again at ``start_price``.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator
from tradepipe import Bar, ComponentSettings, Quote, hookimpl
from tradepipe.live.feed import LiveFeed, align, session_bar_times
from tradepipe.plugins.feeds.synthetic import random_walk
from tradepipe.settings import parse_duration

#: Seconds in the trading day ``drift`` and ``volatility`` are given for.
_DAY = 6.5 * 3600


class SyntheticLiveFeed(LiveFeed):
    """A seeded real-time random walk for a few symbols."""

    name = "synthetic_live"
    description = "seeded real-time random-walk bars and quotes, no account needed"
    default_calendar = "always"

    class Settings(ComponentSettings):
        symbols: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "SPY"], min_length=1)
        #: Bar length: ``5s``, ``1m``, ``5m`` … (1 second to 4 hours).
        bar_size: str = "5s"
        #: Market seconds per wall second (1: real time).
        speed: float = Field(default=1.0, gt=0, le=100_000)
        #: Publish a quote of every symbol this often (market seconds); 0: bars only.
        quote_seconds: float = Field(default=1.0, ge=0)
        #: Completed bars per symbol handed over before the first live one.
        warmup_bars: int = Field(default=60, ge=0, le=100_000)
        seed: int = 7
        start_price: Decimal = Field(default=Decimal(100), gt=0)
        #: Expected log return per trading day.
        drift: float = Field(default=0.0003, gt=-0.1, lt=0.1)
        #: Standard deviation of the log return per trading day.
        volatility: float = Field(default=0.015, gt=0, lt=1)

        @field_validator("symbols")
        @classmethod
        def _upper(cls, value: list[str]) -> list[str]:
            symbols = [s.strip().upper() for s in value]
            if any(not s for s in symbols):
                raise ValueError("a symbol is empty")
            return list(dict.fromkeys(symbols))

        @field_validator("bar_size")
        @classmethod
        def _bar_size(cls, value: str) -> str:
            length = parse_duration(value)
            if not timedelta(seconds=1) <= length <= timedelta(hours=4):
                raise ValueError(f"{value!r}: a bar lasts from 1s to 4h")
            return value.strip()

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        self._step = parse_duration(s.bar_size)
        self._rng = {sym: random.Random(f"{s.seed}:{sym}") for sym in s.symbols}
        self._price = {
            sym: float(s.start_price) * (1 + 0.25 * i) for i, sym in enumerate(s.symbols)
        }
        self._warm: list[Bar] = []

    @property
    def bar_seconds(self) -> float:
        return self._step.total_seconds()

    @property
    def speed(self) -> float:
        return self.settings.speed

    def symbols(self) -> list[str]:
        return list(self.settings.symbols)

    # -- the feed ------------------------------------------------------------------

    def open(self) -> None:
        self._warm = self._history(self.clock.now())
        self.set_connected(True, f"synthetic prices, {self.settings.bar_size} bars")
        self.spawn(self._walk, "walk")

    def warmup(self) -> list[Bar]:
        return list(self._warm)

    def _history(self, now: datetime) -> list[Bar]:
        s = self.settings
        times = session_bar_times(self.hours, now, self._step, s.warmup_bars)
        if not times:
            return []
        share = self.bar_seconds / _DAY
        drift, volatility = s.drift * share, s.volatility * math.sqrt(share)
        columns = []
        for symbol in s.symbols:
            rows = list(
                random_walk(self._rng[symbol], self._price[symbol], len(times), drift, volatility)
            )
            self._price[symbol] = rows[-1][3]
            columns.append([Bar(symbol, ts, *row) for ts, row in zip(times, rows, strict=True)])
        return [bar for group in zip(*columns, strict=True) for bar in group]

    def _interval(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The bar interval ``now`` falls in (clipped to the session), or ``None`` while closed."""
        if self.hours is None:
            start = align(now, self._step, None)
            return start, start + self._step
        session = self.hours.session_at(now)
        if session is None:
            return None
        start = align(now, self._step, session[0])
        return start, min(start + self._step, session[1])

    def _walk(self) -> None:
        clock, stop = self.clock, self.stopping
        while not stop.is_set():
            now = clock.now()
            interval = self._interval(now)
            if interval is None:
                assert self.hours is not None
                if not clock.wait(self.hours.next_open(now), stop):
                    return
                continue
            start, end = interval
            if not self._bar(now, start, end):
                return
            late = clock.now()
            if late - end >= self._step:
                resumed = self._interval(late)
                self.gap(
                    "*",
                    end,
                    resumed[0] if resumed else late,
                    f"the feed fell {(late - end).total_seconds():.0f} s behind "
                    "(was the process paused?); missed bars are not made up",
                )

    def _bar(self, now: datetime, start: datetime, end: datetime) -> bool:
        """Walk the prices from ``now`` to ``end``, quoting on the way; publish the bars.

        :returns: ``False`` when the feed was stopped first.
        """
        s = self.settings
        clock, stop = self.clock, self.stopping
        path = {sym: [self._price[sym]] for sym in s.symbols}
        t = max(now, start)
        while t < end:
            after = end
            if s.quote_seconds > 0:
                after = min(end, t + timedelta(seconds=s.quote_seconds))
            if not clock.wait(after, stop):
                return False
            self._step_prices(path, (after - t).total_seconds())
            if after < end:
                for symbol in s.symbols:
                    price = Decimal(repr(path[symbol][-1]))
                    self.publish_quote(Quote.model_construct(symbol=symbol, ts=after, last=price))
            t = after
        for symbol in s.symbols:
            prices = path[symbol]
            rng = self._rng[symbol]
            volume = float(int(100 + abs(rng.gauss(0, 5_000)) * self.bar_seconds / 60))
            self.publish(
                Bar(symbol, start, prices[0], max(prices), min(prices), prices[-1], volume)
            )
        return True

    def _step_prices(self, path: dict[str, list[float]], seconds: float) -> None:
        s = self.settings
        share = max(seconds, 0.0) / _DAY
        drift, sigma = s.drift * share, s.volatility * math.sqrt(share)
        for symbol, prices in path.items():
            moved = prices[-1] * math.exp(drift + self._rng[symbol].gauss(0, sigma))
            price = round(max(moved, 0.01), 2)
            prices.append(price)
            self._price[symbol] = price


@hookimpl
def tradepipe_register_feeds(register: Any) -> None:
    register(SyntheticLiveFeed)
