"""The Client Portal adapter, without the CLI, against the gateway stand-in in this process.

The adapter comes from ``inprocess_gateway.broker()``: its HTTP goes through the in-process
transport and its pacer, polling and retries wait on the stand-in's virtual clock, so IBKR's
real limits apply (one order-list or trades read per 5 s) and a test moves time itself.
``test_client_portal.py`` covers the adapter's branches with hand-written IBKR answers; these
tests hold it to the stand-in's behaviour across several requests.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from inprocess_support import InProcessGateway
from tradepipe.adapter import OrderUpdate
from tradepipe.orders import Fill, OrderIntent, OrderStatus

CID = "tp-0000000000000000000a1"


def intent(**kw: Any) -> OrderIntent:
    values: dict[str, Any] = {
        "client_order_id": CID,
        "decision_id": "d1",
        "source": "test",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": Decimal(10),
        "created_at": dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC),
    }
    values.update(kw)
    return OrderIntent(**values)


def posts(gw: InProcessGateway) -> list[dict[str, Any]]:
    path = f"/iserver/account/{gw.account}/orders"
    return [r for r in gw.requests() if (r["method"], r["path"]) == ("POST", path)]


def test_connect_and_place(inprocess_gateway: InProcessGateway) -> None:
    gw = inprocess_gateway
    broker = gw.broker()
    status = broker.connect()
    assert (status.connected, status.authenticated, status.is_paper) == (True, True, True)
    assert status.account_id == gw.account
    update = broker.place(intent())
    assert update.status is OrderStatus.ACCEPTED
    [order] = gw.orders()
    assert (order["cOID"], str(order["order_id"])) == (CID, update.broker_order_id)
    assert posts(gw)[0]["body"]["orders"][0]["conid"] == 265598  # the US listing
    broker.disconnect()


def test_fills_are_polled_once_each_at_ibkrs_pace(inprocess_gateway: InProcessGateway) -> None:
    gw = inprocess_gateway
    broker = gw.broker()
    # Read the new brokerage session's cold order list through first (it costs one more
    # paced read), so the polls below each read it once.
    assert broker.open_orders() == []
    placed = broker.place(intent())
    gw.clock.advance(5)
    gw.fill(placed.broker_order_id, 4, 100.25)
    fills = [e for e in broker.poll() if isinstance(e, Fill)]
    assert [(f.quantity, f.price, f.decision_id) for f in fills] == [
        (Decimal(4), Decimal("100.25"), "d1")
    ]
    gw.fill(placed.broker_order_id, 6, 100.5)
    assert broker.poll() == ()  # within IBKR's 5 s: not asked
    gw.clock.advance(5)
    second = [e for e in broker.poll() if isinstance(e, Fill)]
    assert [(f.quantity, f.price) for f in second] == [(Decimal(6), Decimal("100.5"))]
    trades = [r for r in gw.requests() if r["path"] == "/iserver/account/trades"]
    gw.clock.advance(5)
    assert broker.poll() == ()  # filled: nothing left to watch
    assert [r for r in gw.requests() if r["path"] == "/iserver/account/trades"] == trades


def test_an_order_whose_answer_timed_out_is_found_not_resent(
    inprocess_gateway: InProcessGateway,
) -> None:
    gw = inprocess_gateway
    broker = gw.broker(timeout_seconds=1)
    broker.connect()
    gw.fault("POST", f"/iserver/account/{gw.account}/orders", "timeout", after=True)
    before = gw.clock.monotonic()
    assert broker.place(intent()).status is OrderStatus.UNKNOWN
    assert gw.clock.monotonic() - before >= 1  # the read timeout passed on the clock
    found = broker.order(CID)
    assert found is not None and found.status is OrderStatus.ACCEPTED
    assert found.broker_order_id == str(gw.orders()[0]["order_id"])
    assert len(posts(gw)) == 1
    broker.disconnect()


def test_a_cancel_is_pending_until_ibkr_shows_it_done(inprocess_gateway: InProcessGateway) -> None:
    gw = inprocess_gateway
    broker = gw.broker()
    broker.place(intent())
    assert broker.cancel(CID).status is OrderStatus.PENDING_CANCEL
    seen: list[tuple[OrderStatus, str]] = []
    for _ in range(3):  # the stand-in shows PendingCancel once, then Cancelled
        seen += [(e.status, e.reason) for e in broker.poll() if isinstance(e, OrderUpdate)]
        gw.clock.advance(5)
    assert seen == [(OrderStatus.CANCELED, "IBKR status Cancelled")]
    assert gw.orders()[0]["status"] == "Cancelled"
