"""The paper simulator's options: Black–Scholes, its synthetic chain, option and combo fills."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tradepipe import (
    Bar,
    Combo,
    Fill,
    InvalidOrderError,
    Leg,
    Option,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
)
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.brokers.paper.options import black_scholes, bs_delta, listed_expiries, parse_occ
from tradepipe.clock import ManualClock

D = Decimal
UTC = dt.UTC
T0 = dt.datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_black_scholes_known_values() -> None:
    # Hull's textbook case: S=K=100, T=1, r=5%, sigma=20%
    assert black_scholes(100, 100, 1, 0.05, 0.2, "C") == pytest.approx(10.4506, abs=1e-4)
    assert black_scholes(100, 100, 1, 0.05, 0.2, "P") == pytest.approx(5.5735, abs=1e-4)
    assert bs_delta(100, 100, 1, 0.05, 0.2, "C") == pytest.approx(0.6368, abs=1e-4)
    assert black_scholes(110, 100, 0, 0.05, 0.2, "C") == 10  # at expiry: intrinsic


@given(
    s=st.floats(1, 1000),
    k=st.floats(1, 1000),
    t=st.floats(0.001, 3),
    r=st.floats(0, 0.1),
    sigma=st.floats(0.05, 1.5),
)
def test_put_call_parity(s: float, k: float, t: float, r: float, sigma: float) -> None:
    call = black_scholes(s, k, t, r, sigma, "C")
    put = black_scholes(s, k, t, r, sigma, "P")
    assert call - put == pytest.approx(s - k * math.exp(-r * t), abs=1e-9 * max(s, k))
    assert call >= max(s - k * math.exp(-r * t), 0) - 1e-9 * s


def test_listed_expiries_are_weeklies_and_monthly_third_fridays() -> None:
    days = listed_expiries(dt.date(2026, 11, 20))
    assert days[:5] == [dt.date(2026, 11, 27) + dt.timedelta(weeks=n) for n in range(5)]
    assert dt.date(2027, 1, 15) in days and dt.date(2027, 3, 19) in days
    assert all(d.weekday() == 4 for d in days)


def test_occ_symbols_round_trip() -> None:
    option = Option(underlying="SPY", expiry=dt.date(2026, 12, 18), strike=D("602.5"), right="P")
    assert parse_occ(option.ticker) == option
    assert parse_occ("AAPL") is None


def bar(symbol: str, ts: dt.datetime, o: float, h: float, lo: float, c: float) -> Bar:
    return Bar(symbol, ts, o, h, lo, c, 1000.0)


@pytest.fixture
def paper() -> PaperBroker:
    broker = PaperBroker(PaperBroker.Settings(initial_cash=D(50_000)))
    broker.clock = ManualClock(T0)
    broker.connect()
    broker.on_bar(bar("SPY", T0, 600, 601, 599, 600))
    return broker


def intent(
    instrument: Option | Combo, side: Side, qty: int, limit: str | None = None
) -> OrderIntent:
    return OrderIntent(
        client_order_id=f"c-{side}-{qty}-{limit}",
        decision_id="d",
        source="t",
        symbol=instrument.ticker,
        side=side,
        quantity=D(qty),
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        limit_price=None if limit is None else D(limit),
        created_at=T0,
        instrument=instrument,
    )


def test_the_chain_is_deterministic_and_priced(paper: PaperBroker) -> None:
    chain = paper.option_chain("SPY")
    assert chain == paper.option_chain("SPY")
    dec = [q for q in chain if q.option.expiry == dt.date(2026, 12, 18)]
    strikes = sorted({q.option.strike for q in dec})
    assert strikes[0] == D(420) and strikes[-1] == D(780) and strikes[1] - strikes[0] == 10
    atm = {q.option.right: q for q in dec if q.option.strike == 600}
    assert atm["C"].delta is not None and 0.5 < atm["C"].delta < 0.6
    assert atm["C"].price is not None and atm["P"].price is not None
    assert atm["C"].price > atm["P"].price  # r > 0
    assert paper.option_chain("SPY", dt.date(2026, 12, 18)) == dec
    assert paper.option_chain("SPY", dt.date(2026, 12, 17)) == []


@pytest.mark.parametrize(
    ("price", "written"),
    [
        (600, {"420", "600", "610", "780"}),
        (170, {"120", "122.5", "170", "172.5"}),
        (20, {"14", "14.5"}),
    ],
)
def test_chain_strikes_are_written_plainly(price: float, written: set[str]) -> None:
    broker = PaperBroker(PaperBroker.Settings())
    broker.clock = ManualClock(T0)
    broker.connect()
    broker.on_bar(bar("SPY", T0, price, price, price, price))
    options = [q.option for q in broker.option_chain("SPY", dt.date(2026, 12, 18))]
    shown = {str(o.strike) for o in options}
    assert written <= shown and not [s for s in shown if "E" in s or s.endswith(".0")]
    assert {o.model_dump(mode="json")["strike"] for o in options} == shown


def test_a_vertical_fills_per_leg_with_per_contract_commission(paper: PaperBroker) -> None:
    chain = {q.option.ticker: q for q in paper.option_chain("SPY", dt.date(2026, 12, 18))}
    c600 = Option(underlying="SPY", expiry=dt.date(2026, 12, 18), strike=D(600), right="C")
    c610 = c600.model_copy(update={"strike": D(610)})
    combo = Combo(legs=(Leg(instrument=c600, ratio=1), Leg(instrument=c610, ratio=-1)))
    model = chain[c600.ticker].price - chain[c610.ticker].price  # type: ignore[operator]
    limit = str(model - D("0.50"))  # below the model at 600: waits
    update = paper.place(intent(combo, Side.BUY, 3, limit))
    assert update.status is OrderStatus.ACCEPTED
    assert paper.on_bar(bar("SPY", T0 + dt.timedelta(minutes=1), 600, 600.5, 599.5, 600)) == []
    # the underlying falls: the spread gets cheaper and reaches the limit
    events = paper.on_bar(bar("SPY", T0 + dt.timedelta(minutes=2), 600, 600, 580, 585))
    fill = next(e for e in events if isinstance(e, Fill))
    assert (fill.price, fill.quantity, fill.multiplier) == (D(limit), D(3), D(100))
    assert fill.commission == D("3.90")  # 6 contracts at 0.65
    held = {p.symbol: p.quantity for p in paper.positions()}
    assert held == {c600.ticker: D(3), c610.ticker: D(-3)}
    assert paper.book.cash == D(50_000) - D(limit) * 300 - D("3.90")
    assert paper.order(update.client_order_id).status is OrderStatus.FILLED  # type: ignore[union-attr]


def test_a_single_option_market_order_fills_at_the_model_price(paper: PaperBroker) -> None:
    p590 = Option(underlying="SPY", expiry=dt.date(2026, 12, 18), strike=D(590), right="P")
    paper.place(intent(p590, Side.BUY, 1))
    events = paper.on_bar(bar("SPY", T0 + dt.timedelta(minutes=1), 600, 601, 599, 600))
    fill = next(e for e in events if isinstance(e, Fill))
    ts = T0 + dt.timedelta(minutes=1)
    years = (dt.datetime(2026, 12, 18, 21, 0, tzinfo=UTC) - ts).total_seconds() / (365 * 86400)
    expected = black_scholes(600, 590, years, 0.04, 0.25, "P")
    assert fill.price == D(repr(expected)).quantize(D("0.01"))
    assert fill.symbol == p590.ticker and fill.commission == D("1.00")  # the minimum
    position = paper.positions()[0]
    assert position.multiplier == 100 and position.mark_price is not None


def test_option_orders_are_refused_without_money_or_data(paper: PaperBroker) -> None:
    c = Option(underlying="SPY", expiry=dt.date(2026, 12, 18), strike=D(500), right="C")
    assert "insufficient buying power" in paper.place(intent(c, Side.BUY, 10)).reason
    other = Option(underlying="QQQ", expiry=dt.date(2026, 12, 18), strike=D(500), right="C")
    assert "no market data for the underlying" in paper.place(intent(other, Side.BUY, 1)).reason


def test_an_option_order_is_modified_as_it_was_placed(paper: PaperBroker) -> None:
    c600 = Option(underlying="SPY", expiry=dt.date(2026, 12, 18), strike=D(600), right="C")
    placed = paper.place(intent(c600, Side.BUY, 2, "1.00"))  # far below the model: waits
    cid = placed.client_order_id
    # Judged by the option desk's checks, not as a stock order of an unknown symbol.
    assert paper.modify(cid, limit_price=D("1.50")).reason == "modified"
    with pytest.raises(InvalidOrderError, match="1.5 is not a whole number of option contracts"):
        paper.modify(cid, quantity=D("1.5"))
    # Its own reservation is not counted twice: 40 000 of 50 000 is reserved by 2 at 200.
    assert paper.modify(cid, limit_price=D(200)).reason == "modified"
    assert paper.modify(cid, quantity=D(1), limit_price=D(400)).reason == "modified"
    report = paper.order(cid)
    assert report is not None and (report.quantity, report.limit_price) == (1, 400)
