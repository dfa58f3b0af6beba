"""``tradepipe execute`` with an options strategy, filled by the paper simulator."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tradepipe import Fill
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.testing import paper_account_seeing, write_settings

D = Decimal
CASH = D(100_000)


@pytest.fixture
def workdir(workdir: Path) -> Path:
    write_settings(
        workdir,
        """
[default.run]
broker = "paper"
risk_filters = ["min_confidence", "buying_power"]
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.brokers.paper]
state_file = "paper.json"
[default.logging]
dir = "logs"
""",
    )
    paper(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), 600)
    return workdir


def paper(ts: dt.datetime, price: float) -> tuple[PaperBroker, list[Any]]:
    """Open the account file, pass one SPY bar, save: what a pipeline run would do."""
    broker, events = paper_account_seeing("SPY", price, ts=ts)
    return broker, events


def execute(document: dict[str, Any]) -> Result:
    Path("decision.json").write_text(json.dumps(document))
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, ["execute", "decision.json", "--json"], obj=app)


def decision(options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "opt-1",
        "symbol": "SPY",
        "action": "buy",
        "confidence": 90,
        "quantity": 2,
        "options": options,
        **extra,
    }


def run(options: dict[str, Any], legs: int) -> tuple[dict[str, Any], Fill, PaperBroker]:
    result = execute(decision(options))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["order"]["status"] == "accepted"
    broker, events = paper(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), 600)
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 1
    assert len(broker.positions()) == legs
    return out, fills[0], broker


def ledger(sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect("ledger.db") as db:
        return db.execute(sql).fetchall()


@pytest.mark.slow
def test_a_vertical_from_a_document_is_sent_as_a_combo_and_filled_per_leg(workdir: Path) -> None:
    out, fill, broker = run({"strategy": "bull_call_spread", "dte": 30, "strikes": [600, 610]}, 2)
    intent = out["order"]["intent"]
    assert intent["side"] == "buy" and intent["instrument"]["kind"] == "combo"
    strikes = {p.symbol[-8:]: p.quantity for p in broker.positions()}
    assert strikes == {"00600000": D(2), "00610000": D(-2)}
    assert fill.commission == D("2.60")  # 4 contracts at 0.65
    assert broker.book.cash == CASH - fill.price * 200 - D("2.60")
    risk = intent["option_risk"]
    assert D(risk["max_loss"]) == fill.price * 200 or D(risk["max_loss"]) > 0
    assert D(risk["max_gain"]) + D(risk["max_loss"]) == D(2000)  # width 10 x 100 x 2
    (extra,) = ledger("SELECT extra FROM decisions")[0]
    assert json.loads(extra)["option_risk"]["strategy"] == "bull_call_spread"
    (stored,) = ledger("SELECT option_risk FROM orders")[0]
    assert json.loads(stored)["max_loss"] == risk["max_loss"]  # kept with the order too


@pytest.mark.slow
def test_an_iron_condor_is_sold_for_a_credit(workdir: Path) -> None:
    out, fill, broker = run(
        {"strategy": "iron_condor", "dte": 30, "strikes": [560, 580, 620, 640]}, 4
    )
    intent = out["order"]["intent"]
    assert intent["side"] == "sell"
    held = {p.symbol[12:]: p.quantity for p in broker.positions()}
    assert held == {"P00560000": 2, "P00580000": -2, "C00620000": -2, "C00640000": 2}
    assert fill.commission == D("5.20")  # 8 contracts
    assert broker.book.cash == CASH + fill.price * 200 - D("5.20")
    risk = intent["option_risk"]
    assert D(risk["max_gain"]) + D(risk["max_loss"]) == D(4000)  # width 20 x 100 x 2
    assert len(risk["breakevens"]) == 2


def test_a_choice_the_chain_cannot_make_is_refused_and_writes_nothing(workdir: Path) -> None:
    result = execute(decision({"strategy": "long_call", "expiry": "2030-01-04", "strikes": [600]}))
    assert result.exit_code == 1
    assert "options.expiry: no options expire on 2030-01-04" in result.stdout
    # The message lists the expiries that are listed, not "none".
    listed = result.stdout.split("listed: ", 1)[1]
    assert listed[:4].isdigit() and not listed.startswith("none")
    assert not (workdir / "ledger.db").exists()
