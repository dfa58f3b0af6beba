"""Bars from a live stream's trades (``BarBuilder``), and the bars a reconnect missed
(``backfill``, against the gateway stand-in's history in this process)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from inprocess_support import InProcessGateway
from tradepipe.brokers.ibkr.bars import BarBuilder, backfill, bar_seconds
from tradepipe.brokers.ibkr.topics import QuoteUpdate
from tradepipe.errors import ConfigError
from tradepipe.market import Bar, Quote, check_bar

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)  # 10:00 in New York


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_bars_are_aligned_to_the_clock_and_handed_out_when_a_later_trade_comes() -> None:
    bars = BarBuilder("5s")
    assert bars.add("AAPL", at(1.2), 100.0, 10) == []
    assert bars.add("AAPL", at(2.0), 101.5, 5) == []
    assert bars.add("AAPL", at(3.9), 99.5, 1) == []
    assert bars.add("AAPL", at(4.5), 100.5, 4) == []
    [bar] = bars.add("AAPL", at(6.0), 102.0, 7)
    assert bar == Bar("AAPL", at(0), 100.0, 101.5, 99.5, 100.5, 20.0)
    assert check_bar(bar) is None
    assert bars.last_end("AAPL") == at(5)


@pytest.mark.parametrize(
    ("size", "trade", "start"),
    [
        ("1min", at(59.9), at(0)),
        ("1min", at(61), at(60)),
        ("5min", at(7 * 60 + 30), at(5 * 60)),
        (300, at(4 * 60 + 59), at(0)),
        ("1h", at(3599), at(0)),
    ],
)
def test_intervals_start_on_the_clock(
    size: str | int, trade: dt.datetime, start: dt.datetime
) -> None:
    bars = BarBuilder(size)
    bars.add("MSFT", trade, 400.0, 1)
    [bar] = bars.flush(trade + dt.timedelta(hours=2))
    assert bar.ts == start


def test_an_interval_without_a_trade_gives_no_bar() -> None:
    bars = BarBuilder("5s")
    bars.add("AAPL", at(1), 100.0, 1)
    [first] = bars.add("AAPL", at(21), 101.0, 1)  # 10:00:05 to :20 saw no trade
    assert first.ts == at(0)
    assert bars.flush(at(24.9)) == []  # the :20 bar is still open
    [second] = bars.flush(at(25))
    assert second.ts == at(20) and second.open == second.close == 101.0
    assert bars.flush(at(60)) == []  # nothing made up for the quiet intervals


def test_flush_waits_for_the_grace_period() -> None:
    bars = BarBuilder("1min", grace_seconds=2)
    bars.add("AAPL", at(30), 100.0, 1)
    assert bars.flush(at(61)) == []
    bars.add("AAPL", at(59.5), 100.5, 2)  # a trade still on its way lands in its bar
    [bar] = bars.flush(at(62))
    assert (bar.close, bar.volume) == (100.5, 3.0)


def test_late_trades_never_change_a_bar_handed_out() -> None:
    bars = BarBuilder("5s")
    bars.add("AAPL", at(1), 100.0, 1)
    bars.add("AAPL", at(6), 100.0, 1)  # hands out the :00 bar
    assert bars.add("AAPL", at(4), 90.0, 1) == []  # its bar is out: late
    assert bars.late == 1
    bars.add("AAPL", at(8), 101.0, 1)
    assert bars.add("AAPL", at(7), 100.5, 1) == []  # same bar, out of order: kept
    [bar] = bars.flush(at(10))
    assert (bar.open, bar.high, bar.close, bar.volume) == (100.0, 101.0, 101.0, 3.0)
    assert bars.late == 1


def test_symbols_are_built_apart() -> None:
    bars = BarBuilder("5s")
    bars.add("AAPL", at(1), 100.0, 1)
    assert bars.add("MSFT", at(7), 400.0, 1) == []  # MSFT's trade does not close AAPL's bar
    assert [b.symbol for b in bars.flush(at(10))] == ["AAPL", "MSFT"]


def test_stream_quotes_become_trades_only_when_they_report_one() -> None:
    bars = BarBuilder("5s")

    def update(seconds: float, last: str, traded: bool, size: str | None) -> QuoteUpdate:
        quote = Quote(symbol="AAPL", ts=at(seconds), last=Decimal(last), conid=265598)
        volume = Decimal(size) if size is not None else None
        return QuoteUpdate(quote, frozenset({"31"}), False, "", volume, traded)

    assert bars.add_update(update(1, "100", False, None)) == []  # e.g. the first message
    bars.add_update(update(2, "101", True, "300"))
    bars.add_update(update(3, "102", True, None))  # size unknown: no volume made up
    [bar] = bars.flush(at(5))
    assert (bar.open, bar.close, bar.volume) == (101.0, 102.0, 300.0)


def test_bar_sizes() -> None:
    assert [bar_seconds(s) for s in ("5s", "1min", "5min", "1h", 15)] == [5, 60, 300, 3600, 15]
    for bad in ("7s", "five minutes", "0s"):
        with pytest.raises(ConfigError):
            bar_seconds(bad)


# ----- backfill from IBKR's history ----------------------------------------------------------


def test_backfill_fetches_the_minute_bars_a_reconnect_missed(
    inprocess_gateway: InProcessGateway,
) -> None:
    broker = inprocess_gateway.broker()
    broker.connect()
    now = dt.datetime.fromtimestamp(inprocess_gateway.clock.time(), dt.UTC)
    end = BarBuilder("1min").align(now)
    start = end - dt.timedelta(minutes=10)
    found = backfill(broker.market, "aapl", "1min", start, end, now=now)
    assert found.gap is None
    assert [b.ts for b in found.bars] == [start + dt.timedelta(minutes=i) for i in range(10)]
    assert all(b.symbol == "AAPL" and check_bar(b) is None for b in found.bars)
    history = [r for r in inprocess_gateway.requests() if r["path"].endswith("/history")]
    assert history[-1]["query"]["bar"] == "1min" and history[-1]["query"]["period"] == "1h"


def test_backfill_reports_what_it_cannot_fill(inprocess_gateway: InProcessGateway) -> None:
    broker = inprocess_gateway.broker()
    broker.connect()
    now = dt.datetime.fromtimestamp(inprocess_gateway.clock.time(), dt.UTC)
    end = BarBuilder("5min").align(now)
    start = end - dt.timedelta(minutes=30)

    seconds = backfill(broker.market, "AAPL", "5s", start, end, now=now)
    assert seconds.bars == () and seconds.gap is not None
    assert "no 5-second bars" in seconds.gap.reason and seconds.gap.start == start

    ahead = backfill(broker.market, "AAPL", "5min", start, end + dt.timedelta(hours=1), now=now)
    assert len(ahead.bars) == 6 and ahead.gap is not None
    assert ahead.gap.start == end and "history stops at" in ahead.gap.reason

    inprocess_gateway.fault("GET", "/iserver/marketdata/history", "500")
    failed = backfill(broker.market, "AAPL", "5min", start, end, now=now)
    assert failed.bars == () and failed.gap is not None
    assert "the history request failed" in failed.gap.reason

    assert backfill(broker.market, "AAPL", "5min", start, start, now=now).gap is None
