"""The trading day at chosen instants: open, close, early close, holiday, weekend, maintenance."""

from __future__ import annotations

import datetime as dt

import pytest
from tradepipe import ConfigError
from tradepipe.schedule import Maintenance, MarketSchedule

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


NYSE = MarketSchedule("XNYS", wake_before=dt.timedelta(minutes=2))


def test_a_regular_day_opens_and_closes_with_the_exchange() -> None:
    before = NYSE.state(at(2026, 3, 2, 14))  # Monday, 09:00 New York (EST)
    assert (before.open, before.reason) == (False, "before the open")
    assert before.next_open == at(2026, 3, 2, 14, 30)
    assert before.wake_at == at(2026, 3, 2, 14, 28)
    assert before.changes_at == at(2026, 3, 2, 14, 28)  # it wakes first
    awake = NYSE.state(at(2026, 3, 2, 14, 29))
    assert awake.wake_at == at(2026, 3, 2, 14, 29) and awake.changes_at == at(2026, 3, 2, 14, 30)
    opened = NYSE.state(at(2026, 3, 2, 14, 30))
    assert opened.open and opened.next_close == at(2026, 3, 2, 21) and not opened.early_close
    assert opened.changes_at == at(2026, 3, 2, 21)
    assert opened.describe() == "open until 2026-03-02 21:00 UTC"
    closed = NYSE.state(at(2026, 3, 2, 21))
    assert (closed.open, closed.reason) == (False, "after the close")
    assert closed.next_open == at(2026, 3, 3, 14, 30)
    assert closed.describe() == "closed (after the close) until 2026-03-03 14:30 UTC"


def test_the_weekend_sleeps_until_monday_across_daylight_saving() -> None:
    saturday = NYSE.state(at(2026, 3, 7, 12))
    assert (saturday.open, saturday.reason) == (False, "weekend")
    # Clocks went forward on 8 March: Monday opens at 13:30 UTC, not 14:30.
    assert saturday.next_open == at(2026, 3, 9, 13, 30)
    assert saturday.wake_at == at(2026, 3, 9, 13, 28)


def test_a_holiday_and_an_early_close() -> None:
    thanksgiving = NYSE.state(at(2026, 11, 26, 16))
    assert (thanksgiving.open, thanksgiving.reason) == (False, "holiday")
    assert thanksgiving.next_open == at(2026, 11, 27, 14, 30)
    assert thanksgiving.early_close  # the next session closes early
    friday = NYSE.state(at(2026, 11, 27, 17, 59))
    assert friday.open and friday.early_close and friday.next_close == at(2026, 11, 27, 18)
    assert "an early close" in friday.describe()
    assert NYSE.state(at(2026, 11, 27, 18)).reason == "after the close"


def test_the_brokers_nightly_maintenance_window() -> None:
    window = Maintenance.parse("23:45-00:45")
    assert window is not None and str(window) == "23:45-00:45 America/New_York"
    always = MarketSchedule("always", maintenance=window)
    up = always.state(at(2026, 3, 3, 4, 44))  # 23:44 New York
    assert up.open and up.next_open is None and up.changes_at == at(2026, 3, 3, 4, 45)
    down = always.state(at(2026, 3, 3, 4, 45))
    assert (down.open, down.reason) == (False, "maintenance")
    assert down.maintenance_until == at(2026, 3, 3, 5, 45) == down.changes_at
    assert down.describe() == "broker maintenance until 2026-03-03 05:45 UTC"
    assert down.session_open  # the market itself never closed
    assert always.state(at(2026, 3, 3, 5, 45)).open
    # With an exchange: the window at night is still said to be maintenance.
    nyse = MarketSchedule("XNYS", maintenance=window)
    night = nyse.state(at(2026, 3, 3, 5))
    assert night.reason == "maintenance" and night.next_open == at(2026, 3, 3, 14, 30)
    assert not night.session_open


def test_always_is_always_open() -> None:
    always = MarketSchedule("always")
    state = always.state(at(2026, 3, 7, 3))
    assert state.open and state.changes_at is None and state.calendar == "always"
    assert always.session_at(at(2026, 3, 7, 3)) is not None
    assert always.previous_session(at(2026, 3, 7, 3)) is None


def test_sessions_for_the_feeds() -> None:
    assert NYSE.session_at(at(2026, 3, 2, 15)) == (at(2026, 3, 2, 14, 30), at(2026, 3, 2, 21))
    assert NYSE.session_at(at(2026, 3, 2, 22)) is None
    assert NYSE.previous_session(at(2026, 3, 9, 12)) == (at(2026, 3, 6, 14, 30), at(2026, 3, 6, 21))
    assert NYSE.next_open(at(2026, 3, 6, 22)) == at(2026, 3, 9, 13, 30)


def test_bad_calendars_and_windows_are_settings_errors() -> None:
    with pytest.raises(ConfigError, match=r"\[run\] calendar = 'NOPE'.*\"always\""):
        MarketSchedule("NOPE")
    for text in ("23:45", "25:00-01:00", "23:45-23:45", "23:45-00:45 Mars/Base"):
        with pytest.raises(ValueError, match="not a window"):
            Maintenance.parse(text)
    assert Maintenance.parse("") is None
    window = Maintenance.parse("22:00-23:00 UTC")
    assert window is not None and window.contains(at(2026, 3, 3, 22, 30))
