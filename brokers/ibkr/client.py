"""HTTP to the IBKR Web API, with every failure translated at this boundary.

No httpx exception and no raw IBKR error body leaves this module. What the
caller gets instead says what to do next (see :mod:`tradepipe.errors`):

* :class:`BrokerUnavailableError` — the gateway cannot be reached, timed out,
  dropped the connection, answered 5xx or 429. Its ``maybe_sent`` context is
  False only when the request certainly did not reach IBKR (refused connection,
  pacing refusal), which is what lets an order placement tell "not sent" from
  "ambiguous".
* :class:`BrokerAuthError` — 401 (or OAuth's 410 Gone), or the brokerage session
  is not open (IBKR's "no bridge"); ``reason`` says which, so the session
  supervisor can repair it.
* :class:`BrokerError` — any other 4xx, with IBKR's own message made readable.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from tradepipe.brokers.ibkr.pacing import Pacer
from tradepipe.errors import BrokerAuthError, BrokerError, BrokerUnavailableError
from tradepipe.logs import FILE_ONLY

log = logging.getLogger("tradepipe.brokers.ibkr")

# httpx errors raised before any byte of the request can have reached the
# server. Everything else (read errors, dropped connections, read timeouts)
# may have happened after the server acted on the request.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
    httpx.LocalProtocolError,
)

# Fragments of IBKR error texts and what they mean for a person.
_KNOWN_ERRORS: tuple[tuple[str, str], ...] = (
    ("no bridge", "the brokerage session is not open (IBKR says 'no bridge')"),
    ("please query /accounts first", "IBKR wants the account list read first in this session"),
    ("access denied", "the gateway is not logged in"),
    ("reply id not found", "the order's confirmation question expired before it was answered"),
    ("is already registered", "an order with this client order id was already placed"),
)


def describe(text: str) -> str:
    """IBKR's error ``text`` with a plain-words explanation where we know one."""
    lowered = text.lower()
    for fragment, meaning in _KNOWN_ERRORS:
        if fragment in lowered:
            return f"{meaning}: {text}"
    return text


def error_text(body: Any) -> str | None:
    """The message of an IBKR ``{"error": ...}`` body, else ``None``."""
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return None


class WebApiClient:
    """Sends paced requests to one IBKR Web API base URL.

    :param base_url: e.g. ``https://localhost:5000/v1/api``.
    :param http: the httpx client (its ``verify``, ``timeout`` and transport are
        the caller's choice; tests pass a respx-mocked one).
    :param auth: per-request authentication (OAuth signs every request; the
        gateway needs none).
    :param broker: the adapter's name, for messages.
    :param login_hint: what a person should do when the session is gone.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client,
        pacer: Pacer,
        broker: str,
        auth: httpx.Auth | None = None,
        login_hint: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.pacer = pacer
        self.broker = broker
        self.auth = auth
        self.login_hint = login_hint

    def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("GET", path, params=params, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        # The gateway answers 411 to a POST without a body.
        return self.request("POST", path, json={} if body is None else body, **kw)

    def delete(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("DELETE", path, params=params, **kw)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        error_ok: bool = False,
    ) -> Any:
        """Send one request and return its decoded JSON body (``None`` if empty).

        :param error_ok: return a 200 ``{"error": ...}`` body instead of raising
            (order placement reads those as rejections).
        """
        self.pacer.acquire(method, path)
        url = self.base_url + path
        what = f"{method} {path}"
        try:
            response = self.http.request(
                method, url, params=params, json=json, auth=self.auth or httpx.USE_CLIENT_DEFAULT
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(what, exc) from exc
        except httpx.InvalidURL as exc:
            raise BrokerError(f"{self.broker}: bad URL {url!r}: {exc}", broker=self.broker) from exc
        return self._decode(what, response, error_ok)

    def _transport_error(self, what: str, exc: httpx.HTTPError) -> BrokerError:
        maybe_sent = not isinstance(exc, _NOT_SENT)
        if isinstance(exc, httpx.TimeoutException):
            problem = "timed out"
        elif "CERTIFICATE_VERIFY_FAILED" in str(exc):
            problem = (
                "failed TLS verification; set `verify` to the gateway's certificate file "
                "(or false for a gateway on this machine)"
            )
        elif isinstance(exc, httpx.ConnectError):
            problem = f"could not connect ({exc}); is the gateway running at {self.base_url}?"
        elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            problem = f"lost the connection ({exc or type(exc).__name__})"
        else:
            problem = f"failed: {type(exc).__name__}: {exc}"
        # The error says it too, and whoever handles it tells the person: log file only.
        log.warning("%s %s %s", self.broker, what, problem, extra=FILE_ONLY)
        return BrokerUnavailableError(
            f"{self.broker}: {what} {problem}", broker=self.broker, maybe_sent=maybe_sent
        )

    def _decode(self, what: str, response: httpx.Response, error_ok: bool) -> Any:
        status = response.status_code
        try:
            body = response.json() if response.content else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        text = error_text(body) or (response.text.strip()[:200] if body is None else "")
        if status in (401, 410):
            # 410 Gone is how IBKR's OAuth service refuses a session or live session
            # token it no longer has (reference §2.4): renewing it is the repair.
            hint = f"; {self.login_hint}" if self.login_hint else ""
            raise BrokerAuthError(
                f"{self.broker}: not authenticated ({what} answered {status}){hint}",
                broker=self.broker,
                reason="unauthenticated",
                status=status,
            )
        if status == 429:
            self.pacer.penalize()
            raise BrokerUnavailableError(
                f"{self.broker}: IBKR rate limit hit (HTTP 429) on {what}; every request is "
                f"paused {self.pacer.describe_penalty(self.pacer.penalty_seconds)}, because "
                "retrying during IBKR's penalty period extends it",
                broker=self.broker,
                maybe_sent=True,
                retry_after=self.pacer.penalty_seconds,
            )
        lowered = text.lower()
        if "no bridge" in lowered:
            raise BrokerAuthError(
                f"{self.broker}: {describe(text)}", broker=self.broker, reason="no_bridge"
            )
        if "query /accounts first" in lowered:
            raise BrokerAuthError(
                f"{self.broker}: {describe(text)}", broker=self.broker, reason="accounts_first"
            )
        if status >= 500:
            raise BrokerUnavailableError(
                f"{self.broker}: {what} failed with HTTP {status}"
                + (f": {describe(text)}" if text else ""),
                broker=self.broker,
                status=status,
                maybe_sent=True,
            )
        if status >= 400:
            raise BrokerError(
                f"{self.broker}: {what} refused with HTTP {status}"
                + (f": {describe(text)}" if text else ""),
                broker=self.broker,
                status=status,
            )
        if status != 200 and status != 204:
            raise BrokerUnavailableError(
                f"{self.broker}: {what} answered unexpected HTTP {status}",
                broker=self.broker,
                status=status,
                maybe_sent=True,
            )
        if response.content and body is None:
            raise BrokerUnavailableError(
                f"{self.broker}: {what} answered something that is not JSON",
                broker=self.broker,
                maybe_sent=True,
            )
        if not error_ok and error_text(body):
            raise BrokerError(f"{self.broker}: {describe(text)}", broker=self.broker)
        return body
