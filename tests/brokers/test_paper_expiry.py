"""Options at expiry on the paper simulator: automatic exercise, assignment, settlement in shares.

The week is that of T0: options bought on Monday 2 March 2026 (filled on
Tuesday's bar) expire on Friday 6 March; the first bar of Monday 9 March
settles them on Friday's close. Bars are at 15:00 UTC unless said.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from paper_support import feed
from tradepipe import (
    Action,
    Bar,
    Combo,
    Fill,
    Leg,
    Option,
    OrderIntent,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    Strategy,
    StrategyContext,
    TimeInForce,
    hookimpl,
)
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.brokers.paper.expiry import exercised
from tradepipe.clock import ManualClock
from tradepipe.testing import MemorySink, replay, test_host

UTC = dt.UTC
FRIDAY = dt.date(2026, 3, 6)
CID = "expiry-SPY260306C00600000-2026-03-06"
#: 16:00 New York on the expiry date (EST: daylight saving starts on 8 March).
AT_CLOSE = dt.datetime(2026, 3, 6, 21, 0, tzinfo=UTC)


def at(day: int, hour: int = 15) -> dt.datetime:
    """``hour`` UTC on ``day`` March 2026 (15:00 UTC is 10:00 New York until the 8th)."""
    return dt.datetime(2026, 3, day, hour, tzinfo=UTC)


def spy(ts: dt.datetime, close: float, symbol: str = "SPY") -> Bar:
    return Bar(symbol, ts, close, close, close, close, 1000.0)


def option(right: str, strike: int = 600) -> Option:
    return Option(underlying="SPY", expiry=FRIDAY, strike=D(strike), right=right)  # type: ignore[arg-type]


def order(
    instrument: Option | Combo,
    side: Side,
    quantity: int = 1,
    *,
    limit: str | None = None,
    tif: TimeInForce = TimeInForce.DAY,
) -> OrderIntent:
    return OrderIntent(
        client_order_id=f"o-{instrument.ticker}-{side}-{limit}".replace(" ", ""),
        decision_id=f"d-{side}",
        source="test",
        symbol=instrument.ticker,
        side=side,
        quantity=D(quantity),
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        limit_price=None if limit is None else D(limit),
        tif=tif,
        created_at=at(2),
        instrument=instrument,
    )


def fills(events: list[Any]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def account(**settings: Any) -> PaperBroker:
    broker = PaperBroker(PaperBroker.Settings(**settings))
    broker.clock = ManualClock(at(2))
    broker.connect()
    feed(broker, spy(at(2), 600))
    return broker


def holding(broker: PaperBroker, instrument: Option | Combo, side: Side, quantity: int = 1) -> Fill:
    """Trade ``instrument`` at Monday's price; the fill comes with Tuesday's bar."""
    assert broker.place(order(instrument, side, quantity)).status is OrderStatus.ACCEPTED
    [fill] = fills(feed(broker, spy(at(3), 600)))
    return fill


def held(broker: PaperBroker) -> dict[str, D]:
    return {p.symbol: p.quantity for p in broker.positions()}


# -- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("right", "close", "exercise"),
    [
        ("C", "610", True),  # in the money
        ("C", "590", False),  # out of the money
        ("C", "600", False),  # exactly at the strike
        ("C", "600.01", True),  # one cent in
        ("C", "600.009", False),  # less than a cent in
        ("P", "590", True),
        ("P", "610", False),
        ("P", "600", False),
        ("P", "599.99", True),
    ],
)
def test_exercise_by_exception_needs_a_cent_in_the_money(
    right: str, close: str, exercise: bool
) -> None:
    assert exercised(option(right), D(close)) is exercise


CASES = [
    # right, long, close, exercised: in the money, out, at the strike, one cent in.
    (right, long, close, exercise)
    for right, cases in (
        ("C", (("610", True), ("590", False), ("600", False), ("600.01", True))),
        ("P", (("590", True), ("610", False), ("600", False), ("599.99", True))),
    )
    for close, exercise in cases
    for long in (True, False)
]


@pytest.mark.parametrize(("right", "long", "close", "exercise"), CASES)
def test_a_position_settles_at_the_first_bar_after_expiry(
    right: str, long: bool, close: str, exercise: bool
) -> None:
    broker = account()
    contract = option(right)
    opened = holding(broker, contract, Side.BUY if long else Side.SELL, 2)
    premium = opened.price * 200
    feed(broker, spy(at(6), float(close)))
    cash = broker.book.cash
    # The bar that settles is Monday's, whose price would turn the outcome round:
    # the settlement must use Friday's close.
    call_up = (right == "C") == exercise
    events = feed(broker, spy(at(9), 600 - 50 if call_up else 600 + 50))
    first, *rest = fills(events)
    assert first.client_order_id == f"expiry-SPY260306{right}00600000-2026-03-06"
    assert first.execution_id == first.client_order_id + ".1"
    assert (first.symbol, first.side) == (contract.ticker, Side.SELL if long else Side.BUY)
    assert (first.quantity, first.price, first.commission, first.multiplier) == (2, 0, 0, 100)
    assert first.ts == AT_CLOSE and first.decision_id == opened.decision_id
    option_position = next(
        p for p in broker.book.positions(include_flat=True) if p.symbol == contract.ticker
    )
    assert option_position.quantity == 0
    # The premium paid is lost, the premium received kept, whatever happens to the shares.
    assert option_position.realized_pnl == (-premium if long else premium)
    if not exercise:
        assert rest == [] and held(broker) == {}
        assert broker.book.cash == cash
        return
    [shares] = rest
    buys = long == (right == "C")
    assert (shares.execution_id, shares.client_order_id) == (
        first.client_order_id + ".2",
        first.client_order_id,
    )
    assert (shares.symbol, shares.side, shares.quantity, shares.price) == (
        "SPY",
        Side.BUY if buys else Side.SELL,
        200,
        600,
    )
    assert (shares.commission, shares.multiplier, shares.ts) == (0, 1, AT_CLOSE)
    # Short stock from an exercise or assignment is allowed: allow_short is false here.
    assert held(broker) == {"SPY": D(200) if buys else D(-200)}
    assert broker.book.cash == cash + (-1 if buys else 1) * D(600) * 200


def test_a_short_put_assigned_buys_the_shares_and_debits_the_cash() -> None:
    broker = account(initial_cash=D(50_000))
    put = option("P")
    sold = holding(broker, put, Side.SELL)
    credited = broker.book.cash
    assert credited == D(50_000) + sold.price * 100 - sold.commission
    feed(broker, spy(at(6), 590))
    events = feed(broker, spy(at(9), 590))
    assert [(f.symbol, f.side, f.quantity, f.price) for f in fills(events)] == [
        (put.ticker, Side.BUY, 1, 0),
        ("SPY", Side.BUY, 100, 600),
    ]
    assert held(broker) == {"SPY": D(100)}
    # Bought at the strike though the market is at 590; more than the cash there was.
    assert broker.book.cash == credited - 60_000 < 0
    [position] = broker.positions()
    assert position.avg_cost == 600 and position.unrealized_pnl == -1000
    summary = broker.account()
    assert summary.realized_pnl == sold.price * 100  # the premium kept
    assert summary.equity == credited - 60_000 + 590 * 100


def test_nothing_settles_until_the_expiry_day_has_closed_in_new_york() -> None:
    broker = account()
    holding(broker, option("C"), Side.BUY)
    # 20:00 New York on Friday is already Saturday in UTC: still the expiry date.
    friday_evening = dt.datetime(2026, 3, 7, 1, 0, tzinfo=UTC)
    assert fills(feed(broker, spy(at(6), 620), spy(friday_evening, 630))) == []
    assert option("C").ticker in held(broker)
    # Any symbol's first bar of Saturday (05:00 UTC is midnight New York) settles, on
    # SPY's last close up to then: the evening's 630.
    events = feed(broker, spy(dt.datetime(2026, 3, 7, 5, 0, tzinfo=UTC), 50, symbol="QQQ"))
    first, shares = fills(events)
    assert first.ts == friday_evening  # the underlying's last bar that day, after 16:00
    assert (shares.side, shares.quantity, shares.price) == (Side.BUY, 100, 600)
    assert held(broker) == {"SPY": D(100)}
    # Settled once: later bars find nothing to do.
    assert fills(feed(broker, spy(at(9), 600), spy(at(10), 600))) == []


def test_a_combos_legs_settle_each_on_its_own() -> None:
    broker = account()
    low, high = option("C", 590), option("C", 610)
    spread = Combo(legs=(Leg(instrument=low, ratio=1), Leg(instrument=high, ratio=-1)))
    holding(broker, spread, Side.BUY, 3)
    assert held(broker) == {low.ticker: 3, high.ticker: -3}
    feed(broker, spy(at(6), 605))
    events = feed(broker, spy(at(9), 605))
    # The long 590 call is exercised; the short 610 call expires worthless.
    assert [(f.client_order_id, f.symbol, f.side, f.quantity, f.price) for f in fills(events)] == [
        ("expiry-SPY260306C00590000-2026-03-06", low.ticker, Side.SELL, 3, 0),
        ("expiry-SPY260306C00590000-2026-03-06", "SPY", Side.BUY, 300, 590),
        ("expiry-SPY260306C00610000-2026-03-06", high.ticker, Side.BUY, 3, 0),
    ]
    assert held(broker) == {"SPY": D(300)}


def test_an_order_for_an_option_that_has_expired_ends_expired() -> None:
    broker = account()
    call = option("C")
    feed(broker, spy(at(6), 600))
    # Placed on the expiry day, too low to fill that day; GTC, so only expiry ends it.
    update = broker.place(order(call, Side.BUY, limit="0.01", tif=TimeInForce.GTC))
    assert update.status is OrderStatus.ACCEPTED
    events = feed(broker, spy(at(9), 540))
    assert [(e.status, e.reason) for e in events if isinstance(e, OrderUpdate)] == [
        (OrderStatus.EXPIRED, "the option expired")
    ]
    assert fills(events) == [] and held(broker) == {}


# -- the account file ----------------------------------------------------------------------


def open_file(path: Path, ts: dt.datetime) -> PaperBroker:
    broker = PaperBroker(PaperBroker.Settings(state_file=str(path)))
    broker.clock = ManualClock(ts)
    broker.connect()
    return broker


def test_a_settlement_is_saved_at_once_and_never_booked_twice(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    first = open_file(path, at(2))
    feed(first, spy(at(2), 600))
    bought = holding(first, option("C"), Side.BUY)
    feed(first, spy(at(6), 612))
    first.disconnect()  # Friday: a restart over the weekend

    second = open_file(path, at(9))
    # Friday's close came from the file: the settlement is priced on it.
    settled = fills(feed(second, spy(at(9), 580)))
    assert [(f.execution_id, f.price) for f in settled] == [(CID + ".1", 0), (CID + ".2", 600)]
    saved = json.loads(path.read_text())  # written by the bar, not only at disconnect
    assert {p["symbol"]: p["quantity"] for p in saved["positions"]} == {
        option("C").ticker: "0",
        "SPY": "100",
    }
    assert [f["execution_id"] for f in saved["fills"]] == [
        bought.execution_id,
        CID + ".1",
        CID + ".2",
    ]
    cash = second.book.cash
    second.disconnect()

    third = open_file(path, at(10))
    assert [f.execution_id for f in third.fills()] == [bought.execution_id, CID + ".1", CID + ".2"]
    assert third.fills()[1].price == 0  # a zero-price fill reads back from the file
    assert fills(feed(third, spy(at(10), 600), spy(at(11), 600))) == []
    assert held(third) == {"SPY": D(100)} and third.book.cash == cash
    third.disconnect()


def test_a_read_only_view_does_not_settle(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    owner = open_file(path, at(2))
    feed(owner, spy(at(2), 600))
    holding(owner, option("C"), Side.BUY)
    feed(owner, spy(at(6), 612))
    viewer = open_file(path, at(9))
    assert "read-only" in viewer.status().message
    assert fills(feed(viewer, spy(at(9), 612))) == []
    assert option("C").ticker in held(viewer)
    assert len(fills(feed(owner, spy(at(9), 612)))) == 2
    viewer.disconnect()
    owner.disconnect()


# -- a run -----------------------------------------------------------------------------------


class BuyCall(Strategy):
    """Buys one SPY 600 call expiring Friday 6 March, at the first bar."""

    name = "buy_call"

    def decide(self, bar: Bar, ctx: StrategyContext) -> Any:
        if bar.ts == at(2):
            call = option("C")
            return self.decision(
                ctx,
                id="buy-the-call",
                symbol=call.ticker,
                instrument=call,
                action=Action.BUY,
                confidence=90,
                quantity=D(1),
            )
        return None


class BuyCallPlugin:
    __name__ = "buy_call"

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(BuyCall)


def test_a_call_bought_in_a_run_ends_as_shares_with_every_fill_in_the_ledger(
    tmp_path: Path,
) -> None:
    week = [spy(at(day), 600 + day, "SPY") for day in (2, 3, 4, 5, 6, 9, 10)]
    pipeline, result, _summary = replay(
        week,
        host=test_host(BuyCallPlugin()),
        run={
            "strategies": ["buy_call"],
            "risk_filters": ["min_confidence"],
            "sinks": ["memory", "sql"],
        },
        sinks={"sql": {"path": str(tmp_path / "ledger.db"), "writer": "inline"}},
    )
    assert result.status == "completed"
    memory = MemorySink.last
    assert memory is not None
    [order_] = memory.orders
    bought, expired, shares = memory.fills
    assert bought.client_order_id == order_.client_order_id
    assert bought.decision_id == expired.decision_id == shares.decision_id == "buy-the-call"
    # Booked under the order that bought the call, not the simulator's settlement id.
    assert expired.client_order_id == shares.client_order_id == order_.client_order_id
    assert expired.execution_id == CID + ".1" and shares.execution_id == CID + ".2"
    assert (bought.kind, expired.kind, shares.kind) == ("trade", "exercised", "exercised")
    assert (expired.symbol, expired.side, expired.price) == (option("C").ticker, Side.SELL, 0)
    # Friday's close was 606: the call is exercised, 100 shares bought at 600.
    assert (shares.symbol, shares.side, shares.quantity, shares.price) == (
        "SPY",
        Side.BUY,
        100,
        600,
    )
    assert {p.symbol: p.quantity for p in pipeline.broker.positions()} == {"SPY": 100}
    positions, summary = memory.snapshots[-1]
    assert {p.symbol: p.quantity for p in positions} == {"SPY": 100}
    assert summary.realized_pnl == -bought.price * 100
    assert summary.cash == D(100_000) - bought.price * 100 - bought.commission - 60_000
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        query = "SELECT execution_id, client_order_id, decision_id, symbol, price, kind FROM fills"
        rows = db.execute(query + " ORDER BY id").fetchall()
    cid = order_.client_order_id
    assert [(r[0], r[1], r[2], r[3], D(str(r[4])), r[5]) for r in rows] == [
        (bought.execution_id, cid, "buy-the-call", option("C").ticker, bought.price, "trade"),
        (CID + ".1", cid, "buy-the-call", option("C").ticker, D(0), "exercised"),
        (CID + ".2", cid, "buy-the-call", "SPY", D(600), "exercised"),
    ]
