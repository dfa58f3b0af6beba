"""The lot engine, on trade sequences whose figures are worked out by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st
from tradepipe.errors import LotError
from tradepipe.orders import Fill, Side
from tradepipe.plugins.tax.lots import (
    LotResult,
    Method,
    Term,
    anniversary,
    compute_lots,
    holding_term,
    trade_date,
)

D = Decimal


def fill(
    eid: str,
    side: str,
    qty: int | str,
    price: str,
    day: str,
    commission: str = "0",
    symbol: str = "AAPL",
    multiplier: str = "1",
    time: str = "15:00:00+00:00",
) -> Fill:
    return Fill(
        execution_id=eid,
        client_order_id="tp-x",
        decision_id="d",
        symbol=symbol,
        side=Side(side),
        quantity=D(qty),
        price=D(price),
        commission=D(commission),
        multiplier=D(multiplier),
        ts=dt.datetime.fromisoformat(f"{day}T{time}"),
    )


def summary(result: LotResult) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]]]:
    """(lot, quantity, proceeds, basis) per closed piece; (lot, quantity) per open lot."""
    closed = [(r.lot_id, str(r.quantity), str(r.proceeds), str(r.basis)) for r in result.closed]
    return closed, [(lot.lot_id, str(lot.quantity)) for lot in result.open]


THREE_BUYS = [
    fill("b1", "buy", 10, "100", "2026-01-05"),
    fill("b2", "buy", 10, "120", "2026-01-06"),
    fill("b3", "buy", 10, "110", "2026-01-07"),
    fill("s1", "sell", 15, "130", "2026-01-08"),
]


def test_fifo_relieves_the_oldest_lot_and_splits_the_next() -> None:
    closed, open_ = summary(compute_lots(THREE_BUYS))
    assert closed == [("b1", "10", "1300", "1000"), ("b2", "5", "650", "600")]
    assert open_ == [("b2", "5"), ("b3", "10")]


def test_lifo_relieves_the_newest_lot() -> None:
    closed, open_ = summary(compute_lots(THREE_BUYS, Method.LIFO))
    assert closed == [("b3", "10", "1300", "1100"), ("b2", "5", "650", "600")]
    assert open_ == [("b1", "10"), ("b2", "5")]


def test_hifo_relieves_the_dearest_lot() -> None:
    closed, open_ = summary(compute_lots(THREE_BUYS, Method.HIFO))
    assert closed == [("b2", "10", "1300", "1200"), ("b3", "5", "650", "550")]
    assert open_ == [("b1", "10"), ("b3", "5")]


def test_specific_lots_are_relieved_in_the_order_named_then_by_the_method() -> None:
    result = compute_lots(THREE_BUYS, specific={"s1": ["b3"]})
    closed, open_ = summary(result)
    assert closed == [("b3", "10", "1300", "1100"), ("b1", "5", "650", "500")]
    assert open_ == [("b1", "5"), ("b2", "10")]
    assert result.notes == ()


def test_lots_have_names_a_person_can_type_and_a_sale_can_name_them() -> None:
    # Two buys alike in symbol, date, quantity and price: the second is "#2".
    fills = [
        fill("b1", "buy", 10, "100", "2026-01-05"),
        fill("b2", "buy", 10, "100", "2026-01-05", time="16:00:00+00:00"),
        fill("b3", "buy", "2.5", "130.125", "2026-01-07"),
        fill("o1", "buy", 1, "3.2", "2026-01-07", symbol="AAPL  260220C00150000", multiplier="100"),
    ]
    opened = compute_lots(fills).open
    assert [lot.name for lot in opened] == [
        "AAPL/2026-01-05/10@100.00",
        "AAPL/2026-01-05/10@100.00#2",
        "AAPL/2026-01-07/2.5@130.125",
        "AAPL260220C00150000/2026-01-07/1@3.20",
    ]
    # Sell 10 naming the second lot by its name: b2 goes, b1 (first in) stays.
    sale = fill("s1", "sell", 10, "110", "2026-02-02")
    result = compute_lots([*fills, sale], specific={"s1": ["AAPL/2026-01-05/10@100.00#2"]})
    assert [(r.lot_id, r.name) for r in result.closed] == [("b2", "AAPL/2026-01-05/10@100.00#2")]
    assert result.notes == ()


def test_a_named_lot_with_a_quantity_gives_only_that_much_the_method_the_rest() -> None:
    # Sell 15 @ 130, naming 3 of b3 (as a broker's closed-lot rows do): 3 of b3 (basis
    # 3 x 110 = 330), then first in, first out: 10 of b1 (1000), 2 of b2 (240).
    result = compute_lots(THREE_BUYS, specific={"s1": [("b3", D(3))]})
    closed, open_ = summary(result)
    assert closed == [
        ("b3", "3", "390", "330"),
        ("b1", "10", "1300", "1000"),
        ("b2", "2", "260", "240"),
    ]
    assert open_ == [("b2", "8"), ("b3", "7")]


def test_a_named_lot_that_is_not_open_is_passed_over_with_a_note() -> None:
    # b9 never was; the sale relieves first in, first out, as if it named nothing.
    result = compute_lots(THREE_BUYS, specific={"s1": ["b9", "b3"]})
    closed, _ = summary(result)
    assert closed == [("b3", "10", "1300", "1100"), ("b1", "5", "650", "500")]
    assert result.notes == (
        "sale s1 named AAPL lot 'b9', which was not an open long lot then; "
        "its lots were relieved by fifo instead",
    )


def test_a_wash_sale_piece_is_named_after_its_lot_and_the_lot_name_covers_it() -> None:
    # Buy 10 @ 100 (b1), sell them @ 90 (loss 100), buy 20 @ 95 within 30 days:
    # 10 of the 20 shares take the loss and split off as piece 1 of b2.
    fills = [
        fill("b1", "buy", 10, "100", "2026-03-02"),
        fill("s1", "sell", 10, "90", "2026-03-10"),
        fill("b2", "buy", 20, "95", "2026-03-12"),
    ]
    result = compute_lots(fills)
    names = [(lot.lot_id, lot.name, str(lot.quantity)) for lot in result.open]
    assert names == [
        ("b2.1", "AAPL/2026-03-12/20@95.00:w1", "10"),
        ("b2", "AAPL/2026-03-12/20@95.00", "10"),
    ]
    sale = fill("s2", "sell", 5, "99", "2026-04-20")
    named = compute_lots([*fills, sale], specific={"s2": ["AAPL/2026-03-12/20@95.00"]})
    # The name of the lot as opened covers its piece, which comes first.
    assert [r.lot_id for r in named.closed[1:]] == ["b2.1"]


def test_commissions_go_into_basis_and_out_of_proceeds_pro_rata() -> None:
    # Buy 10 @ 10 + 3 = basis 103; buy 5 @ 12 + 1 = 61. Sell 12 @ 15 - 6: proceeds 174,
    # 10/12 to b1 (145), 2/12 to b2 (29); b2's basis 61 splits 2/5 = 24.4 and 36.6.
    result = compute_lots(
        [
            fill("b1", "buy", 10, "10", "2026-03-02", "3"),
            fill("b2", "buy", 5, "12", "2026-03-03", "1"),
            fill("s1", "sell", 12, "15", "2026-03-04", "6"),
        ]
    )
    assert summary(result)[0] == [("b1", "10", "145", "103"), ("b2", "2", "29", "24.4")]
    assert [r.gain for r in result.closed] == [D("42"), D("4.6")]
    [rest] = result.open
    assert (rest.quantity, rest.basis) == (D(3), D("36.6"))


def test_an_inexact_split_rounds_to_the_cent_and_keeps_the_whole() -> None:
    result = compute_lots(
        [
            fill("b1", "buy", 3, "10", "2026-03-02", "1"),
            fill("s1", "sell", 1, "11", "2026-03-03"),
            fill("s2", "sell", 1, "11", "2026-03-04"),
            fill("s3", "sell", 1, "11", "2026-03-05"),
        ]
    )
    # 31 / 3 is 10.33 to the cent; the 20.67 left halves exactly.
    assert [r.basis for r in result.closed] == [D("10.33"), D("10.335"), D("10.335")]
    assert sum(r.basis for r in result.closed) == D(31)


def test_a_sell_beyond_the_long_position_opens_a_short_lot_a_buy_closes_it() -> None:
    # Sell 15 @ 20 with 3 commission: 10 close b1 (proceeds 200 - 2), 5 open short (100 - 1).
    result = compute_lots(
        [
            fill("b1", "buy", 10, "18", "2026-04-01"),
            fill("s1", "sell", 15, "20", "2026-04-02", "3"),
            fill("b2", "buy", 5, "17", "2026-04-03", "0.5"),
        ]
    )
    long_, short = result.closed
    assert (long_.lot_id, long_.proceeds, long_.basis, long_.gain) == ("b1", 198, 180, 18)
    assert (short.lot_id, short.short, short.proceeds, short.basis) == ("s1", True, 99, D("85.5"))
    assert (short.gain, short.term) == (D("13.5"), Term.SHORT)
    # Form 8949's date acquired of a short sale: the cover date, when the shares
    # delivered to close it were bought; the short was opened the day before.
    assert (short.acquired, short.sold) == (dt.date(2026, 4, 3), dt.date(2026, 4, 3))
    assert short.opened_at.date() == dt.date(2026, 4, 2)
    assert result.open == ()


def test_a_short_sale_is_acquired_on_each_cover_date_and_short_term() -> None:
    # Short 10 @ 50 on 2025-01-06, held open more than a year; covered 4 @ 40 on
    # 2026-02-02 and 6 @ 45 on 2026-03-02. Proceeds 500 split 4/10 = 200 and 300;
    # gains 200 - 160 = 40 and 300 - 270 = 30. Each cover buys the shares delivered
    # that day, held no time at all: short-term, acquired and sold on the cover date.
    result = compute_lots(
        [
            fill("s1", "sell", 10, "50", "2025-01-06"),
            fill("c1", "buy", 4, "40", "2026-02-02"),
            fill("c2", "buy", 6, "45", "2026-03-02"),
        ]
    )
    assert [
        (r.lot_id, r.quantity, r.proceeds, r.basis, r.gain, r.acquired, r.sold, r.term)
        for r in result.closed
    ] == [
        ("s1", 4, 200, 160, 40, dt.date(2026, 2, 2), dt.date(2026, 2, 2), Term.SHORT),
        ("s1", 6, 300, 270, 30, dt.date(2026, 3, 2), dt.date(2026, 3, 2), Term.SHORT),
    ]
    assert result.open == ()


def test_a_sell_while_long_sells_the_long_lots_first() -> None:
    # One net position per symbol, as at the broker: selling 10 while 10 are held
    # sells them (a long-term sale, held 2025-01-06 to 2026-02-02) and opens no short
    # lot; there is no short sale against long shares ("short against the box").
    result = compute_lots(
        [
            fill("b1", "buy", 10, "30", "2025-01-06"),
            fill("s1", "sell", 10, "50", "2026-02-02"),
        ]
    )
    [sale] = result.closed
    assert (sale.lot_id, sale.short, sale.gain, sale.term) == ("b1", False, 200, Term.LONG)
    assert sale.acquired == dt.date(2025, 1, 6)
    assert result.open == ()


def test_option_lots_carry_the_multiplier() -> None:
    ticker = "AAPL  261218C00200000"
    result = compute_lots(
        [
            fill("o1", "buy", 2, "3.15", "2026-05-01", "1.30", ticker, "100"),
            fill("o2", "sell", 1, "4.05", "2026-05-08", "0.65", ticker, "100"),
        ]
    )
    [closed] = result.closed
    assert (closed.proceeds, closed.basis, closed.gain) == (D("404.35"), D("315.65"), D("88.70"))
    [lot] = result.open
    assert (lot.quantity, lot.basis, lot.multiplier) == (D(1), D("315.65"), D(100))


# Long term is held more than one year, counted from the day after acquisition (IRS Pub.
# 550). Each case: the day counting starts; the last day of the first year (the
# anniversary: that start's date a year on, less a day); so the first long-term date.
@pytest.mark.parametrize(
    ("acquired", "sold", "term"),
    [
        # Counted from 2025-03-11: the year ends 2026-03-10, a sale that day is held
        # exactly one year (short); 2026-03-11 is the first long-term date.
        ("2025-03-10", "2026-03-10", Term.SHORT),
        ("2025-03-10", "2026-03-11", Term.LONG),
        # Counted from 2023-03-02: the year ends 2024-03-01 (2024-02-29 lies inside it).
        ("2023-03-01", "2024-02-29", Term.SHORT),
        ("2023-03-01", "2024-03-01", Term.SHORT),
        ("2023-03-01", "2024-03-02", Term.LONG),
        # Bought the day before a leap year's 29 February (Pub. 550's rule, the case the
        # engine got wrong): counted from 2023-03-01, a year on is 2024-03-01, so the year
        # ends 2024-02-29. A sale on the 29th is held one year exactly: short; 1 March long.
        ("2023-02-28", "2024-02-28", Term.SHORT),
        ("2023-02-28", "2024-02-29", Term.SHORT),
        ("2023-02-28", "2024-03-01", Term.LONG),
        # The same a leap cycle on: counted from 2027-03-01, the year ends 2028-02-29.
        ("2027-02-28", "2028-02-29", Term.SHORT),
        ("2027-02-28", "2028-03-01", Term.LONG),
        # Bought on a leap day: counted from 2024-03-01, the year ends 2025-02-28.
        ("2024-02-29", "2025-02-28", Term.SHORT),
        ("2024-02-29", "2025-03-01", Term.LONG),
        ("2024-02-29", "2028-02-29", Term.LONG),
        # Bought on 28 February of a leap year: counted from 2024-02-29, which 2025 lacks;
        # its second year starts 2025-03-01, so the first ends 2025-02-28, the anniversary
        # of the purchase (a sale on the anniversary is never long-term).
        ("2024-02-28", "2025-02-28", Term.SHORT),
        ("2024-02-28", "2025-03-01", Term.LONG),
        # Bought 2024-02-27: counted from 02-28, the year ends 2025-02-27.
        ("2024-02-27", "2025-02-27", Term.SHORT),
        ("2024-02-27", "2025-02-28", Term.LONG),
        # Across the new year: counted from 2024-01-01, the year ends 2024-12-31.
        ("2023-12-31", "2024-12-31", Term.SHORT),
        ("2023-12-31", "2025-01-01", Term.LONG),
    ],
)
def test_the_one_year_boundary(acquired: str, sold: str, term: Term) -> None:
    a, s = dt.date.fromisoformat(acquired), dt.date.fromisoformat(sold)
    assert holding_term(a, s) is term
    assert (s > anniversary(a)) is (term is Term.LONG)
    result = compute_lots([fill("b", "buy", 1, "10", acquired), fill("s", "sell", 1, "9", sold)])
    assert result.closed[0].term is term


@pytest.mark.parametrize(
    ("acquired", "last_short_day"),
    [
        ("2025-03-10", "2026-03-10"),
        ("2023-02-28", "2024-02-29"),
        ("2024-02-28", "2025-02-28"),
        ("2024-02-29", "2025-02-28"),
        ("2025-02-28", "2026-02-28"),
        ("2023-12-31", "2024-12-31"),
    ],
)
def test_the_anniversary_is_the_last_short_term_day(acquired: str, last_short_day: str) -> None:
    assert anniversary(dt.date.fromisoformat(acquired)).isoformat() == last_short_day


def test_the_holding_period_uses_new_york_dates() -> None:
    # 03:30 UTC on 11 March is still 10 March in New York: the anniversary, short-term.
    late = fill("s", "sell", 1, "11", "2026-03-11", time="03:30:00+00:00")
    result = compute_lots([fill("b", "buy", 1, "10", "2025-03-10"), late])
    assert (result.closed[0].sold, result.closed[0].term) == (dt.date(2026, 3, 10), Term.SHORT)
    # Bought 01:30 UTC on 1 March 2023, 20:30 on 28 February in New York: acquired
    # 2023-02-28, so the year held ends 2024-02-29. Sold 04:30 UTC on 1 March 2024
    # (23:30 on the 29th there): short-term; at 05:30 UTC (00:30 on 1 March): long-term.
    bought = fill("b", "buy", 1, "10", "2023-03-01", time="01:30:00+00:00")
    for time, sold, term in (("04:30", 29, Term.SHORT), ("05:30", 1, Term.LONG)):
        sale = fill("s", "sell", 1, "11", "2024-03-01", time=f"{time}:00+00:00")
        [closed] = compute_lots([bought, sale]).closed
        assert (closed.acquired, closed.sold.day, closed.term) == (dt.date(2023, 2, 28), sold, term)


@pytest.mark.parametrize(
    ("now", "term"), [("2026-03-10 20:59", "short"), ("2026-03-11 14:30", "long")]
)
def test_a_sale_now_on_each_side_of_the_boundary(now: str, term: str) -> None:
    with freeze_time(now, tz_offset=0):
        sold = dt.datetime.now(dt.UTC)
    assert trade_date(sold).isoformat() == now[:10]
    bought = fill("b", "buy", 1, "10", "2025-03-10")
    sale = fill("s", "sell", 1, "12", now[:10], time=f"{now[11:]}:00+00:00")
    assert sale.ts == sold
    assert compute_lots([bought, sale]).closed[0].term == term


def test_a_wash_sale_with_a_purchase_after_the_sale() -> None:
    # Loss 202 on 100 shares; 60 bought back 14 days later: 121.20 disallowed, added to
    # the new lot, whose holding period starts 30 days (b1's) before its purchase.
    result = compute_lots(
        [
            fill("b1", "buy", 100, "10", "2026-01-02", "1"),
            fill("s1", "sell", 100, "8", "2026-02-01", "1"),
            fill("b2", "buy", 60, "9", "2026-02-15"),
        ]
    )
    [sale] = result.closed
    assert (sale.proceeds, sale.basis, sale.adjustment, sale.gain) == (
        799,
        1001,
        D("121.2"),
        D("-80.8"),
    )
    [lot] = result.open
    assert (lot.basis, lot.wash_adjustment, lot.acquired) == (
        D("661.2"),
        D("121.2"),
        dt.date(2026, 1, 16),
    )


def test_a_wash_sale_with_a_purchase_before_the_sale_and_a_partial_replacement() -> None:
    # b2 (20 shares, 10 days before the sale) replaces 20 of the 50 sold at a loss of 100:
    # 40 disallowed; b2 is wholly a replacement and keeps its id.
    result = compute_lots(
        [
            fill("b1", "buy", 50, "20", "2026-06-01"),
            fill("b2", "buy", 20, "19", "2026-06-20"),
            fill("s1", "sell", 50, "18", "2026-06-30"),
        ]
    )
    [sale] = result.closed
    assert (sale.proceeds - sale.basis, sale.adjustment, sale.gain) == (-100, 40, -60)
    [lot] = result.open
    assert (lot.lot_id, lot.basis, lot.acquired) == ("b2", D("420"), dt.date(2026, 5, 22))


def test_the_whole_loss_is_washed_by_a_large_enough_replacement_before_the_sale() -> None:
    result = compute_lots(
        [
            fill("b1", "buy", 50, "20", "2026-06-01"),
            fill("b2", "buy", 80, "19", "2026-06-20"),
            fill("s1", "sell", 50, "18", "2026-06-30"),
        ]
    )
    [sale] = result.closed
    assert (sale.adjustment, sale.gain) == (100, 0)
    washed, rest = result.open
    assert (washed.lot_id, washed.quantity, washed.basis, washed.washed) == ("b2.1", 50, 1050, True)
    assert (rest.lot_id, rest.quantity, rest.basis, rest.acquired) == (
        "b2",
        30,
        570,
        dt.date(2026, 6, 20),
    )


def test_no_wash_sale_outside_the_window_for_a_gain_or_for_another_symbol() -> None:
    result = compute_lots(
        [
            fill("b1", "buy", 10, "20", "2026-01-02"),
            fill("s1", "sell", 10, "18", "2026-02-01"),
            fill("m1", "buy", 10, "18", "2026-02-02", symbol="MSFT"),
            fill("b2", "buy", 10, "18", "2026-03-04"),  # 31 days after the sale
        ]
    )
    assert [r.adjustment for r in result.closed] == [0]
    assert all(lot.wash_adjustment == 0 for lot in result.open)
    on_day_30 = compute_lots(
        [
            fill("b1", "buy", 10, "20", "2026-01-02"),
            fill("s1", "sell", 10, "18", "2026-02-01"),
            fill("b2", "buy", 10, "18", "2026-03-03"),
        ]
    )
    assert on_day_30.closed[0].adjustment == 20


def test_the_rest_of_the_sold_lot_is_not_its_own_replacement_and_shares_wash_once() -> None:
    result = compute_lots(
        [
            fill("b1", "buy", 20, "10", "2026-01-02"),
            fill("s1", "sell", 10, "9", "2026-01-10"),  # loss 10; b1's other 10 do not count
            fill("b2", "buy", 10, "9", "2026-01-12"),  # replaces s1
            fill("s2", "sell", 10, "8", "2026-01-13", symbol="AAPL"),  # sells b1's rest, loss 20
        ]
    )
    first, second = result.closed
    assert (first.adjustment, second.adjustment) == (10, 0)  # b2 already absorbed one wash


def test_bad_input_is_refused() -> None:
    buy = fill("b1", "buy", 1, "10", "2026-01-02")
    with pytest.raises(LotError, match="appears twice"):
        compute_lots([buy, buy])
    with pytest.raises(LotError, match="earlier than"):
        compute_lots([buy, fill("b0", "buy", 1, "10", "2026-01-01")])


# Property: whatever the method, the cash of the fills is the realized gains less the
# basis of open long lots plus the proceeds held in open short lots.

money = st.decimals(min_value=D("0.01"), max_value=D("999.99"), places=2)
trades = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=300),
        money,
        st.decimals(min_value=D(0), max_value=D("9.99"), places=2),
        st.integers(min_value=0, max_value=40),
    ),
    max_size=40,
)


def _fills(rows: list[tuple[str, int, Decimal, Decimal, int]], symbols: int = 2) -> list[Fill]:
    day = dt.date(2025, 1, 2)
    out = []
    for i, (side, qty, price, commission, gap) in enumerate(rows):
        day += dt.timedelta(days=gap)
        symbol = "AAPL" if i % symbols == 0 else "MSFT"
        out.append(fill(f"e{i}", side, qty, str(price), day.isoformat(), str(commission), symbol))
    return out


def _cash(fills: list[Fill]) -> Decimal:
    total = D(0)
    for f in fills:
        gross = f.price * f.quantity * f.multiplier
        total += gross - f.commission if f.side is Side.SELL else -gross - f.commission
    return total


def _books(result: LotResult) -> Decimal:
    gains = sum((r.gain for r in result.closed), D(0))
    held = sum((-lot.basis if not lot.short else lot.basis for lot in result.open), D(0))
    return gains + held


@settings(max_examples=150, deadline=None)
@given(trades, st.sampled_from(list(Method)))
def test_gains_and_open_basis_add_up_to_the_cash_flow(
    rows: list[tuple[str, int, Decimal, Decimal, int]], method: Method
) -> None:
    # Days apart > 30 so no wash sale arises: every adjustment is zero.
    spaced = [(side, qty, price, fee, 31 + gap) for side, qty, price, fee, gap in rows]
    fills = _fills(spaced)
    result = compute_lots(fills, method)
    assert all(r.adjustment == 0 for r in result.closed)
    assert _books(result) == _cash(fills)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(trades, st.sampled_from(list(Method)))
def test_wash_sales_move_losses_without_changing_the_total(
    rows: list[tuple[str, int, Decimal, Decimal, int]], method: Method
) -> None:
    fills = _fills(rows)
    result = compute_lots(fills, method)
    assert _books(result) == _cash(fills)
    for symbol in ("AAPL", "MSFT"):
        bought = sum(f.quantity for f in fills if f.symbol == symbol and f.side is Side.BUY)
        sold = sum(f.quantity for f in fills if f.symbol == symbol and f.side is Side.SELL)
        held = sum(
            (-lot.quantity if lot.short else lot.quantity)
            for lot in result.open
            if lot.symbol == symbol
        )
        assert held == bought - sold
    assert all(r.adjustment <= -(r.proceeds - r.basis) for r in result.closed if r.adjustment)


CALL = "AAPL  260619C00050000"


@pytest.mark.parametrize("options", [True, False])
def test_a_call_bought_after_a_loss_sale_washes_it_only_with_the_setting(options: bool) -> None:
    # 100 AAPL @ 50.00 = 5000.00 on 03-02, sold @ 45.00 = 4500.00 on 04-01: a loss of
    # 500.00, held 30 days. One call (x100, so 100 shares) @ 2.00 = 200.00 on 04-10.
    result = compute_lots(
        [
            fill("b", "buy", 100, "50", "2026-03-02"),
            fill("s", "sell", 100, "45", "2026-04-01"),
            fill("c", "buy", 1, "2", "2026-04-10", symbol=CALL, multiplier="100"),
        ],
        wash_sale_options=options,
    )
    (sale,) = result.closed
    (call,) = result.open
    assert (sale.proceeds, sale.basis) == (4500, 5000)
    if options:
        # Disallowed 500.00 (code W), gain 4500.00 - 5000.00 + 500.00 = 0.00; the call's
        # basis 200.00 + 500.00 = 700.00, acquired 04-10 - 30 days = 03-11.
        assert (sale.adjustment, sale.gain) == (500, 0)
        assert (call.basis, call.wash_adjustment, call.acquired) == (
            700,
            500,
            dt.date(2026, 3, 11),
        )
    else:
        assert (sale.adjustment, sale.gain) == (0, -500)
        assert (call.basis, call.wash_adjustment, call.acquired) == (200, 0, dt.date(2026, 4, 10))


def test_a_call_bought_before_a_loss_sale_washes_part_of_it_and_a_put_never() -> None:
    # 200 AAPL @ 50.00 = 10000.00 on 03-02. A put (x100) on 03-20 is not an option to buy
    # the shares; a call (x100) @ 1.50 = 150.00 on 03-25 stands for 100 of the 200 shares
    # sold @ 48.00 = 9600.00 on 04-01: of the 400.00 loss, 100/200 = 200.00 is disallowed.
    # The call's basis 150.00 + 200.00 = 350.00, acquired 03-25 - 30 days = 02-23.
    put = "AAPL  260619P00045000"
    result = compute_lots(
        [
            fill("b", "buy", 200, "50", "2026-03-02"),
            fill("p", "buy", 1, "1", "2026-03-20", symbol=put, multiplier="100"),
            fill("c", "buy", 1, "1.5", "2026-03-25", symbol=CALL, multiplier="100"),
            fill("s", "sell", 200, "48", "2026-04-01"),
        ],
        wash_sale_options=True,
    )
    (sale,) = result.closed
    assert (sale.proceeds, sale.basis, sale.adjustment, sale.gain) == (9600, 10000, 200, -200)
    by_symbol = {lot.symbol: lot for lot in result.open}
    assert (by_symbol[put].basis, by_symbol[put].wash_adjustment) == (100, 0)
    call = by_symbol[CALL]
    assert (call.basis, call.wash_adjustment, call.acquired) == (350, 200, dt.date(2026, 2, 23))
