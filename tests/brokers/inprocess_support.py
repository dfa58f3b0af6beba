"""The gateway stand-in in this process, on a virtual clock: fixtures, adapters and the CLI on it.

``inprocess_gateway`` is a stand-in for the paper account ``DU1234567``;
``start_inprocess_gateway(account=..., behaviour={...})`` makes others. Each is an
:class:`InProcessGateway`: the same control methods as the HTTPS ``gateway`` (both are a
:class:`~standin.driver.Driver`), plus ``clock``, the :class:`~standin.clock.VirtualClock` the
stand-in reads, and two ways to put the Client Portal adapter on it:

* ``inprocess_gateway.broker(**settings)``: a ``ClientPortalBroker`` whose HTTP client goes
  through the in-process transport and whose pacer, snapshot retries, polling and session
  checks all wait on the virtual clock;
* ``inprocess_gateway.serve_cli(monkeypatch)``: the same for every ``ClientPortalBroker`` a
  ``tradepipe`` command builds in this process (``CliRunner``), the waits of ``broker cancel
  --wait`` included. Write the settings from ``broker_table()``.

``inprocess_gateway.stream(adapter, symbols, **options)`` is a
:class:`~tradepipe.brokers.ibkr.stream.MarketStream` through that adapter whose socket is an
in-memory connection to the stand-in (:mod:`standin.websocket`) and whose timers, backoff and
timestamps all read the virtual clock; it is stopped when the test ends.

Either way the adapter keeps IBKR's real pacing limits (5 s between order-list reads, 60 s
between ``/sso/validate`` calls...): they cost virtual seconds, not wall time. The adapter is
:attr:`InProcessGateway.adapter`; ``oauth_fixtures.InProcessOAuthGateway`` does the same with
the OAuth adapter, behind the OAuth stand-in.

``any_gateway`` is parametrized over both surfaces, for tests written once and run against
the stand-in in this process and behind HTTPS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gateway_support import PAPER_ACCOUNT, Gateway
from standin.clock import VirtualClock
from standin.driver import Driver, LocalDriver
from tradepipe.brokers.ibkr.broker import WebApiBroker
from tradepipe.brokers.ibkr.client_portal import ClientPortalBroker
from tradepipe.brokers.ibkr.stream import Handshake, MarketStream
from tradepipe.clock import SystemClock
from tradepipe.direct import Direct
from tradepipe.executor import Executor
from tradepipe.services import broker as services_broker


class InProcessGateway(LocalDriver):
    """A stand-in in this process on a virtual clock, and adapters wired to it."""

    clock: VirtualClock
    #: The adapter :meth:`broker` builds and :meth:`serve_cli` reroutes.
    adapter: type[WebApiBroker] = ClientPortalBroker

    def __init__(
        self, account: str = PAPER_ACCOUNT, *, behaviour: dict[str, Any] | None = None
    ) -> None:
        super().__init__(account, behaviour=behaviour, clock=VirtualClock())
        self._brokers: list[WebApiBroker] = []
        self._streams: list[MarketStream] = []

    def broker(self, **settings: Any) -> WebApiBroker:
        """An adapter on this stand-in; ``settings`` override :meth:`broker_table`'s.

        The adapter keeps IBKR's real pacing; it is disconnected when the test ends.
        """
        adapter = self.adapter(self.adapter.Settings.model_validate(self.broker_table(**settings)))
        self._wire(adapter)
        adapter.use_http(self.client(timeout=adapter.settings.timeout_seconds))
        self._brokers.append(adapter)
        return adapter

    def stream(self, adapter: WebApiBroker, symbols: list[str], **options: Any) -> MarketStream:
        """A stream of ``symbols`` through ``adapter`` to this stand-in, on its clock (not
        started); stopped when the test ends."""
        options.setdefault("connect", self.stream_connect)
        options.setdefault("monotonic", self.clock.monotonic)
        options.setdefault("sleep", self.clock.sleep)
        options.setdefault("clock", VirtualNow(self.clock))
        stream = MarketStream.for_broker(adapter, symbols, **options)
        self._streams.append(stream)
        return stream

    def stream_connect(self, handshake: Handshake) -> Any:
        """A ``MarketStream`` connection factory: an in-memory socket to this stand-in."""
        return self.ws_connect(handshake.url, handshake.headers)

    def serve_cli(self, monkeypatch: pytest.MonkeyPatch) -> None:
        gateway = self

        def make_http(adapter: WebApiBroker) -> Any:
            gateway._wire(adapter)
            return gateway.client(timeout=adapter.settings.timeout_seconds)

        # The adapter's own pacer (IBKR's limits, the headroom, the budget shared
        # through the pacing file) runs on the clock make_http wired in.
        monkeypatch.setattr(self.adapter, "make_http", make_http)
        monkeypatch.setattr(services_broker, "sleep", self.clock.sleep)
        monkeypatch.setattr(services_broker, "monotonic", self.clock.monotonic)
        # The rest of a command's time is the stand-in's too: the end-of-run poll and
        # `order --wait` wait on it, and the wall clock (ledger times, the age of an
        # order reconcile judges by) reads it.
        monkeypatch.setattr(Executor, "sleep", staticmethod(self.clock.sleep))
        monkeypatch.setattr(Executor, "monotonic", staticmethod(self.clock.monotonic))
        monkeypatch.setattr(Direct, "default_sleep", staticmethod(self.clock.sleep))
        monkeypatch.setattr(Direct, "default_monotonic", staticmethod(self.clock.monotonic))
        clock = self.clock
        monkeypatch.setattr(
            SystemClock, "now", lambda _self: dt.datetime.fromtimestamp(clock.time(), dt.UTC)
        )

    def _wire(self, adapter: WebApiBroker) -> None:
        # The adapter hands these to its pacer, snapshot retries, poll spacing and
        # session checks: all of them then wait on the stand-in's clock.
        adapter.monotonic = self.clock.monotonic
        adapter.sleep = self.clock.sleep

    def close(self) -> None:
        """Stop the streams, disconnect the adapters made by :meth:`broker`, close clients."""
        while self._streams:
            self._streams.pop().stop()
        while self._brokers:
            self._brokers.pop().disconnect()
        super().close()


class VirtualNow:
    """A ``tradepipe`` clock reading the stand-in's virtual time."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.time(), dt.UTC)


@pytest.fixture
def start_inprocess_gateway() -> Iterator[Callable[..., InProcessGateway]]:
    """``start_inprocess_gateway(account=..., behaviour={...})``; all closed at teardown."""
    made: list[InProcessGateway] = []

    def start(
        account: str = PAPER_ACCOUNT, *, behaviour: dict[str, Any] | None = None
    ) -> InProcessGateway:
        gateway = InProcessGateway(account, behaviour=behaviour)
        made.append(gateway)
        return gateway

    yield start
    for gateway in reversed(made):
        gateway.close()


@pytest.fixture
def inprocess_gateway(start_inprocess_gateway: Callable[..., InProcessGateway]) -> InProcessGateway:
    """A stand-in in this process for the paper account DU1234567, on a virtual clock."""
    return start_inprocess_gateway()


@pytest.fixture(params=["inprocess", "tls"])
def any_gateway(request: pytest.FixtureRequest) -> Driver:
    """The paper-account stand-in in this process, then (a second run) behind HTTPS."""
    if request.param == "tls":
        gateway: Gateway = request.getfixturevalue("gateway")
        return gateway
    local: InProcessGateway = request.getfixturevalue("inprocess_gateway")
    return local
