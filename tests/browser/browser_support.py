"""``tradepipe serve`` in a process of its own, and headless Chromium to drive its page.

Chromium is Debian's (``/usr/bin/chromium``; ``.ci/run`` installs it when it is
missing), driven by Playwright without Playwright's own browser download.
Without Chromium the browser tests are skipped, except under CI (``CI`` set),
where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

TOKEN = "browser-test-token-0123456789"
SETTINGS = """
[default.run]
broker = "paper"
feed = "synthetic"
strategies = ["sma_cross"]
risk_filters = ["halt", "min_confidence", "max_position_value", "buying_power"]
sinks = ["sql"]
[default.feeds.synthetic]
symbols = ["AAPL", "MSFT", "SPY"]
bars = 200
interval = "1d"
seed = 7
[default.brokers.paper]
state_file = "paper.json"
[default.risk.halt]
state_file = "halt.json"
[default.sinks.sql]
path = "tradepipe.db"
[default.approval]
sources = ["desk-review"]
[default.logging]
dir = "logs"
"""
#: Chromium as root in a container: no sandbox, and no calls home (the network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Where screenshots are kept after the run (git ignores it).
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


def chromium_path() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if found:
        return found
    message = "no chromium on this machine (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI the dashboard must be tested in a browser")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tradepipe(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradepipe", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Served:
    folder: Path
    url: str
    api: httpx.Client


@contextmanager
def serving(folder: Path) -> Iterator[Served]:
    """``tradepipe serve`` in ``folder`` on a free port, until the block ends."""
    env = {**os.environ, "TP_API_TOKEN": TOKEN}
    for attempt in range(3):
        port = _free_port()
        log = (folder / "serve.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradepipe", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        if _answers(url, proc):
            break
        _stop(proc)
        log.close()
        if attempt == 2:
            pytest.fail(f"tradepipe serve did not start:\n{(folder / 'serve.log').read_text()}")
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    try:
        yield Served(folder, url, client)
    finally:
        client.close()
        _stop(proc)
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A paper account with positions from a short replay, served on a free port."""
    (tmp_path / "settings.toml").write_text(SETTINGS)
    replay = _tradepipe(tmp_path, "run-pipeline", "--json")
    assert replay.returncode == 0, replay.stderr
    with serving(tmp_path) as found:
        yield found


def _answers(url: str, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
