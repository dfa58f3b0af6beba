"""The live session token's life: derived, checked, kept, renewed before expiry and on 401/410.

IBKR's side runs in-process (``oauth_respx.py`` around ``standin/oauth_server.py``) so freezegun can
move the clock of both sides; the adapter is the real ``web_api`` broker.
"""

from __future__ import annotations

import datetime as dt
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from ibkr_fakes import FakeTime
from oauth_fixtures import ACCESS_TOKEN, CONSUMER_KEY, DH_PRIME, REALM, OAuthKeys
from oauth_respx import BASE, FakeIbkr, mock_ibkr
from standin.oauth_server import OAuthServer, Refused
from tradepipe.brokers.ibkr.authfile import AuthFile
from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker
from tradepipe.errors import BrokerAuthError, BrokerUnavailableError

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def ibkr_server(keys: OAuthKeys) -> OAuthServer:
    return OAuthServer(
        consumer_key=CONSUMER_KEY,
        realm=REALM,
        signature_key=keys.signature.public_key(),
        encryption_key=keys.encryption.public_key(),
        dh_prime=DH_PRIME,
        secrets={ACCESS_TOKEN: keys.secret_plain},
        now=lambda: time.time(),  # looked up per call: freezegun's clock
    )


def make_broker(keys: OAuthKeys, auth_file: Path, **extra: Any) -> WebApiOAuthBroker:
    settings = WebApiOAuthBroker.Settings(
        base_url=BASE,
        consumer_key=CONSUMER_KEY,
        access_token=ACCESS_TOKEN,
        access_token_secret=keys.secret_encrypted,
        signature_key_file=str(keys.signature_file),
        encryption_key_file=str(keys.encryption_file),
        dh_prime=str(keys.dhparam_file),
        keepalive_seconds=0,
        auth_file=str(auth_file),
        **extra,
    )
    adapter = WebApiOAuthBroker(settings)
    fake = FakeTime()  # IBKR's pacing without the waiting
    adapter.monotonic, adapter.sleep = fake.monotonic, fake.sleep
    return adapter


@pytest.fixture
def ibkr(oauth_keys: OAuthKeys) -> Iterator[FakeIbkr]:
    with mock_ibkr(ibkr_server(oauth_keys)) as fake:
        yield fake


@pytest.fixture
def broker(oauth_keys: OAuthKeys, tmp_path: Path) -> Iterator[WebApiOAuthBroker]:
    adapter = make_broker(oauth_keys, tmp_path / "auth.json")
    yield adapter
    adapter.disconnect()


def refused(ibkr: FakeIbkr) -> list[tuple[str, str, int]]:
    return [c for c in ibkr.calls if c[2] >= 400]


def test_connect_derives_checks_and_signs(ibkr: FakeIbkr, broker: WebApiOAuthBroker) -> None:
    status = broker.connect()
    assert status.authenticated and status.is_paper
    assert ibkr.lst_count() == 1
    paths = [path for _, path, _ in ibkr.calls]
    assert paths[0] == "/oauth/live_session_token"
    assert "/iserver/auth/ssodh/init" in paths  # the brokerage session is opened after the LST
    assert not refused(ibkr)  # every request passed IBKR's signature check


def test_renewed_before_expiry_not_earlier_and_exactly_at_the_margin(
    ibkr: FakeIbkr, broker: WebApiOAuthBroker
) -> None:
    with freeze_time(T0) as clock:
        broker.connect()
        token = broker.authenticator.token
        assert token is not None
        assert token.expires == T0 + 24 * HOUR  # the server's live_session_token_expiration
        clock.move_to(T0 + 23 * HOUR - dt.timedelta(seconds=1))
        assert broker.positions()
        assert ibkr.lst_count() == 1
        clock.move_to(T0 + 23 * HOUR)  # one hour before expiry: the margin, exactly
        before = len(ibkr.calls)
        assert broker.positions()
        after = ibkr.calls[before:]
        assert after[0][1] == "/oauth/live_session_token"  # before the read went out
        assert ibkr.lst_count() == 2
        renewed = broker.authenticator.token
        assert renewed is not None and renewed.expires == T0 + 47 * HOUR
    assert not refused(ibkr)


def test_a_token_past_its_expiry_is_never_sent(ibkr: FakeIbkr, broker: WebApiOAuthBroker) -> None:
    with freeze_time(T0) as clock:
        broker.connect()
        clock.move_to(T0 + 30 * HOUR)  # e.g. the machine slept
        assert broker.positions()
    assert ibkr.lst_count() == 2
    assert not refused(ibkr)


@pytest.mark.parametrize("status", [401, 410])
def test_refused_mid_run_rederives_and_retries_the_read_once(
    ibkr: FakeIbkr, broker: WebApiOAuthBroker, status: int
) -> None:
    broker.connect()
    path = "/portfolio/DU7654321/positions/0"
    ibkr.fail_next[path] = [status]
    positions = broker.positions()
    assert [p.symbol for p in positions] == ["AAPL"]
    assert ibkr.lst_count() == 2
    assert [c[2] for c in ibkr.calls if c[1] == path] == [status, 200]


def test_refused_twice_is_an_auth_error(ibkr: FakeIbkr, broker: WebApiOAuthBroker) -> None:
    broker.connect()
    ibkr.fail_next["/portfolio/DU7654321/positions/0"] = [401, 401]
    with pytest.raises(BrokerAuthError, match="answered 401"):
        broker.positions()
    assert ibkr.lst_count() == 2  # one renewal, one retry: no loop


def test_a_token_ibkr_does_not_prove_is_never_used(
    ibkr: FakeIbkr, broker: WebApiOAuthBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = ibkr.server.live_session_token

    def forged(url: str, header: str | None) -> dict[str, Any]:
        return {**real(url, header), "live_session_token_signature": "ab" * 20}

    monkeypatch.setattr(ibkr.server, "live_session_token", forged)
    with pytest.raises(BrokerAuthError, match="does not match IBKR's live_session_token_signature"):
        broker.connect()
    assert [path for _, path, _ in ibkr.calls] == ["/oauth/live_session_token"]
    assert broker.authenticator.token is None
    assert AuthFile(tmp_path / "auth.json").section("oauth1_lst") is None


def test_ibkr_refusing_the_credentials_says_why(
    ibkr: FakeIbkr, oauth_keys: OAuthKeys, tmp_path: Path
) -> None:
    ibkr.server.consumer_key = "OTHERKEYS"
    adapter = make_broker(oauth_keys, tmp_path / "auth.json")
    with pytest.raises(BrokerAuthError, match="invalid consumer.*midnight reset"):
        adapter.connect()
    assert adapter.status().authenticated is False


def test_the_token_is_kept_owner_only_and_reused_by_the_next_process(
    ibkr: FakeIbkr, oauth_keys: OAuthKeys, tmp_path: Path
) -> None:
    first = make_broker(oauth_keys, tmp_path / "state" / "auth.json")
    first.connect()
    first.disconnect()
    path = tmp_path / "state" / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    second = make_broker(oauth_keys, path)
    assert second.connect().authenticated
    second.disconnect()
    assert ibkr.lst_count() == 1
    # A token kept for other credentials is not used.
    store = AuthFile(path)
    kept = store.section("oauth1_lst")
    assert kept is not None
    store.put("oauth1_lst", {**kept, "for": "someone-else"})
    third = make_broker(oauth_keys, path)
    third.connect()
    third.disconnect()
    assert ibkr.lst_count() == 2
    assert not refused(ibkr)


def test_a_token_file_others_can_read_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    store = AuthFile(path)
    store.put("x", {"a": 1})
    path.chmod(0o644)
    assert store.section("x") == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_renewal_leaves_the_request_unsent(
    ibkr: FakeIbkr, broker: WebApiOAuthBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with freeze_time(T0) as clock:
        broker.connect()

        def down(url: str, header: str | None) -> dict[str, Any]:
            raise Refused(503, "Service Unavailable")

        monkeypatch.setattr(ibkr.server, "live_session_token", down)
        clock.move_to(T0 + 23 * HOUR)
        before = len(ibkr.calls)
        with pytest.raises(BrokerUnavailableError) as caught:
            broker.client.post("/iserver/account/DU7654321/orders", {"orders": []})
    assert caught.value.context["maybe_sent"] is False
    assert [path for _, path, _ in ibkr.calls[before:]] == ["/oauth/live_session_token"]
