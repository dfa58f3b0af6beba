"""What strategies and risk filters see during a run."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal

from tradepipe.clock import Clock
from tradepipe.errors import BrokerCapabilityError
from tradepipe.instruments import Combo, Option, ticker_of
from tradepipe.money import ZERO, to_decimal
from tradepipe.options.chain import ChainCache, ChainSource, OptionQuote
from tradepipe.orders import Order
from tradepipe.portfolio import Book


class RunContext:
    """Time, holdings, orders in flight, prices and money, as of now.

    Implements both :class:`~tradepipe.StrategyContext` and
    :class:`~tradepipe.RiskContext`. ``position`` is what has filled;
    ``pending`` is what working orders will still change; limits on exposure
    must look at both, or two orders in flight could together break them.

    ``chains`` is the broker's :meth:`~tradepipe.adapter.Broker.option_chain`;
    without it :meth:`option_chain` raises :class:`BrokerCapabilityError`.
    """

    def __init__(
        self,
        clock: Clock,
        book: Book,
        working: dict[str, Order],
        chains: ChainSource | None = None,
    ) -> None:
        self._clock = clock
        self._book = book
        self._working = working
        self._marks: dict[str, float] = {}
        self._paper = True
        self._account_key = ""
        self._chains = ChainCache(chains or _no_chains)
        self._chains_at: datetime | None = None
        self._market_open: Callable[[], bool] = _always
        self._fresh: Callable[[str], bool] = _priced_if_marked(self)
        #: Combos judged this run, by their order symbol: held as their legs.
        self._combos: dict[str, Combo] = {}

    def now(self) -> datetime:
        return self._clock.now()

    def know(self, combo: Combo) -> None:
        """A combo is about to be sized and judged: its position is read from its legs."""
        self._combos[combo.ticker.upper()] = combo

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (filled orders only).

        A combo is held as its legs: its position is how many whole combos the
        legs make, each leg in its ratio and all on the same side (a spread
        bought once: +1; its legs held apart or unevenly: what they make whole).
        """
        combo = self._combos.get(symbol) if self._combos else None
        if combo is None:
            return self._book.quantity(symbol)
        units: Decimal | None = None
        for leg in combo.legs:
            held = self._book.quantity(ticker_of(leg.instrument)) / leg.ratio
            if held == 0 or (units is not None and (held > 0) != (units > 0)):
                return ZERO
            units = held if units is None or abs(held) < abs(units) else units
        return ZERO if units is None else units.to_integral_value(rounding=ROUND_DOWN)

    def pending(self, symbol: str) -> Decimal:
        """Signed quantity that working orders for ``symbol`` have yet to fill."""
        total = ZERO
        for order in self._working.values():
            intent = order.intent
            if intent.symbol == symbol:
                remaining = order.remaining
                total += remaining if intent.side == "buy" else -remaining
        return total

    def closable(self, symbol: str) -> Decimal:
        """The signed quantity held less what working orders that reduce it have
        yet to fill, never past flat."""
        held = self.position(symbol)
        if not held:
            return ZERO
        reducing = "sell" if held > 0 else "buy"
        closing = ZERO
        for order in self._working.values():
            intent = order.intent
            if intent.symbol == symbol and intent.side == reducing:
                closing += order.remaining
        return max(held - closing, ZERO) if held > 0 else min(held + closing, ZERO)

    def exposure(self, symbol: str) -> Decimal:
        """The position once every working order has filled."""
        if self._combos and symbol in self._combos:
            return self.position(symbol) + self.pending(symbol)
        # A symbol's position is its book's quantity: one call less (sizing and three
        # filters ask for every order).
        return self._book.quantity(symbol) + self.pending(symbol)

    def symbols(self) -> dict[str, Decimal]:
        """Every symbol held or with a working order, with its multiplier."""
        found = self._book.held()
        for order in self._working.values():
            intent = order.intent
            found.setdefault(intent.symbol, intent.multiplier)
        return found

    def open_orders(self) -> int:
        """How many orders are working at the broker."""
        return len(self._working)

    def last_price(self, symbol: str) -> Decimal | None:
        price = self._marks.get(symbol)
        return None if price is None else to_decimal(price)

    @property
    def marks(self) -> dict[str, float]:
        """The latest price of each symbol, by symbol: the run loop writes it bar by bar."""
        return self._marks

    def set_price(self, symbol: str, price: float) -> None:
        """Record the latest price of ``symbol`` (bars do this during a run)."""
        self._marks[symbol] = price

    def cash(self) -> Decimal:
        return self._book.cash

    def equity(self) -> Decimal:
        return self._book.equity(self._marks)

    def reserved_cash(self) -> Decimal:
        """Cash that working buy orders will use when they fill."""
        reserved = ZERO
        for order in self._working.values():
            intent = order.intent
            if intent.side == "buy":
                price = intent.limit_price or intent.stop_price or intent.reference_price or ZERO
                cost = order.remaining * price
                reserved += cost if intent.instrument is None else cost * intent.multiplier
        return reserved

    def is_paper(self) -> bool:
        return self._paper

    def account_key(self) -> str:
        """Which account the run trades, as a stable key that holds no account number
        (state kept per account, such as the day's loss limit, is filed under it)."""
        return self._account_key

    def set_account(self, broker: str, account_id: str | None, paper: bool) -> None:
        """The account the broker connected to (the executor says so at the start)."""
        digest = hashlib.sha256((account_id or "").encode()).hexdigest()[:12]
        self._account_key = f"{broker}:{digest}"
        self._paper = paper

    def market_open(self) -> bool:
        """Whether the run's market is open now (always, unless a live run says otherwise)."""
        return self._market_open()

    def set_market(self, is_open: Callable[[], bool]) -> None:
        """Where :meth:`market_open` asks (a live run's schedule)."""
        self._market_open = is_open

    def price_is_fresh(self, symbol: str) -> bool:
        """Whether ``symbol`` has a price the run may size and price an order at now.

        A replay's prices are always current; a live run's must be younger than
        ``[run] max_quote_age_seconds`` (a warm-up bar from history may not be).
        """
        return self._fresh(symbol)

    def set_freshness(self, fresh: Callable[[str], bool]) -> None:
        """Where :meth:`price_is_fresh` asks (a live run's price times)."""
        self._fresh = fresh

    def option_chain(self, underlying: str, expiry: date | None = None) -> tuple[OptionQuote, ...]:
        """The broker's chain of ``underlying`` (one expiry, or all), read once per moment.

        Reads are kept while the run's clock stands still (within one bar of a
        replay) and read again once it has moved: expiries and prices are those
        of the bar being decided on.

        :raises BrokerError: the broker cannot give the chain.
        """
        self._chains_now()
        return self._chains(underlying.upper(), expiry)

    def mark_from_chain(self, instrument: Option | Combo) -> Decimal | None:
        """Use the price of ``instrument`` in this moment's chain as its latest price.

        The price (an option's, or Σ leg price × ratio of a combo) comes from
        the chains read through :meth:`option_chain` at this moment; it becomes
        the price of the instrument's ticker (the symbol of a decision to trade
        it) that sizing and the risk filters see. ``None``, and nothing set,
        when a leg has no price there.
        """
        self._chains_now()
        price = self._chains.price_of(instrument)
        if price is None or price <= 0:
            return None
        # As a decision's symbol: upper case (a combo's ticker has a lower-case hash).
        self._marks[ticker_of(instrument).upper()] = float(price)
        if isinstance(instrument, Combo):
            # Held, a combo is its legs: they are valued at the chain's prices too.
            for leg in instrument.legs:
                inner = leg.instrument
                if isinstance(inner, Option):
                    leg_price = self._chains.price_of(inner)
                    if leg_price is not None:
                        self._marks[inner.ticker] = float(leg_price)
        return price

    def _chains_now(self) -> None:
        now = self._clock.now()
        if now != self._chains_at:
            self._chains.clear()
            self._chains_at = now


def _always() -> bool:
    return True


def _no_chains(underlying: str, expiry: date | None) -> list[OptionQuote]:
    raise BrokerCapabilityError("this run has no broker to read option chains from")


def _priced_if_marked(ctx: RunContext) -> Callable[[str], bool]:
    """A replay's rule: a symbol is priced once it has a mark."""

    def fresh(symbol: str) -> bool:
        return ctx.last_price(symbol) is not None

    return fresh
