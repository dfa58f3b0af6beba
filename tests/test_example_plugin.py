"""The example plugin package (``examples/tradepipe-meanrev``) installs, lists and trades.

It is installed as pip installs it (built by setuptools, without the network,
into a folder put on ``PYTHONPATH``), and the real ``tradepipe`` command runs
in a subprocess on the repository's ``settings.toml`` with only the plugin's
two components added: the example must trade under the default settings. Its
own tests run against the same installation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest
import tomli_w

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "tradepipe-meanrev"

pytestmark = pytest.mark.slow


def run(
    args: list[str], cwd: Path, site: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written into examples/
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def tradepipe(cwd: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "tradepipe", *args], cwd, site)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, installed into a folder of its own."""
    scratch = tmp_path_factory.mktemp("example")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = scratch / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    target = scratch / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    installed = run([*pip, "--no-build-isolation", "--target", str(target), str(source)], scratch)
    assert installed.returncode == 0, installed.stderr
    return target


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The repository's settings with the example's strategy and risk filter added."""
    settings = tomllib.loads((ROOT / "settings.toml").read_text())
    run_table = settings["default"]["run"]
    run_table["strategies"] = [*run_table["strategies"], "meanrev"]
    run_table["risk_filters"] = [*run_table["risk_filters"], "max_quantity"]
    (tmp_path / "settings.toml").write_text(tomli_w.dumps(settings))
    return tmp_path


def test_the_installed_example_is_listed(site: Path, tmp_path: Path) -> None:
    listed = tradepipe(tmp_path, site, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    plugin = {p["name"]: p for p in json.loads(listed.stdout)}["meanrev"]
    assert plugin["distribution"] == "tradepipe-meanrev"
    assert plugin["builtin"] is False
    assert sorted(plugin["components"]) == ["risk_filter:max_quantity", "strategy:meanrev"]
    assert plugin["hooks"] == ["tradepipe_register_risk_filters", "tradepipe_register_strategies"]


def test_the_example_trades_under_the_default_settings(site: Path, folder: Path) -> None:
    ran = tradepipe(folder, site, "run-pipeline", "--json", "--no-progress")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["status"] == "completed"
    assert summary["decisions_rejected"] == 0

    ledger = tradepipe(folder, site, "ledger", "orders", "--json")
    assert ledger.returncode == 0, ledger.stderr
    orders = [o for o in json.loads(ledger.stdout) if o["source"] == "meanrev"]
    by_status = Counter((o["side"], o["status"]) for o in orders)
    # Every order it decides on passes the default filters and the cap, and fills.
    assert set(by_status) == {("buy", "filled"), ("sell", "filled")}, by_status
    assert by_status["buy", "filled"] >= 10
    # It only ever sells what it bought.
    assert by_status["sell", "filled"] <= by_status["buy", "filled"]


def test_the_examples_own_tests_pass_against_the_installation(site: Path, tmp_path: Path) -> None:
    tests = EXAMPLE / "tests"
    ran = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], tmp_path, site
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert " passed" in ran.stdout and "skipped" not in ran.stdout
