"""Helpers for tests of IBKR's WebSocket: watching a stream's events, letting virtual time pass.

A :class:`~tradepipe.brokers.ibkr.stream.MarketStream` runs in its own thread; the stand-in in
this process only moves when the test moves its clock. :class:`Watch` collects the stream's
events and waits (in wall time, briefly) for one that matches; :func:`run_for` moves the
virtual clock in steps, giving the stream's thread a moment after each.

The adapter's keep-alive thread does not run on the virtual clock: a test that lets more than
IBKR's 5 idle minutes pass turns the REST session's idle drop off (``idle_seconds: 0``) rather
than tickle from the test's thread, whose requests would race the stream's own ``/tickle`` for
the same paced slot (on a virtual clock either thread's wait moves time for both).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any, TypeVar

from standin.clock import VirtualClock
from tradepipe.brokers.ibkr.stream import MarketStream, StateChanged, StreamEvent, StreamState

E = TypeVar("E")
WAIT = 5.0


class Watch:
    """Every event of ``stream``, as they come."""

    def __init__(self, stream: MarketStream) -> None:
        self.stream = stream
        self.seen: list[StreamEvent] = []
        self._read = 0

    def pump(self) -> None:
        while True:
            try:
                self.seen.append(self.stream.events.get_nowait())
            except queue.Empty:
                return

    def next(
        self, kind: type[E], where: Callable[[E], bool] = lambda _: True, timeout: float = WAIT
    ) -> E:
        """The next unread event of ``kind`` that matches ``where`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            for i in range(self._read, len(self.seen)):
                event = self.seen[i]
                if isinstance(event, kind) and where(event):
                    self._read = i + 1
                    return event
            if time.monotonic() > deadline:
                shown = "\n".join(repr(e) for e in self.seen[self._read :])
                raise AssertionError(f"no {kind.__name__} came; unread events:\n{shown}")
            time.sleep(0.005)

    def state(self, state: StreamState, timeout: float = WAIT) -> StateChanged:
        return self.next(StateChanged, lambda e: e.state is state, timeout)

    def all(self, kind: type[E]) -> list[E]:
        self.pump()
        return [e for e in self.seen if isinstance(e, kind)]

    def states(self) -> list[StreamState]:
        return [e.state for e in self.all(StateChanged)]


def settle(seconds: float = 0.06) -> None:
    """Give the stream's thread a moment of wall time (it polls every few milliseconds)."""
    time.sleep(seconds)


def run_for(clock: VirtualClock, seconds: float, *, step: float = 5.0) -> None:
    """Move ``clock`` on by ``seconds`` in ``step``s, settling after each."""
    moved = 0.0
    while moved < seconds:
        delta = min(step, seconds - moved)
        clock.advance(delta)
        moved += delta
        settle(0.03)


def subscribed(gw: Any, conid: int, clock: VirtualClock, timeout: float = WAIT) -> None:
    """Move ``clock`` on in half seconds until a socket of the stand-in ``gw`` holds a
    subscription to ``conid``. The stream subscribes from its own thread, later on
    a loaded machine; IBKR sends nothing of a trade made before it."""
    deadline = time.monotonic() + timeout
    while not any(conid in s["subscriptions"] for s in gw.streams()["sockets"]):
        if time.monotonic() > deadline:
            raise AssertionError(f"the stream did not subscribe to {conid} in {timeout} s")
        run_for(clock, 0.5, step=0.5)


def received(socket_info: dict[str, Any], prefix: str) -> list[str]:
    """The client messages a stand-in socket received that start with ``prefix``."""
    return [m for m in socket_info["received"] if m.startswith(prefix)]
