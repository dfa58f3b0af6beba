"""IBKR's pacing, measured where IBKR measures it: at the gateway, on arrival.

Every API request counts, whatever it is and however it ends (a faulted request still
arrived). Two rules, from IBKR's pacing page (reference §9):

* a global rate: more than ``rate`` requests in any one-second window (10/s through the
  Client Portal Gateway, 50/s over OAuth) is a violation;
* per-endpoint minimum intervals (the order list and executions once per 5 s,
  ``/sso/validate`` once a minute, …): a request that arrives sooner after the last one of
  its endpoint is a violation.

A violation answers 429 and opens the penalty box: for ``penalty_seconds`` (10 minutes on
the current page) every request answers 429, and each one that arrives in the box extends it,
as IBKR warns retries do. Intervals are measured between arrivals, on the stand-in's clock,
with no tolerance: a client that spaces requests exactly at the limit can be measured a hair
under it, as happens with IBKR.

Not modelled: the history endpoint's "5 concurrent requests" (requests here are answered one
at a time).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

#: (method or None for any, path pattern, minimum seconds between requests)
ENDPOINT_LIMITS: tuple[tuple[str | None, str, float], ...] = (
    ("GET", r"/iserver/marketdata/snapshot", 0.1),
    ("GET", r"/iserver/scanner/params", 900.0),
    ("POST", r"/iserver/scanner/run", 1.0),
    ("GET", r"/iserver/account/orders", 5.0),
    ("GET", r"/iserver/account/trades", 5.0),
    ("GET", r"/iserver/account/pnl/partitioned", 5.0),
    ("GET", r"/portfolio/(sub)?accounts", 5.0),
    ("POST", r"/pa/(performance|summary|transactions)", 900.0),
    (None, r"/fyi/.*", 1.0),
    (None, r"/tickle", 1.0),
    ("GET", r"/sso/validate", 60.0),
)
_LIMITS = tuple((m, re.compile(p), i) for m, p, i in ENDPOINT_LIMITS)

GATEWAY_RATE = 10
OAUTH_RATE = 50
PENALTY_SECONDS = 600.0


@dataclass
class Violation:
    """Why a request was answered 429."""

    reason: str


class GatewayPacing:
    """Counts arrivals and keeps the penalty box."""

    def __init__(self, rate: int = GATEWAY_RATE, penalty_seconds: float = PENALTY_SECONDS) -> None:
        self.rate = rate
        self.penalty_seconds = penalty_seconds
        self._window: deque[float] = deque()
        self._last: dict[str, float] = {}
        self.penalty_until: float | None = None
        #: Every violation, in order: (arrival time, method, path, reason).
        self.violations: list[tuple[float, str, str, str]] = []

    def arrive(self, method: str, path: str, now: float) -> Violation | None:
        """Count one request arriving ``now``; a :class:`Violation` if it breaks a limit."""
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        window.append(now)
        reason: str | None = None
        if self.penalty_until is not None and now < self.penalty_until:
            reason = "in the penalty box after an earlier violation; the retry extends it"
        elif len(window) > self.rate:
            reason = f"more than {self.rate} requests within one second"
        else:
            for limit_method, pattern, interval in _LIMITS:
                if limit_method not in (None, method) or not pattern.fullmatch(path):
                    continue
                key = f"{limit_method} {pattern.pattern}"
                last = self._last.get(key)
                if last is not None and now - last < interval:
                    reason = (
                        f"{method} {path} again after {now - last:.3f} s; "
                        f"IBKR allows one every {interval:g} s"
                    )
                else:
                    self._last[key] = now
                break
        if reason is None:
            return None
        self.penalty_until = now + self.penalty_seconds
        self.violations.append((now, method, path, reason))
        return Violation(reason)
