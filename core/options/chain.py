"""Option chains: the options a broker lists, and choosing among them.

A chain is a list of :class:`OptionQuote`: a listed :class:`~tradepipe.Option`
with what the broker knows of it (a price, a delta) where it knows it. The
choosers pick the listed expiry nearest a requested one (or a DTE), the listed
strike nearest a requested one, and the option whose delta is nearest a target.
Ties go to the lower strike or the earlier expiry, so a choice is deterministic.
:class:`ChainCache` reads a broker's chain once per underlying and expiry and
prices an option or combo chosen from what it read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal

from tradepipe.instruments import Combo, Option, Stock
from tradepipe.record import Record


class OptionQuote(Record):
    """One listed option and, where the broker supplies them, its price and greeks.

    :param price: the option's price per share (a mid, a last, or a model price).
    :param delta: the option's delta (calls 0..1, puts -1..0).
    """

    option: Option
    price: Decimal | None = None
    delta: float | None = None
    iv: float | None = None


#: ``(underlying, expiry or None) -> the chain``: how a strategy reaches a broker's chain.
ChainSource = Callable[[str, "dt.date | None"], Sequence[OptionQuote]]


class ChainError(ValueError):
    """The chain cannot give what was asked; the message names the field."""


class ChainCache:
    """A :data:`ChainSource` that reads each ``(underlying, expiry)`` once and keeps it.

    Choosing a strategy's legs may ask for one chain several times (a leg at a
    time); the broker is asked once. A read that fails (the source raises) is
    not kept, so the next call asks again. :meth:`clear` forgets every read.
    """

    def __init__(self, source: ChainSource) -> None:
        self._source = source
        self._read: dict[tuple[str, dt.date | None], tuple[OptionQuote, ...]] = {}

    def __call__(self, underlying: str, expiry: dt.date | None = None) -> tuple[OptionQuote, ...]:
        key = (underlying, expiry)
        chain = self._read.get(key)
        if chain is None:
            chain = self._read[key] = tuple(self._source(underlying, expiry))
        return chain

    def clear(self) -> None:
        self._read.clear()

    def price_of(self, instrument: Stock | Option | Combo | None) -> Decimal | None:
        """Price per share of an option (or Σ leg price × ratio of a combo) from the chains read.

        ``None`` for a stock, or when a leg was not in a chain read or it had no price.
        """
        if instrument is None or isinstance(instrument, Stock):
            return None
        prices = {q.option.ticker: q.price for chain in self._read.values() for q in chain}
        if isinstance(instrument, Option):
            return prices.get(instrument.ticker)
        total = Decimal(0)
        for leg in instrument.legs:
            inner = leg.instrument
            price = prices.get(inner.ticker) if isinstance(inner, Option) else None
            if price is None:
                return None
            total += price * leg.ratio
        return total


def expiries(chain: Sequence[OptionQuote]) -> list[dt.date]:
    return sorted({q.option.expiry for q in chain})


def choose_expiry(
    chain: Sequence[OptionQuote],
    *,
    expiry: dt.date | None = None,
    dte: int | None = None,
    today: dt.date | None = None,
    field: str = "expiry",
) -> dt.date:
    """The listed expiry equal to ``expiry``, or nearest ``today + dte``.

    An expiry before ``today`` is never chosen: such an option cannot be
    traded (a paper account whose bars stopped long ago still lists them).

    :raises ChainError: no such expiry is listed, it has passed, or the chain
        is empty.
    """
    listed = expiries(chain)
    if expiry is not None:
        if expiry not in listed:
            shown = ", ".join(d.isoformat() for d in listed[:8]) or "none"
            raise ChainError(f"{field}: no options expire on {expiry}; listed: {shown}")
        if today is not None and expiry < today:
            raise ChainError(f"{field}: {expiry} has passed (today is {today})")
        return expiry
    if not listed:
        raise ChainError(f"{field}: the broker lists no options for this underlying")
    if dte is None or today is None:
        raise ChainError(f"{field}: give an expiry or a dte")
    open_ = [d for d in listed if d >= today]
    if not open_:
        raise ChainError(
            f"{field}: every expiry the broker lists has passed (the latest is "
            f"{listed[-1]}, today is {today}); is its market data current?"
        )
    target = today + dt.timedelta(days=dte)
    return min(open_, key=lambda d: (abs((d - target).days), d))


def by_strike(
    chain: Sequence[OptionQuote], expiry: dt.date, right: str
) -> dict[Decimal, OptionQuote]:
    """The options of one expiry and right, by strike."""
    return {
        q.option.strike: q for q in chain if q.option.expiry == expiry and q.option.right == right
    }


def nearest_strike(
    chain: Sequence[OptionQuote], expiry: dt.date, right: str, strike: Decimal, field: str
) -> OptionQuote:
    """The listed option of ``expiry``/``right`` whose strike is nearest ``strike``."""
    listed = by_strike(chain, expiry, right)
    if not listed:
        raise ChainError(f"{field}: no {right} options listed for {expiry}")
    best = min(listed, key=lambda k: (abs(k - strike), k))
    return listed[best]


def nearest_delta(
    chain: Sequence[OptionQuote], expiry: dt.date, right: str, delta: float, field: str
) -> OptionQuote:
    """The listed option of ``expiry``/``right`` whose delta is nearest ``delta``.

    ``delta`` is signed as the option's own (a put's is negative); a positive
    target for a put is read as its absolute value.
    """
    if right == "P" and delta > 0:
        delta = -delta
    listed = [q for q in by_strike(chain, expiry, right).values() if q.delta is not None]
    if not listed:
        raise ChainError(
            f"{field}: the broker supplies no deltas for these options; choose by strike"
        )
    return min(listed, key=lambda q: (abs(q.delta - delta), q.option.strike))  # type: ignore[operator]
