from __future__ import annotations

import json

import httpx
import pytest
import respx
from ibkr_fakes import BASE, FakeTime, make_client
from tradepipe.brokers.ibkr.client import describe
from tradepipe.errors import BrokerAuthError, BrokerError, BrokerUnavailableError


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


NOT_SENT = {
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
    httpx.LocalProtocolError,
}


@pytest.mark.parametrize(
    "error", sorted(_all_subclasses(httpx.RequestError), key=lambda c: c.__name__)
)
@respx.mock
def test_every_httpx_request_error_becomes_a_broker_error(error: type[Exception]) -> None:
    respx.post(f"{BASE}/iserver/auth/status").mock(side_effect=error("boom"))
    client = make_client()
    with pytest.raises(BrokerUnavailableError) as caught:
        client.post("/iserver/auth/status")
    assert not isinstance(caught.value, httpx.HTTPError)
    assert isinstance(caught.value.__cause__, error)
    # Only errors raised before the request can have left say "not sent".
    assert caught.value.context["maybe_sent"] is (error not in NOT_SENT)
    assert "client_portal: POST /iserver/auth/status" in str(caught.value)


@respx.mock
def test_timeout_and_refused_connection_messages() -> None:
    respx.get(f"{BASE}/a").mock(side_effect=httpx.ReadTimeout("slow"))
    respx.get(f"{BASE}/b").mock(side_effect=httpx.ConnectError("refused"))
    respx.get(f"{BASE}/c").mock(
        side_effect=httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    )
    client = make_client()
    with pytest.raises(BrokerUnavailableError, match="timed out"):
        client.get("/a")
    with pytest.raises(BrokerUnavailableError, match="is the gateway running at https://gw.test"):
        client.get("/b")
    with pytest.raises(BrokerUnavailableError, match="set `verify` to the gateway's certificate"):
        client.get("/c")


@respx.mock
def test_401_is_an_auth_error_with_the_login_hint() -> None:
    respx.get(f"{BASE}/iserver/accounts").mock(
        return_value=httpx.Response(401, text="access denied")
    )
    with pytest.raises(BrokerAuthError, match="log in at https://localhost:5000") as err:
        make_client().get("/iserver/accounts")
    assert err.value.context["reason"] == "unauthenticated"


@respx.mock
def test_429_starts_the_penalty_and_later_requests_never_leave() -> None:
    t = FakeTime()
    route = respx.get(f"{BASE}/iserver/accounts").mock(return_value=httpx.Response(429))
    client = make_client(t, penalty_seconds=900)
    with pytest.raises(BrokerUnavailableError, match="rate limit"):
        client.get("/iserver/accounts")
    for _ in range(3):
        with pytest.raises(BrokerUnavailableError, match="paused"):
            client.get("/iserver/accounts")
    assert route.call_count == 1
    t.now += 900
    route.mock(return_value=httpx.Response(200, json={"accounts": []}))
    assert client.get("/iserver/accounts") == {"accounts": []}


@respx.mock
def test_no_bridge_and_accounts_first_are_session_problems() -> None:
    respx.get(f"{BASE}/x").mock(
        return_value=httpx.Response(
            400, json={"error": "Bad Request: no bridge", "statusCode": 400}
        )
    )
    respx.get(f"{BASE}/y").mock(
        return_value=httpx.Response(400, json={"error": "Please query /accounts first"})
    )
    client = make_client()
    with pytest.raises(BrokerAuthError, match="brokerage session is not open") as err:
        client.get("/x")
    assert err.value.context["reason"] == "no_bridge"
    with pytest.raises(BrokerAuthError) as err:
        client.get("/y")
    assert err.value.context["reason"] == "accounts_first"


@respx.mock
def test_server_errors_and_client_errors() -> None:
    respx.get(f"{BASE}/five").mock(return_value=httpx.Response(503, json={"error": "busy"}))
    respx.get(f"{BASE}/four").mock(
        return_value=httpx.Response(400, json={"error": "OrderID 1 doesn't exist"})
    )
    client = make_client()
    with pytest.raises(BrokerUnavailableError, match="HTTP 503: busy") as err:
        client.get("/five")
    assert err.value.context["maybe_sent"] is True
    with pytest.raises(BrokerError, match="HTTP 400: OrderID 1 doesn't exist") as err4:
        client.get("/four")
    assert not isinstance(err4.value, BrokerUnavailableError)


@respx.mock
def test_error_bodies_on_200() -> None:
    respx.get(f"{BASE}/e").mock(return_value=httpx.Response(200, json={"error": "nope"}))
    client = make_client()
    with pytest.raises(BrokerError, match="nope"):
        client.get("/e")
    assert client.get("/e", error_ok=True) == {"error": "nope"}


@respx.mock
def test_unreadable_and_empty_bodies() -> None:
    respx.get(f"{BASE}/html").mock(return_value=httpx.Response(200, text="<html>login</html>"))
    respx.get(f"{BASE}/empty").mock(return_value=httpx.Response(200))
    client = make_client()
    with pytest.raises(BrokerUnavailableError, match="not JSON"):
        client.get("/html")
    assert client.get("/empty") is None


@respx.mock
def test_post_without_body_sends_an_empty_object() -> None:
    # The gateway answers 411 to a POST without a body.
    route = respx.post(f"{BASE}/tickle").mock(return_value=httpx.Response(200, json={}))
    make_client().post("/tickle")
    assert json.loads(route.calls[0].request.content) == {}


def test_describe_explains_known_ibkr_errors() -> None:
    assert "already placed" in describe("Local order ID=tp-1 is already registered")
    assert describe("something new") == "something new"
