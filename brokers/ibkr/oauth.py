"""OAuth 1.0a sessions: the live session token's life, and signing every request.

:class:`OAuth1Authenticator` is the :class:`~tradepipe.brokers.ibkr.session.Authenticator`
of the OAuth adapter. It derives a live session token (LST, reference §3a) when
the session is opened, keeps it in the token file so the next command can use
it too, and derives a new one

* before it expires — when a request is about to be signed less than
  ``margin`` seconds before ``live_session_token_expiration`` (at the margin
  exactly counts as due), so an expired token is never sent;
* when IBKR refuses it (401, or 410 Gone): the session supervisor calls
  :meth:`~OAuth1Authenticator.renew` and retries a read once.

A token whose ``live_session_token_signature`` does not match the one
computed here is a :class:`~tradepipe.errors.BrokerAuthError` and is never
used. IBKR does not say whether a new LST keeps the brokerage session opened
with ``ssodh/init`` under the old one; it is assumed to (the session belongs to
the username), and if IBKR answers "no bridge" the session supervisor reopens
it and retries the read. :class:`OAuth1Auth` is the ``httpx.Auth`` that signs each request
HMAC-SHA256 with the current LST. Every secret that passes through here is
added to the log redaction as soon as it is known.

:func:`token_call` sends the requests that obtain tokens (LST, OAuth 2.0,
third-party login): they carry their own authorization instead of the
per-request signature, go through the same pacer, and their failures are
translated into the :mod:`tradepipe.errors` tree with IBKR's reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from tradepipe.brokers.ibkr import oauth1
from tradepipe.brokers.ibkr.authfile import AuthFile, fingerprint
from tradepipe.brokers.ibkr.client import WebApiClient, error_text
from tradepipe.errors import BrokerAuthError, BrokerUnavailableError
from tradepipe.logs import add_secrets

log = logging.getLogger("tradepipe.brokers.ibkr")

LST_PATH = "/oauth/live_session_token"
#: What IBKR's OAuth errors mean, and what to do about them (reference §3a, §12).
_OAUTH_ERRORS: tuple[tuple[str, str], ...] = (
    (
        "invalid consumer",
        "IBKR does not accept the consumer key: a new key works only after IBKR's next "
        "midnight reset (sometimes days later), and the realm must match it "
        "(limited_poa, or test_realm for TESTCONS)",
    ),
    (
        "no access secret key",
        "IBKR has no access token secret for this token; regenerate the access token in "
        "IBKR's OAuth self-service portal",
    ),
    ("invalid signature", "IBKR could not verify the signature: check the private keys"),
)


def wall_time() -> float:
    """Seconds since the epoch (looked up on each call, so freezegun can stand in)."""
    return time.time()


def token_call(
    client: WebApiClient,
    method: str,
    path: str,
    *,
    what: str,
    headers: Mapping[str, str],
    content: bytes | str | None = None,
    data: Mapping[str, str] | None = None,
) -> Any:
    """One token request, paced; its JSON answer, or an error that says what to do.

    :param path: under the client's base URL, or an absolute URL (OAuth 2.0 lives
        on other paths of the same host).
    :raises BrokerAuthError: IBKR refused the credentials (4xx), ``reason="credentials"``.
    :raises BrokerUnavailableError: unreachable, 429, 5xx, or not JSON.
    """
    broker = client.broker
    url = (
        path
        if path.startswith("https://") or path.startswith("http://")
        else client.base_url + path
    )
    client.pacer.acquire(method, httpx.URL(url).path)
    try:
        response = client.http.request(
            method, url, headers=dict(headers), content=content, data=data
        )
    except httpx.HTTPError as exc:
        raise BrokerUnavailableError(
            f"{broker}: {what} failed: {type(exc).__name__}: {exc}",
            broker=broker,
            maybe_sent=False,
        ) from exc
    status = response.status_code
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    text = error_text(body) or _problem(body) or response.text.strip()[:200]
    if status == 429:
        client.pacer.penalize()
        raise BrokerUnavailableError(
            f"{broker}: IBKR rate limit hit (HTTP 429) on {what}; all requests paused",
            broker=broker,
            retry_after=client.pacer.penalty_seconds,
        )
    if status >= 500:
        raise BrokerUnavailableError(
            f"{broker}: {what} failed with HTTP {status}" + (f": {text}" if text else ""),
            broker=broker,
            status=status,
        )
    if status >= 400:
        raise BrokerAuthError(
            f"{broker}: IBKR refused {what} (HTTP {status}"
            + (f": {_explain(text)}" if text else "")
            + ")",
            broker=broker,
            status=status,
            reason="credentials",
        )
    if body is None:
        raise BrokerUnavailableError(
            f"{broker}: {what} answered HTTP {status} without a JSON body", broker=broker
        )
    return body


def _problem(body: Any) -> str | None:
    """The text of an RFC 9457 problem body (OAuth 2.0 endpoints answer those)."""
    if isinstance(body, dict) and (body.get("detail") or body.get("title")):
        return str(body.get("detail") or body.get("title"))
    return None


def _explain(text: str) -> str:
    lowered = text.lower()
    for fragment, meaning in _OAUTH_ERRORS:
        if fragment in lowered:
            return f"{text} — {meaning}"
    return text


@dataclass(frozen=True)
class Token:
    """A secret with an expiry (epoch seconds)."""

    value: str = field(repr=False)
    expires_at: float
    obtained_at: float

    def due(self, now: float, margin: float) -> bool:
        """Whether it must be replaced before the next use (at the margin: yes).

        The margin is at most half the token's life, so a token shorter-lived
        than expected is still used rather than replaced on every request.
        """
        margin = min(margin, (self.expires_at - self.obtained_at) / 2)
        return now >= self.expires_at - margin

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC)


@dataclass(frozen=True)
class OAuth1Credentials:
    """What an OAuth 1.0a consumer holds (reference §3a); ``repr`` shows no secret."""

    consumer_key: str = field(repr=False)
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)
    signature_key: rsa.RSAPrivateKey = field(repr=False)
    encryption_key: rsa.RSAPrivateKey = field(repr=False)
    dh_prime: int = field(repr=False)
    dh_generator: int = oauth1.DH_GENERATOR
    realm: str = "limited_poa"

    @property
    def fingerprint(self) -> str:
        return fingerprint("oauth1", self.consumer_key, self.access_token)


class OAuth1Authenticator:
    """Derives, keeps and renews the live session token (see the module docstring).

    :param margin: seconds before the LST's expiry at which a new one is derived.
    :param now: wall-clock seconds; :param dh_random: the DH secret source (tests fix it).
    """

    #: IBKR opens no brokerage session for OAuth: the session supervisor must.
    opens_brokerage_session = True

    SECTION = "oauth1_lst"

    def __init__(
        self,
        credentials: OAuth1Credentials,
        *,
        store: AuthFile,
        margin: float = 3600.0,
        login_hint: str = "",
        now: Callable[[], float] = wall_time,
        dh_random: Callable[[], int] = oauth1.dh_random,
    ) -> None:
        self.credentials = credentials
        self.store = store
        self.margin = margin
        self.login_hint = login_hint
        self._now = now
        self._dh_random = dh_random
        self._lock = threading.RLock()
        self._token: Token | None = None
        self._client: WebApiClient | None = None
        self._prepend: str | None = None
        add_secrets([credentials.consumer_key, credentials.access_token])
        add_secrets([credentials.access_token_secret])

    # -- the Authenticator protocol ---------------------------------------------------------

    def open(self, client: WebApiClient) -> None:
        """Have a live session token that is not due (the stored one, or a new one)."""
        self._client = client
        with self._lock:
            token = self._token or self._stored()
            if token is None or token.due(self._now(), self.margin):
                self.derive(client)
            else:
                self._token = token

    def renew(self, client: WebApiClient) -> None:
        """IBKR refused the token (401/410): derive a new one."""
        self._client = client
        with self._lock:
            self.derive(client)

    # -- the token ---------------------------------------------------------------------------

    def now(self) -> float:
        return self._now()

    @property
    def token(self) -> Token | None:
        return self._token

    def current(self) -> str:
        """The LST to sign with now, derived anew first if it is due."""
        with self._lock:
            token = self._token
            if token is None or token.due(self._now(), self.margin):
                if self._client is None:
                    raise BrokerAuthError(
                        "OAuth: no live session token yet (the session was never opened)",
                        reason="unauthenticated",
                    )
                if token is not None:
                    log.info(
                        "%s: live session token expires %s; deriving a new one",
                        self._client.broker,
                        token.expires.isoformat(timespec="seconds"),
                    )
                token = self.derive(self._client)
            return token.value

    def prepend(self) -> str:
        if self._prepend is None:
            c = self.credentials
            self._prepend = oauth1.prepend(c.access_token_secret, c.encryption_key)
            add_secrets([self._prepend])
        return self._prepend

    def derive(self, client: WebApiClient) -> Token:
        """Ask IBKR for a live session token, check IBKR's proof of it, keep it.

        :raises BrokerAuthError: IBKR refused the request, or its
            ``live_session_token_signature`` does not prove the token computed here.
        """
        c = self.credentials
        with self._lock:
            prepend = self.prepend()
            a = self._dh_random()
            url = client.base_url + LST_PATH
            params = oauth1.oauth_params(
                c.consumer_key,
                c.access_token,
                "RSA-SHA256",
                int(self._now()),
                oauth1.nonce(),
                diffie_hellman_challenge=oauth1.dh_challenge(a, c.dh_prime, c.dh_generator),
            )
            base = oauth1.base_string("POST", url, params, prefix=prepend)
            params["oauth_signature"] = oauth1.rsa_sha256_signature(base, c.signature_key)
            header = oauth1.authorization_header(params, c.realm)
            what = "the live session token request"
            body = token_call(
                client, "POST", LST_PATH, what=what, headers={"Authorization": header}
            )
            try:
                # IBKR's OpenAPI schema names this field diffie_hellman_challenge; its
                # example, its prose and ibind say diffie_hellman_response.
                response = str(body["diffie_hellman_response"])
                proof = str(body["live_session_token_signature"])
                expiration = int(body["live_session_token_expiration"])
                lst = oauth1.live_session_token(response, a, c.dh_prime, prepend)
            except (KeyError, TypeError, ValueError) as exc:
                raise BrokerAuthError(
                    f"{client.broker}: IBKR's live session token answer is unusable "
                    f"({type(exc).__name__}: {exc})",
                    broker=client.broker,
                    reason="credentials",
                ) from None
            add_secrets([lst])
            if not oauth1.lst_signature_matches(lst, c.consumer_key, proof):
                raise BrokerAuthError(
                    f"{client.broker}: the live session token computed here does not match "
                    "IBKR's live_session_token_signature, so it is not used; check the "
                    "encryption key, access_token_secret and dh_prime",
                    broker=client.broker,
                    reason="credentials",
                )
            now = self._now()
            expires = oauth1.lst_expiry_ms(expiration, int(now * 1000)) / 1000
            token = Token(lst, expires, now)
            self._token = token
            self.store.put(
                self.SECTION,
                {
                    "for": c.fingerprint,
                    "token": lst,
                    "expires_at": expires,
                    "obtained_at": now,
                },
            )
            log.info(
                "%s: live session token derived, valid until %s",
                client.broker,
                token.expires.isoformat(timespec="seconds"),
            )
            return token

    def _stored(self) -> Token | None:
        found = self.store.section(self.SECTION)
        if not found or found.get("for") != self.credentials.fingerprint:
            return None
        try:
            token = Token(
                str(found["token"]), float(found["expires_at"]), float(found["obtained_at"])
            )
        except (KeyError, TypeError, ValueError):
            return None
        add_secrets([token.value])
        return token

    def forget(self) -> None:
        """Drop the token here and in the token file."""
        with self._lock:
            self._token = None
            self.store.put(self.SECTION, None)


class OAuth1Auth(httpx.Auth):
    """Signs each request HMAC-SHA256 with the current live session token (§3a step 5)."""

    def __init__(self, authenticator: OAuth1Authenticator) -> None:
        self.authenticator = authenticator

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        a = self.authenticator
        c = a.credentials
        try:
            lst = a.current()
        except BrokerUnavailableError as exc:
            # The request itself has not left: say so, so an order is not left "unknown".
            raise BrokerUnavailableError(
                f"not sent: the live session token could not be renewed: {exc}",
                broker=exc.context.get("broker"),
                maybe_sent=False,
            ) from exc
        params = oauth1.oauth_params(
            c.consumer_key, c.access_token, "HMAC-SHA256", int(a.now()), oauth1.nonce()
        )
        url = str(request.url.copy_with(query=None))
        base = oauth1.base_string(request.method, url, params)
        params["oauth_signature"] = oauth1.hmac_sha256_signature(base, lst)
        request.headers["Authorization"] = oauth1.authorization_header(params, c.realm)
        yield request
