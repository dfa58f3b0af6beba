"""The risk of an options position at expiry: maximum loss, maximum gain, breakevens.

The payoff per share at expiry, ``Σ ratio × intrinsic(S) + shares × S − net
premium``, is piecewise linear with kinks at the strikes: its extremes lie at
0, at a strike, or on the last ray (unbounded when that ray slopes), and its
zeros — the breakevens — are found exactly, segment by segment, in decimals.
All legs must expire together.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Literal

from tradepipe.instruments import Leg, Option
from tradepipe.money import plain
from tradepipe.record import Record

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)


class OptionRisk(Record):
    """A strategy's risk at expiry, in money (per share × multiplier × quantity).

    :param net_premium: per share; positive is a debit paid, negative a credit
        received (for a covered call, the stock's price less the premium).
    :param max_loss: the most that can be lost, as a positive amount; ``None``
        with ``unlimited_loss`` when the loss has no bound.
    :param max_gain: the most that can be made; ``None`` with ``unlimited_gain``.
    :param breakevens: underlying prices at expiry where the payoff is zero.
    """

    strategy: str
    side: Literal["buy", "sell"]
    quantity: Decimal
    multiplier: Decimal
    net_premium: Decimal
    max_loss: Decimal | None
    max_gain: Decimal | None
    unlimited_loss: bool = False
    unlimited_gain: bool = False
    breakevens: tuple[Decimal, ...] = ()

    @property
    def defined_risk(self) -> bool:
        return not self.unlimited_loss

    def scaled(self, quantity: Decimal) -> OptionRisk:
        """The same figures for ``quantity`` units instead of this one's."""
        ratio = quantity / self.quantity
        return self.model_copy(
            update={
                "quantity": quantity,
                "max_loss": None if self.max_loss is None else self.max_loss * ratio,
                "max_gain": None if self.max_gain is None else self.max_gain * ratio,
            }
        )


def payoff(legs: Sequence[Leg], premium: Decimal, shares: int, s: Decimal) -> Decimal:
    """Profit per share at expiry with the underlying at ``s``."""
    total = shares * s - premium
    for leg in legs:
        option = leg.instrument
        assert isinstance(option, Option)
        k = option.strike
        intrinsic = max(s - k, _ZERO) if option.right == "C" else max(k - s, _ZERO)
        total += leg.ratio * intrinsic
    return total


def payoff_risk(
    name: str,
    legs: Sequence[Leg],
    premium: Decimal,
    *,
    side: Literal["buy", "sell"],
    shares: int = 0,
    multiplier: Decimal = _HUNDRED,
    quantity: Decimal = _ONE,
) -> OptionRisk:
    """Max loss, max gain and breakevens of ``legs`` (as held) bought for ``premium``/share.

    All legs expire together. Exact: the payoff is linear between strikes.
    """
    strikes = sorted({leg.instrument.strike for leg in legs if isinstance(leg.instrument, Option)})
    points = [_ZERO, *strikes]
    values = [payoff(legs, premium, shares, p) for p in points]
    # Beyond the last strike, the payoff moves by the calls held plus the shares.
    slope = shares + sum(
        leg.ratio
        for leg in legs
        if isinstance(leg.instrument, Option) and leg.instrument.right == "C"
    )
    scale = multiplier * quantity
    top, bottom = max(values), min(values)
    unlimited_gain, unlimited_loss = slope > 0, slope < 0
    breakevens: list[Decimal] = []
    for (a, va), (b, vb) in pairwise(zip(points, values, strict=True)):
        if va == 0 and a not in breakevens:
            breakevens.append(a)
        if (va < 0 < vb) or (vb < 0 < va):
            breakevens.append(a + (b - a) * (-va) / (vb - va))
    last, vlast = points[-1], values[-1]
    if vlast == 0 and last not in breakevens:
        breakevens.append(last)
    elif slope and (vlast < 0 < slope or slope < 0 < vlast):
        breakevens.append(last - vlast / slope)
    breakevens = [b for b in breakevens if b > 0]
    return OptionRisk(
        strategy=name,
        side=side,
        quantity=quantity,
        multiplier=multiplier,
        net_premium=premium,
        max_loss=None if unlimited_loss else max(-bottom, _ZERO) * scale,
        max_gain=None if unlimited_gain else max(top, _ZERO) * scale,
        unlimited_loss=unlimited_loss,
        unlimited_gain=unlimited_gain,
        breakevens=tuple(plain(b) for b in sorted(breakevens)),
    )
