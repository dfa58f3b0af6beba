"""Third-party OAuth 1.0a: a person authorizes tradepipe in the browser (reference §3a).

IBKR's counterpart of a "Connect IBKR" button is the three-legged OAuth 1.0a
flow it offers approved third-party vendors:

1. ``POST /oauth/request_token`` signed RSA-SHA256 with the consumer's
   signature key, with ``oauth_callback`` (a URL, or ``oob``) → a temporary
   request token;
2. the person opens ``https://interactivebrokers.com/authorize?oauth_token=…``,
   logs in and approves; IBKR redirects the browser to the callback with
   ``oauth_token`` and ``oauth_verifier`` (or, with ``oob``, shows the verifier
   to paste);
3. ``POST /oauth/access_token`` with the request token and the verifier → the
   permanent access token, its secret and ``is_paper``. IBKR documents the
   secret only as "base64"; it is taken to be encrypted to the consumer's public
   encryption key like a first-party one (what the consumer registers that key
   for), and is used exactly the same way.

The callback is a one-shot HTTP server on 127.0.0.1 on a free port. Its path
carries a random ``state`` and it accepts only the request token it is waiting
for, so another page or process cannot feed it a verifier. IBKR lists a
registered callback URL among a consumer's details; if IBKR insists on it,
fix the port (``--port``) to match it or use ``oob``. Request tokens are not
secrets worth keeping (short-lived, single use, useless without the signature
key); the access token and secret are never printed.
"""

from __future__ import annotations

import html
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from tradepipe.brokers.ibkr import oauth1
from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.brokers.ibkr.oauth import token_call, wall_time
from tradepipe.errors import BrokerAuthError
from tradepipe.logs import add_secrets

REQUEST_TOKEN_PATH = "/oauth/request_token"
ACCESS_TOKEN_PATH = "/oauth/access_token"
AUTHORIZE_URL = "https://interactivebrokers.com/authorize"
OOB = "oob"


@dataclass(frozen=True)
class Consumer:
    """A third-party consumer's key and signing key; ``repr`` shows no secret."""

    consumer_key: str = field(repr=False)
    signature_key: rsa.RSAPrivateKey = field(repr=False)
    realm: str = "limited_poa"


@dataclass(frozen=True)
class AccessToken:
    """What ``/oauth/access_token`` answers; ``repr`` shows no secret."""

    token: str = field(repr=False)
    secret: str = field(repr=False)
    is_paper: bool | None


def _signed(
    client: WebApiClient,
    consumer: Consumer,
    path: str,
    what: str,
    now: Callable[[], float],
    token: str | None = None,
    **extra: str,
) -> dict[str, Any]:
    params = oauth1.oauth_params(
        consumer.consumer_key, token, "RSA-SHA256", int(now()), oauth1.nonce(), **extra
    )
    base = oauth1.base_string("POST", client.base_url + path, params)
    params["oauth_signature"] = oauth1.rsa_sha256_signature(base, consumer.signature_key)
    headers = {"Authorization": oauth1.authorization_header(params, consumer.realm)}
    body = token_call(client, "POST", path, what=what, headers=headers)
    if not isinstance(body, dict) or not body.get("oauth_token"):
        raise BrokerAuthError(
            f"{client.broker}: IBKR's answer to {what} has no oauth_token",
            broker=client.broker,
            reason="credentials",
        )
    return body


def request_token(
    client: WebApiClient, consumer: Consumer, callback: str, now: Callable[[], float] = wall_time
) -> str:
    """Step 1: a temporary request token for ``callback`` (a URL or ``oob``)."""
    body = _signed(
        client, consumer, REQUEST_TOKEN_PATH, "the request token", now, oauth_callback=callback
    )
    return str(body["oauth_token"])


def authorize_url(request: str, base: str = AUTHORIZE_URL) -> str:
    """Step 2: where the person approves the request token."""
    return f"{base}?{urlencode({'oauth_token': request})}"


def access_token(
    client: WebApiClient,
    consumer: Consumer,
    request: str,
    verifier: str,
    now: Callable[[], float] = wall_time,
) -> AccessToken:
    """Step 3: the permanent access token for an approved request token."""
    body = _signed(
        client,
        consumer,
        ACCESS_TOKEN_PATH,
        "the access token",
        now,
        token=request,
        oauth_verifier=verifier,
    )
    secret = body.get("oauth_token_secret")
    if not isinstance(secret, str) or not secret:
        raise BrokerAuthError(
            f"{client.broker}: IBKR's access token answer has no oauth_token_secret",
            broker=client.broker,
            reason="credentials",
        )
    add_secrets([str(body["oauth_token"]), secret])
    # IBKR's OpenAPI schema names the flag is_true; its example and prose say is_paper.
    paper = body.get("is_paper", body.get("is_true"))
    return AccessToken(str(body["oauth_token"]), secret, paper if isinstance(paper, bool) else None)


class CallbackServer:
    """A one-shot HTTP server on 127.0.0.1 that waits for IBKR's redirect."""

    def __init__(self, port: int = 0) -> None:
        # With a chosen port the callback must match a URL registered with IBKR,
        # so the path is fixed; the one-time request token is then what proves
        # a redirect is ours. With a free port the path itself is a random state.
        self.state = "tradepipe" if port else secrets.token_urlsafe(16)
        self.expected: str | None = None
        self.verifier: str | None = None
        self.refused = 0
        self._done = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the query string holds the verifier."""

        self._http = HTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="oauth-callback", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/callback/{self.state}"

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def expect(self, request: str) -> None:
        """Accept the redirect for this request token (and no other) from now on."""
        self.expected = request

    def wait(self, timeout: float) -> str | None:
        """The verifier IBKR sent, or ``None`` after ``timeout`` seconds."""
        self._done.wait(timeout)
        return self.verifier

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        token, verifier = query.get("oauth_token"), query.get("oauth_verifier")
        good = (
            split.path == urlsplit(self.url).path
            and self.expected is not None
            and token is not None
            and secrets.compare_digest(token, self.expected)
            and bool(verifier)
            and not self._done.is_set()
        )
        if good:
            self.verifier = verifier
            self._done.set()
            status, text = 200, "tradepipe is authorized. You can close this tab."
        else:
            self.refused += 1
            status, text = 400, "This is not the authorization tradepipe is waiting for."
        page = f"<!doctype html><title>tradepipe</title><p>{html.escape(text)}</p>\n".encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(page)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        handler.wfile.write(page)


def login(
    client: WebApiClient,
    consumer: Consumer,
    *,
    oob: bool = False,
    port: int = 0,
    timeout: float = 300.0,
    authorize_base: str = AUTHORIZE_URL,
    show: Callable[[str], None],
    open_browser: Callable[[str], object] | None = None,
    ask_verifier: Callable[[], str] | None = None,
    now: Callable[[], float] = wall_time,
) -> AccessToken:
    """The whole flow: request token, the person approves, access token.

    :param show: tells the person what to do (the URL to open).
    :param open_browser: opens a URL in the browser (``None``: the person does).
    :param ask_verifier: reads the verifier the person pastes (``oob``).
    :raises BrokerAuthError: IBKR refused, or nobody approved within ``timeout``.
    """
    if oob:
        if ask_verifier is None:
            raise ValueError("oob needs a way to ask for the verifier")
        request = request_token(client, consumer, OOB, now)
        url = authorize_url(request, authorize_base)
        show(f"Open {url} , log in to IBKR, approve, and paste the verifier shown.")
        if open_browser is not None:
            open_browser(url)
        verifier = ask_verifier().strip()
    else:
        with CallbackServer(port) as server:
            request = request_token(client, consumer, server.url, now)
            server.expect(request)
            url = authorize_url(request, authorize_base)
            show(f"Open {url} in a browser, log in to IBKR and approve tradepipe.")
            if open_browser is not None:
                open_browser(url)
            found = server.wait(timeout)
        if found is None:
            raise BrokerAuthError(
                f"{client.broker}: no authorization arrived within {timeout:.0f} s; "
                "run `tradepipe auth login` again (or with --oob)",
                broker=client.broker,
                reason="login",
            )
        verifier = found
    if not verifier:
        raise BrokerAuthError(f"{client.broker}: no verifier given", broker=client.broker)
    return access_token(client, consumer, request, verifier, now)
