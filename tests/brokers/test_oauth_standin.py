"""The OAuth stand-in itself: its checks, in this process and over TLS, and its clock.

IBKR's OAuth checks are one object (:class:`standin.oauth.OAuthFront`) that the HTTPS server
and the in-process transport both put in front of a stand-in; the tests marked ``BOTH`` run
against each surface, which holds the transport to the server's behaviour. The adapter comes
from ``inprocess_oauth_gateway.broker()``: it signs its requests as it would for IBKR and waits
on the stand-in's virtual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from oauth_fixtures import InProcessOAuthGateway, OAuthControls

#: Run the test against the OAuth stand-in in this process and against one behind TLS.
BOTH = pytest.mark.parametrize("gw", ["inprocess", "tls"], indirect=True)


@pytest.fixture
def gw(request: pytest.FixtureRequest) -> OAuthControls:
    """The OAuth stand-in in this process, or (``BOTH``'s second run) behind TLS."""
    tls = getattr(request, "param", "inprocess") == "tls"
    found: OAuthControls = request.getfixturevalue(
        "oauth_gateway" if tls else "inprocess_oauth_gateway"
    )
    return found


@pytest.fixture
def api(gw: OAuthControls) -> Iterator[httpx.Client]:
    """A client that signs nothing."""
    with gw.client() as client:
        yield client


@BOTH
def test_unsigned_requests_are_refused_and_never_reach_the_gateway(
    gw: OAuthControls, api: httpx.Client
) -> None:
    answer = api.get("/iserver/accounts")
    assert answer.status_code == 401
    assert answer.json() == {"error": "missing OAuth authorization header", "statusCode": 401}
    forged = api.get("/iserver/accounts", headers={"Authorization": 'OAuth realm="x"'})
    assert forged.status_code == 401
    assert forged.json()["error"] == "id: 41, error: invalid consumer"
    bearer = api.get("/portfolio/accounts", headers={"Authorization": "Bearer nope"})
    assert bearer.status_code == 401
    assert gw.requests() == []
    assert gw.oauth() == {
        "lst": 0,
        "refused": [
            "GET /v1/api/iserver/accounts: missing OAuth authorization header",
            "GET /v1/api/iserver/accounts: id: 41, error: invalid consumer",
            "GET /v1/api/portfolio/accounts: invalid or expired bearer token",
        ],
        "checked": 0,
        "issued": [],
    }


@BOTH
def test_gone_answers_410_then_the_checks_resume(gw: OAuthControls, api: httpx.Client) -> None:
    gw.gone(2)
    answers = [api.post("/iserver/auth/status", json={}) for _ in range(3)]
    assert [a.status_code for a in answers] == [410, 410, 401]
    assert answers[0].json() == {"error": "Gone", "statusCode": 410}


@BOTH
def test_the_authorization_page_knows_only_its_request_tokens(
    gw: OAuthControls, api: httpx.Client
) -> None:
    with gw.browser() as browser:
        page = browser.get(f"{gw.origin}/authorize", params={"oauth_token": "nope"})
    assert page.status_code == 400
    assert page.json() == {"error": "unknown request token", "statusCode": 400}
    assert api.get(f"{gw.origin}/elsewhere").status_code == 404  # not IBKR's, not the API


def test_the_adapter_signs_for_the_host_it_addressed(
    inprocess_oauth_gateway: InProcessOAuthGateway,
) -> None:
    gw = inprocess_oauth_gateway
    broker = gw.broker()
    assert broker.connect().authenticated
    assert broker.positions() == []
    state = gw.oauth()
    assert state["lst"] == 1 and state["checked"] == len(gw.requests()) and state["refused"] == []
    # The same request, signed for this stand-in, delivered with the Host header of another.
    auth = broker.make_auth()
    for host, status in (("api.ibkr.com", 401), (None, 200)):
        request = next(auth.auth_flow(httpx.Request("GET", f"{gw.base_url}/iserver/accounts")))
        if host is not None:
            request.headers["Host"] = host
        assert gw.transport.handle_request(request).status_code == status
    assert gw.oauth()["refused"] == ["GET /v1/api/iserver/accounts: invalid signature"]


def test_a_live_session_token_expires_on_the_stand_ins_clock(
    start_inprocess_oauth_gateway: Callable[..., InProcessOAuthGateway],
) -> None:
    gw = start_inprocess_oauth_gateway(lst_lifetime_ms=2 * 3600 * 1000)
    broker = gw.broker(refresh_margin_seconds=60)
    assert broker.positions() == []
    gw.clock.advance(3 * 3600)  # the wall has not moved: the adapter still trusts its token
    assert broker.positions() == []  # IBKR refused it; a new one was derived and the read retried
    state = gw.oauth()
    assert state["lst"] == 2
    assert state["refused"]
    assert {r.split(": ", 1)[1] for r in state["refused"]} == {"live session token expired"}
