"""The live feed base: a queue to the loop, a state for the status."""

from __future__ import annotations

import datetime as dt
import time

from tradepipe import Bar
from tradepipe.clock import ScaledClock
from tradepipe.live.feed import LiveFeed

T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


class Scripted(LiveFeed):
    name = "scripted"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.closed = False

    @property
    def bar_seconds(self) -> float:
        return 60.0

    def open(self) -> None:
        self.set_connected(True)
        self.spawn(self._run, "reader")

    def _run(self) -> None:
        if self.fail:
            raise ConnectionError("socket closed")
        self.publish(Bar("AAPL", T0, 1.0, 1.0, 1.0, 1.0, 0.0))
        self.stopping.wait()

    def close(self) -> None:
        self.closed = True


def test_published_bars_reach_the_loop_with_their_publish_time() -> None:
    feed = Scripted()
    clock = ScaledClock(T0 + dt.timedelta(seconds=90), 1)
    feed.start(clock, None)
    got = feed.next(2)
    assert got is not None
    bar, published = got
    assert bar.symbol == "AAPL" and published <= time.monotonic()
    state = feed.state()
    assert state.connected and state.bars == 1
    assert 29 <= (state.lag_seconds(clock.now()) or 0) < 35  # ended at 14:31, now 14:31:30
    assert not state.stalled(clock.now(), after=60)
    assert state.stalled(clock.now() + dt.timedelta(seconds=61), after=60)
    feed.wake()
    assert feed.next(2) is None  # woken, not a bar
    feed.stop()
    assert feed.closed and not feed.state().connected


def test_a_thread_that_dies_disconnects_the_feed_and_says_why() -> None:
    feed = Scripted(fail=True)
    feed.start(ScaledClock(T0, 1), None)
    deadline = time.monotonic() + 2
    while feed.state().connected and time.monotonic() < deadline:
        time.sleep(0.01)
    state = feed.state()
    assert not state.connected and "socket closed" in state.message
    feed.stop()


def test_nothing_arrives_within_the_timeout() -> None:
    feed = Scripted()
    assert feed.next(0.01) is None
