"""A third-party strategy package, installed beside tradepipe, works with no change to tradepipe.

The package is laid out exactly as pip installs it (a module plus a ``.dist-info``
directory with ``entry_points.txt``) in a temporary directory on ``PYTHONPATH``,
and the real ``tradepipe`` command runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = """
from pydantic import Field

from tradepipe import ComponentSettings, Strategy, hookimpl


class MeanReversion(Strategy):
    name = "meanrev"
    description = "buy after a drop"

    class Settings(ComponentSettings):
        drop: float = Field(default=0.01, gt=0)

    def __init__(self, settings=None):
        super().__init__(settings)
        self.last = {}

    def decide(self, bar, ctx):
        previous = self.last.get(bar.symbol)
        self.last[bar.symbol] = bar.close
        dropped = previous and bar.close < previous * (1 - self.settings.drop)
        if dropped and not ctx.position(bar.symbol):
            return self.decision(ctx, symbol=bar.symbol, action="buy", confidence=75, quantity=5)
        if previous and bar.close > previous and ctx.position(bar.symbol):
            return self.decision(ctx, symbol=bar.symbol, action="close", confidence=75)
        return None


@hookimpl
def tradepipe_register_strategies(register):
    register(MeanReversion)
"""


def install_fake_distribution(site: Path) -> None:
    (site / "tradepipe_meanrev.py").write_text(PLUGIN)
    info = site / "tradepipe_meanrev-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tradepipe-meanrev\nVersion: 0.3.1\n"
    )
    (info / "entry_points.txt").write_text("[tradepipe]\nmeanrev = tradepipe_meanrev\n")
    (info / "RECORD").write_text("")


def tradepipe(cwd: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "tradepipe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_installed_strategy_is_listed_and_usable_from_settings(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site)
    listed = tradepipe(tmp_path, site, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    meanrev = plugins["meanrev"]
    assert meanrev["distribution"] == "tradepipe-meanrev"
    assert meanrev["version"] == "0.3.1"
    assert meanrev["builtin"] is False
    assert meanrev["components"] == ["strategy:meanrev"]
    assert meanrev["hooks"] == ["tradepipe_register_strategies"]

    (tmp_path / "settings.toml").write_text(
        textwrap.dedent("""
        [default.run]
        strategies = ["meanrev"]
        [default.strategies.meanrev]
        drop = 0.005
        [default.feeds.synthetic]
        symbols = ["AAPL"]
        bars = 200
    """)
    )
    ran = tradepipe(tmp_path, site, "run-pipeline", "--json", "--no-progress")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["decisions"] > 0 and summary["fills"] > 0
    db = sqlite3.connect(tmp_path / "tradepipe.db")
    assert db.execute("select distinct source from decisions").fetchall() == [("meanrev",)]

    # Its settings table is validated like a built-in one.
    (tmp_path / "settings.toml").write_text(
        '[default.run]\nstrategies = ["meanrev"]\n[default.strategies.meanrev]\ndrop = -1\n'
    )
    bad = tradepipe(tmp_path, site, "config", "check")
    assert bad.returncode == 2
    assert "[strategies.meanrev] drop = -1" in bad.stderr

    # Disabled by name, it is gone and naming it is an error.
    (tmp_path / "settings.toml").write_text(
        '[default.run]\nstrategies = ["meanrev"]\n[default.plugins]\ndisabled = ["meanrev"]\n'
    )
    gone = tradepipe(tmp_path, site, "config", "check")
    assert gone.returncode == 2
    assert "unknown strategy 'meanrev'" in gone.stderr
