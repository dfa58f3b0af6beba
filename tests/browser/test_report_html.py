"""``tradepipe report --html`` in Chromium: it fetches nothing, and shows the ledger's figures."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.research.report import METRIC_ROWS, shown

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

SETTINGS = """
[default.run]
broker = "paper"
feed = "synthetic"
strategies = ["sma_cross"]
risk_filters = []
sinks = ["sql"]
[default.strategies.sma_cross]
fast = 5
slow = 20
quantity = 20
[default.feeds.synthetic]
symbols = ["AAPL", "SPY"]
bars = 300
interval = "1d"
seed = 11
[default.sinks.sql]
path = "ledger.db"
[default.research]
benchmark = "SPY"
[default.logging]
file = false
"""


def tp(*args: str) -> Any:
    result = CliRunner().invoke(
        cli, list(args), obj=AppContext(settings_path="settings.toml"), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def test_the_report_matches_the_ledger_and_its_page_needs_nothing(
    browser: Any, workdir: Path
) -> None:
    (workdir / "settings.toml").write_text(SETTINGS)
    tp("run-pipeline", "--no-progress")
    figures = json.loads(tp("report", "--json").stdout)

    # Against the ledger: the first and last day's equity, the fills, the commissions.
    db = sqlite3.connect(workdir / "ledger.db")
    equity = [float(e) for (e,) in db.execute("SELECT equity FROM account_snapshots ORDER BY ts")]
    fills = db.execute("SELECT count(*), sum(CAST(commission AS REAL)) FROM fills").fetchone()
    db.close()
    assert figures["total_return"] == pytest.approx(equity[-1] / equity[0] - 1)
    assert (figures["start_equity"], figures["end_equity"]) == (equity[0], equity[-1])
    assert (figures["fills"], figures["commissions"]) == (fills[0], pytest.approx(fills[1]))
    assert figures["benchmark"] == "SPY" and figures["beta"] is not None
    assert figures["trades"] > 0 and figures["days"] == len(equity)

    page_file = workdir / "report.html"
    tp("report", "--html", str(page_file), "--symbol", "AAPL")
    requests: list[str] = []
    errors: list[str] = []
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(page_file.as_uri())
    assert requests == [page_file.as_uri()]  # the page itself, nothing more
    assert errors == []
    assert page.locator("svg").count() == 4  # equity, drawdown, trades, AAPL
    for _label, key, kind in METRIC_ROWS:
        cell = page.locator(f"td[data-metric='{key}']").inner_text()
        assert cell == shown(figures[key], kind), key
    assert "AAPL: closes, buys" in page.content()
    assert '"fast": 5' in page.locator("pre").inner_text()  # the run's settings
    page.close()
