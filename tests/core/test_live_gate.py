"""Decisions while the market is closed: denied, queued or sent outside regular hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from tradepipe import Decision
from tradepipe.clock import ManualClock
from tradepipe.executor import Executor
from tradepipe.live.gate import Gate
from tradepipe.pipeline import build_pipeline, open_run
from tradepipe.schedule import Maintenance, MarketSchedule
from tradepipe.testing import ListFeed, MemorySink, bar, settings, test_host

UTC = dt.UTC
SATURDAY = dt.datetime(2026, 3, 7, 15, tzinfo=UTC)
MONDAY_OPEN = dt.datetime(2026, 3, 9, 13, 30, tzinfo=UTC)


@pytest.fixture
def run() -> Iterator[tuple[Executor, ManualClock, MemorySink, dict[str, dt.datetime]]]:
    ListFeed.source = [bar("AAPL", SATURDAY - dt.timedelta(days=1), 100)]
    app = settings(
        run={"feed": "list", "sinks": ["memory"], "risk_filters": [], "when_closed": "deny"},
        brokers={"paper": {"symbols": ["AAPL"]}},
    )
    clock = ManualClock(SATURDAY)
    pipeline = build_pipeline(app, test_host(), clock=clock)
    with open_run(pipeline) as executor:
        executor.ctx.set_price("AAPL", 100.0)
        pipeline.broker.on_bar(ListFeed.source[0])
        sink = pipeline.sinks[0]
        assert isinstance(sink, MemorySink)
        yield executor, clock, sink, {"AAPL": SATURDAY - dt.timedelta(hours=20)}


def gate(executor: Executor, prices: dict[str, dt.datetime], when_closed: str, **kw: Any) -> Gate:
    app = settings(run={"when_closed": when_closed, **kw})
    schedule = MarketSchedule("XNYS", maintenance=Maintenance.parse("23:45-00:45"))
    made = Gate(
        executor,
        schedule,
        app.run,
        prices,
        stopping=lambda: "",
        max_quote_age=dt.timedelta(seconds=30),
    )
    executor.gate = made
    return made


def buy(**fields: Any) -> Decision:
    made = {"symbol": "AAPL", "action": "buy", "confidence": 90, "quantity": Decimal(5)}
    return Decision(**{**made, **fields})


def verdicts(sink: MemorySink) -> list[tuple[str, str, str]]:
    return [(v.filter, v.outcome.value, v.reason) for v in sink.verdicts]


def test_deny_records_the_decision_and_why(run: Any) -> None:
    executor, _clock, sink, prices = run
    gate(executor, prices, "deny")
    assert executor.handle("files", buy(id="d1")) is None
    assert [d.id for d in sink.decisions] == ["d1"]
    [(name, outcome, reason)] = verdicts(sink)
    assert (name, outcome) == ("market_closed", "deny")
    assert reason == 'market closed (weekend); [run] when_closed = "deny"'
    assert sink.verdicts[0].figures["next_open"] == MONDAY_OPEN
    assert not sink.orders


def test_queue_judges_the_decision_once_the_open_has_priced_it(run: Any) -> None:
    executor, clock, sink, prices = run
    g = gate(executor, prices, "queue")
    assert executor.handle("files", buy(id="q1")) is None
    assert verdicts(sink)[0][:2] == ("market_closed", "pass")
    assert "queued until it opens" in verdicts(sink)[0][2]
    assert g.release(SATURDAY + dt.timedelta(hours=1)) == []  # still the weekend
    clock.set(MONDAY_OPEN + dt.timedelta(seconds=5))
    assert g.release(clock.now()) == []  # open, but no price since the weekend yet
    prices["AAPL"] = MONDAY_OPEN + dt.timedelta(seconds=5)
    [(strategy, decision)] = g.release(clock.now())
    assert (strategy, decision.id) == ("files", "q1") and not g.queued
    order = executor.judge(strategy, decision, clock.now())
    assert order is not None and order.status.value == "accepted"
    assert [d.id for d in sink.decisions] == ["q1"]  # recorded once


def test_queue_refuses_what_expires_before_the_open_and_expires_what_waited_too_long(
    run: Any,
) -> None:
    executor, clock, sink, prices = run
    g = gate(executor, prices, "queue", queue_max_age_seconds=3600)
    executor.handle("files", buy(id="soon", expires_at=SATURDAY + dt.timedelta(hours=2)))
    assert verdicts(sink)[0][1] == "deny" and "before the next open" in verdicts(sink)[0][2]
    executor.handle("files", buy(id="old"))
    clock.set(MONDAY_OPEN + dt.timedelta(minutes=1))
    prices["AAPL"] = clock.now()
    assert g.release(clock.now()) == []
    name, outcome, reason = verdicts(sink)[-1]
    assert (name, outcome) == ("expired", "deny") and "queue_max_age_seconds" in reason
    assert not g.queued


def test_a_queued_decision_never_priced_in_its_session_expires_at_its_close(run: Any) -> None:
    executor, clock, sink, prices = run
    g = gate(executor, prices, "queue")
    executor.handle("files", buy(id="unpriced"))
    clock.set(MONDAY_OPEN + dt.timedelta(hours=7))  # after Monday's close, no AAPL price
    assert g.release(dt.datetime(2026, 3, 10, 13, 31, tzinfo=UTC)) == []
    name, outcome, reason = verdicts(sink)[-1]
    assert (name, outcome) == ("expired", "deny")
    assert "closed at 2026-03-09T20:00:00+00:00 without a price for AAPL" in reason


def test_outside_rth_sends_at_once_marked_so(run: Any) -> None:
    executor, clock, sink, prices = run
    gate(executor, prices, "outside_rth")
    prices["AAPL"] = clock.now()  # a quote in extended hours
    order = executor.handle("files", buy(id="x1"))
    assert order is not None and order.intent.outside_rth
    assert verdicts(sink)[0][:2] == ("market_closed", "pass")


def test_nothing_goes_out_in_the_brokers_maintenance_window(run: Any) -> None:
    executor, clock, sink, prices = run
    gate(executor, prices, "outside_rth")
    clock.set(dt.datetime(2026, 3, 10, 4, 0, tzinfo=UTC))  # Tuesday 00:00 New York
    assert executor.handle("files", buy(id="m1")) is None
    name, outcome, reason = verdicts(sink)[0]
    assert (name, outcome) == ("market_closed", "deny") and "maintenance" in reason


def test_open_market_passes_and_a_stopping_run_sends_nothing(run: Any) -> None:
    executor, clock, sink, prices = run
    g = gate(executor, prices, "deny")
    clock.set(MONDAY_OPEN + dt.timedelta(minutes=5))
    prices["AAPL"] = clock.now()
    assert executor.handle("files", buy(id="o1")) is not None
    g._stopping = lambda: "SIGTERM received"
    assert executor.handle("files", buy(id="o2")) is None
    assert verdicts(sink)[-1] == (
        "stopping",
        "deny",
        "the run is stopping (SIGTERM received): no new orders",
    )


def test_a_stop_denies_what_was_queued(run: Any) -> None:
    executor, _clock, sink, prices = run
    g = gate(executor, prices, "queue")
    executor.handle("files", buy(id="q2"))
    g.drop_queue("the run stopped (SIGTERM) while it waited for the market to open")
    assert verdicts(sink)[-1][:2] == ("stopping", "deny") and not g.queued


def test_a_stale_price_or_none_is_never_used_to_size_an_order(run: Any) -> None:
    executor, clock, sink, prices = run
    gate(executor, prices, "deny")
    clock.set(MONDAY_OPEN + dt.timedelta(minutes=5))
    prices["AAPL"] = clock.now() - dt.timedelta(seconds=95)
    assert executor.handle("files", buy(id="s1")) is None
    name, outcome, reason = verdicts(sink)[-1]
    assert (name, outcome) == ("stale_price", "deny")
    assert reason == (
        "stale price: the last AAPL price is from 2026-03-09T13:33:25+00:00, 95 s old "
        "(at most 30 s, [run] max_quote_age_seconds)"
    )
    assert sink.verdicts[-1].figures["age_seconds"] == 95
    assert executor.handle("files", buy(id="s2", symbol="MSFT")) is None
    assert verdicts(sink)[-1][2] == "no price for MSFT yet: nothing is sized or priced without one"
    prices["AAPL"] = clock.now() - dt.timedelta(seconds=29)
    assert executor.handle("files", buy(id="s3")) is not None  # fresh enough
    assert [o.intent.decision_id for o in sink.orders] == ["s3"]


def test_an_option_is_priced_by_its_underlying() -> None:
    from tradepipe.live.gate import market_symbol

    option = Decision.model_validate(
        {
            "symbol": "AAPL  261218C00200000",
            "action": "buy",
            "confidence": 80,
            "quantity": 1,
            "instrument": {
                "kind": "option",
                "underlying": "AAPL",
                "right": "C",
                "strike": 200,
                "expiry": "2026-12-18",
            },
        }
    )
    assert market_symbol(option) == "AAPL"
