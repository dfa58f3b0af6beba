"""Ctrl-C and SIGTERM for a live run: a graceful stop first, at once the second time.

The first SIGINT (Ctrl-C in a terminal) or SIGTERM (``systemctl stop``,
``docker stop``, ``kill``) asks the run to stop: no new orders, orders in
flight settled or left ``unknown``, the ledger flushed and the run closed as
``stopped`` (exit 0). A second one stops at once: it interrupts whatever the
run is waiting for, and the run is closed as ``interrupted`` (exit 130),
still with everything it recorded — unless the run is already closing its
ledger, which is never cut short.

Python runs signal handlers in the main thread only, so the handlers are
installed only there (a live run driven from another thread in a test is
stopped through :meth:`~tradepipe.live.run.LiveRun.request_stop`).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Protocol

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stoppable(Protocol):
    @property
    def stopping(self) -> bool: ...

    @property
    def finishing(self) -> bool: ...

    def request_stop(self, reason: str = ...) -> None: ...


class StopSignals:
    """Install the handlers for the life of a ``with`` block; the previous ones come back after."""

    def __init__(self, run: Stoppable) -> None:
        self.run = run
        self._previous: dict[int, Any] = {}
        self._hard = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        run = self.run
        if not run.stopping:
            log.warning(
                "%s: stopping; no new orders, orders in flight are settled "
                "(%s again stops at once)",
                name,
                "Ctrl-C" if signum == signal.SIGINT else name,
            )
            run.request_stop(f"{name} received")
            return
        if self._hard or run.finishing:
            log.warning("%s: already closing the ledger; it is not cut short", name)
            return
        self._hard = True
        log.warning("%s again: stopping at once", name)
        raise KeyboardInterrupt
