"""Asking a broker, as the command line and the HTTP API both do.

Whether a connected broker can be used, and waiting for an order's end: plain
functions, no click and no web framework, so ``tradepipe broker …`` and the
API's routes are thin adapters over the same behaviour.
"""

from __future__ import annotations

import math
import time

from tradepipe.adapter import Broker, BrokerStatus
from tradepipe.errors import BrokerAuthError, BrokerUnavailableError, TradepipeError
from tradepipe.logs import redact_accounts
from tradepipe.orders import OrderStatus

#: Seconds between two questions about an order whose end is awaited.
POLL_INTERVAL = 0.5
# The clock await_final waits on (tests replace them).
sleep = time.sleep
monotonic = time.monotonic


def broker_problem(adapter: Broker, status: BrokerStatus) -> TradepipeError | None:
    """Why the broker cannot be used, with what to do about it; ``None`` when it can."""
    name = adapter.name
    advice = redact_accounts(status.message)
    if not status.connected:
        advice = advice or (
            f"check that it is running and reachable and that [brokers.{name}] points at it"
        )
        return BrokerUnavailableError(
            f"broker {name!r} is not connected: {advice}; then try again", broker=name
        )
    if not status.authenticated:
        advice = advice or f"log in again, or renew the credentials in [brokers.{name}]"
        return BrokerAuthError(
            f"broker {name!r} is not authenticated: {advice}; then try again", broker=name
        )
    return None


def await_final(
    adapter: Broker, cid: str, status: OrderStatus, wait: float
) -> tuple[OrderStatus, bool]:
    """Ask about ``cid`` until its status is final or ``wait`` seconds have passed.

    Returns the last status seen and whether the broker still knew the order.
    """
    deadline = monotonic() + wait
    for _ in range(max(1, math.ceil(wait / POLL_INTERVAL))):
        sleep(max(0.0, min(POLL_INTERVAL, deadline - monotonic())))
        report = adapter.order(cid)
        if report is None:
            return status, False
        status = report.status
        if status.is_terminal or monotonic() >= deadline:
            break
    return status, True
