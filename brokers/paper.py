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
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field
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
from tradepipe.clock import Clock, SystemClock
from tradepipe.errors import BrokerAuthError, BrokerRejectedError, ConfigError
from tradepipe.money import ZERO, cents, to_decimal
from tradepipe.portfolio import AccountSummary, Book

_PRICE_STEP = Decimal("0.0001")
_BPS = Decimal(10_000)
_HISTORY = 2_000


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
        self.book = Book(s.initial_cash, s.currency)
        self._connected = False
        self._working: dict[str, list[_SimOrder]] = {}
        self._orders: dict[str, _SimOrder] = {}
        self._last: dict[str, Bar] = {}
        self._history: defaultdict[str, deque[Bar]] = defaultdict(lambda: deque(maxlen=_HISTORY))
        self._fills: list[Fill] = []
        self._queue: list[BrokerEvent] = []
        self._known = {sym.upper() for sym in s.symbols}
        self._next_id = 1
        self._slip = s.slippage_bps / _BPS
        self._session_cache: tuple[dt.datetime, dt.date] | None = None

    def attach(self, runtime: Any) -> None:
        self.clock = runtime.clock

    # -- session ---------------------------------------------------------------

    def connect(self) -> BrokerStatus:
        self._connected = True
        return self.status()

    def disconnect(self) -> None:
        self._connected = False

    def status(self) -> BrokerStatus:
        return BrokerStatus.trusted(
            broker=self.name,
            connected=self._connected,
            authenticated=self._connected,
            account_id=self.settings.account_id,
            is_paper=True,
            message="paper simulator" if self._connected else "not connected",
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
        existing = self._orders.get(intent.client_order_id)
        if existing is not None:
            # Like IBKR's duplicate-cOID answer: the order is already placed.
            return self._update(existing, existing.status, now, "already placed")
        problem = self._refusal(intent)
        if problem:
            return OrderUpdate.trusted(
                client_order_id=intent.client_order_id,
                status=OrderStatus.REJECTED,
                ts=now,
                reason=problem,
            )
        sim = _SimOrder(intent, f"P{self._next_id}", now)
        self._next_id += 1
        self._orders[intent.client_order_id] = sim
        self._working.setdefault(intent.symbol, []).append(sim)
        return self._update(sim, OrderStatus.ACCEPTED, now)

    def _require_connection(self) -> None:
        if not self._connected:
            raise BrokerAuthError("the paper broker is not connected", broker=self.name)

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
        self._unwork(sim)
        sim.status = OrderStatus.CANCELED
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
        changes: dict[str, Any] = {}
        if quantity is not None:
            changes["quantity"] = quantity
        if limit_price is not None:
            changes["limit_price"] = limit_price
        if stop_price is not None:
            changes["stop_price"] = stop_price
        candidate = sim.intent.model_copy(update=changes)
        problem = self._refusal(candidate, replacing=sim)
        if problem:
            raise BrokerRejectedError(problem, client_order_id=client_order_id)
        sim.intent = candidate
        if limit_price is not None:
            sim.limit = float(limit_price)
        if stop_price is not None:
            sim.stop = float(stop_price)
        return self._update(sim, sim.status, self.clock.now(), "modified")

    def poll(self) -> Sequence[BrokerEvent]:
        if not self._queue:
            return ()
        queued, self._queue = self._queue, []
        return queued

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
        if not orders:
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
                elif session != sim.session:
                    self._unwork(sim)
                    sim.status = OrderStatus.EXPIRED
                    events.append(
                        self._update(sim, OrderStatus.EXPIRED, bar.ts, "day order expired")
                    )
                    continue
            price = self._match(sim, bar)
            if price is not None:
                events.append(self._fill(sim, price, bar.ts))
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
            factor = 1 + self._slip if intent.side == "buy" else 1 - self._slip
            price = (price * factor).quantize(_PRICE_STEP, rounding=ROUND_HALF_EVEN)
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
        self._unwork(sim)
        sim.status = OrderStatus.FILLED
        return fill

    def _commission(self, quantity: Decimal, price: Decimal) -> Decimal:
        s = self.settings
        if s.commission == "none":
            return ZERO
        fee = max(quantity * s.commission_per_share, s.commission_minimum)
        return cents(min(fee, quantity * price * s.commission_max_fraction))

    # -- helpers -------------------------------------------------------------------

    def _refusal(self, intent: OrderIntent, replacing: _SimOrder | None = None) -> str:
        s = self.settings
        symbol = intent.symbol
        if intent.quantity <= 0:
            return f"quantity must be positive, got {intent.quantity}"
        if symbol not in self._last and symbol not in self._known:
            return f"unknown symbol {symbol}: no market data for it"
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

    def _unwork(self, sim: _SimOrder) -> None:
        orders = self._working.get(sim.intent.symbol)
        if orders and sim in orders:
            orders.remove(sim)

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
