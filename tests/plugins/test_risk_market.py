"""market_hours: regular hours, holidays, early closes, DST, extended hours, maintenance."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time
from risk_fakes import FakeContext, decision, intent
from tradepipe.clock import SystemClock
from tradepipe.plugins.risk.market import MarketHours, in_window
from tradepipe.risk import Outcome

UTC = dt.UTC
FILTER = MarketHours()


def at(when: str, outside_rth: bool = False) -> Outcome:
    ctx = FakeContext(when=dt.datetime.fromisoformat(when))
    return FILTER.check(intent(outside_rth=outside_rth), decision(), ctx).outcome


def test_regular_hours_pass_with_the_session_in_the_figures() -> None:
    ctx = FakeContext(when=dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC))
    check = FILTER.check(intent(), decision(), ctx)
    assert (check.outcome, check.reason) == (Outcome.PASS, "regular trading hours")
    assert check.figures["open"] == dt.datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    assert check.figures["close"] == dt.datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    assert check.figures["exchange"] == "XNYS" and check.figures["early_close"] is False


def test_open_and_close_instants() -> None:
    assert at("2026-03-02T09:29:59-05:00") is Outcome.DENY
    assert at("2026-03-02T09:30:00-05:00") is Outcome.PASS
    assert at("2026-03-02T15:59:59-05:00") is Outcome.PASS
    assert at("2026-03-02T16:00:00-05:00") is Outcome.DENY


def test_a_holiday_denies_even_outside_rth() -> None:
    # Martin Luther King Jr. Day 2026
    ctx = FakeContext(when=dt.datetime(2026, 1, 19, 15, 0, tzinfo=UTC))
    check = FILTER.check(intent(outside_rth=True), decision(), ctx)
    assert (check.outcome, check.reason) == (Outcome.DENY, "XNYS does not trade on 2026-01-19")


def test_weekends_deny() -> None:
    assert at("2026-03-07T11:00:00-05:00", outside_rth=True) is Outcome.DENY


def test_early_close_day() -> None:
    # The day after Thanksgiving closes at 13:00; extended hours end at 17:00.
    assert at("2026-11-27T12:59:00-05:00") is Outcome.PASS
    assert at("2026-11-27T13:00:00-05:00") is Outcome.DENY
    assert at("2026-11-27T16:59:00-05:00", outside_rth=True) is Outcome.PASS
    assert at("2026-11-27T17:00:00-05:00", outside_rth=True) is Outcome.DENY


def test_extended_hours_only_when_the_order_says_so() -> None:
    assert at("2026-03-02T04:00:00-05:00", outside_rth=True) is Outcome.PASS
    assert at("2026-03-02T03:59:00-05:00", outside_rth=True) is Outcome.DENY
    assert at("2026-03-02T19:59:00-05:00", outside_rth=True) is Outcome.PASS
    assert at("2026-03-02T20:00:00-05:00", outside_rth=True) is Outcome.DENY
    assert at("2026-03-02T19:59:00-05:00") is Outcome.DENY


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Friday before the switch to daylight time: 13:45 UTC is 08:45 EST, pre-market.
        ("2026-03-06 13:45:00", Outcome.DENY),
        # Monday after it: 13:45 UTC is 09:45 EDT, open.
        ("2026-03-09 13:45:00", Outcome.PASS),
        ("2026-03-09 20:00:00", Outcome.DENY),  # 16:00 EDT
    ],
)
def test_dst_edge_with_the_wall_clock(utc: str, expected: Outcome) -> None:
    with freeze_time(utc):
        ctx = FakeContext(when=SystemClock().now())
        assert FILTER.check(intent(), decision(), ctx).outcome is expected


@pytest.mark.parametrize(
    "local", ["2026-03-02T23:45:00-05:00", "2026-03-03T00:30:00-05:00", "2026-07-01T23:50:00-04:00"]
)
def test_the_maintenance_window_denies(local: str) -> None:
    ctx = FakeContext(when=dt.datetime.fromisoformat(local))
    check = FILTER.check(intent(outside_rth=True), decision(), ctx)
    assert check.outcome is Outcome.DENY
    assert check.reason == "in the broker's maintenance window 23:45-00:45 America/New_York"


def test_maintenance_window_is_configurable_and_can_be_off() -> None:
    # A window over the regular session (an odd choice, but it shows the setting applies).
    noon = MarketHours(
        MarketHours.Settings(maintenance_start=dt.time(11, 0), maintenance_end=dt.time(12, 0))
    )
    ctx = FakeContext(
        when=dt.datetime(2026, 3, 2, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    )
    assert noon.check(intent(), decision(), ctx).outcome is Outcome.DENY
    off = MarketHours(MarketHours.Settings(maintenance_start=None))
    late = FakeContext(when=dt.datetime.fromisoformat("2026-03-02T23:50:00-05:00"))
    check = off.check(intent(outside_rth=True), decision(), late)
    assert "extended hours" in check.reason  # denied for the hours, not maintenance


def test_in_window_across_midnight() -> None:
    start, end = dt.time(23, 45), dt.time(0, 45)
    assert in_window(dt.time(23, 45), start, end)
    assert in_window(dt.time(0, 44), start, end)
    assert not in_window(dt.time(0, 45), start, end)
    assert not in_window(dt.time(12, 0), start, end)
    assert in_window(dt.time(12, 0), dt.time(11), dt.time(13))
