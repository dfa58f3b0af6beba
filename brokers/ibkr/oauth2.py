"""OAuth 2.0 as IBKR documents it (reference §3b): private_key_jwt, then an SSO session.

1. ``POST {host}/oauth2/api/v1/token`` (form): ``grant_type=client_credentials``
   with a *client assertion* — a JWT signed RS256 with the registered private
   key, header ``kid``, claims ``iss = sub = client_id``, ``aud = "/token"``,
   ``iat``, ``exp`` — answers an access token and its ``expires_in``.
2. ``POST {host}/gw/api/v1/sso-sessions`` with ``Authorization: Bearer <access
   token>`` and a second signed JWT as the body (``application/jwt``; claims
   ``credential`` = the IBKR username, ``ip`` = the public IP, ``iss``,
   ``iat``, ``exp``) answers the SSO *bearer* token.
3. The bearer token goes on every Web API request (:class:`BearerAuth`);
   ``ssodh/init`` opens the brokerage session as with OAuth 1.0a.

IBKR publishes no refresh-token grant for this flow and no lifetime for the
bearer token: its lifetime is read from the token's own ``exp`` claim (read,
not verified — only IBKR can verify it), else the access token's
``expires_in`` is assumed. Both are renewed ``margin`` seconds before they
expire, and on a 401 (:meth:`OAuth2Authenticator.renew`). IBKR publishes no
authorization-code flow either (reference §3c); none is offered here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from tradepipe.brokers.ibkr.authfile import AuthFile, fingerprint
from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.brokers.ibkr.oauth import Token, token_call, wall_time
from tradepipe.errors import BrokerAuthError, BrokerUnavailableError
from tradepipe.logs import add_secrets

log = logging.getLogger("tradepipe.brokers.ibkr")

TOKEN_PATH = "/oauth2/api/v1/token"
SSO_SESSIONS_PATH = "/gw/api/v1/sso-sessions"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Lifetime of the JWTs we sign (what ibauth uses; IBKR gives none).
ASSERTION_SECONDS = 600


@dataclass(frozen=True)
class OAuth2Credentials:
    """An OAuth 2.0 client registered with IBKR; ``repr`` shows no secret."""

    client_id: str
    key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    username: str
    public_ip: str
    host: str = "https://api.ibkr.com"
    scope: str = "sso-sessions.write"

    @property
    def fingerprint(self) -> str:
        return fingerprint("oauth2", self.client_id, self.key_id, self.username)


def _sign(creds: OAuth2Credentials, claims: dict[str, Any]) -> str:
    return jwt.encode(
        claims, creds.private_key, algorithm="RS256", headers={"kid": creds.key_id, "typ": "JWT"}
    )


def client_assertion(creds: OAuth2Credentials, now: int) -> str:
    """The private_key_jwt client assertion for the token request."""
    claims = {
        "iss": creds.client_id,
        "sub": creds.client_id,
        "aud": "/token",
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
    }
    return _sign(creds, claims)


def session_request(creds: OAuth2Credentials, now: int) -> str:
    """The signed JWT body of the SSO-session request."""
    claims = {
        "credential": creds.username,
        "ip": creds.public_ip,
        "iss": creds.client_id,
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
    }
    return _sign(creds, claims)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified; ``None`` when it has none or is no JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


class OAuth2Authenticator:
    """Obtains and renews the access and bearer tokens (see the module docstring)."""

    #: IBKR opens no brokerage session for OAuth: the session supervisor must.
    opens_brokerage_session = True

    SECTION = "oauth2"

    def __init__(
        self,
        credentials: OAuth2Credentials,
        *,
        store: AuthFile,
        margin: float = 600.0,
        login_hint: str = "",
        now: Callable[[], float] = wall_time,
    ) -> None:
        self.credentials = credentials
        self.store = store
        self.margin = margin
        self.login_hint = login_hint
        self._now = now
        self._lock = threading.RLock()
        self._access: Token | None = None
        self._bearer: Token | None = None
        self._client: WebApiClient | None = None

    def now(self) -> float:
        return self._now()

    @property
    def token(self) -> Token | None:
        return self._bearer

    def open(self, client: WebApiClient) -> None:
        self._client = client
        with self._lock:
            if self._bearer is None:
                self._load()
            self._ensure(client)

    def renew(self, client: WebApiClient) -> None:
        """IBKR refused the bearer token: obtain new tokens."""
        self._client = client
        with self._lock:
            self._access = self._bearer = None
            self._ensure(client)

    def current(self) -> str:
        with self._lock:
            if self._client is None:
                raise BrokerAuthError(
                    "OAuth 2.0: no bearer token yet (the session was never opened)",
                    reason="unauthenticated",
                )
            return self._ensure(self._client).value

    def refresh(self, client: WebApiClient) -> Token:
        """New tokens now, whatever the old ones' expiry."""
        self.renew(client)
        assert self._bearer is not None
        return self._bearer

    def _ensure(self, client: WebApiClient) -> Token:
        now = self._now()
        bearer = self._bearer
        if bearer is not None and not bearer.due(now, self.margin):
            return bearer
        access = self._access
        if access is None or access.due(now, self.margin):
            access = self._access = self._access_token(client)
        bearer = self._bearer = self._sso_session(client, access)
        self._save()
        return bearer

    def _access_token(self, client: WebApiClient) -> Token:
        c = self.credentials
        now = self._now()
        body = token_call(
            client,
            "POST",
            c.host + TOKEN_PATH,
            what="the OAuth 2.0 token request",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(c, int(now)),
                "scope": c.scope,
            },
        )
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise BrokerUnavailableError(
                f"{client.broker}: IBKR's token answer has no access_token", broker=client.broker
            )
        add_secrets([value])
        try:
            lifetime = float(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            lifetime = 0.0
        expires = jwt_expiry(value) or (now + lifetime if lifetime > 0 else now + 3600)
        return Token(value, expires, now)

    def _sso_session(self, client: WebApiClient, access: Token) -> Token:
        c = self.credentials
        now = self._now()
        body = token_call(
            client,
            "POST",
            c.host + SSO_SESSIONS_PATH,
            what="the OAuth 2.0 SSO session request",
            headers={"Authorization": f"Bearer {access.value}", "Content-Type": "application/jwt"},
            content=session_request(c, int(now)),
        )
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise BrokerAuthError(
                f"{client.broker}: IBKR opened no SSO session (no access_token in its answer)",
                broker=client.broker,
                reason="credentials",
            )
        add_secrets([value])
        if isinstance(body, dict) and body.get("active") is False:
            log.warning("%s: IBKR reports the new SSO session as not active", client.broker)
        expires = min(jwt_expiry(value) or access.expires_at, access.expires_at)
        token = Token(value, expires, now)
        log.info(
            "%s: OAuth 2.0 bearer token obtained, valid until %s",
            client.broker,
            token.expires.isoformat(timespec="seconds"),
        )
        return token

    def _save(self) -> None:
        access, bearer = self._access, self._bearer
        if access is None or bearer is None:
            return
        self.store.put(
            self.SECTION,
            {
                "for": self.credentials.fingerprint,
                "access_token": access.value,
                "access_expires_at": access.expires_at,
                "token": bearer.value,
                "expires_at": bearer.expires_at,
                "obtained_at": bearer.obtained_at,
            },
        )

    def _load(self) -> None:
        found = self.store.section(self.SECTION)
        if not found or found.get("for") != self.credentials.fingerprint:
            return
        try:
            obtained = float(found["obtained_at"])
            access = Token(str(found["access_token"]), float(found["access_expires_at"]), obtained)
            bearer = Token(str(found["token"]), float(found["expires_at"]), obtained)
        except (KeyError, TypeError, ValueError):
            return
        add_secrets([access.value, bearer.value])
        self._access, self._bearer = access, bearer

    def forget(self) -> None:
        with self._lock:
            self._access = self._bearer = None
            self.store.put(self.SECTION, None)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <SSO token>`` on each request, renewed before it expires."""

    def __init__(self, authenticator: OAuth2Authenticator) -> None:
        self.authenticator = authenticator

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        try:
            token = self.authenticator.current()
        except BrokerUnavailableError as exc:
            raise BrokerUnavailableError(
                f"not sent: the OAuth 2.0 token could not be renewed: {exc}",
                broker=exc.context.get("broker"),
                maybe_sent=False,
            ) from exc
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
