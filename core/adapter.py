"""The interface every broker adapter implements.

The paper simulator, the Client Portal Gateway adapter and the OAuth Web API
adapter all implement :class:`Broker`, so the executor and the CLI never know
which one they talk to. Operations an adapter cannot offer raise
:class:`~tradepipe.errors.BrokerCapabilityError`.

Errors: adapters translate everything underneath them (httpx, JSON, the
broker's own error bodies) into the :mod:`tradepipe.errors` tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import AwareDatetime
from tradepipe.component import Component
from tradepipe.errors import BrokerCapabilityError
from tradepipe.market import Bar, Quote
from tradepipe.option_chain import OptionQuote
from tradepipe.orders import Fill, OrderIntent, OrderStatus
from tradepipe.portfolio import AccountSummary, Position
from tradepipe.record import Record


class BrokerStatus(Record):
    """Whether the broker can be used right now, and what to do if not."""

    broker: str
    connected: bool
    authenticated: bool
    account_id: str | None = None
    is_paper: bool = True
    message: str = ""


class OrderUpdate(Record):
    """A broker's report that an order we sent changed status."""

    client_order_id: str
    status: OrderStatus
    ts: AwareDatetime
    broker_order_id: str | None = None
    reason: str = ""
    filled_quantity: Decimal | None = None


class OrderReport(Record):
    """An order as the broker sees it (open orders, reconciliation)."""

    client_order_id: str | None
    broker_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    filled_quantity: Decimal
    status: OrderStatus
    order_type: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


BrokerEvent = OrderUpdate | Fill


class Broker(Component):
    """Base class of broker adapters."""

    #: True when the executor must make an intent durable in the ledger before
    #: sending it (every real broker). The in-process simulator says False.
    requires_durable_intents: bool = True
    #: True when order updates arrive only through :meth:`poll`, which the
    #: executor then calls after every event. A broker that reports everything
    #: from :meth:`on_bar` says False and is polled only at the end of a run.
    needs_polling: bool = True
    #: The broker's daily maintenance window (``"HH:MM-HH:MM Zone"``), when a
    #: live run sends nothing (``[run] maintenance_window = "broker"``); empty
    #: for none. IBKR resets its systems every night, 23:45-00:45 New York.
    maintenance_window: ClassVar[str] = "23:45-00:45 America/New_York"

    def connect(self) -> BrokerStatus:
        raise NotImplementedError

    def disconnect(self) -> None:
        """Release connections and background threads. Idempotent."""

    def status(self) -> BrokerStatus:
        raise NotImplementedError

    def account(self) -> AccountSummary:
        raise NotImplementedError

    def positions(self) -> list[Position]:
        raise NotImplementedError

    def open_orders(self) -> list[OrderReport]:
        raise NotImplementedError

    def order(self, client_order_id: str) -> OrderReport | None:
        """The broker's view of one order, or ``None`` when it has no such order.

        ``None`` must mean the broker answered and does not know the order; a
        failure to ask raises :class:`~tradepipe.errors.BrokerError`.
        """
        raise NotImplementedError

    def place(self, intent: OrderIntent) -> OrderUpdate:
        """Send ``intent``; return ACCEPTED, REJECTED or UNKNOWN (ambiguous send)."""
        raise NotImplementedError

    def cancel(self, client_order_id: str) -> OrderUpdate:
        """Ask to cancel; the answer is PENDING_CANCEL until the broker confirms."""
        raise NotImplementedError

    def modify(
        self,
        client_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate:
        raise BrokerCapabilityError(f"{self.name} cannot modify orders", broker=self.name)

    def fills(self, since: datetime | None = None) -> list[Fill]:
        raise NotImplementedError

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        raise BrokerCapabilityError(f"{self.name} has no quotes", broker=self.name)

    def history(self, symbol: str, *, bars: int = 100, bar_size: str = "1d") -> list[Bar]:
        raise BrokerCapabilityError(f"{self.name} has no history", broker=self.name)

    def scan(self, **params: Any) -> list[dict[str, Any]]:
        raise BrokerCapabilityError(f"{self.name} has no scanner", broker=self.name)

    def option_chain(self, underlying: str, expiry: date | None = None) -> list[OptionQuote]:
        """The options listed on ``underlying``: of ``expiry``, or of every listed expiry.

        Each :class:`~tradepipe.option_chain.OptionQuote` carries its price and
        delta where the broker supplies them (``None`` otherwise); option
        strategies choose their legs from it.

        :raises BrokerCapabilityError: the broker lists no option chains.
        """
        raise BrokerCapabilityError(f"{self.name} has no option chains", broker=self.name)

    def on_bar(self, bar: Bar) -> Sequence[BrokerEvent]:
        """A market event passed by; a simulator matches orders against it."""
        return ()

    def on_history(self, bars: Sequence[Bar]) -> None:
        """Bars from before a live run's first one (its warm-up), oldest first.

        A simulator learns the prices from them; it never fills an order at one.
        """

    def poll(self) -> Sequence[BrokerEvent]:
        """Order updates and fills that arrived since the last call."""
        return ()
