"""The dashboard's page and files, and the activity read behind its panels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tradepipe.plugins.dashboard.page import POLICY

LIMIT_BUY = {"symbol": "AAPL", "side": "buy", "quantity": 10, "order_type": "limit"}


def test_the_page_and_its_files_need_no_token_and_load_nothing_from_elsewhere(
    client: TestClient,
) -> None:
    anonymous = TestClient(client.app)
    page = anonymous.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == POLICY
    assert "script-src 'self'" in POLICY and "connect-src 'self'" in POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'data-mode="live"' in page.text
    assert sorted(re.findall(r'(?:src|href)="([^"]*)"', page.text)) == [
        "assets/dashboard.css",
        "assets/dashboard.js",
        "data:,",
    ]
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = anonymous.get(f"/assets/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert "https://" not in asset.text and "http://" not in asset.text.replace(
            "http://www.w3.org/2000/svg", ""
        )
    # Nothing but the two files is served from there, with or without the token.
    for path in ("/assets/../settings.toml", "/assets/settings.toml", "/assets/index.html"):
        assert anonymous.get(path).status_code == 401
        assert client.get(path).status_code == 404
    # Everything with account data still needs the token.
    assert anonymous.get("/ledger/recent").status_code == 401
    assert anonymous.get("/positions").status_code == 401


def test_recent_activity_is_empty_before_there_is_a_ledger(
    client: TestClient, workdir: Path
) -> None:
    answer = client.get("/ledger/recent")
    assert answer.status_code == 200
    assert answer.json() == {"decisions": [], "rejected": [], "fills": []}
    assert not (workdir / "ledger.db").exists()


@pytest.mark.slow
def test_recent_activity_shows_each_decision_with_its_verdicts_and_order(
    client: TestClient,
) -> None:
    sent = client.post("/orders/stock", json={**LIMIT_BUY, "limit_price": 1}).json()
    denied = client.post("/orders/stock", json={**LIMIT_BUY, "limit_price": 50_000}).json()
    rejected = client.post("/decisions/execute", json={"schema_version": 1, "symbol": "AAPL"})
    assert rejected.status_code == 422

    recent = client.get("/ledger/recent", params={"limit": 10}).json()
    newest, older = recent["decisions"]
    assert newest["decision_id"] == denied["decision"]["id"]  # newest first
    assert older["decision_id"] == sent["decision"]["id"]
    assert older["order"] == {
        "client_order_id": sent["order"]["client_order_id"],
        "side": "buy",
        "quantity": "10",
        "status": "accepted",
        "reason": "",
    }
    assert [v["outcome"] for v in older["verdicts"]] == ["pass"] * 4
    deny = newest["verdicts"][-1]
    assert (deny["filter"], deny["outcome"]) == ("max_position_value", "deny")
    assert "10000" in deny["reason"] or "10,000" in deny["reason"]
    assert newest["order"]["status"] == "denied"
    assert recent["rejected"] == []  # a document refused with 422 leaves no record
    assert recent["fills"] == []
    assert len(client.get("/ledger/recent", params={"limit": 1}).json()["decisions"]) == 1
    assert client.get("/ledger/recent", params={"limit": 0}).status_code == 422
