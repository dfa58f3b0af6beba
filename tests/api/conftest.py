"""A paper broker (state in a file) and an SQLite ledger in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tradepipe import BrokerStatus, hookimpl
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.cli.context import AppContext
from tradepipe.plugins.api.app import create_app
from tradepipe.testing import test_host, write_settings

TOKEN = "test-token-0123456789abcdef"
SETTINGS = """
[default.run]
broker = "paper"
risk_filters = ["halt", "min_confidence", "max_position_value", "buying_power"]
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.brokers.paper]
symbols = ["AAPL"]
state_file = "paper.json"
[default.brokers.live_sim]
symbols = ["AAPL"]
[default.risk.halt]
state_file = "halt.json"
[default.logging]
dir = "logs"
"""


class LiveBroker(PaperBroker):
    """The simulator, claiming to be a live account."""

    name = "live_sim"

    def connect(self) -> BrokerStatus:
        return super().connect().model_copy(update={"is_paper": False, "account_id": "U1234567"})


class Plugin:
    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(LiveBroker)


@pytest.fixture
def workdir(workdir: Path) -> Path:
    write_settings(workdir, SETTINGS)
    return workdir


def _client(broker: str = "paper", **run: Any) -> TestClient:
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
    if broker != "paper" or run:
        app.override("run", broker=broker, **run)
    client = TestClient(create_app(app.settings, app.host, TOKEN), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


@pytest.fixture
def make_client(workdir: Path) -> Callable[..., TestClient]:
    """A client of the API over the settings in ``workdir``, carrying the token."""
    return _client


@pytest.fixture
def client(workdir: Path) -> Iterator[TestClient]:
    with _client() as c:
        yield c
