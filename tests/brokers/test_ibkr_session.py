from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
import respx
from ibkr_fakes import BASE, FakeTime, make_client
from tradepipe.brokers.ibkr.client_portal import GatewayLogin
from tradepipe.brokers.ibkr.pacing import MemoryState
from tradepipe.brokers.ibkr.session import Session, is_paper_account
from tradepipe.errors import BrokerAuthError, ConfigError

HEALTHY = {"authenticated": True, "connected": True, "competing": False}


def _session(t: FakeTime | None = None, **kw: object) -> Session:
    t = t or FakeTime()
    return Session(
        make_client(t), GatewayLogin("https://localhost:5000"), monotonic=t.monotonic, **kw
    )


def _accounts(*ids: str, paper: bool | None = True, selected: str | None = None) -> dict:
    body: dict = {"accounts": list(ids), "selectedAccount": selected or ids[0]}
    if paper is not None:
        body["isPaper"] = paper
    return body


@pytest.fixture
def gw() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/iserver/auth/status", name="status").mock(
            return_value=httpx.Response(200, json=HEALTHY)
        )
        router.get("/iserver/accounts", name="accounts").mock(
            return_value=httpx.Response(200, json=_accounts("DU1234567"))
        )
        router.post("/iserver/auth/ssodh/init", name="init").mock(
            return_value=httpx.Response(200, json=HEALTHY)
        )
        router.post("/iserver/questions/suppress", name="suppress").mock(
            return_value=httpx.Response(200, json={"status": "submitted"})
        )
        router.post("/tickle", name="tickle").mock(
            return_value=httpx.Response(
                200, json={"session": "x", "iserver": {"authStatus": HEALTHY}}
            )
        )
        router.get("/sso/validate", name="validate").mock(
            return_value=httpx.Response(200, json={"RESULT": True, "LOGIN_TYPE": 2})
        )
        yield router


def test_healthy_session_reads_accounts(gw: respx.MockRouter) -> None:
    info = _session().establish()
    assert (info.account_id, info.is_paper) == ("DU1234567", True)
    assert not gw["init"].called


def test_connected_but_not_authenticated_opens_the_brokerage_session(gw: respx.MockRouter) -> None:
    gw["status"].side_effect = [
        httpx.Response(200, json={"authenticated": False, "connected": True}),
        httpx.Response(200, json=HEALTHY),
    ]
    session = _session()
    session.establish()
    assert json.loads(gw["init"].calls[0].request.content) == {"publish": True, "compete": False}
    assert session.ready


def test_competing_session_says_what_to_do(gw: respx.MockRouter) -> None:
    competing = {"authenticated": False, "connected": True, "competing": True}
    gw["status"].mock(return_value=httpx.Response(200, json=competing))
    gw["init"].mock(return_value=httpx.Response(200, json=competing))
    with pytest.raises(BrokerAuthError, match="another login with this username .* compete = true"):
        _session().establish()
    assert not gw["accounts"].called


def test_compete_true_takes_the_session_over(gw: respx.MockRouter) -> None:
    gw["status"].side_effect = [
        httpx.Response(200, json={"authenticated": False, "connected": True, "competing": True}),
        httpx.Response(200, json=HEALTHY),
    ]
    _session(compete=True).establish()
    assert json.loads(gw["init"].calls[0].request.content)["compete"] is True


def test_logged_out_gateway_tells_where_to_log_in(gw: respx.MockRouter) -> None:
    gw["status"].mock(
        return_value=httpx.Response(200, json={"authenticated": False, "connected": False})
    )
    with pytest.raises(
        BrokerAuthError, match="not connected to IBKR.*log in at https://localhost:5000"
    ):
        _session().establish()
    gw["status"].mock(return_value=httpx.Response(401, text="access denied"))
    with pytest.raises(BrokerAuthError, match="log in at https://localhost:5000"):
        _session().establish()


def test_account_selection(gw: respx.MockRouter) -> None:
    gw["accounts"].mock(return_value=httpx.Response(200, json=_accounts("DU111111", "DU222222")))
    with pytest.raises(ConfigError, match="has 2 accounts .*set account_id"):
        _session().establish()
    with pytest.raises(
        ConfigError, match=r"account DU\*\*\*9999 is not an account of this login"
    ) as err:
        _session(account_id="DU9999999").establish()
    assert "DU9999999" not in str(err.value)
    switch = gw.post("/iserver/account").mock(return_value=httpx.Response(200, json={"set": True}))
    info = _session(account_id="DU222222").establish()
    assert info.account_id == "DU222222"
    assert json.loads(switch.calls[0].request.content) == {"acctId": "DU222222"}


@pytest.mark.parametrize(
    ("account", "flag", "paper"),
    [
        ("DU1234567", True, True),
        ("DU1234567", None, True),
        ("U1234567", None, False),
        ("U1234567", True, False),
        ("DU1234567", False, False),
    ],
)
def test_paper_only_when_nothing_says_live(account: str, flag: bool | None, paper: bool) -> None:
    assert is_paper_account(account, flag) is paper


def test_suppression_is_resent_after_every_login(gw: respx.MockRouter) -> None:
    session = _session(suppress=("o163", "o354"))
    session.establish()
    session.establish()
    bodies = [json.loads(c.request.content) for c in gw["suppress"].calls]
    assert bodies == [{"messageIds": ["o163", "o354"]}] * 2


def test_read_repairs_a_dropped_brokerage_session_and_retries_once(gw: respx.MockRouter) -> None:
    session = _session()
    session.establish()
    calls = []

    def read() -> str:
        calls.append(1)
        if len(calls) == 1:
            return session.client.get("/iserver/x")
        return "ok"

    gw.get("/iserver/x").mock(
        return_value=httpx.Response(400, json={"error": "Bad Request: no bridge"})
    )
    assert session.read(read) == "ok"
    assert len(calls) == 2
    assert gw["accounts"].call_count == 2  # re-established


def test_read_gives_up_after_one_retry(gw: respx.MockRouter) -> None:
    session = _session()
    gw.get("/iserver/x").mock(return_value=httpx.Response(400, json={"error": "no bridge"}))
    with pytest.raises(BrokerAuthError):
        session.read(lambda: session.client.get("/iserver/x"))
    assert gw.routes["status"].call_count == 2


def test_accounts_first_is_repaired_by_reading_accounts(gw: respx.MockRouter) -> None:
    session = _session()
    session.establish()
    gw.get("/iserver/y").mock(
        side_effect=[
            httpx.Response(400, json={"error": "Please query /accounts first"}),
            httpx.Response(200, json={"fine": True}),
        ]
    )
    assert session.read(lambda: session.client.get("/iserver/y")) == {"fine": True}
    assert not gw["init"].called


def test_a_401_with_the_sso_session_alive_reopens_the_brokerage_session(
    gw: respx.MockRouter,
) -> None:
    t = FakeTime()
    session = _session(t, sleep=t.sleep)
    session.establish()
    gw.get("/iserver/z").mock(
        side_effect=[httpx.Response(401, text="access denied"), httpx.Response(200, json=[1])]
    )
    dropped = {"authenticated": False, "connected": True, "competing": False}
    # IBKR answers the init at once and authenticates a few seconds later.
    gw["status"].side_effect = [
        httpx.Response(200, json=dropped),
        httpx.Response(200, json=dropped),
        httpx.Response(200, json=dropped),
        httpx.Response(200, json=HEALTHY),
    ]
    assert session.read(lambda: session.client.get("/iserver/z")) == [1]
    assert gw["init"].call_count == 1
    assert gw["status"].call_count == 5  # the first establish, then four after the 401
    assert gw["accounts"].call_count == 2  # read again in the new brokerage session
    assert session.ready


def test_a_401_with_the_sso_session_gone_says_log_in(gw: respx.MockRouter) -> None:
    session = _session()
    session.establish()
    gw.get("/iserver/z").mock(return_value=httpx.Response(401))
    gw["status"].mock(
        return_value=httpx.Response(
            200, json={"authenticated": False, "connected": False, "competing": False}
        )
    )
    with pytest.raises(BrokerAuthError, match="not connected to IBKR; log in at") as err:
        session.read(lambda: session.client.get("/iserver/z"))
    assert err.value.context["reason"] == "login"
    assert not gw["init"].called  # nothing to reopen without an SSO session
    assert not session.ready
    # A status that is itself refused means the same.
    gw["status"].mock(return_value=httpx.Response(401, text="access denied"))
    with pytest.raises(BrokerAuthError, match="gateway is not logged in; log in at") as err:
        session.establish()
    assert err.value.context["reason"] == "login"


def test_the_wait_for_the_brokerage_session_is_bounded(gw: respx.MockRouter) -> None:
    t = FakeTime()
    session = _session(t, sleep=t.sleep, init_wait_seconds=10)
    gw["status"].mock(
        return_value=httpx.Response(
            200, json={"authenticated": False, "connected": True, "competing": False}
        )
    )
    with pytest.raises(BrokerAuthError, match="brokerage session could not be opened") as err:
        session.establish()
    assert err.value.context["reason"] == "session"
    assert gw["init"].call_count == 1
    assert sum(t.slept) == pytest.approx(10, abs=0.5)


def test_wait_for_login_waits_for_a_person_then_goes_on(gw: respx.MockRouter) -> None:
    t = FakeTime()
    session = _session(t, sleep=t.sleep)
    gone = httpx.Response(200, json={"authenticated": False, "connected": False})
    gw["status"].side_effect = [gone, gone, gone, httpx.Response(200, json=HEALTHY)]
    info = session.wait_for_login(timeout=600, every=30)
    assert info.account_id == "DU1234567"
    assert t.slept.count(30) == 3
    gw["status"].side_effect = None
    gw["status"].mock(return_value=gone)
    session._ready = False
    with pytest.raises(BrokerAuthError, match="log in at"):
        session.wait_for_login(timeout=100, every=30)


def test_validate_is_asked_once_a_minute_across_sessions(gw: respx.MockRouter) -> None:
    t = FakeTime()
    shared = MemoryState()  # as the pacing file shares it between processes

    def new_session() -> Session:
        client = make_client(t)
        client.pacer.state = shared
        return Session(client, GatewayLogin("https://x"), monotonic=t.monotonic)

    first = new_session()
    first.establish()
    second = new_session()
    second.establish()
    assert gw["validate"].call_count == 1  # the second "command" did not ask again
    assert second.login_type == 2  # it knows the answer the first one got
    t.now += 70
    third = new_session()
    third.establish()
    assert gw["validate"].call_count == 2


def test_keepalive_tickles_validates_at_its_own_pace_and_repairs(gw: respx.MockRouter) -> None:
    t = FakeTime()
    session = _session(t, validate_seconds=300)
    session.establish()
    session.keepalive()
    t.now += 60
    session.keepalive()
    assert gw["tickle"].call_count == 2
    assert gw["validate"].call_count == 1
    assert session.login_type == 2
    t.now += 300
    gw["tickle"].mock(
        return_value=httpx.Response(
            200, json={"iserver": {"authStatus": {"authenticated": False, "connected": True}}}
        )
    )
    gw["status"].side_effect = [
        httpx.Response(200, json={"authenticated": False, "connected": True}),
        httpx.Response(200, json=HEALTHY),
    ]
    session.keepalive()
    assert gw["validate"].call_count == 2
    assert gw["init"].called
    assert session.ready


def test_keepalive_failure_stops_orders_and_is_logged(
    gw: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    session = _session()
    session.establish()
    # The gateway's login is gone: the tickle and the status are refused.
    gw["tickle"].mock(return_value=httpx.Response(401))
    gw["status"].mock(return_value=httpx.Response(401))
    with caplog.at_level(logging.ERROR, "tradepipe.brokers.ibkr"):
        session.keepalive()  # never raises from the thread
    assert not session.ready
    assert "orders stopped" in caplog.text
    # The broker can tell a live run so, before anything else fails.
    assert isinstance(session.lost, BrokerAuthError)
    assert "log in at" in str(session.lost)
    with pytest.raises(
        BrokerAuthError, match="not sending orders while the session is not authenticated"
    ):
        session.require_trading()


def test_keepalive_thread_runs_and_stops(gw: respx.MockRouter) -> None:
    session = Session(make_client(), GatewayLogin("https://localhost:5000"), keepalive_seconds=0.02)
    session.establish()
    session.start()
    session.start()  # idempotent
    deadline = time.monotonic() + 5
    while gw["tickle"].call_count < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    session.stop()
    calls = gw["tickle"].call_count
    assert calls >= 2
    time.sleep(0.1)
    assert gw["tickle"].call_count == calls
    session.stop()  # idempotent


class _OAuthLike(GatewayLogin):
    """An authenticator that, like OAuth, leaves opening the brokerage session to us."""

    opens_brokerage_session = True


@pytest.mark.parametrize(
    "before_init",
    [
        httpx.Response(200, json={"authenticated": False, "connected": False}),
        httpx.Response(400, json={"error": "Bad Request: no bridge", "statusCode": 400}),
    ],
)
def test_oauth_sessions_are_opened_with_ssodh_init(
    gw: respx.MockRouter, before_init: httpx.Response
) -> None:
    opened = []

    def status(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=HEALTHY) if opened else before_init

    gw["status"].mock(side_effect=status)
    gw["init"].mock(side_effect=lambda request: opened.append(1) or httpx.Response(200, json={}))
    t = FakeTime()
    session = Session(
        make_client(t), _OAuthLike("https://localhost:5000"), compete=True, monotonic=t.monotonic
    )
    assert session.establish().account_id == "DU1234567"
    assert json.loads(gw["init"].calls[0].request.content) == {"publish": True, "compete": True}


def test_a_gateway_that_is_not_connected_is_not_forced(gw: respx.MockRouter) -> None:
    gw["status"].mock(
        return_value=httpx.Response(200, json={"authenticated": False, "connected": False})
    )
    with pytest.raises(BrokerAuthError, match="log in at"):
        _session().establish()
    assert not gw["init"].called


def test_a_new_login_to_another_account_stops_trading(gw: respx.MockRouter) -> None:
    session = _session()
    session.establish()
    gw["accounts"].respond(200, json=_accounts("U7654321", paper=False))
    with pytest.raises(
        BrokerAuthError, match=r"now trades U\*\*\*4321 \(live\) instead of DU\*\*\*4567"
    ):
        session.establish()
    assert not session.ready
    with pytest.raises(BrokerAuthError, match="not sending orders"):
        session.require_trading()


def test_a_live_login_type_overrides_a_paper_looking_id(gw: respx.MockRouter) -> None:
    gw["accounts"].respond(200, json=_accounts("DU1234567", paper=None))
    gw["validate"].respond(200, json={"RESULT": True, "LOGIN_TYPE": 1})
    assert _session().establish().is_paper is False
