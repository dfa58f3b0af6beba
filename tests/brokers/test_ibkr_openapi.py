"""Every request body the IBKR adapter sends, checked against IBKR's own OpenAPI document.

The document is ``../shared/reference/ibkr-openapi.json`` (IBKR's "IB REST API"
2.20.0). Where IBKR's documented practice differs from it, the practice wins
and the difference is handled here, named:

* order placement and what-if: the spec models the body as a bare array of
  tickets; the documentation's bracket examples and every client library send
  ``{"orders": [...]}``. The tickets inside are checked against the spec.
* combos: the spec makes ``conid`` required, while the documentation says a
  combo is addressed by ``conidex`` alone (sending both is refused).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx
from ibkr_fakes import BASE, FakeTime
from tradepipe.brokers.ibkr.client_portal import ClientPortalBroker
from tradepipe.instruments import Combo, Leg, Option
from tradepipe.orders import OrderIntent

SPEC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ibkr-openapi.json"
ACCT = "DU1234567"
NOW = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
EXP = dt.date(2026, 12, 18)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC.exists():
        if os.environ.get("CI"):
            pytest.fail(f"IBKR's OpenAPI document is missing at {SPEC}")
        pytest.skip(f"IBKR's OpenAPI document is not beside the repository ({SPEC})")
    return json.loads(SPEC.read_text())


def body_schemas(spec: dict[str, Any]) -> list[tuple[str, re.Pattern[str], dict[str, Any]]]:
    out = []
    for template, item in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        for method, op in item.items():
            schema = (
                (op.get("requestBody") or {}).get("content", {}).get("application/json", {})
            ).get("schema")
            if schema:
                # Refs point into the document's components; carry them along.
                out.append((method.upper(), pattern, {**schema, "components": spec["components"]}))
    return out


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


def test_request_bodies_match_ibkrs_openapi(spec: dict[str, Any]) -> None:
    schemas = body_schemas(spec)
    call = Option(underlying="AAPL", expiry=EXP, strike=200, right="C")
    call2 = Option(underlying="AAPL", expiry=EXP, strike=210, right="C")
    combo = Combo(legs=(Leg(instrument=call, ratio=1), Leg(instrument=call2, ratio=-1)))
    with respx.mock(base_url=BASE, assert_all_called=False) as r:
        r.post("/iserver/auth/status").respond(
            200, json={"authenticated": False, "connected": True}
        )
        r.post("/iserver/auth/ssodh/init").respond(200, json={})
        r.get("/iserver/accounts").respond(200, json={"accounts": [ACCT], "isPaper": True})
        r.get("/sso/validate").respond(200, json={"RESULT": True, "LOGIN_TYPE": 2})
        r.post("/iserver/questions/suppress").respond(200, json={"status": "submitted"})
        r.get("/trsrv/stocks").respond(
            200, json={"AAPL": [{"assetClass": "STK", "contracts": [{"conid": 1, "isUS": True}]}]}
        )
        r.get("/iserver/secdef/search").respond(200, json=[{"conid": "1", "symbol": "AAPL"}])
        r.get("/iserver/secdef/info").mock(
            side_effect=lambda req: httpx.Response(
                200,
                json=[
                    {
                        "conid": int(float(req.url.params["strike"])),
                        "maturityDate": "20261218",
                        "right": "C",
                        "multiplier": "100",
                    }
                ],
            )
        )
        place = r.post(f"/iserver/account/{ACCT}/orders").mock(
            side_effect=[
                httpx.Response(200, json=[{"id": "q1", "message": ["?"], "messageIds": ["o163"]}]),
                *[httpx.Response(200, json=[{"order_id": str(i)}]) for i in range(10)],
            ]
        )
        r.post("/iserver/reply/q1").respond(200, json=[{"order_id": "99"}])
        r.post(f"/iserver/account/{ACCT}/order/99").respond(200, json=[{"order_id": "99"}])
        r.get("/iserver/marketdata/snapshot").respond(200, json=[{"conid": 1, "31": "100"}])
        r.post(f"/iserver/account/{ACCT}/orders/whatif").respond(200, json={"amount": {}})
        r.post("/iserver/scanner/run").respond(200, json={"contracts": []})
        r.post("/iserver/account").respond(200, json={"set": True})

        t = FakeTime()
        broker = ClientPortalBroker(
            ClientPortalBroker.Settings(
                base_url=BASE, keepalive_seconds=0, confirm=["o163"], suppress=["o354"]
            )
        )
        broker.monotonic, broker.sleep = t.monotonic, t.sleep
        broker.use_http(httpx.Client())
        r.post("/iserver/auth/status").mock(
            side_effect=[
                httpx.Response(200, json={"authenticated": False, "connected": True}),
                *[httpx.Response(200, json={"authenticated": True, "connected": True})] * 20,
            ]
        )
        broker.connect()
        broker.place(intent())  # question, reply, accepted as 99
        broker.place(
            intent(
                client_order_id="tp-2",
                order_type="stop_limit",
                limit_price=Decimal("99.5"),
                stop_price=Decimal(100),
                tif="gtc",
            )
        )
        broker.place(
            intent(client_order_id="tp-3", take_profit=Decimal(120), stop_loss=Decimal(90))
        )
        broker.place(
            intent(
                client_order_id="tp-4",
                symbol=call.ticker,
                instrument=call,
                order_type="limit",
                limit_price=Decimal("4.1"),
            )
        )
        broker.place(
            intent(
                client_order_id="tp-5",
                symbol=combo.ticker,
                instrument=combo,
                order_type="limit",
                limit_price=Decimal("3.25"),
            )
        )
        broker.modify("tp-0000000000000000000a1", quantity=Decimal(5))
        broker.preview(intent(client_order_id="tp-6"))
        # A string: the spec's oneOf lists both integer and number, so no integer
        # can satisfy exactly one of them.
        broker.scan(type="TOP_PERC_GAIN", filters={"priceAbove": "5"})
        broker.disconnect()
        sent = [c.request for c in r.calls if c.request.content]
    assert place.call_count == 5

    checked = 0
    for request in sent:
        path = request.url.path.removeprefix("/v1/api")
        body = json.loads(request.content)
        matches = [s for m, p, s in schemas if m == request.method and p.match(path)]
        if not matches:
            continue
        schema = matches[0]
        if path.endswith("/orders") or path.endswith("/whatif"):
            # The documented wrapper around the spec's bare array.
            assert set(body) == {"orders"}
            body = body["orders"]
            if any("conidex" in t for t in body):
                # Combos: conidex instead of the conid the spec requires.
                assert all("conid" not in t for t in body)
                body = [{**t, "conid": 0} for t in body]
        jsonschema.validate(body, schema)
        checked += 1
    checked_paths = {r.url.path for r in sent}
    assert checked == 11, checked
    for needed in (
        "/orders",
        "/reply/q1",
        "/order/99",
        "/ssodh/init",
        "/suppress",
        "/whatif",
        "/scanner/run",
    ):
        assert any(p.endswith(needed) for p in checked_paths), needed
