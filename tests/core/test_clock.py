"""The clocks a live run waits on."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from tradepipe.clock import ScaledClock, SystemClock

T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_scaled_clock_runs_speed_times_as_fast_as_the_wall() -> None:
    mono = FakeMonotonic()
    clock = ScaledClock(T0, 60, monotonic=mono)
    assert clock.now() == T0
    mono.t += 1.5
    assert clock.now() == T0 + dt.timedelta(seconds=90)
    assert clock.wall_seconds(60) == 1.0
    assert clock.speed == 60


def test_a_leap_moves_forward_never_back() -> None:
    mono = FakeMonotonic()
    clock = ScaledClock(T0, 1, monotonic=mono)
    clock.leap(T0 + dt.timedelta(hours=17))
    assert clock.now() == T0 + dt.timedelta(hours=17)
    clock.leap(T0)
    assert clock.now() == T0 + dt.timedelta(hours=17)
    mono.t += 2
    assert clock.now() == T0 + dt.timedelta(hours=17, seconds=2)


def test_a_wait_ends_when_the_clock_gets_there_or_on_stop() -> None:
    clock = ScaledClock(T0, 3600)
    started = time.monotonic()
    assert clock.wait(T0 + dt.timedelta(seconds=180))  # 0.05 s of wall time
    assert 0.04 <= time.monotonic() - started < 2
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert not clock.wait(T0 + dt.timedelta(days=30), stop)


def test_a_leap_wakes_a_waiter() -> None:
    clock = ScaledClock(T0, 1)
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(clock.wait(T0 + dt.timedelta(hours=1))))
    waiter.start()
    time.sleep(0.05)
    clock.leap(T0 + dt.timedelta(hours=2))
    waiter.join(2)
    assert woke == [True]


def test_the_system_clock_waits_on_the_wall() -> None:
    clock = SystemClock()
    assert clock.wait(clock.now() - dt.timedelta(seconds=1))
    stop = threading.Event()
    stop.set()
    assert not clock.wait(clock.now() + dt.timedelta(hours=1), stop)
    assert clock.wall_seconds(3) == 3


def test_a_scaled_clock_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        ScaledClock(T0, 0)
    with pytest.raises(ValueError):
        ScaledClock(dt.datetime(2026, 1, 1), 1)
