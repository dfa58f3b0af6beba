"""Calls are answered concurrently: only the broker and orders wait for each other."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from api_support import LIMIT_BUY
from conftest import SETTINGS, TOKEN
from conftest import Plugin as LivePlugin
from fastapi.testclient import TestClient
from tradepipe import Position, hookimpl
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.cli.context import AppContext
from tradepipe.plugins.api.app import create_app
from tradepipe.testing import test_host

#: Long enough for a loaded machine; a call that waits on a lock never gets there.
PROMPT = 10.0
READS = ("/health", "/halt", "/status", "/equity", "/ledger/orders", "/ledger/recent")


class GatedBroker(PaperBroker):
    """The simulator, whose positions wait for :attr:`gate` while :attr:`armed`."""

    name = "gated"
    armed: ClassVar[bool] = False
    entered: ClassVar[threading.Event] = threading.Event()
    gate: ClassVar[threading.Event] = threading.Event()

    def positions(self) -> list[Position]:
        if GatedBroker.armed:
            GatedBroker.entered.set()
            assert GatedBroker.gate.wait(30), "the test never opened the gate"
        return super().positions()


class Plugin(LivePlugin):
    """The shared settings' brokers (live_sim configures one), and the gated one."""

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        super().tradepipe_register_brokers(register)
        register(GatedBroker)


@pytest.fixture
def gated(workdir: Path) -> Iterator[TestClient]:
    settings = SETTINGS.replace('broker = "paper"', 'broker = "gated"')
    settings += '[default.brokers.gated]\nsymbols = ["AAPL"]\nstate_file = "paper.json"\n'
    (workdir / "settings.toml").write_text(settings)
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
    GatedBroker.armed = False
    GatedBroker.entered.clear()
    GatedBroker.gate.clear()
    with TestClient(create_app(app.settings, app.host, TOKEN)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        # A ledger to read, and a working order for the runs to adopt.
        assert client.post("/orders/stock", json=LIMIT_BUY).status_code == 200
        try:
            yield client
        finally:
            GatedBroker.gate.set()  # nothing left waiting, whatever the test did


class Call(threading.Thread):
    """One request on a thread of its own; :attr:`answer` once it has one."""

    def __init__(self, send: Callable[[], httpx.Response]) -> None:
        super().__init__(daemon=True)
        self.send = send
        self.answer: httpx.Response | None = None

    def run(self) -> None:
        self.answer = self.send()

    def status(self, timeout: float = PROMPT) -> int | None:
        self.join(timeout)
        return None if self.answer is None else self.answer.status_code


def blocked(client: TestClient, send: Callable[[], httpx.Response]) -> Call:
    """Start ``send`` with the broker armed; return once it is inside the broker."""
    GatedBroker.armed = True
    call = Call(send)
    call.start()
    assert GatedBroker.entered.wait(PROMPT), "the call never reached the broker"
    return call


@pytest.mark.slow
def test_reads_answer_while_an_order_waits_on_the_broker(gated: TestClient) -> None:
    order = blocked(gated, lambda: gated.post("/orders/stock", json={**LIMIT_BUY, "quantity": 2}))
    # The order holds the order lock and the broker; what needs neither answers.
    reads = [Call(lambda path=path: gated.get(path)) for path in READS]
    for call in reads:
        call.start()
    assert [call.status() for call in reads] == [200] * len(READS)
    # What needs the broker, or another order, waits for it.
    positions = Call(lambda: gated.get("/positions"))
    second = Call(lambda: gated.post("/orders/stock", json={**LIMIT_BUY, "quantity": 3}))
    positions.start()
    second.start()
    assert positions.status(timeout=0.5) is None and second.status(timeout=0.1) is None
    assert order.is_alive()
    GatedBroker.armed = False
    GatedBroker.gate.set()
    assert order.status() == 200 and order.answer is not None
    assert order.answer.json()["order"]["status"] == "accepted"
    assert positions.status() == 200
    assert second.status() == 200


@pytest.mark.slow
def test_health_answers_while_every_thread_waits(gated: TestClient) -> None:
    """More calls stuck on the broker than the default thread pool: liveness and reads go on."""
    first = blocked(gated, lambda: gated.get("/positions"))
    stuck = [Call(lambda: gated.get("/positions")) for _ in range(60)]
    for call in stuck:
        call.start()
    health = Call(lambda: gated.get("/health"))
    health.start()
    assert health.status() == 200
    ledger = Call(lambda: gated.get("/ledger/orders"))
    ledger.start()
    assert ledger.status() == 200
    assert all(call.is_alive() for call in stuck)
    GatedBroker.armed = False
    GatedBroker.gate.set()
    assert first.status() == 200
    assert [call.status() for call in stuck] == [200] * len(stuck)


def test_a_heavy_read_is_served_again_for_a_second_then_read_anew(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equity curve and recent activity: one computation a second however many ask."""
    from tradepipe.plugins.api.service import Service

    app = AppContext(settings_path="settings.toml")
    service = Service(app.settings, app.host)
    now = [100.0]
    monkeypatch.setattr("tradepipe.plugins.api.service.time.monotonic", lambda: now[0])
    computed: list[int] = []

    def compute() -> int:
        computed.append(1)
        return len(computed)

    assert [service.fresh("k", compute) for _ in range(5)] == [1] * 5
    assert service.fresh("other", compute) == 2  # another query is its own
    now[0] += 0.99
    assert service.fresh("k", compute) == 1
    now[0] += 0.02
    assert service.fresh("k", compute) == 3  # older than a second: read again
