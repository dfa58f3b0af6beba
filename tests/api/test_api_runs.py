"""The short run each order or decision call opens writes what happened, and only that."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from api_support import LIMIT_BUY
from click.testing import CliRunner
from conftest import Plugin
from fastapi.testclient import TestClient
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.testing import test_host

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

TABLES = ("runs", "decisions", "rejected_decisions", "verdicts", "orders", "order_events", "fills")
#: A buy the max_position_value filter denies outright (over 10000 at any price >= 1).
TOO_BIG = {**LIMIT_BUY, "quantity": 20_000, "limit_price": 50_000}


def counts(workdir: Path) -> dict[str, int]:
    with sqlite3.connect(workdir / "ledger.db") as db:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def order_rows(workdir: Path, cid: str) -> list[tuple[str, str]]:
    with sqlite3.connect(workdir / "ledger.db") as db:
        return db.execute(
            "SELECT run_id, source FROM orders WHERE client_order_id = ?", (cid,)
        ).fetchall()


def events(workdir: Path, cid: str) -> list[str]:
    with sqlite3.connect(workdir / "ledger.db") as db:
        rows = db.execute(
            "SELECT status FROM order_events WHERE client_order_id = ? ORDER BY id", (cid,)
        )
        return [status for (status,) in rows]


def test_repeated_calls_record_a_working_order_once(client: TestClient, workdir: Path) -> None:
    working = client.post("/orders/stock", json=LIMIT_BUY).json()
    cid = working["order"]["client_order_id"]
    assert working["order"]["status"] == "accepted"
    [(first_run, source)] = order_rows(workdir, cid)
    assert source == "api"
    for n in range(12):
        answer = client.post("/orders/stock", json={**TOO_BIG, "quantity": 20_000 + n})
        assert answer.status_code == 200 and answer.json()["order"]["status"] == "denied"
    document = {"symbol": "AAPL", "action": "buy", "confidence": 90, "quantity": 20_000}
    document |= {"order_type": "limit", "limit_price": 50_000}
    for n in range(3):
        answer = client.post("/decisions/execute", json={**document, "id": f"d-{n}"})
        assert answer.status_code == 200, answer.text
    assert client.post("/orders/stock", json={**LIMIT_BUY, "dry_run": True}).status_code == 200
    assert counts(workdir)["runs"] == 16  # one per call that may trade; the dry run none
    assert order_rows(workdir, cid) == [(first_run, "api")]
    assert events(workdir, cid) == ["submitted", "accepted"]
    # Each later run still counts it: exposure, and the working orders the broker lists.
    assert [o["client_order_id"] for o in client.get("/orders").json()] == [cid]


def test_an_order_working_elsewhere_is_adopted_into_the_ledger_once(
    client: TestClient, workdir: Path
) -> None:
    """Placed by another tool (not in the ledger): the first run adopts it, later ones follow."""
    client.post("/orders/stock", json=LIMIT_BUY)
    with sqlite3.connect(workdir / "ledger.db") as db:
        for table in ("status_changes", "order_rows"):
            db.execute(f"DELETE FROM {table}")  # as if the ledger never heard of it
    [report] = client.get("/orders").json()
    cid = report["client_order_id"]
    for _ in range(4):
        client.post("/orders/stock", json=TOO_BIG)
    [(_run, source)] = order_rows(workdir, cid)
    assert source == "broker"
    assert events(workdir, cid) == ["submitted", "accepted"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/decisions/execute", {"schema_version": 1, "symbol": "AAPL"}),
        ("/decisions/execute", {"symbol": "AAPL", "action": "moon", "confidence": 90}),
        ("/orders/stock", {**LIMIT_BUY, "quantity": 0.5}),
        ("/orders/stock", {**LIMIT_BUY, "quantity": -1}),
        ("/orders/stock", {**LIMIT_BUY, "side": "buy", "take_profit": 1, "stop_loss": 2}),
    ],
)
def test_a_refused_request_leaves_the_ledger_as_it_was(
    client: TestClient, workdir: Path, path: str, body: dict[str, Any]
) -> None:
    client.post("/orders/stock", json=LIMIT_BUY)  # a working order, which a run would adopt
    before = counts(workdir)
    answer = client.post(path, json=body)
    assert answer.status_code in (400, 422), answer.text
    assert counts(workdir) == before


def test_a_denied_order_is_not_sent(client: TestClient, workdir: Path) -> None:
    denied = client.post("/orders/stock", json=TOO_BIG).json()
    assert (denied["order"]["status"], denied["sent"], denied["ok"]) == ("denied", False, False)
    assert denied["run_id"]  # recorded: the decision, the verdicts and the denial
    dry = client.post("/orders/stock", json={**LIMIT_BUY, "dry_run": True}).json()
    assert (dry["order"]["status"], dry["sent"]) == ("initialized", False)
    sent = client.post("/orders/stock", json=LIMIT_BUY).json()
    assert (sent["order"]["status"], sent["sent"], sent["ok"]) == ("accepted", True, True)
    halted = client.post("/halt", json={"reason": "test"})
    assert halted.status_code == 200
    refused = client.post("/orders/stock", json={**LIMIT_BUY, "quantity": 2}).json()
    assert (refused["order"]["status"], refused["sent"]) == ("denied", False)


def _cli(*args: str) -> Any:
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
    result = CliRunner().invoke(cli, [*args, "--json"], obj=app, catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout) if result.stdout else None


def test_the_cli_records_a_working_order_once_and_says_a_denial_was_not_sent(
    workdir: Path,
) -> None:
    code, placed = _cli("order", "stock", "AAPL", "--side", "buy", "--quantity", "1",
                        "--type", "limit", "--limit-price", "1")  # fmt: skip
    assert code == 0 and placed["order"]["status"] == "accepted"
    cid = placed["order"]["client_order_id"]
    for n in range(3):
        quantity = str(20_000 + n)
        code, denied = _cli("order", "stock", "AAPL", "--side", "buy", "--quantity", quantity,
                            "--type", "limit", "--limit-price", "50000")  # fmt: skip
        assert (denied["order"]["status"], denied["sent"]) == ("denied", False)
    document = workdir / "decision.json"
    document.write_text(json.dumps({"symbol": "AAPL", "action": "buy", "confidence": 90}))
    code, _out = _cli("execute", str(document))
    before = counts(workdir)
    document.write_text(json.dumps({"symbol": "AAPL", "action": "moon", "confidence": 90}))
    code, refused = _cli("execute", str(document))
    assert code == 1 and refused["run_id"] is None
    assert counts(workdir) == before
    assert len(order_rows(workdir, cid)) == 1
