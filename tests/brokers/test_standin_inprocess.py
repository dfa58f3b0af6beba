"""The stand-in in this process: its clocks, and its transport's faults as the wire shows them.

A :class:`~standin.driver.LocalDriver` runs a stand-in on a virtual clock and reaches it through
:class:`~standin.transport.StandinTransport`; ``test_gateway_standin.py`` holds the transport
to the HTTPS server's behaviour by running tests against both.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standin import RealClock, Standin, VirtualClock
from standin.driver import LocalDriver

ACCT = "DU1234567"
AAPL = 265598
ORDERS = f"/iserver/account/{ACCT}/orders"


def order(**fields: Any) -> dict[str, Any]:
    """A valid limit order ticket for AAPL, with ``fields`` added."""
    ticket = {"acctId": ACCT, "conid": AAPL, "orderType": "LMT", "price": 165.0, "side": "BUY"}
    return {**ticket, "tif": "DAY", "quantity": 100, **fields}


def place(api: httpx.Client, *tickets: dict[str, Any]) -> Any:
    response = api.post(ORDERS, json={"orders": list(tickets)})
    assert response.status_code == 200, response.text
    return response.json()


# ----- the clock ----------------------------------------------------------------------------------


def test_the_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(epoch=1_700_000_000.0, monotonic=50.0)
    assert (clock.monotonic(), clock.time(), clock.now_ms()) == (50.0, 1.7e9, 1_700_000_000_000)
    clock.advance(2.5)
    clock.sleep(5)
    assert (clock.monotonic(), clock.now_ms()) == (57.5, 1_700_000_007_500)
    clock.sleep(-1)  # a wait already over: recorded, no time passes
    assert clock.slept == [5, -1] and clock.monotonic() == 57.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    noon = dt.datetime(2026, 3, 2, 12).timestamp()  # local time, like date.today()
    dated = VirtualClock(epoch=noon)
    assert dated.today() == dt.date(2026, 3, 2)
    dated.advance(86_400)
    assert dated.today() == dt.date(2026, 3, 3)
    assert abs(VirtualClock().time() - time.time()) < 5  # starts at the wall's now


def test_the_real_clock_is_the_wall() -> None:
    clock = RealClock()
    before = time.time()
    first = clock.monotonic()
    clock.sleep(0.01)
    assert clock.monotonic() >= first + 0.01
    assert before <= clock.time() <= time.time()
    assert before * 1000 - 1 <= clock.now_ms() <= time.time() * 1000
    assert clock.today() == dt.date.today()
    assert isinstance(Standin(ACCT).clock, RealClock)  # the default


@pytest.fixture
def dated() -> Iterator[tuple[LocalDriver, httpx.Client]]:
    """A stand-in in this process whose clock starts at 2023-11-14 22:13:20 UTC, and a client."""
    local = LocalDriver(ACCT, clock=VirtualClock(epoch=1_700_000_000.0))
    with local.client() as client:
        assert client.get("/iserver/accounts").status_code == 200
        yield local, client


def test_session_stamps_follow_the_clock(dated: tuple[LocalDriver, httpx.Client]) -> None:
    local, api = dated
    assert api.post("/tickle", json={}).json()["ssoExpires"] == 24 * 3600 * 1000
    local.clock.advance(3600)
    assert api.post("/tickle", json={}).json()["ssoExpires"] == 23 * 3600 * 1000
    validate = api.get("/sso/validate").json()
    assert (validate["AUTH_TIME"], validate["lastAccessed"]) == (1.7e12, 1_700_003_600_000)


def test_trades_age_out_on_the_clock(dated: tuple[LocalDriver, httpx.Client]) -> None:
    local, api = dated
    local.behave(idle_seconds=0)  # a day without requests would close the brokerage session
    (placed,) = place(api, order(cOID="old"))
    local.fill(placed["order_id"], 100, 165.0)
    (trade,) = api.get("/iserver/account/trades").json()
    assert (trade["trade_time_r"], trade["trade_time"]) == (1.7e12, "20231114-22:13:20")
    local.clock.advance(86_400 + 1)
    assert api.get("/iserver/account/trades").json() == []
    local.clock.advance(5)  # IBKR's pace for executions
    assert len(api.get("/iserver/account/trades", params={"days": 2}).json()) == 1


def test_option_months_and_history_follow_the_clocks_date() -> None:
    local = LocalDriver(
        ACCT,
        clock=VirtualClock(epoch=dt.datetime(2026, 1, 5, 12).timestamp()),
        # Two idle weeks would close the brokerage session, as at IBKR: not the point here.
        behaviour={"idle_seconds": 0},
    )
    api = local.client()
    api.get("/iserver/accounts")

    def months() -> list[str]:
        (found, *_) = api.get("/iserver/secdef/search", params={"symbol": "AAPL"}).json()
        return str(found["sections"][1]["months"]).split(";")

    assert months() == ["JAN26", "FEB26", "MAR26", "APR26"]
    local.clock.advance(14 * 86_400)  # past January's third Friday (the 16th)
    assert months()[0] == "FEB26"
    params: dict[str, Any] = {"conid": AAPL, "bar": "1d", "period": "2d"}
    bars = api.get("/iserver/marketdata/history", params=params).json()
    last_day = int(local.clock.time()) // 86_400 * 86_400
    assert [b["t"] for b in bars["data"]] == [(last_day - 86_400) * 1000, last_day * 1000]
    local.close()


# ----- the in-process transport -------------------------------------------------------------------


@pytest.fixture
def local() -> Iterator[LocalDriver]:
    driver = LocalDriver(ACCT)
    yield driver
    driver.close()


@pytest.mark.parametrize("after", [False, True])
def test_a_drop_is_a_dropped_connection_before_or_after_processing(
    local: LocalDriver, after: bool
) -> None:
    api = local.client()
    api.get("/iserver/accounts")
    local.fault("POST", ORDERS, "drop", after=after)
    before = local.clock.monotonic()
    with pytest.raises(httpx.RemoteProtocolError, match="disconnected"):
        api.post(ORDERS, json={"orders": [order(cOID="d1")]})
    assert [o["cOID"] for o in local.orders()] == (["d1"] if after else [])
    assert local.clock.monotonic() == before  # no time lost
    assert local.requests()[-1]["body"]["orders"][0]["cOID"] == "d1"  # it was received


@pytest.mark.parametrize("after", [False, True])
def test_a_timeout_costs_the_clients_read_timeout_on_the_clock(
    local: LocalDriver, after: bool
) -> None:
    api = local.client(timeout=2.5)
    api.get("/iserver/accounts")
    local.fault("POST", ORDERS, "timeout", after=after)
    before = local.clock.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        api.post(ORDERS, json={"orders": [order(cOID="slow")]})
    assert local.clock.monotonic() == before + 2.5
    assert [o["cOID"] for o in local.orders()] == (["slow"] if after else [])
    assert api.get("/iserver/account/orders").status_code == 200  # the fault is used up


@pytest.mark.parametrize("after", [False, True])
def test_a_patient_client_sees_the_late_answer_or_the_hang_up(
    local: LocalDriver, after: bool
) -> None:
    # As over the wire: the server answers (or hangs up) after 3 s, within a 15-s timeout.
    api = local.client(timeout=15)
    api.get("/iserver/accounts")
    local.fault("POST", ORDERS, "timeout", after=after)
    before = local.clock.monotonic()
    if after:
        (placed,) = api.post(ORDERS, json={"orders": [order(cOID="late")]}).json()
        assert placed["order_status"] == "PreSubmitted"
    else:
        with pytest.raises(httpx.RemoteProtocolError):
            api.post(ORDERS, json={"orders": [order(cOID="late")]})
    assert local.clock.monotonic() == before + 3.0
    assert len(local.orders()) == (1 if after else 0)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("500", '{"error": "stand-in fault 500"}'),
        ("503", '{"error": "stand-in fault 503"}'),
        ("429", '{"error": "stand-in fault 429"}'),
        ("401", "access denied"),
    ],
)
def test_a_status_fault_is_that_answer(local: LocalDriver, kind: str, text: str) -> None:
    api = local.client()
    summary = f"/portfolio/{ACCT}/summary"
    local.fault("GET", summary, kind)
    response = api.get(summary)
    assert (response.status_code, response.text) == (int(kind), text)
    assert api.get(summary).status_code == 200
