"""Options documents in a run: legs chosen from the broker's chain when a bar of the underlying
releases them, priced from it, filled by the paper simulator; unhappy paths recorded, never sent."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import respx
from freezegun import freeze_time
from source_helpers import Ctx, SteppedFeed, SteppedPlugin
from tradepipe import Bar, Decision, OrderIntent, RejectedDecision, hookimpl
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.clock import ManualClock
from tradepipe.errors import BrokerUnavailableError
from tradepipe.instruments import Combo, Option
from tradepipe.options.chain import OptionQuote
from tradepipe.orders import OrderStatus
from tradepipe.pipeline import Pipeline, build_pipeline, run_pipeline
from tradepipe.risk import Outcome
from tradepipe.strategies.decision_stdin import DecisionStdin
from tradepipe.testing import T0, MemorySink, bar, replay, settings, test_host

D = Decimal
CONDOR = {
    "symbol": "SPY",
    "action": "buy",
    "confidence": 90,
    "quantity": 2,
    "options": {"strategy": "iron_condor", "dte": 30, "delta": 0.2, "width": 10},
}
BUY_SPY = {"id": "stock-1", "symbol": "SPY", "action": "buy", "confidence": 90, "quantity": 5}
#: T0 is Monday 2 March 2026; 30 days on is Wednesday 1 April, and the paper
#: chain lists Friday 3 April (a weekly) as the nearest expiry.
EXPIRY_30 = dt.date(2026, 4, 3)


class ChainDown(PaperBroker):
    """The paper simulator behind a gateway that does not answer chain requests."""

    name = "paper_chain_down"
    placed: ClassVar[list[OrderIntent]] = []

    def option_chain(self, underlying: str, expiry: dt.date | None = None) -> list[OptionQuote]:
        raise BrokerUnavailableError("the gateway did not answer", broker=self.name)

    def place(self, intent: OrderIntent) -> Any:
        type(self).placed.append(intent)
        return super().place(intent)


class ChainDownPlugin:
    __name__ = "chain_down"

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(ChainDown)


def spy(days: int, start: dt.datetime = T0, price: float = 600.0) -> list[Bar]:
    return [bar("SPY", start + dt.timedelta(days=d), open=price) for d in range(days)]


def drop(folder: Path, *documents: dict[str, Any], name: str = "d.jsonl") -> None:
    (folder / name).write_text("".join(json.dumps(d) + "\n" for d in documents))


def run(
    tmp_path: Path,
    bars: list[Bar],
    before: dict[int, Any] | None = None,
    *,
    broker: str = "paper",
    sql: bool = False,
    session: str = "",
) -> tuple[Pipeline, MemorySink]:
    """One run of ``decision_files`` over ``bars``, valuing orders with ``max_exposure``."""
    SteppedFeed.source = bars
    SteppedFeed.before = before or {}
    app = settings(
        run={
            "feed": "stepped",
            "broker": broker,
            "strategies": ["decision_files"],
            # max_exposure denies an order it cannot value: the chain's price must be there.
            "risk_filters": ["min_confidence", "max_exposure"],
            "sinks": ["memory", "sql"] if sql else ["memory"],
            "session": session,
        },
        strategies={"decision_files": {"path": str(tmp_path / "inbox"), "scan_seconds": 0}},
        sinks={"sql": {"path": str(tmp_path / "ledger.db"), "writer": "inline"}},
    )
    host = test_host(SteppedPlugin(), ChainDownPlugin())
    pipeline = build_pipeline(app, host, clock=ManualClock(bars[0].ts))
    run_pipeline(pipeline)
    assert MemorySink.last is not None
    return pipeline, MemorySink.last


def paper_chain(at: Bar, expiry: dt.date) -> list[OptionQuote]:
    """The chain a fresh paper simulator lists at bar ``at``."""
    broker = PaperBroker()
    broker.clock = ManualClock(at.ts)
    broker.connect()
    broker.on_bar(at)
    return broker.option_chain(at.symbol, expiry)


def nearest(chain: list[OptionQuote], right: str, delta: float) -> Decimal:
    listed = [q for q in chain if q.option.right == right and q.delta is not None]
    return min(listed, key=lambda q: abs(q.delta - delta)).option.strike  # type: ignore[operator]


def legs(instrument: Any) -> set[tuple[str, Decimal, int]]:
    return {(leg.instrument.right, leg.instrument.strike, leg.ratio) for leg in instrument.legs}


def chain_price(chain: list[OptionQuote], combo: Combo) -> Decimal:
    prices = {q.option.ticker: q.price for q in chain}
    total = D(0)
    for leg in combo.legs:
        assert isinstance(leg.instrument, Option)
        price = prices[leg.instrument.ticker]
        assert price is not None
        total += price * leg.ratio
    return total


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.mark.slow
def test_an_iron_condor_by_dte_and_delta_is_chosen_from_the_chain_and_filled(
    tmp_path: Path, inbox: Path
) -> None:
    drop(inbox, CONDOR | {"id": "ic-1"})
    bars = spy(3)
    _pipeline, memory = run(tmp_path, bars)
    assert memory.rejected == []
    [decision] = memory.decisions
    [order] = memory.orders
    assert order.status is OrderStatus.FILLED
    combo = order.intent.instrument
    assert isinstance(combo, Combo)
    assert {leg.instrument.expiry for leg in combo.legs} == {EXPIRY_30}  # type: ignore[union-attr]
    chain = paper_chain(bars[0], EXPIRY_30)
    put, call = nearest(chain, "P", -0.2), nearest(chain, "C", 0.2)
    # The condor (+P -P -C +C) is sold: its debit form has the signs turned.
    assert legs(combo) == {("P", put - 10, -1), ("P", put, 1), ("C", call, 1), ("C", call + 10, -1)}
    assert order.intent.side == "sell" and order.intent.quantity == 2
    assert decision.symbol == order.intent.symbol == combo.ticker.upper()
    # The chain's price of the combo is the order's price for sizing and the filters.
    price = chain_price(chain, combo)
    assert price > 0
    assert order.intent.reference_price == price
    [exposure] = [v for v in memory.verdicts if v.filter == "max_exposure"]
    assert exposure.outcome is Outcome.PASS and exposure.figures["price"] == price
    assert decision.option_risk is not None and decision.option_risk.strategy == "iron_condor"
    [fill] = memory.fills
    assert fill.ts == bars[1].ts and fill.quantity == 2 and fill.symbol == order.intent.symbol


def test_a_vertical_by_delta_from_stdin_is_filled_at_the_next_bar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vertical = {
        "id": "v-1",
        "symbol": "SPY",
        "action": "buy",
        "confidence": 90,
        "quantity": 1,
        "order_type": "limit",
        "limit_price": 9.99,  # above anything a 10-wide vertical is worth: fills at the model
        "options": {"strategy": "bull_call_spread", "dte": 45, "delta": 0.5, "width": 10},
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(vertical) + "\n"))
    bars = spy(3)
    replay(
        bars,
        run={"strategies": ["decision_stdin"], "risk_filters": ["max_exposure"]},
        strategies={"decision_stdin": {"wait_for_eof": True}},
    )
    memory = MemorySink.last
    assert memory is not None and memory.rejected == []
    [order] = memory.orders
    assert order.status is OrderStatus.FILLED
    combo = order.intent.instrument
    assert isinstance(combo, Combo)
    # 45 days from 2 March is 16 April: the monthly of Friday 17 April.
    expiry = dt.date(2026, 4, 17)
    low = nearest(paper_chain(bars[0], expiry), "C", 0.5)
    assert legs(combo) == {("C", low, 1), ("C", low + 10, -1)}
    assert {leg.instrument.expiry for leg in combo.legs} == {expiry}  # type: ignore[union-attr]
    [fill] = memory.fills
    assert fill.ts == bars[1].ts and D(0) < fill.price < D("9.99")


@pytest.mark.slow
def test_a_chain_that_cannot_be_read_is_recorded_as_rejected_and_nothing_is_sent(
    tmp_path: Path, inbox: Path
) -> None:
    ChainDown.placed = []
    drop(inbox, CONDOR | {"id": "ic-down"}, BUY_SPY)
    _pipeline, memory = run(tmp_path, spy(3), broker="paper_chain_down")
    [(raw, source, error)] = memory.rejected
    assert error == "options: the broker's option chain: the gateway did not answer"
    assert raw["id"] == "ic-down" and source == "decision_files"
    assert [d.id for d in memory.decisions] == ["stock-1"]  # the rest of the file goes on
    assert [i.symbol for i in ChainDown.placed] == ["SPY"]
    assert [o.intent.symbol for o in memory.orders] == ["SPY"]
    # Handled: a restarted run neither reads it again nor sends anything.
    _pipeline, again = run(tmp_path, spy(3), broker="paper_chain_down")
    assert again.rejected == [] and again.decisions == [] and again.orders == []
    assert len(ChainDown.placed) == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            {"strategy": "long_call", "expiry": "2026-04-16", "strikes": [600]},
            "options.expiry: no options expire on 2026-04-16",
        ),
        (
            {"strategy": "bull_call_spread", "dte": 30, "delta": 0.4},
            "options.width: bull_call_spread chosen by delta needs width (strike distance)",
        ),
        (
            {"strategy": "bull_call_spread", "dte": 30, "strikes": [600, 601]},
            "options.strikes: the requested strikes round to the same listed strike",
        ),
    ],
)
def test_a_strategy_the_chain_cannot_give_is_rejected_naming_why(
    tmp_path: Path, inbox: Path, options: dict[str, Any], error: str
) -> None:
    drop(inbox, {**CONDOR, "id": "bad-1", "options": options})
    _pipeline, memory = run(tmp_path, spy(3))
    [(raw, _source, got)] = memory.rejected
    assert got.startswith(error)
    assert raw["id"] == "bad-1"
    assert memory.decisions == [] and memory.orders == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"quantity": None}, "quantity: an options strategy needs a quantity"),
        ({"action": "close"}, "action: close is not supported with an options strategy"),
        ({"stop_loss": 500}, "stop_loss: not supported with an options strategy"),
        (
            {"options": {"strategy": "iron_condor", "dte": 30}},
            "options: without legs, give strikes or delta",
        ),
    ],
)
def test_what_the_document_alone_shows_is_rejected_at_once(
    tmp_path: Path, inbox: Path, change: dict[str, Any], error: str
) -> None:
    document = {k: v for k, v in (CONDOR | change).items() if v is not None}
    drop(inbox, document)
    # Bars of another symbol only: the chain is never asked, the rejection is recorded anyway.
    _pipeline, memory = run(tmp_path, [bar("AAPL", d) for d in range(2)])
    [(_raw, _source, got)] = memory.rejected
    assert got.startswith(error)
    assert memory.decisions == [] and memory.orders == []


@pytest.mark.slow
def test_an_options_document_executes_once_across_restarts(tmp_path: Path, inbox: Path) -> None:
    """No id: one derived from the content. The state file lost, the ledger still refuses."""
    drop(inbox, CONDOR)
    _pipeline, first = run(tmp_path, spy(3), sql=True, session="opt-1")
    [order] = first.orders
    assert order.status is OrderStatus.FILLED
    [decision] = first.decisions
    assert decision.id.startswith("c-")

    _pipeline, second = run(tmp_path, spy(3), sql=True, session="opt-1")
    assert second.decisions == [] and second.orders == []  # the state file: not read again

    (inbox / ".tradepipe-state.json").unlink()
    _pipeline, third = run(tmp_path, spy(3), sql=True, session="opt-1")
    assert [d.id for d in third.decisions] == [decision.id]
    assert third.orders == [] and third.fills == []
    [verdict] = third.verdicts
    assert verdict.filter == "duplicate" and verdict.client_order_id == order.client_order_id


@pytest.mark.slow
def test_the_expiry_counts_from_the_bar_date_not_the_wall_clock(
    tmp_path: Path, inbox: Path
) -> None:
    """A replay of June 2026 run years later: each document's dte counts from its bar."""
    start = dt.datetime(2026, 6, 1, 14, 30, tzinfo=dt.UTC)  # a Monday
    document = {
        **CONDOR,
        "quantity": 1,
        "options": {"strategy": "long_call", "dte": 30, "delta": 0.5},
    }
    bars = spy(20, start)
    later = {14: lambda: drop(inbox, document | {"id": "late"}, name="late.jsonl")}
    drop(inbox, document | {"id": "early"})
    with freeze_time("2031-07-15 12:00:00"):
        _pipeline, memory = run(tmp_path, bars, later)
    assert memory.rejected == []
    expiries = {}
    for order in memory.orders:
        assert order.status is OrderStatus.FILLED
        option = order.intent.instrument
        assert isinstance(option, Option)
        expiries[order.intent.decision_id] = option.expiry
    # 1 June + 30 = 1 July: Friday 3 July. 15 June + 30 = 15 July: the monthly of Friday 17 July.
    assert expiries == {"early": dt.date(2026, 7, 3), "late": dt.date(2026, 7, 17)}


@pytest.fixture
def endpoint() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url="http://llm.test/v1", assert_all_called=True) as mock:
        yield mock


def test_an_llm_answer_with_an_options_strategy_is_chosen_from_the_chain(
    endpoint: respx.MockRouter,
) -> None:
    answer = {
        "symbol": "SPY",
        "action": "buy",
        "confidence": 80,
        "quantity": 1,
        "options": {"strategy": "long_call", "dte": 30, "delta": 0.5},
    }
    content = json.dumps(answer)
    endpoint.post("/chat/completions").mock(
        return_value=httpx.Response(
            200, json={"choices": [{"index": 0, "message": {"content": content}}]}
        )
    )
    bars = spy(3)
    replay(
        bars,
        run={"strategies": ["llm"], "risk_filters": ["max_exposure"]},
        strategies={"llm": {"base_url": "http://llm.test/v1", "model": "m", "every_bars": 10}},
    )
    memory = MemorySink.last
    assert memory is not None and memory.rejected == []
    [order] = memory.orders
    option = order.intent.instrument
    assert isinstance(option, Option) and option.right == "C" and option.expiry == EXPIRY_30
    chain = paper_chain(bars[0], EXPIRY_30)
    assert option.strike == nearest(chain, "C", 0.5)
    price = next(q.price for q in chain if q.option == option)
    assert order.intent.reference_price == price
    assert order.status is OrderStatus.FILLED
    [decision] = memory.decisions
    assert decision.raw == content


def test_an_options_document_waits_for_its_underlying_and_is_converted_then() -> None:
    document = {**CONDOR, "id": "w-1"}
    source = DecisionStdin(DecisionStdin.Settings(wait_for_eof=True))
    source.start(io.StringIO(json.dumps(document) + "\n"))
    assert source.decide(bar("AAPL"), Ctx()) is None
    assert source.waiting == 1
    # Released by a bar of SPY, converted with that context's chain: this one has none.
    [item] = list(source.decide(bar("SPY"), Ctx()) or ())
    assert isinstance(item, RejectedDecision) and not isinstance(item, Decision)
    assert item.error == "options: the broker's option chain: no option chains here"
    assert source.waiting == 0
