"""The IBKR building blocks on their own: instruments, tickets, statuses, market data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest
import respx
from ibkr_fakes import BASE, FakeTime, make_client
from tradepipe.brokers.ibkr.contracts import Contracts, month_code
from tradepipe.brokers.ibkr.market import MarketData, history_period, parse_value
from tradepipe.brokers.ibkr.orders import (
    STATUS_MAP,
    ReplyPolicy,
    combo_conidex,
    decimal,
    execution,
    report,
)
from tradepipe.errors import BrokerRejectedError
from tradepipe.instruments import Combo, Leg, Option, Stock
from tradepipe.orders import OrderStatus

EXP = dt.date(2026, 12, 18)


def test_occ_tickers() -> None:
    assert Option(underlying="AAPL", expiry=EXP, strike=200, right="C").ticker == (
        "AAPL  261218C00200000"
    )
    assert Option(underlying="BRKB", expiry=EXP, strike="412.5", right="P").ticker == (
        "BRKB  261218P00412500"
    )
    with pytest.raises(ValueError, match="OCC"):
        _ = Option(underlying="X", expiry=EXP, strike="0.0001", right="C").ticker


def test_combo_ticker_and_multiplier() -> None:
    call = Option(underlying="SPY", expiry=EXP, strike=600, right="C")
    call2 = Option(underlying="SPY", expiry=EXP, strike=610, right="C")
    vertical = Combo(legs=(Leg(instrument=call, ratio=1), Leg(instrument=call2, ratio=-1)))
    other = Combo(legs=(Leg(instrument=call, ratio=-1), Leg(instrument=call2, ratio=1)))
    assert vertical.multiplier == 100
    assert vertical.ticker.startswith("SPY X") and vertical.ticker != other.ticker
    covered = Combo(
        legs=(Leg(instrument=Stock(symbol="SPY"), ratio=100), Leg(instrument=call, ratio=-1))
    )
    assert covered.multiplier == 100


def test_combo_rules_are_checked_before_sending() -> None:
    assert combo_conidex([(11, 1), (22, -1)]) == "28812380;;;11/1,22/-1"
    with pytest.raises(BrokerRejectedError, match="2 to 4 legs"):
        combo_conidex([(11, 1)])
    with pytest.raises(BrokerRejectedError, match="2 to 4 legs"):
        combo_conidex([(i, 1) for i in range(5)])
    with pytest.raises(BrokerRejectedError, match="same contract twice"):
        combo_conidex([(11, 1), (11, -1)])
    with pytest.raises(BrokerRejectedError, match="share the factor 2"):
        combo_conidex([(11, 2), (22, -2)])


def test_every_ibkr_status_maps() -> None:
    for name in (
        "Inactive",
        "PendingSubmit",
        "PreSubmitted",
        "Submitted",
        "Filled",
        "Cancelled",
        "PendingCancel",
        "WarnState",
    ):
        assert name in STATUS_MAP
    item = {
        "orderId": 5,
        "order_ref": "tp-1",
        "ticker": "AAPL",
        "side": "SELL",
        "status": "Submitted",
        "filledQuantity": 3.0,
        "remainingQuantity": 7.0,
        "orderType": "Stop Limit",
        "price": "99.5",
        "auxPrice": "100",
    }
    r = report(item)
    assert r is not None
    assert (r.status, r.quantity, r.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 10, 3)
    assert (r.order_type, r.limit_price, r.stop_price) == ("stop_limit", Decimal("99.5"), 100)
    assert report({**item, "status": "SomethingNew"}) is None


def test_numbers_from_ibkr_strings() -> None:
    assert decimal("1,300") == 1300
    assert decimal("192.26") == Decimal("192.26")
    assert decimal(10.0) == Decimal(10) and str(decimal(10.0)) == "10"
    assert decimal("nan") is None and decimal("") is None and decimal("x", Decimal(0)) == 0
    assert parse_value("C189.50") == (Decimal("189.50"), "C")
    assert parse_value("H12") == (Decimal(12), "H")
    assert parse_value("1.2M") == (Decimal("1200000.0"), "")
    assert parse_value("1,300") == (Decimal(1300), "")
    assert parse_value(None) == (None, "")


def test_execution_needs_an_id_a_size_and_a_time() -> None:
    base = {
        "execution_id": "e",
        "size": 1,
        "price": "10",
        "side": "S",
        "trade_time": "20231211-18:00:49",
    }
    fill = execution(base)
    assert fill is not None and fill.ts == dt.datetime(2023, 12, 11, 18, 0, 49, tzinfo=dt.UTC)
    assert fill.side == "sell"
    for missing in ("execution_id", "size", "trade_time"):
        assert execution({k: v for k, v in base.items() if k != missing}) is None


def test_history_periods_stay_inside_ibkrs_limits() -> None:
    assert history_period(100, "1d") == "145d"
    assert history_period(780, "5min") == "10d"
    assert history_period(1000, "1w") == "792w"
    assert history_period(5000, "1d").endswith("y")


def test_reply_policy() -> None:
    assert ReplyPolicy(frozenset({"o163"})).allows(["o163"])
    assert not ReplyPolicy(frozenset({"o163"})).allows(["o163", "o354"])
    assert not ReplyPolicy(frozenset()).allows([])
    assert ReplyPolicy(confirm_all=True).allows(["anything"])


def test_reply_policy_leaves_the_questions_in_ask_to_a_person() -> None:
    policy = ReplyPolicy(frozenset({"o354"}), ask=frozenset({"o163"}))
    assert policy.answer(["o354"]) == "confirm"
    assert policy.answer(["o163"]) == "ask"
    assert policy.answer(["o163", "o354"]) == "ask"  # every id is either confirmed or asked
    assert policy.answer(["o163", "o403"]) == "refuse"  # o403 is neither
    assert policy.answer([]) == "refuse"  # a question without an id names no rule
    assert not policy.allows(["o163"])
    # What a person accepted for one order is confirmed for that order only.
    answered = policy.for_order(("o163",))
    assert answered.answer(["o163"]) == "confirm" and policy.answer(["o163"]) == "ask"
    # "*": every question not confirmed waits; a change to a working order never does.
    everything = ReplyPolicy(frozenset({"o354"}), ask=frozenset({"*"}))
    assert everything.answer(["o999"]) == "ask" and everything.answer(["o354"]) == "confirm"
    assert everything.without_ask().answer(["o999"]) == "refuse"


@respx.mock
def test_snapshot_retries_until_prices_arrive_and_gives_up_after_a_bound() -> None:
    t = FakeTime()
    client = make_client(t)
    contracts = Contracts(client)
    contracts.remember("AAPL", 265598)
    route = respx.get(f"{BASE}/iserver/marketdata/snapshot").mock(
        side_effect=[
            httpx.Response(200, json=[{"conid": 265598, "conidEx": "265598"}]),
            httpx.Response(
                200,
                json=[
                    {
                        "conid": 265598,
                        "_updated": 1763650800000,
                        "31": "C101.5",
                        "84": "101.4",
                        "86": "101.6",
                        "88": "1,300",
                        "7762": "1200000",
                    }
                ],
            ),
        ]
    )
    market = MarketData(client, contracts, attempts=3, pause=0.5, sleep=t.sleep)
    [quote] = market.quotes(["AAPL"])
    assert (quote.last, quote.bid, quote.ask, quote.bid_size) == (
        Decimal("101.5"),
        Decimal("101.4"),
        Decimal("101.6"),
        Decimal(1300),
    )
    assert route.call_count == 2
    route.side_effect = None
    route.mock(return_value=httpx.Response(200, json=[{"conid": 265598}]))
    assert market.quotes(["AAPL"]) == []  # never warmed up: nothing, not zeros
    assert route.call_count == 5


@respx.mock
def test_option_lookup_walks_the_chain_and_picks_the_exact_expiry() -> None:
    client = make_client()
    respx.get(f"{BASE}/iserver/secdef/search").respond(
        200,
        json=[
            {
                "conid": "265598",
                "symbol": "AAPL",
                "sections": [{"secType": "OPT", "months": "DEC26;JAN27"}],
            }
        ],
    )
    info = respx.get(f"{BASE}/iserver/secdef/info").respond(
        200,
        json=[
            {"conid": 1, "maturityDate": "20261211", "right": "C", "multiplier": "100"},
            {"conid": 2, "maturityDate": "20261218", "right": "C", "multiplier": "100"},
        ],
    )
    strikes = respx.get(f"{BASE}/iserver/secdef/strikes").respond(
        200, json={"call": [195.0, 200.0], "put": [195.0]}
    )
    contracts = Contracts(client)
    assert contracts.option_months("AAPL") == ["DEC26", "JAN27"]
    assert contracts.strikes("AAPL", "DEC26")["call"] == [Decimal("195.0"), Decimal("200.0")]
    assert strikes.calls[0].request.url.params["sectype"] == "OPT"
    found = contracts.option("AAPL", EXP, Decimal(200), "C")
    assert found.conid == 2  # the 18th, not the weekly on the 11th
    assert info.calls[0].request.url.params["month"] == month_code(EXP) == "DEC26"
    contracts.option("AAPL", EXP, Decimal(200), "C")
    assert info.call_count == 1  # cached
    with pytest.raises(BrokerRejectedError, match="no AAPL P option"):
        contracts.option("AAPL", EXP, Decimal(200), "P")


@respx.mock
def test_stock_lookup_refuses_a_symbol_without_a_us_listing() -> None:
    respx.get(f"{BASE}/trsrv/stocks").respond(
        200, json={"XYZ": [{"assetClass": "STK", "contracts": [{"conid": 9, "isUS": False}]}]}
    )
    with pytest.raises(BrokerRejectedError, match="no US stock listing"):
        Contracts(make_client()).stock("XYZ")
