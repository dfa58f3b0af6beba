"""The OAuth Web API adapter end to end: the CLI a user runs, against the OAuth stand-in.

The stand-in checks every signature the way IBKR does (``standin/oauth_server.py``): the live
session token request's RSA-SHA256 and each API request's HMAC-SHA256, over the host the
adapter addressed. Most tests run it in this process (``inprocess_oauth_gateway``): the adapter
a ``tradepipe`` command builds signs its requests as it would for IBKR and hands them to the
in-process transport, and its own pacer (IBKR's real limits, headroom, the shared pacing file),
session checks and polls wait on the stand-in's virtual clock, so IBKR's pacing costs no wall
time. The first test also runs once against the stand-in in its own process over TLS (verified
against its CA), with the same pacer on the wall's time: a few requests, signed over the wire.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from oauth_fixtures import DH_PRIME, InProcessOAuthGateway, OAuthControls, write_settings
from tradepipe.brokers.ibkr import oauth1
from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.settings import load_settings


@pytest.fixture
def gw(inprocess_oauth_gateway: InProcessOAuthGateway) -> InProcessOAuthGateway:
    return inprocess_oauth_gateway


@pytest.fixture(params=["inprocess", "tls"])
def any_gw(request: pytest.FixtureRequest) -> OAuthControls:
    """The OAuth stand-in in this process, then (a second run) in its own process over TLS."""
    name = "inprocess_oauth_gateway" if request.param == "inprocess" else "oauth_gateway"
    found: OAuthControls = request.getfixturevalue(name)
    return found


def serve(gw: OAuthControls, path: Path, monkeypatch: pytest.MonkeyPatch, **table: Any) -> Path:
    """Commands run in ``path`` use the web_api broker on ``gw`` (``table`` over its settings)."""
    gw.serve_cli(monkeypatch)
    write_settings(path, gw.broker_table(auth_file=str(path / "auth.json"), **table))
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gw: OAuthControls) -> Iterator[Path]:
    yield serve(gw, tmp_path, monkeypatch)
    assert bad_signatures(gw) == []


def bad_signatures(gateway: OAuthControls) -> list[str]:
    """Requests IBKR's checks refused for another reason than a token it revoked."""
    return [r for r in gateway.oauth()["refused"] if "no live session token" not in r]


def tp(*args: str, debug: bool = False) -> Result:
    app = AppContext(settings_path="settings.toml", debug=debug)
    return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)


def ok_json(*args: str) -> Any:
    result = tp(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_broker_status_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_gw: OAuthControls
) -> None:
    serve(any_gw, tmp_path, monkeypatch)
    status = ok_json("broker", "status", "--broker", "web_api")
    assert status["broker"] == "web_api"
    assert status["authenticated"] and status["paper"] and status["account_id"] == "DU***4567"
    state = any_gw.oauth()
    assert state["lst"] == 1 and state["checked"] >= 4
    paths = [r["path"] for r in any_gw.requests()]
    assert paths.index("/iserver/auth/ssodh/init") < paths.index("/iserver/accounts")
    # The next command signs with the token kept in the 0600 file: no new derivation.
    ok_json("broker", "accounts")
    assert any_gw.oauth()["lst"] == 1
    token = ok_json("auth", "status")
    assert token["method"] == "oauth1" and token["valid"]
    assert bad_signatures(any_gw) == []


@pytest.mark.slow
def test_orders_keep_the_reply_policy_and_exactly_once(
    workdir: Path, gw: InProcessOAuthGateway
) -> None:
    table = gw.broker_table(auth_file=str(workdir / "auth.json"), confirm=["o163"])
    write_settings(workdir, table)
    gw.questions(["o163"])
    placed = ok_json("order", "stock", "AAPL", "--side", "buy", "--quantity", "1")
    assert placed["order"]["status"] == "accepted"
    gw.questions(["o163", "o354"])
    refused = tp("order", "stock", "AAPL", "--side", "buy", "--quantity", "2", "--json")
    assert refused.exit_code == 1
    assert "o354" in json.loads(refused.stdout)["order"]["reason"]
    gw.questions([])
    account = gw.account
    gw.fault("POST", f"/iserver/account/{account}/orders", "drop", after=True)
    dropped = ok_json("order", "stock", "AAPL", "--side", "buy", "--quantity", "3")
    assert [e["status"] for e in dropped["events"]] == ["submitted", "unknown", "accepted"]
    assert len(gw.orders()) == 2  # the first and the dropped one, each once
    cid = dropped["order"]["client_order_id"]
    assert [o["client_order_id"] for o in ok_json("broker", "orders")].count(cid) == 1


@pytest.mark.slow
def test_a_run_adopts_the_orders_working_at_ibkr(workdir: Path) -> None:
    placed = ok_json(
        "order", "stock", "MSFT", "--side", "buy", "--quantity", "4", "--type", "limit",
        "--limit-price", "90", "--tif", "gtc",
    )  # fmt: skip
    cid = placed["order"]["client_order_id"]
    result = tp("run-pipeline", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    log = "".join(p.read_text() for p in (workdir / "logs").glob("*.log"))
    # The ledger holds it (tradepipe order recorded it): followed, not recorded again.
    assert f"following order {cid} of run {placed['run_id']}, working at the broker" in log


@pytest.mark.slow
def test_a_revoked_token_is_derived_again(workdir: Path, gw: InProcessOAuthGateway) -> None:
    ok_json("broker", "status")
    gw.revoke()  # e.g. IBKR's nightly reset: the kept token now gets 401
    assert ok_json("broker", "status")["authenticated"]
    gw.gone()  # 410 Gone on the next request
    assert ok_json("broker", "positions") == []
    assert gw.oauth()["lst"] == 3
    gw.set_auth(authenticated=False)  # the brokerage session dropped
    assert ok_json("broker", "status")["authenticated"]


@pytest.mark.slow
def test_run_pipeline_with_oauth_writes_no_secret_anywhere(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gw: InProcessOAuthGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = gw.keys
    assert keys is not None
    table = gw.broker_table(auth_file=str(tmp_path / "state" / "auth.json"))
    # Secrets where the README says to keep them: .secrets.toml and environment variables.
    write_settings(
        tmp_path,
        table,
        secrets={"consumer_key": table["consumer_key"], "access_token": table["access_token"]},
    )
    del table["access_token_secret"]
    write_settings(
        tmp_path,
        table,
        secrets={"consumer_key": table["consumer_key"], "access_token": table["access_token"]},
    )
    monkeypatch.setenv("TRADEPIPE_BROKERS__WEB_API__ACCESS_TOKEN_SECRET", keys.secret_encrypted)
    gw.serve_cli(monkeypatch)
    monkeypatch.chdir(tmp_path)
    # Records are captured before any redaction runs: what is checked is what was logged.
    logging.getLogger("tradepipe").addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        # --debug: debug-level logs, tracebacks on errors.
        outputs = [tp("run-pipeline", "--broker", "web_api", "--json", "--no-progress", debug=True)]
        outputs += [tp("broker", "status"), tp("config", "show"), tp("auth", "status")]
        outputs += [tp("broker", "positions", "--json"), tp("auth", "refresh")]
    finally:
        logging.getLogger("tradepipe").removeHandler(caplog.handler)
    assert outputs[0].exit_code == 0, outputs[0].output
    summary = json.loads(outputs[0].stdout)
    assert summary["broker"] == "web_api"
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs]
    issued = gw.oauth()["issued"]  # every live session token IBKR's side made
    assert len([t for t in issued if t.endswith("=")]) == 2  # run-pipeline, then auth refresh
    prepend = oauth1.prepend(keys.secret_encrypted, keys.encryption)
    written = [r.stdout + r.stderr for r in outputs] + [caplog.text]
    written += [p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*")]
    written.append((tmp_path / "ledger.db").read_bytes().decode("latin-1"))
    assert any("live session token derived" in text for text in written)
    for secret in [*keys.secret_values(), *issued, prepend]:
        for text in written:
            assert secret not in text
    assert "********" in outputs[2].stdout  # config show masks them
    paths = [(r["method"], r["path"]) for r in gw.requests()]
    first_order = paths.index(("POST", f"/iserver/account/{gw.account}/orders"))
    # Start-up reconciliation read IBKR's working orders before anything was sent.
    assert ("GET", "/iserver/account/orders") in paths[:first_order]
    assert oct(os.stat(tmp_path / "state" / "auth.json").st_mode & 0o777) == "0o600"
    assert gw.oauth()["refused"] == []


def test_config_show_masks_every_credential(workdir: Path, gw: InProcessOAuthGateway) -> None:
    result = tp("config", "show")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["brokers"]["web_api"]
    for key in ("consumer_key", "access_token", "access_token_secret"):
        assert shown[key] == "********", key
    assert shown["signature_key_file"].endswith("private_signature.pem")  # a path, not a secret


@pytest.mark.slow
def test_oauth2_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gw: InProcessOAuthGateway
) -> None:
    gw.serve_cli(monkeypatch)
    write_settings(tmp_path, gw.oauth2_table(auth_file=str(tmp_path / "auth.json")))
    monkeypatch.chdir(tmp_path)
    assert ok_json("broker", "status")["authenticated"]
    gw.revoke()
    assert ok_json("broker", "positions") == []
    status = ok_json("auth", "status")
    assert status["method"] == "oauth2" and status["valid"]
    assert [r for r in gw.oauth()["refused"] if "bearer" not in r] == []


@pytest.mark.slow
def test_bad_settings_stop_before_anything_is_sent(
    workdir: Path, gw: InProcessOAuthGateway
) -> None:
    table = gw.broker_table(auth_file=str(workdir / "auth.json"))
    write_settings(workdir, {**table, "dh_prime": "zz"})
    result = tp("broker", "status")
    assert result.exit_code == 2 and "dh_prime" in result.output
    write_settings(workdir, {**table, "signature_key_file": str(workdir / "nope.pem")})
    result = tp("broker", "status")
    assert result.exit_code == 2 and "signature_key_file" in result.output
    write_settings(workdir, {k: v for k, v in table.items() if k != "consumer_key"})
    result = tp("config", "check")
    assert result.exit_code == 2 and "needs consumer_key" in result.output
    write_settings(workdir, {**table, "base_url": "https://api.ibkr.com/v1/api", "verify": False})
    result = tp("broker", "status")
    assert result.exit_code == 2 and "verify = false is refused" in result.output
    assert gw.requests() == []


def test_credentials_from_environment_variables_are_taken_verbatim(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dynaconf reads variables as TOML: 12e45 would be a float, 0x… an int.
    monkeypatch.setenv("TRADEPIPE_BROKERS__WEB_API__ACCESS_TOKEN", "12e45")
    monkeypatch.setenv("TRADEPIPE_BROKERS__WEB_API__CLIENT_ID", "123456")
    monkeypatch.setenv("TRADEPIPE_BROKERS__WEB_API__DH_PRIME", "0x" + format(DH_PRIME, "x"))
    table = load_settings("settings.toml").component_table("brokers", "web_api")
    assert table["access_token"] == "12e45"
    settings = WebApiOAuthBroker.Settings.model_validate(table)
    assert settings.client_id == "123456"
    assert int(settings.dh_prime, 16) == DH_PRIME


def test_snapshot_through_oauth_writes_real_data_and_no_secret(
    workdir: Path, gw: InProcessOAuthGateway
) -> None:
    result = tp("snapshot", "--broker", "web_api", "--out", "site", "--json")
    assert result.exit_code == 0, result.output
    docs = {p.name: json.loads(p.read_text()) for p in (workdir / "site").glob("*.json")}
    assert set(docs) == {
        "portfolio.json",
        "market-data.json",
        "scanner-results.json",
        "token-status.json",
    }
    assert all(d["demo"] is False and d["broker"] == "web_api" for d in docs.values())
    assert all(d["account"] == "DU***4567" for d in docs.values())
    token = docs["token-status.json"]
    assert token["method"] == "oauth1" and token["valid"] is True
    written = "".join(p.read_text() for p in (workdir / "site").iterdir())
    table = gw.broker_table(auth_file=str(workdir / "auth.json"))
    secrets = [str(table[k]) for k in ("consumer_key", "access_token", "access_token_secret")]
    for secret in [*secrets, *gw.oauth()["issued"]]:
        assert secret not in written
    assert "DU1234567" not in written


def test_credentials_can_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "ck").write_text("FILECONS\n")
    (tmp_path / "at").write_text("abc123token\n")
    s = WebApiOAuthBroker.Settings(
        consumer_key_file=str(tmp_path / "ck"), access_token_file=str(tmp_path / "at")
    )
    assert (s.consumer_key, s.access_token) == ("FILECONS", "abc123token")
    with pytest.raises(ValueError, match="consumer_key_file: cannot read"):
        WebApiOAuthBroker.Settings(consumer_key_file=str(tmp_path / "missing"))


@pytest.mark.slow
def test_an_ordinary_day_over_oauth_cold_lists_idle_drops_and_one_budget(
    workdir: Path, gw: InProcessOAuthGateway
) -> None:
    # The first order list of the brokerage session tradepipe opens is cold.
    assert ok_json("broker", "orders", "--broker", "web_api") == []
    placed = ok_json(
        "order", "stock", "AAPL", "--side", "buy", "--quantity", "2",
        "--type", "limit", "--limit-price", "90", "--broker", "web_api",
    )  # fmt: skip
    cid = placed["order"]["client_order_id"]
    lst_before = gw.oauth()["lst"]
    gw.pause(600)  # idle: IBKR closes the brokerage session; the live session token lives
    listed = ok_json("broker", "orders", "--broker", "web_api")
    assert [o["client_order_id"] for o in listed] == [cid]
    assert gw.oauth()["lst"] == lst_before  # reopened with ssodh/init, no new token needed
    journal = gw.requests()
    assert gw.violations() == []
    assert all(r["status"] != 429 for r in journal)
    for path, every in (("/sso/validate", 60.0), ("/iserver/account/orders", 5.0)):
        times = [r["at"] for r in journal if r["path"] == path]
        assert all(b - a >= every for a, b in itertools.pairwise(times)), (path, times)
