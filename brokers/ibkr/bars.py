"""Bars from a live stream's trades, and the bars a dropped stream missed.

:class:`BarBuilder` turns trades (price, size, time) into OHLCV bars of one size, aligned to
the clock (a 5-minute bar starts at :00, :05, …, UTC), one symbol at a time. A bar is handed
out once its interval is over: when a trade of a later interval arrives (:meth:`BarBuilder.add`)
or when the clock says so (:meth:`BarBuilder.flush`, after ``grace_seconds`` for trades still
on their way). An interval without a trade gives no bar: nothing is ever made up. A trade for
an interval whose bar is already out (or older than the bar being built) is late: it is
counted in :attr:`BarBuilder.late` and dropped, because a bar once handed out never changes.

:func:`backfill` asks ``/iserver/marketdata/history`` for the bars of a span the stream missed
(:class:`~tradepipe.brokers.ibkr.stream.StateChanged` after a reconnect carries it) and says
what it could not fill: IBKR's history has no bars under a minute, a request can fail, and
history can stop short of now.

Nothing here is IBKR's but :func:`backfill`; the builder lives here until a second live feed
needs it, when it belongs in core.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tradepipe.brokers.ibkr.market import BAR_MINUTES, MarketData
from tradepipe.brokers.ibkr.topics import QuoteUpdate
from tradepipe.errors import BrokerError, ConfigError
from tradepipe.market import Bar

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
#: IBKR's history bar names by length in seconds.
HISTORY_BARS = {minutes * 60: name for name, minutes in BAR_MINUTES.items() if minutes < 1440}


def bar_seconds(size: str | float) -> float:
    """``"5s"``, ``"1min"``, ``"5min"``, ``"1h"`` (or seconds) as seconds."""
    if isinstance(size, int | float):
        seconds = float(size)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(s|sec|min|m|h)\s*", size)
        if m is None:
            raise ConfigError(f"bar size {size!r}: expected e.g. 5s, 1min, 5min or 1h")
        seconds = float(int(m.group(1)) * _UNITS[m.group(2)])
    if seconds <= 0 or 86400 % seconds:
        raise ConfigError(f"bar size {size!r}: must divide a day into whole bars")
    return seconds


class _Open:
    __slots__ = ("close", "high", "last_ts", "low", "open", "start", "volume")

    def __init__(self, start: dt.datetime, ts: dt.datetime, price: float, size: float) -> None:
        self.start, self.last_ts = start, ts
        self.open = self.high = self.low = self.close = price
        self.volume = size


class BarBuilder:
    """OHLCV bars of ``bar_size`` from trades (see the module docstring)."""

    def __init__(self, bar_size: str | float, *, grace_seconds: float = 0.0) -> None:
        self.seconds = bar_seconds(bar_size)
        self.grace = dt.timedelta(seconds=grace_seconds)
        self._length = dt.timedelta(seconds=self.seconds)
        self._open: dict[str, _Open] = {}
        #: Per symbol, the end of the last bar handed out.
        self._done: dict[str, dt.datetime] = {}
        #: Trades dropped because their bar was already out.
        self.late = 0

    def align(self, ts: dt.datetime) -> dt.datetime:
        """The start of the interval holding ``ts``."""
        epoch = ts.timestamp()
        return dt.datetime.fromtimestamp(epoch - epoch % self.seconds, dt.UTC)

    def add(self, symbol: str, ts: dt.datetime, price: float, size: float = 0.0) -> list[Bar]:
        """A trade; returns the bar it completes, if it opens a later interval."""
        start = self.align(ts)
        done = self._done.get(symbol)
        current = self._open.get(symbol)
        if (done is not None and start < done) or (current is not None and start < current.start):
            self.late += 1
            return []
        out: list[Bar] = []
        if current is not None and start > current.start:
            out.append(self._finish(symbol, current))
            current = None
        if current is None:
            self._open[symbol] = _Open(start, ts, price, size)
            return out
        current.high = max(current.high, price)
        current.low = min(current.low, price)
        if ts >= current.last_ts:
            current.close, current.last_ts = price, ts
        current.volume += size
        return out

    def add_update(self, update: QuoteUpdate) -> list[Bar]:
        """A stream's quote, if it reports a trade (see ``QuoteUpdate.traded``)."""
        quote = update.quote
        if not update.traded or quote.last is None:
            return []
        size = float(update.trade_size) if update.trade_size is not None else 0.0
        return self.add(quote.symbol, quote.ts, float(quote.last), size)

    def flush(self, now: dt.datetime) -> list[Bar]:
        """The bars whose interval (and grace) has ended by ``now``."""
        out = []
        for symbol, current in list(self._open.items()):
            if current.start + self._length + self.grace <= now:
                out.append(self._finish(symbol, current))
        return sorted(out, key=lambda b: (b.ts, b.symbol))

    def last_end(self, symbol: str) -> dt.datetime | None:
        """Where the last bar handed out for ``symbol`` ended (a backfill starts there)."""
        return self._done.get(symbol)

    def _finish(self, symbol: str, current: _Open) -> Bar:
        del self._open[symbol]
        self._done[symbol] = current.start + self._length
        return Bar(
            symbol,
            current.start,
            current.open,
            current.high,
            current.low,
            current.close,
            current.volume,
        )


@dataclass(frozen=True)
class Gap:
    """A span of ``symbol``'s bars that could not be filled, and why."""

    symbol: str
    start: dt.datetime
    end: dt.datetime
    reason: str


@dataclass(frozen=True)
class Backfill:
    bars: Sequence[Bar]
    gap: Gap | None = None


def backfill(
    market: MarketData,
    symbol: str,
    bar_size: str | float,
    start: dt.datetime,
    end: dt.datetime,
    *,
    now: dt.datetime,
) -> Backfill:
    """The bars of ``symbol`` wholly inside ``[start, end)`` from IBKR's history.

    ``start`` is where the last bar built from the stream ended (``BarBuilder.last_end``),
    ``end`` where the stream's bars begin again. Only bars finished by ``now`` count. What
    cannot be filled is the ``gap``: all of it (no history bars of that size, a failed
    request, no bars), or its end when history stops short.
    """
    seconds = bar_seconds(bar_size)
    length = dt.timedelta(seconds=seconds)
    symbol = symbol.upper()
    if end - start < length:
        return Backfill(())
    name = HISTORY_BARS.get(int(seconds))
    if name is None:
        reason = f"IBKR's history has no {seconds:g}-second bars (its smallest is 1 minute)"
        return Backfill((), Gap(symbol, start, end, reason))
    try:
        bars = market.history_since(symbol, start, bar_size=name, now=now)
    except BrokerError as exc:
        return Backfill((), Gap(symbol, start, end, f"the history request failed: {exc}"))
    # IBKR's last bar may still be in progress: only finished ones are taken.
    inside = [b for b in bars if b.ts >= start and b.ts + length <= min(end, now)]
    if not inside:
        return Backfill((), Gap(symbol, start, end, "IBKR's history has no bars for it"))
    reached = inside[-1].ts + length
    if end - reached >= length:
        reason = f"IBKR's history stops at {reached.isoformat(timespec='seconds')}"
        return Backfill(inside, Gap(symbol, reached, end, reason))
    return Backfill(inside)
