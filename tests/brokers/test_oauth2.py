"""OAuth 2.0: the client assertion, the SSO session, bearer tokens renewed before they expire."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from freezegun import freeze_time
from ibkr_fakes import FakeTime
from oauth_fixtures import ACCESS_TOKEN, CONSUMER_KEY, DH_PRIME, OAUTH2_CLIENT, REALM, OAuthKeys
from oauth_respx import BASE, FakeIbkr, mock_ibkr
from standin.oauth_server import Client2, OAuthServer
from tradepipe.brokers.ibkr import oauth2
from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker
from tradepipe.errors import BrokerAuthError, ConfigError

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def ibkr(oauth_keys: OAuthKeys) -> Iterator[FakeIbkr]:
    server = OAuthServer(
        consumer_key=CONSUMER_KEY,
        realm=REALM,
        signature_key=oauth_keys.signature.public_key(),
        encryption_key=oauth_keys.encryption.public_key(),
        dh_prime=DH_PRIME,
        secrets={ACCESS_TOKEN: oauth_keys.secret_plain},
        oauth2=Client2(
            OAUTH2_CLIENT["client_id"],
            OAUTH2_CLIENT["key_id"],
            oauth_keys.client2.public_key(),
            OAUTH2_CLIENT["username"],
        ),
        bearer_seconds=3600,
        now=lambda: time.time(),
    )
    with mock_ibkr(server) as fake:
        yield fake


def settings(keys: OAuthKeys, tmp_path: Path, **extra: object) -> WebApiOAuthBroker.Settings:
    values: dict[str, object] = {
        "base_url": BASE,
        "auth": "oauth2",
        "client_id": OAUTH2_CLIENT["client_id"],
        "key_id": OAUTH2_CLIENT["key_id"],
        "client_key_file": str(keys.client2_file),
        "username": OAUTH2_CLIENT["username"],
        "public_ip": "203.0.113.7",
        "keepalive_seconds": 0,
        "auth_file": str(tmp_path / "auth.json"),
        **extra,
    }
    return WebApiOAuthBroker.Settings.model_validate(values)


@pytest.fixture
def broker(oauth_keys: OAuthKeys, tmp_path: Path) -> Iterator[WebApiOAuthBroker]:
    adapter = WebApiOAuthBroker(settings(oauth_keys, tmp_path))
    fake = FakeTime()
    adapter.monotonic, adapter.sleep = fake.monotonic, fake.sleep
    yield adapter
    adapter.disconnect()


def count(ibkr: FakeIbkr, path: str) -> int:
    return sum(1 for _, p, _ in ibkr.calls if p == path)


def test_connect_with_a_client_assertion_and_an_sso_session(
    ibkr: FakeIbkr, broker: WebApiOAuthBroker
) -> None:
    assert broker.connect().authenticated
    paths = [p for _, p, _ in ibkr.calls]
    assert paths[:2] == ["/oauth2/api/v1/token", "/gw/api/v1/sso-sessions"]
    assert "/iserver/auth/ssodh/init" in paths
    assert all(status == 200 for *_, status in ibkr.calls)


def test_the_assertions_carry_what_ibkr_asks_for(oauth_keys: OAuthKeys, tmp_path: Path) -> None:
    creds = WebApiOAuthBroker(settings(oauth_keys, tmp_path)).authenticator.credentials
    assert isinstance(creds, oauth2.OAuth2Credentials)
    public = oauth_keys.client2.public_key()
    token = oauth2.client_assertion(creds, 1_790_000_000)
    assert jwt.get_unverified_header(token) == {
        "alg": "RS256",
        "kid": OAUTH2_CLIENT["key_id"],
        "typ": "JWT",
    }
    claims = jwt.decode(
        token, public, algorithms=["RS256"], audience="/token", options={"verify_exp": False}
    )
    assert claims["iss"] == claims["sub"] == OAUTH2_CLIENT["client_id"]
    assert claims["exp"] - claims["iat"] == oauth2.ASSERTION_SECONDS
    body = oauth2.session_request(creds, 1_790_000_000)
    claims = jwt.decode(body, public, algorithms=["RS256"], options={"verify_exp": False})
    assert (claims["credential"], claims["ip"]) == (OAUTH2_CLIENT["username"], "203.0.113.7")
    assert creds.host == "https://api.test"
    assert "private_key" not in repr(creds) or "RSAPrivateKey" not in repr(creds)


@pytest.mark.slow
def test_bearer_renewed_before_expiry_and_access_token_only_when_due(
    ibkr: FakeIbkr, broker: WebApiOAuthBroker
) -> None:
    with freeze_time(T0) as clock:
        broker.connect()
        # The bearer lives an hour: the one-hour margin is capped at half its life.
        clock.move_to(T0 + 1800 * SECOND - SECOND)
        broker.positions()
        assert count(ibkr, "/gw/api/v1/sso-sessions") == 1
        clock.move_to(T0 + 1800 * SECOND)
        broker.positions()
        assert count(ibkr, "/gw/api/v1/sso-sessions") == 2
        assert count(ibkr, "/oauth2/api/v1/token") == 1  # the access token is still good
        clock.move_to(T0 + 86399 * SECOND - 3600 * SECOND)
        broker.positions()
        assert count(ibkr, "/oauth2/api/v1/token") == 2
    assert all(status == 200 for *_, status in ibkr.calls)


def test_a_401_renews_the_tokens_and_retries_once(
    ibkr: FakeIbkr, broker: WebApiOAuthBroker
) -> None:
    broker.connect()
    ibkr.fail_next["/portfolio/DU7654321/positions/0"] = [401]
    assert broker.positions()
    assert count(ibkr, "/gw/api/v1/sso-sessions") == 2
    ibkr.server.oauth2 = Client2("other", "kid", ibkr.server.signature_key, "x")
    ibkr.fail_next["/portfolio/DU7654321/positions/0"] = [401]
    with pytest.raises(BrokerAuthError, match="OAuth 2.0 token request"):
        broker.positions()


def test_oauth2_settings_name_what_is_missing(oauth_keys: OAuthKeys, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs public_ip"):
        WebApiOAuthBroker(settings(oauth_keys, tmp_path, public_ip=""))


def test_jwt_expiry_reads_the_claim_or_nothing() -> None:
    assert oauth2.jwt_expiry("not a jwt") is None
    assert oauth2.jwt_expiry(jwt.encode({"exp": 123}, "k" * 32, algorithm="HS256")) == 123.0
    assert oauth2.jwt_expiry(jwt.encode({"a": 1}, "k" * 32, algorithm="HS256")) is None
