"""tradepipe.services.records: an order's end written to every sink that keeps it,
one sink's failure never another's, and never a failed cancel."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from tradepipe import OrderStatus, Sink, hookimpl
from tradepipe.errors import PersistenceError
from tradepipe.services.records import record_end
from tradepipe.testing import settings, test_host


class Failing(Sink):
    name = "failing"

    def record_end(self, broker: Any, client_order_id: str, requested: Any, env: str) -> None:
        raise PersistenceError("the disk is full")


class Crashing(Sink):
    name = "crashing"

    def record_end(self, broker: Any, client_order_id: str, requested: Any, env: str) -> None:
        raise RuntimeError("a bug in a third-party sink")


class Keeping(Sink):
    name = "keeping"
    ended: ClassVar[list[str]] = []

    def record_end(self, broker: Any, client_order_id: str, requested: Any, env: str) -> str:
        Keeping.ended.append(client_order_id)
        return "run-kept"


class Sinks:
    __name__ = "record_sinks"

    @hookimpl
    def tradepipe_register_sinks(self, register: Any) -> None:
        register(Failing)
        register(Crashing)
        register(Keeping)


@pytest.fixture(autouse=True)
def fresh() -> None:
    Keeping.ended = []


def end(*sinks: str, final: OrderStatus = OrderStatus.CANCELED, known: bool = True) -> Any:
    app = settings(run={"sinks": list(sinks)})
    return record_end(app, test_host(Sinks()), None, "tp-1", final=final, known=known)  # type: ignore[arg-type]


def test_each_sink_is_asked_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    assert end("failing", "crashing", "keeping") == "run-kept"
    assert Keeping.ended == ["tp-1"]
    assert "sink 'failing' could not record it (the disk is full)" in caplog.text
    assert "sink 'crashing' could not record it (a bug in a third-party sink)" in caplog.text


def test_a_sink_that_cannot_be_built_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    assert end("no_such_sink", "keeping") == "run-kept"
    assert "sink 'no_such_sink' left out" in caplog.text


def test_nothing_is_written_before_the_broker_confirms_the_end() -> None:
    assert end("keeping", final=OrderStatus.PENDING_CANCEL) is None
    assert end("keeping", known=False) is None
    assert Keeping.ended == []
