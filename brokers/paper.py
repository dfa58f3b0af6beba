"""The paper simulator: a broker that fills orders against bars, in process.

Fill semantics (each order is matched only against bars that start after it
was accepted, so an order decided on bar *t* can first fill on bar *t+1*):

* **market** — at the bar's open;
* **limit** — buy: at the open if the open is at or below the limit, else at
  the limit if the bar's low reaches it (sell: mirror image);
* **stop** — buy: at the open if the bar opens at or above the stop (a gap),
  else at the stop if the high reaches it (sell: mirror image);
* **stop-limit** — triggers like a stop, then behaves as a limit. Triggered by a
  gap at the open, it may fill in the same bar at the better of open and limit,
  or at the limit if the bar trades through it. Triggered inside the bar with a
  limit on the wrong side of the stop, it waits for the next bar, because a
  bar does not tell what traded first.

Orders fill completely. Slippage (``slippage_bps``) worsens market and stop
fills; limit fills never cross their limit. DAY orders expire when the first
bar of a later trading date (in ``timezone``) arrives; GTC orders stay. A DAY
order's trading date is that of the first bar it can fill on, which is what
lets a daily replay fill at the next day's open; with intraday bars, an order
placed after a session's last bar is good for the next session.
Commission ``ibkr_fixed`` follows IBKR's fixed US-stock rate: a per-share fee
with a per-order minimum and a cap of a fraction of the trade value.

Rejected at placement, as a broker would: a non-positive quantity, a symbol with
no market data, a buy the cash cannot pay for, and a sale that would go short
unless ``allow_short`` is on.

**Questions.** With ``questions`` set, an order that passes the first two checks
meets IBKR's order questions (reference §6.4) before the money checks, one at a
time, and :class:`~tradepipe.brokers.ibkr.orders.ReplyPolicy` confirms or
declines each as it does for the Client Portal adapter: a declined question
raises :class:`BrokerRejectedError` in the adapter's words. :meth:`PaperBroker.preview`
tells what an order would cost and whether it would be refused, changing nothing.

**State file.** With ``state_file`` set, the account lives in a JSON file (format
:data:`FORMAT`, version :data:`VERSION`; decimals as strings): loaded on
:meth:`PaperBroker.connect` and rewritten atomically (temporary file, fsync,
``os.replace``) after every place, cancel, modify, fill, expiry or trigger, and on
:meth:`PaperBroker.disconnect`. A bar that changes no order costs no I/O; its
price is saved with the next change. The connected process holds an advisory
lock (``<file>.lock``); another process that connects meanwhile gets a read-only
view, so two writers never overwrite each other's changes. The file keeps the
latest :data:`KEPT` finished orders and fills (as IBKR forgets old executions);
pending cancel confirmations and all but the last bar of each symbol are not kept.
Like a real broker's, a durable account wants each intent in the ledger before it
is sent (``requires_durable_intents``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
from collections import defaultdict, deque
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator
from tradepipe import (
    Bar,
    Broker,
    BrokerStatus,
    ComponentSettings,
    Fill,
    OrderIntent,
    OrderReport,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    hookimpl,
)
from tradepipe.adapter import BrokerEvent
from tradepipe.brokers.ibkr.orders import ReplyPolicy
from tradepipe.clock import Clock, SystemClock
from tradepipe.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerRejectedError,
    BrokerUnavailableError,
    ConfigError,
)
from tradepipe.money import ZERO, cents, fmt, to_decimal
from tradepipe.portfolio import AccountSummary, Book

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per file is up to the user.
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_PRICE_STEP = Decimal("0.0001")
_BPS = Decimal(10_000)
_HISTORY = 2_000
_NEAR = Decimal("0.03")
_KEY = "brokers.paper.state_file"

#: What the state file says it is, and the one version of it this code reads.
FORMAT = "tradepipe-paper-account"
VERSION = 1
#: Finished orders and fills a state file keeps (the newest).
KEPT = 200

#: The IBKR questions the simulator can ask, in the order it asks them (the
#: text is the simulator's own wording; ``{order}`` is the order, e.g. "BUY 10 AAPL LMT 101").
QUESTIONS = {
    "o354": "You are submitting an order without market data for {symbol}. We strongly "
    "recommend against this as it may result in erroneous and unexpected trades. "
    "Are you sure you want to submit this order?",
    "o163": "The following order {order} price exceeds the Percentage constraint of 3%. "
    "Are you sure you want to submit this order?",
    "o403": "This order {order} will most likely trigger and fill immediately. "
    "Are you sure you want to submit this order?",
    "o10151": "You are submitting a market order {order}: it fills at whatever price the "
    "market offers, which may differ from the last price. "
    "Are you sure you want to submit this order?",
    "o10331": "You are submitting a stop order {order}: once triggered it becomes a market "
    "order and may fill far from the stop price. Are you sure you want to submit this order?",
    "o10152": "Once active, the stop order {order} can be triggered by a brief price move and "
    "fill at a price far from the stop. Are you sure you want to submit this order?",
}
_TICKET_TYPES = {"market": "MKT", "limit": "LMT", "stop": "STP", "stop_limit": "STP LMT"}


class _SimOrder:
    __slots__ = (
        "broker_id",
        "intent",
        "limit",
        "placed",
        "session",
        "status",
        "stop",
        "triggered",
    )

    def __init__(self, intent: OrderIntent, broker_id: str, placed: dt.datetime) -> None:
        self.intent = intent
        self.broker_id = broker_id
        self.placed = placed
        self.status = OrderStatus.ACCEPTED
        self.session: dt.date | None = None
        self.triggered = False
        self.limit = float(intent.limit_price) if intent.limit_price is not None else None
        self.stop = float(intent.stop_price) if intent.stop_price is not None else None


class PaperBroker(Broker):
    """Simulated broker account (see the module docstring for fill rules)."""

    name = "paper"
    description = "in-process simulator filling orders against bars"
    requires_durable_intents = False
    needs_polling = False

    class Settings(ComponentSettings):
        account_id: str = "PAPER"
        initial_cash: Decimal = Field(default=Decimal(100_000), gt=0)
        currency: str = "USD"
        commission: Literal["ibkr_fixed", "none"] = "ibkr_fixed"
        commission_per_share: Decimal = Field(default=Decimal("0.005"), ge=0)
        commission_minimum: Decimal = Field(default=Decimal("1.00"), ge=0)
        commission_max_fraction: Decimal = Field(default=Decimal("0.01"), gt=0, le=1)
        slippage_bps: Decimal = Field(default=ZERO, ge=0, le=1000)
        allow_short: bool = False
        #: Symbols that may be traded before the feed has shown a bar for them.
        symbols: list[str] = Field(default_factory=list)
        #: The exchange's timezone: DAY orders end with its trading date.
        timezone: str = "America/New_York"
        #: Keep the account in this JSON file (relative to the working directory)
        #: so separate commands and restarted runs share it; empty: in memory only.
        #: ``initial_cash`` only seeds a new file. Saved on every change: for long
        #: replays leave it empty.
        state_file: str = ""
        #: IBKR order questions the simulator asks when they apply: o163 (limit
        #: more than 3% from the last price), o354 (no market data yet), o403
        #: (would trigger and fill at once), o10151 (market order), o10331 and
        #: o10152 (stop or stop-limit order).
        questions: list[str] = Field(default_factory=list)
        #: Question ids confirmed automatically, as ``[brokers.client_portal] confirm``.
        confirm: list[str] = Field(default_factory=list)
        #: Confirm every question, as ``[brokers.client_portal] confirm_all_on_paper``.
        confirm_all: bool = False

        @field_validator("questions")
        @classmethod
        def _askable(cls, value: list[str]) -> list[str]:
            unknown = [v for v in value if v not in QUESTIONS]
            if unknown:
                raise ValueError(f"the simulator can ask {', '.join(QUESTIONS)}; not {unknown}")
            return value

        @field_validator("confirm")
        @classmethod
        def _ids(cls, value: list[str]) -> list[str]:
            bad = [v for v in value if not v or not v[0].isalpha() or not v[1:].isdigit()]
            if bad:
                raise ValueError(f"IBKR message ids look like 'o163' or 'p12', not {bad}")
            return value

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        try:
            self._tz = ZoneInfo(s.timezone)
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"[brokers.paper] timezone = {s.timezone!r}: expected an IANA timezone name",
                key="brokers.paper.timezone",
            ) from exc
        self.clock: Clock = SystemClock()
        self._connected = False
        self._queue: list[BrokerEvent] = []
        self._known = {sym.upper() for sym in s.symbols}
        self._slip = s.slippage_bps / _BPS
        self._session_cache: tuple[dt.datetime, dt.date] | None = None
        asked = set(s.questions)
        self._questions = tuple(q for q in QUESTIONS if q in asked)
        self._policy = ReplyPolicy(frozenset(s.confirm), confirm_all=s.confirm_all)
        self._store: Path | None = None
        if s.state_file:
            self._store = Path(os.path.abspath(Path(s.state_file).expanduser()))
            # A durable account is like a real broker's: the ledger must know an
            # order before the account does, or a crash in between orphans it.
            self.requires_durable_intents = True
        self._lock: int | None = None
        self._readonly = False
        self._broken = ""
        self._reset()

    def _reset(self) -> None:
        """A fresh account from the settings."""
        s = self.settings
        self.book = Book(s.initial_cash, s.currency)
        self._working: dict[str, list[_SimOrder]] = {}
        self._orders: dict[str, _SimOrder] = {}
        self._last: dict[str, Bar] = {}
        self._history: defaultdict[str, deque[Bar]] = defaultdict(lambda: deque(maxlen=_HISTORY))
        self._fills: list[Fill] = []
        self._next_id = 1
        self._dirty = False
        self._saved_last: dict[str, Bar] = {}
        # Only with a state file: finished orders in the order they finished, and
        # the JSON of records that can no longer change, so a save encodes only news.
        self._finished: deque[str] = deque()
        self._order_json: dict[str, str] = {}
        self._fill_json: list[str] = []

    def attach(self, runtime: Any) -> None:
        self.clock = runtime.clock

    # -- session ---------------------------------------------------------------

    def connect(self) -> BrokerStatus:
        if not self._connected and self._store is not None:
            self._open(self._store)
        self._connected = True
        return self.status()

    def disconnect(self) -> None:
        if not self._connected:
            return
        self._connected = False
        try:
            # Bars change no order but move prices: they are saved now, unless
            # nothing at all happened (a command that only read).
            moved = self._dirty or self._last != self._saved_last
            if self._store is not None and moved and not self._readonly and not self._broken:
                self._save()
        finally:
            self._unlock()

    def status(self) -> BrokerStatus:
        message = "not connected"
        if self._connected:
            message = "paper simulator"
            if self._store is not None:
                message += f", account file {self._store}"
                if self._readonly:
                    message += " (read-only: another process has it open)"
        return BrokerStatus.trusted(
            broker=self.name,
            connected=self._connected,
            authenticated=self._connected,
            account_id=self.settings.account_id,
            is_paper=True,
            message=message,
        )

    # -- reads -----------------------------------------------------------------

    def _marks(self) -> dict[str, float]:
        return {sym: bar.close for sym, bar in self._last.items()}

    def account(self) -> AccountSummary:
        available = self.book.cash - self._reserved()
        return self.book.summary(
            self.settings.account_id, self.clock.now(), available, self._marks()
        )

    def positions(self) -> list[Position]:
        return self.book.positions(self._marks())

    def open_orders(self) -> list[OrderReport]:
        return [self._report(o) for orders in self._working.values() for o in orders]

    def order(self, client_order_id: str) -> OrderReport | None:
        sim = self._orders.get(client_order_id)
        return None if sim is None else self._report(sim)

    def fills(self, since: dt.datetime | None = None) -> list[Fill]:
        if since is None:
            return list(self._fills)
        return [f for f in self._fills if f.ts >= since]

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        out = []
        for symbol in symbols:
            bar = self._last.get(symbol.upper())
            if bar is not None:
                out.append(
                    Quote(
                        symbol=bar.symbol,
                        ts=bar.ts,
                        last=to_decimal(bar.close),
                        volume=to_decimal(bar.volume),
                    )
                )
        return out

    def history(self, symbol: str, *, bars: int = 100, bar_size: str = "1d") -> list[Bar]:
        seen = self._history.get(symbol.upper(), ())
        return list(seen)[-bars:] if bars > 0 else []

    # -- orders ----------------------------------------------------------------

    def place(self, intent: OrderIntent) -> OrderUpdate:
        self._require_connection()
        now = self.clock.now()
        cid = intent.client_order_id
        existing = self._orders.get(cid)
        if existing is not None:
            # Like IBKR's duplicate-cOID answer: the order is already placed.
            return self._update(existing, existing.status, now, "already placed")
        self._require_writable("not placed", cid)
        problem = self._invalid(intent)
        if not problem and self._questions:
            self._ask(intent)
        problem = problem or self._unaffordable(intent)
        if problem:
            return OrderUpdate.trusted(
                client_order_id=cid, status=OrderStatus.REJECTED, ts=now, reason=problem
            )
        sim = _SimOrder(intent, f"P{self._next_id}", now)
        self._next_id += 1
        self._orders[cid] = sim
        self._working.setdefault(intent.symbol, []).append(sim)
        if self._store is not None:
            try:
                self._save()
            except BrokerError as exc:
                self._next_id -= 1
                del self._orders[cid]
                self._unwork(sim)
                raise BrokerRejectedError(
                    f"not placed: {exc}", broker=self.name, client_order_id=cid
                ) from exc
        return self._update(sim, OrderStatus.ACCEPTED, now)

    def _require_connection(self) -> None:
        if not self._connected:
            raise BrokerAuthError("the paper broker is not connected", broker=self.name)

    def _require_writable(self, action: str, cid: str) -> None:
        if self._readonly:
            raise BrokerRejectedError(
                f"{action}: {self._in_use()}", broker=self.name, client_order_id=cid
            )

    def _in_use(self) -> str:
        return (
            f"the paper account {self._store} is in use by another process (a running "
            "pipeline?); it can be read but not traded from here until that process disconnects"
        )

    def cancel(self, client_order_id: str) -> OrderUpdate:
        self._require_connection()
        sim = self._orders.get(client_order_id)
        if sim is None:
            raise BrokerRejectedError(
                f"no order {client_order_id} at the paper broker", client_order_id=client_order_id
            )
        if sim.status.is_terminal:
            raise BrokerRejectedError(
                f"order {client_order_id} is already {sim.status}", client_order_id=client_order_id
            )
        self._require_writable("not canceled", client_order_id)
        self._unwork(sim)
        sim.status = OrderStatus.CANCELED
        if self._store is not None:
            try:
                self._save()
            except BrokerError:
                sim.status = OrderStatus.ACCEPTED
                self._rework(sim)
                raise
            self._finished.append(client_order_id)
        now = self.clock.now()
        # The cancellation is confirmed by the next poll, as a real broker would.
        self._queue.append(self._update(sim, OrderStatus.CANCELED, now, "canceled on request"))
        return self._update(sim, OrderStatus.PENDING_CANCEL, now)

    def modify(
        self,
        client_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate:
        self._require_connection()
        sim = self._orders.get(client_order_id)
        if sim is None or sim.status.is_terminal:
            raise BrokerRejectedError(
                f"order {client_order_id} is not working", client_order_id=client_order_id
            )
        self._require_writable("not modified", client_order_id)
        changes: dict[str, Any] = {}
        if quantity is not None:
            changes["quantity"] = quantity
        if limit_price is not None:
            changes["limit_price"] = limit_price
        if stop_price is not None:
            changes["stop_price"] = stop_price
        candidate = sim.intent.model_copy(update=changes)
        problem = self._invalid(candidate)
        if not problem and self._questions:
            self._ask(candidate)
        problem = problem or self._unaffordable(candidate, replacing=sim)
        if problem:
            raise BrokerRejectedError(problem, client_order_id=client_order_id)
        before = (sim.intent, sim.limit, sim.stop)
        sim.intent = candidate
        if limit_price is not None:
            sim.limit = float(limit_price)
        if stop_price is not None:
            sim.stop = float(stop_price)
        if self._store is not None:
            try:
                self._save()
            except BrokerError as exc:
                sim.intent, sim.limit, sim.stop = before
                raise BrokerRejectedError(
                    f"not modified: {exc}", broker=self.name, client_order_id=client_order_id
                ) from exc
        return self._update(sim, sim.status, self.clock.now(), "modified")

    def poll(self) -> Sequence[BrokerEvent]:
        if not self._queue:
            return ()
        queued, self._queue = self._queue, []
        return queued

    def preview(self, intent: OrderIntent) -> dict[str, Any]:
        """What placing ``intent`` would do, changing nothing (IBKR's what-if).

        Money as exact decimal strings: ``price`` (the limit, else the stop,
        else the last close, worsened by slippage for market and stop orders),
        ``notional``, ``commission`` (the fill's model), ``cash`` and
        ``position`` before and after a complete fill, the ``questions`` that
        would be asked, and ``error``: why the order would be refused, or None.
        """
        self._require_connection()
        symbol = intent.symbol
        buy = intent.side == "buy"
        last = self._last.get(symbol)
        price = intent.limit_price or intent.stop_price
        if price is None and last is not None:
            price = to_decimal(last.close)
        if price is not None and self._slip and intent.order_type in ("market", "stop"):
            price = self._slipped(price, buy)
        notional = commission = cash_after = None
        if price is not None:
            notional = intent.quantity * price
            commission = self._commission(intent.quantity, price)
            cash_after = self.book.cash - (notional if buy else -notional) - commission
        held = self.book.quantity(symbol)
        error = self._invalid(intent)
        if intent.client_order_id in self._orders:
            error = f"order {intent.client_order_id} is already placed"
        asked = self._asked(intent) if self._questions and not error else []
        declined = next((q for q in asked if not self._policy.allows([q])), None)
        if declined is not None:
            error = self._declined(intent, declined).message
        error = error or self._unaffordable(intent)
        if self._readonly:
            error = self._in_use()
        return {
            "symbol": symbol,
            "side": intent.side.value,
            "quantity": fmt(intent.quantity),
            "order_type": intent.order_type.value,
            "price": fmt(price),
            "notional": fmt(notional),
            "commission": fmt(commission),
            "cash": {"before": fmt(self.book.cash), "after": fmt(cash_after)},
            "position": {
                "before": fmt(held),
                "after": fmt(held + intent.quantity if buy else held - intent.quantity),
            },
            "questions": asked,
            "error": error or None,
        }

    # -- questions -----------------------------------------------------------------

    def _asked(self, intent: OrderIntent) -> list[str]:
        """The configured questions that apply to ``intent``, in the order asked."""
        last = self._last.get(intent.symbol)
        price = None if last is None else to_decimal(last.close)
        kind = intent.order_type
        buy = intent.side == "buy"
        limit, stop = intent.limit_price, intent.stop_price
        applies = {
            "o354": price is None,
            "o163": price is not None and limit is not None and abs(limit - price) > _NEAR * price,
            "o403": price is not None and kind != "market" and _immediate(buy, price, limit, stop),
            "o10151": kind == "market",
            "o10331": kind in ("stop", "stop_limit"),
            "o10152": kind in ("stop", "stop_limit"),
        }
        return [q for q in self._questions if applies[q]]

    def _ask(self, intent: OrderIntent) -> None:
        """Ask the questions that apply, one at a time; raise on the first declined."""
        for question in self._asked(intent):
            if not self._policy.allows([question]):
                raise self._declined(intent, question)
            log.info(
                "order %s: the paper broker asked %s, confirmed by the reply policy",
                intent.client_order_id,
                question,
            )

    def _declined(self, intent: OrderIntent, question: str) -> BrokerRejectedError:
        # The Client Portal adapter's words (tradepipe.brokers.ibkr.orders._declined).
        prices = (intent.limit_price, intent.stop_price)
        ticket = " ".join(
            [
                intent.side.value.upper(),
                format(intent.quantity, "f"),
                intent.symbol,
                _TICKET_TYPES[intent.order_type.value],
                *(format(p, "f") for p in prices if p is not None),
            ]
        )
        text = QUESTIONS[question].format(order=f'"{ticket}"', symbol=intent.symbol)
        return BrokerRejectedError(
            f'{self.name}: order not sent: IBKR asked "{text}" ({question}), which the reply '
            f"policy does not confirm; add the id to [brokers.{self.name}] confirm to accept "
            "such questions",
            broker=self.name,
            client_order_id=intent.client_order_id,
            question=text,
            message_ids=[question],
        )

    # -- matching ----------------------------------------------------------------

    def on_bar(self, bar: Bar) -> Sequence[BrokerEvent]:
        symbol = bar.symbol
        self._last[symbol] = bar
        self._history[symbol].append(bar)
        orders = self._working.get(symbol)
        if not orders and not self._queue:
            return ()
        # Confirmations queued since the last bar (cancels) come first.
        events: list[BrokerEvent] = list(self.poll())
        if not orders or self._readonly:
            # A read-only view never trades: the process that writes the file does.
            return events
        for sim in list(orders):
            if bar.ts <= sim.placed:
                # The bar opened before the order existed (another symbol's bar
                # at the same time led to it): its prices are not available.
                continue
            if sim.intent.tif == "day":
                session = self._session(bar.ts)
                if sim.session is None:
                    sim.session = session
                    self._dirty = True
                elif session != sim.session:
                    self._close(sim, OrderStatus.EXPIRED)
                    events.append(
                        self._update(sim, OrderStatus.EXPIRED, bar.ts, "day order expired")
                    )
                    continue
            price = self._match(sim, bar)
            if price is not None:
                events.append(self._fill(sim, price, bar.ts))
        if self._dirty and self._store is not None:
            self._save_or_stop()
        return events

    def _match(self, sim: _SimOrder, bar: Bar) -> float | None:
        kind = sim.intent.order_type
        buy = sim.intent.side == "buy"
        o = bar.open
        if kind == "market":
            return o
        if kind == "limit":
            return _limit_price(buy, sim.limit, bar)  # type: ignore[arg-type]
        stop = sim.stop
        assert stop is not None
        gapped = o >= stop if buy else o <= stop
        touched = gapped or (bar.high >= stop if buy else bar.low <= stop)
        if kind == "stop":
            if not touched:
                return None
            return o if gapped else stop
        # stop-limit
        if sim.triggered:
            return _limit_price(buy, sim.limit, bar)  # type: ignore[arg-type]
        if not touched:
            return None
        sim.triggered = True
        self._dirty = True
        limit = sim.limit
        assert limit is not None
        if gapped:
            return _limit_price(buy, limit, bar)
        ok = stop <= limit if buy else stop >= limit
        return stop if ok else None

    def _fill(self, sim: _SimOrder, raw_price: float, ts: dt.datetime) -> Fill:
        intent = sim.intent
        price = to_decimal(raw_price)
        if self._slip and intent.order_type in ("market", "stop"):
            price = self._slipped(price, intent.side == "buy")
        quantity = intent.quantity
        fill = Fill.trusted(
            execution_id=f"{sim.broker_id}.1",
            client_order_id=intent.client_order_id,
            decision_id=intent.decision_id,
            broker_order_id=sim.broker_id,
            symbol=intent.symbol,
            side=intent.side,
            quantity=quantity,
            price=price,
            commission=self._commission(quantity, price),
            ts=ts,
        )
        self.book.apply(fill)
        self._fills.append(fill)
        self._close(sim, OrderStatus.FILLED)
        return fill

    def _slipped(self, price: Decimal, buy: bool) -> Decimal:
        factor = 1 + self._slip if buy else 1 - self._slip
        return (price * factor).quantize(_PRICE_STEP, rounding=ROUND_HALF_EVEN)

    def _commission(self, quantity: Decimal, price: Decimal) -> Decimal:
        s = self.settings
        if s.commission == "none":
            return ZERO
        fee = max(quantity * s.commission_per_share, s.commission_minimum)
        return cents(min(fee, quantity * price * s.commission_max_fraction))

    # -- helpers -------------------------------------------------------------------

    def _invalid(self, intent: OrderIntent) -> str:
        """Why no broker would take ``intent`` at all, or ``""``."""
        if intent.quantity <= 0:
            return f"quantity must be positive, got {intent.quantity}"
        symbol = intent.symbol
        if symbol not in self._last and symbol not in self._known:
            return f"unknown symbol {symbol}: no market data for it"
        return ""

    def _unaffordable(self, intent: OrderIntent, replacing: _SimOrder | None = None) -> str:
        """Why the account cannot take ``intent`` (cash, shorting), or ``""``."""
        s = self.settings
        symbol = intent.symbol
        last = self._last.get(symbol)
        price = (
            intent.limit_price
            or intent.stop_price
            or (to_decimal(last.close) if last is not None else None)
        )
        if intent.side == "buy":
            if price is None:
                return f"no price for {symbol} to check buying power against"
            cost = intent.quantity * price + self._commission(intent.quantity, price)
            available = self.book.cash - self._reserved(exclude=replacing)
            if cost > available:
                return (
                    f"insufficient buying power: {cents(cost)} {s.currency} needed, "
                    f"{cents(available)} available"
                )
        elif not s.allow_short:
            held = self.book.quantity(symbol) - self._pending_sells(symbol, exclude=replacing)
            if intent.quantity > held:
                return (
                    f"short sale refused: selling {intent.quantity} {symbol} with "
                    f"{max(held, ZERO)} available (set allow_short to permit shorts)"
                )
        return ""

    def _reserved(self, exclude: _SimOrder | None = None) -> Decimal:
        total = ZERO
        for orders in self._working.values():
            for sim in orders:
                if sim is exclude or sim.intent.side != "buy":
                    continue
                intent = sim.intent
                price = intent.limit_price or intent.stop_price
                if price is None:
                    last = self._last.get(intent.symbol)
                    price = to_decimal(last.close) if last is not None else ZERO
                total += intent.quantity * price
        return total

    def _pending_sells(self, symbol: str, exclude: _SimOrder | None = None) -> Decimal:
        return sum(
            (
                sim.intent.quantity
                for sim in self._working.get(symbol, ())
                if sim is not exclude and sim.intent.side == "sell"
            ),
            ZERO,
        )

    def _session(self, ts: dt.datetime) -> dt.date:
        cached = self._session_cache
        if cached is not None and cached[0] == ts:
            return cached[1]
        day = ts.astimezone(self._tz).date()
        self._session_cache = (ts, day)
        return day

    def _close(self, sim: _SimOrder, status: OrderStatus) -> None:
        """``sim`` stops working with ``status`` (filled, expired)."""
        self._unwork(sim)
        sim.status = status
        self._dirty = True
        if self._store is not None:
            self._finished.append(sim.intent.client_order_id)

    def _unwork(self, sim: _SimOrder) -> None:
        orders = self._working.get(sim.intent.symbol)
        if orders and sim in orders:
            orders.remove(sim)

    def _rework(self, sim: _SimOrder) -> None:
        """Put ``sim`` back among the working orders, in placement order."""
        orders = self._working.setdefault(sim.intent.symbol, [])
        orders.append(sim)
        rank = {id(o): n for n, o in enumerate(self._orders.values())}
        orders.sort(key=lambda o: rank[id(o)])

    def _update(
        self, sim: _SimOrder, status: OrderStatus, ts: dt.datetime, reason: str = ""
    ) -> OrderUpdate:
        return OrderUpdate.trusted(
            client_order_id=sim.intent.client_order_id,
            status=status,
            ts=ts,
            broker_order_id=sim.broker_id,
            reason=reason,
        )

    def _report(self, sim: _SimOrder) -> OrderReport:
        intent = sim.intent
        return OrderReport.trusted(
            client_order_id=intent.client_order_id,
            broker_order_id=sim.broker_id,
            symbol=intent.symbol,
            side=intent.side.value,
            quantity=intent.quantity,
            filled_quantity=intent.quantity if sim.status is OrderStatus.FILLED else ZERO,
            status=sim.status,
            order_type=intent.order_type.value,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
        )

    # -- the state file ------------------------------------------------------------

    def _open(self, path: Path) -> None:
        """Lock ``path`` (or fall back to reading it) and load the account from it."""
        self._lock, self._readonly = _lock(path)
        try:
            self._reset()
            self._broken = ""
            data = _read(path)
            if data is not None:
                self._restore(data, path)
            elif not self._readonly:
                self._save()  # a new account: its file exists from now on
        except BaseException:
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    def _save_or_stop(self) -> None:
        try:
            self._save()
        except BrokerError as exc:
            # The fills and expiries of this bar are nobody's but this process's
            # now; the file keeps the account as last acknowledged, and nothing
            # more is written until the next connect reloads it.
            self._broken = f"the paper account stopped after a failed save: {exc}"
            raise

    def _save(self) -> None:
        path = self._store
        assert path is not None
        if self._readonly:
            return
        if self._broken:
            raise BrokerUnavailableError(self._broken, broker=self.name, path=str(path))
        self._trim()
        try:
            _write(path, self._snapshot())
        except OSError as exc:
            raise BrokerUnavailableError(
                f"could not save the paper account to {path}: {exc.strerror or exc}",
                broker=self.name,
                path=str(path),
            ) from exc
        self._dirty = False
        self._saved_last = dict(self._last)

    def _trim(self) -> None:
        finished, orders, encoded = self._finished, self._orders, self._order_json
        while len(finished) > KEPT:
            cid = finished.popleft()
            orders.pop(cid, None)
            encoded.pop(cid, None)
        excess = len(self._fills) - KEPT
        if excess > 0:
            del self._fills[:excess]
            del self._fill_json[: max(0, min(excess, len(self._fill_json)))]

    def _snapshot(self) -> str:
        book = self.book
        holdings = book.positions(include_flat=True)
        head = {
            "format": FORMAT,
            "version": VERSION,
            "account_id": self.settings.account_id,
            "currency": book.currency,
            "saved_at": self.clock.now().isoformat(),
            "next_id": self._next_id,
            "cash": fmt(book.cash),
            "realized_pnl": fmt(book.realized_pnl),
            "commissions": fmt(book.commissions),
            "positions": [
                {
                    "symbol": p.symbol,
                    "quantity": fmt(p.quantity),
                    "avg_cost": fmt(p.avg_cost),
                    "multiplier": fmt(p.multiplier),
                    "realized_pnl": fmt(p.realized_pnl),
                }
                for p in holdings
            ],
            "last": [
                [b.symbol, b.ts.isoformat(), b.open, b.high, b.low, b.close, b.volume]
                for b in self._last.values()
            ],
        }
        encoded = self._order_json
        orders = []
        for cid, sim in self._orders.items():
            text = encoded.get(cid)
            if text is None:
                text = json.dumps(_order_state(sim))
                if sim.status.is_terminal:
                    encoded[cid] = text
            orders.append(text)
        fill_json = self._fill_json
        fill_json.extend(f.model_dump_json() for f in self._fills[len(fill_json) :])
        # Orders and fills that can no longer change are encoded once and
        # reused, so a save costs what changed, not the size of the history.
        return "".join(
            (
                json.dumps(head)[:-1],
                ',\n"orders": [\n',
                ",\n".join(orders),
                '\n],\n"fills": [\n',
                ",\n".join(fill_json),
                "\n]}\n",
            )
        )

    def _restore(self, data: dict[str, Any], path: Path) -> None:
        s = self.settings
        for key, mine in (("account_id", s.account_id), ("currency", s.currency)):
            if data.get(key) != mine:
                raise ConfigError(
                    f"[brokers.paper] state_file: {path} holds {key} {data.get(key)!r}, the "
                    f"settings say {mine!r}; set {key} to match or use another state_file",
                    key=_KEY,
                    path=str(path),
                )
        try:
            book = self.book = Book(_decimal(data["cash"]), s.currency)
            book.realized_pnl = _decimal(data["realized_pnl"])
            book.commissions = _decimal(data["commissions"])
            for p in data["positions"]:
                position = Position(
                    symbol=p["symbol"],
                    quantity=_decimal(p["quantity"]),
                    avg_cost=_decimal(p["avg_cost"]),
                    multiplier=_decimal(p["multiplier"]),
                )
                book.seed(position)
                # Book has no public way to restore a holding's realized P&L.
                book._holdings[position.symbol].realized = _decimal(p["realized_pnl"])
            for symbol, ts, o, h, lo, c, v in data["last"]:
                bar = Bar(str(symbol), _time(ts), float(o), float(h), float(lo), float(c), float(v))
                self._last[bar.symbol] = bar
                self._history[bar.symbol].append(bar)
            for item in data["orders"]:
                sim = _SimOrder(
                    OrderIntent.model_validate(item["intent"]),
                    str(item["broker_id"]),
                    _time(item["placed"]),
                )
                sim.status = OrderStatus(item["status"])
                sim.session = (
                    None if item["session"] is None else dt.date.fromisoformat(item["session"])
                )
                sim.triggered = bool(item["triggered"])
                cid = sim.intent.client_order_id
                self._orders[cid] = sim
                if sim.status.is_terminal:
                    self._finished.append(cid)
                else:
                    self._working.setdefault(sim.intent.symbol, []).append(sim)
            self._fills = [Fill.model_validate(f) for f in data["fills"]]
            self._next_id = int(data["next_id"])
            self._saved_last = dict(self._last)
        except (KeyError, TypeError, ValueError, InvalidOperation, ValidationError) as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors(include_url=False)[0]
                detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            else:
                detail = str(exc) or type(exc).__name__
            raise ConfigError(
                f"[brokers.paper] state_file: {path} is damaged ({detail}); restore it from "
                "a backup or move it away to start a new account",
                key=_KEY,
                path=str(path),
            ) from exc


def _order_state(sim: _SimOrder) -> dict[str, Any]:
    return {
        "intent": sim.intent.model_dump(mode="json"),
        "broker_id": sim.broker_id,
        "placed": sim.placed.isoformat(),
        "status": sim.status.value,
        "session": None if sim.session is None else sim.session.isoformat(),
        "triggered": sim.triggered,
    }


def _decimal(value: Any) -> Decimal:
    number = Decimal(value) if isinstance(value, str) else None
    if number is None or not number.is_finite():
        raise ValueError(f"expected a decimal number as a string, got {value!r}")
    return number


def _time(value: Any) -> dt.datetime:
    ts = dt.datetime.fromisoformat(value)
    if ts.tzinfo is None:
        raise ValueError(f"time without a timezone: {value!r}")
    return ts


def _lock(path: Path) -> tuple[int | None, bool]:
    """Take the account's lock: (descriptor, read-only because another process has it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"[brokers.paper] state_file: cannot use {path}: {exc.strerror or exc}",
            key=_KEY,
            path=str(path),
        ) from exc
    if fcntl is None:
        return fd, False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None, True
    return fd, False


def _read(path: Path) -> dict[str, Any] | None:
    """The state file's JSON, ``None`` when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(
            f"[brokers.paper] state_file: cannot read {path}: {why}",
            key=_KEY,
            path=str(path),
        ) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"[brokers.paper] state_file: {path} is not valid JSON ({exc}); restore it from a "
            "backup or move it away to start a new account",
            key=_KEY,
            path=str(path),
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(
            f"[brokers.paper] state_file: {path} is not a paper account file "
            f'(no "format": "{FORMAT}"); point state_file at another path',
            key=_KEY,
            path=str(path),
        )
    if data.get("version") != VERSION:
        raise ConfigError(
            f"[brokers.paper] state_file: {path} has format version {data.get('version')!r}; "
            f"this tradepipe reads version {VERSION} only (was it written by another release?)",
            key=_KEY,
            path=str(path),
        )
    return data


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: a reader sees the old file or the new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp: mode 0600
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _immediate(buy: bool, last: Decimal, limit: Decimal | None, stop: Decimal | None) -> bool:
    """Would an order with these prices trigger and fill at ``last`` right away?"""
    if stop is not None and (stop > last if buy else stop < last):
        return False
    return limit is None or (limit >= last if buy else limit <= last)


def _limit_price(buy: bool, limit: float, bar: Bar) -> float | None:
    o = bar.open
    if buy:
        if o <= limit:
            return o
        return limit if bar.low <= limit else None
    if o >= limit:
        return o
    return limit if bar.high >= limit else None


@hookimpl
def tradepipe_register_brokers(register: Any) -> None:
    register(PaperBroker)
