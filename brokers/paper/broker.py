"""The paper simulator: a broker that fills orders against bars, in process.

:class:`PaperBroker` takes, cancels and modifies orders and fills them as bars
arrive; its rules live beside it:

* :mod:`.paper_fills` — the bar and price an order fills at (or expires), its costs;
* :mod:`.paper_checks` — refusals at placement, IBKR's order questions, previews;
* :mod:`.paper_account` — the account: book, orders, fills, the prices seen;
* :mod:`.paper_options` — option chains, prices and fills;
* :mod:`.paper_expiry` — options at expiry: exercise, assignment, settlement;
* :mod:`.paper_state` — the state file: its format, lock and atomic saves.

**State file.** With ``state_file`` set, the account is loaded from its file on
:meth:`PaperBroker.connect` and saved after every place, cancel, modify, fill,
expiry, trigger or option settlement, and on :meth:`PaperBroker.disconnect`. A bar that changes no
order costs no I/O; its price is saved with the next change. While one process
has the file, another that connects gets a read-only view. Like a real
broker's, a durable account wants each intent in the ledger before it is sent
(``requires_durable_intents``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
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
from tradepipe.brokers.ibkr.orders import ReplyPolicy, check_message_ids
from tradepipe.brokers.paper.account import PaperAccount, SimOrder
from tradepipe.brokers.paper.checks import QUESTIONS, OrderChecks
from tradepipe.brokers.paper.expiry import Expiries
from tradepipe.brokers.paper.fills import Costs, TradingDates, match
from tradepipe.brokers.paper.options import OptionDesk, parse_occ
from tradepipe.brokers.paper.state import StateFile
from tradepipe.clock import Clock, SystemClock
from tradepipe.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerRejectedError,
    BrokerUnavailableError,
    ConfigError,
)
from tradepipe.instruments import underlying
from tradepipe.money import ZERO, to_decimal
from tradepipe.options.chain import OptionQuote
from tradepipe.order_rules import Change
from tradepipe.portfolio import AccountSummary, Book
from tradepipe.services.files import shown_path

log = logging.getLogger(__name__)


class PaperBroker(Broker):
    """Simulated broker account (see the module docstrings for its rules)."""

    name = "paper"
    description = "in-process simulator filling orders against bars"
    requires_durable_intents = False
    needs_polling = False
    maintenance_window = ""  # the simulator never goes down
    simulated = True
    live_feed = "synthetic_live"

    class Settings(ComponentSettings):
        account_id: str = "PAPER"
        initial_cash: Decimal = Field(default=Decimal(100_000), gt=0)
        currency: str = "USD"
        commission: Literal["ibkr_fixed", "none"] = "ibkr_fixed"
        commission_per_share: Decimal = Field(default=Decimal("0.005"), ge=0)
        commission_minimum: Decimal = Field(default=Decimal("1.00"), ge=0)
        commission_max_fraction: Decimal = Field(default=Decimal("0.01"), gt=0, le=1)
        slippage_bps: Decimal = Field(default=ZERO, ge=0, le=1000)
        #: Options: commission per contract (with ``commission_minimum`` per order).
        commission_per_contract: Decimal = Field(default=Decimal("0.65"), ge=0)
        #: Options without quotes are priced by Black-Scholes with this volatility …
        option_volatility: float = Field(default=0.25, gt=0, le=5)
        #: … and this continuously compounded risk-free rate.
        risk_free_rate: float = Field(default=0.04, ge=-0.05, le=0.5)
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
        #: In a live run, fill working stock orders at the feed's quotes too (a buy at the
        #: ask, a sell at the bid, else the last price), not only at bars.
        fill_on_quotes: bool = True
        #: IBKR order questions the simulator asks when they apply: o163 (limit
        #: more than 3% from the last price), o354 (no market data yet), o403
        #: (would trigger and fill at once), o10151 (market order), o10331 and
        #: o10152 (stop or stop-limit order).
        questions: list[str] = Field(default_factory=list)
        #: Question ids confirmed automatically, as ``[brokers.client_portal] confirm``.
        confirm: list[str] = Field(default_factory=list)
        #: Confirm every question, as ``[brokers.client_portal] confirm_all_on_paper``.
        confirm_all: bool = False
        #: Question ids that wait for a person, as ``[brokers.client_portal] ask``.
        ask: list[str] = Field(default_factory=list)

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
            return check_message_ids(value)

        @field_validator("ask")
        @classmethod
        def _ask(cls, value: list[str]) -> list[str]:
            return check_message_ids(value, wildcard=True)

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
        self._dates = TradingDates(self._tz)
        self.clock: Clock = SystemClock()
        self._connected = False
        self._queue: list[BrokerEvent] = []
        self._costs = Costs(
            commission=s.commission,
            per_share=s.commission_per_share,
            minimum=s.commission_minimum,
            max_fraction=s.commission_max_fraction,
            slippage_bps=s.slippage_bps,
        )
        self._desk = OptionDesk(
            volatility=s.option_volatility,
            rate=s.risk_free_rate,
            per_contract=s.commission_per_contract,
            minimum=s.commission_minimum,
            free=s.commission == "none",
        )
        self._checks = OrderChecks(
            self.name,
            known={sym.upper() for sym in s.symbols},
            questions=s.questions,
            policy=ReplyPolicy(
                frozenset(s.confirm), confirm_all=s.confirm_all, ask=frozenset(s.ask)
            ),
            costs=self._costs,
            allow_short=s.allow_short,
            currency=s.currency,
        )
        self._state: StateFile | None = None
        self._replaying = False
        if s.state_file:
            path = Path(os.path.abspath(Path(s.state_file).expanduser()))
            self._state = StateFile(path, self.name)
            # A durable account is like a real broker's: the ledger must know an
            # order before the account does, or a crash in between orphans it.
            self.requires_durable_intents = True
        self._readonly = False
        self._broken = ""
        self._reset()

    def ledger_account(self, account_id: str | None) -> str:
        """``paper:<account file>`` for an account kept in a file; without one, the
        account lives as long as the run (``""``): replays never pool."""
        return f"paper:{self._state.path}" if self._state is not None else ""

    def _reset(self) -> None:
        """A fresh account from the settings."""
        s = self.settings
        self._account = PaperAccount(s.initial_cash, s.currency)
        self._expiries = Expiries(self._tz)
        self._dirty = False
        self._saved_last: dict[str, Bar] = {}
        #: The latest time a kept account has seen (a bar or a fill), until a
        #: replay's first bar after loading it is checked against it (see on_bar).
        self._seen_until: dt.datetime | None = None
        if self._state is not None:
            self._state.forget()

    @property
    def book(self) -> Book:
        """The account's cash and positions."""
        return self._account.book

    def attach(self, runtime: Any) -> None:
        self.clock = runtime.clock
        # A replay's bars are history, which a kept account should not go back into
        # (on_bar warns); a live feed's come as they happen, a warm-up's older ones too.
        self._replaying = runtime.settings.run.mode == "replay"

    # -- session ---------------------------------------------------------------

    def connect(self) -> BrokerStatus:
        if not self._connected and self._state is not None:
            self._open(self._state)
        self._connected = True
        return self.status()

    def disconnect(self) -> None:
        if not self._connected:
            return
        self._connected = False
        try:
            # Bars change no order but move prices: they are saved now, unless
            # nothing at all happened (a command that only read).
            moved = self._dirty or self._account.last != self._saved_last
            if self._state is not None and moved and not self._readonly and not self._broken:
                self._save()
        finally:
            if self._state is not None:
                self._state.unlock()

    def status(self) -> BrokerStatus:
        message = "not connected"
        if self._connected:
            message = "paper simulator"
            if self._state is not None:
                message += f", account file {shown_path(self._state.path)}"
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

    def account(self) -> AccountSummary:
        account = self._account
        available = account.book.cash - account.reserved()
        return account.book.summary(
            self.settings.account_id, self.clock.now(), available, self._marks()
        )

    def positions(self) -> list[Position]:
        return self._account.book.positions(self._marks())

    def _marks(self) -> dict[str, float]:
        """The last prices, and model prices for option positions without bars of their own."""
        marks = self._account.marks()
        marks.update(self._desk.marks(self._account, None))
        return marks

    def open_orders(self) -> list[OrderReport]:
        return [o.report() for orders in self._account.working.values() for o in orders]

    def order(self, client_order_id: str) -> OrderReport | None:
        sim = self._account.orders.get(client_order_id)
        return None if sim is None else sim.report()

    def fills(self, since: dt.datetime | None = None) -> list[Fill]:
        if since is None:
            return list(self._account.fills)
        return [f for f in self._account.fills if f.ts >= since]

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        out = []
        for symbol in symbols:
            bar = self._account.last.get(symbol.upper())
            if bar is None:
                quote = self._option_quote(symbol)
                if quote is not None:
                    out.append(quote)
            else:
                out.append(
                    Quote(
                        symbol=bar.symbol,
                        ts=bar.ts,
                        last=to_decimal(bar.close),
                        volume=to_decimal(bar.volume),
                    )
                )
        return out

    def _option_quote(self, ticker: str) -> Quote | None:
        """A model price for an OCC symbol whose underlying has a price."""
        option = parse_occ(ticker)
        under = None if option is None else self._account.last.get(option.underlying)
        if option is None or under is None:
            return None
        price = self._desk.option_price(option, under.close, under.ts, self._account.last)
        return Quote(symbol=ticker, ts=under.ts, last=price)

    def option_chain(self, underlying: str, expiry: dt.date | None = None) -> list[OptionQuote]:
        """A synthetic chain around the underlying's last price (see :mod:`.paper_options`)."""
        bar = self._account.last.get(underlying.upper())
        if bar is None:
            raise BrokerRejectedError(
                f"no market data for {underlying.upper()}: the paper chain is built "
                "around its last price",
                broker=self.name,
            )
        return self._desk.chain(bar.symbol, expiry, bar.close, bar.ts, self._account.last)

    def history(self, symbol: str, *, bars: int = 100, bar_size: str = "1d") -> list[Bar]:
        seen = self._account.history.get(symbol.upper(), ())
        return list(seen)[-bars:] if bars > 0 else []

    # -- orders ----------------------------------------------------------------

    def place(self, intent: OrderIntent) -> OrderUpdate:
        self._require_connection()
        now = self.clock.now()
        cid = intent.client_order_id
        account = self._account
        existing = account.orders.get(cid)
        if existing is not None:
            # Like IBKR's duplicate-cOID answer: the order is already placed.
            return existing.update(existing.status, now, "already placed")
        self._require_writable("not placed", cid)
        instrument = intent.instrument
        if instrument is not None and instrument.kind != "stock":
            problem = self._desk.check(intent, account, underlying(instrument))
        else:
            problem = self._checks.check(intent, account)
        if problem:
            return OrderUpdate.trusted(
                client_order_id=cid, status=OrderStatus.REJECTED, ts=now, reason=problem
            )
        sim = SimOrder(intent, f"P{account.next_id}", now)
        account.next_id += 1
        account.orders[cid] = sim
        account.working.setdefault(sim.key, []).append(sim)
        if self._state is not None:
            try:
                self._save()
            except BrokerError as exc:
                account.next_id -= 1
                del account.orders[cid]
                account.unwork(sim)
                raise BrokerRejectedError(
                    f"not placed: {exc}", broker=self.name, client_order_id=cid
                ) from exc
        return sim.update(OrderStatus.ACCEPTED, now)

    def _require_connection(self) -> None:
        if not self._connected:
            raise BrokerAuthError("the paper broker is not connected", broker=self.name)

    def _require_writable(self, action: str, cid: str) -> None:
        if self._readonly:
            raise BrokerRejectedError(
                f"{action}: {self._in_use()}", broker=self.name, client_order_id=cid
            )

    def _in_use(self) -> str:
        path = None if self._state is None else self._state.path
        return (
            f"the paper account {path} is in use by another process (a running "
            "pipeline?); it can be read but not traded from here until that process disconnects"
        )

    def cancel(self, client_order_id: str) -> OrderUpdate:
        self._require_connection()
        sim = self._account.orders.get(client_order_id)
        if sim is None:
            raise BrokerRejectedError(
                f"no order {client_order_id} at the paper broker", client_order_id=client_order_id
            )
        if sim.status.is_terminal:
            raise BrokerRejectedError(
                f"order {client_order_id} is already {sim.status}", client_order_id=client_order_id
            )
        self._require_writable("not canceled", client_order_id)
        self._account.unwork(sim)
        sim.status = OrderStatus.CANCELED
        if self._state is not None:
            try:
                self._save()
            except BrokerError:
                sim.status = OrderStatus.ACCEPTED
                self._account.rework(sim)
                raise
        self._account.finish(client_order_id)
        now = self.clock.now()
        # The cancellation is confirmed by the next poll, as a real broker would.
        self._queue.append(sim.update(OrderStatus.CANCELED, now, "canceled on request"))
        return sim.update(OrderStatus.PENDING_CANCEL, now)

    def modify(
        self,
        client_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate:
        self._require_connection()
        sim = self._account.orders.get(client_order_id)
        if sim is None:
            raise BrokerRejectedError(
                f"no order {client_order_id} at the paper broker", client_order_id=client_order_id
            )
        # The simulator fills an order whole: until it is filled, nothing is.
        candidate = self.order_rules.modified(
            sim.intent,
            Change(quantity, limit_price, stop_price),
            status=sim.status,
            filled=sim.intent.quantity if sim.status is OrderStatus.FILLED else ZERO,
        )
        self._require_writable("not modified", client_order_id)
        account = self._account
        if sim.option:
            problem = self._desk.check(candidate, account, sim.key, replacing=sim)
        else:
            problem = self._checks.check(candidate, account, replacing=sim)
        if problem:
            raise BrokerRejectedError(problem, client_order_id=client_order_id)
        before = (sim.intent, sim.limit, sim.stop)
        sim.intent = candidate
        if limit_price is not None:
            sim.limit = float(limit_price)
        if stop_price is not None:
            sim.stop = float(stop_price)
        if self._state is not None:
            try:
                self._save()
            except BrokerError as exc:
                sim.intent, sim.limit, sim.stop = before
                raise BrokerRejectedError(
                    f"not modified: {exc}", broker=self.name, client_order_id=client_order_id
                ) from exc
        return sim.update(sim.status, self.clock.now(), "modified")

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
        read_only = self._in_use() if self._readonly else ""
        return self._checks.preview(intent, self._account, read_only)

    # -- matching ----------------------------------------------------------------

    def on_bar(self, bar: Bar) -> Sequence[BrokerEvent]:
        if self._seen_until is not None:
            self._check_not_before(bar)
        account = self._account
        settled: Sequence[Fill] = ()
        if self._expiries.due(account, bar.ts) and not self._readonly:
            # Before this bar is kept: the settlement price is the last close up to expiry.
            settled = self._expiries.settle(account, bar.ts)
            self._dirty = self._dirty or bool(settled)
        symbol = bar.symbol
        account.last[symbol] = bar
        account.history[symbol].append(bar)
        orders = account.working.get(symbol)
        if not orders and not self._queue and not settled:
            return ()
        # Settlements happened at the expiry's close; then confirmations queued
        # since the last bar (cancels).
        events: list[BrokerEvent] = [*settled, *self.poll()]
        if not orders or self._readonly:
            # A read-only view never trades: the process that writes the file does.
            if settled and self._state is not None:
                self._save_or_stop()
            return events
        for sim in list(orders):
            # A bar that opened before the order existed (another symbol's bar at the
            # same time led to it) has prices the order could not have had.
            if bar.ts > sim.placed:
                self._on_order_bar(sim, bar, events)
        if self._dirty and self._state is not None:
            self._save_or_stop()
        return events

    def _check_not_before(self, bar: Bar) -> None:
        """Warn when a replay's first bar is older than what the kept account has seen.

        Its orders then fill in the account's past. That is what a replay restarted
        after it was stopped does (it plays its bars again from the first, and the
        exactly-once recovery relies on it); a replay of other, older bars mixes
        its trades into the account's later history, which nothing else would say.
        """
        seen, self._seen_until = self._seen_until, None
        if seen is not None and bar.ts < seen:
            assert self._state is not None
            log.warning(
                "the paper account in %s has seen %s and this replay starts at %s: its "
                "orders fill in the account's past. Expected when a stopped replay is "
                "run again; for a replay of other bars, use another state_file (or none)",
                shown_path(self._state.path),
                seen.isoformat(),
                bar.ts.isoformat(),
            )

    def _on_order_bar(self, sim: SimOrder, bar: Bar, events: list[BrokerEvent]) -> None:
        """What ``bar`` does to one working order: expire it, or fill it."""
        if sim.intent.tif == "day":
            session = self._dates.of(bar.ts)
            if sim.session is None:
                sim.session = session
                self._dirty = True
            elif session != sim.session:
                self._close(sim, OrderStatus.EXPIRED)
                events.append(sim.update(OrderStatus.EXPIRED, bar.ts, "day order expired"))
                return
        if sim.option:
            if sim.expiry is not None and self._dates.of(bar.ts) > sim.expiry:
                # Its expiry day has closed: the contract no longer trades.
                self._close(sim, OrderStatus.EXPIRED)
                events.append(sim.update(OrderStatus.EXPIRED, bar.ts, "the option expired"))
                return
            unit = self._desk.match(sim, bar, self._account.last)
            if unit is not None:
                events.append(self._desk.fill(sim, unit, bar, self._account))
                self._close(sim, OrderStatus.FILLED)
                self._expiries.changed()
            return
        triggered = sim.triggered
        price = match(sim, bar)
        if sim.triggered and not triggered:
            self._dirty = True  # a stop-limit order triggered: saved as such
        if price is not None:
            events.append(self._fill(sim, price, bar.ts))

    def on_quote(self, quote: Quote) -> Sequence[BrokerEvent]:
        """Fill working stock orders at a live quote: a buy at the ask, a sell at the bid.

        The quote is a market at one price for each side (its last where the side
        is missing), matched as a bar of that one price: a market order fills at
        it, a limit order when the price reaches its limit, a stop when it is
        touched. Options still fill on bars only (their model prices need one).
        """
        orders = self._account.working.get(quote.symbol)
        if not orders or self._readonly or not self.settings.fill_on_quotes:
            return ()
        events: list[BrokerEvent] = []
        for sim in list(orders):
            if sim.option or quote.ts <= sim.placed:
                continue
            side = quote.ask if sim.intent.side == "buy" else quote.bid
            price = side if side is not None else quote.last
            if price is None or price <= 0:
                continue
            p = float(price)
            triggered = sim.triggered
            filled = match(sim, Bar(quote.symbol, quote.ts, p, p, p, p, 0.0))
            if sim.triggered and not triggered:
                self._dirty = True  # a stop-limit order triggered: saved as such
            if filled is not None:
                events.append(self._fill(sim, filled, quote.ts))
        if self._dirty and self._state is not None:
            self._save_or_stop()
        return events

    def on_history(self, bars: Sequence[Bar]) -> None:
        """Prices from before a live run's first bar: known from now on, never filled at."""
        account = self._account
        for bar in bars:
            seen = account.last.get(bar.symbol)
            if seen is None or bar.ts > seen.ts:
                account.last[bar.symbol] = bar
                account.history[bar.symbol].append(bar)

    def _fill(self, sim: SimOrder, raw_price: float, ts: dt.datetime) -> Fill:
        intent = sim.intent
        costs = self._costs
        price = costs.slipped(to_decimal(raw_price), intent)
        quantity = intent.quantity
        fill = _execution(
            f"{sim.broker_id}.1",
            intent.client_order_id,
            intent.decision_id,
            sim.broker_id,
            intent.symbol,
            intent.side,
            quantity,
            price,
            costs.commission(quantity, price),
            ts,
        )
        self._account.book.apply(fill)
        self._account.fills.append(fill)
        self._close(sim, OrderStatus.FILLED)
        return fill

    def _close(self, sim: SimOrder, status: OrderStatus) -> None:
        """``sim`` stops working with ``status`` (filled, expired)."""
        self._account.unwork(sim)
        sim.status = status
        self._dirty = True
        self._account.finish(sim.intent.client_order_id)

    # -- the state file ------------------------------------------------------------

    def _open(self, state: StateFile) -> None:
        """Lock the file (or fall back to reading it) and load the account from it."""
        self._readonly = state.lock()
        try:
            self._reset()
            self._broken = ""
            data = state.read()
            if data is not None:
                s = self.settings
                self._account = state.load(data, s.account_id, s.currency)
                self._saved_last = dict(self._account.last)
                if self._replaying:
                    times = [b.ts for b in self._account.last.values()]
                    times += [f.ts for f in self._account.fills]
                    self._seen_until = max(times, default=None)
            elif not self._readonly:
                self._save()  # a new account: its file exists from now on
        except BaseException:
            state.unlock()
            raise

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
        state = self._state
        assert state is not None
        if self._readonly:
            return
        if self._broken:
            raise BrokerUnavailableError(self._broken, broker=self.name, path=str(state.path))
        state.save(self._account, self.settings.account_id, self.clock.now())
        self._dirty = False
        self._saved_last = dict(self._account.last)


@hookimpl
def tradepipe_register_brokers(register: Any) -> None:
    register(PaperBroker)


#: A simulated execution from its values in this order (see :meth:`Record.maker`).
_execution = Fill.maker(
    "execution_id",
    "client_order_id",
    "decision_id",
    "broker_order_id",
    "symbol",
    "side",
    "quantity",
    "price",
    "commission",
    "ts",
)
