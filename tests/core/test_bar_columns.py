"""Bars kept as columns give back exactly the bars put in, in a seventh of the memory."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tradepipe.market import Bar, BarColumns

UTC = dt.UTC
times = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2199, 12, 31), timezones=st.just(UTC)
)
prices = st.floats(min_value=0.0001, max_value=1e9, allow_nan=False)
bars = st.builds(
    Bar, st.sampled_from(["AAPL", "MSFT", "BRK.B"]), times, prices, prices, prices, prices, prices
)


@given(st.lists(bars, max_size=50))
def test_bars_read_back_are_the_bars_put_in(put: list[Bar]) -> None:
    kept = BarColumns(put)
    back = list(kept)
    assert back == put and kept == put and len(kept) == len(put)
    # To the microsecond, in UTC, as the feeds hand them out.
    assert all(b.ts.tzinfo is UTC for b in back)
    if put:
        assert kept[0] == put[0] and kept[-1] == put[-1] and kept[1:3] == put[1:3]
    assert kept.symbols() == list(dict.fromkeys(b.symbol for b in put))


def test_times_read_back_exactly_whatever_the_gaps() -> None:
    """A bar's time is worked out from the one before: a steady gap, a changed one,
    two symbols at one time, a step back, the epoch itself and before it."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    start = dt.datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
    minute, us = dt.timedelta(minutes=1), dt.timedelta(microseconds=1)
    stamps = [
        epoch,
        epoch,
        epoch + us,
        epoch - us,
        dt.datetime(1901, 12, 13, 20, 45, 52, 999_999, tzinfo=UTC),
        start,
        start + minute,
        start + minute,
        start + 2 * minute,
        start + 3 * minute,
        start + 3 * minute + us,
        start + 2 * minute,
        dt.datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    put = [Bar("AB"[i % 2], ts, 1.0, 1.0, 1.0, 1.0, 1.0) for i, ts in enumerate(stamps)]
    back = list(BarColumns(put))
    assert [b.ts for b in back] == stamps
    assert all(b.ts.tzinfo is UTC for b in back)
    assert back[1].ts is back[0].ts  # one time, one datetime


def test_two_hundred_thousand_bars_fit_in_about_ten_megabytes() -> None:
    start = dt.datetime(2022, 1, 3, 14, 30, tzinfo=UTC)
    tracemalloc.start()
    try:
        kept = BarColumns(
            Bar("BENCH", start + dt.timedelta(minutes=i), 100.0, 101.0, 99.0, 100.5, 1000.0)
            for i in range(200_000)
        )
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == 200_000
    assert size < 12 * 1024 * 1024, size / 1e6  # a list of Bar tuples: about 70 MB
    assert kept != [] and kept[199_999].ts == start + dt.timedelta(minutes=199_999)


@given(
    st.lists(bars, max_size=60),
    st.none() | times,
    st.none() | times,
    st.booleans(),
)
def test_a_window_holds_exactly_the_bars_of_its_period(
    put: list[Bar], start: dt.datetime | None, end: dt.datetime | None, ordered: bool
) -> None:
    """In time order (a feed's) the window is found by bisection, otherwise bar by bar:
    either way, the bars from start (inclusive) until end (exclusive)."""
    if ordered:
        put = sorted(put, key=lambda b: b.ts)
    # A period given in New York time means the same instants.
    ny = dt.timezone(dt.timedelta(hours=-5))
    window = BarColumns(put).window(
        None if start is None else start.astimezone(ny), None if end is None else end.astimezone(ny)
    )
    expected = [b for b in put if (start is None or b.ts >= start) and (end is None or b.ts < end)]
    assert list(window) == expected and len(window) == len(expected)
    assert list(window) == list(window)  # read again, from the start
    assert window.symbols() == sorted({b.symbol for b in expected})
    if expected:
        assert window[0] == expected[0] and window[-1] == expected[-1]
        assert window[1:3] == expected[1:3]
    with pytest.raises(IndexError):
        window[len(expected)]


def test_a_window_reads_the_columns_in_place() -> None:
    start = dt.datetime(2022, 1, 3, 14, 30, tzinfo=UTC)
    kept = BarColumns(
        Bar("BENCH", start + dt.timedelta(minutes=i), 100.0, 101.0, 99.0, 100.0 + i, 1.0)
        for i in range(100_000)
    )
    tracemalloc.start()
    try:
        window = kept.window(start + dt.timedelta(minutes=10), start + dt.timedelta(minutes=90_010))
        size = tracemalloc.get_traced_memory()[0]
        closes = [b.close for b in window]
    finally:
        tracemalloc.stop()
    assert size < 10_000  # no copy of 90,000 bars
    assert closes == [100.0 + i for i in range(10, 90_010)]


def test_bar_columns_cannot_grow_under_a_reading() -> None:
    start = dt.datetime(2022, 1, 3, 14, 30, tzinfo=UTC)
    kept = BarColumns(
        Bar("A", start + dt.timedelta(minutes=i), 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(3)
    )
    late = Bar("A", start + dt.timedelta(minutes=9), 1.0, 1.0, 1.0, 1.0, 1.0)
    readings = (
        lambda: iter(kept),
        lambda: iter(kept.window(None, None)),
        lambda: iter(kept.window(start + dt.timedelta(minutes=1))),
    )
    for begin in readings:
        reading = begin()
        next(reading)
        with pytest.raises(BufferError):
            kept.append(late)
        del reading  # the reading is over: nothing holds the columns
        assert len(kept) == 3
    kept.append(late)
    assert len(kept) == 4
