"""What the run context tells strategies, sizing and filters about the account."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tradepipe.clock import ManualClock
from tradepipe.context import RunContext
from tradepipe.decisions import Decision
from tradepipe.errors import SizingError
from tradepipe.orders import Fill, Order, OrderIntent, OrderStatus, Side
from tradepipe.portfolio import Book
from tradepipe.settings import SizingSettings
from tradepipe.sizing import Sizer
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


def _book(held: int) -> Book:
    """A book holding ``held`` AAPL (short when negative), bought or sold at 10."""
    book = Book(Decimal(100_000))
    if held:
        book.apply(
            Fill(
                execution_id="x0",
                client_order_id="c0",
                decision_id="d0",
                symbol="AAPL",
                side=Side.BUY if held > 0 else Side.SELL,
                quantity=Decimal(abs(held)),
                price=Decimal(10),
                ts=T0,
            )
        )
    return book


def test_exposure_is_the_position_and_what_working_orders_have_yet_to_fill() -> None:
    book = _book(50)
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
    # What reduces the long: the sell only, never the buys still working.
    assert ctx.closable("AAPL") == 50 - 15
    assert ctx.closable("MSFT") == 0  # nothing held: nothing to reduce
    working.clear()
    assert ctx.exposure("AAPL") == 50


def _holding(held: int, working: list[tuple[str, int]]) -> RunContext:
    """A context holding ``held`` AAPL (short when negative) with ``working`` orders."""
    book = _book(held)
    orders = [_working(f"w{n}", "AAPL", Side(side), q) for n, (side, q) in enumerate(working)]
    ctx = RunContext(ManualClock(T0), book, {o.client_order_id: o for o in orders})
    ctx.set_price("AAPL", 10.0)
    return ctx


@pytest.mark.parametrize(
    ("action", "held", "working", "expected"),
    [
        # Long 20 with a buy of 5 still working: the close sells the 20 held. Had
        # it sold the exposure (25) and the buy not filled, it would go short 5.
        ("close", 20, [("buy", 5)], (Side.SELL, 20)),
        ("sell", 20, [("buy", 5)], (Side.SELL, 20)),
        # A sell of 8 already working closes part of it.
        ("close", 20, [("buy", 5), ("sell", 8)], (Side.SELL, 12)),
        ("sell", 20, [("sell", 8)], (Side.SELL, 12)),
        # Short 10 with a sell of 4 working: the close buys back the 10 held.
        ("close", -10, [("sell", 4)], (Side.BUY, 10)),
        ("close", -10, [("buy", 3)], (Side.BUY, 7)),
    ],
)
def test_a_close_takes_what_is_held_less_what_working_orders_already_close(
    action: str, held: int, working: list[tuple[str, int]], expected: tuple[Side, int]
) -> None:
    ctx = _holding(held, working)
    decision = Decision(symbol="AAPL", action=action, confidence=80)
    intent = Sizer(SizingSettings()).intent(decision, "tp-1", ctx, T0)
    assert (intent.side, intent.quantity) == (expected[0], Decimal(expected[1]))


@pytest.mark.parametrize("working", [[("buy", 5)], [("sell", 20)]], ids=["buying", "sold"])
def test_a_close_with_nothing_of_its_own_to_close_is_refused(
    working: list[tuple[str, int]],
) -> None:
    """Flat with a buy working (it may never fill), or long 20 with a sell of 20
    working: nothing for a close to sell."""
    ctx = _holding(0 if working[0][0] == "buy" else 20, working)
    decision = Decision(symbol="AAPL", action="close", confidence=80)
    with pytest.raises(SizingError, match="nothing to close"):
        Sizer(SizingSettings()).intent(decision, "tp-1", ctx, T0)
