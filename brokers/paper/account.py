"""The paper simulator's account: book, orders, fills, and the prices it has seen.

:class:`PaperAccount` is what the broker changes, the order checks read
(:mod:`.paper_checks`) and the state file keeps (:mod:`.paper_state`);
:class:`SimOrder` is one order as the simulator holds it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from decimal import Decimal

from tradepipe import Bar, Fill, OrderIntent, OrderReport, OrderStatus, OrderUpdate
from tradepipe.adapter import order_update
from tradepipe.instruments import Option
from tradepipe.money import ZERO, to_decimal
from tradepipe.portfolio import Book

_HISTORY = 2_000
#: Finished orders and fills an account remembers (the newest), as IBKR forgets
#: old executions. Without a state file, it forgets in steps, once it holds twice
#: as many, so a long replay's memory stays flat.
KEPT = 200


class SimOrder:
    """An order at the simulator: the intent, its broker id, status and matching state."""

    __slots__ = (
        "broker_id",
        "expiry",
        "intent",
        "key",
        "limit",
        "option",
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
        #: A DAY order's trading date, set by the first bar it can fill on.
        self.session: dt.date | None = None
        #: A stop-limit order whose stop has been reached.
        self.triggered = False
        # Floats, as bars are: matching runs on every bar.
        self.limit = float(intent.limit_price) if intent.limit_price is not None else None
        self.stop = float(intent.stop_price) if intent.stop_price is not None else None
        instrument = intent.instrument
        #: An option or combo order, priced by :mod:`.paper_options`.
        self.option = instrument is not None and instrument.kind != "stock"
        #: The symbol whose bars this order is matched on (an option's underlying).
        self.key = intent.symbol
        #: The last trading date of an option order: its earliest leg's expiry.
        self.expiry: dt.date | None = None
        if self.option:
            assert instrument is not None and instrument.kind != "stock"
            if instrument.kind == "option":
                self.key = instrument.underlying
                self.expiry = instrument.expiry
            else:
                self.key = instrument.symbol.split("+")[0]
                self.expiry = min(
                    (
                        leg.instrument.expiry
                        for leg in instrument.legs
                        if isinstance(leg.instrument, Option)
                    ),
                    default=None,
                )

    def update(self, status: OrderStatus, ts: dt.datetime, reason: str = "") -> OrderUpdate:
        return order_update(self.intent.client_order_id, status, ts, self.broker_id, reason)

    def report(self) -> OrderReport:
        intent = self.intent
        return OrderReport.trusted(
            client_order_id=intent.client_order_id,
            broker_order_id=self.broker_id,
            symbol=intent.symbol,
            side=intent.side.value,
            quantity=intent.quantity,
            filled_quantity=intent.quantity if self.status is OrderStatus.FILLED else ZERO,
            status=self.status,
            order_type=intent.order_type.value,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
        )


class PaperAccount:
    """Cash and positions (:attr:`book`), orders and fills of one account, and its bars."""

    def __init__(self, cash: Decimal, currency: str) -> None:
        self.book = Book(cash, currency)
        #: Every order by client order id, in placement order.
        self.orders: dict[str, SimOrder] = {}
        #: The working orders of each symbol, in placement order.
        self.working: dict[str, list[SimOrder]] = {}
        self.last: dict[str, Bar] = {}
        self.history: defaultdict[str, deque[Bar]] = defaultdict(lambda: deque(maxlen=_HISTORY))
        self.fills: list[Fill] = []
        #: Finished orders in the order they finished, the oldest forgotten first.
        self.finished: deque[str] = deque()
        #: How many fills, from the first, have been forgotten.
        self.fills_forgotten = 0
        #: The number in the next broker order id (``P<n>``).
        self.next_id = 1

    def finish(self, client_order_id: str) -> None:
        """The order can no longer change: remember it among the finished ones."""
        self.finished.append(client_order_id)
        if len(self.finished) > 2 * KEPT or len(self.fills) > 2 * KEPT:
            self.forget(KEPT)

    def forget(self, kept: int) -> None:
        """Forget all but the newest ``kept`` finished orders and fills."""
        finished, orders = self.finished, self.orders
        while len(finished) > kept:
            orders.pop(finished.popleft(), None)
        excess = len(self.fills) - kept
        if excess > 0:
            del self.fills[:excess]
            self.fills_forgotten += excess

    def marks(self) -> dict[str, float]:
        return {sym: bar.close for sym, bar in self.last.items()}

    def unwork(self, sim: SimOrder) -> None:
        orders = self.working.get(sim.key)
        if orders and sim in orders:
            orders.remove(sim)

    def rework(self, sim: SimOrder) -> None:
        """Put ``sim`` back among the working orders, in placement order."""
        orders = self.working.setdefault(sim.key, [])
        orders.append(sim)
        rank = {id(o): n for n, o in enumerate(self.orders.values())}
        orders.sort(key=lambda o: rank[id(o)])

    def reserved(self, exclude: SimOrder | None = None) -> Decimal:
        """Cash the working buy orders (but ``exclude``) would spend."""
        total = ZERO
        for orders in self.working.values():
            for sim in orders:
                if sim is exclude or sim.intent.side != "buy":
                    continue
                intent = sim.intent
                price = intent.limit_price or intent.stop_price
                if price is None:
                    last = self.last.get(intent.symbol)
                    price = to_decimal(last.close) if last is not None else ZERO
                total += intent.quantity * price * (intent.multiplier if sim.option else 1)
        return total

    def pending_sells(self, symbol: str, exclude: SimOrder | None = None) -> Decimal:
        """The quantity of ``symbol`` the working sell orders (but ``exclude``) would sell."""
        return sum(
            (
                sim.intent.quantity
                for sim in self.working.get(symbol, ())
                if sim is not exclude and sim.intent.side == "sell" and not sim.option
            ),
            ZERO,
        )
