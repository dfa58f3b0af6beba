"""The IBKR live feeds (``ibkr_stream``, ``ibkr_poll``) against the gateway stand-in.

In this process the stand-in runs on a virtual clock: the test pushes trades
(``/_standin/ticks``) and moves the clock; the feed's stream client reads that clock, and the
feed's bars are stamped by it. A live run through the CLI over TLS is in
``tests/brokers/test_ibkr_live_run.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "brokers"))

from inprocess_support import InProcessGateway, VirtualNow
from stream_support import run_for, subscribed
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.errors import ConfigError
from tradepipe.market import Bar, Quote
from tradepipe.plugins.feeds.ibkr import IbkrPollFeed, IbkrStreamFeed
from tradepipe.settings import load_settings

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

AAPL = 265598


def drain(feed: Any, wait: float = 0.3) -> list[Any]:
    """Everything the feed has handed the run so far (waiting briefly for its threads)."""
    out = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        got = feed.next(0.02)
        if got is not None:
            out.append(got[0])
    return out


@pytest.fixture
def gw(inprocess_gateway: InProcessGateway) -> InProcessGateway:
    # Minutes pass without REST requests from the test: IBKR's idle drop of the REST
    # session would need a tickle the test thread cannot time (see stream_support).
    inprocess_gateway.behave(idle_seconds=0)
    return inprocess_gateway


@pytest.fixture
def stream_feed(gw: InProcessGateway) -> Iterator[IbkrStreamFeed]:
    feed = IbkrStreamFeed(
        IbkrStreamFeed.Settings(symbols=["AAPL"], bar_size="5s", warmup_bars=0, poll_seconds=1)
    )
    broker = gw.broker()
    broker.connect()
    feed.broker = broker
    feed.stream_options = {
        "connect": gw.stream_connect,
        "monotonic": gw.clock.monotonic,
        "sleep": gw.clock.sleep,
    }
    feed.start(VirtualNow(gw.clock), None)  # type: ignore[arg-type]
    yield feed
    feed.stop()


def test_streamed_trades_make_bars_and_quotes_reach_the_run(
    gw: InProcessGateway, stream_feed: IbkrStreamFeed
) -> None:
    run_for(gw.clock, 1, step=0.5)
    subscribed(gw, AAPL, gw.clock)
    # Start at a bar boundary (plus a little), so the three trades fall in one 5-s bar.
    gw.clock.advance(5 - gw.clock.time() % 5 + 0.2)
    gw.ticks(
        {"conid": AAPL, "price": 190.0, "size": 100, "after": 0},
        {"conid": AAPL, "price": 191.5, "size": 50, "after": 1},
        {"conid": AAPL, "price": 189.0, "size": 25, "after": 2},
    )
    run_for(gw.clock, 12, step=0.5)
    seen = drain(stream_feed)
    quotes = [e for e in seen if isinstance(e, Quote)]
    bars = [e for e in seen if isinstance(e, Bar)]
    assert quotes and all(q.symbol == "AAPL" for q in quotes)
    [bar] = bars  # one interval with trades: one bar, none made up for the quiet ones
    assert (bar.open, bar.high, bar.low, bar.close) == (190.0, 191.5, 189.0, 189.0)
    assert bar.ts.timestamp() % 5 == 0  # aligned to the bar size
    assert stream_feed.state().connected


def test_no_trades_no_bars(gw: InProcessGateway, stream_feed: IbkrStreamFeed) -> None:
    run_for(gw.clock, 30, step=1)
    assert [e for e in drain(stream_feed) if isinstance(e, Bar)] == []


def test_an_order_update_makes_the_run_ask_the_broker(
    gw: InProcessGateway, stream_feed: IbkrStreamFeed
) -> None:
    run_for(gw.clock, 1, step=0.5)
    assert not stream_feed.take_broker_news()
    gw.fill_market_orders(190.0)
    client = gw.client(paced=True)
    client.get("/iserver/accounts")
    order = {
        "acctId": gw.account,
        "conid": AAPL,
        "orderType": "MKT",
        "side": "BUY",
        "quantity": 5,
        "tif": "DAY",
        "cOID": "tp-stream",
    }
    client.post(f"/iserver/account/{gw.account}/orders", json={"orders": [order]})
    run_for(gw.clock, 2, step=0.5)
    deadline = time.monotonic() + 2
    while not stream_feed.take_broker_news():
        assert time.monotonic() < deadline, "the order update did not reach the feed"
        time.sleep(0.01)


def test_on_the_paper_simulator_the_feed_opens_a_data_session_of_its_own(
    gw: InProcessGateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Paper trading on IBKR's real-time data: the run's broker is the simulator, so the
    # feed reads through [brokers.client_portal] itself, for data only.
    gw.serve_cli(monkeypatch)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        overrides={"brokers": {"client_portal": gw.broker_table(keepalive_seconds=0)}}
    )
    feed = IbkrPollFeed(IbkrPollFeed.Settings(symbols=["AAPL"], warmup_bars=0))
    feed.attach(SimpleNamespace(settings=settings))
    feed.broker = PaperBroker()
    feed.start(VirtualNow(gw.clock), None)  # type: ignore[arg-type]
    try:
        gw.market({AAPL: {"31": "190.00"}})
        quotes = [e for e in drain(feed, 2.0) if isinstance(e, Quote)]
    finally:
        feed.stop()
    assert quotes and quotes[0].symbol == "AAPL"
    paths = [r["path"] for r in gw.requests()]
    assert "/iserver/marketdata/snapshot" in paths
    assert not any(p.endswith("/orders") and "account/" in p for p in paths)  # data only
    bad = IbkrPollFeed(IbkrPollFeed.Settings(symbols=["AAPL"], via="client_portal"))
    bad.attach(
        SimpleNamespace(
            settings=load_settings(
                overrides={"brokers": {"client_portal": {"base_url": "ftp://nowhere"}}}
            )
        )
    )
    bad.broker = PaperBroker()
    with pytest.raises(ConfigError, match=r"reads IBKR's data through \[brokers.client_portal\]"):
        bad.open()


def test_more_symbols_than_market_data_lines_is_an_error_naming_the_limit(
    gw: InProcessGateway,
) -> None:
    feed = IbkrStreamFeed(
        IbkrStreamFeed.Settings(symbols=["AAPL", "MSFT", "SPY"], market_data_lines=2)
    )
    feed.broker = gw.broker()
    feed.stream_options = {"connect": gw.stream_connect}
    with pytest.raises(ConfigError, match="the account has 2"):
        feed.start(VirtualNow(gw.clock), None)  # type: ignore[arg-type]
    feed.stop()


def test_polling_makes_bars_from_moving_last_prices(gw: InProcessGateway) -> None:
    feed = IbkrPollFeed(
        IbkrPollFeed.Settings(symbols=["AAPL"], bar_size="5s", warmup_bars=0, poll_seconds=0.2)
    )
    broker = gw.broker()
    broker.connect()
    feed.broker = broker
    feed.start(VirtualNow(gw.clock), None)  # type: ignore[arg-type]
    try:
        for price in ("190.00", "190.50", "191.00", "189.75"):
            gw.market({AAPL: {"31": price}})
            time.sleep(0.3)  # a poll (wall time) …
            gw.clock.advance(2)  # … and market time passes
        gw.clock.advance(6)
        time.sleep(0.5)
        seen = drain(feed)
        assert "polling snapshots" in feed.state().message
    finally:
        feed.stop()
    bars = [e for e in seen if isinstance(e, Bar)]
    assert bars, seen
    assert {b.close for b in bars} <= {190.5, 191.0, 189.75}
    assert gw.violations() == []
