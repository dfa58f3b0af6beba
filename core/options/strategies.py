"""Named option strategies: their legs, chosen from a chain, and their risk at expiry.

:func:`build` turns an :class:`~tradepipe.decision_schema.OptionStrategySpec`
into a :class:`Strategy`: the instrument to order (an
:class:`~tradepipe.Option`, or a :class:`~tradepipe.Combo` of its legs), the
order side, and — when the premium is known — :class:`OptionRisk`, the
strategy's maximum loss, maximum gain and breakevens.

Every strategy is a shape over ascending strikes ``K0 < K1 < …`` (one expiry):

================== ===================================== ======
strategy           legs (+ bought, - sold)                side
================== ===================================== ======
long_call          +C(K0)                                buy
long_put           +P(K0)                                buy
covered_call       -C(K0), 100 shares held               sell
cash_secured_put   -P(K0)                                sell
bull_call_spread   +C(K0) -C(K1)                         buy
bear_call_spread   -C(K0) +C(K1)                         sell
bull_put_spread    +P(K0) -P(K1)                         sell
bear_put_spread    -P(K0) +P(K1)                         buy
straddle           +P(K0) +C(K0)                         buy
strangle           +P(K0) +C(K1)                         buy
iron_condor        +P(K0) -P(K1) -C(K2) +C(K3)           sell
================== ===================================== ======

A combo is always written so its price is positive (a debit to buy): credit
strategies are that combo *sold*, at a positive price that is the credit. A
document's ``sell`` takes the other side of the named strategy.

Risk comes from the payoff at expiry per share, ``Σ ratio × intrinsic(S) +
shares × S − net premium``: piecewise linear with kinks at the strikes, so
its extremes lie at 0, at a strike, or on the last ray (unbounded when that
ray slopes), and its zeros (the breakevens) are found exactly, segment by
segment, in decimals. Money figures are per share × multiplier × quantity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.instruments import Combo, Leg, Option
from tradepipe.options.chain import (
    ChainError,
    ChainSource,
    OptionQuote,
    choose_expiry,
    nearest_delta,
    nearest_strike,
)
from tradepipe.options.risk import OptionRisk, payoff_risk
from tradepipe.orders import Side

if TYPE_CHECKING:
    from tradepipe.decision_schema import OptionLegSpec, OptionStrategySpec

_ZERO = Decimal(0)
_ONE = Decimal(1)

#: (sign, right, strike index) per leg, over ascending strikes.
SHAPES: dict[str, tuple[tuple[int, str, int], ...]] = {
    "long_call": ((1, "C", 0),),
    "long_put": ((1, "P", 0),),
    "covered_call": ((-1, "C", 0),),
    "cash_secured_put": ((-1, "P", 0),),
    "bull_call_spread": ((1, "C", 0), (-1, "C", 1)),
    "bear_call_spread": ((-1, "C", 0), (1, "C", 1)),
    "bull_put_spread": ((1, "P", 0), (-1, "P", 1)),
    "bear_put_spread": ((-1, "P", 0), (1, "P", 1)),
    "straddle": ((1, "P", 0), (1, "C", 0)),
    "strangle": ((1, "P", 0), (1, "C", 1)),
    "iron_condor": ((1, "P", 0), (-1, "P", 1), (-1, "C", 2), (1, "C", 3)),
}
#: Strategies opened for a credit: their combo (or option) is sold.
CREDIT = frozenset(
    {"covered_call", "cash_secured_put", "bear_call_spread", "bull_put_spread", "iron_condor"}
)
#: Shares held per contract sold, counted in the risk (a covered call's stock).
HELD_SHARES = {"covered_call": 1}


@dataclass(frozen=True)
class Strategy:
    """A resolved strategy: what to order, on which side, and its risk when priced."""

    name: str
    instrument: Option | Combo
    side: Side
    #: The legs as opened (signed by the strategy, whichever side is ordered).
    legs: tuple[Leg, ...]
    #: Price per share of one unit of ``instrument`` from the chain, if it had prices.
    price: Decimal | None
    risk: OptionRisk | None


# -- resolving a spec against a chain ---------------------------------------------------


def build(
    spec: OptionStrategySpec,
    underlying: str,
    *,
    chain: ChainSource | None,
    today: dt.date,
    reverse: bool = False,
    quantity: Decimal = _ONE,
    limit_price: Decimal | None = None,
    underlying_price: Decimal | None = None,
) -> Strategy:
    """Resolve ``spec`` on ``underlying`` into legs, an order side and (priced) risk.

    Without a ``chain`` the strikes and expiries must be given exactly and are
    used as given (the broker refuses an unlisted one when the order is sent).
    With one, each is snapped to the nearest listed.

    :param reverse: take the other side of the strategy (a document's ``sell``).
    :param limit_price: the order's price per share; the risk uses it (the worst
        fill) in preference to the chain's prices.
    :param underlying_price: the stock's price, for a covered call's risk.
    :raises ChainError: a choice the chain cannot satisfy, naming the field.
    """
    name = spec.strategy
    quotes = _choose(spec, underlying, chain, today)
    shape = SHAPES[name]
    strikes = sorted(q.option.strike for q in quotes)
    expected = sorted((sign, right, strikes[i]) for sign, right, i in shape)
    got = sorted(
        (s, q.option.right, q.option.strike) for s, q in zip(_signs(spec), quotes, strict=False)
    )
    if expected != got:
        raise ChainError(f"options.legs: {_describe(name)}; got {_show(got)}")
    opened = tuple(
        Leg(instrument=q.option, ratio=s) for s, q in zip(_signs(spec), quotes, strict=False)
    )
    credit = (name in CREDIT) != reverse
    side = Side.SELL if credit else Side.BUY
    # The ordered unit is the debit form: credit strategies are that unit sold.
    flip = -1 if name in CREDIT else 1
    ordered = tuple(Leg(instrument=leg.instrument, ratio=leg.ratio * flip) for leg in opened)
    instrument: Option | Combo = (
        ordered[0].instrument if len(ordered) == 1 else Combo(legs=ordered)  # type: ignore[assignment]
    )
    prices = [q.price for q in quotes]
    price: Decimal | None = None
    if all(p is not None for p in prices):
        total = _ZERO
        for p, leg in zip(prices, ordered, strict=False):
            assert p is not None
            total += p * leg.ratio
        price = total
    unit_price = limit_price if limit_price is not None else price
    risk = None
    shares = HELD_SHARES.get(name, 0)
    if unit_price is not None and (not shares or underlying_price is not None):
        sign = -1 if reverse else 1
        signed = tuple(Leg(instrument=leg.instrument, ratio=leg.ratio * sign) for leg in opened)
        # Premium per share of the position as opened: debit +, credit -.
        premium = unit_price * (-1 if side is Side.SELL else 1)
        if shares:
            assert underlying_price is not None  # checked above
            premium += underlying_price * shares * sign
        risk = payoff_risk(
            name,
            signed,
            premium,
            side=side.value,
            shares=shares * sign,
            multiplier=instrument.multiplier,
            quantity=quantity,
        )
    return Strategy(name, instrument, side, opened, price, risk)


def _signs(spec: OptionStrategySpec) -> list[int]:
    if spec.legs:
        return [leg.ratio * (1 if leg.action == "buy" else -1) for leg in spec.legs]
    return [sign for sign, _, _ in SHAPES[spec.strategy]]


def _choose(
    spec: OptionStrategySpec, underlying: str, chain: ChainSource | None, today: dt.date
) -> list[OptionQuote]:
    """One chain entry per leg, in the order of the spec's legs (or of the shape)."""
    if spec.legs:
        return [
            _choose_leg(leg, underlying, chain, today, f"options.legs.{n}")
            for n, leg in enumerate(spec.legs)
        ]
    shape = SHAPES[spec.strategy]
    if chain is None:
        if spec.expiry is None or not spec.strikes:
            raise ChainError(
                "options: choosing by dte or delta needs the broker's option chain, "
                "which this source has no access to; give expiry and strikes"
            )
        strikes = sorted(spec.strikes)
        return [
            OptionQuote(option=_option(underlying, spec.expiry, strikes[_index(i, strikes)], r))
            for _, r, i in shape
        ]
    listed = _listed(chain, underlying, spec.expiry)
    expiry = choose_expiry(
        listed, expiry=spec.expiry, dte=spec.dte, today=today, field="options.expiry"
    )
    if spec.strikes:
        strikes = sorted(spec.strikes)
        if spec.strategy == "straddle" and strikes[0] != strikes[1]:
            raise ChainError("options.strikes: a straddle's two strikes must be equal")
        chosen = [
            nearest_strike(listed, expiry, r, strikes[_index(i, strikes)], "options.strikes")
            for _, r, i in shape
        ]
    else:
        chosen = _by_delta(spec, _of_expiry(chain, underlying, spec.expiry, expiry, listed), expiry)
    keys = [(q.option.right, q.option.strike) for q in chosen]
    if spec.strategy != "straddle" and len({k[1] for k in keys}) != len(
        set(i for _, _, i in shape)
    ):
        raise ChainError(
            "options.strikes: the requested strikes round to the same listed strike "
            f"({', '.join(f'{k[1].normalize():f}' for k in keys)}); ask for strikes further apart"
        )
    return chosen


def _index(i: int, strikes: Sequence[Decimal]) -> int:
    return min(i, len(strikes) - 1)


def _by_delta(
    spec: OptionStrategySpec, chain: Sequence[OptionQuote], expiry: dt.date
) -> list[OptionQuote]:
    """Legs by delta: the strategy's first leg at ``delta``, spreads ``width`` away."""
    assert spec.delta is not None
    name, delta, width = spec.strategy, spec.delta, spec.width
    spreads = name.endswith("_spread") or name == "iron_condor"
    if spreads and width is None:
        raise ChainError(f"options.width: {name} chosen by delta needs width (strike distance)")

    def at(right: str, target: float) -> OptionQuote:
        return nearest_delta(chain, expiry, right, target, "options.delta")

    def near(right: str, strike: Decimal) -> OptionQuote:
        return nearest_strike(chain, expiry, right, strike, "options.width")

    w = width or _ZERO
    if name in ("long_call", "covered_call"):
        return [at("C", delta)]
    if name in ("long_put", "cash_secured_put"):
        return [at("P", -delta)]
    if name in ("bull_call_spread", "bear_call_spread"):
        # The lower call (bought in a bull, sold in a bear spread) at the delta.
        low = at("C", delta)
        return [low, near("C", low.option.strike + w)]
    if name in ("bull_put_spread", "bear_put_spread"):
        high = at("P", -delta)
        return [near("P", high.option.strike - w), high]
    if name == "straddle":
        call = at("C", delta)
        return [near("P", call.option.strike), call]
    if name == "strangle":
        return [at("P", -delta), at("C", delta)]
    # iron condor: short strikes by delta, wings width beyond
    put, call = at("P", -delta), at("C", delta)
    return [near("P", put.option.strike - w), put, call, near("C", call.option.strike + w)]


def _choose_leg(
    leg: OptionLegSpec, underlying: str, chain: ChainSource | None, today: dt.date, field: str
) -> OptionQuote:
    if chain is None:
        if leg.expiry is None or leg.strike is None:
            raise ChainError(
                f"{field}: choosing by dte or delta needs the broker's option chain, "
                "which this source has no access to; give expiry and strike"
            )
        return OptionQuote(option=_option(underlying, leg.expiry, leg.strike, leg.right))
    listed = _listed(chain, underlying, leg.expiry)
    expiry = choose_expiry(
        listed, expiry=leg.expiry, dte=leg.dte, today=today, field=f"{field}.expiry"
    )
    if leg.strike is not None:
        return nearest_strike(listed, expiry, leg.right, leg.strike, f"{field}.strike")
    assert leg.delta is not None
    listed = _of_expiry(chain, underlying, leg.expiry, expiry, listed)
    return nearest_delta(listed, expiry, leg.right, leg.delta, f"{field}.delta")


def _of_expiry(
    chain: ChainSource,
    underlying: str,
    asked: dt.date | None,
    chosen: dt.date,
    listed: Sequence[OptionQuote],
) -> Sequence[OptionQuote]:
    """The chain to choose by delta from: the chosen expiry's own.

    A chain of every expiry (read to choose one by dte) may be a bare listing
    (a broker may read greeks one expiry at a time, as the IBKR adapters do),
    so it is asked again for the expiry chosen; a chain already read for that
    expiry is used as it is.
    """
    return listed if asked == chosen else chain(underlying, chosen)


def _option(underlying: str, expiry: dt.date, strike: Decimal, right: str) -> Option:
    return Option(underlying=underlying, expiry=expiry, strike=strike, right=right)


def _describe(name: str) -> str:
    legs = " ".join(f"{'+' if s > 0 else '-'}{r}(K{i})" for s, r, i in SHAPES[name])
    return f"a {name} is {legs} over ascending strikes K0 < K1 …, one expiry"


def _show(legs: Sequence[tuple[int, str, Decimal]]) -> str:
    return " ".join(f"{'+' if s > 0 else '-'}{r}({k.normalize():f})" for s, r, k in legs)


def _listed(chain: ChainSource, underlying: str, expiry: dt.date | None) -> Sequence[OptionQuote]:
    """The chain for ``expiry``; when nothing expires then, the whole chain, so the
    error that follows can say which expiries are listed."""
    listed: Sequence[OptionQuote] = chain(underlying, expiry)
    if expiry is not None and not any(q.option.expiry == expiry for q in listed):
        listed = chain(underlying, None)
    return listed
