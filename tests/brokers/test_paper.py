"""The paper simulator, driven directly: fills, expiry, costs, accounting, refusals, orders,
IBKR order questions and the what-if preview.

Every expected number is worked out by hand next to its test. Bars come from
``tradepipe.testing.bar`` (an int ``ts`` is that many days after ``T0``, a Monday
09:30 New York); :func:`feed` moves the clock to each bar before the broker sees
it, as the executor does.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import pytest
from paper_support import feed
from tradepipe import (
    BrokerAuthError,
    BrokerQuestionError,
    BrokerRejectedError,
    Fill,
    InvalidOrderError,
    ManualClock,
    OrderIntent,
    OrderReport,
    OrderStatus,
    OrderUpdate,
)
from tradepipe.brokers.ibkr import orders as ibkr_orders
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.market import Bar, Quote
from tradepipe.testing import T0, MemorySink, bar, bars_from_closes, replay

_ids = itertools.count(1)


def make_broker(**settings: Any) -> PaperBroker:
    broker = PaperBroker(PaperBroker.Settings(**settings))
    broker.connect()
    broker.clock = ManualClock(T0)
    return broker


def report(broker: PaperBroker, cid: str) -> OrderReport:
    found = broker.order(cid)
    assert found is not None, f"the broker does not know order {cid}"
    return found


def intent(
    side: str = "buy",
    quantity: str | int = 10,
    order_type: str = "market",
    *,
    limit: str | None = None,
    stop: str | None = None,
    symbol: str = "AAPL",
    tif: str = "day",
    cid: str | None = None,
) -> OrderIntent:
    return OrderIntent(
        client_order_id=cid or f"c{next(_ids)}",
        decision_id="d1",
        source="test",
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        order_type=order_type,
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
        tif=tif,
        created_at=T0,
    )


def fills_of(events: list[Any]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def updates_of(events: list[Any]) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate)]


def set_up(broker: PaperBroker, held: int, working: list[OrderIntent]) -> None:
    """Hold ``held`` shares bought at 100, then place ``working``; the last close is 100."""
    feed(broker, bar(ts=0, open=100))
    if held:
        broker.place(intent("buy", held))
    feed(broker, bar(ts=1, open=100))
    assert broker.book.quantity("AAPL") == held
    for order in working:
        assert broker.place(order).status is OrderStatus.ACCEPTED


# -- when and at what price orders fill ----------------------------------------------------


def test_market_order_fills_at_the_next_bars_open_not_at_placement() -> None:
    broker = make_broker(commission="none")
    feed(broker, bar(ts=0, open=100, close=104))
    placed = broker.place(intent("buy", 10))
    assert placed.status is OrderStatus.ACCEPTED
    assert broker.fills() == []

    events = feed(broker, bar(ts=1, open=101.5, high=103, low=99, close=102))

    [fill] = fills_of(events)
    assert (fill.price, fill.quantity, fill.ts) == (D("101.5"), D(10), T0 + dt.timedelta(days=1))
    assert fill.broker_order_id == placed.broker_order_id
    assert report(broker, placed.client_order_id).status is OrderStatus.FILLED


@pytest.mark.parametrize(
    "first_bar",
    [
        pytest.param(bar(ts=1, open=100), id="same-bar-again"),
        pytest.param(bar(ts=1, open=90), id="other-bar-same-start"),
    ],
)
def test_order_never_fills_on_a_bar_that_started_before_it_was_placed(first_bar: Bar) -> None:
    # Placed while bar 1 is current (a decision on bar 1 of another symbol, say):
    # a bar starting at that same moment opened before the decision was made.
    broker = make_broker(commission="none")
    feed(broker, bar(ts=1, open=100))
    broker.place(intent("buy", 10))

    assert fills_of(feed(broker, first_bar)) == []
    [fill] = fills_of(feed(broker, bar(ts=2, open=107)))
    assert fill.price == D(107)


# Seeded with a bar closing at 100; the next bar (open/high/low/close) decides.
MATCHING = [
    # side, type, limit, stop, (open, high, low, close), fill price or None
    pytest.param("buy", "market", None, None, (101, 103, 99, 102), "101", id="market-buy"),
    pytest.param("sell", "market", None, None, (99, 101, 97, 98), "99", id="market-sell"),
    pytest.param("buy", "limit", "100", None, (99, 101, 98, 100), "99", id="limit-buy-gap"),
    pytest.param("buy", "limit", "100", None, (102, 103, 100, 101), "100", id="limit-buy-touch"),
    pytest.param("buy", "limit", "100", None, (102, 103, 100.5, 101), None, id="limit-buy-miss"),
    pytest.param("sell", "limit", "100", None, (101, 102, 99, 100), "101", id="limit-sell-gap"),
    pytest.param("sell", "limit", "100", None, (98, 100, 97, 99), "100", id="limit-sell-touch"),
    pytest.param("sell", "limit", "100", None, (98, 99.5, 97, 99), None, id="limit-sell-miss"),
    pytest.param("buy", "stop", None, "102", (103, 104, 101, 103), "103", id="stop-buy-gap"),
    pytest.param("buy", "stop", None, "102", (100, 102, 99, 101), "102", id="stop-buy-touch"),
    pytest.param("buy", "stop", None, "102", (100, 101.9, 99, 101), None, id="stop-buy-miss"),
    pytest.param("sell", "stop", None, "98", (97, 99, 96, 97), "97", id="stop-sell-gap"),
    pytest.param("sell", "stop", None, "98", (100, 101, 98, 99), "98", id="stop-sell-touch"),
    pytest.param("sell", "stop", None, "98", (100, 101, 98.5, 99), None, id="stop-sell-miss"),
    # stop-limit, triggered by a gap: the better of open and limit, or the limit if traded through
    pytest.param(
        "buy",
        "stop_limit",
        "103",
        "102",
        (102.5, 104, 102, 103),
        "102.5",
        id="stoplimit-buy-gap-open-inside-limit",
    ),
    pytest.param(
        "buy",
        "stop_limit",
        "103",
        "102",
        (104, 105, 102.8, 104),
        "103",
        id="stoplimit-buy-gap-trades-to-limit",
    ),
    pytest.param(
        "buy",
        "stop_limit",
        "103",
        "102",
        (104, 105, 103.5, 104),
        None,
        id="stoplimit-buy-gap-limit-missed",
    ),
    pytest.param(
        "sell",
        "stop_limit",
        "97",
        "98",
        (97.5, 98, 96, 97),
        "97.5",
        id="stoplimit-sell-gap-open-inside-limit",
    ),
    pytest.param(
        "sell",
        "stop_limit",
        "97",
        "98",
        (96, 97.2, 95, 96),
        "97",
        id="stoplimit-sell-gap-trades-to-limit",
    ),
    # stop-limit, triggered inside the bar: at the stop if the limit allows it, else wait
    pytest.param(
        "buy", "stop_limit", "103", "102", (100, 104, 99, 103), "102", id="stoplimit-buy-intrabar"
    ),
    pytest.param(
        "buy",
        "stop_limit",
        "101.5",
        "102",
        (100, 104, 99, 103),
        None,
        id="stoplimit-buy-intrabar-limit-below-stop",
    ),
    pytest.param(
        "sell", "stop_limit", "97", "98", (100, 101, 96, 97), "98", id="stoplimit-sell-intrabar"
    ),
    pytest.param(
        "sell",
        "stop_limit",
        "98.5",
        "98",
        (100, 101, 96, 97),
        None,
        id="stoplimit-sell-intrabar-limit-above-stop",
    ),
    pytest.param(
        "buy",
        "stop_limit",
        "101.5",
        "102",
        (101, 101.8, 100, 101),
        None,
        id="stoplimit-buy-not-triggered",
    ),
]


@pytest.mark.parametrize(("side", "order_type", "limit", "stop", "ohlc", "expected"), MATCHING)
def test_fill_price(
    side: str,
    order_type: str,
    limit: str | None,
    stop: str | None,
    ohlc: tuple[float, float, float, float],
    expected: str | None,
) -> None:
    broker = make_broker(commission="none", allow_short=True)
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent(side, 10, order_type, limit=limit, stop=stop))
    assert placed.status is OrderStatus.ACCEPTED, placed.reason

    o, h, low, c = ohlc
    events = feed(broker, bar(ts=1, open=o, high=h, low=low, close=c))

    if expected is None:
        assert events == []
        assert [r.client_order_id for r in broker.open_orders()] == [placed.client_order_id]
    else:
        [fill] = fills_of(events)
        assert fill.price == D(expected)
        assert fill.side == side
        assert broker.open_orders() == []


def test_stop_limit_triggered_with_limit_on_the_wrong_side_then_works_as_a_limit() -> None:
    broker = make_broker(commission="none")
    feed(broker, bar(ts=0, open=100))
    broker.place(intent("buy", 10, "stop_limit", stop="102", limit="101.5", tif="gtc"))

    # Trades through the stop (trigger) but a bar cannot tell whether 101.5 came after.
    assert feed(broker, bar(ts=1, open=100, high=104, low=99, close=103)) == []
    # Never reaches the stop again, yet fills: it is a 101.5 limit order now.
    [fill] = fills_of(feed(broker, bar(ts=2, open=101, high=101.2, low=100.8, close=101)))
    assert fill.price == D(101)


def test_a_bar_only_matches_orders_for_its_own_symbol() -> None:
    broker = make_broker(commission="none", symbols=["MSFT"])
    feed(broker, bar("AAPL", ts=0, open=100), bar("MSFT", ts=0, open=100))
    aapl = broker.place(intent("buy", 10, "limit", limit="100", symbol="AAPL"))

    assert feed(broker, bar("MSFT", ts=1, open=95, high=96, low=90, close=95)) == []
    assert [r.client_order_id for r in broker.open_orders()] == [aapl.client_order_id]

    [fill] = fills_of(feed(broker, bar("AAPL", ts=1, open=99)))
    assert (fill.symbol, fill.price) == ("AAPL", D(99))


# -- time in force ---------------------------------------------------------------------------


@pytest.mark.parametrize(("tif", "filled"), [("day", False), ("gtc", True)])
def test_day_orders_expire_with_their_trading_date_gtc_orders_stay(tif: str, filled: bool) -> None:
    broker = make_broker(commission="none")
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent("buy", 10, "limit", limit="90", tif=tif))
    # The order's first session: Monday 2 March (bar at 15:00 New York), no touch.
    feed(broker, bar(ts=T0 + dt.timedelta(hours=5), open=100, low=95))

    # Tuesday's first bar trades through the limit.
    events = feed(broker, bar(ts=1, open=92, high=93, low=85, close=91))

    status = report(broker, placed.client_order_id).status
    if filled:
        assert [f.price for f in fills_of(events)] == [D(90)]
        assert status is OrderStatus.FILLED
    else:
        [update] = events
        assert (update.status, update.reason) == (OrderStatus.EXPIRED, "day order expired")
        assert update.client_order_id == placed.client_order_id
        assert status is OrderStatus.EXPIRED
        assert broker.fills() == []
    assert broker.open_orders() == []


MIDNIGHT_UTC = dt.datetime(2026, 3, 3, 0, 30, tzinfo=dt.UTC)  # Monday 19:30 in New York


@pytest.mark.parametrize(
    ("timezone", "expires_at"),
    [
        # 00:30 UTC on Tuesday is still Monday evening in New York (UTC-5 in early March)
        ("America/New_York", MIDNIGHT_UTC + dt.timedelta(hours=14)),
        ("UTC", MIDNIGHT_UTC),
    ],
)
def test_day_order_trading_date_is_taken_in_the_exchange_timezone(
    timezone: str, expires_at: dt.datetime
) -> None:
    broker = make_broker(commission="none", timezone=timezone)
    monday = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    feed(broker, bar(ts=monday, open=100))
    placed = broker.place(intent("buy", 10, "limit", limit="90"))

    expired_at = None
    for ts in (monday + dt.timedelta(hours=5), MIDNIGHT_UTC, MIDNIGHT_UTC + dt.timedelta(hours=14)):
        for update in updates_of(feed(broker, bar(ts=ts, open=100, low=95))):
            assert update.status is OrderStatus.EXPIRED
            expired_at = update.ts
    assert expired_at == expires_at
    assert report(broker, placed.client_order_id).status is OrderStatus.EXPIRED


# -- commission and slippage -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "quantity", "price", "commission"),
    [
        # 400 x 0.005 = 2.00; minimum 1.00 and cap 1% of 20 000 = 200 do not bind
        pytest.param({}, 400, 50, "2.00", id="per-share"),
        # 100 x 0.005 = 0.50, raised to the 1.00 minimum (cap 1% of 5 000 = 50)
        pytest.param({}, 100, 50, "1.00", id="minimum"),
        # the 1.00 minimum exceeds 1% of 10 x 5 = 50: capped at 0.50
        pytest.param({}, 10, 5, "0.50", id="cap-over-minimum"),
        # 1 000 x 0.005 = 5.00, more than 1% of 1 000 x 0.40 = 400: capped at 4.00
        pytest.param({}, 1000, 0.4, "4.00", id="cap-over-per-share"),
        # own rates: 300 x 0.01 = 3.00, above a 2.00 minimum, below 2% of 6 000 = 120
        pytest.param(
            {
                "commission_per_share": "0.01",
                "commission_minimum": "2",
                "commission_max_fraction": "0.02",
            },
            300,
            20,
            "3.00",
            id="own-rates",
        ),
        pytest.param({"commission": "none"}, 400, 50, "0", id="none"),
    ],
)
def test_commission(settings: dict[str, Any], quantity: int, price: float, commission: str) -> None:
    broker = make_broker(initial_cash=D(100_000), **settings)
    feed(broker, bar(ts=0, open=price))
    broker.place(intent("buy", quantity))
    [fill] = fills_of(feed(broker, bar(ts=1, open=price)))

    assert fill.commission == D(commission)
    assert broker.account().cash == D(100_000) - quantity * D(str(price)) - D(commission)


@pytest.mark.parametrize(
    ("side", "order_type", "limit", "stop", "ohlc", "expected"),
    [
        # 10 bps: buys pay 0.1% more, sells get 0.1% less
        pytest.param("buy", "market", None, None, (100, 101, 99, 100), "100.1", id="market-buy"),
        pytest.param("sell", "market", None, None, (100, 101, 99, 100), "99.9", id="market-sell"),
        pytest.param("buy", "stop", None, "102", (100, 103, 99, 102), "102.102", id="stop-buy"),
        pytest.param("sell", "stop", None, "98", (97, 99, 96, 97), "96.903", id="stop-sell-gap"),
        pytest.param("buy", "limit", "100", None, (101, 102, 99, 100), "100", id="limit-buy"),
        pytest.param("sell", "limit", "100", None, (102, 103, 101, 102), "102", id="limit-sell"),
        pytest.param(
            "buy", "stop_limit", "102", "102", (100, 103, 99, 102), "102", id="stop-limit-buy"
        ),
    ],
)
def test_slippage_worsens_market_and_stop_fills_only(
    side: str,
    order_type: str,
    limit: str | None,
    stop: str | None,
    ohlc: tuple[float, float, float, float],
    expected: str,
) -> None:
    broker = make_broker(commission="none", allow_short=True, slippage_bps=D(10))
    feed(broker, bar(ts=0, open=100))
    broker.place(intent(side, 10, order_type, limit=limit, stop=stop))
    o, h, low, c = ohlc
    [fill] = fills_of(feed(broker, bar(ts=1, open=o, high=h, low=low, close=c)))
    assert fill.price == D(expected)


# -- the account -----------------------------------------------------------------------------


def test_account_arithmetic_long_round_trip() -> None:
    broker = make_broker(initial_cash=D(10_000), commission="none")
    feed(broker, bar(ts=0, open=10))

    broker.place(intent("buy", 100))
    feed(broker, bar(ts=1, open=10))  # 100 @ 10
    broker.place(intent("buy", 50))
    feed(broker, bar(ts=2, open=13))  # 50 @ 13: avg (1000 + 650) / 150 = 11
    [position] = broker.positions()
    assert (position.quantity, position.avg_cost, position.realized_pnl) == (150, 11, 0)
    assert broker.account().cash == 10_000 - 1_000 - 650

    broker.place(intent("sell", 60))
    feed(broker, bar(ts=3, open=15, close=16))  # 60 @ 15 realizes (15 - 11) x 60 = 240
    [position] = broker.positions()
    assert (position.quantity, position.avg_cost, position.realized_pnl) == (90, 11, 240)
    assert position.mark_price == 16  # the last bar's close
    account = broker.account()
    assert account.cash == 8_350 + 900
    assert account.realized_pnl == 240
    assert account.unrealized_pnl == (16 - 11) * 90
    assert account.equity == 9_250 + 90 * 16  # = 10 000 + 240 + 450
    assert account.buying_power == account.cash

    broker.place(intent("sell", 90))
    feed(broker, bar(ts=4, open=12))  # 90 @ 12 realizes (12 - 11) x 90 = 90
    account = broker.account()
    assert broker.positions() == []
    assert account.cash == account.equity == 10_330
    assert (account.realized_pnl, account.unrealized_pnl) == (330, 0)


def test_account_arithmetic_short_cover_and_flip() -> None:
    broker = make_broker(initial_cash=D(10_000), commission="none", allow_short=True)
    feed(broker, bar(ts=0, open=20))

    broker.place(intent("sell", 50))
    feed(broker, bar(ts=1, open=20))  # short 50 @ 20
    broker.place(intent("sell", 30))
    feed(broker, bar(ts=2, open=24))  # short 30 more @ 24: avg (1000 + 720) / 80 = 21.5
    broker.place(intent("buy", 20))
    feed(broker, bar(ts=3, open=15))  # cover 20 @ 15: (21.5 - 15) x 20 = 130
    [position] = broker.positions()
    assert (position.quantity, position.avg_cost, position.realized_pnl) == (-60, D("21.5"), 130)

    broker.place(intent("buy", 90))
    feed(broker, bar(ts=4, open=16, close=17))  # cover 60 @ 16 (+330), then long 30 @ 16
    [position] = broker.positions()
    assert (position.quantity, position.avg_cost, position.realized_pnl) == (30, 16, 460)
    account = broker.account()
    assert account.cash == 10_000 + 1_000 + 720 - 300 - 1_440
    assert account.unrealized_pnl == (17 - 16) * 30
    assert account.equity == 9_980 + 30 * 17  # = 10 000 + 460 + 30


def test_commission_is_paid_from_cash_and_not_counted_in_realized_pnl() -> None:
    broker = make_broker(initial_cash=D(10_000))  # ibkr_fixed: 1.00 per order here
    feed(broker, bar(ts=0, open=10))
    broker.place(intent("buy", 100))
    feed(broker, bar(ts=1, open=10))
    broker.place(intent("sell", 100))
    feed(broker, bar(ts=2, open=12))

    account = broker.account()
    assert account.realized_pnl == 200
    assert account.cash == 10_000 - 1_000 - 1 + 1_200 - 1


# -- refusals at placement -------------------------------------------------------------------


def _trusted(quantity: str) -> OrderIntent:
    good = intent("buy", 1)
    return OrderIntent.trusted(**{**dict(good), "quantity": D(quantity)})


REJECTIONS = [
    # settings, shares held (bought @ 100), orders already working, order, reason
    pytest.param({}, 0, [], _trusted("0"), "quantity must be positive", id="zero-quantity"),
    pytest.param({}, 0, [], _trusted("-5"), "quantity must be positive", id="negative-quantity"),
    pytest.param(
        {},
        0,
        [],
        intent("buy", 1, "limit", limit="10", symbol="MSFT"),
        "unknown symbol MSFT",
        id="unknown-symbol",
    ),
    # 101 x 100 = 10 100 > 10 000
    pytest.param(
        {}, 0, [], intent("buy", 101, "limit", limit="100"), "insufficient buying power", id="cash"
    ),
    # 100 x 100 = 10 000 is affordable, but not with the 1.00 commission on top
    pytest.param(
        {"commission": "ibkr_fixed"},
        0,
        [],
        intent("buy", 100, "limit", limit="100"),
        "insufficient buying power",
        id="cash-with-commission",
    ),
    # 60 x 100 reserved by a working buy leaves 4 000; 41 x 100 = 4 100
    pytest.param(
        {},
        0,
        [intent("buy", 60, "limit", limit="100")],
        intent("buy", 41, "limit", limit="100"),
        "insufficient buying power",
        id="cash-reserved-by-working-buy",
    ),
    # a market buy is priced at the last close (100)
    pytest.param(
        {},
        0,
        [intent("buy", 60, "limit", limit="90")],
        intent("buy", 47),
        "insufficient buying power",
        id="market-buy-at-last-close",
    ),
    pytest.param({}, 0, [], intent("sell", 1), "short sale refused", id="short"),
    pytest.param({}, 100, [], intent("sell", 101), "short sale refused", id="more-than-held"),
    pytest.param(
        {},
        100,
        [intent("sell", 60, "limit", limit="120")],
        intent("sell", 41),
        "short sale refused",
        id="held-but-committed-to-working-sell",
    ),
]


@pytest.mark.parametrize(("settings", "held", "working", "order", "reason"), REJECTIONS)
def test_refused_orders_are_rejected_and_change_nothing(
    settings: dict[str, Any], held: int, working: list[OrderIntent], order: OrderIntent, reason: str
) -> None:
    broker = make_broker(**{"initial_cash": D(10_000), "commission": "none", **settings})
    set_up(broker, held, working)
    before = (broker.account(), broker.positions(), broker.open_orders(), broker.fills())

    update = broker.place(order)

    assert update.status is OrderStatus.REJECTED
    assert update.client_order_id == order.client_order_id
    assert reason in update.reason
    assert (broker.account(), broker.positions(), broker.open_orders(), broker.fills()) == before
    assert broker.order(order.client_order_id) is None
    feed(broker, bar(ts=2, open=100, high=200, low=50))
    assert order.client_order_id not in {f.client_order_id for f in broker.fills()}


@pytest.mark.parametrize(
    ("settings", "held", "working", "order"),
    [
        # exactly the 4 000 left after a 6 000 reservation
        pytest.param(
            {},
            0,
            [intent("buy", 60, "limit", limit="100")],
            intent("buy", 40, "limit", limit="100"),
            id="cash-to-the-cent",
        ),
        pytest.param(
            {},
            100,
            [intent("sell", 60, "limit", limit="120")],
            intent("sell", 40),
            id="rest-of-holding",
        ),
        pytest.param({"allow_short": True}, 0, [], intent("sell", 1_000), id="allow-short"),
        pytest.param(
            {"symbols": ["MSFT"]},
            0,
            [],
            intent("buy", 1, "limit", limit="10", symbol="MSFT"),
            id="symbol-from-settings",
        ),
    ],
)
def test_orders_just_within_the_limits_are_accepted(
    settings: dict[str, Any], held: int, working: list[OrderIntent], order: OrderIntent
) -> None:
    broker = make_broker(**{"initial_cash": D(10_000), "commission": "none", **settings})
    set_up(broker, held, working)

    update = broker.place(order)

    assert (update.status, update.reason) == (OrderStatus.ACCEPTED, "")
    assert order.client_order_id in {r.client_order_id for r in broker.open_orders()}


def test_allowed_short_sale_fills_and_goes_short() -> None:
    broker = make_broker(initial_cash=D(10_000), commission="none", allow_short=True)
    feed(broker, bar(ts=0, open=100))
    broker.place(intent("sell", 30))
    feed(broker, bar(ts=1, open=100))
    [position] = broker.positions()
    assert position.quantity == -30
    assert broker.account().cash == 13_000


@pytest.mark.parametrize("disconnect", [False, True], ids=["never-connected", "disconnected"])
def test_placing_while_not_connected_raises_auth_error(disconnect: bool) -> None:
    broker = PaperBroker(PaperBroker.Settings(symbols=["AAPL"]))
    broker.clock = ManualClock(T0)
    if disconnect:
        broker.connect()
        broker.disconnect()
    order = intent("buy", 1, "limit", limit="10")
    with pytest.raises(BrokerAuthError):
        broker.place(order)
    assert broker.order(order.client_order_id) is None
    assert broker.status().connected is False


def test_cancel_and_modify_while_disconnected_raise_and_keep_the_order() -> None:
    broker = make_broker(commission="none")
    feed(broker, bar(ts=0, open=100))
    order = intent("buy", 1, "limit", limit="10")
    broker.place(order)
    broker.disconnect()
    with pytest.raises(BrokerAuthError):
        broker.cancel(order.client_order_id)
    with pytest.raises(BrokerAuthError):
        broker.modify(order.client_order_id, limit_price=D("11"))
    report = broker.order(order.client_order_id)
    assert report is not None
    assert (report.status, report.limit_price) == (OrderStatus.ACCEPTED, D("10"))


def test_placing_the_same_client_order_id_twice_places_one_order() -> None:
    broker = make_broker(commission="none")
    feed(broker, bar(ts=0, open=100))
    first = broker.place(intent("buy", 10, cid="dup"))
    again = broker.place(intent("buy", 20, cid="dup"))

    assert (again.status, again.reason) == (OrderStatus.ACCEPTED, "already placed")
    assert again.broker_order_id == first.broker_order_id
    assert len(broker.open_orders()) == 1

    feed(broker, bar(ts=1, open=100))
    after_fill = broker.place(intent("buy", 10, cid="dup"))
    feed(broker, bar(ts=2, open=100))

    assert (after_fill.status, after_fill.reason) == (OrderStatus.FILLED, "already placed")
    [fill] = broker.fills()
    assert fill.quantity == 10
    assert broker.account().cash == 100_000 - 1_000


# -- cancel and modify -----------------------------------------------------------------------


@pytest.mark.parametrize("confirmed_by", ["next bar", "poll"])
def test_cancel_is_confirmed_once_later_and_the_order_never_fills(confirmed_by: str) -> None:
    broker = make_broker(initial_cash=D(10_000), commission="none")
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent("buy", 10, "limit", limit="95", tif="gtc"))
    assert broker.account().buying_power == 10_000 - 950

    pending = broker.cancel(placed.client_order_id)

    assert pending.status is OrderStatus.PENDING_CANCEL
    assert broker.open_orders() == []
    assert broker.account().buying_power == 10_000
    if confirmed_by == "poll":
        [confirmed] = broker.poll()
        events = feed(broker, bar(ts=1, open=96, low=90))
    else:
        [confirmed] = feed(broker, bar(ts=1, open=96, low=90))  # the bar would have filled it
        events = list(broker.poll())
    assert (confirmed.client_order_id, confirmed.status) == (
        placed.client_order_id,
        OrderStatus.CANCELED,
    )
    assert events == []
    assert broker.fills() == []


@pytest.mark.parametrize("state", ["unknown", "filled", "canceled", "expired"])
@pytest.mark.parametrize("action", ["cancel", "modify"])
def test_cancel_or_modify_of_an_order_that_is_not_working_is_refused(
    state: str, action: str
) -> None:
    broker = make_broker(commission="none")
    feed(broker, bar(ts=0, open=100))
    cid = "nope"
    if state != "unknown":
        cid = broker.place(intent("buy", 10, "limit", limit="100")).client_order_id
        if state == "filled":
            feed(broker, bar(ts=1, open=99))
        elif state == "canceled":
            broker.cancel(cid)
        else:
            feed(broker, bar(ts=1, open=101), bar(ts=2, open=101))
    before = broker.order(cid)
    # The broker refuses what it does not know; a known order's state breaks an order rule.
    refused: type[Exception] = BrokerRejectedError
    if action == "modify" and state != "unknown":
        refused = InvalidOrderError

    with pytest.raises(refused):
        if action == "cancel":
            broker.cancel(cid)
        else:
            broker.modify(cid, limit_price=D(50))
    assert broker.order(cid) == before


def test_modify_changes_quantity_and_limit_of_a_working_order() -> None:
    broker = make_broker(initial_cash=D(10_000), commission="none")
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent("buy", 10, "limit", limit="95"))

    update = broker.modify(placed.client_order_id, quantity=D(20), limit_price=D(98))

    assert (update.status, update.reason) == (OrderStatus.ACCEPTED, "modified")
    modified = report(broker, placed.client_order_id)
    assert (modified.quantity, modified.limit_price) == (20, 98)
    assert broker.account().buying_power == 10_000 - 20 * 98
    # low 97 reaches 98 but not the old 95
    [fill] = fills_of(feed(broker, bar(ts=1, open=99, high=99, low=97, close=98)))
    assert (fill.quantity, fill.price) == (20, 98)


def test_modify_may_reuse_the_cash_the_order_itself_reserved() -> None:
    broker = make_broker(initial_cash=D(10_000), commission="none")
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent("buy", 50, "limit", limit="100"))
    # 100 x 100 = 10 000: affordable once this order's own 5 000 is not counted twice
    broker.modify(placed.client_order_id, quantity=D(100))
    assert report(broker, placed.client_order_id).quantity == 100


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ({"quantity": D(101)}, BrokerRejectedError, "insufficient buying power"),
        ({"limit_price": D(250)}, BrokerRejectedError, "insufficient buying power"),
        ({"quantity": D(0)}, InvalidOrderError, "quantity must be positive"),
        ({"quantity": D("0.5")}, InvalidOrderError, r"0\.5 is not a whole number of shares"),
        ({"stop_price": D(90)}, InvalidOrderError, "a limit order has no stop price to change"),
        ({"limit_price": D(-1)}, InvalidOrderError, "limit_price must be positive"),
        ({}, InvalidOrderError, "nothing to change"),
    ],
)
def test_invalid_modify_raises_and_leaves_the_order_unchanged(
    change: dict[str, D], error: type[Exception], reason: str
) -> None:
    broker = make_broker(initial_cash=D(10_000), commission="none")
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent("buy", 50, "limit", limit="100"))
    before = broker.order(placed.client_order_id)

    with pytest.raises(error, match=reason):
        broker.modify(placed.client_order_id, **change)

    assert broker.order(placed.client_order_id) == before
    assert broker.account().buying_power == 10_000 - 5_000
    [fill] = fills_of(feed(broker, bar(ts=1, open=101, low=99)))
    assert (fill.quantity, fill.price) == (50, 100)


# -- reads -----------------------------------------------------------------------------------


def test_open_orders_and_order_reports() -> None:
    broker = make_broker(commission="none", symbols=["MSFT"])
    feed(broker, bar(ts=0, open=100))
    limit = broker.place(intent("buy", 10, "limit", limit="95"))
    stop = broker.place(intent("buy", 5, "stop", stop="120", symbol="MSFT"))

    reports = {r.client_order_id: r for r in broker.open_orders()}
    assert set(reports) == {limit.client_order_id, stop.client_order_id}
    r = reports[limit.client_order_id]
    assert (r.broker_order_id, r.symbol, r.side, r.order_type) == (
        limit.broker_order_id,
        "AAPL",
        "buy",
        "limit",
    )
    assert (r.quantity, r.filled_quantity, r.limit_price, r.stop_price, r.status) == (
        10,
        0,
        95,
        None,
        OrderStatus.ACCEPTED,
    )
    assert reports[stop.client_order_id].stop_price == 120
    assert limit.broker_order_id != stop.broker_order_id

    feed(broker, bar(ts=1, open=94))
    done = report(broker, limit.client_order_id)
    assert (done.status, done.filled_quantity) == (OrderStatus.FILLED, 10)
    assert [r.client_order_id for r in broker.open_orders()] == [stop.client_order_id]
    assert broker.order("never-placed") is None


def test_fills_since() -> None:
    broker = make_broker(commission="none")
    feed(broker, bar(ts=0, open=100))
    first = broker.place(intent("buy", 10))
    feed(broker, bar(ts=1, open=101))
    second = broker.place(intent("buy", 5))
    feed(broker, bar(ts=2, open=102))
    day2 = T0 + dt.timedelta(days=2)

    assert [f.client_order_id for f in broker.fills()] == [
        first.client_order_id,
        second.client_order_id,
    ]
    [late] = broker.fills(since=day2)
    assert (late.client_order_id, late.price, late.ts) == (second.client_order_id, 102, day2)
    assert broker.fills(since=day2 + dt.timedelta(seconds=1)) == []


def test_quotes_are_the_last_bar_of_each_symbol() -> None:
    broker = make_broker()
    feed(
        broker,
        bar("AAPL", ts=0, open=100, close=101),
        bar("MSFT", ts=0, open=300, close=299.5, volume=7),
        bar("AAPL", ts=1, open=101, close=102.25, volume=3),
    )
    quotes = {q.symbol: q for q in broker.quotes(["aapl", "MSFT", "NVDA"])}

    assert set(quotes) == {"AAPL", "MSFT"}
    assert (quotes["AAPL"].last, quotes["AAPL"].volume) == (D("102.25"), 3)
    assert quotes["AAPL"].ts == T0 + dt.timedelta(days=1)
    assert (quotes["MSFT"].last, quotes["MSFT"].volume) == (D("299.5"), 7)


def test_history_returns_the_latest_bars_oldest_first() -> None:
    broker = make_broker()
    bars = bars_from_closes([100, 101, 102, 103])
    feed(broker, *bars, bar("MSFT", ts=3, open=5))

    assert broker.history("AAPL", bars=2) == bars[2:]
    assert broker.history("AAPL", bars=0) == []
    assert broker.history("aapl") == bars
    assert broker.history("NVDA") == []


# -- a whole pipeline ------------------------------------------------------------------------


def test_replayed_pipeline_ends_with_positions_equal_to_the_sum_of_its_fills() -> None:
    # Up, down and up again: SMA(2)/SMA(4) crosses up, down, up on each symbol.
    closes = [10, 10, 10, 10, 11, 12, 13, 14, 13, 12, 11, 10, 9, 10, 11, 12, 13]
    aapl = bars_from_closes(closes, "AAPL")
    msft = bars_from_closes([c * 3 for c in closes[2:]], "MSFT")
    bars = sorted(aapl + msft, key=lambda b: (b.ts, b.symbol))

    pipeline, result, _ = replay(
        bars,
        run={"strategies": ["sma_cross"], "risk_filters": []},
        strategies={"sma_cross": {"fast": 2, "slow": 4, "quantity": 10}},
    )
    broker = pipeline.broker
    fills = broker.fills()
    [sink] = pipeline.sinks
    assert isinstance(sink, MemorySink)

    assert len(fills) == result.fills > 0
    net: dict[str, D] = {}
    for f in fills:
        net[f.symbol] = net.get(f.symbol, D(0)) + f.side.sign * f.quantity
    held = {p.symbol: p.quantity for p in broker.positions()}
    assert held == {symbol: q for symbol, q in net.items() if q}
    assert held and any(f.side == "sell" for f in fills)  # bought, sold, and still holds
    spent = sum(f.side.sign * f.notional + f.commission for f in fills)
    assert broker.account().cash == D(100_000) - spent
    # every fill is at the open of its symbol's next bar after the order was decided
    opens = {(b.symbol, b.ts): b.open for b in bars}
    decided = {o.client_order_id: o.intent.created_at for o in sink.orders}
    for f in fills:
        assert f.price == D(str(opens[f.symbol, f.ts]))
        assert f.ts == decided[f.client_order_id] + dt.timedelta(days=1)


# -- IBKR order questions ----------------------------------------------------------------------


def questioning(*questions: str, **settings: Any) -> PaperBroker:
    """A broker asking ``questions``, holding no shares, AAPL last closed at 100."""
    broker = make_broker(
        questions=list(questions), symbols=["MSFT"], allow_short=True, commission="none", **settings
    )
    feed(broker, bar(ts=0, open=100))
    return broker


# The last close is 100; MSFT is tradable but has no market data yet.
QUESTION_CASES = [
    # question, order, whether the question applies
    pytest.param("o163", intent("buy", 1, "limit", limit="103.01"), True, id="o163-above"),
    pytest.param("o163", intent("sell", 1, "limit", limit="96.99"), True, id="o163-below"),
    pytest.param("o163", intent("buy", 1, "limit", limit="103"), False, id="o163-exactly-3%"),
    pytest.param(
        "o163",
        intent("buy", 1, "stop_limit", limit="104", stop="104"),
        True,
        id="o163-stop-limit",
    ),
    pytest.param("o163", intent("buy", 1), False, id="o163-market"),
    pytest.param(
        "o354", intent("buy", 1, "limit", limit="10", symbol="MSFT"), True, id="o354-no-data"
    ),
    pytest.param("o354", intent("buy", 1, "limit", limit="90"), False, id="o354-data"),
    pytest.param("o10151", intent("buy", 1), True, id="o10151-market"),
    pytest.param("o10151", intent("sell", 1), True, id="o10151-market-sell"),
    pytest.param("o10151", intent("buy", 1, "limit", limit="90"), False, id="o10151-limit"),
    pytest.param("o10331", intent("sell", 1, "stop", stop="95"), True, id="o10331-stop"),
    pytest.param(
        "o10331",
        intent("sell", 1, "stop_limit", limit="94", stop="95"),
        True,
        id="o10331-stop-limit",
    ),
    pytest.param("o10331", intent("buy", 1, "limit", limit="90"), False, id="o10331-limit"),
    pytest.param("o10152", intent("buy", 1, "stop", stop="105"), True, id="o10152-stop"),
    pytest.param("o10152", intent("buy", 1), False, id="o10152-market"),
    pytest.param("o403", intent("buy", 1, "limit", limit="100"), True, id="o403-buy-limit-at"),
    pytest.param("o403", intent("buy", 1, "limit", limit="99.99"), False, id="o403-buy-limit"),
    pytest.param("o403", intent("sell", 1, "limit", limit="99"), True, id="o403-sell-limit"),
    pytest.param("o403", intent("sell", 1, "limit", limit="100.01"), False, id="o403-sell-lmt"),
    pytest.param("o403", intent("buy", 1, "stop", stop="100"), True, id="o403-buy-stop-at"),
    pytest.param("o403", intent("buy", 1, "stop", stop="101"), False, id="o403-buy-stop"),
    pytest.param("o403", intent("sell", 1, "stop", stop="101"), True, id="o403-sell-stop"),
    pytest.param("o403", intent("sell", 1, "stop", stop="99"), False, id="o403-sell-stop-below"),
    pytest.param(
        "o403",
        intent("buy", 1, "stop_limit", limit="101", stop="99"),
        True,
        id="o403-stop-limit-triggered-and-marketable",
    ),
    pytest.param(
        "o403",
        intent("buy", 1, "stop_limit", limit="99.5", stop="99"),
        False,
        id="o403-stop-limit-triggered-limit-below",
    ),
    pytest.param("o403", intent("buy", 1), False, id="o403-market"),
    pytest.param(
        "o403", intent("buy", 1, "limit", limit="10", symbol="MSFT"), False, id="o403-no-data"
    ),
]


@pytest.mark.parametrize(("question", "order", "applies"), QUESTION_CASES)
def test_each_question_is_asked_exactly_when_it_applies(
    question: str, order: OrderIntent, applies: bool
) -> None:
    broker = questioning(question)

    if not applies:
        assert broker.place(order).status is OrderStatus.ACCEPTED
        return
    with pytest.raises(BrokerRejectedError) as refused:
        broker.place(order)
    assert refused.value.context["message_ids"] == [question]
    assert broker.order(order.client_order_id) is None
    assert broker.open_orders() == []
    # and confirmed, the same order is placed
    assert questioning(question, confirm=[question]).place(order).status is OrderStatus.ACCEPTED


def test_a_declined_question_is_refused_in_the_ibkr_adapters_words() -> None:
    broker = questioning("o10151")
    order = intent("buy", 10)

    with pytest.raises(BrokerRejectedError) as refused:
        broker.place(order)

    question = (
        'You are submitting a market order "BUY 10 AAPL MKT": it fills at whatever price the '
        "market offers, which may differ from the last price. "
        "Are you sure you want to submit this order?"
    )
    assert str(refused.value) == (
        f'paper: order not sent: IBKR asked "{question}" (o10151), which the reply policy does '
        "not confirm; to accept such questions add the id to `confirm` in "
        "[default.brokers.paper] of settings.toml (or in the table of the environment you "
        "run, e.g. [paper.brokers.…])"
    )
    client = SimpleNamespace(broker="paper")
    adapter = ibkr_orders._declined(client, question, ["o10151"])  # type: ignore[arg-type]
    assert str(refused.value) == str(adapter)
    assert refused.value.context == {
        "broker": "paper",
        "client_order_id": order.client_order_id,
        "question": question,
        "message_ids": ["o10151"],
    }


def test_questions_are_asked_in_turn_and_the_first_unconfirmed_one_refuses() -> None:
    # A buy stop-limit, stop 99 (through the last close of 100), limit 104 (4% away):
    # o163, o403, o10331 and o10152 all apply, asked in that order.
    order = intent("buy", 1, "stop_limit", limit="104", stop="99")
    everything = ["o163", "o354", "o403", "o10151", "o10331", "o10152"]

    def refused_with(confirm: list[str]) -> list[str]:
        with pytest.raises(BrokerRejectedError) as refused:
            questioning(*everything, confirm=confirm).place(order)
        ids: list[str] = refused.value.context["message_ids"]
        return ids

    assert refused_with([]) == ["o163"]
    assert refused_with(["o10331", "o10152"]) == ["o163"]
    assert refused_with(["o163", "o10331", "o10152"]) == ["o403"]
    assert refused_with(["o163", "o403", "o10331"]) == ["o10152"]
    confirmed = questioning(*everything, confirm=["o163", "o403", "o10331", "o10152"])
    assert confirmed.place(order).status is OrderStatus.ACCEPTED
    assert questioning(*everything, confirm_all=True).place(order).status is OrderStatus.ACCEPTED


def test_without_questions_in_the_settings_nothing_is_asked() -> None:
    broker = questioning(confirm=[])
    for order in (intent("buy", 1), intent("buy", 1, "stop_limit", limit="104", stop="99")):
        assert broker.place(order).status is OrderStatus.ACCEPTED


def test_an_order_no_broker_would_take_is_rejected_before_any_question() -> None:
    broker = questioning("o354", "o10151")
    update = broker.place(intent("buy", 1, symbol="NVDA"))
    assert (update.status, update.reason) == (
        OrderStatus.REJECTED,
        "unknown symbol NVDA: no market data for it",
    )


def test_a_modification_meets_the_questions_too() -> None:
    broker = questioning("o163")
    placed = broker.place(intent("buy", 1, "limit", limit="99"))

    with pytest.raises(BrokerRejectedError, match=r"\(o163\)"):
        broker.modify(placed.client_order_id, limit_price=D("90"))

    assert report(broker, placed.client_order_id).limit_price == D("99")


def test_in_a_pipeline_a_declined_question_rejects_the_order_with_the_question() -> None:
    closes = [10, 10, 10, 10, 11, 12, 13, 14, 13, 12]
    tables: dict[str, Any] = {
        "run": {"strategies": ["sma_cross"], "risk_filters": []},
        "strategies": {"sma_cross": {"fast": 2, "slow": 4, "quantity": 10}},
    }
    asked = {"questions": ["o10151"]}

    _, refused, _ = replay(bars_from_closes(closes), brokers={"paper": asked}, **tables)
    sink = MemorySink.last
    assert sink is not None
    rejected = [e for e in sink.events if e.status is OrderStatus.REJECTED]
    assert refused.orders == len(rejected) > 0
    assert all("(o10151)" in e.reason for e in rejected)
    assert refused.fills == 0

    confirmed = {**asked, "confirm": ["o10151"]}
    _, placed, _ = replay(bars_from_closes(closes), brokers={"paper": confirmed}, **tables)
    assert placed.fills > 0


def test_a_question_in_ask_waits_for_a_person_and_is_confirmed_once_answered() -> None:
    broker = questioning("o10151", ask=["o10151"])
    order = intent("buy", 10)

    with pytest.raises(BrokerQuestionError, match="waits for a person") as asked:
        broker.place(order)
    assert asked.value.context["message_ids"] == ["o10151"]
    assert broker.open_orders() == []
    # Sent again with the person's answer, the same question is confirmed.
    answered = order.model_copy(update={"answered": ("o10151",)})
    assert broker.place(answered).status is OrderStatus.ACCEPTED


def test_a_changed_order_meets_ask_as_a_refusal() -> None:
    # A change to a working order is not the approval queue's to send again.
    broker = questioning("o163", ask=["o163"])
    placed = broker.place(intent("buy", 1, "limit", limit="99"))
    with pytest.raises(BrokerRejectedError) as refused:
        broker.modify(placed.client_order_id, limit_price=D("90"))
    assert not isinstance(refused.value, BrokerQuestionError)
    assert report(broker, placed.client_order_id).limit_price == D("99")


def test_in_a_replay_a_question_in_ask_stays_refused_and_nothing_waits() -> None:
    closes = [10, 10, 10, 10, 11, 12, 13, 14, 13, 12]
    tables: dict[str, Any] = {
        "run": {"strategies": ["sma_cross"], "risk_filters": []},
        "strategies": {"sma_cross": {"fast": 2, "slow": 4, "quantity": 10}},
        "approval": {"all": True},
    }
    asked = {"questions": ["o10151"], "ask": ["o10151"]}
    _, result, _ = replay(bars_from_closes(closes), brokers={"paper": asked}, **tables)
    sink = MemorySink.last
    assert sink is not None
    rejected = [e for e in sink.events if e.status is OrderStatus.REJECTED]
    # [approval] all holds nothing back in a replay, and no question waits for anyone.
    assert result.orders == len(rejected) > 0 and sink.approvals == []
    assert all("(o10151)" in e.reason for e in rejected)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"questions": ["o451"]}, "the simulator can ask o354, o163"),
        ({"ask": ["163"]}, "IBKR message ids look like 'o163'"),
        ({"confirm": ["163"]}, "IBKR message ids look like 'o163'"),
    ],
)
def test_question_settings_are_checked(settings: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        PaperBroker.Settings(**settings)


# -- what-if preview -----------------------------------------------------------------------------


def holding_20_at_100(**settings: Any) -> PaperBroker:
    """10 000 cash, then 20 bought at 100 (commission 1.00 by default); the last close is 102."""
    broker = make_broker(initial_cash=D(10_000), **settings)
    feed(broker, bar(ts=0, open=100))
    broker.place(intent("buy", 20, "limit", limit="100"))
    feed(broker, bar(ts=1, open=100, close=102))
    return broker


def test_preview_of_a_limit_buy() -> None:
    broker = holding_20_at_100()

    preview = broker.preview(intent("buy", 30, "limit", limit="101"))

    assert preview == {
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "30",
        "order_type": "limit",
        "price": "101",
        "notional": "3030",  # 30 x 101
        "commission": "1.00",  # 30 x 0.005 = 0.15, raised to the 1.00 minimum
        "cash": {"before": "7999.00", "after": "4968.00"},  # 7999 - 3030 - 1
        "position": {"before": "20", "after": "50"},
        "questions": [],
        "error": None,
    }


def test_preview_of_a_market_sell_uses_the_last_close_and_slippage_as_the_fill_will() -> None:
    broker = holding_20_at_100(slippage_bps=D(10), commission_minimum=D("0.35"))
    order = intent("sell", 20)

    preview = broker.preview(order)

    # 102 worsened by 10 bps: 101.898; 20 x 101.898 = 2037.96; 20 x 0.005 = 0.10 < 0.35
    assert (preview["price"], preview["notional"], preview["commission"]) == (
        "101.8980",
        "2037.9600",
        "0.35",
    )
    # 10 000 - 2 000 - 0.35, then + 2037.96 - 0.35
    assert preview["cash"] == {"before": "7999.65", "after": "10037.26"}
    assert preview["position"] == {"before": "20", "after": "0"}
    # the fill at the next open (= the last close) is what the preview said
    broker.place(order)
    [fill] = fills_of(feed(broker, bar(ts=2, open=102)))
    assert (str(fill.price), str(fill.commission)) == ("101.8980", "0.35")
    assert broker.account().cash == D(preview["cash"]["after"])
    assert broker.positions() == []


@pytest.mark.parametrize(
    ("settings", "order"),
    [
        pytest.param({}, intent("buy", 100, "limit", limit="100"), id="insufficient-buying-power"),
        pytest.param({}, intent("buy", 1, symbol="NVDA"), id="unknown-symbol"),
        pytest.param({}, intent("sell", 21), id="short-sale"),
    ],
)
def test_preview_error_is_the_reason_placing_would_give(
    settings: dict[str, Any], order: OrderIntent
) -> None:
    broker = holding_20_at_100(**settings)

    preview = broker.preview(order)
    update = broker.place(order)

    assert update.status is OrderStatus.REJECTED
    assert preview["error"] == update.reason != ""


def test_preview_names_the_questions_and_a_declined_one_as_the_error() -> None:
    broker = holding_20_at_100(questions=["o163", "o10151"], confirm=["o163"])

    declined = broker.preview(intent("buy", 1))
    confirmed = broker.preview(intent("buy", 1, "limit", limit="110"))

    assert declined["questions"] == ["o10151"]
    with pytest.raises(BrokerRejectedError) as refused:
        broker.place(intent("buy", 1))
    assert declined["error"] == str(refused.value)
    assert (confirmed["questions"], confirmed["error"]) == (["o163"], None)


def test_preview_of_an_order_already_placed_says_so() -> None:
    broker = holding_20_at_100()
    order = intent("buy", 1, "limit", limit="90")
    broker.place(order)
    assert broker.preview(order)["error"] == f"order {order.client_order_id} is already placed"


def test_preview_changes_nothing() -> None:
    broker = holding_20_at_100(questions=["o10151"])
    broker.place(intent("buy", 5, "limit", limit="90", tif="gtc"))
    before = (broker.account(), broker.positions(), broker.open_orders(), broker.fills())

    for order in (
        intent("buy", 30, "limit", limit="101"),
        intent("sell", 20),
        intent("buy", 1_000),
        intent("buy", 1, symbol="NVDA"),
    ):
        broker.preview(order)
        assert broker.order(order.client_order_id) is None

    assert (broker.account(), broker.positions(), broker.open_orders(), broker.fills()) == before
    assert broker.poll() == ()
    assert broker.place(intent("buy", 1, "limit", limit="90")).broker_order_id == "P3"


def test_preview_needs_a_connection() -> None:
    broker = holding_20_at_100()
    broker.disconnect()
    with pytest.raises(BrokerAuthError):
        broker.preview(intent("buy", 1))


def quote(minutes: int, *, bid: str | None, ask: str | None, last: str | None = None) -> Quote:
    return Quote(
        symbol="AAPL",
        ts=T0 + dt.timedelta(days=1, minutes=minutes),
        bid=None if bid is None else D(bid),
        ask=None if ask is None else D(ask),
        last=None if last is None else D(last),
    )


def test_live_quotes_fill_a_buy_at_the_ask_a_sell_at_the_bid_and_limits_when_reached() -> None:
    broker = make_broker()
    feed(broker, bar(ts=0, open=100))
    broker.clock = ManualClock(T0 + dt.timedelta(days=1))
    buy, sell = intent("buy", 10), intent("sell", 5)
    limit = intent("buy", 3, "limit", limit="99.50")
    for order in (buy, limit):
        broker.place(order)
    [filled] = fills_of(list(broker.on_quote(quote(1, bid="100.00", ask="100.10"))))
    assert (filled.client_order_id, filled.price) == (buy.client_order_id, D("100.10"))
    broker.place(sell)
    [sold] = fills_of(list(broker.on_quote(quote(2, bid="99.90", ask="100.00"))))
    assert (sold.client_order_id, sold.price) == (sell.client_order_id, D("99.90"))
    # The limit buy waits for an ask at or under 99.50; a quote without an ask goes by its last.
    assert fills_of(list(broker.on_quote(quote(3, bid="99.60", ask="99.70")))) == []
    [at_limit] = fills_of(list(broker.on_quote(quote(4, bid=None, ask=None, last="99.40"))))
    assert (at_limit.client_order_id, at_limit.price) == (limit.client_order_id, D("99.40"))


def test_quotes_never_fill_an_order_placed_after_them_or_when_turned_off() -> None:
    broker = make_broker()
    feed(broker, bar(ts=0, open=100))
    broker.clock = ManualClock(T0 + dt.timedelta(days=1, minutes=5))
    order = intent("buy", 10)
    broker.place(order)
    assert list(broker.on_quote(quote(4, bid="100", ask="100.1"))) == []  # older than the order
    quiet = make_broker(fill_on_quotes=False)
    feed(quiet, bar(ts=0, open=100))
    quiet.clock = ManualClock(T0 + dt.timedelta(days=1))
    quiet.place(intent("buy", 10))
    assert list(quiet.on_quote(quote(1, bid="100", ask="100.1"))) == []
