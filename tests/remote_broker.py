"""A broker whose orders outlive the process, like IBKR's, and a strategy that buys once.

Shared by the start-up settlement and ``tradepipe reconcile`` tests: the
broker's state lives on the class, so a "restarted" pipeline (a new instance)
finds what the previous one left, and a test can change it in between.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from tradepipe import (
    AccountSummary,
    Action,
    Bar,
    Broker,
    BrokerStatus,
    BrokerUnavailableError,
    Decision,
    Fill,
    OrderIntent,
    OrderReport,
    OrderStatus,
    OrderUpdate,
    Position,
    Strategy,
    StrategyContext,
    hookimpl,
)
from tradepipe.testing import T0


class Remote(Broker):
    """A broker whose state outlives the process, like IBKR's."""

    name = "remote"
    orders: ClassVar[dict[str, dict[str, Any]]] = {}
    executions: ClassVar[list[Fill]] = []
    held: ClassVar[list[Position]] = []
    fail_fills: ClassVar[bool] = False
    #: Sends time out before reaching the broker: it never hears of them.
    lose_sends: ClassVar[bool] = False

    def connect(self) -> BrokerStatus:
        return self.status()

    def status(self) -> BrokerStatus:
        return BrokerStatus(broker=self.name, connected=True, authenticated=True, account_id="DU1")

    def account(self) -> AccountSummary:
        return AccountSummary(
            account_id="DU1",
            cash=Decimal(10_000),
            equity=Decimal(10_000),
            buying_power=Decimal(10_000),
            ts=T0,
        )

    def positions(self) -> list[Position]:
        return list(self.held)

    def place(self, intent: OrderIntent) -> OrderUpdate:
        if self.lose_sends:
            raise BrokerUnavailableError("timed out; the order may or may not have arrived")
        self.orders[intent.client_order_id] = {"intent": intent, "status": OrderStatus.ACCEPTED}
        return OrderUpdate(
            client_order_id=intent.client_order_id,
            status=OrderStatus.ACCEPTED,
            ts=T0,
            broker_order_id="B1",
        )

    def _report(self, cid: str) -> OrderReport:
        o = self.orders[cid]
        i = o["intent"]
        filled = sum((f.quantity for f in self.executions if f.client_order_id == cid), Decimal(0))
        return OrderReport(
            client_order_id=cid,
            broker_order_id="B1",
            symbol=i.symbol,
            side=i.side.value,
            quantity=i.quantity,
            filled_quantity=filled,
            status=o["status"],
            order_type=i.order_type.value,
            limit_price=i.limit_price,
        )

    def open_orders(self) -> list[OrderReport]:
        return [self._report(c) for c, o in self.orders.items() if o["status"].is_working]

    def order(self, client_order_id: str) -> OrderReport | None:
        return self._report(client_order_id) if client_order_id in self.orders else None

    def fills(self, since: dt.datetime | None = None) -> list[Fill]:
        if self.fail_fills:
            raise BrokerUnavailableError("executions timed out")
        return [f for f in self.executions if since is None or f.ts >= since]


class BuyLow(Strategy):
    name = "buy_low"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.done = False

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision | None:
        if self.done:
            return None
        self.done = True
        return self.decision(
            ctx,
            id="d-low",
            symbol=bar.symbol,
            action=Action.BUY,
            confidence=90,
            quantity=10,
            order_type="limit",
            limit_price=50,
        )


class Plugin:
    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(Remote)

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(BuyLow)


def reset() -> None:
    Remote.orders, Remote.executions, Remote.held = {}, [], []
    Remote.fail_fills = False
    Remote.lose_sends = False
