"""Where the stand-in reads time: the wall (:class:`RealClock`) or a test's (:class:`VirtualClock`).

Everything the stand-in stamps or measures asks its clock: epoch milliseconds for login
times, orders, executions and snapshots; epoch seconds for history bars and the ledger;
the local date for option expiries; monotonic seconds for pacing; and ``sleep`` for the
3-second ``timeout`` fault of the HTTPS server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Protocol


class Clock(Protocol):
    """What the stand-in reads time from."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (pacing intervals)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def now_ms(self) -> int:
        """Milliseconds since the epoch, as IBKR stamps things."""
        ...

    def today(self) -> date:
        """The local calendar date (which option expiries are still ahead)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class RealClock:
    """The machine's clocks; what the stand-in uses when nothing else is given."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def today(self) -> date:
        return date.today()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class VirtualClock:
    """Time that moves only when told to: :meth:`advance`, or :meth:`sleep` on it.

    Both faces move together: monotonic seconds (starting at ``monotonic``) and epoch
    time (starting at ``epoch``, the wall's now when omitted, so dates look current).
    A test can hand :meth:`monotonic` and :meth:`sleep` to the code under test and so
    live through IBKR's real pacing limits (5 s between order-list reads, 60 s between
    ``/sso/validate`` calls...) in no wall time. Thread-safe.
    """

    def __init__(self, *, epoch: float | None = None, monotonic: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self._epoch = time.time() if epoch is None else float(epoch)
        self._monotonic = float(monotonic)
        #: Every sleep asked for, in order (what a test checks waits against).
        self.slept: list[float] = []
        self._due: list[tuple[float, Callable[[], None]]] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def time(self) -> float:
        with self._lock:
            return self._epoch

    def now_ms(self) -> int:
        with self._lock:
            return int(self._epoch * 1000)

    def today(self) -> date:
        with self._lock:
            return datetime.fromtimestamp(self._epoch).date()

    def advance(self, seconds: float) -> None:
        """Move both faces ``seconds`` forward (time never goes back), running what fell due."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        with self._lock:
            self._monotonic += seconds
            self._epoch += seconds
            due = [fn for at, fn in self._due if at <= self._monotonic]
            self._due = [(at, fn) for at, fn in self._due if at > self._monotonic]
        for fn in due:
            fn()

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the clock has moved ``seconds`` on (a person acting meanwhile)."""
        with self._lock:
            self._due.append((self._monotonic + seconds, fn))

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance by it at once (a negative sleep is none)."""
        with self._lock:
            self.slept.append(seconds)
        self.advance(max(0.0, seconds))
