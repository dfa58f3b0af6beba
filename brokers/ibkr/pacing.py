"""IBKR's request limits, applied before a request leaves.

IBKR answers a client that exceeds its limits with HTTP 429 and may put the
caller's IP in a "penalty box" for 10 (current pacing page) or 15 (older page)
minutes; retrying inside the box extends it. So the :class:`Pacer` keeps normal
use below every published limit, and after a 429 it refuses every request until
the penalty period is over instead of retrying.

Limits: one global rate (10 requests/s through the Client Portal Gateway, 50/s
per session over OAuth) plus the per-endpoint minimum intervals IBKR publishes.
The global rate is enforced as a minimum gap between requests rather than a
token bucket with bursts, because IBKR does not say over which window it counts.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tradepipe.errors import BrokerUnavailableError

GATEWAY_RATE = 10.0
OAUTH_RATE = 50.0
#: The longer of IBKR's two published penalty periods.
PENALTY_SECONDS = 900.0


@dataclass(frozen=True)
class EndpointLimit:
    """At most one request per ``interval`` seconds to paths matching ``pattern``."""

    method: str | None
    pattern: re.Pattern[str]
    interval: float

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.pattern.fullmatch(path))


def _limit(method: str | None, pattern: str, interval: float) -> EndpointLimit:
    return EndpointLimit(method, re.compile(pattern), interval)


#: IBKR's per-endpoint limits (pacing page of the Web API documentation).
ENDPOINT_LIMITS: tuple[EndpointLimit, ...] = (
    _limit("GET", r"/iserver/marketdata/snapshot", 0.1),
    _limit("GET", r"/iserver/scanner/params", 900.0),
    _limit("POST", r"/iserver/scanner/run", 1.0),
    _limit("GET", r"/iserver/account/orders", 5.0),
    _limit("GET", r"/iserver/account/trades", 5.0),
    _limit("GET", r"/iserver/account/pnl/partitioned", 5.0),
    _limit("GET", r"/portfolio/(sub)?accounts", 5.0),
    _limit("POST", r"/pa/(performance|summary|transactions)", 900.0),
    _limit(None, r"/fyi/.*", 1.0),
    _limit(None, r"/tickle", 1.0),
    _limit("GET", r"/sso/validate", 60.0),
)


class Pacer:
    """Spaces requests out to stay inside IBKR's limits; thread-safe.

    :param rate: global requests per second.
    :param max_wait: longest a caller is made to wait for its turn; a longer
        wait (e.g. the scanner parameters, once per 15 minutes) raises
        :class:`BrokerUnavailableError` saying when to try again.
    :param penalty_seconds: how long every request is refused after a 429.
    """

    def __init__(
        self,
        rate: float = GATEWAY_RATE,
        *,
        limits: tuple[EndpointLimit, ...] = ENDPOINT_LIMITS,
        max_wait: float = 10.0,
        penalty_seconds: float = PENALTY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.gap = 1.0 / rate
        self.limits = limits
        self.max_wait = max_wait
        self.penalty_seconds = penalty_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_any = 0.0
        self._next_endpoint: dict[EndpointLimit, float] = {}
        self._penalty_until: float | None = None

    def acquire(self, method: str, path: str) -> None:
        """Wait for the turn of ``method path``; return when it may be sent.

        :raises BrokerUnavailableError: in a penalty period, or when the turn is
            further away than ``max_wait``.
        """
        method = method.upper()
        limit = next((lim for lim in self.limits if lim.matches(method, path)), None)
        with self._lock:
            now = self._monotonic()
            self._check_penalty(now)
            start = max(now, self._next_any)
            if limit is not None:
                start = max(start, self._next_endpoint.get(limit, 0.0))
            wait = start - now
            if wait > self.max_wait:
                every = limit.interval if limit is not None else self.gap
                raise BrokerUnavailableError(
                    f"IBKR allows {method} {path} once every {every:g} s "
                    f"(pacing); try again in {wait:.0f} s",
                    retry_after=wait,
                    maybe_sent=False,
                )
            # Reserve the slot before sleeping, so concurrent callers queue up.
            self._next_any = start + self.gap
            if limit is not None:
                self._next_endpoint[limit] = start + limit.interval
        if wait > 0:
            self._sleep(wait)

    def penalize(self) -> None:
        """IBKR answered 429: refuse every request for the penalty period."""
        with self._lock:
            self._penalty_until = self._monotonic() + self.penalty_seconds

    @property
    def penalty_remaining(self) -> float:
        with self._lock:
            if self._penalty_until is None:
                return 0.0
            return max(0.0, self._penalty_until - self._monotonic())

    def _check_penalty(self, now: float) -> None:
        if self._penalty_until is None:
            return
        if now >= self._penalty_until:
            self._penalty_until = None
            return
        left = self._penalty_until - now
        raise BrokerUnavailableError(
            f"IBKR rate limit hit (HTTP 429): all requests paused for another {left:.0f} s, "
            "because retrying during IBKR's penalty period extends it",
            retry_after=left,
            maybe_sent=False,
        )
