"""IBKR's WebSocket (``/v1/api/ws``): live quotes and order updates from a background thread.

:class:`MarketStream` keeps one socket open for as long as it runs (reference §11):

* **Opening.** The adapter says how (:meth:`~tradepipe.brokers.ibkr.broker.WebApiBroker.
  stream_handshake`): through a gateway the ``api`` cookie carries the session ``/tickle``
  answers; over OAuth the URL carries ``oauth_token``. A fresh handshake is asked for before
  every attempt, because a new login changes the session. Cookies and tokens never reach a
  log or a message: only :attr:`Handshake.safe_url` does.
* **Subscribing.** Once IBKR says ``system``/``success``, ``smd`` for every conid (the
  fields of :data:`~tradepipe.brokers.ibkr.topics.STREAM_FIELDS`) and ``sor`` for orders;
  again after the brokerage session comes back (``sts``) and after every reconnect.
* **Keeping it.** ``tic`` every ``tic_seconds`` (IBKR: about once a minute). No market data
  for ``stall_seconds`` while it should flow (``should_flow``: the feed knows market hours)
  is a *stall*: every conid is unsubscribed and subscribed again. Nothing at all, not even
  IBKR's 10-second heartbeat, for ``silent_seconds`` means the socket is dead: it is closed
  and opened again.
* **Reconnecting.** A closed, dropped or refused socket is opened again after a jittered,
  capped exponential backoff (``backoff_seconds`` doubling up to ``backoff_cap_seconds``,
  each wait drawn between half and all of it); a socket that got as far as IBKR's
  ``success`` starts the backoff over. The state event after a reconnect carries the span
  without data (``gap``) so a feed can fetch the bars it missed
  (:func:`~tradepipe.brokers.ibkr.bars.backfill`).
* **Reporting.** Events go to :attr:`MarketStream.events` (a queue) and to ``on_event``
  (called in the stream's thread; an exception there is logged and ignored):
  :class:`~tradepipe.brokers.ibkr.topics.QuoteUpdate`,
  :class:`~tradepipe.brokers.ibkr.topics.OrderChanged`, :class:`StateChanged` and
  :class:`SubscriptionRefused` (a conid past the account's market-data lines).
  :meth:`MarketStream.status` is a snapshot for status displays.

The socket is ``websockets``' threaded client (:func:`websocket_connect`); tests hand in
another ``connect`` with the same methods (``send``, ``recv(timeout)``, ``close``) and the
same failures (``TimeoutError``, ``ConnectionClosed``, ``InvalidStatus``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from tradepipe.brokers.ibkr.topics import (
    STREAM_FIELDS,
    OrderBook,
    OrderChanged,
    QuoteBook,
    QuoteUpdate,
)
from tradepipe.clock import Clock, SystemClock
from tradepipe.errors import ConfigError, TradepipeError
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect as ws_connect

if TYPE_CHECKING:
    from tradepipe.brokers.ibkr.broker import WebApiBroker

log = logging.getLogger("tradepipe.brokers.ibkr.stream")

#: IBKR's words when the account's market-data lines are used up (see the stand-in).
LINES_FULL = "max number of tickers"


@dataclass(frozen=True)
class Handshake:
    """What opening the socket takes; ``headers`` (the cookie) and ``url`` stay out of logs."""

    url: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    ssl: ssl.SSLContext | None = field(default=None, repr=False)
    #: The URL without its query (where an OAuth token travels): what messages show.
    safe_url: str = ""


class Connection(Protocol):
    """The methods of ``websockets.sync.client.ClientConnection`` the stream uses."""

    def send(self, message: str) -> None: ...

    def recv(self, timeout: float | None = None) -> str | bytes: ...

    def close(self) -> None: ...


ConnectionFactory = Callable[[Handshake], Connection]


class _WebSocket:
    """A ``websockets`` connection entered as its context manager, as the library asks."""

    def __init__(self, handshake: Handshake, open_timeout: float) -> None:
        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(
            ws_connect(
                handshake.url,
                ssl=handshake.ssl,
                additional_headers=dict(handshake.headers),
                open_timeout=open_timeout,
                # IBKR's own heartbeat and our tic keep the socket; silence is detected.
                ping_interval=None,
                compression=None,
                max_size=2**22,
            )
        )

    def send(self, message: str) -> None:
        self._ws.send(message)

    def recv(self, timeout: float | None = None) -> str | bytes:
        return self._ws.recv(timeout)

    def close(self) -> None:
        self._stack.close()


def websocket_connect(handshake: Handshake, *, open_timeout: float = 10.0) -> Connection:
    """Open the socket with ``websockets``' threaded client."""
    return _WebSocket(handshake, open_timeout)


def socket_url(base_url: str) -> str:
    """The WebSocket's URL beside a REST base URL (``https://host:5000/v1/api``)."""
    base = base_url.rstrip("/")
    scheme, sep, rest = base.partition("://")
    return f"{'ws' if scheme == 'http' else 'wss'}{sep}{rest}/ws"


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """A client TLS context for an adapter's ``verify`` (true, false, or a CA file)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class StreamState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    #: Open, but IBKR's brokerage session is down ("waiting for session").
    WAITING = "waiting"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    #: IBKR refused the handshake (wrong or stale cookie or token); retried with backoff.
    REFUSED = "refused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The stream's state and why.

    :param retry_in: seconds until the next attempt (reconnecting, refused).
    :param gap: after a reconnect, the wall-clock span (start, end) in which no data came.
    """

    state: StreamState
    reason: str
    at: dt.datetime
    retry_in: float | None = None
    gap: tuple[dt.datetime, dt.datetime] | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionRefused:
    """IBKR refused ``symbol``'s market data; ``reason`` says why and what to do."""

    symbol: str
    conid: int
    reason: str


StreamEvent = QuoteUpdate | OrderChanged | StateChanged | SubscriptionRefused


@dataclass(frozen=True)
class StreamStatus:
    """A snapshot of the stream, for status files and displays."""

    state: StreamState
    reason: str
    since: dt.datetime
    symbols: tuple[str, ...]
    last_data: dt.datetime | None
    last_heartbeat: dt.datetime | None
    reconnects: int
    stalls: int
    refused: Mapping[str, str]


class MarketStream:
    """Quotes and order updates from IBKR's WebSocket (see the module docstring).

    :param handshake: called before every attempt to open the socket.
    :param conids: the symbols to stream, each with its conid.
    :param orders: also subscribe to order updates (``sor``).
    :param max_lines: the account's market-data lines, when known: more symbols than that
        is a :class:`~tradepipe.errors.ConfigError` at once.
    :param monotonic: and ``sleep``, ``clock``, ``rng``: time and chance, injectable for
        tests; ``sleep`` (the backoff's wait) defaults to a wait :meth:`stop` interrupts.
    """

    # Keyword-only settings with defaults, and the time and chance seams tests set.
    def __init__(  # noqa: PLR0913
        self,
        handshake: Callable[[], Handshake],
        conids: Mapping[str, int],
        *,
        orders: bool = True,
        connect: ConnectionFactory = websocket_connect,
        on_event: Callable[[StreamEvent], None] | None = None,
        fields: Sequence[str] = STREAM_FIELDS,
        tic_seconds: float = 60.0,
        stall_seconds: float = 30.0,
        silent_seconds: float = 35.0,
        backoff_seconds: float = 1.0,
        backoff_cap_seconds: float = 60.0,
        max_lines: int | None = None,
        should_flow: Callable[[], bool] = lambda: True,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        name: str = "ibkr",
    ) -> None:
        if max_lines is not None and len(conids) > max_lines:
            raise ConfigError(
                f"{name}: {len(conids)} symbols need {len(conids)} market-data lines; the "
                f"account has {max_lines} (IBKR counts every open stream, snapshots included)"
            )
        self.name = name
        self.max_lines = max_lines
        self.conids = {s.upper(): c for s, c in conids.items()}
        self._symbols = {c: s for s, c in self.conids.items()}
        self.orders = orders
        self.fields = list(fields)
        self.tic_seconds = tic_seconds
        self.stall_seconds = stall_seconds
        self.silent_seconds = silent_seconds
        self.backoff_seconds = backoff_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.should_flow = should_flow
        self.events: queue.Queue[StreamEvent] = queue.Queue()
        self._handshake = handshake
        self._connect = connect
        self._on_event = on_event
        self._clock = clock or SystemClock()
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()
        #: Set by :meth:`retry_now`: the backoff's wait ends and starts over from its shortest.
        self._retry = threading.Event()
        #: Ends the backoff's wait: set by :meth:`stop` and :meth:`retry_now`.
        self._wake = threading.Event()
        self._quotes = QuoteBook(self._symbols, self._clock.now)
        self._orders = OrderBook()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._state = StreamState.STOPPED
        self._reason = "not started"
        self._since = self._clock.now()
        self._last_data: dt.datetime | None = None
        self._last_heartbeat: dt.datetime | None = None
        self._down_since: dt.datetime | None = None
        self._reconnects = 0
        self._stalls = 0
        self._refused: dict[str, str] = {}
        self._authenticated = True

    @classmethod
    def for_broker(
        cls, broker: WebApiBroker, symbols: Sequence[str], **options: Any
    ) -> MarketStream:
        """A stream of ``symbols`` through ``broker``'s session (conids looked up now)."""
        broker.client  # noqa: B018 - builds the session, client and contract cache
        conids = {s.upper(): broker.contracts.stock(s) for s in symbols}
        options.setdefault("clock", broker.clock)
        options.setdefault("name", broker.name)
        return cls(broker.stream_handshake, conids, **options)

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the socket in a background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the socket and wait for the thread (idempotent)."""
        self._stop.set()
        self._wake.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: the stream thread did not stop within %.0f s", self.name, timeout)

    def __enter__(self) -> MarketStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> StreamStatus:
        with self._lock:
            return StreamStatus(
                state=self._state,
                reason=self._reason,
                since=self._since,
                symbols=tuple(self.conids),
                last_data=self._last_data,
                last_heartbeat=self._last_heartbeat,
                reconnects=self._reconnects,
                stalls=self._stalls,
                refused=dict(self._refused),
            )

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                healthy, reason, refused = self._attempt()
                if self._stop.is_set():
                    break
                failures = 0 if healthy else failures + 1
                if self._retry.is_set():
                    self._retry.clear()
                    failures = 0
                if self._backoff(reason, failures, refused):
                    failures = 0
        except Exception as exc:  # the thread must say why it ended
            log.exception("%s: the stream thread failed", self.name)
            self._set_state(StreamState.STOPPED, f"failed: {exc}")
            return
        self._set_state(StreamState.STOPPED, "stopped")

    def _attempt(self) -> tuple[bool, str, bool]:
        """Open the socket and run it: (got IBKR's success, why it ended, refused)."""
        self._set_state(StreamState.CONNECTING, "opening the socket")
        try:
            handshake = self._handshake()
        except TradepipeError as exc:
            return False, f"no session to open the socket with: {exc}", False
        try:
            conn = self._connect(handshake)
        except InvalidStatus as exc:
            status = exc.response.status_code
            why = f"IBKR refused the socket at {handshake.safe_url} (HTTP {status})"
            if status in (401, 403):
                why += ": the session cookie or token was not accepted (logged out, or a new login)"
            return False, why, True
        except (OSError, TimeoutError, WebSocketException) as exc:
            return False, f"could not open {handshake.safe_url}: {exc or type(exc).__name__}", False
        self._conn = conn
        try:
            return self._converse(conn)
        finally:
            self._conn = None
            with contextlib.suppress(Exception):
                conn.close()
            if self._down_since is None:
                self._down_since = self._last_data or self._clock.now()

    def _converse(self, conn: Connection) -> tuple[bool, str, bool]:
        self._authenticated = True  # until IBKR's sts on this socket says otherwise
        now = self._monotonic()
        last_sent = last_message = last_data = now
        healthy = False
        try:
            while not self._stop.is_set():
                wait = min(1.0, max(0.01, last_sent + self.tic_seconds - now))
                try:
                    raw = conn.recv(wait)
                except TimeoutError:
                    raw = None
                now = self._monotonic()
                if raw is not None:
                    last_message = now
                    healthy, data = self._on_message(conn, self._handle(raw), healthy)
                    if data:
                        last_data = now
                # tic goes out on its own schedule, whatever else is sent
                if now - last_sent >= self.tic_seconds:
                    conn.send("tic")
                    last_sent = now
                if (
                    healthy
                    and self._authenticated
                    and self._flowing()
                    and now - last_data >= self.stall_seconds
                ):
                    self._stalled(conn)
                    last_data = now
                if now - last_message >= self.silent_seconds:
                    why = (
                        f"nothing from IBKR, not even its heartbeat, for {self.silent_seconds:g} s"
                    )
                    return healthy, why, False
        except ConnectionClosed as exc:
            return healthy, _closed(exc), False
        except OSError as exc:
            return healthy, f"connection lost: {exc}", False
        return healthy, "stopped", False

    def _flowing(self) -> bool:
        wanted = [c for s, c in self.conids.items() if s not in self._refused]
        return bool(wanted) and self.should_flow()

    def _subscribe(self, conn: Connection) -> None:
        args = json.dumps({"fields": self.fields})
        for symbol, conid in self.conids.items():
            self._refused.pop(symbol, None)
            self._quotes.restart(conid)
            conn.send(f"smd+{conid}+{args}")
        if self.orders:
            conn.send("sor+{}")

    def _stalled(self, conn: Connection) -> None:
        with self._lock:
            self._stalls += 1
            count = self._stalls
        self._set_state(
            StreamState.STALLED,
            f"no market data for {self.stall_seconds:g} s while it should flow; "
            f"subscribing again (stall {count})",
        )
        args = json.dumps({"fields": self.fields})
        for symbol, conid in self.conids.items():
            if symbol in self._refused:
                continue
            conn.send(f"umd+{conid}+{{}}")
            self._quotes.restart(conid)
            conn.send(f"smd+{conid}+{args}")

    def _connected(self, reason: str) -> None:
        gap = None
        down = self._down_since
        if down is not None:
            gap = (down, self._clock.now())
            reason += f" again after {(gap[1] - gap[0]).total_seconds():.0f} s without data"
            self._down_since = None
        self._set_state(StreamState.CONNECTED, reason, gap=gap)

    def retry_now(self) -> None:
        """Open the socket again now, not at the end of the backoff (the login is back)."""
        self._retry.set()
        self._wake.set()

    def _backoff(self, reason: str, failures: int, refused: bool) -> bool:
        """Wait before the next attempt; True when :meth:`retry_now` cut the wait short."""
        doublings = min(max(failures - 1, 0), 32)
        limit = min(self.backoff_cap_seconds, self.backoff_seconds * 2**doublings)
        delay = limit / 2 + self._rng.uniform(0, limit / 2)
        with self._lock:
            self._reconnects += 1
        state = StreamState.REFUSED if refused else StreamState.RECONNECTING
        self._set_state(state, f"{reason}; opening again in {delay:.1f} s", retry_in=delay)
        log.warning("%s: stream %s: %s; opening again in %.1f s", self.name, state, reason, delay)
        if self._sleep is not None:
            self._sleep(delay)
        else:
            self._wake.wait(delay)
        self._wake.clear()
        if self._stop.is_set():
            self._wake.set()  # stays set: nothing waits once stopping
        if self._retry.is_set():
            self._retry.clear()
            log.info("%s: stream: the session is back; opening the socket now", self.name)
            return True
        return False

    def _on_message(self, conn: Connection, kind: str, healthy: bool) -> tuple[bool, bool]:
        """What the socket does after a message of ``kind``: whether it is healthy now,
        and whether the message counts as data flowing (for the stall watch)."""
        if kind == "success":
            self._connected("IBKR accepted the socket")
            self._subscribe(conn)
            return True, True
        if kind == "data":
            if self._state is StreamState.STALLED:
                self._set_state(StreamState.CONNECTED, "market data flows again")
            return healthy, True
        if kind == "session_back" and healthy:
            self._set_state(StreamState.CONNECTED, "IBKR's brokerage session is back")
            self._subscribe(conn)
            return healthy, True
        return healthy, False

    # -- messages ---------------------------------------------------------------------------------

    def _handle(self, raw: str | bytes) -> str:
        """Act on one message; what kind it was."""
        try:
            message = json.loads(raw)
        except ValueError:
            log.debug("%s: unreadable stream message ignored", self.name)
            return "other"
        if not isinstance(message, dict):
            return "other"
        topic = str(message.get("topic") or "")
        if message.get("error") is not None:
            return self._error(topic, message)
        if topic == "system":
            return self._system(message)
        if message.get("message") == "waiting for session":
            return self._session(False, "IBKR is waiting for the brokerage session")
        if topic == "sts":
            return self._status(message)
        if topic.startswith("smd+"):
            return self._market_data(message)
        if topic == "sor":
            return self._order_updates(message)
        return "other"

    def _system(self, message: Mapping[str, Any]) -> str:
        if "success" in message:
            return "success"
        if "hb" in message:
            with self._lock:
                self._last_heartbeat = self._clock.now()
        return "heartbeat"

    def _status(self, message: Mapping[str, Any]) -> str:
        args = message.get("args")
        if isinstance(args, dict) and "authenticated" in args:
            if args["authenticated"]:
                return self._session(True, "")
            return self._session(False, "IBKR's brokerage session is down")
        return "other"

    def _market_data(self, message: Mapping[str, Any]) -> str:
        update = self._quotes.apply(message)
        if update is None:
            return "other"
        with self._lock:
            self._last_data = self._clock.now()
        self._emit(update)
        return "data"

    def _order_updates(self, message: Mapping[str, Any]) -> str:
        for item in message.get("args") or []:
            if isinstance(item, dict):
                changed = self._orders.apply(item)
                if changed is not None:
                    self._emit(changed)
        return "orders"

    def _session(self, authenticated: bool, reason: str) -> str:
        was, self._authenticated = self._authenticated, authenticated
        if authenticated:
            return "session_back" if not was else "other"
        if self._state is not StreamState.WAITING:
            self._set_state(StreamState.WAITING, reason)
        return "other"

    def _error(self, topic: str, message: Mapping[str, Any]) -> str:
        text = str(message.get("error"))
        if topic.startswith("smd+"):
            conid = topic[4:].split("@", 1)[0]
            symbol = self._symbols.get(int(conid)) if conid.isdigit() else None
            if symbol is not None:
                reason = f"IBKR refused market data for {symbol}: {text}"
                if LINES_FULL in text.lower():
                    lines = f"all {self.max_lines}" if self.max_lines is not None else "all"
                    reason = (
                        f"IBKR refused market data for {symbol}: {lines} of the account's "
                        f"market-data lines are in use (IBKR: {text!r}); this stream asks "
                        f"for {len(self.conids)}, and other streams and snapshots hold lines "
                        "too. Stream fewer symbols, close other market data, or raise the "
                        "account's lines (IBKR's default is 100)"
                    )
                with self._lock:
                    self._refused[symbol] = reason
                log.error("%s: %s", self.name, reason)
                self._emit(SubscriptionRefused(symbol, int(conid), reason))
                return "refused"
        log.warning("%s: IBKR stream error on %r: %s", self.name, topic or "-", text)
        return "other"

    def _emit(self, event: StreamEvent) -> None:
        self.events.put(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("%s: a stream event handler failed", self.name)

    def _set_state(
        self,
        state: StreamState,
        reason: str,
        *,
        retry_in: float | None = None,
        gap: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> None:
        now = self._clock.now()
        with self._lock:
            self._state, self._reason, self._since = state, reason, now
        log.info("%s: stream %s: %s", self.name, state, reason)
        self._emit(StateChanged(state, reason, now, retry_in, gap))


def _closed(exc: ConnectionClosed) -> str:
    frame = exc.rcvd
    if frame is None:
        return "IBKR hung up without closing the socket"
    return f"IBKR closed the socket ({frame.code}{': ' + frame.reason if frame.reason else ''})"
