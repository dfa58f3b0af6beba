"""The stand-in's WebSocket (``/v1/api/ws``) message by message, as IBKR documents it.

Most tests talk to the stand-in in this process through its in-memory connection (the
methods and failures of ``websockets``' client connection) on the virtual clock; the last
ones open a real socket over TLS to the stand-in in its own process.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from gateway_support import Gateway
from inprocess_support import InProcessGateway
from oauth_fixtures import ACCESS_TOKEN, InProcessOAuthGateway
from standin.websocket import MemoryConnection
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import connect

URL = "wss://127.0.0.1:5000/v1/api/ws"
AAPL = 265598
FIELDS = ["31", "84", "86", "7762", "6509"]


def session_of(gateway: InProcessGateway) -> str:
    gateway.pause(1.0)  # IBKR allows one /tickle a second
    client = gateway.client(paced=True)
    client.get("/iserver/accounts")
    value: str = client.post("/tickle", json={}).json()["session"]
    return value


def opened(gateway: InProcessGateway, cookie: str | None = None) -> MemoryConnection:
    """A socket, past IBKR's greeting (``system`` success and ``sts``)."""
    value = cookie if cookie is not None else json.dumps({"session": session_of(gateway)})
    conn = gateway.ws_connect(URL, {"Cookie": f"api={value}"})
    assert read(conn) == {"topic": "system", "success": "standinpaper"}
    assert read(conn)["topic"] == "sts"
    return conn


def read(conn: MemoryConnection, timeout: float = 1.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(conn.recv(timeout))
    return message


def quiet(conn: MemoryConnection) -> bool:
    try:
        conn.recv(0)
    except TimeoutError:
        return True
    return False


def test_the_api_cookie_must_be_the_tickle_session_bare_or_as_json(
    inprocess_gateway: InProcessGateway,
) -> None:
    session = session_of(inprocess_gateway)
    opened(inprocess_gateway, session).close()
    opened(inprocess_gateway, json.dumps({"session": session})).close()
    for headers in ({}, {"Cookie": "api=0123456789abcdef"}, {"Cookie": f"other={session}"}):
        with pytest.raises(InvalidStatus) as refused:
            inprocess_gateway.ws_connect(URL, headers)
        assert refused.value.response.status_code == 401
    inprocess_gateway.set_auth(logged_in=False)
    with pytest.raises(InvalidStatus):
        inprocess_gateway.ws_connect(URL, {"Cookie": f"api={session}"})


def test_heartbeats_every_ten_seconds_and_sts_when_the_brokerage_session_goes(
    inprocess_gateway: InProcessGateway,
) -> None:
    conn = opened(inprocess_gateway)
    assert quiet(conn)
    inprocess_gateway.clock.advance(10)
    assert read(conn) == {"topic": "system", "hb": inprocess_gateway.clock.now_ms()}
    inprocess_gateway.set_auth(authenticated=False)
    sts = read(conn)
    assert sts["topic"] == "sts" and sts["args"]["authenticated"] is False
    inprocess_gateway.clock.advance(10)
    assert read(conn)["hb"]
    assert read(conn) == {"message": "waiting for session"}


def test_market_data_starts_partial_then_sends_only_what_changed(
    inprocess_gateway: InProcessGateway,
) -> None:
    conn = opened(inprocess_gateway)
    conn.send(f"smd+{AAPL}+" + json.dumps({"fields": FIELDS}))
    first = read(conn)
    assert first["topic"] == f"smd+{AAPL}" and first["conid"] == AAPL
    assert {k for k in first if k.isdigit()} == {"31", "6509"}
    rest = read(conn)
    assert {k for k in rest if k.isdigit()} == {"84", "86", "7762"}
    assert quiet(conn)  # nothing changed, nothing sent
    inprocess_gateway.market({AAPL: {"84": "190.20"}})
    assert {k for k in read(conn) if k.isdigit()} == {"84"}
    inprocess_gateway.ticks({"conid": AAPL, "price": 190.75, "size": 400, "after": 5})
    assert quiet(conn)
    inprocess_gateway.clock.advance(5)
    tick = read(conn)
    assert tick["31"] == "190.75" and tick["86"] == "190.76" and "84" not in tick  # overridden
    assert int(tick["7762"]) == int(rest["7762"]) + 400
    conn.send(f"umd+{AAPL}+{{}}")
    inprocess_gateway.ticks({"conid": AAPL, "price": 191.0, "size": 1})
    assert quiet(conn)


def test_order_updates_after_sor(inprocess_gateway: InProcessGateway) -> None:
    conn = opened(inprocess_gateway)
    conn.send("sor+{}")
    assert quiet(conn)  # no orders yet
    client = inprocess_gateway.client(paced=True)
    order = {
        "acctId": "DU1234567",
        "conid": AAPL,
        "orderType": "MKT",
        "side": "SELL",
        "quantity": 3,
        "tif": "DAY",
        "cOID": "c-1",
    }
    placed = client.post("/iserver/account/DU1234567/orders", json={"orders": [order]}).json()
    order_id = int(placed[0]["order_id"])
    full = read(conn)["args"][0]
    assert full["orderId"] == order_id and full["order_ref"] == "c-1"
    assert full["status"] == "PreSubmitted" and full["side"] == "SELL"
    inprocess_gateway.fill(order_id, 3, 189.0)
    update = read(conn)["args"][0]
    assert update["orderId"] == order_id and update["status"] == "Filled"
    assert "side" not in update and update["avgPrice"] == "189.00"
    conn.send("uor+{}")
    inprocess_gateway.order_status(order_id, "Cancelled")
    assert quiet(conn)


def test_a_socket_without_client_messages_is_closed_as_idle(
    inprocess_gateway: InProcessGateway,
) -> None:
    conn = opened(inprocess_gateway)
    for _ in range(5):  # a tic a minute keeps it
        inprocess_gateway.clock.advance(60)
        conn.send("tic")
        assert read(conn)["hb"]
    inprocess_gateway.clock.advance(301)
    with pytest.raises(ConnectionClosedOK) as closed:
        conn.recv(1)
    assert closed.value.rcvd is not None and "idle" in closed.value.rcvd.reason


def test_subscriptions_past_the_market_data_lines_are_refused(
    start_inprocess_gateway: Callable[..., InProcessGateway],
) -> None:
    gateway = start_inprocess_gateway(behaviour={"market_data_lines": 2})
    session = session_of(gateway)
    gateway.client(paced=True).get("/iserver/marketdata/snapshot", params={"conids": "8314"})
    conn = opened(gateway, session)
    conn.send(f'smd+{AAPL}+{{"fields":["31"]}}')
    assert read(conn)["31"]
    conn.send('smd+272093+{"fields":["31"]}')  # the snapshot stream holds the other line
    refusal = read(conn)
    assert refusal == {
        "topic": "smd+272093",
        "conid": 272093,
        "error": "Max number of tickers has been reached",
    }
    assert gateway.streams()["lines"] == [8314, AAPL]


def test_drop_stall_and_refuse(inprocess_gateway: InProcessGateway) -> None:
    conn = opened(inprocess_gateway)
    conn.send(f"smd+{AAPL}+" + json.dumps({"fields": ["31"]}))
    read(conn)
    inprocess_gateway.stall_streams()
    inprocess_gateway.ticks({"conid": AAPL, "price": 180.0, "size": 1})
    inprocess_gateway.clock.advance(10)
    assert "hb" in read(conn) and quiet(conn)  # heartbeats, no data
    conn.send(f"smd+{AAPL}+" + json.dumps({"fields": ["31"]}))  # subscribing again
    assert read(conn)["31"] == "180.00"
    inprocess_gateway.drop_streams()
    with pytest.raises(ConnectionClosedError):
        conn.recv(1)
    inprocess_gateway.refuse_streams(status=503)
    with pytest.raises(InvalidStatus) as refused:
        opened(inprocess_gateway)
    assert refused.value.response.status_code == 503
    opened(inprocess_gateway).close()


def test_over_oauth_the_access_token_opens_the_socket(
    inprocess_oauth_gateway: InProcessOAuthGateway,
) -> None:
    with pytest.raises(InvalidStatus):  # no live session token derived for it yet
        inprocess_oauth_gateway.ws_connect(f"{URL}?oauth_token={ACCESS_TOKEN}", {})
    broker = inprocess_oauth_gateway.broker()
    broker.connect()
    conn = inprocess_oauth_gateway.ws_connect(f"{URL}?oauth_token={ACCESS_TOKEN}", {})
    assert read(conn)["success"] == "standinpaper"
    with pytest.raises(InvalidStatus):
        inprocess_oauth_gateway.ws_connect(f"{URL}?oauth_token=unknown", {})
    with pytest.raises(InvalidStatus):  # an api cookie, when sent, must still be right
        inprocess_oauth_gateway.ws_connect(
            f"{URL}?oauth_token={ACCESS_TOKEN}", {"Cookie": "api=0123456789abcdef"}
        )


def test_over_tls_the_socket_speaks_websocket(gateway: Gateway) -> None:
    client = gateway.client()
    client.get("/iserver/accounts")
    session = client.post("/tickle", json={}).json()["session"]
    url = f"wss://127.0.0.1:{gateway.port}/v1/api/ws"
    context: ssl.SSLContext = gateway.ssl_context()
    with pytest.raises(InvalidStatus) as refused:
        connect(url, ssl=context, additional_headers={"Cookie": "api=wrong"}).close()
    assert refused.value.response.status_code == 401
    cookie = json.dumps({"session": session})
    with connect(url, ssl=context, additional_headers={"Cookie": f"api={cookie}"}) as ws:
        assert json.loads(ws.recv(5)) == {"topic": "system", "success": "standinpaper"}
        json.loads(ws.recv(5))  # sts
        ws.send(f"smd+{AAPL}+" + json.dumps({"fields": FIELDS}))
        assert json.loads(ws.recv(5))["31"] == "190.25"
        assert json.loads(ws.recv(5))["84"] == "190.24"
        gateway.drop_streams()
        with pytest.raises(ConnectionClosedError):
            ws.recv(5)
    client.close()
