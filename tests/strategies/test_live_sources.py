"""Decision sources in a live run: files and stdin within a second, the model on a schedule."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from source_helpers import Ctx
from tradepipe import Bar
from tradepipe.clock import ScaledClock
from tradepipe.live.run import LiveRun
from tradepipe.pipeline import build_pipeline
from tradepipe.plugins.feeds.synthetic import SyntheticFeed
from tradepipe.strategies.llm import LlmSource
from tradepipe.testing import ListLiveFeed, MemorySink, live, replay, settings, test_host

UTC = dt.UTC
BASE = "http://llm.test/v1"
T0 = dt.datetime(2026, 3, 2, 15, tzinfo=UTC)


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def quiet_market(symbols: tuple[str, ...] = ("AAPL",)) -> list[Bar]:
    """One bar that has just ended when the run starts, the next an hour later."""
    out = []
    for ts in (T0 - dt.timedelta(minutes=1), T0 + dt.timedelta(hours=1)):
        out += [Bar(s, ts, 100.0, 101.0, 99.0, 100.5, 1000.0) for s in symbols]
    return out


def start_quiet_run(
    strategy: str, prepare: Any = None, **tables: Any
) -> tuple[LiveRun, threading.Thread]:
    """A live run at wall speed in which no bar arrives: only ticks can bring decisions."""
    ListLiveFeed.source = quiet_market()
    run = {
        "feed": "list_live",
        "sinks": ["memory"],
        "broker": "paper",
        "strategies": [strategy],
        "risk_filters": [],
        "status_file": "",
        "calendar": "always",
        **tables.pop("run", {}),
    }
    pipeline = build_pipeline(settings(run=run, **tables), test_host(), clock=ScaledClock(T0, 1))
    if prepare is not None:
        prepare(pipeline.strategies[0])
    runner = LiveRun(pipeline)
    thread = threading.Thread(target=runner.run, name="live-run")
    thread.start()
    deadline = time.monotonic() + 10
    while runner.executor is None or runner.market is None:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.01)
    return runner, thread


def recorded(runner: LiveRun, count: int, within: float) -> float:
    """Seconds until ``count`` decisions were recorded and judged: each became an
    order or has a verdict (fails after ``within``). The run's thread judges a
    decision just after recording it; stopping in between would deny it."""
    started = time.monotonic()
    sink = runner.p.sinks[0]
    assert isinstance(sink, MemorySink)

    def judged() -> int:
        done = {o.intent.decision_id for o in sink.orders} | {v.decision_id for v in sink.verdicts}
        return sum(1 for d in sink.decisions if d.id in done)

    while len(sink.decisions) < count or judged() < count:
        assert time.monotonic() - started < within, f"no decision judged within {within} s"
        time.sleep(0.01)
    return time.monotonic() - started


def stop(runner: LiveRun, thread: threading.Thread) -> MemorySink:
    runner.request_stop("test done")
    thread.join(20)
    sink = runner.p.sinks[0]
    assert isinstance(sink, MemorySink)
    return sink


DOC = {"id": "ext-1", "symbol": "AAPL", "action": "buy", "confidence": 90, "quantity": 3}


@pytest.mark.slow
def test_a_file_dropped_in_the_folder_is_judged_within_a_second(workdir: Path) -> None:
    inbox = workdir / "inbox"
    inbox.mkdir()
    runner, thread = start_quiet_run(
        "decision_files", strategies={"decision_files": {"path": "inbox"}}
    )
    try:
        time.sleep(0.3)
        tmp = inbox / "d.json.tmp"
        tmp.write_text(json.dumps(DOC))
        tmp.rename(inbox / "d.json")
        took = recorded(runner, 1, within=3)
    finally:
        sink = stop(runner, thread)
    assert took < 1.5, f"took {took:.2f} s"
    assert [d.id for d in sink.decisions] == ["ext-1"]
    assert [o.intent.quantity for o in sink.orders] == [3]
    assert sink.orders[0].status.value == "accepted"  # sent, between bars


@pytest.mark.slow
def test_a_line_on_standard_input_is_judged_within_a_second(workdir: Path) -> None:
    read, write = os.pipe()
    stream = os.fdopen(read)
    runner, thread = start_quiet_run("decision_stdin", prepare=lambda source: source.start(stream))
    try:
        time.sleep(0.3)
        os.write(write, (json.dumps(DOC) + "\n").encode())
        took = recorded(runner, 1, within=3)
    finally:
        os.close(write)
        sink = stop(runner, thread)
        reader = runner.p.strategies[0]._reader  # type: ignore[attr-defined]
        reader.join(5)
        stream.close()
    assert took < 1.5, f"took {took:.2f} s"
    assert [d.id for d in sink.decisions] == ["ext-1"] and len(sink.orders) == 1


def answer(request: httpx.Request) -> httpx.Response:
    asked = json.loads(json.loads(request.content)["messages"][1]["content"])
    content = json.dumps(
        {"symbol": asked["symbol"], "action": "hold", "confidence": 50, "rationale": "wait"}
    )
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


@pytest.fixture
def endpoint() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.post("/chat/completions").mock(side_effect=answer)
        yield mock


def llm(**extra: Any) -> dict[str, Any]:
    return {"llm": {"base_url": BASE, "model": "m1", "every": "2m", "history_bars": 5, **extra}}


def minutes(count: int, symbols: list[str]) -> list[Bar]:
    feed = SyntheticFeed(SyntheticFeed.Settings(symbols=symbols, bars=count, interval="1m"))
    feed.load()
    return list(feed.bars())


@pytest.mark.slow
def test_the_model_is_asked_on_its_schedule_with_the_market_in_the_question(
    endpoint: respx.MockRouter,
) -> None:
    bars = minutes(12, ["AAPL", "MSFT"])
    pipeline, _result, _s, _r = live(
        bars, run={"strategies": ["llm"], "risk_filters": []}, strategies=llm(), speed=600
    )
    sink = pipeline.sinks[0]
    assert isinstance(sink, MemorySink)
    asked = [json.loads(c.request.content) for c in endpoint.calls]
    facts = [json.loads(body["messages"][1]["content"]) for body in asked]
    per_symbol = {s: [f["time"] for f in facts if f["symbol"] == s] for s in ("AAPL", "MSFT")}
    # About every two minutes of the run's clock over twelve minutes, each symbol.
    for symbol, times in per_symbol.items():
        assert 4 <= len(times) <= 7, (symbol, times)
        gaps = [
            (dt.datetime.fromisoformat(b) - dt.datetime.fromisoformat(a)).total_seconds()
            for a, b in itertools.pairwise(times)
        ]
        assert all(g >= 119 for g in gaps), gaps
    last = facts[-1]
    assert last["market_open"] is True and len(last["recent_bars"]) <= 5
    assert set(last["recent_bars"][0]) == {"time", "open", "high", "low", "close", "volume"}
    assert set(last["quotes"]) == set(last["positions"]) == {"AAPL", "MSFT"}
    assert last["cash"] == "100000" and "equity" in last
    # Each decision is recorded with the hash of exactly what was asked.
    assert len(sink.decisions) == len(asked)
    for decision, body in zip(sink.decisions, asked, strict=True):
        digest = hashlib.sha256(
            json.dumps(
                {k: v for k, v in body.items() if k != "response_format"},
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        ).hexdigest()
        assert decision.inputs_hash == f"sha256:{digest}"
        assert decision.source == "llm:m1"


def test_the_model_is_not_asked_while_the_market_is_closed(endpoint: respx.MockRouter) -> None:
    class Closed(Ctx):
        def market_open(self) -> bool:
            return False

    source = LlmSource(LlmSource.Settings(**llm()["llm"]))
    source.warm_up(minutes(3, ["AAPL"]), Closed())
    assert source.on_tick(T0, Closed()) is None
    assert source.decide(minutes(4, ["AAPL"])[-1], Closed()) is None
    assert not endpoint.calls


def test_in_a_replay_the_schedule_follows_the_bars(endpoint: respx.MockRouter) -> None:
    _p, _result, _s = replay(
        minutes(30, ["AAPL"]),
        run={"strategies": ["llm"], "risk_filters": []},
        strategies=llm(every="10m"),
    )
    assert len(endpoint.calls) == 3  # at minutes 0, 10 and 20


def test_every_is_checked() -> None:
    with pytest.raises(ValueError, match="at most every 10s"):
        LlmSource.Settings(model="m", every="5s")


@pytest.mark.slow
def test_a_decision_waiting_at_the_start_is_not_priced_by_old_history(workdir: Path) -> None:
    # The run starts ten minutes after its warm-up's last bar (IBKR's history ends a
    # minute or more before now): a decision already in the folder waits for the feed's
    # first live bar instead of being denied for a stale price, and is lost neither way.
    inbox = workdir / "inbox"
    inbox.mkdir()
    (inbox / "d.json").write_text(json.dumps(DOC))
    ListLiveFeed.source = [
        Bar("AAPL", T0 - dt.timedelta(minutes=11), 100.0, 101.0, 99.0, 100.5, 1000.0),
        Bar("AAPL", T0 - dt.timedelta(minutes=10), 100.0, 101.0, 99.0, 100.5, 1000.0),
        # The feed's first live bar: it started 58 s before the run and ends 2 s into it.
        Bar("AAPL", T0 - dt.timedelta(seconds=58), 100.0, 101.0, 99.0, 100.7, 1000.0),
    ]
    ListLiveFeed.live_from = None
    run = {
        "feed": "list_live",
        "sinks": ["memory"],
        "broker": "paper",
        "strategies": ["decision_files"],
        "risk_filters": [],
        "status_file": "",
        "calendar": "always",
        "max_quote_age_seconds": 60,
    }
    app = settings(run=run, strategies={"decision_files": {"path": "inbox"}})
    pipeline = build_pipeline(app, test_host(), clock=ScaledClock(T0, 1))
    runner = LiveRun(pipeline)
    thread = threading.Thread(target=runner.run, name="live-run")
    thread.start()
    try:
        recorded(runner, 1, within=8)
    finally:
        sink = stop(runner, thread)
    assert not [v for v in sink.verdicts if v.filter == "stale_price"]
    [order] = sink.orders
    assert order.intent.reference_price == Decimal("100.7")  # the live bar's price
