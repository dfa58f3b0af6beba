"""OAuth 1.0a as IBKR does it: the arithmetic, no I/O (reference §3a).

IBKR's first-party OAuth derives a *live session token* (LST) through a
Diffie-Hellman exchange and signs every request with it:

1. **prepend** — the access-token secret, base64, RSA-encrypted (PKCS#1 v1.5)
   to the consumer's public encryption key: decrypt it with the private
   encryption key and hex-encode the plaintext (:func:`prepend`).
2. **challenge** — ``hex(g^a mod p)`` for a random 256-bit ``a``
   (:func:`dh_challenge`).
3. ``POST /oauth/live_session_token`` signed RSA-SHA256 (PKCS#1 v1.5) with the
   private *signature* key over ``prepend + base string``
   (:func:`rsa_sha256_signature`).
4. **LST** — ``K = B^a mod p`` from IBKR's ``diffie_hellman_response`` B;
   ``LST = base64(HMAC-SHA1(key=K as a signed big-endian byte array,
   msg=bytes.fromhex(prepend)))`` (:func:`live_session_token`). It is checked
   against IBKR's ``live_session_token_signature``, ``hex(HMAC-SHA1(key=LST,
   msg=consumer_key))`` (:func:`lst_signature_matches`), before any use.
5. Every other request is signed HMAC-SHA256 keyed by the LST
   (:func:`hmac_sha256_signature`).

The header is ``OAuth realm="…", k="v", …``: realm first, the other
parameters sorted by name, values double-quoted, ``, `` between them
(:func:`authorization_header`). The signature value is base64, then
``quote_plus``-encoded, once.

Where the sources disagree, this follows what is known to work against the
real service (ibind, which IBKR users run daily) and says so where it matters:
IBKR's OpenAPI example headers put ``realm`` last without spaces and show the
signature percent-encoded twice; its ``live_session_token_expiration`` is
described both as an expiry and as the time of computation (see
:func:`lst_expiry_ms`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote_plus, unquote_plus

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: Generator IBKR's Diffie-Hellman groups use (``openssl dhparam`` default).
DH_GENERATOR = 2
#: IBKR's LSTs live 24 hours from their computation.
LST_LIFETIME_MS = 24 * 3600 * 1000
_NONCE_ALPHABET = string.ascii_letters + string.digits


class OAuthFormatError(ValueError):
    """A key, prime or token is not in a form this module can use."""


# -- keys and parameters ---------------------------------------------------------------------


def load_private_key(pem: bytes, what: str) -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key from PEM (PKCS#1 or PKCS#8)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise OAuthFormatError(
            f"{what}: not an unencrypted PEM private key ({type(exc).__name__})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise OAuthFormatError(f"{what}: an RSA key is needed, not {type(key).__name__}")
    return key


def parse_dh_prime(value: str) -> tuple[int, int]:
    """``(p, g)`` from a hex prime or the path of an ``openssl dhparam`` PEM file.

    A hex prime gets IBKR's generator 2; a PEM file carries its own generator.
    """
    text = value.strip()
    # `openssl dhparam -text` prints the prime as colon-separated hex over many lines.
    digits = "".join(text.lower().removeprefix("0x").split()).replace(":", "")
    if digits and all(c in string.hexdigits for c in digits):
        prime = int(digits, 16)
        if prime.bit_length() < 512:
            raise OAuthFormatError(f"dh_prime: a {prime.bit_length()}-bit prime is too small")
        return prime, DH_GENERATOR
    if "BEGIN" not in text and not Path(text).expanduser().is_file():
        raise OAuthFormatError(
            "dh_prime: expected the prime in hex or the path of a dhparam.pem file"
        )
    pem = text if "BEGIN" in text else Path(text).expanduser().read_text(errors="replace")
    return _dh_parameters(pem)


def _dh_parameters(pem: str) -> tuple[int, int]:
    """``(p, g)`` of a PEM ``DH PARAMETERS`` block (PKCS#3: SEQUENCE { p, g [, length] }).

    Read by hand: ``cryptography`` deprecates its finite-field DH support, and
    two DER integers are all there is to it.
    """
    body = pem.split("-----BEGIN DH PARAMETERS-----", 1)[-1].split("-----END", 1)[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        seq, rest = _der(der, 0x30)
        p, seq = _der(seq, 0x02)
        g, _ = _der(seq, 0x02)
    except (ValueError, IndexError):
        raise OAuthFormatError("dh_prime: the file is not PEM Diffie-Hellman parameters") from None
    if rest:
        raise OAuthFormatError("dh_prime: trailing data after the DH parameters")
    return int.from_bytes(p, "big"), int.from_bytes(g, "big")


def _der(data: bytes, tag: int) -> tuple[bytes, bytes]:
    """The content of the DER element of ``tag`` at the start of ``data``, and what follows."""
    if data[0] != tag:
        raise ValueError("unexpected DER tag")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    end = offset + length
    if end > len(data):
        raise ValueError("truncated DER element")
    return data[offset:end], data[end:]


# -- the live session token ------------------------------------------------------------------


def prepend(access_token_secret: str, encryption_key: rsa.RSAPrivateKey) -> str:
    """The decrypted access-token secret, hex: what the LST request is prefixed with.

    With the wrong key OpenSSL 3 does not fail (PKCS#1 v1.5 "implicit
    rejection" returns a pseudo-random plaintext), so a wrong encryption key
    shows only later, as IBKR refusing the live session token request.
    """
    try:
        encrypted = base64.b64decode(access_token_secret, validate=True)
        plain = encryption_key.decrypt(encrypted, padding.PKCS1v15())
    except ValueError:
        raise OAuthFormatError(
            "access_token_secret: cannot be decrypted with the private encryption key "
            "(wrong key, or not the base64 secret IBKR issued)"
        ) from None
    return plain.hex()


def dh_random() -> int:
    """A fresh random 256-bit DH secret ``a``."""
    return secrets.randbits(256)


def dh_challenge(a: int, prime: int, generator: int = DH_GENERATOR) -> str:
    """``g^a mod p`` in hex, without ``0x``."""
    return format(pow(generator, a, prime), "x")


def signed_bytes(value: int) -> bytes:
    """``value`` big-endian with a sign bit, like Java's ``BigInteger.toByteArray``.

    IBKR computes the LST in Java: a leading zero byte is added when the top
    bit of the first byte is set (the bit length is a multiple of 8).
    """
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def live_session_token(dh_response: str, a: int, prime: int, prepend_hex: str) -> str:
    """The LST (base64) from IBKR's ``diffie_hellman_response`` and our secret ``a``."""
    try:
        b = int(dh_response, 16)
    except ValueError:
        raise OAuthFormatError("IBKR's diffie_hellman_response is not hex") from None
    if not 1 < b < prime - 1:
        raise OAuthFormatError("IBKR's diffie_hellman_response is outside the DH group")
    shared = pow(b, a, prime)
    digest = hmac.new(signed_bytes(shared), bytes.fromhex(prepend_hex), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def lst_signature(lst: str, consumer_key: str) -> str:
    """``hex(HMAC-SHA1(key=LST, msg=consumer_key))``: what IBKR sends to prove the LST."""
    return hmac.new(base64.b64decode(lst), consumer_key.encode(), hashlib.sha1).hexdigest()


def lst_signature_matches(lst: str, consumer_key: str, signature: str) -> bool:
    """Whether IBKR's ``live_session_token_signature`` proves ``lst`` (constant time)."""
    return hmac.compare_digest(lst_signature(lst, consumer_key), signature.strip().lower())


def lst_expiry_ms(expiration_ms: int, now_ms: int) -> int:
    """When an LST expires, from IBKR's ``live_session_token_expiration``.

    IBKR's prose and ibind read the field as the expiry; IBKR's OpenAPI
    document calls it "time of live session token computation … valid for 24
    hours from this time". A value that is not in the future cannot be an
    expiry of a token just made, so it is read the second way.
    """
    return expiration_ms if expiration_ms > now_ms + 60_000 else expiration_ms + LST_LIFETIME_MS


# -- signing ---------------------------------------------------------------------------------


def nonce() -> str:
    """16 random letters and digits: unique per request (what ibind sends)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(16))


def base_string(method: str, url: str, params: Mapping[str, str], prefix: str = "") -> str:
    """``prefix + METHOD & quote_plus(url) & quote_plus(sorted k=v joined by &)``.

    ``url`` has no query string, and only the OAuth parameters are in
    ``params``: IBKR's documentation shows no others, and this is what ibind
    sends and IBKR accepts, query-string endpoints included (ibind#107).
    Values go in unencoded; the joined string is encoded once.
    """
    joined = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{prefix}{method.upper()}&{quote_plus(url)}&{quote_plus(joined)}"


def rsa_sha256_signature(base: str, signature_key: rsa.RSAPrivateKey) -> str:
    """RSA-SHA256 (PKCS#1 v1.5) of ``base``: base64, then ``quote_plus``."""
    raw = signature_key.sign(base.encode(), padding.PKCS1v15(), hashes.SHA256())
    return quote_plus(base64.b64encode(raw).decode())


def hmac_sha256_signature(base: str, lst: str) -> str:
    """HMAC-SHA256 of ``base`` keyed by the LST's bytes: base64, then ``quote_plus``."""
    raw = hmac.new(base64.b64decode(lst), base.encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(raw).decode())


def oauth_params(
    consumer_key: str,
    token: str | None,
    method: str,
    timestamp: int,
    nonce_value: str,
    **extra: str,
) -> dict[str, str]:
    """The ``oauth_*`` parameters of one request (plus e.g. ``diffie_hellman_challenge``)."""
    params = {
        "oauth_consumer_key": consumer_key,
        "oauth_nonce": nonce_value,
        "oauth_signature_method": method,
        "oauth_timestamp": str(timestamp),
        **extra,
    }
    if token:
        params["oauth_token"] = token
    return params


def authorization_header(params: Mapping[str, str], realm: str) -> str:
    """``OAuth realm="…", …``: realm first, the rest sorted by name, values quoted."""
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(params.items()))
    return f'OAuth realm="{realm}", {rest}'


def parse_authorization(header: str) -> dict[str, str]:
    """The parameters of an ``OAuth …`` header (``oauth_signature`` URL-decoded).

    Used by the test stand-in and by nothing that sends; here so that sending
    and reading cannot drift apart.
    """
    if not header.startswith("OAuth "):
        raise OAuthFormatError("not an OAuth authorization header")
    out: dict[str, str] = {}
    for part in header[len("OAuth ") :].split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise OAuthFormatError(f"malformed OAuth header parameter {key!r}")
        out[key] = value[1:-1]
    if "oauth_signature" in out:
        out["oauth_signature"] = unquote_plus(out["oauth_signature"])
    return out
