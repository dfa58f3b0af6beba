"""Market data: bars and quotes.

:class:`Bar` is the one type created once per market event, millions of times
in a replay, so it is an immutable ``NamedTuple`` rather than a validating
model: feeds validate the data they read (see :func:`check_bar`) and then hand
out bars that nobody needs to check again. Prices are floats here, as market
data is; they become exact decimals where they turn into money (fills, ledger).
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

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
