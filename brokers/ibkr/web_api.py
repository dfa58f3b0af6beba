"""The IBKR OAuth Web API adapter (``[run] broker = "web_api"``).

It talks to ``https://api.ibkr.com/v1/api`` directly, with no gateway and no
person at a browser: every request is authenticated by OAuth. Everything but
authentication is the shared Web API broker (endpoints, pacing, the reply
policy, exactly-once orders, start-up adoption); this module adds

* the credentials, read from the settings (``.secrets.toml`` or
  ``TRADEPIPE_BROKERS__WEB_API__…`` variables) and the files they name;
* the :class:`~tradepipe.brokers.ibkr.session.Authenticator` and the
  per-request ``httpx.Auth`` of the chosen method: ``auth = "oauth1"``
  (:mod:`~tradepipe.brokers.ibkr.oauth`, first-party, or third-party through
  ``tradepipe auth login``) or ``"oauth2"`` (:mod:`~tradepipe.brokers.ibkr.oauth2`);
* the ``tradepipe auth`` commands (:mod:`~tradepipe.brokers.ibkr.web_api_cli`).

Like the gateway adapter it never logs out on disconnect: another process may
share the session (``tradepipe auth logout`` ends it).
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ConfigDict, Field, field_validator, model_validator
from tradepipe.brokers.ibkr import oauth1, oauth2
from tradepipe.brokers.ibkr.authfile import AuthFile, fingerprint
from tradepipe.brokers.ibkr.broker import WebApiBroker, WebApiSettings
from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.brokers.ibkr.client_portal import is_loopback
from tradepipe.brokers.ibkr.oauth import (
    OAuth1Auth,
    OAuth1Authenticator,
    OAuth1Credentials,
    wall_time,
)
from tradepipe.brokers.ibkr.oauth_login import AUTHORIZE_URL, Consumer
from tradepipe.brokers.ibkr.pacing import OAUTH_RATE
from tradepipe.errors import ConfigError
from tradepipe.logs import add_secrets

log = logging.getLogger("tradepipe.brokers.ibkr.web_api")

TABLE = "brokers.web_api"
#: Where ``tradepipe auth login`` keeps the third-party access token.
LOGIN_SECTION = "oauth1_login"
_REQUIRED = {
    "oauth1": ("consumer_key", "signature_key_file", "encryption_key_file", "dh_prime"),
    "oauth2": ("client_id", "key_id", "client_key_file", "username", "public_ip"),
}

Authenticator = OAuth1Authenticator | oauth2.OAuth2Authenticator


class WebApiOAuthBroker(WebApiBroker):
    """An IBKR account over the Web API with OAuth (see the module docstring)."""

    name = "web_api"
    description = "IBKR Web API with OAuth 1.0a or 2.0 (no gateway)"

    class Settings(WebApiSettings):
        # An environment variable of digits arrives as a number; ids are strings.
        model_config = ConfigDict(coerce_numbers_to_str=True)

        base_url: str = "https://api.ibkr.com/v1/api"
        #: true (system trust) or a CA file; false only for a loopback test server.
        verify: bool | str = True
        auth: Literal["oauth1", "oauth2"] = "oauth1"
        # OAuth 1.0a (first-party from IBKR's self-service portal, or `tradepipe auth login`)
        consumer_key: str = ""
        consumer_key_file: str = ""
        access_token: str = ""
        access_token_file: str = ""
        access_token_secret: str = ""
        access_token_secret_file: str = ""
        signature_key_file: str = ""
        encryption_key_file: str = ""
        #: The DH prime in hex, or the path of the dhparam.pem file.
        dh_prime: str = ""
        #: Empty: limited_poa, or test_realm for IBKR's TESTCONS consumer.
        realm: str = ""
        authorize_url: str = AUTHORIZE_URL
        # OAuth 2.0
        client_id: str = ""
        key_id: str = ""
        client_key_file: str = ""
        username: str = ""
        public_ip: str = ""
        scope: str = "sso-sessions.write"
        # Both
        #: Tokens obtained (third-party login, live session / bearer tokens), mode 0600.
        auth_file: str = "~/.config/tradepipe/web_api-auth.json"
        #: Renew a token this long before it expires.
        refresh_margin_seconds: float = Field(default=3600.0, ge=60, le=12 * 3600)
        #: IBKR allows 50 per second over OAuth; stay a little below.
        requests_per_second: float = Field(default=40.0, gt=0, le=OAUTH_RATE)

        @field_validator("dh_prime", mode="before")
        @classmethod
        def _prime(cls, value: Any) -> Any:
            # A TOML hex literal (0x…, also what an environment variable is read as) is
            # already the prime's value.
            return format(value, "x") if isinstance(value, int) else value

        @field_validator("base_url")
        @classmethod
        def _url(cls, value: str) -> str:
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError("must be an https URL like https://api.ibkr.com/v1/api")
            return value.rstrip("/")

        @model_validator(mode="before")
        @classmethod
        def _from_files(cls, data: Any) -> Any:
            """``consumer_key_file`` / ``access_token_file``: the value is the file's text."""
            if not isinstance(data, dict):
                return data
            data = dict(data)
            for key in ("consumer_key", "access_token"):
                path = str(data.get(f"{key}_file") or "").strip()
                if path and not str(data.get(key) or "").strip():
                    try:
                        data[key] = Path(path).expanduser().read_text(encoding="utf-8").strip()
                    except OSError as exc:
                        raise ValueError(
                            f"{key}_file: cannot read {path}: {exc.strerror}"
                        ) from None
            return data

    settings: Settings

    @classmethod
    def credential_fields(cls, table: Mapping[str, Any]) -> tuple[str, ...]:
        """The keys that hold this account's credentials, for the chosen ``auth``."""
        return _REQUIRED.get(str(table.get("auth") or "oauth1"), _REQUIRED["oauth1"])

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        missing = [k for k in _REQUIRED[s.auth] if not str(getattr(s, k)).strip()]
        if missing:
            raise ConfigError(
                f"[{TABLE}] auth = {s.auth!r} needs {', '.join(missing)} "
                "(see the README, 'OAuth Web API')",
                key=f"{TABLE}.{missing[0]}",
            )
        self._verify = self._check_verify()
        self.store = AuthFile(s.auth_file or None, key=f"{TABLE}.auth_file")
        self._authenticator: Authenticator | None = None
        if s.auth == "oauth1":
            self._signature_key = _private_key(s.signature_key_file, "signature_key_file")
            self._encryption_key = _private_key(s.encryption_key_file, "encryption_key_file")
            try:
                self._dh = oauth1.parse_dh_prime(s.dh_prime)
            except oauth1.OAuthFormatError as exc:
                raise ConfigError(f"[{TABLE}] {exc}", key=f"{TABLE}.dh_prime") from None
        else:
            self._client_key = _private_key(s.client_key_file, "client_key_file")

    def _check_verify(self) -> bool | str:
        verify = self.settings.verify
        if isinstance(verify, str) and verify.strip().lower() in ("true", "false"):
            verify = verify.strip().lower() == "true"
        if verify is False and not is_loopback(urlsplit(self.base_url).hostname or ""):
            raise ConfigError(
                f"[{TABLE}] verify = false is refused: OAuth endpoints must be verified",
                key=f"{TABLE}.verify",
            )
        if isinstance(verify, str) and not Path(verify).expanduser().is_file():
            raise ConfigError(
                f"[{TABLE}] verify: no certificate file at {verify!r}", key=f"{TABLE}.verify"
            )
        return str(Path(verify).expanduser()) if isinstance(verify, str) else verify

    # -- what the shared broker asks for ------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def realm(self) -> str:
        s = self.settings
        return s.realm or ("test_realm" if s.consumer_key == "TESTCONS" else "limited_poa")

    @property
    def login_hint(self) -> str:
        if self.settings.auth == "oauth2":
            return f"check client_id, key_id, client_key_file, username and public_ip in [{TABLE}]"
        return (
            f"check the OAuth credentials in [{TABLE}] (`tradepipe auth status`); a new consumer "
            "key works only after IBKR's next midnight reset"
        )

    @property
    def tls_verify(self) -> bool | str:
        return self._verify

    def stream_credentials(self, session: str) -> tuple[dict[str, str], dict[str, str]]:
        """OAuth 1.0a: ``?oauth_token=<access token>`` (reference §11); OAuth 2.0: the bearer
        token in ``Authorization`` (IBKR's form for it is not verified). The ``api`` cookie
        carries the bare session value, as ibind sends it over OAuth."""
        headers = {"Cookie": f"api={session}"}
        a = self.authenticator
        if isinstance(a, OAuth1Authenticator):
            return {"oauth_token": a.credentials.access_token}, headers
        return {}, {**headers, "Authorization": f"Bearer {a.current()}"}

    def make_http(self) -> httpx.Client:
        try:
            version = metadata.version("tradepipe")
        except metadata.PackageNotFoundError:
            version = "0"
        headers = {
            "User-Agent": f"tradepipe/{version}",
            "Accept": "*/*",
            "Accept-Encoding": "gzip,deflate",
            "Connection": "keep-alive",
        }
        verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=self._verify)
            if isinstance(self._verify, str)
            else self._verify
        )
        return httpx.Client(verify=verify, timeout=self.settings.timeout_seconds, headers=headers)

    def make_authenticator(self) -> Authenticator:
        return self.authenticator

    def make_auth(self) -> httpx.Auth:
        a = self.authenticator
        return OAuth1Auth(a) if isinstance(a, OAuth1Authenticator) else oauth2.BearerAuth(a)

    # -- credentials ----------------------------------------------------------------------------

    @property
    def authenticator(self) -> Authenticator:
        if self._authenticator is None:
            s = self.settings
            margin = s.refresh_margin_seconds
            if s.auth == "oauth1":
                self._authenticator = OAuth1Authenticator(
                    self.oauth1_credentials(),
                    store=self.store,
                    margin=margin,
                    login_hint=self.login_hint,
                )
            else:
                creds = oauth2.OAuth2Credentials(
                    client_id=s.client_id,
                    key_id=s.key_id,
                    private_key=self._client_key,
                    username=s.username,
                    public_ip=s.public_ip,
                    host=f"{urlsplit(s.base_url).scheme}://{urlsplit(s.base_url).netloc}",
                    scope=s.scope,
                )
                self._authenticator = oauth2.OAuth2Authenticator(
                    creds, store=self.store, margin=margin, login_hint=self.login_hint
                )
        return self._authenticator

    def token_client(self) -> WebApiClient:
        """A client without per-request authentication, for the token requests of a login."""
        return WebApiClient(
            self.base_url, http=self.make_http(), pacer=self.make_pacer(), broker=self.name
        )

    @property
    def consumer(self) -> Consumer:
        return Consumer(self.settings.consumer_key, self._signature_key, self.realm)

    def login_fingerprint(self) -> str:
        return fingerprint("login", self.settings.consumer_key)

    def access_token_source(self) -> str | None:
        """``settings``, ``login`` (from ``tradepipe auth login``) or ``None``."""
        s = self.settings
        if s.access_token and (s.access_token_secret or s.access_token_secret_file):
            return "settings"
        found = self.store.section(LOGIN_SECTION)
        return "login" if found and found.get("for") == self.login_fingerprint() else None

    def oauth1_credentials(self) -> OAuth1Credentials:
        """The OAuth 1.0a credentials; the access token from the settings or a login."""
        s = self.settings
        source = self.access_token_source()
        if source == "settings":
            token, secret = s.access_token, s.access_token_secret
            if not secret:
                secret = _read_text(s.access_token_secret_file, "access_token_secret_file")
        elif source == "login":
            found = self.store.section(LOGIN_SECTION) or {}
            token, secret = str(found.get("access_token")), str(found.get("access_token_secret"))
        else:
            raise ConfigError(
                f"[{TABLE}] needs access_token and access_token_secret (IBKR's OAuth "
                "self-service portal shows them once) or, for a third-party consumer, "
                "a `tradepipe auth login`",
                key=f"{TABLE}.access_token",
            )
        p, g = self._dh
        return OAuth1Credentials(
            consumer_key=s.consumer_key,
            access_token=token,
            access_token_secret=secret,
            signature_key=self._signature_key,
            encryption_key=self._encryption_key,
            dh_prime=p,
            dh_generator=g,
            realm=self.realm,
        )

    def token_status(self) -> dict[str, Any]:
        """How the credentials stand, from the token file: never a token.

        ``method``, ``valid``, ``expires_at`` and ``last_refresh`` (aware
        datetimes or ``None``) and ``message`` are what ``tradepipe snapshot``
        writes to ``token-status.json``; the rest is for ``tradepipe auth status``.
        """
        s = self.settings
        kept = self.store.read()
        data: dict[str, Any] = {"method": s.auth}
        if s.auth == "oauth1":
            kind, section = "live session token", kept.get(OAuth1Authenticator.SECTION) or {}
            login = kept.get(LOGIN_SECTION) or {}
            data["access_token"] = self.access_token_source() or "missing"
            data["realm"] = self.realm
            if data["access_token"] == "login":
                data["logged_in_at"] = _when(login.get("obtained_at"))
                data["paper"] = login.get("is_paper")
        else:
            kind, section = "bearer token", kept.get(oauth2.OAuth2Authenticator.SECTION) or {}
            data["access_token_expires_at"] = _when(section.get("access_expires_at"))
        expires = _when(section.get("expires_at"))
        valid = expires is not None and expires.timestamp() > wall_time()
        data.update(valid=valid, expires_at=expires, last_refresh=_when(section.get("obtained_at")))
        if data.get("access_token") == "missing":
            data["message"] = "no access token: set one, or run `tradepipe auth login`"
        elif expires is None:
            data["message"] = f"no {kind} yet; one is obtained on first use"
        else:
            state = "valid until" if valid else "expired at"
            data["message"] = f"{kind} {state} {expires.isoformat(timespec='seconds')}"
        data["auth_file"] = str(self.store.path or "")
        return data


def _when(epoch: Any) -> dt.datetime | None:
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _read_text(path: str, key: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"[{TABLE}] {key}: cannot read the file ({type(exc).__name__})", key=f"{TABLE}.{key}"
        ) from None
    add_secrets([text])
    return text


def _private_key(path: str, key: str) -> rsa.RSAPrivateKey:
    file = Path(path).expanduser()
    try:
        pem = file.read_bytes()
        mode = file.stat().st_mode
    except OSError as exc:
        raise ConfigError(
            f"[{TABLE}] {key}: cannot read {path!r} ({exc.strerror})", key=f"{TABLE}.{key}"
        ) from None
    # Every line of the key is masked in logs, should any part of it ever reach one.
    add_secrets(
        line.strip() for line in pem.decode(errors="replace").splitlines() if "-----" not in line
    )
    if mode & 0o077:
        log.warning("%s (%s) is readable by other users; chmod 600 it", key, path)
    try:
        return oauth1.load_private_key(pem, f"[{TABLE}] {key}")
    except oauth1.OAuthFormatError as exc:
        raise ConfigError(str(exc), key=f"{TABLE}.{key}") from None
