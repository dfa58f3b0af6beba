"""A person in the loop, as a user runs it: a live paper run whose model's decisions wait,
a phone told of each (an ntfy server on 127.0.0.1), one approved from the dashboard, its
fill told and explained.

Every part runs as the user starts it, in processes of its own: ``tradepipe run-pipeline
--live`` over the ``synthetic_live`` feed with the ``llm`` source asking a model server on
127.0.0.1, ``tradepipe serve`` for the dashboard, headless Chromium clicking Approve.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from browser_support import TOKEN, _tradepipe, serving
from notify_receiver import SECRET, Receiver, in_thread

pytestmark = pytest.mark.slow

TIMEOUT = 30_000  # ms


class Model:
    """An OpenAI-compatible chat-completions server on 127.0.0.1: it buys 3 AAPL on the
    first question it is asked and holds after that."""

    def __init__(self) -> None:
        self.asked = 0
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sent = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                asked = json.loads(sent["messages"][1]["content"])
                model.asked += 1
                action = "buy" if model.asked == 1 else "hold"
                decision = {
                    "symbol": asked["symbol"],
                    "action": action,
                    "confidence": 80,
                    "quantity": 3,
                    "rationale": "breakout" if action == "buy" else "wait",
                }
                body = json.dumps(
                    {"choices": [{"message": {"content": json.dumps(decision)}}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.fixture
def model() -> Iterator[Model]:
    found = Model()
    with in_thread(found.server):
        yield found


def _settings(folder: Path, model: Model, receiver: Receiver) -> None:
    (folder / "settings.toml").write_text(
        f"""
[default.run]
broker = "paper"
strategies = ["llm"]
risk_filters = ["halt", "max_position_value"]
sinks = ["sql"]
session = "desk"
[default.feeds.synthetic_live]
symbols = ["AAPL"]
bar_size = "5s"
speed = 5
warmup_bars = 20
[default.strategies.llm]
base_url = "http://127.0.0.1:{model.port}/v1"
model = "desk-model"
[default.brokers.paper]
state_file = "paper.json"
[default.risk.halt]
state_file = "halt.json"
[default.sinks.sql]
path = "tradepipe.db"
[default.approval]
sources = ["llm"]
[default.notify]
batch_seconds = 0
[default.notify.targets.phone]
events = ["approval", "fill"]
[default.logging]
dir = "logs"
"""
    )
    # The URL holds a password: a secret, kept out of settings.toml.
    (folder / ".secrets.toml").write_text(
        f'[default.notify.targets.phone]\napprise = "{receiver.ntfy_url("desk")}"\n'
    )


def _told(receiver: Receiver, words: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = [m for m in receiver.messages if words in m.get("message", "")]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no message with {words!r}; got {receiver.messages}")


def test_a_model_s_decision_waits_is_approved_from_the_dashboard_and_its_fill_is_told(
    tmp_path: Path, browser: Any, model: Model, receiver: Receiver
) -> None:
    _settings(tmp_path, model, receiver)
    log = (tmp_path / "live.log").open("w")
    run = subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "run-pipeline", "--live", "--feed", "synthetic_live"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # The phone is told what waits and how to answer it.
        waits = _told(receiver, "waits for you", 60)
        assert waits["topic"] == "desk" and "llm:desk-model" in waits["message"]
        [pending] = json.loads(_tradepipe(tmp_path, "approvals", "--json").stdout)
        approval = pending["approval_id"]
        assert approval in waits["message"] and pending["quantity"] == "3"
        assert not any(" AAPL at " in m["message"] for m in receiver.messages)  # nothing sent

        with serving(tmp_path) as served:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("dialog", lambda dialog: dialog.accept())  # "Send …?"
            page.goto(f"{served.url}/#token={TOKEN}")
            page.wait_for_selector("body[data-loaded]")
            row = page.locator("#approvals tr", has_text=approval)
            assert "llm:desk-model" in row.inner_text()
            page.get_by_label(f"Approve {approval}").click()
            # The live run holds the paper account: it sends the order and says so.
            page.locator("#notice", has_text=f"Approval {approval}: sent").wait_for()
            assert errors == []
            [answered] = served.api.get("/approvals", params={"all": True}).json()
        assert (answered["status"], answered["decided_by"]) == ("sent", "api")
        live_run = json.loads((tmp_path / "tradepipe-status.json").read_text())["run_id"]
        assert answered["sent_run_id"] == live_run  # sent by the live run, not the API

        # The fill is told, and explain shows the wait, who answered, the order and its fill.
        filled = _told(receiver, " AAPL at ", 30)
        assert "bought 3" in filled["message"] or "buy 3" in filled["message"]
        # The fill is told as it happens; a live run commits its records to the
        # ledger once a second, so explain may be asked before it is there.
        deadline = time.monotonic() + 10
        while True:
            chains = json.loads(
                _tradepipe(tmp_path, "explain", pending["decision_id"], "--json").stdout
            )
            fills = [f for c in chains for o in c["orders"] for f in o["fills"]]
            if fills or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        [waited] = {a["approval_id"]: a for c in chains for a in c["approvals"]}.values()
        assert (waited["status"], waited["decided_by"]) == ("sent", "api")
        assert [(f["symbol"], f["quantity"]) for f in fills] == [("AAPL", "3")]
        text = _tradepipe(tmp_path, "explain", pending["decision_id"]).stdout
        assert f"approval {approval}: waited" in text and "answered by api" in text
        # No secret reached a message, the log or the status.
        assert all(SECRET not in json.dumps(m) for m in receiver.messages)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGINT)
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(run.pid, signal.SIGKILL)
                run.wait()
        log.close()
    assert SECRET not in (tmp_path / "live.log").read_text()
