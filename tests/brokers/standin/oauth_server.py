"""IBKR's side of OAuth, for tests: checks signatures the way IBKR does and issues tokens.

Written from the reference (§3a, §3b), independently of tradepipe's own code —
it imports nothing from tradepipe — so that a mistake made on one side is not
repeated on the other. The crypto is ``cryptography`` (RSA) and the standard
library (HMAC, DH arithmetic with Python ints). Used in-process by respx-based
tests and by the OAuth stand-in (:mod:`standin.oauth`), in this process or its own.

OAuth 1.0a: :meth:`OAuthServer.live_session_token` checks the RSA-SHA256
signature over ``prepend + base string`` with the consumer's public signature
key, answers a ``diffie_hellman_response`` and the ``live_session_token_signature``
of the LST it computed; :meth:`OAuthServer.check` verifies the HMAC-SHA256 of
every API request with that LST. Third-party: request token, authorization,
access token (its secret RSA-encrypted to the consumer's public encryption
key). OAuth 2.0: the JWT client assertion, the SSO session, bearer tokens.
A refused request is ``Refused(status, error)``: IBKR answers 401 with
``{"error": …}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

DAY_MS = 24 * 3600 * 1000


class Refused(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def java_bytes(value: int) -> bytes:
    """Java's ``BigInteger.toByteArray``: minimal two's complement, big-endian."""
    hex_digits = format(value, "x")
    if len(hex_digits) % 2:
        hex_digits = "0" + hex_digits
    raw = bytes.fromhex(hex_digits)
    return b"\x00" + raw if raw[0] & 0x80 else raw


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_oauth_header(header: str | None) -> tuple[str | None, dict[str, str]]:
    """``(realm, params)`` of an ``OAuth k="v", …`` header; the signature URL-decoded."""
    if not header or not header.startswith("OAuth "):
        raise Refused(401, "missing OAuth authorization header")
    params: dict[str, str] = {}
    for item in header[6:].split(", "):
        key, _, quoted = item.partition("=")
        if len(quoted) < 2 or not (quoted.startswith('"') and quoted.endswith('"')):
            raise Refused(401, f"malformed authorization header near {key!r}")
        params[key] = quoted[1:-1]
    realm = params.pop("realm", None)
    return realm, params


def base_string(method: str, url: str, params: dict[str, str]) -> str:
    pairs = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return "&".join([method, quote_plus(url), quote_plus(pairs)])


@dataclass
class Client2:
    """An OAuth 2.0 client registered with IBKR."""

    client_id: str
    key_id: str
    public_key: rsa.RSAPublicKey
    username: str


@dataclass
class OAuthServer:
    consumer_key: str
    realm: str
    signature_key: rsa.RSAPublicKey
    encryption_key: rsa.RSAPublicKey
    dh_prime: int
    dh_generator: int = 2
    #: access token → plaintext access-token secret (what IBKR generated).
    secrets: dict[str, bytes] = field(default_factory=dict)
    oauth2: Client2 | None = None
    lst_lifetime_ms: int = DAY_MS
    bearer_seconds: int = 3600
    is_paper: bool = True
    now: Callable[[], float] = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)
    lsts: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # token → (LST, expiry)
    nonces: set[tuple[str, str]] = field(default_factory=set)
    requests: dict[str, dict[str, str]] = field(default_factory=dict)  # request token → state
    access_tokens: dict[str, float] = field(default_factory=dict)  # OAuth 2.0 access → expiry
    bearers: dict[str, float] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    # -- OAuth 1.0a ---------------------------------------------------------------------------

    def _oauth1(self, header: str | None, method: str, *, token: bool = True) -> dict[str, str]:
        realm, params = parse_oauth_header(header)
        if params.get("oauth_consumer_key") != self.consumer_key or realm != self.realm:
            raise Refused(401, "id: 41, error: invalid consumer")
        if params.get("oauth_signature_method") != method:
            raise Refused(401, f"signature method must be {method}")
        stamp, nonce = params.get("oauth_timestamp", ""), params.get("oauth_nonce", "")
        if not (stamp.isdigit() and len(stamp) == 10) or not nonce:
            raise Refused(401, "bad timestamp or nonce")
        if (stamp, nonce) in self.nonces:
            raise Refused(401, "nonce already used")
        self.nonces.add((stamp, nonce))
        if token and not params.get("oauth_token"):
            raise Refused(401, "missing oauth_token")
        return params

    def _verify_rsa(self, signed: str, params: dict[str, str]) -> None:
        signature = base64.b64decode(unquote_plus(params["oauth_signature"]))
        try:
            self.signature_key.verify(
                signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise Refused(401, "invalid signature") from None

    def live_session_token(self, url: str, header: str | None) -> dict[str, Any]:
        with self.lock:
            params = self._oauth1(header, "RSA-SHA256")
            token = params["oauth_token"]
            secret = self.secrets.get(token)
            if secret is None:
                raise Refused(401, f"LST failed, error: No access secret key found for {token}")
            challenge = params.get("diffie_hellman_challenge")
            if not challenge:
                raise Refused(400, "missing diffie_hellman_challenge")
            unsigned = {k: v for k, v in params.items() if k != "oauth_signature"}
            self._verify_rsa(secret.hex() + base_string("POST", url, unsigned), params)
            a_public = int(challenge, 16)
            b = secrets.randbits(256)
            shared = pow(a_public, b, self.dh_prime)
            lst = hmac.new(java_bytes(shared), secret, hashlib.sha1).digest()
            expiry = int(self.now() * 1000) + self.lst_lifetime_ms
            self.lsts[token] = (lst, expiry)
            self.log.append({"event": "lst", "token": token, "lst": base64.b64encode(lst).decode()})
            return {
                "diffie_hellman_response": format(pow(self.dh_generator, b, self.dh_prime), "x"),
                "live_session_token_signature": hmac.new(
                    lst, self.consumer_key.encode(), hashlib.sha1
                ).hexdigest(),
                "live_session_token_expiration": expiry,
            }

    def check(self, method: str, url: str, header: str | None) -> None:
        """Verify an API request (HMAC-SHA256 keyed by the LST, or an OAuth 2.0 bearer)."""
        with self.lock:
            if header and header.startswith("Bearer "):
                expiry = self.bearers.get(header[7:])
                if expiry is None or expiry <= self.now():
                    raise Refused(401, "invalid or expired bearer token")
                return
            params = self._oauth1(header, "HMAC-SHA256")
            found = self.lsts.get(params["oauth_token"])
            if found is None:
                raise Refused(401, "no live session token for this access token")
            lst, expiry = found
            if expiry <= self.now() * 1000:
                raise Refused(401, "live session token expired")
            unsigned = {k: v for k, v in params.items() if k != "oauth_signature"}
            expected = hmac.new(
                lst, base_string(method, url, unsigned).encode(), hashlib.sha256
            ).digest()
            given = base64.b64decode(unquote_plus(params["oauth_signature"]))
            if not hmac.compare_digest(expected, given):
                raise Refused(401, "invalid signature")

    def revoke(self) -> None:
        """Forget every LST and bearer token (IBKR then answers 401)."""
        with self.lock:
            self.lsts.clear()
            self.bearers.clear()

    # -- third-party OAuth 1.0a ---------------------------------------------------------------

    def request_token(self, url: str, header: str | None) -> dict[str, Any]:
        with self.lock:
            params = self._oauth1(header, "RSA-SHA256", token=False)
            callback = params.get("oauth_callback")
            if not callback:
                raise Refused(400, "missing oauth_callback")
            unsigned = {k: v for k, v in params.items() if k != "oauth_signature"}
            self._verify_rsa(base_string("POST", url, unsigned), params)
            request = secrets.token_hex(10)
            self.requests[request] = {"callback": callback}
            return {"oauth_token": request}

    def authorize(self, request: str) -> tuple[str, str]:
        """The person approves: ``(callback, verifier)``."""
        with self.lock:
            state = self.requests.get(request)
            if state is None:
                raise Refused(400, "unknown request token")
            state["verifier"] = secrets.token_hex(10)
            return state["callback"], state["verifier"]

    def access_token(self, url: str, header: str | None) -> dict[str, Any]:
        with self.lock:
            params = self._oauth1(header, "RSA-SHA256")
            state = self.requests.get(params["oauth_token"])
            if state is None or "verifier" not in state:
                raise Refused(401, "request token not authorized")
            if params.get("oauth_verifier") != state["verifier"]:
                raise Refused(401, "invalid verifier")
            unsigned = {k: v for k, v in params.items() if k != "oauth_signature"}
            self._verify_rsa(base_string("POST", url, unsigned), params)
            del self.requests[params["oauth_token"]]
            token, secret = secrets.token_hex(10), secrets.token_bytes(32)
            self.secrets[token] = secret
            encrypted = self.encryption_key.encrypt(secret, padding.PKCS1v15())
            return {
                "is_paper": self.is_paper,
                "oauth_token": token,
                "oauth_token_secret": base64.b64encode(encrypted).decode(),
            }

    # -- OAuth 2.0 ----------------------------------------------------------------------------

    def _jwt(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        client = self.oauth2
        assert client is not None
        try:
            head_b64, claims_b64, sig_b64 = token.split(".")
            head = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(claims_b64))
            client.public_key.verify(
                b64url_decode(sig_b64),
                f"{head_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, InvalidSignature):
            raise Refused(401, "invalid client assertion") from None
        if head.get("alg") != "RS256" or head.get("kid") != client.key_id:
            raise Refused(401, "unknown key")
        if claims.get("iss") != client.client_id or not claims.get("exp", 0) > self.now():
            raise Refused(401, "assertion not valid")
        if audience is not None and (claims.get("aud"), claims.get("sub")) != (
            audience,
            client.client_id,
        ):
            raise Refused(401, "wrong audience or subject")
        return dict(claims)

    def _issue(self, lifetime: int) -> tuple[str, float]:
        expiry = self.now() + lifetime
        claims = {"exp": int(expiry), "iat": int(self.now()), "jti": secrets.token_hex(8)}
        head = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{head}.{b64url(json.dumps(claims).encode())}.", expiry

    def oauth2_token(self, form: bytes, content_type: str | None) -> dict[str, Any]:
        with self.lock:
            if content_type != "application/x-www-form-urlencoded":
                raise Refused(400, "form body expected")
            fields = {k: v[0] for k, v in parse_qs(form.decode()).items()}
            if fields.get("grant_type") != "client_credentials" or fields.get(
                "client_assertion_type"
            ) != ("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"):
                raise Refused(400, "unsupported grant")
            self._jwt(fields.get("client_assertion", ""), audience="/token")
            token, expiry = self._issue(86399)
            self.access_tokens[token] = expiry
            return {
                "access_token": token,
                "token_type": "Bearer",
                "scope": fields.get("scope", ""),
                "expires_in": 86399,
            }

    def sso_session(self, header: str | None, body: bytes, content_type: str | None) -> Any:
        with self.lock:
            access = (header or "").removeprefix("Bearer ")
            if self.access_tokens.get(access, 0) <= self.now():
                raise Refused(401, "invalid access token")
            if content_type != "application/jwt":
                raise Refused(400, "application/jwt body expected")
            claims = self._jwt(body.decode())
            assert self.oauth2 is not None
            if claims.get("credential") != self.oauth2.username or not claims.get("ip"):
                raise Refused(400, "credential and ip are required")
            bearer, expiry = self._issue(self.bearer_seconds)
            self.bearers[bearer] = expiry
            self.log.append({"event": "bearer", "access": access, "bearer": bearer})
            return {"active": True, "access_token": bearer, "token_type": "Bearer"}


def load_public(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key
