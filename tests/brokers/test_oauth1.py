"""OAuth 1.0a arithmetic: against an independent server, against ibind, and at its edges.

The keys are 2048-bit RSA keys made once per session and the DH group is RFC 3526's group
14 (see ``oauth_fixtures.py``). ``ibind`` — a client many IBKR users run against the real
service — is the oracle: given the same keys, prime, DH secret, nonce and timestamp, its
functions must produce byte-for-byte what ours do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

import pytest
from ibind.oauth import oauth1a as ibind
from oauth_fixtures import ACCESS_TOKEN, CONSUMER_KEY, DH_PRIME, REALM, OAuthKeys, dhparam_pem
from standin.oauth_server import OAuthServer, java_bytes, parse_oauth_header
from tradepipe.brokers.ibkr import oauth1

URL = "https://api.ibkr.com/v1/api"
A = int("5" * 64, 16)  # a fixed 256-bit DH secret
NONCE = "Zq7Yx0pLmN3bV5cW"
TIMESTAMP = 1_790_000_000


def server(keys: OAuthKeys) -> OAuthServer:
    return OAuthServer(
        consumer_key=CONSUMER_KEY,
        realm=REALM,
        signature_key=keys.signature.public_key(),
        encryption_key=keys.encryption.public_key(),
        dh_prime=DH_PRIME,
        secrets={ACCESS_TOKEN: keys.secret_plain},
    )


def lst_header(keys: OAuthKeys, a: int = A, nonce: str = NONCE) -> tuple[str, str]:
    """Our Authorization header for the LST request, and the prepend."""
    prepend = oauth1.prepend(keys.secret_encrypted, keys.encryption)
    params = oauth1.oauth_params(
        CONSUMER_KEY,
        ACCESS_TOKEN,
        "RSA-SHA256",
        TIMESTAMP,
        nonce,
        diffie_hellman_challenge=oauth1.dh_challenge(a, DH_PRIME),
    )
    base = oauth1.base_string("POST", URL + "/oauth/live_session_token", params, prefix=prepend)
    params["oauth_signature"] = oauth1.rsa_sha256_signature(base, keys.signature)
    return oauth1.authorization_header(params, REALM), prepend


# -- against IBKR's side ----------------------------------------------------------------------


def test_the_server_accepts_our_lst_request_and_proves_the_same_token(
    oauth_keys: OAuthKeys,
) -> None:
    ibkr = server(oauth_keys)
    header, prepend = lst_header(oauth_keys)
    assert prepend == oauth_keys.secret_plain.hex()
    answer = ibkr.live_session_token(URL + "/oauth/live_session_token", header)
    lst = oauth1.live_session_token(answer["diffie_hellman_response"], A, DH_PRIME, prepend)
    assert oauth1.lst_signature_matches(lst, CONSUMER_KEY, answer["live_session_token_signature"])
    assert ibkr.lsts[ACCESS_TOKEN][0] == base64.b64decode(lst)
    # A request signed with that LST passes IBKR's check; with another key it does not.
    params = oauth1.oauth_params(CONSUMER_KEY, ACCESS_TOKEN, "HMAC-SHA256", TIMESTAMP, "n2")
    url = URL + "/portfolio/accounts"
    params["oauth_signature"] = oauth1.hmac_sha256_signature(
        oauth1.base_string("GET", url, params), lst
    )
    ibkr.check("GET", url, oauth1.authorization_header(params, REALM))
    bad = dict(params, oauth_nonce="n3")
    bad["oauth_signature"] = oauth1.hmac_sha256_signature(
        oauth1.base_string("GET", url, {k: v for k, v in bad.items() if k != "oauth_signature"}),
        base64.b64encode(b"x" * 20).decode(),
    )
    with pytest.raises(Exception, match="invalid signature"):
        ibkr.check("GET", url, oauth1.authorization_header(bad, REALM))


def test_a_signature_over_a_tampered_base_string_is_refused(oauth_keys: OAuthKeys) -> None:
    header, _ = lst_header(oauth_keys)
    with pytest.raises(Exception, match="invalid signature"):
        server(oauth_keys).live_session_token(URL + "/oauth/other", header)


def test_a_wrong_token_signature_is_detected() -> None:
    lst = base64.b64encode(secrets.token_bytes(20)).decode()
    good = oauth1.lst_signature(lst, CONSUMER_KEY)
    assert oauth1.lst_signature_matches(lst, CONSUMER_KEY, good.upper())
    assert not oauth1.lst_signature_matches(lst, CONSUMER_KEY, "0" * 40)
    assert not oauth1.lst_signature_matches(lst, "OTHERKEYX", good)


# -- the header -------------------------------------------------------------------------------


def test_header_has_realm_first_then_sorted_quoted_parameters(oauth_keys: OAuthKeys) -> None:
    header, _ = lst_header(oauth_keys)
    assert header.startswith(f'OAuth realm="{REALM}", diffie_hellman_challenge="')
    names = [part.split("=")[0] for part in header[len("OAuth ") :].split(", ")]
    assert names[0] == "realm" and names[1:] == sorted(names[1:])
    parsed = oauth1.parse_authorization(header)
    realm, independent = parse_oauth_header(header)
    assert realm == REALM and parsed["oauth_nonce"] == NONCE
    # The signature travels URL-encoded exactly once.
    assert "%" in independent["oauth_signature"] and "%25" not in independent["oauth_signature"]
    assert base64.b64decode(parsed["oauth_signature"])


def test_base_string_leaves_out_the_query_and_encodes_once() -> None:
    base = oauth1.base_string("get", f"{URL}/x", {"b": "2", "a": "1 2"})
    assert base == "GET&https%3A%2F%2Fapi.ibkr.com%2Fv1%2Fapi%2Fx&a%3D1+2%26b%3D2"
    assert oauth1.base_string("POST", "u", {}, prefix="ab") == "abPOST&u&"


# -- number edges -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 2**2047 + 5])
def test_shared_secret_bytes_are_java_big_integer_bytes(value: int) -> None:
    assert oauth1.signed_bytes(value) == java_bytes(value) == bytes(ibind.to_byte_array(value))


def test_dh_prime_from_hex_colons_or_a_dhparam_file(tmp_path: Path, oauth_keys: OAuthKeys) -> None:
    hex_prime = format(DH_PRIME, "x")
    assert oauth1.parse_dh_prime(hex_prime) == (DH_PRIME, 2)
    assert oauth1.parse_dh_prime("0x" + hex_prime.upper()) == (DH_PRIME, 2)
    colons = ":".join(hex_prime[i : i + 2] for i in range(0, len(hex_prime), 2))
    assert oauth1.parse_dh_prime(f"    00:{colons[:30]}\n    {colons[30:]}\n") == (DH_PRIME, 2)
    assert oauth1.parse_dh_prime(str(oauth_keys.dhparam_file)) == (DH_PRIME, 2)
    odd = tmp_path / "dh5.pem"
    odd.write_text(dhparam_pem(DH_PRIME, 5))
    assert oauth1.parse_dh_prime(str(odd)) == (DH_PRIME, 5)
    for bad in ("nope", "abc", str(tmp_path / "missing.pem"), "-----BEGIN DH PARAMETERS-----\n!!"):
        with pytest.raises(oauth1.OAuthFormatError, match="dh_prime"):
            oauth1.parse_dh_prime(bad)


def test_a_response_outside_the_group_is_refused() -> None:
    for bad in ("1", format(DH_PRIME - 1, "x"), "zz"):
        with pytest.raises(oauth1.OAuthFormatError):
            oauth1.live_session_token(bad, A, DH_PRIME, "00")


def test_a_secret_decrypted_with_another_key_is_not_the_secret(oauth_keys: OAuthKeys) -> None:
    # OpenSSL 3's implicit rejection: PKCS#1 v1.5 decryption with the wrong key mostly
    # yields a pseudo-random plaintext instead of an error (IBKR then refuses the
    # signature). When the ciphertext is not below the other key's modulus — it
    # depends on the keys made for this session — decryption fails outright. Either
    # way the secret never comes out.
    try:
        wrong = oauth1.prepend(oauth_keys.secret_encrypted, oauth_keys.signature)
    except oauth1.OAuthFormatError as exc:
        assert "access_token_secret" in str(exc)
    else:
        assert wrong != oauth_keys.secret_plain.hex()
    with pytest.raises(oauth1.OAuthFormatError, match="access_token_secret"):
        oauth1.prepend("not base64!", oauth_keys.encryption)


def test_expiration_read_as_expiry_or_as_time_of_computation() -> None:
    now = 1_790_000_000_000
    day = 24 * 3600 * 1000
    assert oauth1.lst_expiry_ms(now + day, now) == now + day
    assert oauth1.lst_expiry_ms(now - 5, now) == now - 5 + day


def test_a_key_that_is_not_rsa_or_not_pem_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(oauth1.OAuthFormatError, match="RSA"):
        oauth1.load_private_key(ec_pem, "k")
    with pytest.raises(oauth1.OAuthFormatError, match="PEM"):
        oauth1.load_private_key(b"garbage", "k")


# -- ibind as the oracle ----------------------------------------------------------------------


@pytest.fixture
def ibind_config(oauth_keys: OAuthKeys) -> ibind.OAuth1aConfig:
    return ibind.OAuth1aConfig(
        oauth_rest_url=URL + "/",
        live_session_token_endpoint="oauth/live_session_token",
        access_token=ACCESS_TOKEN,
        access_token_secret=oauth_keys.secret_encrypted,
        consumer_key=CONSUMER_KEY,
        dh_prime=format(DH_PRIME, "x"),
        encryption_key_fp=str(oauth_keys.encryption_file),
        signature_key_fp=str(oauth_keys.signature_file),
        dh_generator=2,
        realm=REALM,
    )


@pytest.fixture
def fixed_ibind(monkeypatch: pytest.MonkeyPatch) -> None:
    """ibind draws its nonce, timestamp and DH secret itself: give it ours."""
    monkeypatch.setattr(ibind, "generate_oauth_nonce", lambda: NONCE)
    monkeypatch.setattr(ibind, "generate_request_timestamp", lambda: str(TIMESTAMP))
    monkeypatch.setattr(ibind, "generate_dh_random_bytes", lambda: format(A, "x"))


def test_ibind_computes_the_same_prepend_challenge_and_lst(oauth_keys: OAuthKeys) -> None:
    key = ibind.read_private_key(private_key_fp=str(oauth_keys.encryption_file))
    prepend = oauth1.prepend(oauth_keys.secret_encrypted, oauth_keys.encryption)
    assert ibind.calculate_live_session_token_prepend(oauth_keys.secret_encrypted, key) == prepend
    dh_hex = format(DH_PRIME, "x")
    for a in (A, secrets.randbits(256), secrets.randbits(256)):
        assert ibind.generate_dh_challenge(dh_hex, format(a, "x"), 2) == oauth1.dh_challenge(
            a, DH_PRIME
        )
        answer = server(oauth_keys).live_session_token(
            URL + "/oauth/live_session_token", lst_header(oauth_keys, a, nonce=f"n{a}")[0]
        )
        response = answer["diffie_hellman_response"]
        ours = oauth1.live_session_token(response, a, DH_PRIME, prepend)
        theirs = ibind.calculate_live_session_token(dh_hex, format(a, "x"), response, prepend)
        assert ours == theirs
        proof = answer["live_session_token_signature"]
        assert ibind.validate_live_session_token(theirs, proof, CONSUMER_KEY)
        assert oauth1.lst_signature_matches(ours, CONSUMER_KEY, proof)


@pytest.mark.usefixtures("fixed_ibind")
def test_ibind_sends_the_same_lst_request(
    oauth_keys: OAuthKeys, ibind_config: ibind.OAuth1aConfig
) -> None:
    sent: dict[str, Any] = {}

    class Client:
        base_url = URL + "/"

        def post(self, endpoint: str, extra_headers: dict[str, str]) -> Any:
            sent.update(extra_headers, endpoint=endpoint)
            answer = server(oauth_keys).live_session_token(
                self.base_url + endpoint, extra_headers["Authorization"]
            )
            return type("Result", (), {"data": answer})()

    lst, _expires, proof = ibind.req_live_session_token(Client(), ibind_config)  # type: ignore[arg-type]
    ours, _prepend = lst_header(oauth_keys)
    assert sent["Authorization"] == ours  # the whole header, signature included
    assert oauth1.lst_signature_matches(lst, CONSUMER_KEY, proof)


@pytest.mark.usefixtures("fixed_ibind")
def test_ibind_signs_api_requests_the_same(
    oauth_keys: OAuthKeys, ibind_config: ibind.OAuth1aConfig
) -> None:
    lst = base64.b64encode(hmac.new(b"k", b"m", hashlib.sha1).digest()).decode()
    url = URL + "/iserver/account/DU1234567/orders"
    headers = ibind.generate_oauth_headers(ibind_config, "POST", url, live_session_token=lst)
    params = oauth1.oauth_params(CONSUMER_KEY, ACCESS_TOKEN, "HMAC-SHA256", TIMESTAMP, NONCE)
    params["oauth_signature"] = oauth1.hmac_sha256_signature(
        oauth1.base_string("POST", url, params), lst
    )
    assert headers["Authorization"] == oauth1.authorization_header(params, REALM)
    base = "POST&x&y"
    rsa_key = ibind.read_private_key(private_key_fp=str(oauth_keys.signature_file))
    assert ibind.generate_rsa_sha_256_signature(base, rsa_key) == oauth1.rsa_sha256_signature(
        base, oauth_keys.signature
    )
    assert ibind.generate_base_string("GET", url, {"b": "2", "a": "1"}) == oauth1.base_string(
        "GET", url, {"b": "2", "a": "1"}
    )
