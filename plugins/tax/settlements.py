"""Exercised and assigned options: their premium goes with the shares delivered.

An exercise or an assignment comes as two fills of one kind (``exercised`` or
``assigned``, :class:`~tradepipe.orders.FillKind`) at one time: the option's,
closing it at no price, then the underlying's, the shares bought or sold at
the strike (see :mod:`tradepipe.brokers.paper.expiry`). The option's lots
close with no gain or loss; their premium goes with the shares, as IRS
Pub. 550 has it:

- long call exercised: what it cost is added to the basis of the shares bought;
- short put assigned: what it brought in comes off the basis of the shares bought;
- short call assigned: what it brought in is added to the proceeds of the shares sold;
- long put exercised: what it cost comes off the proceeds of the shares sold.

So the premium is a charge on the underlying's fill, like a commission: what
was paid adds to a buy's cost and comes off a sale's proceeds, what was
received is a negative charge. An option that expires is an ordinary close at
no price, on the expiry date: a long one loses what it cost, a short one gains
what it brought in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from tradepipe.errors import LotError
from tradepipe.orders import FillKind

#: The kinds of fill that deliver the underlying: the option's and the shares'.
DELIVERING = frozenset({FillKind.EXERCISED.value, FillKind.ASSIGNED.value})
#: The kinds of fill that end an option position without a trade.
SETTLING = DELIVERING | {FillKind.EXPIRED.value}
_EVENT = {FillKind.EXERCISED.value: "exercise", FillKind.ASSIGNED.value: "assignment"}


@dataclass(frozen=True)
class Delivery:
    """An option exercised or assigned, waiting for its underlying's fill.

    :param execution_id: the option's fill.
    :param side: the side of the underlying's fill to come: ``buy`` for a long
        call or a short put, ``sell`` for a long put or a short call.
    :param shares: the quantity of the underlying's fill to come (contracts
        times the multiplier).
    :param charge: the premium as a charge on that fill: what the option's
        lots cost (positive) or brought in (negative), with the option fill's
        own commission.
    """

    execution_id: str
    option: str
    underlying: str
    kind: str
    ts: dt.datetime
    side: str
    shares: Decimal
    charge: Decimal


def delivered_side(option: str, option_side: str) -> str:
    """The side of the shares' fill when ``option`` is closed by a fill of ``option_side``.

    A sell closes a long option (exercised), a buy a short one (assigned).
    """
    call = option[12] == "C"
    long = option_side == "sell"
    return "buy" if long == call else "sell"


class Deliveries:
    """Exercises and assignments whose underlying's fill has not come yet."""

    def __init__(self) -> None:
        self._waiting: list[Delivery] = []

    def expect(self, delivery: Delivery) -> None:
        self._waiting.append(delivery)

    def charge(
        self,
        execution_id: str,
        symbol: str,
        kind: str,
        ts: dt.datetime,
        side: str,
        quantity: Decimal,
    ) -> Decimal:
        """The premium charged to the underlying's fill ``execution_id``.

        It is the delivery of the same kind, underlying and time.

        :raises LotError: no option of that kind on ``symbol`` was settled then,
            or the side or quantity is not what its exercise or assignment delivers.
        """
        key = (symbol, kind, ts)
        found = (d for d in self._waiting if (d.underlying, d.kind, d.ts) == key)
        delivery = next(found, None)
        if delivery is None:
            raise LotError(
                f"fill {execution_id}: {quantity} {symbol} {kind}, but no option on "
                f"{symbol} was {kind} at {ts.isoformat()}"
            )
        if (delivery.side, delivery.shares) != (side, quantity):
            raise LotError(
                f"fill {execution_id}: {side} {quantity} {symbol}, but the {_EVENT[kind]} of "
                f"{delivery.option} (fill {delivery.execution_id}) delivers a "
                f"{delivery.side} of {delivery.shares}"
            )
        self._waiting.remove(delivery)
        return delivery.charge

    def check_done(self) -> None:
        """:raises LotError: an exercise or assignment delivered no shares."""
        if self._waiting:
            first = self._waiting[0]
            raise LotError(
                f"fill {first.execution_id}: {first.option} was {first.kind}, but no fill "
                f"of {first.underlying} at {first.ts.isoformat()} delivers its shares"
            )
