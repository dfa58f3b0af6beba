"""The gateway stand-in in OAuth mode: IBKR's Web API at ``api.ibkr.com``, for integration tests.

Run it as a separate process, from the folder holding the ``standin`` package::

    python -m standin.oauth --cert CERT.pem --key KEY.pem --oauth CONFIG.json
                            [--host 127.0.0.1] [--port 0] [--account DU1234567]

It prints ``PORT <n>`` once it listens. Everything under ``/v1/api`` is the gateway stand-in
(same accounts, orders, questions, faults, control API), behind IBKR's OAuth checks from
:mod:`standin.oauth_server`:

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

``CONFIG.json``: ``consumer_key``, ``realm``, ``signature_public_pem``,
``encryption_public_pem``, ``dh_prime`` (hex), ``access_token``, ``access_token_secret``
(the plaintext, hex), optional ``oauth2`` (``client_id``, ``key_id``, ``public_pem``,
``username``), ``lst_lifetime_ms``, ``bearer_seconds``.

Control (tests only): ``POST /_standin/oauth`` ``{"action": "revoke"}`` (forget every token:
401 next), ``{"action": "gone", "times": n}`` (revoke, and answer the next n API requests 410
Gone); ``GET /_standin/oauth`` → ``{"lst": n, "refused": [...], "checked": n}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .gateway import Standin
from .oauth_server import DAY_MS, Client2, OAuthServer, Refused, load_public
from .pacing import OAUTH_RATE
from .server import Handler, StandinServer
from .state import Behaviour
from .wire import API_PREFIX, CONTROL_PREFIX, json_answer, text_answer


class OAuthStandinServer(StandinServer):
    oauth: OAuthServer
    gone = 0
    checked = 0
    refused: list[str]


class OAuthHandler(Handler):
    server: OAuthStandinServer

    def _handle(self) -> None:
        split = urlsplit(self.path)
        path, method = split.path, self.command
        oauth = self.server.oauth
        url = f"https://{self.headers.get('Host')}{path}"
        header = self.headers.get("Authorization")
        try:
            if path == CONTROL_PREFIX + "/oauth":
                self._send(json_answer(self._control(method, self._body())))
            elif (method, path) == ("POST", API_PREFIX + "/oauth/live_session_token"):
                self._body()
                self._send(json_answer(oauth.live_session_token(url, header)))
            elif (method, path) == ("POST", API_PREFIX + "/oauth/request_token"):
                self._body()
                self._send(json_answer(oauth.request_token(url, header)))
            elif (method, path) == ("POST", API_PREFIX + "/oauth/access_token"):
                self._body()
                self._send(json_answer(oauth.access_token(url, header)))
            elif (method, path) == ("GET", "/authorize"):
                self._authorize(split.query)
            elif (method, path) == ("POST", "/oauth2/api/v1/token"):
                form = self._body()
                self._send(json_answer(oauth.oauth2_token(form, self.headers.get("Content-Type"))))
            elif (method, path) == ("POST", "/gw/api/v1/sso-sessions"):
                body = self._body()
                ctype = self.headers.get("Content-Type")
                self._send(json_answer(oauth.sso_session(header, body, ctype)))
            elif path.startswith(API_PREFIX + "/"):
                if self.server.gone > 0:
                    self.server.gone -= 1
                    self._body()
                    self._send(json_answer({"error": "Gone", "statusCode": 410}, 410))
                    return
                oauth.check(method, url, header)
                self.server.checked += 1
                super()._handle()
            else:
                super()._handle()
        except Refused as exc:
            self.server.refused.append(f"{method} {path}: {exc.error}")
            self._body()
            self._send(json_answer({"error": exc.error, "statusCode": exc.status}, exc.status))

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _authorize(self, query: str) -> None:
        request = (parse_qs(query).get("oauth_token") or [""])[0]
        callback, verifier = self.server.oauth.authorize(request)
        if callback == "oob":
            self._send(text_answer(f"verifier={verifier}", 200))
            return
        joiner = "&" if "?" in callback else "?"
        self.send_response(302)
        self.send_header(
            "Location", f"{callback}{joiner}oauth_token={request}&oauth_verifier={verifier}"
        )
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _control(self, method: str, raw: bytes) -> Any:
        server = self.server
        if method == "GET":
            return {
                "lst": sum(1 for e in server.oauth.log if e["event"] == "lst"),
                "refused": list(server.refused),
                "checked": server.checked,
                # Every token issued, for tests that look for them where they must not be.
                "issued": [v for e in server.oauth.log for k, v in e.items() if k != "event"],
            }
        body = json.loads(raw or b"{}")
        action = body.get("action")
        if action == "revoke":
            server.oauth.revoke()
        elif action == "gone":
            server.oauth.revoke()
            server.gone = int(body.get("times", 1))
        else:
            raise Refused(400, f"unknown action {action!r}")
        return {"ok": True}


def build(config: dict[str, Any], now: Callable[[], float] = time.time) -> OAuthServer:
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
    server.oauth = build(config, now=standin.clock.time)
    server.refused = []

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
