"""``tradepipe report`` on bad input: a clear error, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext

SETTINGS = """
[default.run]
strategies = ["sma_cross"]
risk_filters = []
sinks = ["sql"]
[default.feeds.synthetic]
symbols = ["AAPL"]
bars = 60
interval = "1d"
[default.sinks.sql]
path = "ledger.db"
[default.logging]
file = false
"""


def tp(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)


@pytest.mark.slow
def test_report_errors_say_what_is_wrong(workdir: Path) -> None:
    (workdir / "settings.toml").write_text(SETTINGS)
    none = tp("report")
    assert none.exit_code != 0 and "no ledger at ledger.db" in none.output
    assert tp("run-pipeline", "--no-progress").exit_code == 0
    unknown = tp("report", "20200101T000000-abcdef")
    assert unknown.exit_code != 0 and "no run '20200101T000000-abcdef'" in unknown.output
    page = workdir / "r.html"
    missing = tp("report", "--benchmark", "QQQ", "--html", str(page))
    assert missing.exit_code != 0 and "feed 'synthetic' has no bars of QQQ" in missing.output
    assert not page.exists()
    fine = tp("report", "--json")
    assert fine.exit_code == 0 and '"benchmark": null' in fine.stdout
