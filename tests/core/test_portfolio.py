"""The book: cash, average cost, realized and unrealized P&L, valuations."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from tradepipe.orders import Fill, Side
from tradepipe.portfolio import AccountSummary, Book, Position
from tradepipe.testing import T0

D = Decimal
_ids = itertools.count(1)


def fill(side: str, quantity: str, price: str, symbol: str = "AAPL", **extra: Any) -> Fill:
    return Fill(
        execution_id=f"x-{next(_ids)}",
        client_order_id="tp-1",
        decision_id="d-1",
        symbol=symbol,
        side=Side(side),
        quantity=D(quantity),
        price=D(price),
        ts=T0,
        **extra,
    )


def position(book: Book, symbol: str, marks: dict[str, float] | None = None) -> Position:
    [found] = [p for p in book.positions(marks, include_flat=True) if p.symbol == symbol]
    return found


def test_a_new_book() -> None:
    book = Book(D("10000.00"))
    assert book.cash == D("10000.00")
    assert book.quantity("AAPL") == 0
    assert book.positions() == []
    assert book.equity({}) == D("10000.00")
    assert book.realized_pnl == 0
    assert book.commissions == 0


def test_buy_then_add_averages_the_cost() -> None:
    book = Book(D("10000.00"))
    assert book.apply(fill("buy", "10", "100.00", commission=D("1.00"))) == 0
    assert book.apply(fill("buy", "30", "104.00", commission=D("1.50"))) == 0
    held = position(book, "AAPL")
    assert held.quantity == D(40)
    # (10 x 100 + 30 x 104) / 40 = 4120 / 40
    assert held.avg_cost == D("103.00")
    # 10000 - 1000 - 1.00 - 3120 - 1.50
    assert book.cash == D("5877.50")
    assert book.commissions == D("2.50")


def test_partial_sell_then_close_realizes_pnl() -> None:
    book = Book(D("10000.00"))
    book.apply(fill("buy", "10", "100.00", commission=D("1.00")))
    book.apply(fill("buy", "30", "104.00", commission=D("1.50")))

    # (110 - 103) x 15
    assert book.apply(fill("sell", "15", "110.00", commission=D("1.00"))) == D("105.00")
    held = position(book, "AAPL")
    assert (held.quantity, held.avg_cost, held.realized_pnl) == (D(25), D("103.00"), D("105.00"))
    # 5877.50 + 15 x 110 - 1.00
    assert book.cash == D("7526.50")

    # (99 - 103) x 25
    assert book.apply(fill("sell", "25", "99.00")) == D("-100.00")
    assert book.quantity("AAPL") == 0
    assert book.positions() == []
    flat = position(book, "AAPL")
    assert (flat.quantity, flat.avg_cost, flat.realized_pnl) == (0, 0, D("5.00"))
    # 7526.50 + 25 x 99
    assert book.cash == D("10001.50")
    # the whole round trip: realized 5.00 less commissions 3.50
    assert book.realized_pnl == D("5.00")
    assert book.commissions == D("3.50")
    assert book.equity({"AAPL": 500.0}) == D("10001.50")


def test_reopening_after_flat_starts_a_fresh_average() -> None:
    book = Book(D(10000))
    book.apply(fill("buy", "10", "100"))
    book.apply(fill("sell", "10", "120"))
    book.apply(fill("buy", "5", "90"))
    assert position(book, "AAPL").avg_cost == D(90)


def test_long_flips_short_through_zero() -> None:
    book = Book(D("10000.00"))
    book.apply(fill("buy", "10", "50.00"))
    # only the 10 held close: (60 - 50) x 10
    assert book.apply(fill("sell", "25", "60.00")) == D("100.00")
    short = position(book, "AAPL", {"AAPL": 58.0})
    assert short.quantity == D(-15)
    assert short.avg_cost == D("60.00")
    # 10000 - 500 + 1500
    assert book.cash == D("11000.00")
    # -15 x 58
    assert short.market_value == D("-870.00")
    # (58 - 60) x -15
    assert short.unrealized_pnl == D("30.00")
    assert book.equity({"AAPL": 58.0}) == D("10130.00")


def test_short_flips_long_through_zero() -> None:
    book = Book(D(10000))
    book.apply(fill("sell", "10", "20.00"))
    # (18 - 20) x 10 x -1
    assert book.apply(fill("buy", "15", "18.00")) == D("20.00")
    held = position(book, "AAPL")
    assert (held.quantity, held.avg_cost) == (D(5), D("18.00"))


def test_short_add_and_cover() -> None:
    book = Book(D("10000.00"))
    book.apply(fill("sell", "20", "25.50", commission=D("0.35")))
    # 10000 + 510 - 0.35
    assert book.cash == D("10509.65")
    book.apply(fill("sell", "20", "26.50"))
    short = position(book, "AAPL")
    # (20 x 25.50 + 20 x 26.50) / 40
    assert (short.quantity, short.avg_cost) == (D(-40), D("26.00"))
    assert book.cash == D("11039.65")

    # covering below the average gains: (24 - 26) x 30 x -1
    assert book.apply(fill("buy", "30", "24.00", commission=D("0.35"))) == D("60.00")
    # 11039.65 - 720 - 0.35
    assert book.cash == D("10319.30")
    assert position(book, "AAPL").avg_cost == D("26.00")

    # covering above the average loses: (27 - 26) x 10 x -1
    assert book.apply(fill("buy", "10", "27.00")) == D("-10.00")
    assert book.quantity("AAPL") == 0
    # 10319.30 - 270 = 10000 + 50.00 realized - 0.70 commissions
    assert book.cash == D("10049.30")
    assert book.realized_pnl == D("50.00")
    assert book.commissions == D("0.70")


def test_option_multiplier() -> None:
    book = Book(D("10000.00"))
    book.apply(fill("buy", "2", "3.15", "SPY C", commission=D("1.30"), multiplier=D(100)))
    # 10000 - 2 x 3.15 x 100 - 1.30
    assert book.cash == D("9368.70")
    # (4.00 - 3.15) x 1 x 100
    realized = book.apply(
        fill("sell", "1", "4.00", "SPY C", commission=D("0.65"), multiplier=D(100))
    )
    assert realized == D("85.00")
    # 9368.70 + 400 - 0.65
    assert book.cash == D("9768.05")
    held = position(book, "SPY C", {"SPY C": 3.5})
    assert held.multiplier == D(100)
    # 1 x 3.50 x 100
    assert held.market_value == D("350.00")
    # (3.50 - 3.15) x 1 x 100
    assert held.unrealized_pnl == D("35.00")
    assert book.equity({"SPY C": 3.5}) == D("10118.05")
    # unmarked: at cost, 1 x 3.15 x 100
    assert book.equity({}) == D("10083.05")


def two_positions() -> Book:
    book = Book(D("10000.00"))
    book.apply(fill("buy", "10", "100.00", "AAPL"))
    book.apply(fill("sell", "5", "400.00", "MSFT"))
    # 10000 - 1000 + 2000
    assert book.cash == D("11000.00")
    return book


def test_market_value_and_equity_with_marks() -> None:
    book = two_positions()
    marks = {"AAPL": 110.5, "MSFT": 390.25}
    # 10 x 110.5 - 5 x 390.25 = 1105 - 1951.25
    assert book.market_value(marks) == D("-846.25")
    assert book.equity(marks) == D("10153.75")


def test_unmarked_positions_count_at_cost() -> None:
    book = two_positions()
    # 1105 - 5 x 400
    assert book.market_value({"AAPL": 110.5}) == D("-895.00")
    assert book.equity({"AAPL": 110.5}) == D("10105.00")
    # 1000 - 2000: at cost the equity is the starting cash
    assert book.market_value({}) == D("-1000.00")
    assert book.equity({}) == D("10000.00")


def test_float_marks_become_exact_decimals() -> None:
    book = Book(D(0))
    book.apply(fill("buy", "10", "100"))
    # Decimal(101.1) would be 101.099999...; the repr gives 101.1
    assert book.market_value({"AAPL": 101.1}) == D("1011.0")
    assert position(book, "AAPL", {"AAPL": 101.1}).mark_price == D("101.1")


def test_positions_are_sorted_and_skip_flat_ones() -> None:
    book = two_positions()
    book.apply(fill("buy", "1", "10", "ZZZ"))
    book.apply(fill("sell", "1", "12", "ZZZ"))
    assert [p.symbol for p in book.positions()] == ["AAPL", "MSFT"]
    assert [p.symbol for p in book.positions(include_flat=True)] == ["AAPL", "MSFT", "ZZZ"]
    [aapl, msft] = book.positions({"AAPL": 101.0})
    assert aapl.mark_price == D(101)
    assert msft.mark_price is None
    assert msft.market_value is None
    assert msft.unrealized_pnl is None


def test_summary_with_marks() -> None:
    book = two_positions()
    summary = book.summary("paper-1", T0, D("20000.00"), {"AAPL": 110.5, "MSFT": 390.25})
    assert summary == AccountSummary(
        account_id="paper-1",
        currency="USD",
        cash=D("11000.00"),
        equity=D("10153.75"),
        buying_power=D("20000.00"),
        # |1105| + |-1951.25|
        gross_position_value=D("3056.25"),
        realized_pnl=D(0),
        # (110.5 - 100) x 10 + (390.25 - 400) x -5 = 105 + 48.75
        unrealized_pnl=D("153.75"),
        ts=T0,
    )


def test_summary_values_unmarked_positions_at_cost() -> None:
    book = two_positions()
    summary = book.summary("paper-1", T0, D(0), {"AAPL": 110.5})
    assert summary.equity == D("10105.00")
    # |1105| + |5 x 400| at cost
    assert summary.gross_position_value == D("3105.00")
    assert summary.unrealized_pnl == D("105.00")


def test_summary_after_trading() -> None:
    book = Book(D("5000.00"), currency="EUR")
    book.apply(fill("buy", "20", "50.00", commission=D("2.00")))
    book.apply(fill("sell", "5", "56.00", commission=D("2.00")))
    summary = book.summary("acct", T0, D("4000"), {"AAPL": 55.0})
    assert summary.currency == "EUR"
    # 5000 - 1000 - 2 + 280 - 2
    assert summary.cash == D("4276.00")
    # (56 - 50) x 5
    assert summary.realized_pnl == D("30.00")
    # (55 - 50) x 15
    assert summary.unrealized_pnl == D("75.00")
    # 4276 + 15 x 55 = 5000 + 30 + 75 - 4 commissions
    assert summary.equity == D("5101.00")
    assert summary.gross_position_value == D("825.00")


def test_seed_starts_from_a_broker_position() -> None:
    book = Book(D("1000.00"))
    book.seed(Position(symbol="AAPL", quantity=D(10), avg_cost=D("20.00")))
    assert book.quantity("AAPL") == D(10)
    # (22 - 20) x 5; cash moves by the fill only
    assert book.apply(fill("sell", "5", "22.00")) == D("10.00")
    assert book.cash == D("1110.00")


def test_seed_keeps_the_positions_realized_pnl() -> None:
    book = Book(D("1000.00"))
    book.seed(Position(symbol="AAPL", quantity=D(10), avg_cost=D("20.00"), realized_pnl=D("7.50")))
    book.seed(Position(symbol="MSFT", quantity=D(0), realized_pnl=D("-3.00")))
    held = position(book, "AAPL")
    assert (held.quantity, held.avg_cost, held.realized_pnl) == (D(10), D("20.00"), D("7.50"))
    # a flat holding is kept for its realized P&L
    assert book.positions() == [held]
    assert position(book, "MSFT").realized_pnl == D("-3.00")
    # the account's total is not the book's to derive: seeding leaves it alone
    assert book.realized_pnl == 0
    # (22 - 20) x 5 adds to what the position had realized
    assert book.apply(fill("sell", "5", "22.00")) == D("10.00")
    assert position(book, "AAPL").realized_pnl == D("17.50")
    assert book.realized_pnl == D("10.00")


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_commission_is_paid_either_way(side: str) -> None:
    book = Book(D("100.00"))
    book.apply(fill(side, "1", "10.00", commission=D("0.99")))
    expected = D("89.01") if side == "buy" else D("109.01")
    assert book.cash == expected
    assert book.commissions == D("0.99")
