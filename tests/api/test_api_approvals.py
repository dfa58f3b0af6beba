"""GET /approvals and POST /approvals/{id}: the queue over HTTP, answered once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from api_support import LIMIT_BUY
from fastapi.testclient import TestClient


@pytest.mark.slow
def test_an_order_waits_and_is_approved_or_rejected_once_over_http(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    with (workdir / "settings.toml").open("a") as f:
        f.write("[default.approval]\nall = true\n")
    with make_client() as client:
        assert client.get("/approvals").json() == []
        waiting = client.post("/orders/stock", json=LIMIT_BUY).json()
        assert waiting["order"] is None and waiting["sent"] is False
        first = waiting["approval"]["approval_id"]
        second = client.post("/orders/stock", json={**LIMIT_BUY, "quantity": 2}).json()["approval"][
            "approval_id"
        ]
        listed = client.get("/approvals").json()
        assert sorted(r["approval_id"] for r in listed) == sorted([first, second])
        assert {r["status"] for r in listed} == {"pending"}

        sent = client.post(f"/approvals/{first}", json={"decision": "approve"})
        assert sent.status_code == 200, sent.text
        body = sent.json()
        assert (body["status"], body["decided_by"]) == ("sent", "api")
        assert body["client_order_id"]
        assert (body["sent_by_live_run"], body["asked"]) == (None, None)
        again = client.post(f"/approvals/{first}", json={"decision": "approve"})
        assert again.status_code == 409 and "answered already (sent" in again.text
        # The order is at the broker once.
        working = [o["client_order_id"] for o in client.get("/orders").json()]
        assert working.count(body["client_order_id"]) == 1

        assert client.post(f"/approvals/{second}", json={"decision": "reject"}).status_code in (
            400,
            422,
        )
        dropped = client.post(
            f"/approvals/{second}", json={"decision": "reject", "reason": "too big"}
        ).json()
        assert (dropped["status"], dropped["note"]) == ("rejected", "too big")
        assert client.get("/approvals").json() == []
        assert len(client.get("/approvals", params={"all": True}).json()) == 2
        assert client.post("/approvals/ap-0000", json={"decision": "approve"}).status_code == 404
        assert client.post("/approvals/nope", json={"decision": "approve"}).status_code == 422


@pytest.mark.slow
def test_an_approved_order_the_broker_asks_about_names_the_question_that_waits(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    # AAPL has no price at the paper broker yet: it asks o354, which a person answers.
    text = (workdir / "settings.toml").read_text()
    text = text.replace(
        'state_file = "paper.json"\n',
        'state_file = "paper.json"\nquestions = ["o354"]\nask = ["o354"]\n',
        1,
    )
    (workdir / "settings.toml").write_text(text + "[default.approval]\nall = true\n")
    with make_client() as client:
        first = client.post("/orders/stock", json=LIMIT_BUY).json()["approval"]
        sent = client.post(f"/approvals/{first['approval_id']}", json={"decision": "approve"})
        assert sent.status_code == 200, sent.text
        body = sent.json()
        assert body["status"] == "sent" and "rejected when sent" in body["note"]
        asked = body["asked"]
        assert (asked["kind"], asked["message_ids"], asked["status"]) == (
            "question",
            "o354",
            "pending",
        )
        assert asked["approval_id"] != first["approval_id"]
        # Answered, the order goes (o354 confirmed for it) and nothing more waits.
        again = client.post(f"/approvals/{asked['approval_id']}", json={"decision": "approve"})
        assert again.status_code == 200, again.text
        assert again.json()["asked"] is None and "accepted when sent" in again.json()["note"]
        assert client.get("/approvals").json() == []
