"""A seeded random-walk feed: realistic-looking bars without any data files.

Prices follow a geometric random walk, rounded to cents. ``drift`` and
``volatility`` are per trading day and scaled to the bar length (a 1-minute bar
gets 1/390 of the day's drift and 1/sqrt(390) of its volatility), so every
interval gives plausible prices, with a small opening gap and a high/low that bracket open
and close. Bars fall on weekdays, in regular US hours (09:30-16:00 New York)
for intraday intervals. The same seed always gives the same bars.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field
from tradepipe import Bar, ComponentSettings, Feed, hookimpl
from tradepipe.clock import NEW_YORK
from tradepipe.market import BarColumns

_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "1d": 390}
_SESSION_MINUTES = 390


def session_times(start: dt.date, interval: str, count: int) -> Iterator[dt.datetime]:
    """Bar start times (UTC): weekdays, regular New York hours."""
    step = _MINUTES[interval]
    per_day = 1 if interval == "1d" else _SESSION_MINUTES // step
    day = start
    produced = 0
    while produced < count:
        if day.weekday() < 5:
            opening = dt.datetime.combine(day, dt.time(9, 30), NEW_YORK).astimezone(dt.UTC)
            for i in range(min(per_day, count - produced)):
                yield opening + dt.timedelta(minutes=i * step)
            produced += per_day
        day += dt.timedelta(days=1)


def random_walk(
    rng: random.Random, start_price: float, count: int, drift: float, volatility: float
) -> Iterator[tuple[float, float, float, float, float]]:
    """Yield ``count`` (open, high, low, close, volume) rows."""
    close = start_price
    gauss = rng.gauss
    for _ in range(count):
        open_ = round(max(close * math.exp(gauss(0, volatility / 4)), 0.01), 2)
        close = round(max(open_ * math.exp(drift + gauss(0, volatility)), 0.01), 2)
        high = round(max(open_, close) * (1 + abs(gauss(0, volatility / 2))), 2)
        low = round(max(min(open_, close) * (1 - abs(gauss(0, volatility / 2))), 0.01), 2)
        volume = float(int(1_000 + abs(gauss(0, 50_000))))
        yield open_, high, low, close, volume


class SyntheticFeed(Feed):
    """Generated bars for a few symbols (the demo's feed)."""

    name = "synthetic"
    description = "seeded random-walk bars, no data files needed"

    class Settings(ComponentSettings):
        symbols: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "SPY"], min_length=1)
        bars: int = Field(default=1000, ge=1, le=50_000_000, description="bars per symbol")
        interval: Literal["1m", "5m", "15m", "1h", "1d"] = "1d"
        start: dt.date = dt.date(2022, 1, 3)
        seed: int = 7
        start_price: Decimal = Field(default=Decimal(100), gt=0)
        #: Expected log return per trading day.
        drift: float = Field(default=0.0003, gt=-0.1, lt=0.1)
        #: Standard deviation of the log return per trading day.
        volatility: float = Field(default=0.015, gt=0, lt=1)

    settings: Settings

    def symbols(self) -> list[str]:
        return [s.upper() for s in self.settings.symbols]

    def total(self) -> int:
        return self.settings.bars * len(self.settings.symbols)

    def load(self) -> None:
        s = self.settings
        times: Iterable[dt.datetime] = session_times(s.start, s.interval, s.bars)
        if len(self.symbols()) > 1:
            times = list(times)  # every symbol's walk takes the same times
        share = _MINUTES[s.interval] / _SESSION_MINUTES
        drift, volatility = s.drift * share, s.volatility * math.sqrt(share)
        columns = []
        for index, symbol in enumerate(self.symbols()):
            rng = random.Random(f"{s.seed}:{symbol}")
            price = float(s.start_price) * (1 + 0.25 * index)
            rows = random_walk(rng, price, s.bars, drift, volatility)
            # Held as columns (see BarColumns): a million bars in about 50 MB.
            columns.append(
                BarColumns(Bar(symbol, ts, *row) for ts, row in zip(times, rows, strict=True))
            )
        if len(columns) == 1:
            self._bars = columns[0]
        else:
            # Interleave: at each time, every symbol's bar, in the listed order.
            self._bars = BarColumns(bar for group in zip(*columns, strict=True) for bar in group)


@hookimpl
def tradepipe_register_feeds(register: Any) -> None:
    register(SyntheticFeed)
