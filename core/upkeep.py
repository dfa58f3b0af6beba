"""What a run's loop does besides moving events: closing the day, and the collector.

* **The day's close** (``[run] daily_snapshots``): the first bar at or after
  the next New York midnight closes a day, and the account is snapshotted as
  the bar before it left it.
* **The garbage collector**: a replay allocates millions of short-lived
  records, freed by reference counting; the cyclic collector only slows it
  down by re-scanning the loaded bars and everything the run keeps.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tradepipe.clock import NEW_YORK
from tradepipe.errors import BrokerError

if TYPE_CHECKING:
    from tradepipe.adapter import Broker
    from tradepipe.sink import Sink

log = logging.getLogger("tradepipe.events")

_FAR_PAST = datetime(1, 1, 2, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


def snapshot(broker: Broker, sinks: Sequence[Sink]) -> None:
    """Record the broker's positions and account, as of now, in every sink."""
    positions, account = broker.positions(), broker.account()
    for sink in sinks:
        sink.record_snapshot(positions, account)


def close_day(broker: Broker, sinks: Sequence[Sink]) -> None:
    """Snapshot the account at the day's close; a broker that cannot say is logged."""
    try:
        snapshot(broker, sinks)
    except BrokerError as exc:
        log.warning("could not snapshot the account at the day's end: %s", exc)


def first_cut(daily: bool) -> datetime:
    """When a run first looks for a day's close: at its first bar, or never."""
    return _FAR_PAST if daily else _FAR_FUTURE


def next_midnight(ts: datetime) -> datetime:
    """The first instant of the New York day after the one ``ts`` falls in."""
    local = ts.astimezone(NEW_YORK)
    day = local.date() + timedelta(days=1)
    # In the bars' own timezone (UTC): comparing datetimes of one tzinfo is a
    # plain field comparison, of two it asks both for their offsets every bar.
    return datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(ts.tzinfo)


@contextmanager
def tuned_gc(enabled: bool) -> Iterator[None]:
    """While it lasts, collect young objects rarely and old ones not at all.

    What exists is frozen; the usual thresholds come back at the end, however
    it ends. ``enabled=False`` (a live run, which lasts) leaves the collector be.
    """
    thresholds = gc.get_threshold()
    if enabled:
        gc.freeze()
        gc.set_threshold(100_000, 50, 1_000_000)
    try:
        yield
    finally:
        if enabled:
            gc.set_threshold(*thresholds)
            gc.unfreeze()


class Interrupts:
    """Ctrl-C (or SIGTERM) that stops a replay between two bars, never inside one.

    A bar is one step: the broker fills what it matches, the fills are recorded,
    the strategies decide. Interrupted inside it, a replay left fills the
    simulator made but the ledger never heard of, and the run's last snapshot
    disagreed with its fills. While :meth:`deferred` lasts (in the main thread),
    SIGINT and SIGTERM (``kill``, a scheduler stopping the job) are taken as
    follows:

    * before the bars start (the feed loading, the ledger opening): at once;
    * while they run (:attr:`running`): the first only asks, the loop sees
      :attr:`asked` before its next bar and raises :exc:`KeyboardInterrupt`
      there, and the run closes as ``interrupted``; a second stops at once;
    * once they are done (:attr:`closing`: the ledger is being closed): not
      at all, so the run's row is never left saying it is running.
    """

    def __init__(self) -> None:
        self.asked = False
        self.running = False
        self.closing = False

    @contextmanager
    def deferred(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.getsignal(signum) for signum in signals}

        def ask(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.closing:
                log.warning("%s: the run is closing its ledger, which is not cut short", name)
                return
            if self.asked or not self.running:
                raise KeyboardInterrupt
            self.asked = True
            log.warning("%s: the replay stops after this bar (again: at once)", name)

        for signum in signals:
            signal.signal(signum, ask)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
