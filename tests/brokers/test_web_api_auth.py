"""``tradepipe auth …``: the third-party browser flow, token status, refresh and logout.

The OAuth stand-in runs in this process on a virtual clock (``inprocess_oauth_gateway``), with
the adapter's own pacer waiting on it. The person's browser is a function that follows IBKR's
redirect with httpx: IBKR's authorization page is the stand-in's ``/authorize`` (reached
through its transport), which approves at once; the callback it redirects to is the adapter's
own server on 127.0.0.1.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from oauth_fixtures import ACCESS_TOKEN, InProcessOAuthGateway, write_settings
from tradepipe.brokers.ibkr import web_api_cli
from tradepipe.brokers.ibkr.authfile import AuthFile
from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker
from tradepipe.cli.testing import invoke


@pytest.fixture
def gw(inprocess_oauth_gateway: InProcessOAuthGateway) -> InProcessOAuthGateway:
    return inprocess_oauth_gateway


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gw: InProcessOAuthGateway) -> Path:
    """Settings of a third-party consumer: keys, but no access token until a login."""
    table = gw.broker_table(
        auth_file=str(tmp_path / "auth.json"), authorize_url=f"{gw.origin}/authorize"
    )
    del table["access_token"], table["access_token_secret"]
    gw.serve_cli(monkeypatch)
    write_settings(tmp_path, table)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "auth.json"


def browser(gateway: InProcessOAuthGateway, visits: list[str]) -> Callable[[str], bool]:
    """A person who approves at once: follow IBKR's redirect back to the callback."""

    def open_url(url: str) -> bool:
        visits.append(url)
        with gateway.browser(follow_redirects=True) as http:
            answer = http.get(url)
        assert answer.status_code == 200 and "authorized" in answer.text
        return True

    return open_url


@pytest.mark.slow
def test_login_through_the_browser_then_trade_with_the_token(
    third_party: Path, gw: InProcessOAuthGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("broker", "status").exit_code == 2  # no access token yet: a settings problem
    visits: list[str] = []
    monkeypatch.setattr(web_api_cli.webbrowser, "open", browser(gw, visits))
    result = invoke("auth", "login")
    assert result.exit_code == 0, result.output
    assert "authorized: a paper IBKR login" in result.stdout
    assert visits and visits[0].startswith(f"{gw.origin}/authorize?")
    assert stat.S_IMODE(third_party.stat().st_mode) == 0o600
    login = AuthFile(third_party).section("oauth1_login")
    assert login is not None and login["access_token"] != ACCESS_TOKEN
    status = json.loads(invoke("auth", "status", "--json").stdout)
    assert status["access_token"] == "login" and status["paper"] is True
    assert status["valid"] is False and status["expires_at"] is None
    assert status["message"] == "no live session token yet; one is obtained on first use"
    # The token IBKR issued works like a first-party one.
    broker = json.loads(invoke("broker", "status", "--json").stdout)
    assert broker["authenticated"]
    shown = result.output + json.dumps(status) + json.dumps(broker)
    assert login["access_token"] not in shown and login["access_token_secret"] not in shown
    assert gw.oauth()["refused"] == []


@pytest.mark.slow
def test_a_forged_callback_is_refused_and_the_login_times_out(
    third_party: Path, gw: InProcessOAuthGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[int] = []

    def forger(url: str) -> bool:
        with gw.browser() as http:
            callback = http.get(url).headers["location"]  # where IBKR would send the person
        base, _, query = callback.partition("?")
        with httpx.Client() as http:
            answers.append(http.get(f"{base}?oauth_token=wrong&oauth_verifier=x").status_code)
            other_state = base.rsplit("/", 1)[0] + "/guess"
            answers.append(http.get(f"{other_state}?{query}").status_code)
            answers.append(http.get(f"{base}?{query.split('&')[0]}").status_code)  # no verifier
        return True

    monkeypatch.setattr(web_api_cli.webbrowser, "open", forger)
    result = invoke("auth", "login", "--timeout", "1")
    assert answers == [400, 400, 400]
    assert result.exit_code == 1
    assert "no authorization arrived within 1 s" in result.output
    assert AuthFile(third_party).section("oauth1_login") is None


def test_login_out_of_band(
    third_party: Path, gw: InProcessOAuthGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    pasted: list[str] = []

    def person(url: str) -> bool:
        with gw.browser() as http:
            page = http.get(url).text  # IBKR shows the verifier instead of redirecting
        pasted.append(page.removeprefix("verifier="))
        return True

    def prompt(text: str, **kw: Any) -> str:
        assert kw.get("hide_input") is True
        return pasted[0]

    monkeypatch.setattr(web_api_cli.webbrowser, "open", person)
    monkeypatch.setattr(click, "prompt", prompt)
    result = invoke("auth", "login", "--oob")
    assert result.exit_code == 0, result.output
    assert AuthFile(third_party).section("oauth1_login") is not None


@pytest.mark.slow
def test_refresh_status_and_logout(third_party: Path, gw: InProcessOAuthGateway) -> None:
    table = gw.broker_table(auth_file=str(third_party))
    write_settings(third_party.parent, table)
    refreshed = invoke("auth", "refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert refreshed.stdout.startswith("refreshed: valid until 20")
    status = json.loads(invoke("auth", "status", "--json").stdout)
    assert status["valid"] and status["message"].startswith("live session token valid until")
    assert status["access_token"] == "settings" and status["realm"] == "limited_poa"
    shown = invoke("auth", "status")
    assert shown.exit_code == 0 and "live session token valid until" in shown.stdout
    assert gw.oauth()["lst"] == 1
    for token in gw.oauth()["issued"]:
        assert token not in shown.stdout and token not in json.dumps(status)
    result = invoke("auth", "logout")
    assert result.exit_code == 0, result.output
    assert "IBKR session ended" in result.stdout and "tokens deleted" in result.stdout
    assert [r["path"] for r in gw.requests()][-1] == "/logout"
    assert not third_party.exists()
    assert json.loads(invoke("auth", "status", "--json").stdout)["expires_at"] is None
    again = invoke("auth", "logout")
    assert "no IBKR session was ended; no tokens were kept" in again.stdout


def test_login_is_for_oauth1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gw: InProcessOAuthGateway
) -> None:
    gw.serve_cli(monkeypatch)
    write_settings(tmp_path, gw.oauth2_table(auth_file=str(tmp_path / "a.json")))
    monkeypatch.chdir(tmp_path)
    result = invoke("auth", "login")
    assert result.exit_code == 2 and "needs no login" in result.output


def test_testcons_uses_the_test_realm(gw: InProcessOAuthGateway) -> None:
    table = gw.broker_table(consumer_key="TESTCONS", auth_file="")
    broker = WebApiOAuthBroker(WebApiOAuthBroker.Settings.model_validate(table))
    assert broker.realm == "test_realm"
    explicit = {**table, "realm": "limited_poa"}
    assert WebApiOAuthBroker(WebApiOAuthBroker.Settings.model_validate(explicit)).realm == (
        "limited_poa"
    )
