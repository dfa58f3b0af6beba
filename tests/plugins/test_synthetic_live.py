"""``synthetic_live``: bars only once their interval has ended, never made up."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator

import pytest
from tradepipe import Bar, ConfigError, FeedError, Quote
from tradepipe.clock import ScaledClock
from tradepipe.live.feed import align, session_bar_times
from tradepipe.market import check_bar
from tradepipe.pipeline import make_component
from tradepipe.plugins.feeds.synthetic_live import SyntheticLiveFeed
from tradepipe.settings import validate_settings

T0 = dt.datetime(2026, 3, 2, 14, 30, 2, tzinfo=dt.UTC)
FIVE = dt.timedelta(seconds=5)


class Hours:
    """One session a day, 14:30-21:00 UTC, on weekdays."""

    def session_at(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        opened = at.replace(hour=14, minute=30, second=0, microsecond=0)
        closed = at.replace(hour=21, minute=0, second=0, microsecond=0)
        if at.weekday() < 5 and opened <= at < closed:
            return opened, closed
        return None

    def next_open(self, at: dt.datetime) -> dt.datetime:
        day = at.date()
        while True:
            opened = dt.datetime(day.year, day.month, day.day, 14, 30, tzinfo=dt.UTC)
            if opened > at and opened.weekday() < 5:
                return opened
            day += dt.timedelta(days=1)

    def previous_session(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        day = at.date()
        while True:
            closed = dt.datetime(day.year, day.month, day.day, 21, tzinfo=dt.UTC)
            if closed <= at and closed.weekday() < 5:
                return closed.replace(hour=14, minute=30), closed
            day -= dt.timedelta(days=1)


def feed(**settings: object) -> SyntheticLiveFeed:
    return SyntheticLiveFeed(SyntheticLiveFeed.Settings(**settings))  # type: ignore[arg-type]


def drain(f: SyntheticLiveFeed, clock: ScaledClock, until: dt.datetime) -> Iterator[Bar | Quote]:
    """Events until the run's clock reaches ``until``; each checked against the clock."""
    deadline = time.monotonic() + 20
    while clock.now() < until:
        assert time.monotonic() < deadline, "the feed never got there"
        got = f.next(0.05)
        if got is None:
            continue
        event, _published = got
        if isinstance(event, Bar):
            # Complete: its interval ended on the run's clock before it arrived.
            assert event.ts + f._step <= clock.now(), event
        yield event


@pytest.mark.slow
def test_bars_arrive_once_their_interval_has_ended_aligned_and_valid() -> None:
    clock = ScaledClock(T0, 100)  # 5 s bars every 50 ms of wall time
    f = feed(symbols=["aapl", "MSFT"], bar_size="5s", warmup_bars=3, quote_seconds=1)
    f.start(clock, None)
    try:
        events = list(drain(f, clock, T0 + dt.timedelta(seconds=90)))
    finally:
        f.stop()
    bars = [e for e in events if isinstance(e, Bar)]
    quotes = [e for e in events if isinstance(e, Quote)]
    assert {b.symbol for b in bars} == {"AAPL", "MSFT"}
    assert len(bars) >= 20 and quotes
    for b in bars:
        assert check_bar(b) is None, b
        assert b.ts == align(b.ts, FIVE, None)
    for symbol in ("AAPL", "MSFT"):
        times = [b.ts for b in bars if b.symbol == symbol]
        assert times == sorted(set(times))
        steps = {later - earlier for earlier, later in itertools.pairwise(times)}
        # Every interval, unless the feed fell behind (a loaded machine), which is a gap.
        assert steps == {FIVE} or f.state().gap_count > 0
    state = f.state()
    assert state.bars >= len(bars) and state.quotes >= len(quotes)
    assert set(state.last_bars) == {"AAPL", "MSFT"}
    assert state.last_bars["AAPL"].ts == max(b.ts for b in bars if b.symbol == "AAPL")
    assert state.lag_seconds(clock.now()) is not None
    assert not state.connected and state.message == "stopped"


def test_warm_up_is_the_bars_just_before_the_first_live_one() -> None:
    clock = ScaledClock(T0, 600)
    f = feed(symbols=["AAPL"], bar_size="5s", warmup_bars=4, quote_seconds=0)
    f.start(clock, None)
    try:
        warm = f.warmup()
        first = next(e for e in drain(f, clock, T0 + dt.timedelta(minutes=1)) if isinstance(e, Bar))
    finally:
        f.stop()
    assert [b.ts for b in warm] == [align(T0, FIVE, None) - FIVE * k for k in (4, 3, 2, 1)]
    assert first.ts == align(T0, FIVE, None)
    assert first.open == warm[-1].close  # one walk


def test_the_same_seed_walks_the_same_way() -> None:
    def closes() -> list[float]:
        f = feed(symbols=["AAPL"], warmup_bars=50, seed=3)
        f.clock = ScaledClock(T0, 1)
        return [b.close for b in f._history(T0)]

    assert closes() == closes()


@pytest.mark.slow
def test_nothing_while_the_market_is_closed_and_the_last_bar_ends_at_the_close() -> None:
    before_close = dt.datetime(2026, 3, 6, 20, 59, 40, tzinfo=dt.UTC)  # a Friday
    clock = ScaledClock(before_close, 600)
    f = feed(symbols=["AAPL"], bar_size="1m", warmup_bars=2, quote_seconds=0)
    f.start(clock, Hours())
    try:
        events = list(drain(f, clock, before_close + dt.timedelta(minutes=10)))
    finally:
        f.stop()
    bars = [e for e in events if isinstance(e, Bar)]
    assert [b.ts.time() for b in bars] == [dt.time(20, 59)]  # then closed for the weekend


def test_warm_up_reaches_back_over_the_closed_market() -> None:
    monday = dt.datetime(2026, 3, 9, 14, 31, 30, tzinfo=dt.UTC)
    times = session_bar_times(Hours(), monday, dt.timedelta(minutes=1), 3)
    assert times == [
        dt.datetime(2026, 3, 6, 20, 58, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 6, 20, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 9, 14, 30, tzinfo=dt.UTC),
    ]


@pytest.mark.slow
def test_bars_the_feed_fell_behind_on_are_a_gap_not_made_up() -> None:
    class Jumpy:
        def __init__(self) -> None:
            self.t = 0.0
            self.real = time.monotonic()

        def __call__(self) -> float:
            return self.t + (time.monotonic() - self.real)

    mono = Jumpy()
    clock = ScaledClock(T0, 100, monotonic=mono)
    f = feed(symbols=["AAPL"], bar_size="5s", warmup_bars=0, quote_seconds=0)
    f.start(clock, None)
    try:
        first = list(drain(f, clock, T0 + dt.timedelta(seconds=12)))
        mono.t += 0.6  # the process "paused": 60 s of market went by unseen
        later = list(drain(f, clock, clock.now() + dt.timedelta(seconds=12)))
    finally:
        f.stop()
    times = [b.ts for b in first + later if isinstance(b, Bar)]
    assert max(b - a for a, b in itertools.pairwise(times)) > dt.timedelta(seconds=30)
    state = f.state()
    assert state.gap_count == 1 and state.gaps[0].symbol == "*"
    assert "behind" in state.gaps[0].reason


def test_a_live_feed_refuses_to_replay() -> None:
    with pytest.raises(FeedError, match="--live"):
        list(feed().bars())


def test_settings_are_checked() -> None:
    settings = validate_settings({"feeds": {"synthetic_live": {"bar_size": "2d"}}})
    from tradepipe.host import load_host

    host = load_host(settings.plugins)
    with pytest.raises(ConfigError, match=r"\[feeds.synthetic_live\] bar_size"):
        make_component(host, settings, "feed", "synthetic_live")
    with pytest.raises(ValueError, match="1s to 4h"):
        SyntheticLiveFeed.Settings(bar_size="5h")
