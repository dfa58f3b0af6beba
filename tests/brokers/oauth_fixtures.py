"""Fixtures for the OAuth Web API adapter: keys, and the gateway stand-in in OAuth mode.

``oauth_keys`` (once per session) are the consumer's RSA keys — signature, encryption, and an
OAuth 2.0 client key, 2048 bits as IBKR requires, PKCS#1 PEM files as ``openssl genrsa``
writes them — the RFC 3526 2048-bit MODP group as the DH prime (hex and ``dhparam.pem``),
and an access-token secret encrypted to the public encryption key the way IBKR issues it.

The OAuth stand-in (:mod:`standin.oauth`: the gateway stand-in behind IBKR's OAuth checks)
runs on either surface, with the same configuration and the same control methods
(:class:`OAuthControls`: the gateway's ``Driver`` calls plus ``oauth()``, ``revoke()``,
``gone()``, ``broker_table()`` and ``oauth2_table()``, the ``[brokers.web_api]`` tables that
reach it, and ``browser()``, a person's browser for its ``/authorize`` page):

* ``inprocess_oauth_gateway`` (paper account ``DU1234567``), or
  ``start_inprocess_oauth_gateway(account=…, lst_lifetime_ms=…)`` for others: an
  :class:`InProcessOAuthGateway` in this process, on a virtual ``clock``, reached through
  :class:`~standin.transport.OAuthStandinTransport`. ``serve_cli(monkeypatch)`` and
  ``broker(**settings)`` put the OAuth adapter on it with its own pacer (IBKR's real limits,
  headroom, the shared pacing file) waiting on that clock, as ``inprocess_support.py`` does
  for the Client Portal adapter. What most tests use.
* ``oauth_gateway``, or ``start_oauth_gateway(account=…, lst_lifetime_ms=…)``: ``python -m
  standin.oauth`` in its own process over HTTPS, on the wall's time. Same pattern as
  ``gateway``: 127.0.0.1, a free port, stopped by pid at teardown. The CLI reaches it through
  ``broker_table()`` with nothing patched, so IBKR's pacing costs real seconds there: keep
  its tests to a few requests (TLS and signing over the wire).
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from gateway_support import (
    PAPER_ACCOUNT,
    Gateway,
    GatewayCerts,
    _stop,
    launch,
    toml_lines,
    write_broker_settings,
)
from inprocess_support import InProcessGateway
from standin.driver import Driver
from standin.oauth import OAuthFront, build
from standin.pacing import OAUTH_RATE
from standin.transport import OAuthStandinTransport
from standin.wire import CONTROL_PREFIX
from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker

STANDIN = "standin.oauth"
CONSUMER_KEY = "TPQZKEYXW"
ACCESS_TOKEN = "c0ffee5eed1234abcd99"
REALM = "limited_poa"
#: RFC 3526, group 14: a fixed, well-known 2048-bit safe prime with generator 2.
DH_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
OAUTH2_CLIENT = {"client_id": "tp-client-7781", "key_id": "tp-kid-1", "username": "tpuser9"}


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _public(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass(frozen=True)
class OAuthKeys:
    folder: Path
    signature: rsa.RSAPrivateKey = field(repr=False)
    encryption: rsa.RSAPrivateKey = field(repr=False)
    client2: rsa.RSAPrivateKey = field(repr=False)
    #: The access-token secret's plaintext (what IBKR keeps) and its encrypted form (ours).
    secret_plain: bytes = field(repr=False)
    secret_encrypted: str = field(repr=False)

    @property
    def signature_file(self) -> Path:
        return self.folder / "private_signature.pem"

    @property
    def encryption_file(self) -> Path:
        return self.folder / "private_encryption.pem"

    @property
    def client2_file(self) -> Path:
        return self.folder / "client2.pem"

    @property
    def dhparam_file(self) -> Path:
        return self.folder / "dhparam.pem"

    def secret_values(self) -> list[str]:
        """Everything that must never be printed or logged (PEM bodies line by line)."""
        values = [CONSUMER_KEY, ACCESS_TOKEN, self.secret_encrypted, self.secret_plain.hex()]
        for path in (self.signature_file, self.encryption_file, self.client2_file):
            values += [
                line for line in path.read_text().splitlines() if line and "-----" not in line
            ]
        return values


@pytest.fixture(scope="session")
def oauth_keys(tmp_path_factory: pytest.TempPathFactory) -> OAuthKeys:
    folder = tmp_path_factory.mktemp("oauth-keys")
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    signature, encryption, client2 = keys
    plain = secrets.token_bytes(32)
    encrypted = base64.b64encode(encryption.public_key().encrypt(plain, padding.PKCS1v15()))
    found = OAuthKeys(folder, signature, encryption, client2, plain, encrypted.decode())
    for key, path in zip(
        keys, (found.signature_file, found.encryption_file, found.client2_file), strict=True
    ):
        path.write_bytes(_pem(key))
        path.chmod(0o600)
    found.dhparam_file.write_text(dhparam_pem(DH_PRIME, 2))
    return found


def _der_integer(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_length(len(raw)) + raw


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def dhparam_pem(prime: int, generator: int) -> str:
    """What ``openssl dhparam`` writes (PKCS#3), built by hand: cryptography deprecates FFDH."""
    body = _der_integer(prime) + _der_integer(generator)
    der = b"\x30" + _der_length(len(body)) + body
    b64 = base64.b64encode(der).decode()
    lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN DH PARAMETERS-----\n{lines}\n-----END DH PARAMETERS-----\n"


class OAuthControls(Driver):
    """The OAuth stand-in's own control calls and settings tables, wherever it runs."""

    keys: OAuthKeys | None

    def oauth(self) -> dict[str, Any]:
        """``{"lst": derivations, "refused": [...], "checked": n, "issued": [...]}``: see
        :mod:`standin.oauth`."""
        result: dict[str, Any] = self._get("/oauth")
        return result

    def revoke(self) -> None:
        """Forget every live session and bearer token: the next request gets 401."""
        self._post("/oauth", {"action": "revoke"})

    def gone(self, times: int = 1) -> None:
        """Revoke, and answer the next ``times`` API requests 410 Gone."""
        self._post("/oauth", {"action": "gone", "times": times})

    def broker_table(self, **extra: Any) -> dict[str, Any]:
        """A ``[brokers.web_api]`` table (OAuth 1.0a first-party) for this stand-in."""
        assert self.keys is not None
        return {
            "base_url": self.base_url,
            "verify": self.verify,
            "account_id": self.account,
            "consumer_key": CONSUMER_KEY,
            "access_token": ACCESS_TOKEN,
            "access_token_secret": self.keys.secret_encrypted,
            "signature_key_file": str(self.keys.signature_file),
            "encryption_key_file": str(self.keys.encryption_file),
            "dh_prime": format(DH_PRIME, "x"),
            **extra,
        }

    def oauth2_table(self, **extra: Any) -> dict[str, Any]:
        """A ``[brokers.web_api]`` table with ``auth = "oauth2"`` for this stand-in."""
        assert self.keys is not None
        return {
            "base_url": self.base_url,
            "verify": self.verify,
            "account_id": self.account,
            "auth": "oauth2",
            "client_id": OAUTH2_CLIENT["client_id"],
            "key_id": OAUTH2_CLIENT["key_id"],
            "client_key_file": str(self.keys.client2_file),
            "username": OAUTH2_CLIENT["username"],
            "public_ip": "203.0.113.7",
            **extra,
        }

    @property
    def origin(self) -> str:
        """``https://host:port``, where IBKR's pages (``/authorize``) are."""
        return self.base_url.removesuffix("/v1/api")

    def browser(self, **kwargs: Any) -> httpx.Client:
        """A person's browser: IBKR's pages from this stand-in, other sites over the network."""
        raise NotImplementedError


@dataclass
class OAuthGateway(OAuthControls, Gateway):
    """The OAuth stand-in in its own process over HTTPS, on the wall's time."""

    keys: OAuthKeys | None = None

    def serve_cli(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Nothing to reroute: the CLI reaches this process through ``base_url``
        (:meth:`broker_table`), with the adapter's own pacer on the wall's time."""

    def browser(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(verify=self.ssl_context(), **kwargs)


class InProcessOAuthGateway(OAuthControls, InProcessGateway):
    """The OAuth stand-in in this process on a virtual clock, and OAuth adapters wired to it.

    ``broker()`` and ``serve_cli()`` work as for the gateway (:class:`InProcessGateway`) with
    the OAuth adapter, ``WebApiOAuthBroker``: its requests, signed by its own ``httpx.Auth``
    for ``base_url``'s host, go through :class:`~standin.transport.OAuthStandinTransport`,
    and its pacer (IBKR's limits, headroom, the shared pacing file), session checks and
    polls wait on :attr:`clock`. Only its token clocks (LST and JWT timestamps) read the
    wall, which the virtual clock starts at and runs ahead of by the waits it has skipped.
    """

    adapter = WebApiOAuthBroker

    def __init__(self, keys: OAuthKeys, account: str = PAPER_ACCOUNT, **config: Any) -> None:
        # Over OAuth IBKR allows 50 requests a second per session (10 through a gateway).
        super().__init__(account, behaviour={"rate": OAUTH_RATE})
        self.keys = keys
        self.standin.authenticated = False  # OAuth: the brokerage session waits for ssodh/init
        self.front = OAuthFront(build(standin_config(keys, **config), now=self.clock.time))
        self.transport = OAuthStandinTransport(self.standin, self.front)
        self.token_check = self.front.stream_token_ok

    def _send(self, method: str, path: str, raw: bytes) -> tuple[int, str]:
        url = f"{self.origin}{CONTROL_PREFIX}{path}"
        answer = self.front.answer(method, url, {}, raw)
        if answer is None:
            return super()._send(method, path, raw)
        return answer.status, answer.body.decode()

    def broker(self, **settings: Any) -> WebApiOAuthBroker:
        """An OAuth adapter on this stand-in (:meth:`broker_table`'s settings, ``settings``
        over them; tokens kept in memory unless ``auth_file`` is given)."""
        settings.setdefault("auth_file", "")
        adapter = super().broker(**settings)
        assert isinstance(adapter, WebApiOAuthBroker)
        return adapter

    def browser(self, **kwargs: Any) -> httpx.Client:
        client = httpx.Client(mounts={self.origin: self.transport}, **kwargs)
        self._clients.append(client)
        return client


def standin_config(keys: OAuthKeys, **extra: Any) -> dict[str, Any]:
    return {
        "consumer_key": CONSUMER_KEY,
        "realm": REALM,
        "signature_public_pem": _public(keys.signature),
        "encryption_public_pem": _public(keys.encryption),
        "dh_prime": format(DH_PRIME, "x"),
        "access_token": ACCESS_TOKEN,
        "access_token_secret": keys.secret_plain.hex(),
        "oauth2": {**OAUTH2_CLIENT, "public_pem": _public(keys.client2)},
        **extra,
    }


@pytest.fixture
def start_oauth_gateway(
    gateway_certs: GatewayCerts, oauth_keys: OAuthKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., OAuthGateway]]:
    """``start_oauth_gateway(account=…, **config)`` starts a stand-in; all stop at teardown."""
    running: list[tuple[subprocess.Popen[bytes], httpx.Client]] = []

    def start(account: str = PAPER_ACCOUNT, **config: Any) -> OAuthGateway:
        folder = tmp_path_factory.mktemp("oauth-standin")
        config_path = folder / "oauth.json"
        config_path.write_text(json.dumps(standin_config(oauth_keys, **config)))
        proc, control, port = launch(
            STANDIN, gateway_certs, folder, "--oauth", str(config_path), "--account", account
        )
        running.append((proc, control))
        return OAuthGateway(
            base_url=f"https://127.0.0.1:{port}/v1/api",
            ca_path=str(gateway_certs.ca_path),
            account=account,
            port=port,
            pid=proc.pid,
            _control=control,
            keys=oauth_keys,
        )

    yield start
    for proc, control in reversed(running):
        control.close()
        _stop(proc)


@pytest.fixture
def oauth_gateway(start_oauth_gateway: Callable[..., OAuthGateway]) -> OAuthGateway:
    """The OAuth stand-in for the paper account DU1234567."""
    return start_oauth_gateway()


@pytest.fixture
def start_inprocess_oauth_gateway(
    oauth_keys: OAuthKeys,
) -> Iterator[Callable[..., InProcessOAuthGateway]]:
    """``start_inprocess_oauth_gateway(account=…, **config)``; all closed at teardown."""
    made: list[InProcessOAuthGateway] = []

    def start(account: str = PAPER_ACCOUNT, **config: Any) -> InProcessOAuthGateway:
        gateway = InProcessOAuthGateway(oauth_keys, account, **config)
        made.append(gateway)
        return gateway

    yield start
    for gateway in reversed(made):
        gateway.close()


@pytest.fixture
def inprocess_oauth_gateway(
    start_inprocess_oauth_gateway: Callable[..., InProcessOAuthGateway],
) -> InProcessOAuthGateway:
    """The OAuth stand-in in this process for the paper account DU1234567, on a virtual clock."""
    return start_inprocess_oauth_gateway()


def write_settings(
    path: Path, table: dict[str, Any], secrets: dict[str, Any] | None = None
) -> None:
    public = {k: v for k, v in table.items() if k not in (secrets or {})}
    write_broker_settings(path, "web_api", public)
    if secrets:
        path.joinpath(".secrets.toml").write_text(
            f"[default.brokers.web_api]\n{toml_lines(secrets)}\n"
        )
