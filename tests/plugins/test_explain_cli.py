"""``tradepipe explain``: decision → verdicts → order → status changes → fills, from the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

DECISION: dict[str, Any] = {
    "schema_version": 1,
    "id": "ai-7",
    "source": "gpt-test",
    "symbol": "AAPL",
    "action": "buy",
    "confidence": 90,
    "quantity": 10,
    "order_type": "limit",
    "limit_price": 150,
    "rationale": "breakout",
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str) -> Path:
    (tmp_path / "settings.toml").write_text(
        f"""
[default.run]
broker = "paper"
risk_filters = ["min_confidence", "price_band", "max_position_value", "buying_power"]
sinks = ["sql"]
[default.risk.max_position_value]
limit = 1000
[default.sinks.sql]
url = "{ledger_url}"
writer = "inline"
[default.brokers.paper]
symbols = ["AAPL"]
[default.logging]
dir = "logs"
"""
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=AppContext(settings_path="settings.toml"))


def execute(document: dict[str, Any]) -> Result:
    Path("decision.json").write_text(json.dumps(document))
    return invoke("execute", "decision.json", "--json")


def test_explain_a_sent_order_by_decision_and_by_client_order_id(workdir: Path) -> None:
    sent = execute(DECISION)
    assert sent.exit_code == 0, sent.output
    result = invoke("explain", "ai-7", "--json")
    assert result.exit_code == 0, result.output
    [chain] = json.loads(result.stdout)
    assert chain["decision"]["rationale"] == "breakout"
    assert [v["filter"] for v in chain["verdicts"]] == [
        "min_confidence",
        "price_band",
        "max_position_value",
        "buying_power",
    ]
    reduced = chain["verdicts"][2]
    assert reduced["outcome"] == "reduce"
    assert (reduced["quantity_before"], reduced["quantity_after"]) == ("10", "6")
    assert reduced["figures"]["limit"] == "1000"
    [order] = chain["orders"]
    assert order["order"]["quantity"] == "6"
    assert [e["status"] for e in order["events"]][:2] == ["submitted", "accepted"]
    # Its times are written as every --json output writes them.
    [run] = json.loads(invoke("ledger", "runs", "--json").stdout)
    assert chain["started_at"] == run["started_at"]
    assert chain["started_at"].endswith("Z") and chain["decision"]["created_at"].endswith("Z")
    cid = order["order"]["client_order_id"]
    by_cid = invoke("explain", cid, "--json")
    assert json.loads(by_cid.stdout) == [chain]
    text = invoke("explain", cid)
    assert text.exit_code == 0, text.output
    # Tables fold long cells at the runner's 80 columns: look for short words.
    for words in ("Decision ai-7", "Risk verdicts", "reduce", "Status changes", "accepted"):
        assert words in text.stdout


def test_explain_one_run_of_a_decision_recorded_by_two(workdir: Path) -> None:
    first = execute(DECISION)
    assert first.exit_code == 0, first.output
    Path("decision.json").write_text(json.dumps(DECISION))
    again = invoke("execute", "decision.json", "--session", "second", "--json")
    assert again.exit_code == 0, again.output
    both = json.loads(invoke("explain", "ai-7", "--json").stdout)
    assert len(both) == 2 and both[0]["run_id"] != both[1]["run_id"]

    latest = invoke("explain", "ai-7", "--run", "latest", "--json")
    assert [c["run_id"] for c in json.loads(latest.stdout)] == [both[1]["run_id"]]
    named = invoke("explain", "ai-7", "--run", both[0]["run_id"], "--json")
    assert json.loads(named.stdout) == [both[0]]
    unknown = invoke("explain", "ai-7", "--run", "nope")
    assert unknown.exit_code == 2
    assert "the ledger has no run 'nope'" in unknown.output
    # A run that is there, and recorded another decision.
    Path("decision.json").write_text(json.dumps({**DECISION, "id": "ai-9"}))
    assert invoke("execute", "decision.json", "--session", "third").exit_code == 0
    [third] = json.loads(invoke("explain", "ai-9", "--json").stdout)
    elsewhere = invoke("explain", "ai-7", "--run", third["run_id"])
    assert elsewhere.exit_code == 2
    assert f"run {third['run_id']!r} recorded nothing about 'ai-7'" in elsewhere.output


def test_explain_a_denied_decision(workdir: Path) -> None:
    assert execute({**DECISION, "id": "ai-8", "confidence": 10}).exit_code == 1
    result = invoke("explain", "ai-8", "--json")
    [chain] = json.loads(result.stdout)
    [verdict] = chain["verdicts"]
    assert verdict["outcome"] == "deny" and verdict["figures"] == {
        "confidence": 10.0,
        "threshold": 70,
    }
    [order] = chain["orders"]
    assert [e["status"] for e in order["events"]] == ["denied"]
    assert order["fills"] == []
    assert "min_confidence: confidence 10 is below 70" in order["events"][0]["reason"]


def test_explain_an_unknown_id_exits_2(workdir: Path) -> None:
    assert execute(DECISION).exit_code == 0
    result = invoke("explain", "nope")
    assert result.exit_code == 2
    assert "knows no decision or order 'nope'" in result.output


def test_explain_by_client_order_id_finds_a_repeat_refused_in_a_later_run(
    workdir: Path,
) -> None:
    assert execute(DECISION).exit_code == 0
    repeat = execute(DECISION)
    assert repeat.exit_code == 1, repeat.output  # the same decision again: never sent twice
    [first] = json.loads(invoke("explain", "ai-7", "--json").stdout)[:1]
    cid = first["orders"][0]["order"]["client_order_id"]
    chains = json.loads(invoke("explain", cid, "--json").stdout)
    assert len(chains) == 2
    sent, refused = chains
    assert sent["run_id"] != refused["run_id"]
    assert [o["order"]["client_order_id"] for o in sent["orders"]] == [cid]
    assert refused["orders"] == []
    assert [(v["filter"], v["outcome"]) for v in refused["verdicts"]] == [("duplicate", "deny")]
