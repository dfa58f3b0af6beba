"""What the run context tells strategies, sizing and filters about the account."""

from __future__ import annotations

from decimal import Decimal

from tradepipe.clock import ManualClock
from tradepipe.context import RunContext
from tradepipe.orders import Fill, Order, OrderIntent, OrderStatus, Side
from tradepipe.portfolio import Book
from tradepipe.testing import T0


def _working(cid: str, symbol: str, side: Side, quantity: int, filled: int = 0) -> Order:
    order = Order.from_intent(
        OrderIntent(
            client_order_id=cid,
            decision_id=f"d-{cid}",
            source="unit",
            symbol=symbol,
            side=side,
            quantity=Decimal(quantity),
            created_at=T0,
        )
    )
    order.transition(OrderStatus.SUBMITTED, T0)
    order.transition(OrderStatus.ACCEPTED, T0)
    if filled:
        order.apply_fill(
            Fill(
                execution_id=f"x-{cid}",
                client_order_id=cid,
                decision_id=f"d-{cid}",
                symbol=symbol,
                side=side,
                quantity=Decimal(filled),
                price=Decimal(10),
                ts=T0,
            )
        )
    return order


def test_exposure_is_the_position_and_what_working_orders_have_yet_to_fill() -> None:
    book = Book(Decimal(100_000))
    book.apply(
        Fill(
            execution_id="x0",
            client_order_id="c0",
            decision_id="d0",
            symbol="AAPL",
            side=Side.BUY,
            quantity=Decimal(50),
            price=Decimal(10),
            ts=T0,
        )
    )
    working = {
        o.client_order_id: o
        for o in (
            _working("b1", "AAPL", Side.BUY, 30, filled=10),  # 20 still to buy
            _working("s1", "AAPL", Side.SELL, 15),
            _working("m1", "MSFT", Side.BUY, 99),  # another symbol
        )
    }
    ctx = RunContext(ManualClock(T0), book, working)
    assert ctx.position("AAPL") == 50
    assert ctx.pending("AAPL") == 20 - 15
    assert ctx.exposure("AAPL") == 50 + 20 - 15
    assert ctx.exposure("MSFT") == 99
    assert ctx.exposure("TSLA") == 0
    working.clear()
    assert ctx.exposure("AAPL") == 50
