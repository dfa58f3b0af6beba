"""Each endpoint against the paper broker and the SQLite ledger, as the CLI would call them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

LIMIT_BUY = {
    "symbol": "AAPL",
    "side": "buy",
    "quantity": 10,
    "order_type": "limit",
    "limit_price": 1,
}
DECISION = {
    "schema_version": 1,
    "id": "ai-42",
    "source": "gpt-test",
    "symbol": "AAPL",
    "action": "buy",
    "confidence": 90,
    "quantity": 10,
    "order_type": "limit",
    "limit_price": 1,
    "rationale": "breakout",
}


def test_health_needs_no_token(client: TestClient) -> None:
    del client.headers["Authorization"]
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_broker_status_and_account(client: TestClient) -> None:
    status = client.get("/broker/status").json()
    assert status["broker"] == "paper"
    assert status["ready"] is True and status["paper"] is True
    account = client.get("/account").json()
    assert account["summary"]["cash"] == "100000.00"
    assert client.get("/positions").json() == []
    assert client.get("/positions/AAPL").status_code == 404


@pytest.mark.slow
def test_a_stock_order_round_trip(client: TestClient) -> None:
    placed = client.post("/orders/stock", json=LIMIT_BUY)
    assert placed.status_code == 200, placed.text
    body = placed.json()
    assert body["ok"] is True and body["sent"] is True
    assert [v["filter"] for v in body["verdicts"]] == [
        "halt",
        "min_confidence",
        "max_position_value",
        "buying_power",
    ]
    cid = body["order"]["client_order_id"]
    assert body["order"]["status"] == "accepted"

    working = client.get("/orders").json()
    assert [o["client_order_id"] for o in working] == [cid]

    canceled = client.delete(f"/orders/{cid}")
    assert canceled.status_code == 202
    assert canceled.json()["client_order_id"] == cid
    assert canceled.json()["status"] == "canceled" and canceled.json()["final"] is True
    assert canceled.json()["ledger_run"]  # the confirmed end went into the ledger
    assert client.get("/orders").json() == []

    ledger = client.get("/ledger/orders", params={"run": body["run_id"]}).json()
    assert ledger["run_id"] == body["run_id"]
    assert [(o["client_order_id"], o["status"]) for o in ledger["orders"]] == [(cid, "canceled")]
    decisions = client.get("/ledger/decisions", params={"run": body["run_id"]}).json()
    assert [d["decision_id"] for d in decisions["decisions"]] == [body["decision"]["id"]]
    assert client.get("/ledger/fills").json()["fills"] == []
    chains = client.get(f"/explain/{cid}").json()
    assert chains[0]["orders"][0]["order"]["client_order_id"] == cid
    # One run's record of it, as `tradepipe explain --run`.
    runs = [c["run_id"] for c in chains]
    assert body["run_id"] in runs
    only = client.get(f"/explain/{cid}", params={"run": body["run_id"]}).json()
    assert [c["run_id"] for c in only] == [body["run_id"]]
    latest = client.get(f"/explain/{cid}", params={"run": "latest"}).json()
    assert [c["run_id"] for c in latest] == [runs[-1]]
    nowhere = client.get(f"/explain/{cid}", params={"run": "nope"})
    assert nowhere.status_code == 404 and "has no run" in nowhere.text


def test_a_dry_run_changes_nothing(client: TestClient, workdir: Path) -> None:
    answer = client.post("/orders/stock", json={**LIMIT_BUY, "dry_run": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sent"] is False and body["run_id"] is None
    assert len(body["verdicts"]) == 4
    assert client.get("/orders").json() == []
    assert not (workdir / "ledger.db").exists()
    assert client.get("/ledger/orders").status_code == 404


def test_what_if_previews_without_sending(client: TestClient) -> None:
    body = client.post("/orders/stock", json={**LIMIT_BUY, "what_if": True}).json()
    assert body["sent"] is False and body["preview"] is not None
    assert client.get("/orders").json() == []


@pytest.mark.slow
def test_a_risk_denial_is_an_answer_not_an_error(client: TestClient) -> None:
    answer = client.post("/orders/stock", json={**LIMIT_BUY, "quantity": 1, "limit_price": 50_000})
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is False and body["order"]["status"] == "denied"


@pytest.mark.slow
def test_halt_is_honoured_until_resume(client: TestClient) -> None:
    halted = client.post("/halt", json={"reason": "lunch"}).json()
    assert halted["halted"] is True and halted["reason"] == "lunch"
    denied = client.post("/orders/stock", json=LIMIT_BUY).json()
    assert denied["order"]["status"] == "denied"
    assert "lunch" in denied["verdicts"][0]["reason"]
    assert client.get("/orders").json() == []
    assert client.post("/resume").json() == {"halted": False, "was_halted": True}
    assert client.post("/orders/stock", json=LIMIT_BUY).json()["ok"] is True


@pytest.mark.slow
def test_a_decision_document_is_executed(client: TestClient) -> None:
    answer = client.post("/decisions/execute", json=DECISION)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"]["id"] == "ai-42" and body["ok"] is True
    assert client.get("/explain/ai-42").json()[0]["decision"]["rationale"] == "breakout"
    again = client.post("/decisions/execute", json=DECISION).json()
    assert again["ok"] is False  # the same decision twice is a duplicate, as in the CLI


@pytest.mark.slow
def test_a_decision_document_dry_run(client: TestClient, workdir: Path) -> None:
    body = client.post("/decisions/execute", params={"dry_run": True}, json=DECISION).json()
    assert body["sent"] is False and body["run_id"] is None
    assert not (workdir / "ledger.db").exists()


def test_an_invalid_decision_is_a_422_naming_the_problem(client: TestClient) -> None:
    answer = client.post("/decisions/execute", json={**DECISION, "confidence": 500})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "confidence" in answer.json()["detail"]


def test_a_live_account_is_refused(make_client: Callable[..., TestClient], workdir: Path) -> None:
    with make_client("live_sim") as client:
        for method, path, body in (
            ("GET", "/account", None),
            ("POST", "/orders/stock", LIMIT_BUY),
        ):
            answer = client.request(method, path, json=body)
            assert answer.status_code == 400, answer.text
            problem: dict[str, Any] = answer.json()
            assert "allow_live" in problem["detail"]
            assert "U1234567" not in answer.text and "U***4567" in answer.text
    if (workdir / "ledger.db").exists():
        with sqlite3.connect(workdir / "ledger.db") as db:
            assert db.execute("SELECT count(*) FROM orders").fetchone() == (0,)


@pytest.mark.slow
def test_unknown_ids_are_404(client: TestClient) -> None:
    assert client.get("/explain/nope").status_code == 404
    client.post("/orders/stock", json=LIMIT_BUY)
    assert client.get("/ledger/orders", params={"run": "nope"}).status_code == 404


def test_an_order_the_decision_model_refuses_is_422(client: TestClient) -> None:
    answer = client.post("/orders/stock", json={**LIMIT_BUY, "limit_price": None})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "limit_price" in answer.json()["detail"]
    bracket = client.post("/orders/stock", json={**LIMIT_BUY, "take_profit": 1, "stop_loss": 2})
    assert bracket.status_code == 400
    assert "take_profit (1) must be above its stop_loss (2)" in bracket.json()["detail"]


@pytest.mark.parametrize(
    ("quantity", "detail"),
    [
        ("0.0000001", "quantity 0.0000001 is not a whole number of shares"),
        ("2.5", "fractional shares need [sizing] fractional = true"),
    ],
)
def test_part_of_a_share_is_422_and_changes_nothing(
    client: TestClient, workdir: Path, quantity: str, detail: str
) -> None:
    # Issue 15.9: the API accepted 0.0000001 shares.
    answer = client.post("/orders/stock", json={**LIMIT_BUY, "quantity": quantity})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert detail in answer.json()["detail"]
    assert client.get("/orders").json() == []
    assert not (workdir / "ledger.db").exists()


def test_halt_without_a_body_and_resume_twice(client: TestClient) -> None:
    assert client.post("/halt").json()["reason"] == "halted by hand"
    assert client.post("/resume").json()["was_halted"] is True
    assert client.post("/resume").json()["was_halted"] is False


def test_canceling_an_unknown_order_is_a_problem(client: TestClient) -> None:
    answer = client.delete("/orders/tp-unknown")
    assert answer.status_code == 422, answer.text
    assert "no order tp-unknown" in answer.json()["detail"]
    assert answer.headers["content-type"] == "application/problem+json"


def test_the_live_runs_status(client: TestClient, workdir: Path) -> None:
    import datetime as dt
    import json
    import os

    from tradepipe.services.status import process_start

    none = client.get("/status")
    assert none.status_code == 200
    assert none.json()["liveness"] == "none" and none.json()["running"] is False
    (workdir / "tradepipe-status.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "state": "running",
                "pid": os.getpid(),
                "process_start": process_start(os.getpid()),
                "run_id": "r7",
                "account": "U***4567",
                "feed": {"name": "synthetic_live", "message": "account U7654321 ok"},
                "updated_at": dt.datetime.now(dt.UTC).isoformat(),
                "every_seconds": 2,
            }
        )
    )
    up = client.get("/status").json()
    assert up["running"] is True and up["liveness"] == "running" and up["run_id"] == "r7"
    assert up["account"] == "***4567" and up["feed"]["message"] == "account U***4321 ok"


@pytest.mark.slow
def test_a_stock_order_naming_a_lot_the_account_does_not_hold_is_denied(
    client: TestClient,
) -> None:
    sell = {**LIMIT_BUY, "side": "sell", "limit_price": 500, "lots": ["AAPL/2025-01-02/10@1.00"]}
    answer = client.post("/orders/stock", json=sell)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is False and body["sent"] is False
    denial = body["verdicts"][-1]
    assert (denial["filter"], denial["outcome"]) == ("named_lots", "deny")
    assert "is not an open long AAPL lot of the account this order trades" in denial["reason"]
    # A name with a space in it is no lot name: 422, nothing recorded.
    bad = client.post("/orders/stock", json={**sell, "lots": ["AAPL 2025"]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "lots.0"
