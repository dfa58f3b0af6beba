"""``tradepipe auth …``: the OAuth tokens of the Web API adapter (``[brokers.web_api]``).

* ``login`` — the third-party OAuth 1.0a flow: the person approves tradepipe
  at IBKR in a browser; the access token is kept in the token file (0600).
* ``status`` — method, where the access token comes from, whether the live
  session (or bearer) token is valid and until when. Never a token.
* ``refresh`` — a new live session (or bearer) token now, checked.
* ``logout`` — ends the IBKR session and forgets every token kept.
"""

from __future__ import annotations

import datetime as dt
import time
import webbrowser
from typing import Any

import click
from tradepipe.brokers.ibkr.oauth_login import login as oauth_login
from tradepipe.brokers.ibkr.web_api import LOGIN_SECTION, WebApiOAuthBroker
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import console, print_json, table
from tradepipe.errors import BrokerError, ConfigError
from tradepipe.pipeline import make_component


def _broker(app: AppContext) -> WebApiOAuthBroker:
    app.setup_logging()
    broker = make_component(app.host, app.settings, "broker", "web_api")
    assert isinstance(broker, WebApiOAuthBroker)
    return broker


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return value


def _status(broker: WebApiOAuthBroker) -> dict[str, Any]:
    return {k: _plain(v) for k, v in broker.token_status().items()}


def _pairs(title: str, data: dict[str, Any]) -> None:
    def cell(v: Any) -> str:
        return "yes" if v is True else "no" if v is False else "" if v is None else str(v)

    console().print(table(title, ["", ""], [(k, cell(v)) for k, v in data.items()]))


@click.group("auth")
def auth() -> None:
    """OAuth tokens of the IBKR Web API adapter ([brokers.web_api])."""


@auth.command("login")
@click.option("--oob", is_flag=True, help="No callback: paste the verifier IBKR shows.")
@click.option("--no-browser", is_flag=True, help="Print the URL instead of opening a browser.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Callback port (0: any).")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, help="Seconds to wait.")
@pass_app
def login(app: AppContext, oob: bool, no_browser: bool, port: int, timeout: float) -> None:
    """Authorize tradepipe at IBKR (third-party OAuth 1.0a) and keep the access token.

    For consumers IBKR approved as third parties; first-party users copy their
    access token from IBKR's self-service portal into the settings instead.
    """
    broker = _broker(app)
    if broker.settings.auth != "oauth1":
        raise ConfigError(
            "tradepipe auth login is OAuth 1.0a's third-party flow; [brokers.web_api] "
            "auth = 'oauth2' needs no login",
            key="brokers.web_api.auth",
        )
    client = broker.token_client()
    try:
        token = oauth_login(
            client,
            broker.consumer,
            oob=oob,
            port=port,
            timeout=timeout,
            authorize_base=broker.settings.authorize_url,
            show=lambda text: click.echo(text, err=True),
            open_browser=None if no_browser else webbrowser.open,
            ask_verifier=lambda: str(click.prompt("verifier", hide_input=True, err=True)),
        )
    finally:
        client.http.close()
    broker.store.put(
        LOGIN_SECTION,
        {
            "for": broker.login_fingerprint(),
            "access_token": token.token,
            "access_token_secret": token.secret,
            "is_paper": token.is_paper,
            "obtained_at": time.time(),
        },
    )
    kind = {True: "a paper", False: "a live", None: "an"}[token.is_paper]
    click.echo(
        f"authorized: {kind} IBKR login; access token kept in {broker.store.path or 'memory'}"
    )
    if broker.access_token_source() != "login":
        click.echo(
            "note: access_token in [brokers.web_api] takes precedence over this login", err=True
        )


@auth.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Which OAuth method, whether its token is valid, and until when (no secrets)."""
    data = _status(_broker(app))
    if as_json:
        print_json(data)
    else:
        _pairs("OAuth", data)


@auth.command("refresh")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def refresh(app: AppContext, as_json: bool) -> None:
    """Obtain a new live session (or bearer) token now and check it."""
    broker = _broker(app)
    try:
        broker.authenticator.renew(broker.client)
    finally:
        broker.disconnect()
    data = _status(broker)
    if as_json:
        print_json(data)
    else:
        click.echo(f"refreshed: valid until {data['expires_at']}")


@auth.command("logout")
@pass_app
def logout(app: AppContext) -> None:
    """End the IBKR session (POST /logout) and forget every token kept."""
    broker = _broker(app)
    ended = "no IBKR session was ended"
    try:
        if broker.token_status()["valid"]:
            broker.authenticator.open(broker.client)
            broker.client.post("/logout")
            ended = "IBKR session ended"
    except (BrokerError, ConfigError) as exc:
        ended = f"could not end the IBKR session ({exc})"
    finally:
        broker.disconnect()
    removed = broker.store.clear()
    kept = f"tokens deleted from {broker.store.path}" if removed else "no tokens were kept"
    click.echo(f"logged out: {ended}; {kept}")
