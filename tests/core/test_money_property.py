"""Money is money: over any sequence of fills, the figures add up to the cent.

The book (the paper simulator's account and the executor's view of a
broker's) is checked against an oracle written here from the rules in
:mod:`tradepipe.money` with exact fractions and integer rounding, and the
figures the ledger's summary shows (SQLite and PostgreSQL) are checked to add
up: cash plus the positions' market values is the equity, to the cent.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tradepipe import Fill, RunInfo
from tradepipe.orders import Side
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.plugins.ledger.sink import SqlSink
from tradepipe.portfolio import Book

T = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
START = Decimal("100000.00")
#: symbol -> contract multiplier: two stocks and an option.
MULTIPLIERS = {"AAPL": 1, "SPY": 1, "SPY 260320C00500000": 100}


def half_even(value: Fraction, places: int) -> Fraction:
    """``value`` rounded to ``places`` decimals, ties to the even neighbour (integers only)."""
    scaled = value * 10**places
    low = scaled.numerator // scaled.denominator
    rest = scaled - low
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2 == 1):
        low += 1
    return Fraction(low, 10**places)


@dataclass
class Oracle:
    """Average-cost accounting as the rules say, in exact fractions."""

    cash: Fraction
    realized: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        self.quantity: dict[str, Fraction] = {}
        self.avg: dict[str, Fraction] = {}

    def apply(self, symbol: str, signed: Fraction, price: Fraction, commission: Fraction) -> None:
        mult = MULTIPLIERS[symbol]
        held = self.quantity.get(symbol, Fraction(0))
        avg = self.avg.get(symbol, Fraction(0))
        after = held + signed
        if held == 0 or (held > 0) == (signed > 0):
            avg = half_even((avg * held + price * signed) / after, 8)
        else:
            closed = min(abs(signed), abs(held))
            sign = 1 if held > 0 else -1
            self.realized += half_even((price - avg) * closed * sign * mult, 2)
            if after == 0:
                avg = Fraction(0)
            elif (after > 0) != (held > 0):
                avg = price
        self.quantity[symbol], self.avg[symbol] = after, avg
        self.cash -= half_even(signed * price * mult + commission, 2)

    def market_value(self, marks: dict[str, Fraction]) -> Fraction:
        return sum(
            (
                half_even(q * marks[s] * MULTIPLIERS[s], 2)
                for s, q in self.quantity.items()
                if q != 0
            ),
            Fraction(0),
        )


def fraction(value: Decimal) -> Fraction:
    return Fraction(value)


prices = st.decimals(min_value="0.0001", max_value="2500", places=4)
fills = st.lists(
    st.tuples(
        st.sampled_from(sorted(MULTIPLIERS)),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.one_of(
            st.integers(min_value=1, max_value=700).map(Decimal),
            st.decimals(min_value="0.0001", max_value="50", places=4),
        ),
        prices,
        st.decimals(min_value="0", max_value="9.99", places=4),
    ),
    min_size=1,
    max_size=40,
)
marks = st.fixed_dictionaries({s: prices for s in MULTIPLIERS})


def make_fill(n: int, symbol: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Fill:
    return Fill(
        execution_id=f"x{n}",
        client_order_id=f"tp-{n}",
        decision_id=f"d-{n}",
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        commission=fee,
        multiplier=Decimal(MULTIPLIERS[symbol]),
        ts=T + dt.timedelta(minutes=n),
    )


def booked(trades: list[Any], marked: dict[str, Decimal]) -> tuple[Book, Oracle]:
    book, oracle = Book(START), Oracle(fraction(START))
    for n, (symbol, side, qty, price, fee) in enumerate(trades):
        book.apply(make_fill(n, symbol, side, qty, price, fee))
        signed = fraction(qty) if side is Side.BUY else -fraction(qty)
        oracle.apply(symbol, signed, fraction(price), fraction(fee))
    return book, oracle


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(trades=fills, marked=marks)
def test_the_book_agrees_with_the_oracle_to_the_cent(
    trades: list[Any], marked: dict[str, Decimal]
) -> None:
    book, oracle = booked(trades, marked)
    as_floats = {s: float(p) for s, p in marked.items()}
    summary = book.summary("PAPER", T, book.cash, as_floats)
    exact_marks = {s: fraction(p) for s, p in marked.items()}
    assert fraction(book.cash) == oracle.cash
    assert fraction(book.realized_pnl) == oracle.realized
    assert fraction(summary.equity) == oracle.cash + oracle.market_value(exact_marks)
    # Every booked and shown amount is whole cents; costs have at most 8 places.
    for amount in (book.cash, book.realized_pnl, summary.equity, summary.unrealized_pnl):
        assert amount == amount.quantize(Decimal("0.01"))
    for p in book.positions(as_floats):
        assert p.avg_cost == p.avg_cost.quantize(Decimal("1E-8"))
        assert fraction(p.avg_cost) == oracle.avg[p.symbol]
    # The figures shown add up: equity is cash plus the positions' values.
    positions = book.positions(as_floats)
    assert summary.equity == book.cash + sum(p.market_value or 0 for p in positions)
    assert summary.unrealized_pnl == sum(p.unrealized_pnl or 0 for p in positions)


_runs = itertools.count()


@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(trades=fills, marked=marks)
def test_the_ledger_summary_adds_up_to_the_cent(
    ledger_url: str, trades: list[Any], marked: dict[str, Decimal]
) -> None:
    book, oracle = booked(trades, marked)
    as_floats = {s: float(p) for s, p in marked.items()}
    run_id = f"money-{next(_runs)}"
    run = RunInfo(
        run_id=run_id,
        namespace=run_id,
        started_at=T,
        env="test",
        broker="paper",
        feed="list",
        strategies=("s",),
    )
    sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    sink.open(run)
    sink.record_snapshot(book.positions(as_floats), book.summary("PAPER", T, book.cash, as_floats))
    sink.close(run, bars=0, status="completed")
    engine = sink.engine()
    try:
        shown = Ledger(engine, ledger_url).summary(run_id)
    finally:
        engine.dispose()
    money = [shown["cash"], shown["equity"], shown["realized_pnl"], shown["unrealized_pnl"]]
    for p in shown["positions"]:
        money += [p["market_value"], p["unrealized_pnl"], p["realized_pnl"]]
    assert all(len(m.rpartition(".")[2]) == 2 for m in money), money
    values = sum(Decimal(p["market_value"]) for p in shown["positions"])
    assert Decimal(shown["cash"]) + values == Decimal(shown["equity"])
    assert Fraction(Decimal(shown["realized_pnl"])) == oracle.realized
    assert Fraction(Decimal(shown["cash"])) == oracle.cash
