"""``POST /orders/options``: one option, a combo of legs, or a named strategy from the chain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tradepipe import Bar
from tradepipe.brokers.paper.broker import PaperBroker

EXPIRY = (dt.date.today() + dt.timedelta(days=45)).isoformat()
CALL = {"action": "buy", "right": "C", "strike": 200, "expiry": EXPIRY}
SINGLE = {
    "underlying": "AAPL",
    "legs": [CALL],
    "quantity": 1,
    "order_type": "limit",
    "limit_price": "4.10",
}
SPREAD = {
    **SINGLE,
    "legs": [CALL, {**CALL, "action": "sell", "strike": 210}],
    "limit_price": "3",
}
STRATEGY = {
    "underlying": "AAPL",
    "strategy": {"strategy": "bull_call_spread", "dte": 30, "strikes": [200, 210]},
    "quantity": 2,
    "order_type": "limit",
    "limit_price": "3",
}


@pytest.fixture(autouse=True)
def aapl_at_200(workdir: Path) -> None:
    """The paper account has seen AAPL at 200: its option chain is built around that."""
    broker = PaperBroker(PaperBroker.Settings(state_file="paper.json", symbols=["AAPL"]))
    broker.connect()
    ts = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    broker.on_bar(Bar("AAPL", ts, 200.0, 200.0, 200.0, 200.0, 1000.0))
    broker.disconnect()


def test_a_single_option_is_placed(client: TestClient) -> None:
    answer = client.post("/orders/options", json=SINGLE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True and body["sent"] is True and body["run_id"]
    intent = body["order"]["intent"]
    assert intent["side"] == "buy" and intent["instrument"]["kind"] == "option"
    assert intent["symbol"] == f"AAPL  {EXPIRY[2:4]}{EXPIRY[5:7]}{EXPIRY[8:]}C00200000"
    assert body["verdicts"][0]["filter"] == "halt"
    working = client.get("/orders").json()
    assert [o["client_order_id"] for o in working] == [body["order"]["client_order_id"]]


def test_a_combo_of_legs_is_one_order_on_the_side_given(client: TestClient) -> None:
    body = client.post("/orders/options", json={**SPREAD, "side": "sell"}).json()
    intent = body["order"]["intent"]
    assert body["ok"] is True
    assert intent["side"] == "sell" and intent["instrument"]["kind"] == "combo"
    assert [leg["ratio"] for leg in intent["instrument"]["legs"]] == [1, -1]


def test_a_named_strategy_takes_its_legs_from_the_chain(client: TestClient, workdir: Path) -> None:
    answer = client.post("/orders/options", json={**STRATEGY, "dry_run": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sent"] is False and body["run_id"] is None
    decision = body["decision"]
    assert decision["source"] == "api" and decision["instrument"]["kind"] == "combo"
    assert decision["option_risk"]["strategy"] == "bull_call_spread"
    assert decision["option_risk"]["max_loss"] == "600"  # 3 x 100 x 2
    assert client.get("/orders").json() == []
    assert not (workdir / "ledger.db").exists()

    placed = client.post("/orders/options", json=STRATEGY).json()
    assert placed["ok"] is True and placed["sent"] is True
    again = client.post("/orders/options", json=STRATEGY).json()
    assert again["decision"]["id"] != placed["decision"]["id"]  # two orders, not a duplicate


def test_a_strategy_the_chain_cannot_build_is_422_and_writes_nothing(
    client: TestClient, workdir: Path
) -> None:
    impossible = {**STRATEGY, "strategy": {"strategy": "long_call", "expiry": "2030-01-04"}}
    impossible["strategy"]["strikes"] = [200]
    answer = client.post("/orders/options", json=impossible)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "options" in answer.json()["detail"]
    assert not (workdir / "ledger.db").exists()  # read in a dry run first: no run, no record


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"order_type": "stop", "limit_price": None, "stop_price": "1"}, "stop_price"),
        ({"order_type": "market"}, "limit_price makes no sense"),
        ({"limit_price": None}, "limit_price is required"),
    ],
)
def test_a_strategy_that_cannot_be_sent_so_is_422_before_anything_is_asked(
    client: TestClient, workdir: Path, terms: dict[str, Any], field: str
) -> None:
    answer = client.post("/orders/options", json={**STRATEGY, **terms})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]
    assert not (workdir / "ledger.db").exists()  # a bad request, not a rejected decision


def test_dry_run_and_what_if_send_nothing(client: TestClient, workdir: Path) -> None:
    dry = client.post("/orders/options", json={**SINGLE, "dry_run": True}).json()
    assert dry["sent"] is False and dry["run_id"] is None and len(dry["verdicts"]) == 4
    preview = client.post("/orders/options", json={**SPREAD, "what_if": True}).json()
    assert preview["sent"] is False and preview["preview"] is not None
    assert client.get("/orders").json() == []
    assert not (workdir / "ledger.db").exists()


@pytest.mark.slow
def test_the_halt_is_honoured(client: TestClient) -> None:
    client.post("/halt", json={"reason": "expiry day"})
    for order in (SINGLE, STRATEGY):
        body = client.post("/orders/options", json=order).json()
        assert body["ok"] is False and body["order"]["status"] == "denied"
        assert "expiry day" in body["verdicts"][0]["reason"]
    assert client.get("/orders").json() == []


def test_a_live_account_is_refused(make_client: Callable[..., TestClient]) -> None:
    with make_client("live_sim") as client:
        answer = client.post("/orders/options", json=SINGLE)
    assert answer.status_code == 400, answer.text
    assert "allow_live" in answer.json()["detail"]
    assert "U1234567" not in answer.text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SINGLE, "strategy": STRATEGY["strategy"]}, "legs"),
        ({**SINGLE, "legs": []}, "legs"),
        ({**SINGLE, "legs": [{**CALL, "ratio": 2}]}, "legs"),
        ({**SINGLE, "legs": [{**CALL, "right": "X"}]}, "legs.0.right"),
        ({**SINGLE, "legs": [{**CALL, "strike": -5}]}, "legs.0.strike"),
        ({**SINGLE, "legs": [{**CALL, "expiry": "soon"}]}, "legs.0.expiry"),
        ({**SINGLE, "legs": [CALL] * 5}, "legs"),
        ({**SINGLE, "quantity": 0}, "quantity"),
        ({**SINGLE, "underlying": "AAPL; rm"}, "underlying"),
        ({**SINGLE, "side": "short"}, "side"),
        ({**SINGLE, "stop_loss": 1}, "stop_loss"),
        ({**STRATEGY, "strategy": {"strategy": "butterfly", "dte": 30}}, "strategy.strategy"),
        ({**STRATEGY, "strategy": {"strategy": "long_call", "dte": 30}}, "strategy"),
        ({**SINGLE, "limit_price": None}, "limit_price"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    answer = client.post("/orders/options", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert field in problem["detail"]
    assert client.get("/orders").json() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {**SINGLE, "legs": [{**CALL, "expiry": "2020-01-17"}]},
            "option AAPL 2020-01-17 200 C expired on 2020-01-17",
        ),
        (
            {**SPREAD, "legs": [CALL, {**CALL, "action": "sell", "expiry": "9999-12-31"}]},
            "option AAPL 9999-12-31 200 C expires on 9999-12-31, more than 39 months after",
        ),
        ({**SINGLE, "quantity": "0.0000001"}, "not a whole number of option contracts"),
        ({**SPREAD, "quantity": "1.5"}, "quantity 1.5 is not a whole number of combos"),
        (
            {**STRATEGY, "strategy": {**STRATEGY["strategy"], "dte": None, "expiry": "2020-01-17"}},
            "options.expiry: an option expired on 2020-01-17",
        ),
        ({**STRATEGY, "quantity": "0.5"}, "quantity 0.5 is not a whole number of combos"),
    ],
)
def test_an_order_that_breaks_the_order_rules_is_422_and_changes_nothing(
    client: TestClient, workdir: Path, body: dict[str, Any], detail: str
) -> None:
    account = (workdir / "paper.json").read_bytes()
    answer = client.post("/orders/options", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert detail in answer.json()["detail"]
    assert (workdir / "paper.json").read_bytes() == account
    assert not (workdir / "ledger.db").exists()
