"""Sending notifications without ever holding up trading.

:class:`Notifier` takes events (:meth:`Notifier.event`: a kind, a line of
text) from the run's thread and returns at once; a daemon thread sends them.
Events of one target that come within ``batch_seconds`` of the first go out
as one message; a target gets at most ``max_per_minute`` messages a minute,
and what waits meanwhile is batched into the next. A target that fails is
logged (its URL masked) and tried again with the next message; nothing it
does reaches the caller. Apprise does the sending: one URL per target, any
of the services it knows.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tradepipe.notify")

#: Titles by event kind.
TITLES = {
    "fill": "Fill",
    "denial": "Denied",
    "rejection": "Rejected by the broker",
    "unknown": "Order outcome unknown",
    "halt": "Trading halted",
    "connection": "Connection",
    "run": "Run",
    "daily_summary": "Day's summary",
    "test": "Test",
}
#: The most lines one message carries; the rest are counted.
MAX_LINES = 20


def shown_url(url: str) -> str:
    """An Apprise URL as it may be shown: its secrets hidden, its options dropped."""
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(url)
    except Exception:  # an unreadable URL is shown by its scheme alone
        plugin = None
    if plugin is None:
        return url.split("://", 1)[0] + "://…"
    return str(plugin.url(privacy=True)).split("?", 1)[0]


@dataclass
class Target:
    """One destination: its Apprise URL, the events it takes, what waits for it."""

    name: str
    url: str
    events: frozenset[str]
    waiting: list[tuple[str, str]] = field(default_factory=list)
    first_at: float | None = None
    sent_at: deque[float] = field(default_factory=deque)
    failures: int = 0

    def takes(self, kind: str) -> bool:
        return "*" in self.events or kind in self.events or kind == "test"


Sender = Callable[[str, str, str, float], bool]


def apprise_send(url: str, title: str, body: str, timeout: float) -> bool:
    """Send one message to one Apprise URL; whether it went."""
    import apprise

    # Apprise's own log could print the URL: only what it calls critical gets through.
    logging.getLogger("apprise").setLevel(logging.CRITICAL)
    # Sent on the caller's thread (ours): Apprise's own threads cannot start while
    # the interpreter exits, when a one-off command's last messages go.
    notifier = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
    # cto/rto: Apprise's connect and read timeouts, in seconds.
    joined = "&" if "?" in url else "?"
    if not notifier.add(f"{url}{joined}cto={timeout:g}&rto={timeout:g}"):
        return False
    return bool(notifier.notify(body=body, title=title))


class Notifier:
    """Events in, messages out on a thread of their own (see the module docstring)."""

    def __init__(
        self,
        targets: list[Target],
        *,
        batch_seconds: float = 5.0,
        max_per_minute: int = 6,
        timeout: float = 10.0,
        send: Sender = apprise_send,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.targets = targets
        self.batch_seconds = batch_seconds
        self.max_per_minute = max_per_minute
        self.timeout = timeout
        self._send = send
        self._clock = clock
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._exit_hook = False

    def event(self, kind: str, text: str) -> None:
        """Queue an event for the targets that take ``kind``; never blocks, never raises."""
        if not any(t.takes(kind) for t in self.targets):
            return
        try:
            self._queue.put_nowait((kind, text))
        except queue.Full:
            self.dropped += 1
            return
        self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="notify", daemon=True)
                self._thread.start()
                if not self._exit_hook:
                    # What waits when the process ends (a one-off command) still goes.
                    at_shutdown(self._at_exit)
                    self._exit_hook = True

    def _at_exit(self) -> None:
        # Waits for what is queued, waiting or being sent right now, within the timeout.
        if self._thread is not None and self._thread.is_alive():
            self.flush(self.timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Send what waits now, batch or not, and wait for it (at most ``timeout``)."""
        self._queue.put(None)
        self._start()
        self._queue.join()
        deadline = self._clock() + timeout
        while any(t.waiting for t in self.targets) and self._clock() < deadline:
            time.sleep(0.05)

    def _loop(self) -> None:
        while True:
            got = True
            item: tuple[str, str] | None = None
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                got = False
            try:
                if got and item is None:
                    self._deliver(force=True)  # flush(): everything now
                elif item is not None:
                    kind, text = item
                    for target in self.targets:
                        if target.takes(kind):
                            target.waiting.append((kind, text))
                            target.first_at = target.first_at or self._clock()
                self._deliver(force=False)
            except Exception as exc:  # the notifier must never die
                log.error("notifications: %s", type(exc).__name__)
            finally:
                if got:
                    self._queue.task_done()

    def _deliver(self, *, force: bool) -> None:
        now = self._clock()
        for target in self.targets:
            if not target.waiting:
                continue
            while target.sent_at and now - target.sent_at[0] >= 60:
                target.sent_at.popleft()
            due = force or (
                target.first_at is not None and now - target.first_at >= self.batch_seconds
            )
            if not due or (len(target.sent_at) >= self.max_per_minute and not force):
                continue
            batch, target.waiting, target.first_at = target.waiting, [], None
            title, body = message(batch)
            target.sent_at.append(now)
            why = "the service refused it or did not answer"
            try:
                ok = self._send(target.url, title, body, self.timeout)
            except Exception as exc:  # a failing target is logged, never raised
                ok, why = False, f"{type(exc).__name__}: {redact(str(exc), target.url)}"
            if ok:
                self.sent += 1
                target.failures = 0
            else:
                self.failed += 1
                target.failures += 1
                log.warning(
                    "notification to %s (%s) failed (%s): %d event(s) not delivered",
                    target.name,
                    shown_url(target.url),
                    why,
                    len(batch),
                )


def redact(text: str, url: str) -> str:
    """``text`` without ``url`` or any part of its credentials."""
    secret = url.split("://", 1)[-1].split("@", 1)[0] if "@" in url else ""
    for part in (url, secret, *secret.split(":")):
        if len(part) >= 3:
            text = text.replace(part, "****")
    return text


def message(batch: list[tuple[str, str]]) -> tuple[str, str]:
    """One message for a batch of events: a title from its kinds, a line per event."""
    kinds = list(dict.fromkeys(kind for kind, _ in batch))
    title = "tradepipe: " + (
        TITLES.get(kinds[0], kinds[0]) if len(kinds) == 1 else f"{len(batch)} events"
    )
    lines = [text for _, text in batch[:MAX_LINES]]
    if len(batch) > MAX_LINES:
        lines.append(f"… and {len(batch) - MAX_LINES} more")
    return title, "\n".join(lines)


def at_shutdown(call: Callable[[], None]) -> None:
    """Call ``call`` when the process ends, while threads can still run.

    Apprise sends through a thread pool, which refuses work once the interpreter
    is shutting down; ``atexit`` is too late. The threading module's own exit
    hooks run before that, the last registered first, so this one runs before
    the thread pools close (``concurrent.futures`` registers on import:
    :func:`prepare` imports it first). A Python without that hook gets atexit.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        atexit.register(call)
        return
    register(call)


def prepare(urls: list[str]) -> None:
    """Load what sending needs now: Apprise reads its plugins (and Python's thread
    pools) on first use, which is refused while the interpreter exits, when a
    one-off command's last messages go."""
    import concurrent.futures.thread  # noqa: F401 - registers its exit hook now

    import apprise

    for url in urls:
        try:
            apprise.Apprise.instantiate(url)
        except Exception:  # a URL Apprise cannot read fails when sent, and is logged then
            continue


def from_settings(settings: Any, send: Sender = apprise_send) -> Notifier | None:
    """The notifier ``[notify]`` describes, or ``None`` without targets."""
    notify = settings.notify
    targets = [
        Target(name, target.apprise, frozenset(target.events))
        for name, target in sorted(notify.targets.items())
    ]
    if not targets:
        return None
    if send is apprise_send:
        prepare([t.url for t in targets])
    return Notifier(
        targets,
        batch_seconds=notify.batch_seconds,
        max_per_minute=notify.max_per_minute,
        timeout=notify.timeout_seconds,
        send=send,
    )
