"""Sizing: turning a decision into a side and a quantity.

Methods (``[sizing] method``):

* ``fixed_quantity`` — ``quantity`` units;
* ``fixed_notional`` — ``notional`` (or the decision's ``sizing.notional``) ÷ price;
* ``risk`` — equity × risk fraction ÷ distance to the stop, where the distance
  is the decision's ``sizing.stop_distance`` or ``|price - stop_loss|``.

Whatever the method, the resulting position is capped at ``max_position_value``
and rounded down to whole units (shares to 0.0001 with ``fractional``; option
contracts and combos always whole). A quantity given in the decision is used
as is (the order rules and the risk filters still judge it).

``close`` sells (or buys back) the whole position, less what working orders
already close; ``sell`` without a quantity while long sells the whole holding,
less the same; otherwise it is sized like a new position. Orders working on the
other side (a buy still open while long) never add to what a close sells: if
they do not fill, the close would open a position the other way.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.decisions import Action, Decision
from tradepipe.errors import SizingError
from tradepipe.money import ZERO, floor_quantity
from tradepipe.orders import OrderIntent, Side
from tradepipe.settings import SizingSettings

if TYPE_CHECKING:
    from datetime import datetime

    from tradepipe.risk import RiskContext


class Sizer:
    """Applies the ``[sizing]`` settings."""

    def __init__(self, settings: SizingSettings) -> None:
        self.settings = settings

    def size(
        self,
        decision: Decision,
        price: Decimal | None,
        position: Decimal,
        equity: Decimal | Callable[[], Decimal],
        closable: Decimal | None = None,
    ) -> tuple[Side, Decimal]:
        """Return the side and quantity for ``decision``.

        :param price: the reference price (last trade or limit); ``None`` if unknown.
        :param position: the signed quantity held plus what working orders will
            still change (the exposure), so orders in flight count.
        :param equity: account equity for risk sizing, or a function returning it
            (only called when needed).
        :param closable: the signed quantity held less what working orders that
            reduce it have yet to fill: what a close may take. ``None``: ``position``.
        :raises SizingError: with the reason no quantity could be found.
        """
        action = decision.action
        if action is Action.HOLD:
            raise SizingError("a hold decision has nothing to size")
        held = position if closable is None else closable
        if action is Action.CLOSE:
            if held == 0:
                raise SizingError(
                    f"nothing to close: no position in {decision.symbol}, "
                    "or working orders already close it"
                )
            side = Side.SELL if held > 0 else Side.BUY
            # A close never goes past flat, whatever quantity it names.
            return side, min(decision.quantity or abs(held), abs(held))
        side = Side.BUY if action is Action.BUY else Side.SELL
        if decision.quantity is not None:
            return side, decision.quantity
        if side is Side.SELL and held > 0:
            return side, held
        if price is None or price <= 0:
            raise SizingError(f"no price known for {decision.symbol}; cannot size")
        quantity = self._by_method(decision, price, equity)
        held_value = abs(position) * price if (position > 0) == (side is Side.BUY) else ZERO
        room = (self.settings.max_position_value - held_value) / price
        quantity = self._round(min(quantity, room), decision)
        if quantity <= 0:
            raise SizingError(
                f"sized to zero: {decision.symbol} at {price} with "
                f"max_position_value {self.settings.max_position_value}"
            )
        return side, quantity

    def intent(self, decision: Decision, cid: str, ctx: RiskContext, now: datetime) -> OrderIntent:
        """The order ``cid`` that ``decision`` makes, sized at what ``ctx`` knows now.

        Its reference price is the decision's limit or stop price, else the
        symbol's latest price.

        :raises SizingError: with the reason no quantity could be found.
        """
        symbol = decision.symbol
        price = decision.limit_price or decision.stop_price or ctx.last_price(symbol)
        # Orders in flight count: two buys before the first fills must not
        # each be sized as if the other did not exist.
        closable = None
        if decision.action is Action.CLOSE or (
            decision.action is Action.SELL and decision.quantity is None
        ):
            closable = ctx.closable(symbol)
        side, quantity = self.size(decision, price, ctx.exposure(symbol), ctx.equity, closable)
        return _intent(
            cid,
            decision.id,
            decision.source,
            symbol,
            side,
            quantity,
            decision.order_type,
            decision.limit_price,
            decision.stop_price,
            decision.tif,
            decision.outside_rth,
            decision.stop_loss,
            decision.take_profit,
            price,
            now,
            decision.instrument,
            None if decision.option_risk is None else decision.option_risk.scaled(quantity),
        )

    def _by_method(
        self, decision: Decision, price: Decimal, equity: Decimal | Callable[[], Decimal]
    ) -> Decimal:
        method = self.settings.method
        hints = decision.sizing
        if method == "fixed_quantity":
            return self.settings.quantity
        if method == "fixed_notional":
            notional = hints.notional if hints and hints.notional else self.settings.notional
            return notional / price
        fraction = hints.risk_fraction if hints and hints.risk_fraction else None
        fraction = fraction or self.settings.risk_fraction
        distance = hints.stop_distance if hints and hints.stop_distance else None
        if distance is None and decision.stop_loss is not None:
            distance = abs(price - decision.stop_loss)
        if not distance:
            raise SizingError(
                "risk sizing needs a stop: give sizing.stop_distance or stop_loss in the decision"
            )
        if callable(equity):
            equity = equity()
        return equity * fraction / distance

    def _round(self, quantity: Decimal, decision: Decision) -> Decimal:
        # Fractions are for shares: option contracts and combos are always whole.
        instrument = decision.instrument
        shares = instrument is None or instrument.kind == "stock"
        return floor_quantity(quantity, whole=not (self.settings.fractional and shares))


#: A sized intent from its values in this order (see :meth:`Record.maker`).
_intent = OrderIntent.maker(
    "client_order_id",
    "decision_id",
    "source",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "stop_price",
    "tif",
    "outside_rth",
    "stop_loss",
    "take_profit",
    "reference_price",
    "created_at",
    "instrument",
    "option_risk",
)
