"""The read-only reports: the halt state, the equity curve, tax lots, the snapshot files."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from api_support import LIMIT_BUY
from click.testing import CliRunner
from conftest import Plugin
from fastapi.testclient import TestClient
from sqlalchemy import text
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.clock import NEW_YORK
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.services.halt import trading_day
from tradepipe.testing import test_host

NOT_HALTED = {"halted": False, "manual": None, "daily": None}


# -- GET /halt ------------------------------------------------------------------------


def test_the_halt_state_follows_halt_and_resume(client: TestClient) -> None:
    assert client.get("/halt").json() == NOT_HALTED
    client.post("/halt", json={"reason": "fomc"})
    state = client.get("/halt").json()
    assert state["halted"] is True and state["daily"] is None
    assert state["manual"]["reason"] == "fomc"
    assert dt.datetime.fromisoformat(state["manual"]["at"]).tzinfo is not None
    client.post("/resume")
    assert client.get("/halt").json() == NOT_HALTED


def test_todays_loss_limit_halt_is_shown_and_yesterdays_is_not(
    client: TestClient, workdir: Path
) -> None:
    today = trading_day(dt.datetime.now(NEW_YORK))
    halted = {"at": f"{today}T11:00:00-04:00", "loss": "3100.00", "limit": "3000"}
    daily = {"day": today, "start_equity": "100000", "halted": halted}
    (workdir / "halt.json").write_text(json.dumps({"daily": {"paper:x": daily}}))
    state = client.get("/halt").json()
    assert state["halted"] is True and state["manual"] is None
    assert state["daily"] == {"day": today, "start_equity": "100000", **halted}

    daily["day"] = "2020-01-02"
    (workdir / "halt.json").write_text(json.dumps({"daily": {"paper:x": daily}}))
    assert client.get("/halt").json() == NOT_HALTED


@pytest.mark.slow
def test_a_halt_stops_orders_whatever_risk_filters_lists(
    make_client: Callable[..., TestClient],
) -> None:
    with make_client("paper", risk_filters=["min_confidence"]) as client:
        client.post("/halt", json={"reason": "fomc"})
        assert client.get("/halt").json()["halted"] is True
        body = client.post("/orders/stock", json=LIMIT_BUY).json()
        assert body["ok"] is False and body["order"]["status"] == "denied"
        assert body["verdicts"][0]["filter"] == "halt"
        assert "fomc" in body["verdicts"][0]["reason"]
        assert client.get("/orders").json() == []
        client.post("/resume")
        body = client.post("/orders/stock", json=LIMIT_BUY).json()
        assert body["ok"] is True
        # A guard with nothing to say is not recorded: only the listed filter is.
        assert [v["filter"] for v in body["verdicts"]] == ["min_confidence"]


def test_a_damaged_halt_file_is_a_problem(client: TestClient, workdir: Path) -> None:
    (workdir / "halt.json").write_text("{not json")
    answer = client.get("/halt")
    assert answer.status_code == 400
    assert "halt.json" in answer.json()["detail"]


# -- GET /equity ----------------------------------------------------------------------


@pytest.mark.slow
def test_no_ledger_is_an_empty_curve(client: TestClient, workdir: Path) -> None:
    nothing = {"account": None, "account_label": None, "currency": None, "points": []}
    assert client.get("/equity").json() == nothing
    open_engine(f"sqlite:///{workdir / 'ledger.db'}").dispose()  # a ledger with no snapshot
    assert client.get("/equity").json() == nothing


@pytest.mark.slow
def test_every_order_adds_a_point(client: TestClient) -> None:
    runs = [client.post("/orders/stock", json=LIMIT_BUY).json()["run_id"] for _ in range(3)]
    curve = client.get("/equity").json()
    assert curve["currency"] == "USD"
    assert [p["run_id"] for p in curve["points"]] == runs
    first = curve["points"][0]
    assert first["equity"] == "100000.00" and first["cash"] == "100000.00"
    assert dt.datetime.fromisoformat(first["ts"]).tzinfo is not None
    latest = client.get("/equity", params={"limit": 2}).json()["points"]
    assert [p["run_id"] for p in latest] == runs[1:]
    assert client.get("/equity", params={"limit": 0}).status_code == 422


# -- GET /tax/lots and /tax/report ------------------------------------------------------

FILLS = [
    ("e1", "buy", "10", "100", "2025-01-02T15:00:00+00:00"),
    ("e2", "sell", "4", "110", "2025-03-03T15:00:00+00:00"),
]


def _fills(workdir: Path, fills: list[tuple[str, ...]] = FILLS) -> None:
    engine = open_engine(f"sqlite:///{workdir / 'ledger.db'}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, namespace, started_at, env, broker, feed, strategies, "
                "bars, status, account) VALUES ('r1', 'r1', '2025-01-01T00:00:00+00:00', 'test', "
                "'paper', 'list', '[]', 0, 'completed', 'replay:r1')"
            )
        )
        for eid, side, qty, price, ts in fills:
            conn.execute(
                text(
                    "INSERT INTO fill_rows (run_no, execution_id, client_order_id, decision_id, "
                    "symbol, side, quantity, price, commission, multiplier, ts) VALUES "
                    "((SELECT run_no FROM runs WHERE run_id = 'r1'), "
                    ":eid, 'tp-1', 'd1', 'AAPL', :side, :qty, :price, '0', '1', :ts)"
                ),
                {"eid": eid, "side": side, "qty": qty, "price": price, "ts": ts},
            )
    engine.dispose()


@pytest.mark.slow
def test_tax_lots_and_report(client: TestClient, workdir: Path) -> None:
    assert client.get("/tax/lots").status_code == 404
    _fills(workdir)
    lots = client.get("/tax/lots").json()
    assert lots["method"] == "fifo"
    assert [(r["symbol"], r["quantity"]) for r in lots["open"]] == [("AAPL", "6")]
    assert [(r["quantity"], r["gain"], r["term"]) for r in lots["closed"]] == [("4", "40", "short")]
    assert set(client.get("/tax/lots", params={"only": "open"}).json()) == {
        "account",
        "account_label",
        "method",
        "open",
        "notes",
    }
    assert [r["name"] for r in lots["open"]] == ["AAPL/2025-01-02/10@100.00"]
    assert (lots["account"], lots["account_label"]) == ("replay:r1", "simulated")
    assert client.get("/tax/lots", params={"symbol": "MSFT"}).json()["open"] == []
    report = client.get("/tax/report", params={"year": 2025, "method": "hifo"}).json()
    assert report["year"] == 2025 and report["method"] == "hifo"
    assert [r["description"] for r in report["rows"]] == ["4 sh. AAPL"]
    assert report["totals"]["short"]["gain_or_loss"] == "40.00"
    assert client.get("/tax/report", params={"year": 2024}).json()["rows"] == []


#: Two AAPL lots, one sale relieving both (a combined row is acquired VARIOUS), and a
#: sale in the next year; 2025 is short-term, the 2026 sale of the rest long-term.
MORE_FILLS = [
    *FILLS,
    ("e3", "buy", "5", "105", "2025-02-03T15:00:00+00:00"),
    ("e4", "sell", "8", "120", "2025-04-01T15:00:00+00:00"),
    ("e5", "sell", "3", "90", "2026-06-01T15:00:00+00:00"),
]


@pytest.mark.slow
def test_the_tax_report_answers_as_the_cli_does(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    with (workdir / "settings.toml").open("a") as f:
        f.write("[default.tax]\nbasis_reported = false\n")
    _fills(workdir, MORE_FILLS)
    for params, args in (
        ({"year": 2025}, ["--year", "2025"]),
        ({"year": 2025, "combine": "true"}, ["--year", "2025", "--combine"]),
        ({"combine": "true"}, ["--all", "--combine"]),
    ):
        with make_client() as client:
            answer = client.get("/tax/report", params=params)
        assert answer.status_code == 200, answer.text
        printed = CliRunner().invoke(
            cli,
            ["tax", "report", *args, "--json"],
            obj=AppContext(settings_path="settings.toml"),
            catch_exceptions=False,
        )
        assert printed.exit_code == 0, printed.output
        assert answer.json() == json.loads(printed.stdout), args
    # Sale e4 of 8 relieves 6 of e1 (acquired 01/02) and 2 of e3 (02/03): one row, box B.
    # Proceeds 8 x 120 = 960.00; basis 600.00 + 210.00 = 810.00; gain 150.00.
    combined = answer.json()
    assert [(r["description"], r["date_acquired"], r["box"]) for r in combined["rows"]] == [
        ("4 sh. AAPL", "01/02/2025", "B"),
        ("8 sh. AAPL", "VARIOUS", "B"),
        ("3 sh. AAPL", "02/03/2025", "E"),
    ]
    assert combined["rows"][1]["gain_or_loss"] == "150.00"
    assert (combined["year"], combined["period"]) == (None, "all years")


def test_bad_tax_parameters_are_422_naming_them(client: TestClient) -> None:
    for path, params, field in (
        ("/tax/lots", {"method": "random"}, "method"),
        ("/tax/lots", {"only": "both"}, "only"),
        ("/tax/report", {"year": 1800}, "year"),
        ("/tax/report", {"year": "last"}, "year"),
    ):
        answer = client.get(path, params=params)
        assert answer.status_code == 422, (path, params)
        assert field in answer.json()["detail"]


# -- GET /snapshots ---------------------------------------------------------------------


def test_no_snapshot_yet(client: TestClient) -> None:
    body = client.get("/snapshots").json()
    assert body["directory"] == "snapshots"
    assert body["files"] == {
        "portfolio.json": None,
        "market-data.json": None,
        "scanner-results.json": None,
        "token-status.json": None,
    }


def test_snapshot_files_are_read_masked_and_token_status_kept_to_safe_keys(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    (workdir / ".secrets.toml").write_text(
        '[default.brokers.web_api]\naccess_token = "sekret-token-value"\n'
    )
    out = workdir / "snapshots"
    out.mkdir()
    head = {"schema_version": 1, "broker": "paper", "account": "DU1234567", "demo": False}
    portfolio = {**head, "summary": {"account_id": "DU1234567", "cash": "100"}, "positions": []}
    token = {
        **head,
        "method": "oauth1",
        "valid": True,
        "message": "token sekret-token-value for DU1234567",
        "access_token": "sekret-token-value",
    }
    (out / "portfolio.json").write_text(json.dumps(portfolio))
    (out / "token-status.json").write_text(json.dumps(token))
    (out / "market-data.json").write_text("{half a fi")
    with make_client() as client:
        answer = client.get("/snapshots")
    files = answer.json()["files"]
    assert files["portfolio.json"]["summary"] == {"account_id": "***4567", "cash": "100"}
    assert files["market-data.json"] is None and files["scanner-results.json"] is None
    status = files["token-status.json"]
    assert set(status) == {
        "schema_version",
        "broker",
        "account",
        "demo",
        "method",
        "valid",
        "message",
    }
    assert status["account"] == "***4567"
    assert "sekret-token-value" not in answer.text and "DU1234567" not in answer.text


# -- GET /report and /sweeps/{id} --------------------------------------------------------


@pytest.mark.slow
def test_a_run_report_answers_as_tradepipe_report_does(client: TestClient, workdir: Path) -> None:
    from click.testing import CliRunner
    from tradepipe.cli import cli
    from tradepipe.cli.context import AppContext

    def tp(*args: str) -> str:
        # The host the API has: the shared settings configure its live_sim broker.
        app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
        result = CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert client.get("/report").status_code == 404  # no ledger yet
    tp("run-pipeline", "--no-progress")
    answer = client.get("/report", params={"benchmark": "AAPL"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == json.loads(tp("report", "--benchmark", "AAPL", "--json"))
    assert answer.json()["benchmark"] == "AAPL"
    assert client.get("/report", params={"run": "20200101T000000-000000"}).status_code == 404
    assert client.get("/sweeps/sw-0000").status_code == 404
    assert client.get("/sweeps/not-a-sweep").status_code == 422
