"""The Client Portal adapter against respx routes: request shapes and every branch."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from ibkr_fakes import BASE, FakeTime
from tradepipe.adapter import OrderUpdate
from tradepipe.brokers.ibkr.client_portal import ClientPortalBroker
from tradepipe.decisions import OrderType, TimeInForce
from tradepipe.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerQuestionError,
    BrokerRejectedError,
    ConfigError,
    InvalidOrderError,
)
from tradepipe.instruments import Option
from tradepipe.order_rules import OrderRules
from tradepipe.orders import Fill, OrderIntent, OrderStatus, Side

ACCT = "DU1234567"
HEALTHY = {"authenticated": True, "connected": True, "competing": False}
NOW = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
ORDERS = f"/iserver/account/{ACCT}/orders"


def intent(**kw: Any) -> OrderIntent:
    values: dict[str, Any] = {
        "client_order_id": "tp-0000000000000000000a1",
        "decision_id": "d1",
        "source": "test",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": Decimal(10),
        "created_at": NOW,
    }
    values.update(kw)
    return OrderIntent(**values)


class _Clock:
    def now(self) -> dt.datetime:
        return NOW


def make_broker(**settings: Any) -> tuple[ClientPortalBroker, FakeTime]:
    t = FakeTime()
    broker = ClientPortalBroker(
        ClientPortalBroker.Settings(base_url=BASE, keepalive_seconds=0, **settings)
    )
    broker.monotonic = t.monotonic
    broker.sleep = t.sleep
    broker.clock = _Clock()
    broker.use_http(httpx.Client())
    return broker, t


@pytest.fixture
def gw() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as r:
        r.post("/iserver/auth/status", name="status").respond(200, json=HEALTHY)
        r.get("/iserver/accounts", name="accounts").respond(
            200, json={"accounts": [ACCT], "selectedAccount": ACCT, "isPaper": True}
        )
        r.get("/portfolio/accounts", name="portfolio").respond(200, json=[{"id": ACCT}])
        r.get("/sso/validate", name="validate").respond(200, json={"RESULT": True, "LOGIN_TYPE": 2})
        r.get("/trsrv/stocks", name="stocks").respond(
            200,
            json={
                "AAPL": [
                    {
                        "name": "APPLE INC",
                        "assetClass": "STK",
                        "contracts": [
                            {"conid": 38708077, "exchange": "MEXI", "isUS": False},
                            {"conid": 265598, "exchange": "NASDAQ", "isUS": True},
                        ],
                    }
                ]
            },
        )
        r.post(ORDERS, name="place").respond(
            200, json=[{"order_id": "1370093239", "order_status": "PreSubmitted"}]
        )
        r.get("/iserver/account/orders", name="live").respond(200, json={"orders": []})
        r.get("/iserver/account/trades", name="trades").respond(200, json=[])
        yield r


def sent(route: respx.Route, i: int = -1) -> Any:
    return json.loads(route.calls[i].request.content)


def test_connect_reports_a_paper_account(gw: respx.MockRouter) -> None:
    broker, _ = make_broker()
    status = broker.connect()
    assert (status.connected, status.authenticated, status.is_paper) == (True, True, True)
    assert status.account_id == ACCT
    broker.disconnect()


def test_a_market_order_ticket(gw: respx.MockRouter) -> None:
    broker, _ = make_broker()
    broker.connect()
    update = broker.place(intent())
    assert update.status is OrderStatus.ACCEPTED
    assert update.broker_order_id == "1370093239"
    assert sent(gw["place"]) == {
        "orders": [
            {
                "acctId": ACCT,
                "conid": 265598,  # the US listing, not MEXI
                "cOID": "tp-0000000000000000000a1",
                "orderType": "MKT",
                "side": "BUY",
                "tif": "DAY",
                "quantity": 10,  # a number, integral
                "outsideRTH": False,
                "ticker": "AAPL",
            }
        ]
    }


@pytest.mark.parametrize(
    ("kw", "prices"),
    [
        ({"order_type": OrderType.LIMIT, "limit_price": Decimal("101.5")}, {"price": 101.5}),
        ({"order_type": OrderType.STOP, "stop_price": Decimal("99")}, {"price": 99}),
        (
            {
                "order_type": OrderType.STOP_LIMIT,
                "limit_price": Decimal("98.5"),
                "stop_price": Decimal("99"),
            },
            {"price": 98.5, "auxPrice": 99},
        ),
    ],
)
def test_prices_per_order_type(gw: respx.MockRouter, kw: dict[str, Any], prices: dict) -> None:
    broker, _ = make_broker()
    broker.place(intent(tif=TimeInForce.GTC, side=Side.SELL, **kw))
    order = sent(gw["place"])["orders"][0]
    assert {k: order[k] for k in prices} == prices
    assert "auxPrice" not in order or "auxPrice" in prices
    assert (order["tif"], order["side"]) == ("GTC", "SELL")


def test_bracket_children_carry_the_parent_id_and_no_coid(gw: respx.MockRouter) -> None:
    gw["place"].respond(200, json=[{"order_id": "1"}, {"order_id": "2"}, {"order_id": "3"}])
    broker, _ = make_broker()
    update = broker.place(intent(take_profit=Decimal("120"), stop_loss=Decimal("90")))
    parent, tp, sl = sent(gw["place"])["orders"]
    assert parent["cOID"] == "tp-0000000000000000000a1"
    for child in (tp, sl):
        assert "cOID" not in child
        assert child["parentId"] == parent["cOID"]
        assert child["side"] == "SELL"
        assert child["quantity"] == 10
    assert (tp["orderType"], tp["price"]) == ("LMT", 120)
    assert (sl["orderType"], sl["price"]) == ("STP", 90)
    cid = update.client_order_id
    assert update.exits == {f"{cid}-tp": "2", f"{cid}-sl": "3"}
    assert update.reason.endswith(f"bracket exits {cid}-tp (2), {cid}-sl (3)")


def _question(qid: str, ids: list[str], text: str = "Are you sure?") -> httpx.Response:
    return httpx.Response(
        200, json=[{"id": qid, "message": [text], "isSuppressed": False, "messageIds": ids}]
    )


def test_allowed_questions_are_confirmed_in_a_loop(gw: respx.MockRouter) -> None:
    gw["place"].mock(return_value=_question("q1", ["o163"]))
    reply1 = gw.post("/iserver/reply/q1").mock(return_value=_question("q2", ["o354"]))
    reply2 = gw.post("/iserver/reply/q2").respond(200, json=[{"order_id": "77"}])
    broker, _ = make_broker(confirm=["o163", "o354"])
    update = broker.place(intent())
    assert update.broker_order_id == "77"
    assert sent(reply1) == sent(reply2) == {"confirmed": True}


def test_an_unknown_question_refuses_the_order_with_its_text(gw: respx.MockRouter) -> None:
    gw["place"].mock(return_value=_question("q1", ["o354"], "No market data. Submit anyway?"))
    reply = gw.post("/iserver/reply/q1").respond(200, json={"error": "discarded"})
    broker, _ = make_broker(confirm=["o163"])
    with pytest.raises(
        BrokerRejectedError, match='asked "No market data. Submit anyway\\?" \\(o354\\)'
    ) as err:
        broker.place(intent())
    assert err.value.context["question"] == "No market data. Submit anyway?"
    assert sent(reply) == {"confirmed": False}


def test_a_question_in_ask_is_declined_at_once_and_left_to_a_person(
    gw: respx.MockRouter,
) -> None:
    gw["place"].mock(return_value=_question("q1", ["o163"], "Price exceeds 3%. Submit?"))
    reply = gw.post("/iserver/reply/q1").respond(200, json={"error": "discarded"})
    broker, _ = make_broker(confirm=["o354"], ask=["o163"])
    with pytest.raises(BrokerQuestionError, match="waits for a person") as err:
        broker.place(intent())
    assert err.value.context["message_ids"] == ["o163"]
    assert err.value.context["question"] == "Price exceeds 3%. Submit?"
    # IBKR voids the reply id at the next request: it is answered no at once.
    assert sent(reply) == {"confirmed": False}


def test_an_order_sent_again_after_a_person_answered_confirms_that_question(
    gw: respx.MockRouter,
) -> None:
    gw["place"].mock(return_value=_question("q1", ["o163"]))
    reply = gw.post("/iserver/reply/q1").respond(200, json=[{"order_id": "78"}])
    broker, _ = make_broker(ask=["o163"])
    update = broker.place(intent().model_copy(update={"answered": ("o163",)}))
    assert update.broker_order_id == "78"
    assert sent(reply) == {"confirmed": True}


def test_ask_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="IBKR message ids look like"):
        ClientPortalBroker.Settings(ask=["163"])
    assert ClientPortalBroker.Settings(ask=["*"]).ask == ["*"]


def test_paper_accounts_may_confirm_everything(gw: respx.MockRouter) -> None:
    gw["place"].mock(return_value=_question("q1", ["o999"]))
    gw.post("/iserver/reply/q1").respond(200, json=[{"order_id": "5"}])
    broker, _ = make_broker(confirm_all_on_paper=True)
    assert broker.place(intent()).status is OrderStatus.ACCEPTED


def test_confirm_all_on_paper_does_not_apply_to_live(gw: respx.MockRouter) -> None:
    gw["accounts"].respond(200, json={"accounts": ["U1234567"], "isPaper": False})
    gw.post("/iserver/account/U1234567/orders").mock(return_value=_question("q1", ["o999"]))
    gw.post("/iserver/reply/q1").respond(200, json={})
    broker, _ = make_broker(confirm_all_on_paper=True)
    with pytest.raises(BrokerRejectedError, match="o999"):
        broker.place(intent())


def test_advanced_prompts_are_refused(gw: respx.MockRouter) -> None:
    gw["place"].respond(
        200,
        json={
            "orderId": 1,
            "reqId": "2",
            "text": "Use the Price Management Algo?",
            "options": ["Use on this order"],
            "messageId": "p12",
            "prompt": True,
        },
    )
    broker, _ = make_broker(confirm=["o163"])
    with pytest.raises(BrokerRejectedError, match="Price Management Algo"):
        broker.place(intent())


def test_ibkr_rejection(gw: respx.MockRouter) -> None:
    gw["place"].respond(200, json={"error": "We cannot accept an order at the limit price"})
    broker, _ = make_broker()
    with pytest.raises(BrokerRejectedError, match="IBKR refused the order: We cannot accept"):
        broker.place(intent())


def test_duplicate_coid_is_read_as_already_placed(gw: respx.MockRouter) -> None:
    gw["place"].respond(
        200,
        json={
            "error": "Order couldn't be submitted: Local order ID=tp-0000000000000000000a1 "
            "is already registered."
        },
    )
    gw["live"].respond(
        200,
        json={"orders": [_live("tp-0000000000000000000a1", 4242, "Submitted")]},
    )
    broker, _ = make_broker()
    update = broker.place(intent())
    assert (update.status, update.broker_order_id) == (OrderStatus.ACCEPTED, "4242")
    assert "already placed" in update.reason
    assert gw["place"].call_count == 1


def _live(cid: str, oid: int, status: str, filled: float = 0.0, total: float = 10.0) -> dict:
    return {
        "acct": ACCT,
        "conid": 265598,
        "orderId": oid,
        "order_ref": cid,
        "ticker": "AAPL",
        "side": "BUY",
        "status": status,
        "filledQuantity": filled,
        "remainingQuantity": total - filled,
        "totalSize": total,
        "orderType": "Limit",
        "price": "101.50",
        "timeInForce": "DAY",
    }


@pytest.mark.parametrize("error", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")])
def test_an_ambiguous_send_is_unknown_and_never_resent(
    gw: respx.MockRouter, error: Exception
) -> None:
    gw["place"].mock(side_effect=error)
    broker, _ = make_broker()
    update = broker.place(intent())
    assert update.status is OrderStatus.UNKNOWN
    assert gw["place"].call_count == 1
    # Settling asks IBKR: the order is there.
    gw["live"].respond(200, json={"orders": [_live("tp-0000000000000000000a1", 9, "PreSubmitted")]})
    found = broker.order("tp-0000000000000000000a1")
    assert found is not None and found.status is OrderStatus.ACCEPTED
    assert found.broker_order_id == "9"
    assert gw["place"].call_count == 1


def test_5xx_after_sending_is_unknown(gw: respx.MockRouter) -> None:
    gw["place"].respond(500, json={"error": "internal"})
    broker, _ = make_broker()
    assert broker.place(intent()).status is OrderStatus.UNKNOWN


def test_a_refused_connection_is_not_sent(gw: respx.MockRouter) -> None:
    broker, _ = make_broker()
    broker.connect()
    gw["place"].mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(BrokerRejectedError, match="not sent"):
        broker.place(intent())


def test_order_lookup_reads_twice_then_executions_then_says_none(gw: respx.MockRouter) -> None:
    broker, t = make_broker()
    assert broker.order("tp-missing") is None
    assert gw["live"].call_count == 2
    assert t.now - 1000 >= 5  # IBKR's pace between the two reads
    gw["trades"].respond(
        200,
        json=[
            {
                "execution_id": "e1",
                "order_ref": "tp-x",
                "symbol": "AAPL",
                "side": "B",
                "size": 10.0,
                "price": "100.5",
                "trade_time_r": 1763650800000,
            }
        ],
    )
    found = broker.order("tp-x")
    assert found is not None and found.status is OrderStatus.FILLED


def test_a_failed_lookup_is_not_none(gw: respx.MockRouter) -> None:
    # A timeout must never read as "no such order".
    broker, _ = make_broker()
    broker.connect()
    gw["live"].mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(Exception) as err:
        broker.order("tp-x")
    assert "timed out" in str(err.value)
    gw["live"].respond(200, json={"snapshot": False})
    with pytest.raises(Exception, match="not read as empty"):
        broker.order("tp-x")


def test_orders_stop_while_not_authenticated(gw: respx.MockRouter) -> None:
    gw["status"].respond(200, json={"authenticated": False, "connected": False})
    broker, _ = make_broker()
    with pytest.raises(BrokerAuthError, match="not sending orders"):
        broker.place(intent())
    assert not gw["place"].called


def test_cancel_is_pending_until_ibkr_confirms(gw: respx.MockRouter) -> None:
    delete = gw.delete(f"/iserver/account/{ACCT}/order/1370093239").respond(
        200, json={"msg": "Request was submitted", "order_id": 1370093239}
    )
    broker, _ = make_broker()
    broker.place(intent())
    update = broker.cancel("tp-0000000000000000000a1")
    assert update.status is OrderStatus.PENDING_CANCEL
    assert delete.called
    gw["live"].respond(
        200, json={"orders": [_live("tp-0000000000000000000a1", 1370093239, "Cancelled")]}
    )
    events = broker.poll()
    assert [(e.status, e.reason) for e in events if isinstance(e, OrderUpdate)] == [
        (OrderStatus.CANCELED, "IBKR status Cancelled")
    ]


def test_cancel_of_an_unknown_order(gw: respx.MockRouter) -> None:
    broker, _ = make_broker()
    with pytest.raises(BrokerRejectedError, match="no order tp-nope"):
        broker.cancel("tp-nope")


def test_poll_reports_each_fill_once_at_ibkrs_pace(gw: respx.MockRouter) -> None:
    broker, t = make_broker()
    broker.place(intent())
    cid = "tp-0000000000000000000a1"
    execs = [
        {
            "execution_id": "e1",
            "order_ref": cid,
            "symbol": "AAPL",
            "side": "B",
            "size": 4.0,
            "price": "100.25",
            "commission": "1.00",
            "trade_time_r": 1763650800000,
        },
        {
            "execution_id": "other",
            "order_ref": "not-ours",
            "symbol": "MSFT",
            "side": "S",
            "size": 1.0,
            "price": "300",
            "trade_time_r": 1763650800000,
        },
    ]
    gw["trades"].mock(side_effect=lambda request: httpx.Response(200, json=execs))
    gw["live"].respond(200, json={"orders": [_live(cid, 1370093239, "Submitted", 4.0)]})
    first = broker.poll()
    fills = [e for e in first if isinstance(e, Fill)]
    assert [(f.execution_id, f.quantity, f.price, f.decision_id) for f in fills] == [
        ("e1", Decimal(4), Decimal("100.25"), "d1")
    ]
    assert broker.poll() == ()  # within IBKR's 5 s
    t.now += 5
    execs.append(
        {
            "execution_id": "e2",
            "order_ref": cid,
            "symbol": "AAPL",
            "side": "B",
            "size": 6.0,
            "price": "100.5",
            "trade_time_r": 1763650801000,
        }
    )
    second = broker.poll()
    assert [e.execution_id for e in second if isinstance(e, Fill)] == ["e2"]
    t.now += 5
    calls = gw["trades"].call_count
    assert broker.poll() == ()  # filled: nothing left to watch
    assert gw["trades"].call_count == calls


def test_positions_page_through_and_are_invalidated_first(gw: respx.MockRouter) -> None:
    invalidate = gw.post(f"/portfolio/{ACCT}/positions/invalidate").respond(200, json={})
    row = {
        "conid": 265598,
        "ticker": "AAPL",
        "position": 10.0,
        "avgPrice": 150.5,
        "mktPrice": 160.0,
        "multiplier": None,
        "realizedPnl": 0,
        "assetClass": "STK",
    }
    page0 = [dict(row, conid=i, ticker=f"S{i}") for i in range(100)]
    gw.get(f"/portfolio/{ACCT}/positions/0").respond(200, json=page0)
    gw.get(f"/portfolio/{ACCT}/positions/1").respond(200, json=[row, dict(row, position=0)])
    gw.get(f"/portfolio/{ACCT}/positions/2").respond(200, json=[])
    broker, _ = make_broker()
    positions = broker.positions()
    assert len(positions) == 101  # the flat one is left out
    assert positions[-1].symbol == "AAPL" and positions[-1].avg_cost == Decimal("150.5")
    assert invalidate.called
    assert gw["portfolio"].called


def test_account_summary(gw: respx.MockRouter) -> None:
    def item(v: float) -> dict:
        return {"amount": v, "currency": "USD", "isNull": False}

    gw.get(f"/portfolio/{ACCT}/summary").respond(
        200,
        json={
            "netliquidation": item(100_500.25),
            "totalcashvalue": item(50_000),
            "buyingpower": item(200_000),
            "grosspositionvalue": item(50_500.25),
        },
    )
    gw.get(f"/portfolio/{ACCT}/ledger").respond(
        200, json={"BASE": {"realizedpnl": 12.5, "unrealizedpnl": -3.25}}
    )
    broker, _ = make_broker()
    summary = broker.account()
    assert summary.equity == Decimal("100500.25")
    assert summary.cash == Decimal(50_000)
    assert summary.unrealized_pnl == Decimal("-3.25")


def test_unknown_symbol_is_refused_before_sending(gw: respx.MockRouter) -> None:
    gw["stocks"].respond(200, json={"ZZZZ": []})
    broker, _ = make_broker()
    with pytest.raises(BrokerRejectedError, match="no US stock listing for 'ZZZZ'"):
        broker.place(intent(symbol="ZZZZ"))
    assert not gw["place"].called


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="o163"):
        ClientPortalBroker.Settings(confirm=["yes"])
    with pytest.raises(ConfigError, match="only for a gateway on this machine"):
        ClientPortalBroker(
            ClientPortalBroker.Settings(base_url="https://10.0.0.5:5000/v1/api", verify=False)
        )
    with pytest.raises(ConfigError, match="no certificate file"):
        ClientPortalBroker(ClientPortalBroker.Settings(verify="/nonexistent.pem"))
    ClientPortalBroker(
        ClientPortalBroker.Settings(base_url="https://127.0.0.1:5000/v1/api", verify=False)
    )


def test_order_status_uses_the_single_order_endpoint_when_the_id_is_known(
    gw: respx.MockRouter,
) -> None:
    broker, _ = make_broker()
    broker.place(intent())
    status = gw.get("/iserver/account/order/status/1370093239").respond(
        200,
        json={
            "order_id": 1370093239,
            "symbol": "AAPL",
            "side": "B",
            "total_size": "10.0",
            "cum_fill": "4.0",
            "order_status": "Submitted",
            "order_type": "LIMIT",
            "limit_price": "101.5",
        },
    )
    found = broker.order("tp-0000000000000000000a1")
    assert found is not None
    assert (found.status, found.filled_quantity, found.limit_price) == (
        OrderStatus.PARTIALLY_FILLED,
        4,
        Decimal("101.5"),
    )
    assert status.called and not gw["live"].called
    # IBKR answers 503 for orders it no longer holds: the lists decide then.
    status.respond(503, json={"error": "Service Unavailable"})
    gw["live"].respond(
        200, json={"orders": [_live("tp-0000000000000000000a1", 1370093239, "Filled", 10.0)]}
    )
    again = broker.order("tp-0000000000000000000a1")
    assert again is not None and again.status is OrderStatus.FILLED


def test_bracket_exit_fills_are_ibkrs_executions_matched_by_the_exits_order_id(
    gw: respx.MockRouter,
) -> None:
    gw["place"].respond(200, json=[{"order_id": "1"}, {"order_id": "2"}, {"order_id": "3"}])
    broker, t = make_broker()
    broker.place(intent(take_profit=Decimal("120"), stop_loss=Decimal("90")))
    cid = "tp-0000000000000000000a1"
    execution = {"symbol": "AAPL", "conid": 265598, "trade_time_r": 1763650800000}
    gw["trades"].respond(
        200,
        json=[
            {
                **execution,
                "execution_id": "e1",
                "order_ref": cid,
                "side": "B",
                "size": 10.0,
                "price": "100",
            },
            # The take-profit's execution: no order_ref (IBKR gives exits no cOID).
            {
                **execution,
                "execution_id": "e2",
                "side": "S",
                "size": 10.0,
                "price": "120.05",
                "trade_time_r": 1763650900000,
            },
            # Someone else's sale of another stock at the same time is not it.
            {
                **execution,
                "execution_id": "x1",
                "side": "S",
                "size": 10.0,
                "price": "50",
                "conid": 272093,
                "symbol": "MSFT",
            },
        ],
    )
    tp = gw.get("/iserver/account/order/status/2").respond(
        200,
        json={
            "order_id": 2,
            "conid": 265598,
            "cum_fill": "10.0",
            "average_price": "120.05",
            "order_status": "Filled",
        },
    )
    gw.get("/iserver/account/order/status/3").respond(
        200, json={"order_id": 3, "conid": 265598, "cum_fill": "0", "order_status": "Cancelled"}
    )
    events = broker.poll()
    exits = [e for e in events if isinstance(e, Fill) and e.client_order_id.endswith("-tp")]
    assert [(e.execution_id, e.side, e.quantity, e.price, e.decision_id) for e in exits] == [
        ("e2", Side.SELL, Decimal(10), Decimal("120.05"), "d1")
    ]
    assert [(e.client_order_id, e.status) for e in events if isinstance(e, OrderUpdate)] == [
        (f"{cid}-sl", OrderStatus.CANCELED)
    ]  # IBKR cancelled the other exit
    t.now += 5
    assert broker.poll() == ()  # both exits finished: nothing more to read
    assert tp.call_count == 1


def test_orders_adopted_at_start_up_are_watched_for_fills(gw: respx.MockRouter) -> None:
    gw["live"].respond(200, json={"orders": [_live("tp-old", 55, "Submitted")]})
    broker, _ = make_broker()
    [adopted] = broker.open_orders()
    gw["trades"].respond(
        200,
        json=[
            {
                "execution_id": "e9",
                "order_ref": "tp-old",
                "symbol": "AAPL",
                "side": "B",
                "size": 10.0,
                "price": "101.5",
                "trade_time_r": 1763650800000,
            }
        ],
    )
    fills = [e for e in broker.poll() if isinstance(e, Fill)]
    assert [(f.execution_id, f.client_order_id) for f in fills] == [("e9", "tp-old")]
    assert adopted.client_order_id == "tp-old"


def test_an_order_list_still_being_refilled_is_not_read_as_empty(gw: respx.MockRouter) -> None:
    broker, _ = make_broker()
    broker.connect()
    gw["live"].respond(200, json={"orders": [], "snapshot": False})
    with pytest.raises(Exception, match="not read as empty"):
        broker.order("tp-somewhere")
    broker.disconnect()


def test_cancelling_a_finished_order_sends_nothing(gw: respx.MockRouter) -> None:
    gw["trades"].respond(
        200,
        json=[
            {
                "execution_id": "e1",
                "order_ref": "tp-done",
                "symbol": "AAPL",
                "side": "B",
                "size": 10.0,
                "price": "100",
                "trade_time_r": 1763650800000,
            }
        ],
    )
    delete = gw.delete(url__regex=r".*/order/.*").respond(200, json={})
    broker, _ = make_broker()
    with pytest.raises(BrokerRejectedError, match="already filled; nothing to change"):
        broker.cancel("tp-done")
    assert not delete.called


def test_a_failed_contract_lookup_is_not_sent(gw: respx.MockRouter) -> None:
    gw["stocks"].respond(400, json={"error": "bad symbol request"})
    broker, _ = make_broker()
    with pytest.raises(BrokerRejectedError, match="not sent"):
        broker.place(intent())
    assert not gw["place"].called


def test_a_remote_gateway_must_use_https() -> None:
    with pytest.raises(ConfigError, match="must use https"):
        ClientPortalBroker(ClientPortalBroker.Settings(base_url="http://10.0.0.5:5000/v1/api"))
    ClientPortalBroker(ClientPortalBroker.Settings(base_url="http://127.0.0.1:5000/v1/api"))


def test_a_cold_order_list_is_read_again_until_ibkr_has_it(gw: respx.MockRouter) -> None:
    broker, t = make_broker()
    broker.connect()
    cid = "tp-0000000000000000000a1"
    cold = httpx.Response(200, json={"orders": [], "snapshot": False})
    gw["live"].side_effect = [
        cold,
        cold,
        httpx.Response(200, json={"orders": [_live(cid, 7, "Submitted")], "snapshot": True}),
    ]
    start = t.now
    reports = broker.open_orders()
    assert [r.client_order_id for r in reports] == [cid]
    assert gw["live"].call_count == 3
    # Each read waited for IBKR's 5 s limit plus the headroom.
    assert t.now - start == pytest.approx(2 * 5.5, abs=0.2)


def test_an_order_list_that_stays_cold_is_an_error_that_says_what_to_do(
    gw: respx.MockRouter,
) -> None:
    broker, _ = make_broker(order_list_reads=3)
    broker.connect()
    gw["live"].respond(200, json={"orders": [], "snapshot": False})
    with pytest.raises(BrokerError, match=r"still not ready after 3 reads 5\.5 s apart") as err:
        broker.open_orders()
    assert "log out of the gateway and in again" in str(err.value)
    assert gw["live"].call_count == 3


def test_a_401_on_the_order_post_is_settled_by_lookup_not_resent(gw: respx.MockRouter) -> None:
    broker, _ = make_broker()
    broker.connect()
    gw["place"].respond(401, text="access denied")
    update = broker.place(intent())
    assert update.status is OrderStatus.UNKNOWN
    assert "session lost while sending" in update.reason
    assert gw["place"].call_count == 1
    # Looking it up goes through the session check first, then the lists.
    status_calls = gw["status"].call_count
    assert broker.order("tp-0000000000000000000a1") is None
    assert gw["status"].call_count > status_calls
    assert gw["place"].call_count == 1


def test_a_lost_cancel_answer_is_settled_by_lookup(gw: respx.MockRouter) -> None:
    delete = gw.delete(f"/iserver/account/{ACCT}/order/1370093239").mock(
        side_effect=httpx.RemoteProtocolError("dropped")
    )
    broker, _ = make_broker()
    broker.place(intent())
    cid = "tp-0000000000000000000a1"
    status = gw.get("/iserver/account/order/status/1370093239").respond(
        200,
        json={
            "order_id": 1370093239,
            "order_status": "PendingCancel",
            "total_size": "10.0",
            "cum_fill": "0.0",
            "side": "B",
            "symbol": "AAPL",
            "order_type": "LIMIT",
            "limit_price": "101.50",
        },
    )
    update = broker.cancel(cid)
    assert delete.call_count == 1
    assert status.called
    assert update.status is OrderStatus.PENDING_CANCEL
    assert "answer was lost" in update.reason and "arrived" in update.reason
    # The cancel did not arrive: the order's real state, said so.
    status.respond(
        200,
        json={
            "order_id": 1370093239,
            "order_status": "Submitted",
            "total_size": "10.0",
            "cum_fill": "0.0",
        },
    )
    update = broker.cancel(cid)
    assert update.status is OrderStatus.ACCEPTED
    assert "still reports the order accepted" in update.reason


def test_a_lost_modify_answer_is_settled_by_lookup(gw: respx.MockRouter) -> None:
    broker, _ = make_broker()
    cid = "tp-0000000000000000000a1"
    broker.place(intent(order_type="limit", limit_price=Decimal("101.50")))
    modify = gw.post(f"/iserver/account/{ACCT}/order/1370093239").mock(
        side_effect=httpx.ReadTimeout("slow")
    )
    status = gw.get("/iserver/account/order/status/1370093239").respond(
        200,
        json={
            "order_id": 1370093239,
            "order_status": "Submitted",
            "total_size": "10.0",
            "cum_fill": "0.0",
            "order_type": "LIMIT",
            "limit_price": "102",
        },
    )
    update = broker.modify(cid, limit_price=Decimal("102"))
    assert modify.call_count == 1
    assert (update.status, update.reason) == (OrderStatus.ACCEPTED, "modified: limit_price")
    # Asked for 103, IBKR still shows 102: not reported as done, and not re-sent.
    assert status.called
    with pytest.raises(BrokerError, match=r"may not have arrived .* IBKR shows limit_price 102"):
        broker.modify(cid, limit_price=Decimal("103"))
    assert modify.call_count == 2


# -- modify: the order rules judge a change before IBKR hears of it ----------------------------


@pytest.mark.parametrize(
    ("kw", "change", "reason"),
    [
        ({}, {"limit_price": Decimal(101)}, "a market order has no limit price to change"),
        ({}, {"stop_price": Decimal(99)}, "a market order has no stop price to change"),
        (
            {"order_type": "limit", "limit_price": Decimal(101)},
            {"stop_price": Decimal(99)},
            "a limit order has no stop price to change",
        ),
        (
            {},
            {"quantity": Decimal("0.0000001")},
            r"quantity 0\.0000001 is not a whole number of shares",
        ),
        ({}, {"quantity": Decimal(0)}, "quantity must be positive"),
        ({}, {}, "nothing to change"),
    ],
)
def test_a_bad_change_to_a_tracked_order_makes_no_request(
    gw: respx.MockRouter, kw: dict[str, Any], change: dict[str, Decimal], reason: str
) -> None:
    broker, _ = make_broker()
    broker.place(intent(**kw))
    modify = gw.post(f"/iserver/account/{ACCT}/order/1370093239", name="modify")
    requests = len(gw.calls)

    with pytest.raises(InvalidOrderError, match=f"cannot modify tp-0+a1: {reason}"):
        broker.modify("tp-0000000000000000000a1", **change)

    assert len(gw.calls) == requests
    assert not modify.called


def test_fractional_shares_are_a_setting_and_contracts_are_always_whole(
    gw: respx.MockRouter,
) -> None:
    broker, _ = make_broker()
    broker.order_rules = OrderRules(fractional=True)
    option = Option(underlying="AAPL", expiry=dt.date(2026, 12, 18), strike=Decimal(200), right="C")
    broker.place(intent())
    gw.post(f"/iserver/account/{ACCT}/order/1370093239", name="modify").respond(
        200, json=[{"order_id": "1370093239", "order_status": "Submitted"}]
    )
    broker.modify("tp-0000000000000000000a1", quantity=Decimal("2.5"))
    assert sent(gw["modify"])["quantity"] == 2.5

    broker._tracked["tp-opt"] = intent(
        client_order_id="tp-opt", symbol=option.ticker, instrument=option
    )
    with pytest.raises(InvalidOrderError, match="1.5 is not a whole number of option contracts"):
        broker.modify("tp-opt", quantity=Decimal("1.5"))
    assert gw["modify"].call_count == 1


@pytest.mark.parametrize(
    ("item", "change", "reason"),
    [
        ({"orderType": "Market"}, {"limit_price": Decimal(5)}, "a market order has no limit"),
        ({"secType": "OPT"}, {"quantity": Decimal("1.5")}, "whole number of option contracts"),
        ({"filledQuantity": 4}, {"quantity": Decimal(4)}, "not more than the 4 already filled"),
        ({"status": "PendingCancel"}, {"limit_price": Decimal(5)}, "being canceled"),
    ],
)
def test_a_bad_change_to_another_order_is_refused_once_ibkr_says_what_it_is(
    gw: respx.MockRouter, item: dict[str, Any], change: dict[str, Decimal], reason: str
) -> None:
    live = {
        "orderId": 77,
        "order_ref": "tp-other",
        "conid": 265598,
        "ticker": "AAPL",
        "secType": "STK",
        "side": "BUY",
        "orderType": "Limit",
        "price": 4.5,
        "totalSize": 10,
        "filledQuantity": 0,
        "remainingQuantity": 10,
        "status": "Submitted",
        **item,
    }
    gw["live"].respond(200, json={"orders": [live]})
    modify = gw.post(f"/iserver/account/{ACCT}/order/77", name="modify")
    broker, _ = make_broker()

    with pytest.raises(InvalidOrderError, match=reason):
        broker.modify("tp-other", **change)

    assert not modify.called
    assert {c.request.method for c in gw.calls if "/order" in c.request.url.path} == {"GET"}
