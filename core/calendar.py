"""Exchange calendars: when an exchange trades, from a maintained calendar library.

:class:`MarketCalendar` answers the questions schedules and risk rules ask —
is the exchange open at this instant, when does it next open or close, is
today an early close — for any exchange ``exchange_calendars`` knows by its
ISO 10383 code (``XNYS`` for the New York Stock Exchange, ``XNAS``, ``XLON``,
``XHKG``, …). Holidays, early closes, late opens and lunch breaks are the
library's; nothing here is a hand-written list.

The library is only read once per exchange and range and per process: its
schedule is copied into plain ``datetime`` tuples, so a query is a binary
search with no pandas in it (cheap enough for a risk filter to ask per order).

Every instant passed in must be timezone-aware; instants returned are UTC.
Nothing here reads the wall clock: callers pass the time their clock says.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from tradepipe.errors import ConfigError

#: The range a calendar covers unless told otherwise. Fixed, so a calendar does
#: not depend on the day it was loaded; the library projects future holidays
#: from its rules (an unplanned closure appears only once a release adds it).
DEFAULT_START = dt.date(2000, 1, 3)
DEFAULT_END = dt.date(2040, 12, 31)

_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Session:
    """One trading day of an exchange.

    :param day: the session's date, in the exchange's own time zone.
    :param open: when trading starts (UTC).
    :param close: when trading ends (UTC); the exchange is closed at this instant.
    :param break_start: start of a midday break (UTC), ``None`` for most exchanges.
    :param break_end: end of that break (UTC).
    :param early_close: the session closes before the exchange's regular close.
    :param late_open: the session opens after the exchange's regular open.
    """

    day: dt.date
    open: dt.datetime
    close: dt.datetime
    break_start: dt.datetime | None = None
    break_end: dt.datetime | None = None
    early_close: bool = False
    late_open: bool = False

    def is_open(self, at: dt.datetime) -> bool:
        """True when ``at`` falls in this session's trading hours (breaks excluded)."""
        if not self.open <= at < self.close:
            return False
        if self.break_start is not None and self.break_end is not None:
            return not self.break_start <= at < self.break_end
        return True


class MarketCalendar:
    """The trading sessions of one exchange.

    :param exchange: the library's code of the exchange, e.g. ``XNYS``.
    :param start: first day covered (default :data:`DEFAULT_START`).
    :param end: last day covered (default :data:`DEFAULT_END`).
    :raises ConfigError: the library does not know ``exchange``, or the range is
        outside what it covers.

    Questions about an instant outside ``start``…``end`` raise :class:`ValueError`.
    Calendars are cheap to make after the first: the library's data is loaded
    once per process for each exchange and range.
    """

    def __init__(
        self,
        exchange: str = "XNYS",
        *,
        start: dt.date = DEFAULT_START,
        end: dt.date = DEFAULT_END,
    ) -> None:
        self.exchange = exchange.upper()
        self.start = start
        self.end = end
        zone, sessions = _load(self.exchange, start, end)
        self.tz = ZoneInfo(zone)
        self._sessions = sessions
        self._days = [s.day for s in sessions]
        self._opens = [s.open for s in sessions]
        self._closes = [s.close for s in sessions]

    def __repr__(self) -> str:
        return f"MarketCalendar({self.exchange!r}, start={self.start}, end={self.end})"

    # -- days --------------------------------------------------------------------

    def session(self, at: dt.datetime | dt.date) -> Session | None:
        """The session on ``at``'s date in the exchange's time zone; ``None`` when it
        does not trade that day (a weekend or a holiday).

        A ``datetime`` is first converted to the exchange's time zone, so
        ``2026-03-03T03:00+00:00`` asks about 2 March in New York.
        """
        day = self._local_day(at)
        i = bisect.bisect_left(self._days, day)
        if i < len(self._days) and self._days[i] == day:
            return self._sessions[i]
        return None

    def is_session(self, day: dt.datetime | dt.date) -> bool:
        """True when the exchange trades on ``day`` (in its time zone)."""
        return self.session(day) is not None

    def is_early_close(self, day: dt.datetime | dt.date) -> bool:
        """True when the session on ``day`` closes before the regular time.

        ``False`` on a day without a session.
        """
        found = self.session(day)
        return found is not None and found.early_close

    def sessions(self, first: dt.date, last: dt.date) -> list[Session]:
        """Every session from ``first`` to ``last``, both included."""
        self._check_day(first)
        self._check_day(last)
        lo = bisect.bisect_left(self._days, first)
        hi = bisect.bisect_right(self._days, last)
        return list(self._sessions[lo:hi])

    # -- instants ----------------------------------------------------------------

    def is_open(self, at: dt.datetime) -> bool:
        """True when the exchange is trading at ``at`` (open ≤ at < close, not in a break)."""
        current = self._current(at)
        return current is not None and current.is_open(at)

    def current(self, at: dt.datetime) -> Session | None:
        """The session trading at ``at``, or ``None`` when the exchange is closed."""
        found = self._current(at)
        return found if found is not None and found.is_open(at) else None

    def next_open(self, at: dt.datetime) -> dt.datetime:
        """The first opening strictly after ``at`` (UTC).

        While a session is open this is the next session's open; breaks are not
        openings.
        """
        when = self._utc(at)
        i = bisect.bisect_right(self._opens, when)
        if i >= len(self._opens):
            raise ValueError(f"{self!r} has no session opening after {when.isoformat()}")
        return self._opens[i]

    def next_close(self, at: dt.datetime) -> dt.datetime:
        """The first closing strictly after ``at`` (UTC)."""
        when = self._utc(at)
        i = bisect.bisect_right(self._closes, when)
        if i >= len(self._closes):
            raise ValueError(f"{self!r} has no session closing after {when.isoformat()}")
        return self._closes[i]

    def previous_session(self, at: dt.datetime) -> Session | None:
        """The last session that closed at or before ``at``; ``None`` before the first."""
        when = self._utc(at)
        i = bisect.bisect_right(self._closes, when) - 1
        return self._sessions[i] if i >= 0 else None

    # -- helpers -----------------------------------------------------------------

    def _current(self, at: dt.datetime) -> Session | None:
        """The last session opened at or before ``at``, if ``at`` is before its close."""
        when = self._utc(at)
        i = bisect.bisect_right(self._opens, when) - 1
        if i < 0:
            return None
        found = self._sessions[i]
        return found if when < found.close else None

    def _utc(self, at: dt.datetime) -> dt.datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"{at.isoformat()} has no timezone; pass an aware datetime")
        when = at.astimezone(dt.UTC)
        self._check_day(when.astimezone(self.tz).date())
        return when

    def _local_day(self, at: dt.datetime | dt.date) -> dt.date:
        day = self._utc(at).astimezone(self.tz).date() if isinstance(at, dt.datetime) else at
        self._check_day(day)
        return day

    def _check_day(self, day: dt.date) -> None:
        if not self.start <= day <= self.end:
            raise ValueError(
                f"{day} is outside {self!r}; make a MarketCalendar with a wider start/end"
            )


@lru_cache(maxsize=16)
def _load(exchange: str, start: dt.date, end: dt.date) -> tuple[str, tuple[Session, ...]]:
    """The exchange's time zone and sessions, read from the library once per process."""
    # Imported here: the library and pandas take about a second to import,
    # which commands that never ask about market hours should not pay.
    with _LOCK, warnings.catch_warnings():
        # exchange_calendars trips pandas deprecation warnings on newer pandas;
        # they are the library's to fix and must not fail a run (or a test suite
        # run with warnings as errors). Only this block is silenced.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import exchange_calendars as xcals

        try:
            calendar = xcals.get_calendar(exchange, start=start.isoformat(), end=end.isoformat())
        except xcals.errors.InvalidCalendarName as exc:
            raise ConfigError(
                f"unknown exchange {exchange!r}; expected a calendar code such as XNYS, "
                "XNAS or XLON (exchange_calendars.get_calendar_names() lists them all)",
                key="exchange",
            ) from exc
        except ValueError as exc:  # a start or end outside the library's bounds
            raise ConfigError(f"exchange calendar {exchange}: {exc}", key="exchange") from exc
        early = {ts.date() for ts in calendar.early_closes}
        late = {ts.date() for ts in calendar.late_opens}
        schedule = calendar.schedule

        def instants(column: str) -> list[dt.datetime | None]:
            values = schedule[column]
            return [
                None if absent else ts.to_pydatetime().astimezone(dt.UTC)
                for ts, absent in zip(values, values.isna().tolist(), strict=True)
            ]

        opens, closes = instants("open"), instants("close")
        starts, ends = instants("break_start"), instants("break_end")
        sessions: list[Session] = []
        for n, label in enumerate(schedule.index):
            day = label.date()
            opened, closed = opens[n], closes[n]
            assert opened is not None and closed is not None  # every session has both
            sessions.append(
                Session(
                    day=day,
                    open=opened,
                    close=closed,
                    break_start=starts[n],
                    break_end=ends[n],
                    early_close=day in early,
                    late_open=day in late,
                )
            )
        return str(calendar.tz), tuple(sessions)
