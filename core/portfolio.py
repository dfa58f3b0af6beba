"""Positions, account summary, and the book that keeps them.

:class:`Book` is the arithmetic of an account: it applies fills to cash and
positions (average cost, realized P&L) and marks positions to market. The paper
simulator keeps its account with it, and the executor keeps its own view of the
broker's account with it, so both do the same sums. What it rounds, and how, is
set out in :mod:`tradepipe.money`: cash and realized P&L are booked in cents,
average costs to :data:`~tradepipe.money.COST_PLACES` places, and a position's
market value and unrealized P&L are in cents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime
from tradepipe.money import ZERO, cents, cost, to_decimal
from tradepipe.orders import Fill
from tradepipe.record import Record


def value_of(quantity: Decimal, price: Decimal, multiplier: Decimal) -> Decimal:
    """What ``quantity`` is worth at ``price``, in cents (signed: a short is negative)."""
    return cents(quantity * price * multiplier)


def unrealized_of(
    quantity: Decimal, price: Decimal, avg_cost: Decimal, multiplier: Decimal
) -> Decimal:
    """What ``quantity`` bought at ``avg_cost`` has gained at ``price``, in cents."""
    return cents((price - avg_cost) * quantity * multiplier)


class Position(Record):
    """Holdings of one instrument. ``quantity`` is negative for a short."""

    symbol: str
    quantity: Decimal
    avg_cost: Decimal = ZERO
    multiplier: Decimal = Decimal(1)
    mark_price: Decimal | None = None
    realized_pnl: Decimal = ZERO

    @property
    def market_value(self) -> Decimal | None:
        """Quantity × mark × multiplier, in cents (``None`` unmarked)."""
        if self.mark_price is None:
            return None
        return value_of(self.quantity, self.mark_price, self.multiplier)

    @property
    def unrealized_pnl(self) -> Decimal | None:
        """Market value less cost, in cents (``None`` unmarked)."""
        if self.mark_price is None:
            return None
        return unrealized_of(self.quantity, self.mark_price, self.avg_cost, self.multiplier)


class AccountSummary(Record):
    """Money in an account at one moment, in its base currency."""

    account_id: str
    currency: str = "USD"
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    gross_position_value: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    ts: AwareDatetime


class _Holding:
    __slots__ = ("avg_cost", "multiplier", "quantity", "realized")

    def __init__(self, multiplier: Decimal) -> None:
        self.quantity = ZERO
        self.avg_cost = ZERO
        self.realized = ZERO
        self.multiplier = multiplier


Marks = Mapping[str, float]


class Book:
    """Cash and positions of one account, updated fill by fill.

    Valuations take the latest prices as ``marks`` (symbol -> last price), so
    the book itself never needs updating as prices move.
    """

    def __init__(self, cash: Decimal, currency: str = "USD") -> None:
        self.cash = cash
        self.currency = currency
        self.realized_pnl = ZERO
        self.commissions = ZERO
        self._holdings: dict[str, _Holding] = {}

    def seed(self, position: Position) -> None:
        """Start from a position the broker already holds.

        The holding takes the position's quantity, average cost, multiplier and
        ``realized_pnl``; the book's own :attr:`realized_pnl` (the account's
        total) and cash are left as they are.
        """
        holding = self._holdings[position.symbol] = _Holding(position.multiplier)
        holding.quantity = position.quantity
        holding.avg_cost = position.avg_cost
        holding.realized = position.realized_pnl

    def quantity(self, symbol: str) -> Decimal:
        holding = self._holdings.get(symbol)
        return holding.quantity if holding is not None else ZERO

    def held(self) -> dict[str, Decimal]:
        """Multiplier of every symbol with a non-zero position."""
        return {s: h.multiplier for s, h in self._holdings.items() if h.quantity}

    def apply(self, fill: Fill) -> Decimal:
        """Apply ``fill`` to cash and the position; return the P&L it realized.

        A combo's fill is booked leg by leg (:attr:`Fill.legs`), never as a
        position of its own.
        """
        if fill.legs:
            return sum((self.apply(leg) for leg in fill.legs), ZERO)
        holding = self._holdings.get(fill.symbol)
        if holding is None:
            holding = self._holdings[fill.symbol] = _Holding(fill.multiplier)
        qty = fill.quantity if fill.side == "buy" else -fill.quantity
        price = fill.price
        mult = holding.multiplier
        old = holding.quantity
        new = old + qty
        realized = ZERO
        if old == 0 or (old > 0) == (qty > 0):
            # Opening or adding: the average cost moves towards this price.
            holding.avg_cost = cost((holding.avg_cost * old + price * qty) / new)
        else:
            closed = min(abs(qty), abs(old))
            direction = 1 if old > 0 else -1
            realized = cents((price - holding.avg_cost) * closed * direction * mult)
            if new == 0:
                holding.avg_cost = ZERO
            elif (new > 0) != (old > 0):
                # Flipped through zero: the remainder opened at this price.
                holding.avg_cost = price
        holding.quantity = new
        holding.realized += realized
        self.cash -= cents(qty * price * mult + fill.commission)
        self.commissions += fill.commission
        self.realized_pnl += realized
        return realized

    def positions(
        self, marks: Marks | None = None, *, include_flat: bool = False
    ) -> list[Position]:
        """Open positions (and flat ones that realized P&L, with ``include_flat``)."""
        marks = marks or {}
        out = []
        for symbol, h in sorted(self._holdings.items()):
            if h.quantity == 0 and not include_flat:
                continue
            mark = marks.get(symbol)
            out.append(
                Position.trusted(
                    symbol=symbol,
                    quantity=h.quantity,
                    avg_cost=h.avg_cost,
                    multiplier=h.multiplier,
                    mark_price=None if mark is None else to_decimal(mark),
                    realized_pnl=h.realized,
                )
            )
        return out

    def market_value(self, marks: Marks) -> Decimal:
        """Signed value of all positions, each in cents; unmarked ones count at their cost."""
        total = ZERO
        for symbol, h in self._holdings.items():
            if h.quantity:
                mark = marks.get(symbol)
                price = to_decimal(mark) if mark is not None else h.avg_cost
                total += value_of(h.quantity, price, h.multiplier)
        return total

    def equity(self, marks: Marks) -> Decimal:
        return self.cash + self.market_value(marks)

    def summary(
        self, account_id: str, ts: datetime, buying_power: Decimal, marks: Marks
    ) -> AccountSummary:
        positions = self.positions(marks)
        market = gross = ZERO
        for p in positions:
            # Unmarked positions count at cost, as they do in market_value().
            price = p.avg_cost if p.mark_price is None else p.mark_price
            value = value_of(p.quantity, price, p.multiplier)
            market += value
            gross += abs(value)
        unrealized = sum((p.unrealized_pnl or ZERO for p in positions), ZERO)
        return AccountSummary.trusted(
            account_id=account_id,
            currency=self.currency,
            cash=self.cash,
            equity=self.cash + market,
            buying_power=buying_power,
            gross_position_value=gross,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=unrealized,
            ts=ts,
        )
