"""Where business code gets the time.

Nothing in tradepipe's business code calls ``datetime.now()``: the executor hands
components a :class:`Clock`. Live runs use :class:`SystemClock`; replays use a
:class:`ManualClock` that the executor moves to each bar's time, so a replay
decides exactly as it would have at the time.

A live run also waits on its clock (for the next bar, for the open), so its
clock is a :class:`LiveClock`: :class:`SystemClock`, or a :class:`ScaledClock`
that runs faster than the wall (a demo feed's ``speed``, tests, the soak
benchmark) and can leap over a closed market.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

#: US equity and options markets' time zone: trading days, expiries and tax dates
#: are New York dates.
NEW_YORK = ZoneInfo("America/New_York")

#: The longest a wait on a :class:`ScaledClock` sleeps before looking again
#: (wall seconds): keeps a wait responsive to ``stop`` and to leaps.
_SLICE = 0.05


class Clock(Protocol):
    """Source of the current time (always timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class LiveClock(Clock, Protocol):
    """A clock a live run can wait on.

    ``speed`` is how many of the clock's seconds pass per wall second (1 for
    the wall clock).
    """

    @property
    def speed(self) -> float: ...

    def wait(self, until: datetime, stop: threading.Event | None = None) -> bool:
        """Block until the clock reads ``until`` or ``stop`` is set.

        :returns: ``True`` once ``until`` is reached, ``False`` when stopped first.
        """
        ...

    def wall_seconds(self, seconds: float) -> float:
        """How many wall seconds ``seconds`` of this clock take."""
        ...


class SystemClock:
    """The wall clock."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, until: datetime, stop: threading.Event | None = None) -> bool:
        while True:
            remaining = (until - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                return True
            if stop is None:
                time.sleep(remaining)
            elif stop.wait(remaining):
                return False

    def wall_seconds(self, seconds: float) -> float:
        return seconds


class ScaledClock:
    """A clock that starts at ``start`` and runs ``speed`` times as fast as the wall.

    :meth:`leap` moves it forward at once (the soak benchmark skips nights and
    weekends with it); everyone waiting on it wakes and looks again. It never
    goes backwards.
    """

    def __init__(
        self,
        start: datetime | None = None,
        speed: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("a clock's speed must be positive")
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("ScaledClock needs a timezone-aware start")
        self._start = start.astimezone(UTC)
        self._speed = float(speed)
        self._monotonic = monotonic
        self._m0 = monotonic()
        self._leapt = 0.0  # clock seconds added by leaps
        self._changed = threading.Condition()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._m0) * self._speed + self._leapt
        return self._start + timedelta(seconds=elapsed)

    def leap(self, to: datetime) -> None:
        """Move the clock forward to ``to`` (no-op when it is already past it)."""
        with self._changed:
            ahead = (to - self.now()).total_seconds()
            if ahead > 0:
                self._leapt += ahead
                self._changed.notify_all()

    def wait(self, until: datetime, stop: threading.Event | None = None) -> bool:
        with self._changed:
            while True:
                if stop is not None and stop.is_set():
                    return False
                remaining = (until - self.now()).total_seconds()
                if remaining <= 0:
                    return True
                wall = remaining / self._speed
                self._changed.wait(min(wall, _SLICE) if stop is not None else wall)

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self._speed


class ManualClock:
    """A clock that only moves when told to; replays and tests use it."""

    __slots__ = ("_now",)

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware datetime")
        self._now = when
