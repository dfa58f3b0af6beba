"""Incremental indicators: O(1) work per new value, whatever the window."""

from __future__ import annotations


class SMA:
    """Simple moving average over the last ``period`` values.

    ``update`` returns the average once ``period`` values have been seen, and
    ``None`` before. The running sum is recomputed from the window every
    ``period * 64`` updates so float rounding cannot drift over a long replay.
    """

    __slots__ = ("_buf", "_i", "_n", "_resum", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("SMA period must be at least 1")
        self.period = period
        self._buf = [0.0] * period
        self._i = 0
        self._n = 0
        self._sum = 0.0
        self._resum = period * 64
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        i = self._i
        buf = self._buf
        # The slot being overwritten holds the value leaving the window (0.0
        # while the window is still filling).
        self._sum += x - buf[i]
        buf[i] = x
        i += 1
        self._i = i if i < self.period else 0
        self._resum -= 1
        if not self._resum:
            self._resum = self.period * 64
            self._sum = sum(buf)
        if self._n < self.period:
            self._n += 1
            if self._n < self.period:
                return None
        self.value = value = self._sum / self.period
        return value


class SMAPair:
    """Two simple moving averages of one series, kept in one window.

    ``update`` returns ``fast - slow`` once ``slow`` values have been seen (and
    ``None`` before): one call and one buffer per value instead of two, for
    crossover strategies that run over millions of bars.
    """

    __slots__ = ("_buf", "_fsum", "_i", "_n", "_resum", "_ssum", "fast", "slow", "slow_value")

    def __init__(self, fast: int, slow: int) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={fast}, slow={slow}")
        self.fast = fast
        self.slow = slow
        self._buf = [0.0] * slow
        self._i = 0
        self._n = 0
        self._fsum = 0.0
        self._ssum = 0.0
        self._resum = slow * 64
        #: The slow average after the last update (``None`` until it exists).
        self.slow_value: float | None = None

    def update(self, x: float) -> float | None:
        buf = self._buf
        i = self._i
        # buf[i] leaves the slow window; buf[i - fast] (wrapping) leaves the
        # fast one. Both are 0.0 until the window has filled that far.
        self._ssum += x - buf[i]
        self._fsum += x - buf[i - self.fast]
        buf[i] = x
        i += 1
        slow = self.slow
        self._i = i if i < slow else 0
        self._resum -= 1
        if not self._resum:
            self._resum = slow * 64
            self._ssum = sum(buf)
            j = self._i
            self._fsum = sum(buf[(j - k - 1) % slow] for k in range(self.fast))
        if self._n < slow:
            self._n += 1
            if self._n < slow:
                return None
        slow_value = self.slow_value = self._ssum / slow
        return self._fsum / self.fast - slow_value
