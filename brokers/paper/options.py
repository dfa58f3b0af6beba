"""Options at the paper simulator: a synthetic chain, Black–Scholes prices, fills.

**Chain.** Around the underlying's last price, deterministic: weekly expiries
(the next five Fridays) and monthly ones (the third Friday of the next twelve
months); strikes ±30% around the price at the standard increments (0.50 under
25, 1 under 100, 2.50 under 200, 5 under 500, else 10).

**Prices.** An option with a bar of its own (its OCC symbol fed like a stock)
is priced at that bar's close; otherwise by Black–Scholes on the underlying
price with ``option_volatility`` and ``risk_free_rate`` (no dividends), time to
expiry from the bar's time to 16:00 New York on the expiry date, rounded to the
cent (at least 0.01). A combo is Σ leg price × ratio.

**Fills.** An option or combo order is matched on the bars of its underlying:
a market order at the model price at the bar's open; a limit order at the
open's model price if that is through the limit, else at the limit if the
model price at the bar's high or low reaches it. A combo's fill is reported as
IBKR reports one: the order's fill at the combo's net price, carrying one fill
per leg (its OCC symbol, multiplier 100, the leg's price); the legs are what is
booked, each a position of its own. Commission: ``commission_per_contract`` per
contract (legs × ratio × quantity), at least ``commission_minimum`` per order.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from tradepipe import Bar, Fill, OrderIntent
from tradepipe.brokers.paper.account import PaperAccount, SimOrder
from tradepipe.clock import NEW_YORK
from tradepipe.instruments import Combo, Leg, Option
from tradepipe.money import ZERO, cents, plain, to_decimal
from tradepipe.options.chain import OptionQuote
from tradepipe.orders import Side

_CLOSE = dt.time(16, 0)
_YEAR = 365.0 * 86_400
_CENT = Decimal("0.01")
_ONE = Decimal(1)
_RIGHTS: tuple[Literal["C", "P"], ...] = ("C", "P")


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(s: float, k: float, t: float, r: float, sigma: float, right: str) -> float:
    """The Black–Scholes price of a European option (no dividends); intrinsic at ``t <= 0``."""
    if t <= 0 or sigma <= 0:
        forward = k * math.exp(-r * max(t, 0.0))
        return max(s - forward, 0.0) if right == "C" else max(forward - s, 0.0)
    sd = sigma * math.sqrt(t)
    d1 = (math.log(s / k) + (r + 0.5 * sigma * sigma) * t) / sd
    d2 = d1 - sd
    discounted = k * math.exp(-r * t)
    if right == "C":
        return s * norm_cdf(d1) - discounted * norm_cdf(d2)
    return discounted * norm_cdf(-d2) - s * norm_cdf(-d1)


def bs_delta(s: float, k: float, t: float, r: float, sigma: float, right: str) -> float:
    """The option's delta: N(d1) for a call, N(d1) - 1 for a put."""
    if t <= 0 or sigma <= 0:
        itm = s > k if right == "C" else s < k
        return (1.0 if itm else 0.0) * (1 if right == "C" else -1)
    d1 = (math.log(s / k) + (r + 0.5 * sigma * sigma) * t) / (sigma * math.sqrt(t))
    return norm_cdf(d1) if right == "C" else norm_cdf(d1) - 1.0


def years_to(expiry: dt.date, ts: dt.datetime) -> float:
    """Years from ``ts`` to the expiry's 16:00 New York close (0 once past)."""
    close = dt.datetime.combine(expiry, _CLOSE, tzinfo=NEW_YORK)
    return max((close - ts).total_seconds(), 0.0) / _YEAR


def strike_step(price: float) -> Decimal:
    for bound, step in ((25, "0.5"), (100, "1"), (200, "2.5"), (500, "5")):
        if price < bound:
            return Decimal(step)
    return Decimal(10)


def listed_expiries(today: dt.date) -> list[dt.date]:
    """The next five Fridays and the third Friday of each of the next twelve months."""
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7 or 7)
    days = {friday + dt.timedelta(weeks=n) for n in range(5)}
    year, month = today.year, today.month
    for _ in range(13):
        first = dt.date(year, month, 1)
        third = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
        if third > today:
            days.add(third)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(days)[:17]


def parse_occ(ticker: str) -> Option | None:
    """The option an OCC symbol names (``AAPL  261218C00200000``), or None."""
    if len(ticker) != 21 or ticker[12] not in "CP" or not ticker[13:].isdigit():
        return None
    try:
        expiry = dt.datetime.strptime(ticker[6:12], "%y%m%d").date()
    except ValueError:
        return None
    return Option(
        underlying=ticker[:6].strip(),
        expiry=expiry,
        strike=Decimal(int(ticker[13:])) / 1000,
        right="C" if ticker[12] == "C" else "P",
    )


class OptionDesk:
    """Prices, chains, checks and fills of options for one paper account."""

    def __init__(
        self,
        *,
        volatility: float,
        rate: float,
        per_contract: Decimal,
        minimum: Decimal,
        free: bool,
    ) -> None:
        self.volatility = volatility
        self.rate = rate
        self._per_contract = per_contract
        self._minimum = minimum
        self._free = free

    # -- prices ------------------------------------------------------------------

    def option_price(
        self, option: Option, s: float, ts: dt.datetime, last: Mapping[str, Bar]
    ) -> Decimal:
        """A quote's close when the option has bars, else Black–Scholes, in cents (≥ 0.01)."""
        quoted = last.get(option.ticker)
        if quoted is not None:
            return to_decimal(quoted.close)
        t = years_to(option.expiry, ts)
        value = black_scholes(s, float(option.strike), t, self.rate, self.volatility, option.right)
        return max(Decimal(repr(value)).quantize(_CENT, rounding=ROUND_HALF_EVEN), _CENT)

    def leg_prices(
        self, instrument: Option | Combo, s: float, ts: dt.datetime, last: Mapping[str, Bar]
    ) -> list[Decimal]:
        legs = (
            (Leg(instrument=instrument, ratio=1),)
            if isinstance(instrument, Option)
            else (instrument.legs)
        )
        return [
            self.option_price(leg.instrument, s, ts, last)
            if isinstance(leg.instrument, Option)
            else to_decimal(s)
            for leg in legs
        ]

    def unit_price(
        self, instrument: Option | Combo, s: float, ts: dt.datetime, last: Mapping[str, Bar]
    ) -> Decimal:
        """The price per share of one unit: the option's, or Σ leg price × ratio."""
        prices = self.leg_prices(instrument, s, ts, last)
        if isinstance(instrument, Option):
            return prices[0]
        return sum((p * leg.ratio for p, leg in zip(prices, instrument.legs, strict=False)), ZERO)

    def chain(
        self,
        underlying: str,
        expiry: dt.date | None,
        s: float,
        ts: dt.datetime,
        last: Mapping[str, Bar],
    ) -> list[OptionQuote]:
        """The synthetic chain of ``underlying`` at price ``s`` and time ``ts``."""
        dates = listed_expiries(ts.astimezone(NEW_YORK).date())
        if expiry is not None:
            dates = [d for d in dates if d == expiry]
        step = strike_step(s)
        low = (Decimal(repr(s * 0.7)) / step).to_integral_value() * step
        strikes = []
        k = max(low, step)
        while k <= Decimal(repr(s * 1.3)):
            strikes.append(plain(k))
            k += step
        out = []
        for day in dates:
            t = years_to(day, ts)
            for strike in strikes:
                for right in _RIGHTS:
                    option = Option(underlying=underlying, expiry=day, strike=strike, right=right)
                    delta = bs_delta(s, float(strike), t, self.rate, self.volatility, right)
                    out.append(
                        OptionQuote.trusted(
                            option=option,
                            price=self.option_price(option, s, ts, last),
                            delta=round(delta, 4),
                            iv=self.volatility,
                        )
                    )
        return out

    # -- orders ------------------------------------------------------------------

    def commission(self, intent: OrderIntent) -> Decimal:
        if self._free:
            return ZERO
        instrument = intent.instrument
        ratios = (
            [1]
            if isinstance(instrument, Option)
            else [abs(leg.ratio) for leg in instrument.legs if isinstance(leg.instrument, Option)]  # type: ignore[union-attr]
        )
        contracts = intent.quantity * sum(ratios)
        return cents(max(contracts * self._per_contract, self._minimum))

    def check(
        self,
        intent: OrderIntent,
        account: PaperAccount,
        key: str,
        replacing: SimOrder | None = None,
    ) -> str:
        """Why the simulator refuses this option or combo order, or ``""``.

        :param replacing: the order ``intent`` changes (a modify): its own cash
            reservation is not counted against it.
        """
        if intent.quantity <= 0:
            return f"quantity must be positive, got {intent.quantity}"
        if intent.order_type not in ("market", "limit"):
            return "the paper simulator fills option orders of type market or limit only"
        bar = account.last.get(key)
        if bar is None:
            return f"unknown symbol {key}: no market data for the underlying"
        instrument = intent.instrument
        assert isinstance(instrument, Option | Combo)
        options = (
            [instrument]
            if isinstance(instrument, Option)
            else [leg.instrument for leg in instrument.legs if isinstance(leg.instrument, Option)]
        )
        today = bar.ts.astimezone(NEW_YORK).date()
        expired = [o.symbol for o in options if o.expiry < today]
        if expired:
            return f"option {expired[0]} has expired"
        if intent.side == "buy":
            price = intent.limit_price or self.unit_price(
                instrument, bar.close, bar.ts, account.last
            )
            cost = intent.quantity * price * instrument.multiplier + self.commission(intent)
            available = account.book.cash - account.reserved(exclude=replacing)
            if cost > available:
                return (
                    f"insufficient buying power: {cents(cost)} needed, {cents(available)} available"
                )
        return ""

    def match(self, sim: SimOrder, bar: Bar, last: Mapping[str, Bar]) -> Decimal | None:
        """The unit price ``sim`` fills at on this bar of its underlying, or None."""
        instrument = sim.intent.instrument
        assert isinstance(instrument, Option | Combo)
        ts = bar.ts
        at_open = self.unit_price(instrument, bar.open, ts, last)
        if sim.intent.order_type == "market":
            return at_open
        limit = sim.intent.limit_price
        assert limit is not None
        buy = sim.intent.side == "buy"
        if at_open <= limit if buy else at_open >= limit:
            return at_open
        reach = [self.unit_price(instrument, p, ts, last) for p in (bar.high, bar.low)]
        if min(reach) <= limit if buy else max(reach) >= limit:
            return limit
        return None

    def fill(self, sim: SimOrder, price: Decimal, bar: Bar, account: PaperAccount) -> Fill:
        """Fill ``sim`` completely at ``price`` per unit: book the legs, return the order's fill."""
        intent = sim.intent
        instrument = intent.instrument
        assert isinstance(instrument, Option | Combo)
        commission = self.commission(intent)
        unit = max(price, _CENT)
        fill = Fill.trusted(
            execution_id=f"{sim.broker_id}.1",
            client_order_id=intent.client_order_id,
            decision_id=intent.decision_id,
            broker_order_id=sim.broker_id,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            price=unit,
            commission=commission,
            multiplier=instrument.multiplier,
            ts=bar.ts,
        )
        if isinstance(instrument, Combo):
            legs = self._legs(fill, instrument, unit, bar, account)
            fill = fill.model_copy(update={"legs": tuple(legs)})
        account.book.apply(fill)  # a combo's legs, each a position of its own
        account.fills.append(fill)
        return fill

    def _legs(
        self, fill: Fill, combo: Combo, unit: Decimal, bar: Bar, account: PaperAccount
    ) -> list[Fill]:
        """The combo's fill as one fill per leg, priced so they add up to ``unit``."""
        prices = self.leg_prices(combo, bar.open, bar.ts, account.last)
        model = sum((p * leg.ratio for p, leg in zip(prices, combo.legs, strict=False)), ZERO)
        # A limit fill is at the limit, not the model: the first leg takes the difference.
        prices[0] = prices[0] + (unit - model) / combo.legs[0].ratio
        out = []
        for n, (leg, leg_price) in enumerate(zip(combo.legs, prices, strict=False)):
            inst = leg.instrument
            side = Side.BUY if leg.ratio * fill.side.sign > 0 else Side.SELL
            out.append(
                Fill.trusted(
                    execution_id=f"{fill.execution_id}.{n + 1}",
                    client_order_id=fill.client_order_id,
                    decision_id=fill.decision_id,
                    broker_order_id=fill.broker_order_id,
                    symbol=inst.ticker if isinstance(inst, Option) else inst.symbol,
                    side=side,
                    quantity=fill.quantity * abs(leg.ratio),
                    price=leg_price,
                    commission=fill.commission if n == 0 else ZERO,
                    multiplier=inst.multiplier if isinstance(inst, Option) else _ONE,
                    ts=fill.ts,
                )
            )
        return out

    def marks(self, account: PaperAccount, ts: dt.datetime | None) -> dict[str, float]:
        """Model prices of the option positions held whose underlying has a price."""
        out: dict[str, float] = {}
        for position in account.book.positions():
            symbol = position.symbol
            if symbol in account.last or len(symbol) != 21:
                continue
            option = parse_occ(symbol)
            under = None if option is None else account.last.get(option.underlying)
            if option is None or under is None:
                continue
            price = self.option_price(option, under.close, ts or under.ts, account.last)
            out[symbol] = float(price)
        return out
