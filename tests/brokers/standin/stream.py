"""IBKR's WebSocket (``/v1/api/ws``) as behaviour with no I/O: what a socket is sent, and when.

A :class:`StreamSession` is one open socket's side of the conversation (reference §11). It is
handed the client's text messages (:meth:`StreamSession.receive`) and told that time has passed
(:meth:`StreamSession.tick`); what it has to say waits in its outbox (:meth:`StreamSession.take`),
and :attr:`StreamSession.ending` says when the server hangs up and how. The carriers in
``websocket.py`` put it on a real socket (HTTPS upgrade, framing by ``websockets``'
sans-I/O protocol) or on an in-memory connection in the test's process.

By default, as IBKR documents:

* on connect ``{"topic":"system","success":"<username>"}`` and the brokerage session's
  ``sts``; then ``{"topic":"system","hb":<epoch ms>}`` every ``stream_heartbeat_seconds``;
  an ``sts`` whenever the brokerage session comes or goes, and
  ``{"message":"waiting for session"}`` with each heartbeat while it is down;
* ``smd+<conid>+{"fields":[...]}``: the first message for a conid carries only some fields
  (``31``, ``6509``, ``55``, ``6008`` of those asked, else the first one), each later one only
  the fields that changed since, with ``conid``, ``_updated`` and ``topic``; values are the
  snapshot strings (``market.py``), so ``/_standin/market`` overrides and ``/_standin/ticks``
  drive the stream; ``umd+<conid>+{}`` ends it. A conid past the account's market-data lines
  (``market_data_lines``, counted with the snapshot streams) is refused with
  ``{"topic":"smd+<conid>","conid":N,"error":"Max number of tickers has been reached"}``:
  IBKR's Web API pages do not show the socket's refusal, so this is the text of IBKR's own
  error 101 for exhausted market-data lines (TWS API) — an assumption, kept in one place
  (:data:`LINES_REFUSAL`);
* ``sor+{}``: the orders known at that moment in full, then for every order that changes
  (placed, filled, cancelled) only the changed fields plus ``orderId``, in
  ``{"topic":"sor","args":[...]}`` (the live-orders shape). A push counts as a read for the
  stand-in's ``PendingCancel`` → ``Cancelled`` settling; ``uor+{}`` ends it;
* ``tic`` and ``ech+hb`` are keep-alives; a socket with no client message for
  ``stream_idle_seconds`` is closed (1000, "idle"); a new login or a logout closes it (1000);
* other topics answer ``{"topic":"error","error":"..."}`` (not documented by IBKR; visible
  on purpose).

What the ``/_standin/stream`` control call does to open sockets: ``drop`` (hang up without a
close frame), ``stall`` (market data and order updates stop while heartbeats go on, until the
client subscribes again; with ``"heartbeats": false`` everything stops until it reconnects),
``refuse`` (the next ``times`` handshakes answer ``status``, 401 unless given).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .executions import ExecutionsMixin
from .market import MarketMixin
from .model import fmt_price, fmt_size, fmt_volume
from .wire import fail, is_number, parse_int

LINES_REFUSAL = "Max number of tickers has been reached"
#: The fields of a first ``smd`` message, when asked for: what IBKR has at once.
FIRST_FIELDS = ("31", "6509", "55", "6008")
_CONID = re.compile(r"(\d+)(?:@[A-Za-z0-9.]+)?")


def username(is_paper: bool) -> str:
    return "standinpaper" if is_paper else "standinlive"


@dataclass(frozen=True)
class Ending:
    """How the server hangs up: a close frame with ``code``, or none (``code`` is None)."""

    code: int | None
    reason: str = ""


DROPPED = Ending(None, "dropped")


@dataclass
class Subscription:
    fields: list[str]
    #: What the client was last sent, field by field (empty: the first message is due).
    sent: dict[str, str] = field(default_factory=dict)


@dataclass
class Tick:
    """A trade in the price path ``/_standin/ticks`` lays out."""

    due: float  # on the stand-in's monotonic clock
    conid: int
    price: float
    size: float


class StreamSession:
    """One socket's conversation with IBKR's WebSocket (see the module docstring)."""

    def __init__(self, standin: StreamMixin, number: int) -> None:
        self.standin = standin
        self.number = number
        now = standin.clock.monotonic()
        self.session = standin.session  # the login it was opened in
        self.last_client = now
        self.next_heartbeat = now + standin.behaviour.stream_heartbeat_seconds
        self.outbox: list[str] = []
        #: Every message the client sent, in order (for tests).
        self.received: list[str] = []
        self.sent_count = 0
        self.subscriptions: dict[int, Subscription] = {}
        self.orders: dict[int, dict[str, Any]] | None = None  # None: no sor subscription
        self.stalled = False
        self.silent = False
        self.auth_said: bool | None = None
        #: Set when the server hangs up.
        self.ending: Ending | None = None
        self._say({"topic": "system", "success": username(standin.is_paper)})
        self._auth_status()

    # -- what carriers call (with the stand-in's lock held) -------------------------------

    def receive(self, text: str) -> None:
        """A text message from the client."""
        if self.ending is not None:
            return
        self.received.append(text)
        self.last_client = self.standin.clock.monotonic()
        message = text.strip()
        if message in ("tic", "ech+hb") or message.startswith("{"):
            return  # keep-alives; a bare JSON object ({"session": ...}) is accepted silently
        topic, _, rest = message.partition("+")
        try:
            if topic == "smd":
                self._subscribe(*self._target(rest))
            elif topic == "umd":
                conid, _ = self._target(rest)
                self.subscriptions.pop(conid, None)
                self.stalled = False
            elif topic == "sor":
                self._subscribe_orders()
            elif topic == "uor":
                self.orders = None
            else:
                self._say({"topic": "error", "error": f"unknown topic {topic!r}"})
        except ValueError as exc:
            self._say({"topic": "error", "error": f"{message!r}: {exc}"})

    def tick(self) -> None:
        """Time has passed: heartbeats, data that changed, the idle close."""
        if self.ending is not None:
            return
        standin, behaviour = self.standin, self.standin.behaviour
        now = standin.clock.monotonic()
        if not standin.logged_in or standin.session != self.session:
            self.ending = Ending(1000, "session ended")
            return
        idle = behaviour.stream_idle_seconds
        if idle and now - self.last_client > idle:
            self.ending = Ending(1000, f"idle: no message from the client for {idle:g} s")
            return
        standin._wake_stream(now)
        if self.silent:
            return
        self._auth_status()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + behaviour.stream_heartbeat_seconds
            self._say({"topic": "system", "hb": standin.clock.now_ms()})
            if not standin.brokerage_ok:
                self._say({"message": "waiting for session"})
        if standin.brokerage_ok and not self.stalled:
            self._push_market()
            self._push_orders()

    def take(self) -> list[str]:
        """The messages to send now, in order."""
        out, self.outbox = self.outbox, []
        self.sent_count += len(out)
        return out

    def info(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "subscriptions": sorted(self.subscriptions),
            "orders": self.orders is not None,
            "received": list(self.received),
            "sent": self.sent_count,
            "stalled": self.stalled,
            "silent": self.silent,
            "open": self.ending is None,
        }

    # -- inside ------------------------------------------------------------------------------------

    def _say(self, payload: dict[str, Any]) -> None:
        self.outbox.append(json.dumps(payload))

    def _auth_status(self) -> None:
        standin = self.standin
        ok = standin.brokerage_ok
        if ok != self.auth_said:
            self.auth_said = ok
            args = {"authenticated": ok, "competing": standin.competing, "message": ""}
            self._say({"topic": "sts", "args": args})

    @staticmethod
    def _target(rest: str) -> tuple[int, dict[str, Any]]:
        target, _, raw = rest.partition("+")
        match = _CONID.fullmatch(target)
        if match is None:
            raise ValueError("expected <conid>+{...}")
        args = json.loads(raw) if raw.strip() else {}
        if not isinstance(args, dict):
            raise ValueError("arguments must be a JSON object")
        return int(match.group(1)), args

    def _subscribe(self, conid: int, args: dict[str, Any]) -> None:
        fields = args.get("fields") or []
        if not isinstance(fields, list):
            raise ValueError('"fields" must be an array of field ids')
        standin = self.standin
        if conid not in self.subscriptions and conid not in standin.lines_in_use():
            limit = standin.behaviour.market_data_lines
            if len(standin.lines_in_use()) >= limit:
                self._say({"topic": f"smd+{conid}", "conid": conid, "error": LINES_REFUSAL})
                return
        self.subscriptions[conid] = Subscription([str(f) for f in fields])
        self.stalled = False

    def _subscribe_orders(self) -> None:
        self.orders = {}
        views = self._order_views()
        if views:
            self._say({"topic": "sor", "args": [v for _, v in views]})
        for order_id, view in views:
            self.orders[order_id] = view

    def _order_views(self) -> list[tuple[int, dict[str, Any]]]:
        standin = self.standin
        views = []
        for order in standin.orders.values():
            standin._settle_cancel(order)
            views.append((order.order_id, order.live()))
            standin._mark_shown(order)
        return views

    def _push_orders(self) -> None:
        if self.orders is None:
            return
        updates = []
        for order_id, view in self._order_views():
            before = self.orders.get(order_id)
            if before is None:
                updates.append(view)
            else:
                changed = {k: v for k, v in view.items() if before.get(k) != v}
                if changed:
                    updates.append({**changed, "orderId": order_id})
            self.orders[order_id] = view
        if updates:
            self._say({"topic": "sor", "args": updates})

    def _push_market(self) -> None:
        standin = self.standin
        for conid, sub in self.subscriptions.items():
            quote = standin._quote(conid)
            now = {f: quote[f] for f in sub.fields if f in quote}
            if not sub.sent:
                first = [f for f in sub.fields if f in FIRST_FIELDS and f in now]
                now = {f: now[f] for f in (first or list(now)[:1])}
            changed = {f: v for f, v in now.items() if sub.sent.get(f) != v}
            if not changed:
                continue
            sub.sent.update(changed)
            self._say(
                {
                    "topic": f"smd+{conid}",
                    "conid": conid,
                    "_updated": standin.clock.now_ms(),
                    **changed,
                }
            )


class StreamMixin(ExecutionsMixin, MarketMixin):
    """The WebSocket's shared state: open sessions, the price path, handshake refusals."""

    def _reset(self) -> None:
        super()._reset()
        for session in getattr(self, "streams", []):
            session.ending = DROPPED  # a reset hangs up on every socket
        self.streams: list[StreamSession] = []
        self.stream_numbers = 0
        self.ticks: list[Tick] = []
        #: Handshakes still to refuse, and with which status.
        self.refusals: list[int] = []

    # -- the handshake and the sessions ------------------------------------------------------------

    def stream_refusal(self, cookie: str | None, *, token_ok: bool | None = None) -> str | None:
        """Why a WebSocket handshake is refused (a 401's text), or ``None`` to accept it.

        :param cookie: the ``api`` cookie's value: the ``/tickle`` session, bare or as
            ``{"session": "..."}``.
        :param token_ok: over OAuth, whether ``oauth_token`` named a live session (then the
            cookie is optional); ``None`` through the gateway, where the cookie is the key.
        """
        with self.lock:
            if token_ok is False:
                return "invalid oauth_token"
            if not self.logged_in:
                return "access denied"
            if cookie is None:
                return None if token_ok else "missing api cookie"
            value = cookie.strip()
            if value.startswith("{"):
                try:
                    parsed = json.loads(value)
                except ValueError:
                    parsed = None
                value = str(parsed.get("session")) if isinstance(parsed, dict) else ""
            return None if value == self.session else "api cookie is not this session's"

    def forced_refusal(self) -> int | None:
        """The status of an armed ``refuse``, used up by this handshake (or ``None``)."""
        with self.lock:
            return self.refusals.pop(0) if self.refusals else None

    def open_stream(self) -> StreamSession:
        with self.lock:
            self.stream_numbers += 1
            session = StreamSession(self, self.stream_numbers)
            self.streams.append(session)
            return session

    def close_stream(self, session: StreamSession) -> None:
        with self.lock:
            if session in self.streams:
                self.streams.remove(session)
            if session.ending is None:
                session.ending = DROPPED

    def lines_in_use(self) -> set[int]:
        """Conids holding a market-data line: snapshot streams and every socket's ``smd``."""
        conids = set(self.streaming)
        for session in self.streams:
            if session.ending is None:
                conids.update(session.subscriptions)
        return conids

    # -- the price path ----------------------------------------------------------------------------

    def _wake_stream(self, now: float) -> None:
        """Trades of the price path that fell due: last price, size and day volume move."""
        due = [t for t in self.ticks if t.due <= now]
        if not due:
            return
        self.ticks = [t for t in self.ticks if t.due > now]
        for tick in due:
            before = self.overrides.get(tick.conid, {}).get("7762")
            volume = float(before) if before else float(super()._quote(tick.conid)["7762"])
            volume += tick.size
            fields = self.overrides.setdefault(tick.conid, {})
            fields["31"] = fmt_price(tick.price)
            fields["7059"] = fmt_size(tick.size)
            fields["7762"] = f"{volume:.0f}"
            fields["87"] = fmt_volume(volume)

    def _quote(self, conid: int) -> dict[str, str]:
        self._wake_stream(self.clock.monotonic())
        return super()._quote(conid)

    def _last_price(self, conid: int, fallback: float | None = None) -> float:
        self._wake_stream(self.clock.monotonic())
        return super()._last_price(conid, fallback)

    # -- control calls -----------------------------------------------------------------------------

    def set_ticks(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"ticks": [{"conid", "price", "size", "after"}]}``: trades ``after`` s from now."""
        ticks = body.get("ticks")
        if not isinstance(ticks, list):
            fail('body must be {"ticks": [{"conid": N, "price": p, "size": s, "after": t}]}')
        now = self.clock.monotonic()
        for item in ticks:
            if not isinstance(item, dict):
                fail("each tick must be an object")
            price, size, after = item.get("price"), item.get("size", 100), item.get("after", 0)
            if not is_number(price) or price <= 0 or not is_number(size) or size < 0:
                fail("a tick needs a positive price and a size of 0 or more")
            if not is_number(after) or after < 0:
                fail("after must be a number of seconds, 0 or more")
            conid = parse_int(item.get("conid"), "conid")
            self.ticks.append(Tick(now + float(after), conid, float(price), float(size)))
        self.ticks.sort(key=lambda t: t.due)
        self._wake_stream(now)
        return {"ok": True, "pending": len(self.ticks)}

    def stream_control(self, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action")
        live = [s for s in self.streams if s.ending is None]
        if action == "drop":
            for session in live:
                session.ending = DROPPED
        elif action == "stall":
            for session in live:
                session.stalled = True
                session.silent = body.get("heartbeats", True) is False
        elif action == "refuse":
            times, status = body.get("times", 1), body.get("status", 401)
            if not isinstance(times, int) or times < 1 or not isinstance(status, int):
                fail("refuse takes a positive integer times and an integer status")
            self.refusals.extend([status] * times)
        else:
            fail("action must be drop, stall or refuse")
        return {"ok": True, "sockets": len(live)}

    def stream_info(self) -> dict[str, Any]:
        return {
            "sockets": [s.info() for s in self.streams],
            "lines": sorted(self.lines_in_use()),
            "refusals": list(self.refusals),
        }
