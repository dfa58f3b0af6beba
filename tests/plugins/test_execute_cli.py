"""``tradepipe execute DECISION.json``: one document through sizing, the filters, the broker."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.testing import write_settings

DECISION = {
    "schema_version": 1,
    "id": "ai-42",
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
def workdir(workdir: Path) -> Path:
    write_settings(
        workdir,
        """
[default.run]
broker = "paper"
risk_filters = ["min_confidence", "max_position_value", "buying_power"]
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.brokers.paper]
symbols = ["AAPL"]
[default.logging]
dir = "logs"
""",
    )
    return workdir


def execute(*args: str, document: dict[str, Any] | None = None, stdin: str | None = None) -> Result:
    if document is not None:
        Path("decision.json").write_text(json.dumps(document))
        args = ("decision.json", *args)
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, ["execute", *args], obj=app, input=stdin)


def ledger(sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect("ledger.db") as db:
        return db.execute(sql).fetchall()


def test_a_decision_goes_through_every_filter_to_the_broker_and_the_ledger(workdir: Path) -> None:
    result = execute(document=DECISION)
    assert result.exit_code == 0, result.output
    assert "Risk verdicts" in result.stdout
    for name in ("min_confidence", "max_position_value", "buying_power"):
        assert name in result.stdout
    assert "buy 10 AAPL limit day" in result.stdout and "accepted" in result.stdout
    assert ledger("SELECT decision_id, source, rationale FROM decisions") == [
        ("ai-42", "gpt-test", "breakout")
    ]
    assert ledger("SELECT decision_id, source FROM orders") == [("ai-42", "gpt-test")]
    assert ledger("SELECT strategies FROM runs") == [('["execute"]',)]


@pytest.mark.slow
def test_the_same_decision_twice_is_refused_as_a_duplicate(workdir: Path) -> None:
    assert execute(document=DECISION).exit_code == 0
    again = execute(document=DECISION)
    assert again.exit_code == 1
    assert "duplicate" in again.stdout and "No order" in again.stdout
    as_json = execute("--json", document=DECISION)
    assert as_json.exit_code == 1
    [verdict] = json.loads(as_json.stdout)["verdicts"]
    assert verdict["filter"] == "duplicate" and verdict["outcome"] == "deny"
    assert "already produced order" in verdict["reason"]
    assert len(ledger("SELECT * FROM orders")) == 1
    assert len(ledger("SELECT * FROM verdicts WHERE filter = 'duplicate'")) == 2
    # Another session is another namespace of client order ids.
    assert execute("--session", "other", document=DECISION).exit_code == 0
    assert len(ledger("SELECT * FROM orders")) == 2


def test_dry_run_judges_and_writes_nothing(workdir: Path) -> None:
    result = execute("--dry-run", "--json", document=DECISION)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["run_id"] is None and out["sent"] is False
    assert [v["outcome"] for v in out["verdicts"]] == ["pass", "pass", "pass"]
    assert out["decision"]["id"] == "ai-42"
    assert not (workdir / "ledger.db").exists()


def test_a_decision_from_stdin_as_json(workdir: Path) -> None:
    result = execute("-", "--json", stdin=json.dumps({**DECISION, "confidence": 40}))
    assert result.exit_code == 1  # min_confidence denies it
    out = json.loads(result.stdout)
    assert out["order"]["status"] == "denied"
    assert out["verdicts"][0]["filter"] == "min_confidence"
    assert ledger("SELECT status FROM order_events") == [("denied",)]


def test_a_decision_that_expired_before_it_arrived_is_denied_as_expired(workdir: Path) -> None:
    """No creation time (it is when the decision is handled) and an expiry already
    past: denied as expired and recorded, not a failed run."""
    late = {**DECISION, "expires_at": "2020-01-01T00:00:00Z"}
    result = execute("--json", document=late)
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert [(v["filter"], v["outcome"]) for v in out["verdicts"]] == [("expired", "deny")]
    assert "decision expired at 2020-01-01T00:00:00+00:00" in out["verdicts"][0]["reason"]
    assert ledger("SELECT status FROM runs") == [("completed",)]
    assert ledger("SELECT decision_id FROM decisions") == [("ai-42",)]
    assert ledger("SELECT filter FROM verdicts") == [("expired",)]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (json.dumps({**DECISION, "confidence": 120}), "confidence: Input should be less than"),
        ("{half", "not valid JSON"),
        (
            json.dumps({**DECISION, "options": {"strategy": "long_call", "dte": 30, "delta": 0.4}}),
            "options: the broker's option chain: no market data for AAPL",
        ),
    ],
)
def test_a_bad_decision_is_refused_logged_and_leaves_the_ledger_as_it_was(
    workdir: Path, text: str, error: str
) -> None:
    result = execute("-", stdin=text)
    assert result.exit_code == 1
    assert f"decision rejected: {error}" in result.stderr
    # Said once: the command reports it, the log file keeps the record.
    assert result.output.count(error) == 1, result.output
    assert f"decision from execute rejected: {error}" in Path("logs/tradepipe.log").read_text()
    assert "ledger run" not in result.output
    # Read in full before a run opens: no run, no record, no order.
    assert not (workdir / "ledger.db").exists()


def test_a_bad_decision_in_a_dry_run_is_only_reported(workdir: Path) -> None:
    result = execute("--dry-run", "--json", document={**DECISION, "action": "moon"})
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["run_id"] is None
    assert out["rejected"]["error"].startswith("action: Input should be")
    assert not (workdir / "ledger.db").exists()


def test_an_unknown_broker_is_a_settings_error(workdir: Path) -> None:
    result = execute("--broker", "nosuch", document=DECISION)
    assert result.exit_code == 2
    assert "unknown broker 'nosuch'" in result.stderr
    assert not (workdir / "ledger.db").exists()


@pytest.mark.slow
def test_the_configured_strategies_are_not_made(workdir: Path) -> None:
    """A one-off run needs none; making them could read their files or want their settings."""
    settings = workdir / "settings.toml"
    text = settings.read_text().replace(
        "[default.run]\n", '[default.run]\nstrategies = ["decision_files", "llm"]\n'
    )
    settings.write_text(text + '[default.strategies.decision_files]\npath = "no/such/inbox"\n')
    result = execute(document=DECISION)
    assert result.exit_code == 0, result.output
