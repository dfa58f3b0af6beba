"""The simulator's trading date of a bar's time: a DAY order expires when it changes."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from tradepipe.brokers.paper.fills import TradingDates


def _minutes(start: dt.datetime, hours: int, step: int = 1) -> list[dt.datetime]:
    return [start + dt.timedelta(minutes=m) for m in range(0, hours * 60, step)]


@pytest.mark.parametrize(
    ("zone", "around"),
    [
        # New York's clocks go forward and back at 2:00 (23- and 25-hour days).
        ("America/New_York", dt.datetime(2026, 3, 7, tzinfo=dt.UTC)),
        ("America/New_York", dt.datetime(2026, 10, 31, tzinfo=dt.UTC)),
        # Santiago's change at midnight: 2026-09-06 has no local midnight.
        ("America/Santiago", dt.datetime(2026, 9, 5, tzinfo=dt.UTC)),
        ("America/Santiago", dt.datetime(2026, 4, 4, tzinfo=dt.UTC)),
        ("Asia/Tokyo", dt.datetime(2026, 12, 30, tzinfo=dt.UTC)),
        # St John's turned its clocks back at 00:01 to 23:01: 29 October 2006 came,
        # went back to the 28th for an hour, and came again.
        ("America/St_Johns", dt.datetime(2006, 10, 28, tzinfo=dt.UTC)),
    ],
)
def test_every_time_gets_the_date_its_timezone_gives_it(zone: str, around: dt.datetime) -> None:
    tz = ZoneInfo(zone)
    dates = TradingDates(tz)
    times = _minutes(around, 72)
    for ts in times:  # in order, as a replay's bars come
        assert dates.of(ts) == ts.astimezone(tz).date(), ts
    shuffled = times[:]
    random.Random(7).shuffle(shuffled)
    for ts in shuffled:  # and out of order, as a live feed's late bar may
        assert dates.of(ts) == ts.astimezone(tz).date(), ts


def test_times_in_another_timezone_are_dated_in_the_exchanges() -> None:
    tz = ZoneInfo("America/New_York")
    dates = TradingDates(tz)
    tokyo = ZoneInfo("Asia/Tokyo")
    # 09:30 in Tokyo on 3 March is 19:30 on 2 March in New York.
    assert dates.of(dt.datetime(2026, 3, 3, 9, 30, tzinfo=tokyo)) == dt.date(2026, 3, 2)
    assert dates.of(dt.datetime(2026, 3, 3, 14, 30, tzinfo=tokyo)) == dt.date(2026, 3, 3)
    assert dates.of(dt.datetime(2026, 3, 3, 4, 59, tzinfo=dt.UTC)) == dt.date(2026, 3, 2)
    assert dates.of(dt.datetime(2026, 3, 3, 5, 0, tzinfo=dt.UTC)) == dt.date(2026, 3, 3)


def test_a_time_without_a_timezone_is_dated_as_before() -> None:
    # As datetime.astimezone takes it: the machine's local time.
    dates = TradingDates(ZoneInfo("America/New_York"))
    aware = dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC)
    assert dates.of(aware) == dt.date(2026, 3, 3)
    naive = dt.datetime(2026, 3, 4, 12)
    assert dates.of(naive) == naive.astimezone(ZoneInfo("America/New_York")).date()
