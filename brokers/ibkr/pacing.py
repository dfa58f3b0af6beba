"""IBKR's request limits, applied before a request leaves, with headroom, across processes.

IBKR answers a client that exceeds its limits with HTTP 429 and may put the
caller's IP in a "penalty box" for 10 (current pacing page) or 15 (older page)
minutes; retrying inside the box extends it. So the :class:`Pacer` keeps normal
use below every published limit, and after a 429 it refuses every request until
the penalty period is over instead of retrying.

Limits: one global rate (10 requests/s through the Client Portal Gateway, 50/s
per session over OAuth) plus the per-endpoint minimum intervals IBKR publishes.
The global rate is enforced as a minimum gap between requests rather than a
token bucket with bursts, because IBKR does not say over which window it counts.

**Headroom.** IBKR measures the interval at its end, after the network and the
gateway have added their jitter: reads sent exactly 5.00 s apart have been
measured 4.99 s apart and refused. Every interval is therefore lengthened by a
margin: for limits of a second or more ``max(margin × interval,
margin_seconds)`` (10% or 250 ms by default), for the sub-second global gap and
the snapshot limit ``margin × interval`` only (a fixed quarter second would
cut their rate to a third).

**One budget per gateway, shared by every process.** IBKR counts requests per
session and IP, not per program: ``tradepipe broker orders`` typed while a
live run polls the same gateway spends the same budget. With a state file
(:class:`FileState`) the next free slot of every limit and a penalty's end are
kept in one small JSON file, read and written under an exclusive ``flock``, so
separate commands, ``tradepipe serve`` and a live run queue behind each other.
Times in it are ``time.monotonic()`` values, which on Linux (``CLOCK_MONOTONIC``)
and macOS count from boot for every process alike; the file records the boot
it was written in and is ignored after a reboot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere the in-process lock is all there is
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from tradepipe.errors import BrokerUnavailableError

log = logging.getLogger("tradepipe.brokers.ibkr")

GATEWAY_RATE = 10.0
OAUTH_RATE = 50.0
#: The longer of IBKR's two published penalty periods.
PENALTY_SECONDS = 900.0
#: Default headroom: 10% of an interval, and at least this for intervals of 1 s or more.
MARGIN = 0.10
MARGIN_SECONDS = 0.25
_GLOBAL = "*"
_FORMAT = 1


@dataclass(frozen=True)
class EndpointLimit:
    """At most one request per ``interval`` seconds to paths matching ``pattern``."""

    method: str | None
    pattern: re.Pattern[str]
    interval: float

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.pattern.fullmatch(path))

    @property
    def key(self) -> str:
        return f"{self.method or '*'} {self.pattern.pattern}"


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


class MemoryState:
    """Pacing state of one process (the default, and what tests use)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}

    @contextlib.contextmanager
    def open(self) -> Iterator[dict[str, Any]]:
        """The state, exclusively, for one read-modify-write."""
        with self._lock:
            yield self._data


def boot_id() -> str:
    """This boot's identity: monotonic times of another boot mean nothing."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        # No boot id (not Linux): the boot time, to the second, stands in.
        return str(round(time.time() - time.monotonic()))


class FileState(MemoryState):
    """Pacing state shared through a JSON file by every process on this machine.

    The file is created 0600 in a 0700 folder; an unreadable or damaged file
    is started afresh with a warning (it holds no record anyone needs, only
    reservations a few seconds ahead and a penalty's end).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._boot = boot_id()

    @contextlib.contextmanager
    def open(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                data = self._load()
                before = json.dumps(data, sort_keys=True)
                yield data
                if json.dumps(data, sort_keys=True) != before:
                    self._save(data)
            finally:
                os.close(fd)  # closing releases the flock

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("pacing state %s unreadable (%s); starting afresh", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("boot") != self._boot:
            return {}
        return data

    def _save(self, data: dict[str, Any]) -> None:
        data["format"] = _FORMAT
        data["boot"] = self._boot
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def with_margin(interval: float, margin: float, margin_seconds: float) -> float:
    """``interval`` lengthened by the headroom (see the module docstring)."""
    if interval >= 1.0:
        return interval + max(interval * margin, margin_seconds)
    return interval * (1.0 + margin)


class Pacer:
    """Spaces requests out to stay inside IBKR's limits; thread- and process-safe.

    :param rate: global requests per second.
    :param max_wait: longest a caller is made to wait for its turn; a longer
        wait (e.g. the scanner parameters, once per 15 minutes) raises
        :class:`BrokerUnavailableError` saying when to try again.
    :param penalty_seconds: how long every request is refused after a 429.
    :param margin: headroom as a fraction of each interval.
    :param margin_seconds: least headroom on intervals of a second or more.
    :param state: where reservations live: :class:`MemoryState` (this process
        only, the default) or :class:`FileState` (every process on the machine).
    """

    def __init__(
        self,
        rate: float = GATEWAY_RATE,
        *,
        limits: tuple[EndpointLimit, ...] = ENDPOINT_LIMITS,
        max_wait: float = 10.0,
        penalty_seconds: float = PENALTY_SECONDS,
        margin: float = MARGIN,
        margin_seconds: float = MARGIN_SECONDS,
        state: MemoryState | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if margin < 0 or margin_seconds < 0:
            raise ValueError("margins cannot be negative")
        self.gap = with_margin(1.0 / rate, margin, 0.0)
        self.limits = limits
        self._intervals = {lim: with_margin(lim.interval, margin, margin_seconds) for lim in limits}
        self.max_wait = max_wait
        self.penalty_seconds = penalty_seconds
        self.state = state or MemoryState()
        self._monotonic = monotonic
        self._sleep = sleep
        self._wall = wall

    def interval(self, method: str, path: str) -> float | None:
        """The spacing (headroom included) this pacer keeps for ``method path``."""
        limit = self._limit(method.upper(), path)
        return None if limit is None else self._intervals[limit]

    def _limit(self, method: str, path: str) -> EndpointLimit | None:
        return next((lim for lim in self.limits if lim.matches(method, path)), None)

    def acquire(self, method: str, path: str) -> None:
        """Wait for the turn of ``method path``; return when it may be sent.

        :raises BrokerUnavailableError: in a penalty period, or when the turn is
            further away than ``max_wait``.
        """
        method = method.upper()
        limit = self._limit(method, path)
        with self.state.open() as data:
            now = self._monotonic()
            self._check_penalty(data, now)
            slots = data.setdefault("next", {})
            start = max(now, self._slot(slots, _GLOBAL, now))
            if limit is not None:
                start = max(start, self._slot(slots, limit.key, now))
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
            slots[_GLOBAL] = start + self.gap
            if limit is not None:
                slots[limit.key] = start + self._intervals[limit]
            self._prune(slots, now)
        if wait > 0:
            self._sleep(wait)

    def due(self, method: str, path: str) -> bool:
        """Whether ``method path`` could go now as far as its own limit goes.

        For calls worth making only when their interval has passed anyway
        (``/sso/validate``): asking does not reserve anything.
        """
        limit = self._limit(method.upper(), path)
        if limit is None:
            return True
        with self.state.open() as data:
            now = self._monotonic()
            return self._slot(data.get("next", {}), limit.key, now) <= now

    def _slot(self, slots: dict[str, Any], key: str, now: float) -> float:
        value = slots.get(key)
        if not isinstance(value, int | float):
            return 0.0
        # A slot further ahead than any limit allows was not written by a pacer
        # of this boot and these limits: ignore it rather than wait for it.
        longest = max([self.gap, *self._intervals.values()])
        return float(value) if value - now <= 2 * longest else 0.0

    def _prune(self, slots: dict[str, Any], now: float) -> None:
        for key in [k for k, v in slots.items() if not isinstance(v, int | float) or v < now]:
            del slots[key]

    def penalize(self) -> None:
        """IBKR answered 429: refuse every request, in every process, for the penalty period."""
        with self.state.open() as data:
            data["penalty_until"] = self._monotonic() + self.penalty_seconds

    @property
    def penalty_remaining(self) -> float:
        with self.state.open() as data:
            return self._remaining(data, self._monotonic())

    def _remaining(self, data: dict[str, Any], now: float) -> float:
        until = data.get("penalty_until")
        if not isinstance(until, int | float):
            return 0.0
        left = float(until) - now
        if left <= 0 or left > 2 * max(self.penalty_seconds, PENALTY_SECONDS):
            data.pop("penalty_until", None)
            return 0.0
        return left

    def describe_penalty(self, left: float) -> str:
        until = dt.datetime.fromtimestamp(self._wall() + left, dt.UTC)
        return f"until {until:%H:%M:%S} UTC (another {left:.0f} s)"

    def _check_penalty(self, data: dict[str, Any], now: float) -> None:
        left = self._remaining(data, now)
        if left <= 0:
            return
        raise BrokerUnavailableError(
            f"IBKR rate limit hit (HTTP 429): every request is paused "
            f"{self.describe_penalty(left)}, because retrying during IBKR's penalty period "
            "extends it",
            retry_after=left,
            maybe_sent=False,
        )

    # -- facts shared with other processes ------------------------------------------

    def remember(self, name: str, value: Any, ttl: float) -> None:
        """Keep a small non-secret fact (e.g. the login type) for ``ttl`` seconds."""
        with self.state.open() as data:
            facts = data.setdefault("facts", {})
            facts[name] = {"value": value, "until": self._monotonic() + ttl}

    def recall(self, name: str) -> Any:
        """A fact :meth:`remember` kept and that has not expired, else ``None``."""
        with self.state.open() as data:
            fact = data.get("facts", {}).get(name)
            if not isinstance(fact, dict):
                return None
            until = fact.get("until")
            if not isinstance(until, int | float) or until < self._monotonic():
                return None
            return fact.get("value")


def default_state_file(base_url: str) -> Path:
    """``$XDG_STATE_HOME/tradepipe/ibkr-pacing-<host>-<port>.json``: one budget per gateway."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = re.sub(r"[^A-Za-z0-9.-]", "_", parts.hostname or "gateway")
    root = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(root).expanduser() / "tradepipe" / f"ibkr-pacing-{host}-{port}.json"
