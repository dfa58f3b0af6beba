"""The IBKR gateway stand-in itself, driven with plain httpx.

These tests pin the quirks the stand-in promises to reproduce (see the docstring of the
``standin`` package), so adapter tests written against it can rely on them. They run against
the stand-in in this process (through its httpx transport, on a virtual clock); those marked
``BOTH`` run a second time against the stand-in in its own process over TLS, which is how the
transport is held to the server's behaviour. The clocks, and the transport's fault mapping in
detail, are tested in ``test_standin_inprocess.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from standin.driver import Driver

if TYPE_CHECKING:
    from gateway_support import Gateway
    from inprocess_support import InProcessGateway

ACCT = "DU1234567"
AAPL = 265598
ORDERS = f"/iserver/account/{ACCT}/orders"


def order(**overrides: Any) -> dict[str, Any]:
    ticket: dict[str, Any] = {
        "acctId": ACCT,
        "conid": AAPL,
        "orderType": "LMT",
        "price": 165.0,
        "side": "BUY",
        "tif": "DAY",
        "quantity": 100,
    }
    ticket.update(overrides)
    return {k: v for k, v in ticket.items() if v is not None}


#: Run the test against the stand-in in this process and against one behind TLS.
BOTH = pytest.mark.parametrize("gw", ["inprocess", "tls"], indirect=True)


#: IBKR's timing quirks, off: most tests here send raw requests back to back to pin one
#: mechanism each. The quirks themselves (pacing and its penalty box, cold order lists, the
#: slow ssodh/init, idle drops) are the stand-in's defaults and are pinned by the tests
#: under "IBKR's timing", which use the stand-in as it comes.
MECHANICS_ONLY = {"pacing": False, "cold_order_lists": 0, "init_seconds": 0, "idle_seconds": 0}


@pytest.fixture
def gw(request: pytest.FixtureRequest) -> Driver:
    """The paper-account stand-in in this process, or (``BOTH``'s second run) behind TLS,
    with IBKR's timing quirks off (:data:`MECHANICS_ONLY`)."""
    surface = getattr(request, "param", "inprocess")
    found: Driver = request.getfixturevalue("gateway" if surface == "tls" else "inprocess_gateway")
    found.behave(**MECHANICS_ONLY)
    return found


@pytest.fixture
def api(gw: Driver) -> Iterator[httpx.Client]:
    with gw.client() as client:
        yield client


@pytest.fixture
def ready(api: httpx.Client) -> httpx.Client:
    """A client that has done the documented start-up call (GET /iserver/accounts)."""
    assert api.get("/iserver/accounts").status_code == 200
    return api


def place(api: httpx.Client, *tickets: dict[str, Any]) -> Any:
    response = api.post(ORDERS, json={"orders": list(tickets)})
    assert response.status_code == 200, response.text
    return response.json()


# ----- TLS, session -------------------------------------------------------------------------------


@pytest.mark.slow
def test_tls_is_trusted_through_the_ca_only(gateway: Gateway) -> None:
    with gateway.client() as api:
        assert api.post("/iserver/auth/status", json={}).json()["authenticated"] is True
        with (
            httpx.Client(timeout=5) as untrusting,
            pytest.raises(httpx.ConnectError, match="CERT"),
        ):
            untrusting.post(f"{gateway.base_url}/iserver/auth/status", json={})
        # the refused handshake does not disturb the server
        assert api.post("/tickle", json={}).status_code == 200


def test_paper_and_live_accounts_are_told_apart(
    start_inprocess_gateway: Callable[..., InProcessGateway], api: httpx.Client
) -> None:
    assert api.get("/iserver/accounts").json()["isPaper"] is True
    assert api.get("/sso/validate").json()["LOGIN_TYPE"] == 2
    with start_inprocess_gateway("U1234567").client() as live:
        accounts = live.get("/iserver/accounts").json()
        assert (accounts["accounts"], accounts["selectedAccount"]) == (["U1234567"], "U1234567")
        assert accounts["isPaper"] is False
        assert live.get("/sso/validate").json()["LOGIN_TYPE"] == 1


@BOTH
def test_tickle_reports_the_session_and_a_bodyless_post_is_refused(api: httpx.Client) -> None:
    tickle = api.post("/tickle", json={}).json()
    assert re.fullmatch(r"[0-9a-f]{32}", tickle["session"])
    assert tickle["iserver"]["authStatus"]["connected"] is True
    assert api.get("/tickle").status_code == 200
    assert api.post("/tickle").status_code == 411


@BOTH
def test_logged_out_every_endpoint_but_auth_status_is_access_denied(
    gw: Driver, api: httpx.Client
) -> None:
    assert api.post("/logout", json={}).json() == {"status": True}
    for method, path in [
        ("GET", "/iserver/accounts"),
        ("GET", "/portfolio/accounts"),
        ("POST", "/tickle"),
        ("GET", "/sso/validate"),
    ]:
        response = api.request(method, path, json={} if method == "POST" else None)
        assert (response.status_code, response.text) == (401, "access denied")
    status = api.post("/iserver/auth/status", json={}).json()
    assert (status["authenticated"], status["connected"]) == (False, False)
    gw.set_auth(logged_in=True)  # the human logs in again
    assert api.get("/iserver/accounts").status_code == 200


def test_dropped_brokerage_session_gives_no_bridge_until_ssodh_init(
    gw: Driver, api: httpx.Client
) -> None:
    api.get("/iserver/accounts")
    gw.set_auth(authenticated=False)
    no_bridge = api.get("/iserver/account/orders")
    assert no_bridge.status_code == 400
    assert no_bridge.json() == {"error": "Bad Request: no bridge", "statusCode": 400}
    assert api.get("/portfolio/accounts").status_code == 200  # read-only tier still works
    status = api.post("/iserver/auth/status", json={}).json()
    assert (status["authenticated"], status["connected"]) == (False, True)

    assert api.post("/iserver/auth/ssodh/init", json={"compete": True}).status_code == 500
    init = api.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert init.json()["authenticated"] is True
    # a new brokerage session: /iserver/accounts must be queried again
    assert api.get("/iserver/account/orders").json() == {"error": "Please query /accounts first"}


def test_competing_session_is_taken_back_only_with_compete(gw: Driver, api: httpx.Client) -> None:
    gw.set_auth(competing=True)
    assert api.get("/iserver/accounts").status_code == 400
    keep = api.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": False})
    assert keep.json()["competing"] is True
    take = api.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert (take.json()["competing"], take.json()["authenticated"]) == (False, True)
    assert api.get("/iserver/accounts").status_code == 200


def test_accounts_must_be_queried_first(api: httpx.Client) -> None:
    first = {"error": "Please query /accounts first"}
    for path, params in [
        ("/iserver/account/orders", {}),
        ("/iserver/marketdata/snapshot", {"conids": str(AAPL), "fields": "31"}),
    ]:
        response = api.get(path, params=params)
        assert (response.status_code, response.json()) == (400, first)
    assert api.delete(f"/iserver/account/{ACCT}/order/1").json() == first
    api.get("/iserver/accounts")
    assert api.get("/iserver/account/orders").status_code == 200


# ----- market data, contracts ---------------------------------------------------------------------


@BOTH
def test_snapshot_preflight_then_string_values(gw: Driver, ready: httpx.Client) -> None:
    params = {"conids": f"{AAPL},8314", "fields": "31,84,86,88,87,6509,55"}
    preflight = ready.get("/iserver/marketdata/snapshot", params=params).json()
    assert preflight == [
        {"conid": AAPL, "conidEx": str(AAPL)},
        {"conid": 8314, "conidEx": "8314"},
    ]
    gw.market({AAPL: {"31": "101.5", "88": "1,300"}})
    aapl, ibm = ready.get("/iserver/marketdata/snapshot", params=params).json()
    assert (aapl["31"], aapl["84"], aapl["86"]) == ("101.5", "101.49", "101.51")
    assert (aapl["88"], aapl["6509"], aapl["55"]) == ("1,300", "RpB", "AAPL")
    assert re.fullmatch(r"\d+(\.\d)?[KM]", aapl["87"])
    assert ibm["55"] == "IBM"
    # later calls may omit fields; a closed market prefixes the last price with C
    gw.market(closed=True)
    (again,) = ready.get("/iserver/marketdata/snapshot", params={"conids": str(AAPL)}).json()
    assert again["31"] == "C101.5"


def test_history_bars_are_deterministic_and_unknown_conids_have_no_data(
    ready: httpx.Client,
) -> None:
    params = {"conid": AAPL, "bar": "1d", "period": "5d", "startTime": "20240105-21:00:00"}
    first = ready.get("/iserver/marketdata/history", params=params).json()
    assert first == ready.get("/iserver/marketdata/history", params=params).json()
    assert len(first["data"]) == 5
    assert first["data"][-1]["t"] == 1704412800000  # 2024-01-05 00:00 UTC, in ms
    assert set(first["data"][0]) == {"o", "h", "l", "c", "v", "t"}
    unknown = ready.get("/iserver/marketdata/history", params={**params, "conid": 1})
    assert unknown.json() == {"error": "No data."}


def test_option_strikes_need_a_search_first(ready: httpx.Client) -> None:
    stocks = ready.get("/trsrv/stocks", params={"symbols": "AAPL"}).json()["AAPL"]
    us = [c for s in stocks for c in s["contracts"] if c["isUS"]]
    assert us == [{"conid": AAPL, "exchange": "NASDAQ", "isUS": True}]

    search = ready.get("/iserver/secdef/search", params={"symbol": "APPLE", "name": "true"})
    month = search.json()[0]["sections"][1]["months"].split(";")[0]
    strikes = {"conid": AAPL, "sectype": "OPT", "month": month}
    # a search with name=true does not count
    assert ready.get("/iserver/secdef/strikes", params=strikes).json() == {"call": [], "put": []}
    (found, *_) = ready.get("/iserver/secdef/search", params={"symbol": "AAPL"}).json()
    assert found["conid"] == str(AAPL)
    chain = ready.get("/iserver/secdef/strikes", params=strikes).json()
    assert 190.0 in chain["call"] and chain["call"] == chain["put"]
    info = {**strikes, "strike": 190, "right": "C"}
    contracts = ready.get("/iserver/secdef/info", params=info).json()
    assert contracts and all(c["multiplier"] == "100" for c in contracts)
    assert contracts == ready.get("/iserver/secdef/info", params=info).json()


# ----- orders -------------------------------------------------------------------------------------


@pytest.mark.slow
@BOTH
def test_place_answers_a_string_order_id_and_lists_the_order(
    gw: Driver, ready: httpx.Client
) -> None:
    (placed,) = place(ready, order(cOID="tp-1"))
    assert placed["order_status"] == "PreSubmitted"
    assert placed["order_id"].isdigit()
    (live,) = ready.get("/iserver/account/orders").json()["orders"]
    assert live["orderId"] == int(placed["order_id"])
    assert (live["order_ref"], live["status"], live["price"]) == ("tp-1", "PreSubmitted", "165.00")
    assert (live["filledQuantity"], live["remainingQuantity"]) == (0.0, 100.0)
    assert gw.requests()[-2]["body"]["orders"][0]["cOID"] == "tp-1"


def test_invalid_tickets_are_refused_with_400(ready: httpx.Client) -> None:
    for ticket in [
        order(tif=None),
        order(price="165.0"),
        order(conid="265598"),
        order(conidex="265598@SMART"),
    ]:
        response = ready.post(ORDERS, json={"orders": [ticket]})
        assert response.status_code == 400 and "error" in response.json(), ticket
    bare = ready.post(ORDERS, json=[order(conid=None, conidex="265598@ISLAND")])
    assert bare.json()[0]["order_status"] == "PreSubmitted"


def test_bracket_and_combo_orders(ready: httpx.Client) -> None:
    bracket = place(
        ready,
        order(cOID="parent", orderType="MKT", price=None),
        order(orderType="STP", price=157.3, side="SELL", parentId="parent"),
        order(orderType="LMT", price=175.0, side="SELL", parentId="parent"),
    )
    assert len(bracket) == 3
    combo = order(conid=None, conidex="28812380;;;730679583/1,733773440/-1", price=-1.2)
    assert place(ready, combo)[0]["order_status"] == "PreSubmitted"
    orders = ready.get("/iserver/account/orders").json()["orders"]
    children = [o for o in orders if "parentId" in o]
    assert [c["parentId"] for c in children] == [int(bracket[0]["order_id"])] * 2
    assert all("order_ref" not in c for c in children)


def test_duplicate_coid_is_refused(ready: httpx.Client) -> None:
    place(ready, order(cOID="dup"))
    again = place(ready, order(cOID="dup"))
    expected = "Order couldn't be submitted: Local order ID=dup is already registered."
    assert again == {"error": expected}


@pytest.mark.slow
@BOTH
def test_question_chain_reply_and_stale_reply_id(gw: Driver, ready: httpx.Client) -> None:
    gw.questions(["o163", "o354"])
    (first,) = place(ready, order(cOID="q1"))
    assert first["messageIds"] == ["o163"] and first["isSuppressed"] is False
    assert isinstance(first["message"], list)
    (second,) = ready.post(f"/iserver/reply/{first['id']}", json={"confirmed": True}).json()
    assert second["messageIds"] == ["o354"] and second["id"] != first["id"]
    (done,) = ready.post(f"/iserver/reply/{second['id']}", json={"confirmed": True}).json()
    assert done["order_id"].isdigit() and done["encrypt_message"] == "1"

    # any other request between the question and its reply makes the reply id unknown
    (question,) = place(ready, order(cOID="q2"))
    ready.post("/tickle", json={})
    stale = ready.post(f"/iserver/reply/{question['id']}", json={"confirmed": True})
    assert stale.status_code == 400
    assert stale.json() == {"error": f"reply id not found: '{question['id']}'"}
    # declining discards the order
    (question,) = place(ready, order(cOID="q3"))
    declined = ready.post(f"/iserver/reply/{question['id']}", json={"confirmed": False})
    assert "error" in declined.json()
    assert [o["cOID"] for o in gw.orders()] == ["q1"]


def test_suppressed_questions_are_skipped_until_the_next_login(
    gw: Driver, ready: httpx.Client
) -> None:
    gw.questions(["o163"])
    suppress = ready.post("/iserver/questions/suppress", json={"messageIds": ["o163"]})
    assert suppress.json() == {"status": "submitted"}
    assert "order_id" in place(ready, order(cOID="s1"))[0]
    ready.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    ready.get("/iserver/accounts")
    assert place(ready, order(cOID="s2"))[0]["messageIds"] == ["o163"]


def test_cancel_is_pending_until_a_later_read(gw: Driver, ready: httpx.Client) -> None:
    (placed,) = place(ready, order(cOID="c1"))
    oid = int(placed["order_id"])
    cancel = ready.delete(f"/iserver/account/{ACCT}/order/{oid}").json()
    submitted = {"msg": "Request was submitted", "order_id": oid, "conid": AAPL, "account": ACCT}
    assert cancel == submitted

    def status() -> str:
        (live,) = ready.get("/iserver/account/orders").json()["orders"]
        return str(live["status"])

    assert status() == "PendingCancel"
    assert status() == "Cancelled"
    missing = ready.delete(f"/iserver/account/{ACCT}/order/42").json()
    assert missing == {"error": "OrderID 42 doesn't exist"}
    # the same through the single-order status endpoint
    (other,) = place(ready, order(cOID="c2"))
    ready.delete(f"/iserver/account/{ACCT}/order/{other['order_id']}")
    reads = [
        ready.get(f"/iserver/account/order/status/{other['order_id']}").json()["order_status"]
        for _ in range(2)
    ]
    assert reads == ["PendingCancel", "Cancelled"]
    assert ready.get("/iserver/account/order/status/42").status_code == 503


def test_force_true_answers_an_empty_list(ready: httpx.Client) -> None:
    place(ready, order(cOID="f1"))
    forced = ready.get("/iserver/account/orders", params={"force": "true"}).json()
    assert forced == {"orders": [], "snapshot": False}
    again = ready.get("/iserver/account/orders", params={"accountId": ACCT}).json()
    assert [o["order_ref"] for o in again["orders"]] == ["f1"]
    assert again["snapshot"] is True
    filtered = ready.get("/iserver/account/orders", params={"filters": "submitted,filled"})
    assert filtered.json()["orders"] == []


def test_modify_takes_one_unwrapped_order(ready: httpx.Client) -> None:
    (placed,) = place(ready, order(cOID="m1"))
    url = f"/iserver/account/{ACCT}/order/{placed['order_id']}"
    modified = ready.post(url, json=order(cOID="m1", price=166.5)).json()
    assert modified[0]["order_id"] == placed["order_id"]
    (live,) = ready.get("/iserver/account/orders").json()["orders"]
    assert (live["price"], live["order_ref"]) == ("166.50", "m1")
    assert ready.post(url, json={"orders": [order()]}).status_code == 400
    unknown = ready.post(f"/iserver/account/{ACCT}/order/7", json=order()).json()
    assert unknown == {"error": "OrderID 7 doesn't exist"}


def test_whatif_answers_formatted_strings(ready: httpx.Client) -> None:
    whatif = ready.post(
        f"{ORDERS}/whatif", json={"orders": [order(quantity=10, price=197.76)]}
    ).json()
    assert whatif["amount"]["amount"] == "1,977.60 USD (10 Shares)"
    assert whatif["position"] == {"current": "0", "change": "10", "after": "10"}
    assert whatif["warn"].startswith("21/") and whatif["error"] is None


def test_fills_make_trades_matched_by_order_ref(gw: Driver, ready: httpx.Client) -> None:
    (placed,) = place(ready, order(cOID="fill-1"))
    first = gw.fill(placed["order_id"], 40, 164.5)
    gw.fill(placed["order_id"], 60, 165.0)
    (live,) = ready.get("/iserver/account/orders").json()["orders"]
    assert (live["status"], live["filledQuantity"], live["avgPrice"]) == ("Filled", 100.0, "164.80")
    trades = ready.get("/iserver/account/trades").json()
    assert trades[0]["execution_id"] == first["execution_id"]
    assert len({t["execution_id"] for t in trades}) == 2
    assert {(t["order_ref"], t["side"], t["size"], t["price"]) for t in trades} == {
        ("fill-1", "B", 40.0, "164.50"),
        ("fill-1", "B", 60.0, "165.00"),
    }
    assert all("order_id" not in t for t in trades)


# ----- portfolio ----------------------------------------------------------------------------------


def test_positions_are_paged_by_100(gw: Driver, api: httpx.Client) -> None:
    gw.positions([{"conid": 1000 + i, "position": 1.0, "mktPrice": 10.0} for i in range(250)])
    pages = [api.get(f"/portfolio/{ACCT}/positions/{n}").json() for n in range(4)]
    assert [len(p) for p in pages] == [100, 100, 50, 0]
    assert pages[2][-1]["conid"] == 1249 and pages[0][0]["mktValue"] == 10.0
    (one,) = api.get(f"/portfolio/{ACCT}/position/1005").json()
    assert one["position"] == 1.0


def test_positions_stay_cached_until_invalidated(gw: Driver, ready: httpx.Client) -> None:
    positions = f"/portfolio/{ACCT}/positions/0"
    assert ready.get(positions).json() == []
    (placed,) = place(ready, order(orderType="MKT", price=None, quantity=10))
    gw.fill(placed["order_id"], 10, 190.0)
    assert ready.get(positions).json() == []
    invalidate = ready.post(f"/portfolio/{ACCT}/positions/invalidate", json={})
    assert invalidate.json() == {"message": "success"}
    (aapl,) = ready.get(positions).json()
    assert (aapl["conid"], aapl["position"], aapl["avgPrice"]) == (AAPL, 10.0, 190.0)
    summary = ready.get(f"/portfolio/{ACCT}/summary").json()
    assert set(summary["netliquidation"]) >= {"amount", "currency", "isNull", "timestamp"}
    assert set(ready.get(f"/portfolio/{ACCT}/ledger").json()) == {"USD", "BASE"}


# ----- faults, pacing -----------------------------------------------------------------------------


@pytest.mark.slow
@BOTH
def test_dropped_connection_fails_the_request(gw: Driver, ready: httpx.Client) -> None:
    gw.fault("POST", ORDERS, "drop", after=False)
    with pytest.raises(httpx.RemoteProtocolError):
        ready.post(ORDERS, json={"orders": [order(cOID="d1")]})
    assert gw.orders() == []
    assert place(ready, order(cOID="d1"))[0]["order_status"] == "PreSubmitted"


@BOTH
def test_500_after_processing_still_registers_the_order(gw: Driver, ready: httpx.Client) -> None:
    gw.fault("POST", ORDERS, "500", after=True)
    response = ready.post(ORDERS, json={"orders": [order(cOID="lost-reply")]})
    assert response.status_code == 500
    assert [o["cOID"] for o in gw.orders()] == ["lost-reply"]
    # a blind retry is now a duplicate
    assert "already registered" in place(ready, order(cOID="lost-reply"))["error"]


@pytest.mark.slow
@BOTH
def test_timeout_after_processing_registers_the_order(gw: Driver, ready: httpx.Client) -> None:
    gw.fault("POST", ORDERS, "timeout", after=True)
    with pytest.raises(httpx.ReadTimeout):
        ready.post(ORDERS, json={"orders": [order(cOID="slow")]}, timeout=0.5)
    assert [o["cOID"] for o in gw.orders()] == ["slow"]


@BOTH
def test_429_and_401_faults_apply_the_given_number_of_times(
    gw: Driver, ready: httpx.Client
) -> None:
    gw.fault("GET", "/iserver/account/trades", "429", times=2)
    codes = [ready.get("/iserver/account/trades").status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    gw.fault("POST", "/tickle", "401")
    denied = ready.post("/tickle", json={})
    assert (denied.status_code, denied.text) == (401, "access denied")


# ----- IBKR's timing: the stand-in as it comes ------------------------------------------------


def test_pacing_is_on_by_default_and_the_command_line_can_change_quirks(
    start_gateway: Callable[..., Gateway],
) -> None:
    # Over TLS, on the wall clock: two reads of the order list back to back.
    tls = start_gateway("--behaviour", '{"cold_order_lists": 0}')
    with tls.client() as client:
        client.get("/iserver/accounts")
        first = client.get("/iserver/account/orders").json()
        assert first["snapshot"] is True  # no cold read: the flag took
        again = client.get("/iserver/account/orders")
        assert again.status_code == 429
        assert "IBKR allows one every 5 s" in again.json()["error"]
        # Now in the penalty box: everything is refused.
        assert client.post("/tickle", json={}).status_code == 429
    [violation, boxed] = tls.violations()
    assert violation["path"] == "/iserver/account/orders"
    assert "penalty box" in boxed["reason"]


@pytest.fixture
def ibkr(inprocess_gateway: InProcessGateway) -> Iterator[tuple[InProcessGateway, httpx.Client]]:
    """The stand-in in this process as it comes (IBKR's timing on), and a plain client."""
    with inprocess_gateway.client() as client:
        yield inprocess_gateway, client


@pytest.mark.parametrize(
    ("method", "path", "interval"),
    [
        ("GET", "/iserver/account/orders", 5.0),
        ("GET", "/iserver/account/trades", 5.0),
        ("GET", "/portfolio/accounts", 5.0),
        ("GET", "/sso/validate", 60.0),
        ("POST", "/tickle", 1.0),
        ("POST", "/iserver/scanner/run", 1.0),
        ("GET", "/iserver/scanner/params", 900.0),
    ],
)
def test_endpoint_limits_are_measured_on_arrival(
    ibkr: tuple[InProcessGateway, httpx.Client], method: str, path: str, interval: float
) -> None:
    gw, api = ibkr
    api.get("/iserver/accounts")
    body = {"instrument": "STK", "location": "STK.US.MAJOR", "type": "TOP_PERC_GAIN"}
    send = lambda: api.request(method, path, json=body if method == "POST" else None)  # noqa: E731
    gw.clock.advance(1)
    assert send().status_code == 200
    gw.clock.advance(interval - 0.01)  # a hair under the limit: refused, as IBKR does
    refused = send()
    assert refused.status_code == 429
    assert f"IBKR allows one every {interval:g} s" in refused.json()["error"]
    assert [v["path"] for v in gw.violations()] == [path]


def test_exactly_at_the_limit_is_allowed_and_the_global_rate_is_ten_a_second(
    ibkr: tuple[InProcessGateway, httpx.Client],
) -> None:
    gw, api = ibkr
    api.get("/iserver/accounts")
    gw.clock.advance(1)
    for _ in range(10):
        assert api.get(f"/portfolio/{ACCT}/summary").status_code == 200
        gw.clock.advance(0.1)
    assert gw.violations() == []  # ten in every second, none refused
    # Ten more at one instant: the eleventh request within a second is refused.
    for _ in range(9):
        api.get(f"/portfolio/{ACCT}/summary")
    assert api.get(f"/portfolio/{ACCT}/summary").status_code == 429
    assert "more than 10 requests within one second" in gw.violations()[0]["reason"]


def test_the_penalty_box_refuses_everything_and_each_retry_extends_it(
    ibkr: tuple[InProcessGateway, httpx.Client],
) -> None:
    gw, api = ibkr
    assert api.get("/sso/validate").status_code == 200
    assert api.get("/sso/validate").status_code == 429  # within the minute
    for _ in range(3):
        gw.clock.advance(300)
        assert api.post("/iserver/auth/status", json={}).status_code == 429
    gw.clock.advance(599)
    assert api.post("/iserver/auth/status", json={}).status_code == 429  # extended
    gw.clock.advance(601)
    assert api.post("/iserver/auth/status", json={}).status_code == 200
    assert [r["status"] for r in gw.requests()] == [200, 429, 429, 429, 429, 429, 200]


def test_a_new_brokerage_session_answers_its_first_order_list_cold(
    ibkr: tuple[InProcessGateway, httpx.Client],
) -> None:
    gw, api = ibkr
    api.get("/iserver/accounts")
    assert api.get("/iserver/account/orders").json() == {"orders": [], "snapshot": False}
    gw.clock.advance(5)
    assert api.get("/iserver/account/orders").json()["snapshot"] is True
    # Every new brokerage session starts cold again: a login, or ssodh/init.
    gw.set_auth(logged_in=False)
    gw.set_auth(logged_in=True)
    gw.clock.advance(5)
    api.get("/iserver/accounts")
    assert api.get("/iserver/account/orders").json()["snapshot"] is False


def test_ssodh_init_takes_seconds_to_bring_the_brokerage_session_up(
    ibkr: tuple[InProcessGateway, httpx.Client],
) -> None:
    gw, api = ibkr
    gw.set_auth(authenticated=False)
    answer = api.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert answer.json()["authenticated"] is False  # answered at once, not up yet
    assert api.get("/iserver/accounts").json()["error"] == "Bad Request: no bridge"
    gw.clock.advance(2.9)
    assert api.post("/iserver/auth/status", json={}).json()["authenticated"] is False
    gw.clock.advance(0.2)
    assert api.post("/iserver/auth/status", json={}).json()["authenticated"] is True
    assert api.get("/iserver/accounts").status_code == 200


def test_an_idle_brokerage_session_drops_to_401_while_sso_lives(
    ibkr: tuple[InProcessGateway, httpx.Client],
) -> None:
    gw, api = ibkr
    api.get("/iserver/accounts")
    gw.clock.advance(299)
    assert api.post("/tickle", json={}).status_code == 200  # a tickle keeps it alive
    gw.clock.advance(301)
    dropped = api.get("/iserver/accounts")
    assert (dropped.status_code, dropped.text) == (401, "access denied")
    status = api.post("/iserver/auth/status", json={}).json()
    assert (status["connected"], status["authenticated"]) == (True, False)  # SSO alive
    assert api.post("/iserver/auth/ssodh/init", json={"publish": True}).status_code == 200
    gw.clock.advance(3)
    assert api.get("/iserver/accounts").status_code == 200


@BOTH
def test_reset_forgets_everything(gw: Driver, ready: httpx.Client) -> None:
    place(ready, order(cOID="r1"))
    gw.set_auth(authenticated=False)
    gw.reset()
    assert gw.orders() == [] and gw.requests() == []
    assert ready.get("/iserver/accounts").status_code == 200
    assert place(ready, order(cOID="r1"))[0]["order_status"] == "PreSubmitted"


# ----- the control API ----------------------------------------------------------------------------


@pytest.mark.slow
@BOTH
def test_control_calls_are_neither_recorded_nor_faulted(gw: Driver, api: httpx.Client) -> None:
    gw.fault("*", "/requests", "drop")  # a path of the API, not of the control calls
    root = gw.base_url.removesuffix("/v1/api")
    assert api.get(f"{root}/_standin/requests").json() == []
    assert api.post(f"{root}/_standin/questions", json={"message_ids": []}).json() == {"ok": True}
    assert api.get(f"{root}/_standin/nothing").status_code == 404
    assert gw.requests() == []
    with pytest.raises(AssertionError, match="kind must be one of"):
        gw.fault("GET", "/tickle", "explode")
    assert api.get(f"{root}/elsewhere").json() == {"error": "not found"}
    assert api.request("PATCH", "/tickle", json={}).status_code == 501
    assert gw.requests() == []  # none of that reached the API
