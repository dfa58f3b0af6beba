"""The exchange calendar, checked against real NYSE dates (holidays, early closes, DST)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from tradepipe.calendar import MarketCalendar, _load
from tradepipe.errors import ConfigError

NY = ZoneInfo("America/New_York")
UTC = dt.UTC


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, s, tzinfo=NY)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def nyse() -> MarketCalendar:
    return MarketCalendar("XNYS")


def test_a_regular_day(nyse: MarketCalendar) -> None:
    day = nyse.session(dt.date(2026, 3, 2))  # a Monday in winter (EST)
    assert day is not None
    assert (day.open, day.close) == (utc(2026, 3, 2, 14, 30), utc(2026, 3, 2, 21, 0))
    assert not day.early_close and not day.late_open
    assert not nyse.is_open(ny(2026, 3, 2, 9, 29, 59))
    assert nyse.is_open(ny(2026, 3, 2, 9, 30))
    assert nyse.is_open(ny(2026, 3, 2, 15, 59, 59))
    assert not nyse.is_open(ny(2026, 3, 2, 16, 0))  # the close itself is closed
    assert nyse.current(ny(2026, 3, 2, 12, 0)) == day
    assert nyse.current(ny(2026, 3, 2, 17, 0)) is None
    # While open, the next open is tomorrow's; the next close is today's.
    assert nyse.next_open(ny(2026, 3, 2, 12, 0)) == utc(2026, 3, 3, 14, 30)
    assert nyse.next_close(ny(2026, 3, 2, 12, 0)) == utc(2026, 3, 2, 21, 0)


def test_a_datetime_asks_about_its_date_in_new_york(nyse: MarketCalendar) -> None:
    # 02:00 UTC on the 3rd is still the evening of the 2nd in New York.
    found = nyse.session(utc(2026, 3, 3, 2, 0))
    assert found is not None and found.day == dt.date(2026, 3, 2)


def test_a_weekend(nyse: MarketCalendar) -> None:
    saturday = ny(2026, 3, 7, 12, 0)
    assert nyse.session(saturday) is None
    assert not nyse.is_session(dt.date(2026, 3, 8))
    assert not nyse.is_open(saturday)
    assert not nyse.is_early_close(dt.date(2026, 3, 7))
    # Monday's open, after the switch to daylight time on Sunday 8 March: 13:30 UTC.
    assert nyse.next_open(saturday) == utc(2026, 3, 9, 13, 30)


def test_the_monday_after_the_march_switch_opens_at_0930_new_york(nyse: MarketCalendar) -> None:
    # Friday before the switch: 09:30 EST is 14:30 UTC.
    assert not nyse.is_open(utc(2026, 3, 6, 13, 30))
    assert nyse.is_open(utc(2026, 3, 6, 14, 30))
    # Monday after it: 09:30 EDT is 13:30 UTC, an hour earlier in UTC.
    assert nyse.is_open(ny(2026, 3, 9, 9, 30))
    assert nyse.is_open(utc(2026, 3, 9, 13, 30))
    assert not nyse.is_open(ny(2026, 3, 9, 9, 29))
    assert not nyse.is_open(utc(2026, 3, 9, 20, 0))  # 16:00 EDT
    assert nyse.next_close(ny(2026, 3, 9, 9, 30)) == utc(2026, 3, 9, 20, 0)


def test_the_november_switch_back(nyse: MarketCalendar) -> None:
    friday, monday = nyse.session(dt.date(2026, 10, 30)), nyse.session(dt.date(2026, 11, 2))
    assert friday is not None and monday is not None
    assert friday.open == utc(2026, 10, 30, 13, 30)
    assert monday.open == utc(2026, 11, 2, 14, 30)


def test_thanksgiving_and_the_early_close_after_it(nyse: MarketCalendar) -> None:
    thanksgiving = dt.date(2026, 11, 26)
    assert nyse.session(thanksgiving) is None
    assert not nyse.is_open(ny(2026, 11, 26, 11, 0))
    assert nyse.next_open(ny(2026, 11, 26, 11, 0)) == utc(2026, 11, 27, 14, 30)
    friday = nyse.session(dt.date(2026, 11, 27))
    assert friday is not None and friday.early_close
    assert nyse.is_early_close(dt.date(2026, 11, 27))
    assert friday.close == utc(2026, 11, 27, 18, 0)  # 13:00 New York
    assert nyse.is_open(ny(2026, 11, 27, 12, 59))
    assert not nyse.is_open(ny(2026, 11, 27, 13, 0))
    assert nyse.next_close(ny(2026, 11, 27, 10, 0)) == utc(2026, 11, 27, 18, 0)


def test_christmas_eve_closes_early_and_christmas_is_a_holiday(nyse: MarketCalendar) -> None:
    assert nyse.is_early_close(dt.date(2026, 12, 24))
    assert not nyse.is_early_close(dt.date(2026, 12, 23))
    assert nyse.is_open(ny(2026, 12, 24, 12, 30))
    assert not nyse.is_open(ny(2026, 12, 24, 13, 30))
    assert nyse.session(dt.date(2026, 12, 25)) is None
    # From the early close, the next open skips Christmas and the weekend.
    assert nyse.next_open(ny(2026, 12, 24, 13, 0)) == utc(2026, 12, 28, 14, 30)


def test_other_holidays_come_from_the_library(nyse: MarketCalendar) -> None:
    for day in (
        dt.date(2026, 1, 19),  # Martin Luther King Jr. Day
        dt.date(2026, 4, 3),  # Good Friday
        dt.date(2026, 7, 3),  # Independence Day, observed (the 4th is a Saturday)
    ):
        assert not nyse.is_session(day), day


def test_years_ahead(nyse: MarketCalendar) -> None:
    assert not nyse.is_session(dt.date(2031, 11, 27))  # Thanksgiving 2031
    assert nyse.is_early_close(dt.date(2031, 11, 28))
    assert not nyse.is_session(dt.date(2032, 12, 24))  # Christmas 2032 is a Saturday
    assert nyse.is_session(dt.date(2032, 12, 31))  # …but New Year's Day 2033 is not observed
    assert nyse.is_open(ny(2035, 6, 4, 10, 0))


def test_sessions_between_two_days(nyse: MarketCalendar) -> None:
    week = nyse.sessions(dt.date(2026, 11, 23), dt.date(2026, 11, 29))
    assert [s.day.day for s in week] == [23, 24, 25, 27]
    assert [s.early_close for s in week] == [False, False, False, True]


def test_naive_times_and_times_out_of_range_are_refused(nyse: MarketCalendar) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        nyse.is_open(dt.datetime(2026, 3, 2, 15, 0))
    with pytest.raises(ValueError, match="outside"):
        nyse.is_open(utc(2041, 1, 2, 15, 0))
    with pytest.raises(ValueError, match="outside"):
        nyse.session(dt.date(1999, 12, 31))
    short = MarketCalendar("XNYS", start=dt.date(2026, 1, 2), end=dt.date(2026, 12, 31))
    with pytest.raises(ValueError, match="no session opening after"):
        short.next_open(ny(2026, 12, 31, 12, 0))


def test_an_unknown_exchange_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown exchange 'NOPE'"):
        MarketCalendar("NOPE")


def test_the_library_is_read_once_per_process(nyse: MarketCalendar) -> None:
    before = _load.cache_info()
    again = MarketCalendar("xnys")  # the code is case-insensitive
    assert _load.cache_info().hits == before.hits + 1
    assert again.session(dt.date(2026, 3, 2)) is nyse.session(dt.date(2026, 3, 2))


def test_lunch_breaks_are_closed() -> None:
    hong_kong = MarketCalendar("XHKG", start=dt.date(2025, 1, 2), end=dt.date(2025, 12, 31))
    hk = ZoneInfo("Asia/Hong_Kong")
    assert hong_kong.is_open(dt.datetime(2025, 3, 3, 11, 0, tzinfo=hk))
    assert not hong_kong.is_open(dt.datetime(2025, 3, 3, 12, 30, tzinfo=hk))
    assert hong_kong.is_open(dt.datetime(2025, 3, 3, 13, 0, tzinfo=hk))
    # A break is not an opening.
    assert hong_kong.next_open(dt.datetime(2025, 3, 3, 12, 30, tzinfo=hk)).date() == dt.date(
        2025, 3, 4
    )
