"""How the paper simulator fills an order: the bar and price it fills at, and its costs.

Each order is matched only against bars that start after it was accepted, so
an order decided on bar *t* can first fill on bar *t+1*:

* **market** — at the bar's open;
* **limit** — buy: at the open if the open is at or below the limit, else at
  the limit if the bar's low reaches it (sell: mirror image);
* **stop** — buy: at the open if the bar opens at or above the stop (a gap),
  else at the stop if the high reaches it (sell: mirror image);
* **stop-limit** — triggers like a stop, then behaves as a limit. Triggered by a
  gap at the open, it may fill in the same bar at the better of open and limit,
  or at the limit if the bar trades through it. Triggered inside the bar with a
  limit on the wrong side of the stop, it waits for the next bar, because a
  bar does not tell what traded first.

DAY orders expire when the first bar of a later trading date (in ``timezone``)
arrives; GTC orders stay. A DAY order's trading date is that of the first bar
it can fill on, which is what lets a daily replay fill at the next day's open;
with intraday bars, an order placed after a session's last bar is good for the
next session.

Orders fill completely. Slippage (``slippage_bps``) worsens market and stop
fills; limit fills never cross their limit. Commission ``ibkr_fixed`` follows
IBKR's fixed US-stock rate: a per-share fee with a per-order minimum and a cap
of a fraction of the trade value.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from tradepipe import Bar, OrderIntent
from tradepipe.brokers.paper.account import SimOrder
from tradepipe.money import ZERO, cents

_PRICE_STEP = Decimal("0.0001")
_BPS = Decimal(10_000)


def match(sim: SimOrder, bar: Bar) -> float | None:
    """The price ``sim`` fills at in ``bar``, or None; marks a stop-limit it triggers."""
    kind = sim.intent.order_type
    buy = sim.intent.side == "buy"
    o = bar.open
    if kind == "market":
        return o
    if kind == "limit":
        return _limit_price(buy, sim.limit, bar)  # type: ignore[arg-type]
    stop = sim.stop
    assert stop is not None
    gapped = o >= stop if buy else o <= stop
    touched = gapped or (bar.high >= stop if buy else bar.low <= stop)
    if kind == "stop":
        if not touched:
            return None
        return o if gapped else stop
    # stop-limit
    if sim.triggered:
        return _limit_price(buy, sim.limit, bar)  # type: ignore[arg-type]
    if not touched:
        return None
    sim.triggered = True
    limit = sim.limit
    assert limit is not None
    if gapped:
        return _limit_price(buy, limit, bar)
    ok = stop <= limit if buy else stop >= limit
    return stop if ok else None


def _limit_price(buy: bool, limit: float, bar: Bar) -> float | None:
    o = bar.open
    if buy:
        if o <= limit:
            return o
        return limit if bar.low <= limit else None
    if o >= limit:
        return o
    return limit if bar.high >= limit else None


class TradingDates:
    """The trading date of a bar's time, in the exchange's timezone."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        #: The last date asked for, as the UTC times it starts and ends at.
        self._day: tuple[dt.datetime, dt.datetime, dt.date] | None = None

    def of(self, ts: dt.datetime) -> dt.date:
        # Bars come in time order: most fall in the date the last one fell in,
        # which two comparisons tell (a conversion to the timezone costs ten).
        known = self._day
        aware = ts.tzinfo is not None  # a naive time is the machine's, as astimezone takes it
        if known is not None and aware and known[0] <= ts < known[1]:
            return known[2]
        tz = self._tz
        day = ts.astimezone(tz).date()
        if not aware:
            return day
        start = dt.datetime.combine(day, dt.time(), tz)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
        # Only a date with one UTC offset throughout is kept as its bounds: on the
        # day the clocks change, a zone that turns them back just after midnight
        # (St John's did until 2011) has the date in two pieces. Such a day is
        # converted time by time.
        if start.utcoffset() == end.utcoffset():
            start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
            if start <= ts < end:
                self._day = (start, end, day)
        return day


class Costs:
    """Slippage and commission, as the broker's settings set them."""

    def __init__(
        self,
        *,
        commission: str,
        per_share: Decimal,
        minimum: Decimal,
        max_fraction: Decimal,
        slippage_bps: Decimal,
    ) -> None:
        self._free = commission == "none"
        self._per_share = per_share
        self._minimum = minimum
        self._max_fraction = max_fraction
        self._slip = slippage_bps / _BPS

    def slipped(self, price: Decimal, intent: OrderIntent) -> Decimal:
        """``price`` worsened by slippage if ``intent`` is a market or stop order."""
        if not self._slip or intent.order_type not in ("market", "stop"):
            return price
        factor = 1 + self._slip if intent.side == "buy" else 1 - self._slip
        return (price * factor).quantize(_PRICE_STEP, rounding=ROUND_HALF_EVEN)

    def commission(self, quantity: Decimal, price: Decimal) -> Decimal:
        if self._free:
            return ZERO
        fee = max(quantity * self._per_share, self._minimum)
        return cents(min(fee, quantity * price * self._max_fraction))
