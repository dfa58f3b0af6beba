"""What a run learns at start-up: the broker's working orders and the session's used ids."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import pytest
from tradepipe import (
    Action,
    Bar,
    BrokerUnavailableError,
    Decision,
    OrderReport,
    OrderStatus,
    Position,
    Strategy,
    StrategyContext,
    hookimpl,
)
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.plugins.ledger.sink import open_engine
from tradepipe.testing import MemorySink, bar, replay, test_host


class Once(Strategy):
    """Buys 5 on the first bar, with a decision id that is the same in every run."""

    name = "once"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.n = 0

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision | None:
        self.n += 1
        if self.n != 1:
            return None
        return self.decision(
            ctx, id="d-fixed", symbol=bar.symbol, action=Action.BUY, confidence=90, quantity=5
        )


class Busy(PaperBroker):
    """A paper account that already has orders working when the run starts."""

    name = "busy"
    working: ClassVar[list[OrderReport]] = []
    fail = False

    def open_orders(self) -> list[OrderReport]:
        if self.fail:
            raise BrokerUnavailableError("order list timed out")
        return list(self.working) + super().open_orders()


class Plugin:
    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(Once)

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(Busy)


def _report(cid: str | None, status: OrderStatus, filled: int = 0) -> OrderReport:
    return OrderReport(
        client_order_id=cid,
        broker_order_id="77",
        symbol="AAPL",
        side="buy",
        quantity=Decimal(40),
        filled_quantity=Decimal(filled),
        status=status,
        order_type="limit",
        limit_price=Decimal(90),
    )


def _bars() -> list[Bar]:
    return [bar("AAPL", day, open=100, close=100) for day in range(3)]


def _run(**run: Any) -> Any:
    return replay(
        _bars(),
        host=test_host(Plugin()),
        run={"strategies": ["once"], "broker": "busy", "risk_filters": [], **run},
    )


@pytest.fixture(autouse=True)
def _reset() -> None:
    Busy.working = []
    Busy.fail = False


def test_working_orders_at_the_broker_are_adopted_and_recorded() -> None:
    Busy.working = [
        _report("tp-earlier", OrderStatus.PARTIALLY_FILLED, filled=10),
        _report(None, OrderStatus.ACCEPTED),
        _report("tp-done", OrderStatus.FILLED),  # not working: left alone
    ]
    _run()
    sink = MemorySink.last
    adopted = {o.client_order_id for o in sink.orders if o.intent.source == "broker"}
    assert adopted == {"tp-earlier", "broker-77"}
    earlier = [e for e in sink.events if e.client_order_id == "tp-earlier"]
    assert [e.status for e in earlier] == ["submitted", "accepted", "partially_filled"]
    assert all("adopted at start-up" in e.reason for e in earlier)


def _peek(bars: list[Bar], broker: type[PaperBroker], look: Any) -> list[Any]:
    """What ``look(ctx)`` saw at each bar of a replay of ``bars`` on ``broker``."""
    seen: list[Any] = []

    class Peek(Once):
        name = "once"

        def decide(self, bar: Bar, ctx: StrategyContext) -> None:
            seen.append(look(ctx))

    class PeekPlugin:
        @hookimpl
        def tradepipe_register_strategies(self, register: Any) -> None:
            register(Peek)

        @hookimpl
        def tradepipe_register_brokers(self, register: Any) -> None:
            register(broker)

    run = {"strategies": ["once"], "broker": broker.name}
    replay(bars, host=test_host(PeekPlugin()), run=run)
    return seen


def test_adopted_orders_count_in_exposure() -> None:
    Busy.working = [_report("tp-earlier", OrderStatus.PARTIALLY_FILLED, filled=10)]
    seen = _peek(_bars()[:1], Busy, lambda ctx: ctx.pending("AAPL"))
    assert seen == [Decimal(30)]  # 40 ordered, 10 already filled


def test_a_broker_that_cannot_list_its_orders_stops_the_start() -> None:
    Busy.fail = True
    with pytest.raises(BrokerUnavailableError, match="timed out"):
        _run()
    assert MemorySink.last is not None
    assert MemorySink.last.orders == []  # nothing decided, nothing sent


@pytest.mark.slow
def test_a_restarted_session_never_sends_the_same_decision_twice(ledger_url: str) -> None:
    ledger = {"sinks": {"sql": {"url": ledger_url, "writer": "inline"}}}

    def session(name: str) -> None:
        replay(
            _bars(),
            host=test_host(Plugin()),
            run={
                "strategies": ["once"],
                "broker": "busy",
                "risk_filters": [],
                "session": name,
                "sinks": ["sql", "memory"],
            },
            **ledger,
        )

    session("acct-1")
    assert [e.status for e in MemorySink.last.events][:2] == ["submitted", "accepted"]
    sent = MemorySink.last.orders[0].client_order_id
    # The process restarts: same session, same decision.
    session("acct-1")
    sink = MemorySink.last
    assert sink.orders == []
    assert [(v.filter, v.outcome) for v in sink.verdicts] == [("duplicate", "deny")]
    assert sent in sink.verdicts[0].reason
    # A different session is not affected.
    session("acct-2")
    assert len(MemorySink.last.orders) == 1
    engine = open_engine(ledger_url)
    try:
        assert sent in Ledger(engine).client_ids("acct-1")
        assert sent not in Ledger(engine).client_ids("acct-2")
    finally:
        engine.dispose()


class Holding(PaperBroker):
    """A paper account that holds MSFT (its mark known) and IBM (no mark) at the start."""

    name = "holding"

    def positions(self) -> list[Position]:
        return [
            Position(
                symbol="MSFT",
                quantity=Decimal(3),
                avg_cost=Decimal(200),
                mark_price=Decimal("250.5"),
            ),
            Position(symbol="IBM", quantity=Decimal(2), avg_cost=Decimal(100)),
        ]


def test_held_symbols_are_priced_at_the_brokers_marks_until_their_own_bars() -> None:
    """Filters that value everything held (the exposure) have a price for each held
    symbol from the first bar of a run, or of a one-off order, on."""
    msft = bar("MSFT", 1, open=260.25)
    seen = _peek(
        [*_bars()[:1], msft, *_bars()[1:2]],
        Holding,
        lambda ctx: (ctx.last_price("MSFT"), ctx.last_price("IBM")),
    )
    # The broker's mark, then the bar's close once MSFT has a bar of its own.
    assert seen[0] == (Decimal("250.5"), None)
    assert seen[-1] == (Decimal("260.25"), None)
