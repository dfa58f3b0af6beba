"""Helpers the paper simulator's tests share."""

from __future__ import annotations

from typing import Any

from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.clock import ManualClock
from tradepipe.market import Bar


def feed(broker: PaperBroker, *bars: Bar) -> list[Any]:
    """Show ``bars`` to the broker, the clock at each bar's time first; return the events."""
    clock = broker.clock
    assert isinstance(clock, ManualClock)
    events: list[Any] = []
    for b in bars:
        clock.set(b.ts)
        events.extend(broker.on_bar(b))
    return events
