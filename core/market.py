"""Market data: bars and quotes.

:class:`Bar` is the one type created once per market event, millions of times
in a replay, so it is an immutable ``NamedTuple`` rather than a validating
model: feeds validate the data they read (see :func:`check_bar`) and then hand
out bars that nobody needs to check again. Prices are floats here, as market
data is; they become exact decimals where they turn into money (fills, ledger).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, overload

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Bar(NamedTuple):
    """One OHLCV bar of one symbol.

    :param symbol: the instrument's symbol, upper case.
    :param ts: the bar's start time, timezone-aware UTC.
    """

    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def check_bar(bar: Bar) -> str | None:
    """Return why ``bar`` is not a plausible bar, or ``None`` when it is."""
    if bar.ts.tzinfo is None:
        return "timestamp has no timezone"
    prices = (bar.open, bar.high, bar.low, bar.close)
    if not all(math.isfinite(p) and p > 0 for p in prices):
        return "prices must be finite and positive"
    if bar.high < max(bar.open, bar.close, bar.low) or bar.low > min(bar.open, bar.close):
        return "high/low do not bracket open and close"
    if not math.isfinite(bar.volume) or bar.volume < 0:
        return "volume must be zero or more"
    return None


class Quote(BaseModel):
    """A top-of-book snapshot for one instrument."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    ts: AwareDatetime
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    volume: Decimal | None = None
    conid: int | None = Field(default=None, description="broker contract id, when known")

    @property
    def mid(self) -> Decimal | None:
        """Midpoint of bid and ask, when both are present."""
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NO_TIME = timedelta(0)


def _moment(us: int) -> datetime:
    """The UTC time ``us`` microseconds after the epoch. Exact: before the year 2200
    such a count is a float with room to spare, and fromtimestamp rounds back to the
    nearest microsecond."""
    return datetime.fromtimestamp(us / 1e6, UTC)


class _Bars(Sequence[Bar]):
    """Bars read by position (:meth:`_bar`), one by one or a slice at a time."""

    __slots__ = ()

    def _bar(self, i: int) -> Bar:
        """The bar at ``i``, ``0 <= i < len(self)``."""
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> Bar: ...
    @overload
    def __getitem__(self, i: slice) -> list[Bar]: ...
    def __getitem__(self, i: int | slice) -> Bar | list[Bar]:
        if isinstance(i, slice):
            return [self._bar(j) for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError("bar index out of range")
        return self._bar(i % len(self))


class BarColumns(_Bars):
    """Bars kept as columns of machine numbers: about 50 bytes a bar, where a list
    of :class:`Bar` tuples takes about 350. Each bar is made again when read.

    A feed that holds a million bars holds them this way; reading them back gives
    bars equal to those appended (times to the microsecond, in UTC).
    """

    __slots__ = (
        "_close",
        "_high",
        "_index",
        "_low",
        "_open",
        "_ordered",
        "_symbol",
        "_symbols",
        "_ts",
        "_vol",
    )

    def __init__(self, bars: Iterable[Bar] = ()) -> None:
        self._symbols: list[str] = []
        self._index: dict[str, int] = {}
        self._symbol = array("H")
        self._ts = array("q")
        self._open, self._high, self._low = array("d"), array("d"), array("d")
        self._close, self._vol = array("d"), array("d")
        #: Whether the bars are in time order (``None``: not looked at since the last append).
        self._ordered: bool | None = None
        for bar in bars:
            self.append(bar)

    def append(self, bar: Bar) -> None:
        symbol = bar.symbol
        number = self._index.get(symbol)
        if number is None:
            number = self._index[symbol] = len(self._symbols)
            self._symbols.append(symbol)
        self._symbol.append(number)
        self._ordered = None
        # Whole microseconds since the epoch: exact for every bar time there is.
        self._ts.append((bar.ts - _EPOCH) // _MICROSECOND)
        self._open.append(bar.open)
        self._high.append(bar.high)
        self._low.append(bar.low)
        self._close.append(bar.close)
        self._vol.append(bar.volume)

    def __len__(self) -> int:
        return len(self._ts)

    def symbols(self) -> list[str]:
        """The symbols of the bars, in the order they first appear."""
        return list(self._symbols)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same bars (a list of them too)."""
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Iterator[Bar]:
        return self._bars(0, len(self))

    def _bars(self, lo: int, hi: int) -> Iterator[Bar]:
        """The bars ``lo`` to ``hi`` (exclusive), made one by one."""
        columns: tuple[Any, ...] = (
            self._symbol,
            self._ts,
            self._open,
            self._high,
            self._low,
            self._close,
            self._vol,
        )
        # Read in place (no copy), and held: the columns cannot grow under a reading.
        columns = tuple(memoryview(c)[lo:hi] for c in columns)
        make = tuple.__new__
        symbols = self._symbols
        # Each bar's time is the one before it plus the gap between them: exact
        # (integer microseconds), and far cheaper than fromtimestamp for every bar.
        # A feed's bars mostly share one gap, so its timedelta is kept.
        last_us, last_ts = 0, _EPOCH
        last_gap, step = 0, _NO_TIME
        for number, us, o, h, low, c, v in zip(*columns, strict=True):
            if us != last_us:  # the symbols of one time share its datetime
                gap = us - last_us
                if gap != last_gap:
                    last_gap, step = gap, timedelta(microseconds=gap)
                last_us, last_ts = us, last_ts + step
            yield make(Bar, (symbols[number], last_ts, o, h, low, c, v))

    def window(self, start: datetime | None = None, end: datetime | None = None) -> BarWindow:
        """The bars from ``start`` (inclusive) until ``end`` (exclusive), without a copy.

        Found by bisection when the bars are in time order, as a feed gives them;
        otherwise by looking at each (the first call finds out which). A reading
        under way (of a window or of all the bars) holds the columns in place:
        appending to them meanwhile raises :exc:`BufferError`.
        """
        if self._ordered is None:
            ts = self._ts
            self._ordered = all(ts[i] <= ts[i + 1] for i in range(len(ts) - 1))
        if not self._ordered:
            return BarWindow(
                BarColumns(
                    b
                    for b in self
                    if (start is None or b.ts >= start) and (end is None or b.ts < end)
                )
            )
        lo = 0 if start is None else bisect_left(self._ts, (start - _EPOCH) // _MICROSECOND)
        hi = len(self) if end is None else bisect_left(self._ts, (end - _EPOCH) // _MICROSECOND)
        return BarWindow(self, lo, max(lo, hi))

    def _bar(self, i: int) -> Bar:
        return Bar(
            self._symbols[self._symbol[i]],
            _moment(self._ts[i]),
            self._open[i],
            self._high[i],
            self._low[i],
            self._close[i],
            self._vol[i],
        )


class BarWindow(_Bars):
    """A stretch of a :class:`BarColumns`, by position: read in place, never copied."""

    __slots__ = ("_columns", "_hi", "_lo")

    def __init__(self, columns: BarColumns, lo: int = 0, hi: int | None = None) -> None:
        self._columns = columns
        self._lo = lo
        self._hi = len(columns) if hi is None else hi

    def __len__(self) -> int:
        return self._hi - self._lo

    def __iter__(self) -> Iterator[Bar]:
        return self._columns._bars(self._lo, self._hi)

    def _bar(self, i: int) -> Bar:
        return self._columns._bar(self._lo + i)

    def symbols(self) -> list[str]:
        """The symbols of the window's bars, sorted."""
        columns = self._columns
        numbers = set(memoryview(columns._symbol)[self._lo : self._hi])
        return sorted(columns._symbols[n] for n in numbers)
