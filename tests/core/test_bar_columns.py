"""Bars kept as columns give back exactly the bars put in, in a seventh of the memory."""

from __future__ import annotations

import datetime as dt
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st
from tradepipe.market import Bar, BarColumns

UTC = dt.UTC
times = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2199, 12, 31), timezones=st.just(UTC)
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
