"""Incremental indicators: O(1) work per new value, whatever the window."""

from __future__ import annotations

from collections import deque


class SMA:
    """Simple moving average over the last ``period`` values.

    ``update`` returns the average once ``period`` values have been seen, and
    ``None`` before. The running sum is re-added from the window every
    ``period * 64`` updates so float rounding cannot drift over a long replay.
    """

    __slots__ = ("_count", "_sum", "_window", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("SMA period must be at least 1")
        self.period = period
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        window = self._window
        window.append(x)
        self._sum += x
        if len(window) > self.period:
            self._sum -= window.popleft()
        self._count += 1
        if self._count % (self.period * 64) == 0:
            self._sum = sum(window)
        if len(window) == self.period:
            self.value = self._sum / self.period
        return self.value
