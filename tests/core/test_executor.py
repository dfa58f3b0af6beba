"""The executor: decisions through sizing, risk filters and the broker, every record kept."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from tradepipe import (
    Action,
    Bar,
    BrokerRejectedError,
    BrokerStatus,
    BrokerUnavailableError,
    Check,
    Combo,
    ConfigError,
    Decision,
    Leg,
    Option,
    OrderIntent,
    RiskFilter,
    Strategy,
    StrategyContext,
    StrategyError,
    hookimpl,
)
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.testing import MemorySink, bar, bars_from_closes, replay, test_host


class Scripted(Strategy):
    """Emits the decisions listed for each bar index in ``Scripted.script``."""

    name = "scripted"
    script: ClassVar[dict[int, Any]] = {}
    fills: ClassVar[list[Any]] = []

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.n = -1

    def decide(self, bar: Bar, ctx: StrategyContext) -> Any:
        self.n += 1
        item = type(self).script.get(self.n)
        if callable(item):
            return item(self, bar, ctx)
        return item

    def on_fill(self, fill: Any, ctx: StrategyContext) -> None:
        type(self).fills.append(fill)


def buy(qty: int | Decimal = 10, **kw: Any) -> Any:
    def make(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> Decision:
        fields = {"symbol": bar.symbol, "action": Action.BUY, "confidence": 90, "quantity": qty}
        fields.update(kw)
        return strategy.decision(ctx, **fields)

    return make


class Deny(RiskFilter):
    name = "deny_all"

    def check(self, intent: OrderIntent, decision: Decision, ctx: Any) -> Check:
        return self.deny("nothing today", tried=intent.quantity)


class Explode(RiskFilter):
    name = "explode"

    def check(self, intent: OrderIntent, decision: Decision, ctx: Any) -> Check:
        raise ZeroDivisionError("bug in a filter")


class Halve(RiskFilter):
    name = "halve"

    def check(self, intent: OrderIntent, decision: Decision, ctx: Any) -> Check:
        return self.reduce(intent.quantity / 2, "half is enough")


class Counter(RiskFilter):
    name = "counter"
    calls = 0

    def check(self, intent: OrderIntent, decision: Decision, ctx: Any) -> Check:
        type(self).calls += 1
        return self.allow()


class Flaky(PaperBroker):
    """A paper broker whose sends fail in a chosen way."""

    name = "flaky"
    requires_durable_intents = True
    mode = "timeout"
    sent: ClassVar[list[str]] = []
    flushes_at_send: ClassVar[list[int]] = []

    def place(self, intent: OrderIntent) -> Any:
        type(self).sent.append(intent.client_order_id)
        type(self).flushes_at_send.append(MemorySink.last.flushes if MemorySink.last else -1)
        if self.mode == "timeout":
            raise BrokerUnavailableError("read timed out after sending")
        if self.mode == "lost_reply":
            super().place(intent)  # it arrived; the answer did not
            raise BrokerUnavailableError("connection dropped before the reply")
        if self.mode == "reject":
            raise BrokerRejectedError("price outside the allowed band")
        return super().place(intent)


class Live(PaperBroker):
    name = "live_like"
    disconnected = False

    def status(self) -> BrokerStatus:
        return super().status().model_copy(update={"is_paper": False, "account_id": "U1234567"})

    def disconnect(self) -> None:
        type(self).disconnected = True
        super().disconnect()


class TestPlugin:
    __name__ = "executor_tests"

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(Scripted)

    @hookimpl
    def tradepipe_register_risk_filters(self, register: Any) -> None:
        for cls in (Deny, Explode, Halve, Counter):
            register(cls)

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(Flaky)
        register(Live)
        register(Blind)


@pytest.fixture(autouse=True)
def _reset() -> None:
    Scripted.script = {}
    Scripted.fills = []
    Counter.calls = 0
    Flaky.sent = []
    Flaky.flushes_at_send = []


def run(script: dict[int, Any], bars: list[Bar] | None = None, **tables: Any) -> Any:
    Scripted.script = script
    run_table = {"strategies": ["scripted"], **tables.pop("run", {})}
    return replay(
        bars or [bar("AAPL", day, open=100 + day, close=100 + day) for day in range(5)],
        host=test_host(TestPlugin()),
        run=run_table,
        **tables,
    )


def test_a_decision_travels_to_a_fill_with_every_record_linked() -> None:
    _, result, _summary = run({0: buy(10)})
    sink = MemorySink.last
    assert sink is not None
    decision = sink.decisions[0]
    assert decision.source == "scripted" and decision.id.startswith("d-")
    assert [v.filter for v in sink.verdicts] == [
        "min_confidence",
        "max_position_value",
        "max_risk_per_trade",
        "buying_power",
    ]
    assert all(v.outcome == "pass" and v.decision_id == decision.id for v in sink.verdicts)
    order = sink.orders[0]
    assert order.intent.decision_id == decision.id
    assert [e.status for e in sink.events] == ["submitted", "accepted", "filled"]
    assert [e.seq for e in sink.events] == [1, 2, 3]
    fill = sink.fills[0]
    assert (fill.client_order_id, fill.decision_id) == (order.client_order_id, decision.id)
    # Decided on bar 0 (close 100), filled at the open of bar 1.
    assert fill.price == Decimal("101") and fill.quantity == 10
    assert Scripted.fills == [fill]
    assert (result.decisions, result.orders, result.fills) == (1, 1, 1)
    assert sink.closed == (5, "completed")
    positions, account = sink.snapshots[-1]
    assert [(p.symbol, p.quantity) for p in positions] == [("AAPL", Decimal(10))]
    assert account.cash == Decimal(100_000) - Decimal(1010) - Decimal("1.00")  # 1.00 commission


def test_ctrl_c_just_after_an_order_is_recorded_leaves_its_history_saying_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every recorded order has a history, even when Ctrl-C lands between the order
    and its first status: it never went to the broker, and says so."""
    recorded = MemorySink.record_order

    def then_interrupted(self: MemorySink, order: Any) -> None:
        recorded(self, order)
        raise KeyboardInterrupt

    monkeypatch.setattr(MemorySink, "record_order", then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run({0: buy(10)})
    sink = MemorySink.last
    assert sink is not None
    [order] = sink.orders
    assert [(e.client_order_id, e.status) for e in sink.events] == [
        (order.client_order_id, "denied")
    ]
    assert sink.events[0].reason == "not sent: the run was interrupted"
    assert sink.fills == [] and Scripted.fills == []


def test_first_denial_stops_and_nothing_reaches_the_broker() -> None:
    run({0: buy(10)}, run={"risk_filters": ["min_confidence", "deny_all", "counter"]})
    sink = MemorySink.last
    assert [(v.filter, v.outcome) for v in sink.verdicts] == [
        ("min_confidence", "pass"),
        ("deny_all", "deny"),
    ]
    assert sink.verdicts[1].figures == {"tried": Decimal(10)}
    assert Counter.calls == 0
    assert [e.status for e in sink.events] == ["denied"]
    assert "deny_all: nothing today" in sink.events[0].reason
    assert sink.fills == []


def test_a_filter_that_raises_denies_the_order() -> None:
    run({0: buy(10)}, run={"risk_filters": ["explode", "counter"]})
    sink = MemorySink.last
    assert sink.verdicts[0].outcome == "deny"
    assert "ZeroDivisionError: bug in a filter" in sink.verdicts[0].reason
    assert [e.status for e in sink.events] == ["denied"]
    assert Counter.calls == 0


def test_a_judgment_cut_short_by_ctrl_c_keeps_what_the_filters_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Interrupted half way through the filters, the verdicts given so far are on
    record (each is recorded before the next filter looks), and there is no order."""

    def interrupted(self: Any, intent: OrderIntent, decision: Decision, ctx: Any) -> Check:
        raise KeyboardInterrupt

    monkeypatch.setattr(Counter, "check", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run({0: buy(10)}, run={"risk_filters": ["halve", "counter"]})
    sink = MemorySink.last
    assert sink is not None
    assert [(v.filter, v.outcome) for v in sink.verdicts] == [("halve", "reduce")]
    assert sink.orders == [] and sink.events == []


def test_a_reduction_changes_the_order_quantity() -> None:
    run({0: buy(10)}, run={"risk_filters": ["halve", "counter"]})
    sink = MemorySink.last
    halve = sink.verdicts[0]
    assert (halve.outcome, halve.quantity_before, halve.quantity_after) == ("reduce", 10, 5)
    assert sink.orders[0].intent.quantity == 5
    assert sink.fills[0].quantity == 5


def test_low_confidence_is_denied_by_default() -> None:
    run({0: buy(10, confidence=50)})
    sink = MemorySink.last
    assert sink.verdicts[0].outcome == "deny"
    assert sink.verdicts[0].reason == "confidence 50 is below 70"


def test_hold_is_recorded_but_not_ordered_and_close_when_flat_is_explained() -> None:
    def hold(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> Decision:
        return strategy.decision(ctx, symbol="AAPL", action=Action.HOLD, confidence=99)

    def close(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> Decision:
        return strategy.decision(ctx, symbol="AAPL", action=Action.CLOSE, confidence=99)

    run({0: hold, 1: close})
    sink = MemorySink.last
    assert [d.action for d in sink.decisions] == ["hold", "close"]
    assert sink.orders == []
    assert [(v.filter, v.outcome) for v in sink.verdicts] == [("sizing", "deny")]
    assert "nothing to close" in sink.verdicts[0].reason


def test_the_same_decision_twice_is_denied_as_duplicate() -> None:
    fixed = buy(10, id="d-fixed")
    run({0: fixed, 1: fixed})
    sink = MemorySink.last
    assert len(sink.orders) == 1
    assert sink.verdicts[-1].filter == "duplicate"
    assert sink.verdicts[-1].outcome == "deny"


def test_part_of_a_share_is_denied_by_the_order_rules_unless_fractional_is_on() -> None:
    run({0: buy(Decimal("0.0000001")), 1: buy(Decimal("2.5"))})
    sink = MemorySink.last
    assert sink.orders == [] and sink.fills == []
    assert [(v.filter, v.outcome, v.quantity_before) for v in sink.verdicts] == [
        ("order_rules", "deny", Decimal("0.0000001")),
        ("order_rules", "deny", Decimal("2.5")),
    ]
    assert "0.0000001 is not a whole number of shares" in sink.verdicts[0].reason

    run({0: buy(Decimal("2.5")), 1: buy(Decimal("0.00001"))}, sizing={"fractional": True})
    sink = MemorySink.last
    assert [f.quantity for f in sink.fills] == [Decimal("2.5")]
    assert [(v.filter, v.reason) for v in sink.verdicts if v.outcome == "deny"] == [
        ("order_rules", "quantity 0.00001: fractional shares trade in steps of 0.0001")
    ]


def _option(expiry: dt.date, strike: int = 100) -> Option:
    return Option(underlying="AAPL", expiry=expiry, strike=Decimal(strike), right="C")


def test_option_expiries_are_judged_by_the_runs_clock_not_the_wall() -> None:
    # A replay of March 2019: its options are judged as of then.
    days = [dt.datetime(2019, 3, 4, 15, tzinfo=dt.UTC) + dt.timedelta(days=i) for i in range(4)]
    live = _option(dt.date(2019, 3, 15))
    spread = Combo(
        legs=(
            Leg(instrument=live, ratio=1),
            Leg(instrument=_option(dt.date(9999, 12, 31), 110), ratio=-1),
        )
    )

    def trade(instrument: Option | Combo) -> Any:
        return buy(1, symbol=instrument.ticker, instrument=instrument, order_type="limit",
                   limit_price=Decimal(2))  # fmt: skip

    run(
        {
            0: trade(live),
            1: trade(_option(dt.date(2019, 3, 1))),
            2: trade(_option(dt.date(2022, 7, 15))),
            3: trade(spread),
        },
        [bar("AAPL", ts, open=100, close=100) for ts in days],
        run={"risk_filters": []},
    )
    sink = MemorySink.last
    assert [o.intent.instrument for o in sink.orders] == [live]  # sent; the rest never were
    reasons = [v.reason for v in sink.verdicts if v.filter == "order_rules"]
    assert reasons == [
        "option AAPL 2019-03-01 100 C expired on 2019-03-01 (the run's date is 2019-03-05)",
        "option AAPL 2022-07-15 100 C expires on 2022-07-15, more than 39 months after "
        "2019-03-06 (the run's date); no option is listed that far out",
        "option AAPL 9999-12-31 110 C expires on 9999-12-31, more than 39 months after "
        "2019-03-07 (the run's date); no option is listed that far out",
    ]


def test_raising_strategy_is_skipped_unless_settings_say_stop() -> None:
    def boom(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> None:
        raise KeyError("missing indicator")

    _, result, _summary = run({0: boom, 1: buy(10)})
    assert result.strategy_errors == 1
    assert result.fills == 1
    assert MemorySink.last.closed == (5, "completed")

    with pytest.raises(StrategyError, match="strategy 'scripted' failed: KeyError"):
        run({0: boom}, run={"on_strategy_error": "stop"})
    assert MemorySink.last.closed == (0, "failed")


def test_invalid_decisions_are_rejected_with_the_field_named() -> None:
    def bad_dict(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> dict[str, Any]:
        return {"symbol": "AAPL", "action": "buy", "confidence": 150}

    def bad_model(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> Decision:
        return strategy.decision(ctx, symbol="AAPL", action="moon", confidence=90)

    _, result, _ = run({0: bad_dict, 1: bad_model})
    sink = MemorySink.last
    assert [r[1] for r in sink.rejected] == ["scripted", "scripted"]
    assert "confidence" in sink.rejected[0][2]
    assert sink.rejected[0][0]["confidence"] == 150
    assert "action" in sink.rejected[1][2]
    assert sink.orders == [] and result.decisions == 0


def test_observers_see_every_record_in_order() -> None:
    seen: list[str] = []

    class Observer:
        __name__ = "observer"

        @hookimpl
        def tradepipe_run_started(self, run: Any) -> None:
            seen.append("started")

        @hookimpl
        def tradepipe_decision_made(self, decision: Decision) -> None:
            seen.append(f"decision:{decision.action}")

        @hookimpl
        def tradepipe_risk_verdict(self, verdict: Any) -> None:
            seen.append(f"verdict:{verdict.filter}")

        @hookimpl
        def tradepipe_order_event(self, order: Any, event: Any) -> None:
            seen.append(event.name)

        @hookimpl
        def tradepipe_order_filled(self, fill: Any) -> None:
            seen.append("fill")

        @hookimpl
        def tradepipe_run_finished(self, run: Any, status: str, summary: Any) -> None:
            seen.append(f"finished:{status}")

    Scripted.script = {0: buy(10)}
    replay(
        [bar("AAPL", d) for d in range(3)],
        host=test_host(TestPlugin(), Observer()),
        run={"strategies": ["scripted"], "risk_filters": ["min_confidence"]},
    )
    assert seen == [
        "started",
        "decision:buy",
        "verdict:min_confidence",
        "OrderSubmitted",
        "OrderAccepted",
        "fill",
        "OrderFilled",
        "finished:completed",
    ]


@pytest.mark.parametrize(
    ("level", "replay_events", "logged"),
    [
        (logging.INFO, True, True),
        (logging.INFO, False, False),  # the default: a replay's records are in its ledger
        (logging.WARNING, True, False),
    ],
)
def test_every_record_reaches_the_sink_and_the_event_log_when_it_is_asked_for(
    level: int, replay_events: bool, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # With one sink and nothing else listening, records go to the sink's methods
    # directly; with the event log on, they go through the recorder, which logs them.
    caplog.set_level(level, logger="tradepipe.events")
    run({0: buy(10, confidence=50), 1: buy(10)}, logging={"replay_events": replay_events})
    sink = MemorySink.last
    assert sink is not None
    assert len(sink.decisions) == 2
    assert sink.verdicts[0].outcome == "deny"
    assert sink.events[0].status == "denied"  # recorded as an order, never sent
    assert len(sink.orders) == 2 and len(sink.fills) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "tradepipe.events"]
    events = [line.split()[0] for line in lines]
    if logged:
        assert events[:2] == ["DecisionMade", "RiskVerdict"]
        assert {"OrderDenied", "OrderSubmitted", "Fill", "OrderFilled"} <= set(events)
    else:
        assert not any(e in {"DecisionMade", "RiskVerdict", "Fill"} for e in events)


def test_ambiguous_send_that_never_arrived_is_settled_as_rejected_not_resent() -> None:
    Flaky.mode = "timeout"
    run({0: buy(10)}, run={"broker": "flaky"})
    sink = MemorySink.last
    assert [e.status for e in sink.events] == ["submitted", "unknown", "rejected"]
    assert "timed out" in sink.events[1].reason
    assert sink.events[2].reason == "never reached the broker: the broker has no such order"
    assert len(Flaky.sent) == 1
    assert sink.fills == []
    # The intent was made durable before the broker saw it.
    assert Flaky.flushes_at_send == [1]


def test_an_unknown_order_is_rejected_only_after_the_brokers_visibility_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broker that may take two days (of bar time, here) to list an order it took.
    monkeypatch.setattr(Flaky, "order_visibility_seconds", 2 * 86_400.0)
    monkeypatch.setattr(Flaky, "mode", "timeout")
    run({0: buy(10)}, run={"broker": "flaky"})
    sink = MemorySink.last
    unknown, rejected = sink.events[1], sink.events[2]
    assert (unknown.status, rejected.status) == ("unknown", "rejected")
    # Decided on day 0; left unknown on day 1, rejected on day 2: no earlier.
    assert (rejected.ts - unknown.ts).days == 2
    assert "172800 s after the send" in rejected.reason
    assert len(Flaky.sent) == 1


def test_ambiguous_send_that_arrived_is_settled_and_fills_once() -> None:
    Flaky.mode = "lost_reply"
    run({0: buy(10)}, run={"broker": "flaky"})
    sink = MemorySink.last
    # The fill on the next bar settles it before the broker needs asking.
    assert [e.status for e in sink.events] == ["submitted", "unknown", "filled"]
    assert len(Flaky.sent) == 1
    assert len(sink.fills) == 1 and sink.fills[0].quantity == 10


def test_broker_rejection_is_recorded_as_rejected() -> None:
    Flaky.mode = "reject"
    run({0: buy(10)}, run={"broker": "flaky"})
    assert [e.status for e in MemorySink.last.events] == ["submitted", "rejected"]
    assert MemorySink.last.events[-1].reason == "price outside the allowed band"


def test_paper_rejection_reaches_the_ledger_with_its_reason() -> None:
    run({0: buy(10_000)}, run={"risk_filters": []})
    sink = MemorySink.last
    assert [e.status for e in sink.events] == ["submitted", "rejected"]
    assert "insufficient buying power" in sink.events[-1].reason


def test_live_account_is_refused_without_opt_in() -> None:
    Live.disconnected = False
    with pytest.raises(ConfigError, match=r"live account \(U\*\*\*4567\)"):
        run({0: buy(1)}, run={"broker": "live_like"})
    assert Live.disconnected
    _, result, _ = run({0: buy(1)}, run={"broker": "live_like", "allow_live": True})
    assert result.fills == 1


@pytest.mark.slow
def test_client_order_ids_repeat_only_within_a_session() -> None:
    closes = [100, 101, 102]
    fixed = {0: buy(5, id="d-same")}
    run(fixed, bars_from_closes(closes))
    first = MemorySink.last.orders[0].client_order_id
    run(fixed, bars_from_closes(closes))
    assert MemorySink.last.orders[0].client_order_id != first  # a new run, a new namespace
    run(fixed, bars_from_closes(closes), run={"session": "acct-1"})
    session_id = MemorySink.last.orders[0].client_order_id
    run(fixed, bars_from_closes(closes), run={"session": "acct-1"})
    assert MemorySink.last.orders[0].client_order_id == session_id


def test_trusted_decision_is_the_same_decision_as_a_validated_one() -> None:
    from tradepipe.clock import ManualClock
    from tradepipe.testing import T0

    class Ctx:
        def now(self) -> Any:
            return T0

    strategy = Scripted()
    fields = {
        "symbol": "AAPL",
        "action": Action.BUY,
        "confidence": 90.0,
        "quantity": Decimal(10),
        "rationale": "r",
    }
    fast = strategy.trusted_decision(Ctx(), **fields)
    checked = strategy.decision(Ctx(), **fields)
    assert fast == checked
    assert fast.id == checked.id and fast.id.startswith("d-")
    assert fast.model_dump() == checked.model_dump()
    assert ManualClock(T0).now() == fast.created_at
    # Fields given in another order, or others: the same decision, each its own record.
    again = strategy.trusted_decision(Ctx(), **dict(reversed(fields.items())))
    assert again == checked and again is not fast
    sell = strategy.trusted_decision(Ctx(), symbol="AAPL", action=Action.SELL, confidence=80.0)
    assert sell.action is Action.SELL and sell.quantity is None
    with pytest.raises(ValueError, match="quantiy"):
        strategy.trusted_decision(Ctx(), symbol="AAPL", action=Action.BUY, quantiy=Decimal(1))
    with pytest.raises(ValueError, match="required field confidence"):
        strategy.trusted_decision(Ctx(), symbol="AAPL", action=Action.BUY)


def test_a_run_restores_the_garbage_collector_even_when_it_fails() -> None:
    import gc

    before = gc.get_threshold()

    def boom(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> None:
        raise KeyError("boom")

    with pytest.raises(StrategyError):
        run({0: boom}, run={"on_strategy_error": "stop"})
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_an_expired_decision_is_refused_before_sizing() -> None:
    import datetime as dt

    def stale(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> Decision:
        return strategy.decision(
            ctx,
            symbol="AAPL",
            action=Action.BUY,
            confidence=90,
            quantity=1,
            created_at=bar.ts - dt.timedelta(days=2),
            expires_at=bar.ts - dt.timedelta(days=1),
        )

    run({0: stale})
    sink = MemorySink.last
    assert [(v.filter, v.outcome) for v in sink.verdicts] == [("expired", "deny")]
    assert sink.orders == []


def test_two_orders_in_flight_cannot_together_break_the_position_cap() -> None:
    # Two strategies' worth of buys on one bar, each alone within the 10,000 cap.
    both = [buy(60, id="d-one"), buy(60, id="d-two")]

    def two(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> list[Decision]:
        return [make(strategy, bar, ctx) for make in both]

    run({0: two}, [bar("AAPL", d, open=100, close=100) for d in range(3)])
    sink = MemorySink.last
    positions, _account = sink.snapshots[-1]
    assert positions[0].quantity == 100  # 60, then 40 more: worth 10,000
    reduced = [v for v in sink.verdicts if v.outcome == "reduce"]
    assert [(v.filter, v.quantity_after) for v in reduced] == [("max_position_value", 40)]


def test_a_filter_answering_nonsense_denies() -> None:
    class Nonsense(RiskFilter):
        name = "nonsense"

        def check(self, intent: OrderIntent, decision: Decision, ctx: Any) -> Any:
            return ("maybe", "who knows", None, {})

    class Plugin:
        __name__ = "nonsense_plugin"

        @hookimpl
        def tradepipe_register_risk_filters(self, register: Any) -> None:
            register(Nonsense)

    Scripted.script = {0: buy(10)}
    replay(
        [bar("AAPL", d) for d in range(3)],
        host=test_host(TestPlugin(), Plugin()),
        run={"strategies": ["scripted"], "risk_filters": ["nonsense"]},
    )
    sink = MemorySink.last
    assert sink.verdicts[0].outcome == "deny"
    assert "filter failed: ValueError" in sink.verdicts[0].reason
    assert [e.status for e in sink.events] == ["denied"]


def test_a_strategy_fill_callback_failure_loses_no_fill() -> None:
    class Grumpy(Scripted):
        name = "grumpy"

        def on_fill(self, fill: Any, ctx: StrategyContext) -> None:
            raise RuntimeError("cannot cope")

    class Plugin:
        __name__ = "grumpy_plugin"

        @hookimpl
        def tradepipe_register_strategies(self, register: Any) -> None:
            register(Grumpy)

    makers = [buy(5, id="d-a"), buy(7, id="d-b")]
    Grumpy.script = {0: lambda s, b, c: [make(s, b, c) for make in makers]}
    with pytest.raises(StrategyError, match="cannot cope"):
        replay(
            [bar("AAPL", d) for d in range(3)],
            host=test_host(TestPlugin(), Plugin()),
            run={"strategies": ["grumpy"], "on_strategy_error": "stop"},
        )
    sink = MemorySink.last
    assert sorted(f.quantity for f in sink.fills) == [5, 7]  # both recorded
    positions, _account = sink.snapshots[-1]
    assert positions[0].quantity == 12


def test_decision_with_its_own_id_still_gets_source_and_time() -> None:
    def own_id(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> Decision:
        return Decision(id="ext-42", symbol="AAPL", action="buy", confidence=90, quantity=1)

    run({0: own_id})
    [decision] = MemorySink.last.decisions
    assert (decision.id, decision.source) == ("ext-42", "scripted")
    assert decision.created_at is not None
    assert len(Scripted.fills) == 1  # the fill reached the strategy that asked


@pytest.mark.parametrize("junk", [1, "buy", [None]])
def test_junk_from_decide_is_rejected_not_fatal(junk: Any) -> None:
    _, result, _ = run({0: lambda s, b, c: junk, 1: buy(3)})
    assert MemorySink.last.rejected and "expected a Decision" in MemorySink.last.rejected[0][2]
    assert result.fills == 1


def test_observers_hear_about_failed_runs() -> None:
    statuses: list[str] = []

    class Observer:
        __name__ = "end_observer"

        @hookimpl
        def tradepipe_run_finished(self, run: Any, status: str, summary: Any) -> None:
            statuses.append(status)

    def boom(strategy: Strategy, bar: Bar, ctx: StrategyContext) -> None:
        raise KeyError("boom")

    Scripted.script = {0: boom}
    with pytest.raises(StrategyError):
        replay(
            [bar("AAPL", d) for d in range(2)],
            host=test_host(TestPlugin(), Observer()),
            run={"strategies": ["scripted"], "on_strategy_error": "stop"},
        )
    assert statuses == ["failed"]


class Blind(PaperBroker):
    """A paper broker that cannot report the account for its 2nd and 3rd asking."""

    name = "blind"
    calls = 0

    def account(self) -> Any:
        type(self).calls += 1
        if type(self).calls in (2, 3):
            raise BrokerUnavailableError("account summary timed out")
        return super().account()


def test_a_snapshot_closes_every_day_of_the_replay() -> None:
    _, result, _ = run({0: buy(10)})
    sink = MemorySink.last
    assert sink is not None
    # Five days: the closes of the first four, then the run's own snapshot.
    assert [account.ts.day for _positions, account in sink.snapshots] == [2, 3, 4, 5, 6]
    equity = [account.equity for _positions, account in sink.snapshots]
    # 10 shares bought at the open of day 1, 101 (1.00 commission); each close is 1 higher.
    assert equity == [Decimal(100_000), *(Decimal(99_999 + 10 * k) for k in range(4))]
    assert result.bars == 5


def test_daily_snapshots_off_leave_only_the_final_one() -> None:
    run({}, run={"daily_snapshots": False})
    assert MemorySink.last is not None and len(MemorySink.last.snapshots) == 1


def test_a_failed_daily_snapshot_is_logged_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Blind.calls = 0
    _, result, _ = run({}, run={"broker": "blind"})
    assert result.bars == 5 and result.status == "completed"
    sink = MemorySink.last
    assert sink is not None
    # Days 1 and 2 could not be snapshotted; days 3 and 4 and the end were.
    assert [account.ts.day for _positions, account in sink.snapshots] == [4, 5, 6]
    assert "could not snapshot the account at the day's end" in caplog.text
