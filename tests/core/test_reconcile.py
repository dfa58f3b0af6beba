"""A restarted session settles the orders an earlier run left open, in that run's history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

import pytest
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
from tradepipe.plugins.ledger import Ledger
from tradepipe.plugins.sql_sink import open_engine
from tradepipe.testing import bar, replay, test_host

T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


class Remote(Broker):
    """A broker whose orders outlive the process (class-level state), like IBKR's."""

    name = "remote"
    orders: ClassVar[dict[str, dict[str, Any]]] = {}
    executions: ClassVar[list[Fill]] = []
    fail_fills = False

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
        return []

    def place(self, intent: OrderIntent) -> OrderUpdate:
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
    """One limit buy on the first bar of a run, with the same decision id every run."""

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


@pytest.fixture(autouse=True)
def _reset() -> None:
    Remote.orders = {}
    Remote.executions = []
    Remote.fail_fills = False


def _session(db: str) -> None:
    replay(
        [bar("AAPL", day, open=100, close=100) for day in range(2)],
        host=test_host(Plugin()),
        run={
            "strategies": ["buy_low"],
            "broker": "remote",
            "risk_filters": [],
            "session": "acct",
            "sinks": ["sql"],
        },
        sinks={"sql": {"url": db, "writer": "inline"}},
    )


def _history(db: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    engine = open_engine(db)
    try:
        ledger = Ledger(engine)
        out = []
        fills = []
        for run in reversed(ledger.runs()):
            for row, _status, _reason in ledger.orders(run.run_id):
                events = ledger.order_events(run.run_id, row.client_order_id)
                out.append((run.run_id, [e.status for e in events]))
            fills += [f.execution_id for f in ledger.fills(run.run_id)]
        return out, fills
    finally:
        engine.dispose()


def test_fills_and_a_cancel_while_down_are_recorded_in_the_run_that_sent_the_order(
    ledger_url: str,
) -> None:
    db = ledger_url
    _session(db)
    [(first_run, statuses)] = _history(db)[0]
    assert statuses == ["submitted", "accepted"]
    [cid] = Remote.orders
    # While no pipeline runs: 6 of 10 fill, then the rest is cancelled.
    Remote.executions.append(
        Fill(
            execution_id="e1",
            client_order_id=cid,
            decision_id="",
            symbol="AAPL",
            side="buy",
            quantity=Decimal(6),
            price=Decimal(50),
            ts=T0 + dt.timedelta(days=3),
        )
    )
    Remote.orders[cid]["status"] = OrderStatus.CANCELED

    _session(db)
    history, fills = _history(db)
    assert history == [
        (first_run, ["submitted", "accepted", "partially_filled", "canceled"])
    ]  # the second run sent nothing: its decision was already sent
    assert fills == ["e1"]

    _session(db)  # a third start finds nothing left to settle, and records nothing twice
    assert _history(db) == (history, fills)


def test_an_order_still_working_is_left_open_and_adopted(ledger_url: str) -> None:
    db = ledger_url
    _session(db)
    _session(db)
    history, _ = _history(db)
    assert history[0][1] == ["submitted", "accepted"]
    # The second run adopted it as working at the broker.
    assert history[1][1] == ["submitted", "accepted"]


def test_a_broker_that_cannot_list_executions_stops_the_start(ledger_url: str) -> None:
    db = ledger_url
    _session(db)
    Remote.fail_fills = True
    with pytest.raises(BrokerUnavailableError, match="executions timed out"):
        _session(db)
