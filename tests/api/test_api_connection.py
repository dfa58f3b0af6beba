"""``/broker/connect`` and ``/broker/disconnect``: a broker connection the service keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from api_support import LIMIT_BUY
from fastapi.testclient import TestClient
from tradepipe import BrokerStatus, hookimpl
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.cli.context import AppContext
from tradepipe.plugins.api.app import create_app
from tradepipe.testing import test_host

TOKEN = "connection-token-0123456789"


class CountingBroker(PaperBroker):
    """The simulator, counting its connections and disconnections."""

    name = "counting"
    calls: ClassVar[list[str]] = []

    def connect(self) -> BrokerStatus:
        self.calls.append("connect")
        return super().connect()

    def disconnect(self) -> None:
        self.calls.append("disconnect")
        super().disconnect()


class Plugin:
    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(CountingBroker)


@pytest.fixture
def counting(workdir: Path) -> Iterator[TestClient]:
    CountingBroker.calls = []
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
    app.override("run", broker="counting")
    client = TestClient(create_app(app.settings, app.host, TOKEN), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    with client:
        yield client


def test_reads_use_the_held_connection_until_it_is_released(counting: TestClient) -> None:
    calls = CountingBroker.calls
    assert counting.get("/broker/status").json()["held"] is False
    assert calls == ["connect", "disconnect"]

    connected = counting.post("/broker/connect")
    assert connected.status_code == 200, connected.text
    body = connected.json()
    assert body["held"] is True and body["ready"] is True and body["broker"] == "counting"
    for path in ("/broker/status", "/account", "/positions", "/orders"):
        assert counting.get(path).status_code == 200, path
    assert counting.get("/broker/status").json()["held"] is True
    assert counting.post("/broker/connect").json()["held"] is True  # idempotent
    assert calls == ["connect", "disconnect", "connect"]

    assert counting.post("/broker/disconnect").json() == {"held": False, "released": True}
    assert counting.post("/broker/disconnect").json() == {"held": False, "released": False}
    assert calls[-1] == "disconnect"
    assert counting.get("/broker/status").json()["held"] is False
    assert calls[-2:] == ["connect", "disconnect"]


@pytest.mark.slow
def test_an_order_runs_on_its_own_connection_and_the_held_one_comes_back(
    client: TestClient,
) -> None:
    """The paper account's file takes one writer: the held connection steps aside."""
    assert client.post("/broker/connect").json()["held"] is True
    placed = client.post("/orders/stock", json=LIMIT_BUY).json()
    assert placed["ok"] is True and placed["sent"] is True
    cid = placed["order"]["client_order_id"]
    assert client.get("/broker/status").json()["held"] is True
    assert [o["client_order_id"] for o in client.get("/orders").json()] == [cid]
    assert client.delete(f"/orders/{cid}").status_code == 202
    assert client.get("/orders").json() == []


def test_shutting_down_releases_the_held_connection(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    with make_client() as client:
        assert client.post("/broker/connect").json()["held"] is True
        service = client.app.state.service  # type: ignore[attr-defined]
        assert service.held is not None
    assert service.held is None
    # The account file's lock is free again: another process could trade it.
    other = PaperBroker(PaperBroker.Settings(state_file="paper.json"))
    assert "read-only" not in other.connect().message
    other.disconnect()


def test_a_live_account_is_not_held(make_client: Callable[..., TestClient]) -> None:
    with make_client("live_sim") as client:
        answer = client.post("/broker/connect")
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "allow_live" in answer.json()["detail"]
        assert "U1234567" not in answer.text and "U***4567" in answer.text
        assert client.app.state.service.held is None  # type: ignore[attr-defined]


def test_a_broker_that_is_not_ready_is_not_held(
    counting: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def logged_out(self: PaperBroker) -> BrokerStatus:
        return BrokerStatus(broker=self.name, connected=True, authenticated=False)

    monkeypatch.setattr(CountingBroker, "status", logged_out)
    answer = counting.post("/broker/connect")
    assert answer.status_code == 503, answer.text
    assert "not authenticated" in answer.json()["detail"]
    assert CountingBroker.calls == ["connect", "disconnect"]
    assert counting.app.state.service.held is None  # type: ignore[attr-defined]
