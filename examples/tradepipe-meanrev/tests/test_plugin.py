"""The installed plugin, as tradepipe loads it and as a user meets it on the command line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from tradepipe.cli.testing import invoke
from tradepipe.host import PluginHost
from tradepipe.testing import write_settings

from tradepipe_meanrev import MaxQuantity, MeanReversion

SETTINGS = """
    [default.run]
    strategies = ["sma_cross", "meanrev"]
    risk_filters = ["min_confidence", "max_position_value", "max_risk_per_trade",
                    "buying_power", "max_quantity"]
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_settings(tmp_path, SETTINGS)
    return tmp_path


def test_registers_its_components(tradepipe_host: PluginHost) -> None:
    assert tradepipe_host.component("strategy", "meanrev") is MeanReversion
    assert tradepipe_host.component("risk_filter", "max_quantity") is MaxQuantity


def test_is_listed(folder: Path) -> None:
    listed = invoke("plugins", "--json")
    assert listed.exit_code == 0, listed.output
    plugin = {p["name"]: p for p in json.loads(listed.stdout)}["meanrev"]
    assert plugin["distribution"] == "tradepipe-meanrev"
    assert sorted(plugin["components"]) == ["risk_filter:max_quantity", "strategy:meanrev"]


def test_trades_on_the_demo_feed(folder: Path) -> None:
    ran = invoke("run-pipeline", "--json", "--no-progress")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["status"] == "completed"

    orders = json.loads(invoke("ledger", "orders", "--json").stdout)
    mine = Counter((o["side"], o["status"]) for o in orders if o["source"] == "meanrev")
    assert mine["buy", "filled"] > 0 and mine["sell", "filled"] > 0
    assert set(mine) <= {("buy", "filled"), ("sell", "filled")}


def test_its_settings_tables_are_validated(folder: Path) -> None:
    write_settings(
        folder, SETTINGS, strategies={"meanrev": {"lookback": 10}}, risk={"max_quantity": {}}
    )
    assert invoke("config", "check").exit_code == 0

    write_settings(folder, SETTINGS, strategies={"meanrev": {"drop_pct": 2}})
    bad = invoke("config", "check")
    assert bad.exit_code == 2
    assert "[strategies.meanrev] drop_pct = 2" in bad.stderr
