"""The gateway stand-in in OAuth mode: IBKR's Web API at ``api.ibkr.com``, for integration tests.

Everything under ``/v1/api`` is the gateway stand-in (same accounts, orders, questions, faults,
control API), behind IBKR's OAuth checks from :mod:`standin.oauth_server`:

* ``POST /v1/api/oauth/live_session_token`` — RSA-SHA256 over prepend + base string verified
  with the consumer's public signature key; answers ``diffie_hellman_response``,
  ``live_session_token_signature`` and ``live_session_token_expiration``;
* every other ``/v1/api`` request must carry a valid HMAC-SHA256 signature made with a live
  session token (or an OAuth 2.0 bearer token), else 401 ``{"error": …}``;
* third party: ``POST /v1/api/oauth/request_token``, ``GET /authorize?oauth_token=…`` (the
  person approves at once: a 302 to the callback with ``oauth_verifier``, or for ``oob`` a page
  with ``verifier=…``), ``POST /v1/api/oauth/access_token``;
* OAuth 2.0: ``POST /oauth2/api/v1/token`` and ``POST /gw/api/v1/sso-sessions``.

Like IBKR after a login, the brokerage session starts closed: ``ssodh/init`` opens it.

:class:`OAuthFront` is that behaviour, once: given a request's method, URL (the host is part
of what is signed), headers and body, it answers it itself or lets it through to the
:class:`~standin.gateway.Standin`. Two surfaces put it in front of a stand-in:

* this module's HTTPS server, in its own process, from the folder holding the ``standin``
  package::

      python -m standin.oauth --cert CERT.pem --key KEY.pem --oauth CONFIG.json
                              [--host 127.0.0.1] [--port 0] [--account DU1234567]

  It prints ``PORT <n>`` once it listens, and reads the wall;
* :class:`~standin.transport.OAuthStandinTransport`, the ``httpx`` transport that answers in
  the test's own process, on the stand-in's (virtual) clock.

Every time the OAuth side reads (live session token and bearer expiry, JWT validity) comes
from the clock it is built with: :func:`build` takes the stand-in's.

``CONFIG.json``: ``consumer_key``, ``realm``, ``signature_public_pem``,
``encryption_public_pem``, ``dh_prime`` (hex), ``access_token``, ``access_token_secret``
(the plaintext, hex), optional ``oauth2`` (``client_id``, ``key_id``, ``public_pem``,
``username``), ``lst_lifetime_ms``, ``bearer_seconds``.

The WebSocket (``/v1/api/ws``, see :mod:`standin.stream`) takes ``?oauth_token=<access
token>`` (an access token with a live session token) instead of the gateway's cookie; an
``api`` cookie, if sent, must still be the ``/tickle`` session.

Control (tests only): ``POST /_standin/oauth`` ``{"action": "revoke"}`` (forget every token:
401 next), ``{"action": "gone", "times": n}`` (revoke, and answer the next n API requests 410
Gone); ``GET /_standin/oauth`` → ``{"lst": n, "refused": [...], "checked": n, "issued": [...]}``
(live session tokens derived, requests refused, requests whose signature was verified, every
token issued).
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .gateway import Standin
from .oauth_server import DAY_MS, Client2, OAuthServer, Refused, load_public
from .pacing import OAUTH_RATE
from .server import Handler, StandinServer, serve
from .state import Behaviour
from .wire import API_PREFIX, CONTROL_PREFIX, Answer, json_answer, text_answer


class Headers(Protocol):
    """A request's headers, looked up by name whatever its case."""

    def get(self, name: str, /) -> str | None: ...


@dataclass
class Redirect(Answer):
    """A 302 to ``location`` (IBKR's authorization page sending the browser back)."""

    location: str = ""


class OAuthFront:
    """IBKR's OAuth side in front of a stand-in: answers a request, or lets it through."""

    def __init__(self, oauth: OAuthServer) -> None:
        self.oauth = oauth
        self.lock = oauth.lock
        #: API requests still to be answered 410 Gone.
        self.gone = 0
        #: API requests whose signature (or bearer token) was verified.
        self.checked = 0
        #: ``"METHOD path: error"`` of every refusal.
        self.refused: list[str] = []

    def answer(self, method: str, url: str, headers: Headers, body: bytes) -> Answer | None:
        """IBKR's answer to ``method url``, or ``None``: the stand-in answers it.

        :param url: as the client addressed it, ``https://<Host header><request target>``:
            scheme, host and path are what a signature covers.
        """
        split = urlsplit(url)
        path = split.path
        signed = f"{split.scheme}://{split.netloc}{path}"
        header = headers.get("Authorization")
        oauth = self.oauth
        try:
            if path == CONTROL_PREFIX + "/oauth":
                return json_answer(self._control(method, body))
            if (method, path) == ("POST", API_PREFIX + "/oauth/live_session_token"):
                return json_answer(oauth.live_session_token(signed, header))
            if (method, path) == ("POST", API_PREFIX + "/oauth/request_token"):
                return json_answer(oauth.request_token(signed, header))
            if (method, path) == ("POST", API_PREFIX + "/oauth/access_token"):
                return json_answer(oauth.access_token(signed, header))
            if (method, path) == ("GET", "/authorize"):
                return self._authorize(split.query)
            if (method, path) == ("POST", "/oauth2/api/v1/token"):
                return json_answer(oauth.oauth2_token(body, headers.get("Content-Type")))
            if (method, path) == ("POST", "/gw/api/v1/sso-sessions"):
                ctype = headers.get("Content-Type")
                return json_answer(oauth.sso_session(header, body, ctype))
            if path.startswith(API_PREFIX + "/"):
                with self.lock:
                    if self.gone > 0:
                        self.gone -= 1
                        return json_answer({"error": "Gone", "statusCode": 410}, 410)
                oauth.check(method, signed, header)
                with self.lock:
                    self.checked += 1
            return None
        except Refused as exc:
            with self.lock:
                self.refused.append(f"{method} {path}: {exc.error}")
            return json_answer({"error": exc.error, "statusCode": exc.status}, exc.status)

    def stream_token_ok(self, token: str | None, authorization: str | None) -> bool:
        """Whether a WebSocket handshake names a live OAuth session: ``?oauth_token=`` an
        access token with an unexpired live session token (reference §11), or a bearer
        ``Authorization`` header (OAuth 2.0; IBKR's form for it is not verified)."""
        oauth = self.oauth
        with self.lock:
            now = oauth.now()
            if token:
                found = oauth.lsts.get(token)
                return found is not None and found[1] > now * 1000
            if authorization and authorization.startswith("Bearer "):
                return oauth.bearers.get(authorization[7:], 0) > now
            return False

    def _authorize(self, query: str) -> Answer:
        request = (parse_qs(query).get("oauth_token") or [""])[0]
        callback, verifier = self.oauth.authorize(request)
        if callback == "oob":
            return text_answer(f"verifier={verifier}", 200)
        joiner = "&" if "?" in callback else "?"
        location = f"{callback}{joiner}oauth_token={request}&oauth_verifier={verifier}"
        return Redirect(302, b"", "text/plain; charset=utf-8", location)

    def _control(self, method: str, raw: bytes) -> Any:
        oauth = self.oauth
        with self.lock:
            if method == "GET":
                return {
                    "lst": sum(1 for e in oauth.log if e["event"] == "lst"),
                    "refused": list(self.refused),
                    "checked": self.checked,
                    # Every token issued, for tests that look for them where they must not be.
                    "issued": [v for e in oauth.log for k, v in e.items() if k != "event"],
                }
            body = json.loads(raw or b"{}")
            action = body.get("action")
            if action == "revoke":
                oauth.revoke()
            elif action == "gone":
                oauth.revoke()
                self.gone = int(body.get("times", 1))
            else:
                raise Refused(400, f"unknown action {action!r}")
            return {"ok": True}


def build(config: dict[str, Any], now: Callable[[], float] = time.time) -> OAuthServer:
    """IBKR's side for ``config`` (see the module docstring), reading time from ``now``."""
    oauth2 = config.get("oauth2")
    return OAuthServer(
        consumer_key=config["consumer_key"],
        realm=config["realm"],
        signature_key=load_public(config["signature_public_pem"]),
        encryption_key=load_public(config["encryption_public_pem"]),
        dh_prime=int(config["dh_prime"], 16),
        secrets={config["access_token"]: bytes.fromhex(config["access_token_secret"])},
        oauth2=None
        if not oauth2
        else Client2(
            oauth2["client_id"],
            oauth2["key_id"],
            load_public(oauth2["public_pem"]),
            oauth2["username"],
        ),
        lst_lifetime_ms=int(config.get("lst_lifetime_ms", DAY_MS)),
        bearer_seconds=int(config.get("bearer_seconds", 3600)),
        now=now,
    )


# ----- the HTTPS server --------------------------------------------------------------------------


class OAuthStandinServer(StandinServer):
    front: OAuthFront


class OAuthHandler(Handler):
    server: OAuthStandinServer

    def _handle(self) -> None:
        if self._upgrade(self.server.front.stream_token_ok):
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        url = f"https://{self.headers.get('Host')}{self.path}"
        answer = self.server.front.answer(self.command, url, self.headers, raw)
        if answer is None:
            self._dispatch(urlsplit(self.path), raw)
        else:
            self._send(answer)

    def _send(self, answer: Answer) -> None:
        if not isinstance(answer, Redirect):
            super()._send(answer)
            return
        self.send_response(answer.status)
        self.send_header("Location", answer.location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="IBKR OAuth Web API stand-in")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--oauth", required=True, help="JSON configuration (see the docstring)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account", default="DU1234567")
    parser.add_argument("--behaviour", default="{}", help="JSON changing quirks (see state.py)")
    args = parser.parse_args(argv)

    with open(args.oauth, encoding="utf-8") as fh:
        config = json.load(fh)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    # Over OAuth IBKR allows 50 requests a second per session (10 through a gateway).
    behaviour = Behaviour(rate=OAUTH_RATE)
    behaviour.update(json.loads(args.behaviour))
    standin = Standin(args.account, behaviour)
    standin.authenticated = False  # OAuth: the brokerage session waits for ssodh/init
    server = OAuthStandinServer((args.host, args.port), standin, context)
    server.RequestHandlerClass = OAuthHandler
    server.front = OAuthFront(build(config, now=standin.clock.time))
    return serve(server)


if __name__ == "__main__":
    sys.exit(main())
