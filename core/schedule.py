"""When a live run may trade: the exchange's sessions and the broker's maintenance window.

:class:`MarketSchedule` answers, for an instant on the run's clock, whether
the market is open, why not (a weekend, a holiday, before the open, after the
close, the broker's nightly maintenance), and when it next opens and closes.
Sessions come from the exchange calendar (:class:`~tradepipe.calendar.MarketCalendar`:
holidays, early closes, daylight saving); ``calendar = "always"`` trades
around the clock. The maintenance window is a time of day in a time zone,
possibly across midnight (IBKR resets its systems every night, 23:45–00:45
New York); nothing is sent while it lasts.

A sleeping run wakes ``wake_before`` ahead of the next open: feeds reconnect
and indicators are ready at the bell. Nothing here reads the wall clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from tradepipe.calendar import MarketCalendar
from tradepipe.errors import ConfigError

ALWAYS = "always"
_FAR = dt.timedelta(days=3660)


def in_window(at: dt.time, start: dt.time, end: dt.time) -> bool:
    """``start <= at < end``, for a window that may cross midnight."""
    if start <= end:
        return start <= at < end
    return at >= start or at < end


@dataclass(frozen=True)
class Maintenance:
    """A daily window, local to ``zone``, during which the broker is down."""

    start: dt.time
    end: dt.time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: str = "America/New_York") -> Maintenance | None:
        """``"23:45-00:45"`` (optionally followed by a time zone) as a window; ``""`` is none.

        :raises ValueError: anything else, saying what is expected.
        """
        text = text.strip()
        if not text:
            return None
        span, _, named = text.partition(" ")
        first, sep, second = span.partition("-")
        try:
            start, end = dt.time.fromisoformat(first), dt.time.fromisoformat(second)
            where = ZoneInfo(named.strip() or zone)
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"{text!r} is not a window; expected e.g. '23:45-00:45' or "
                "'23:45-00:45 America/New_York'"
            ) from exc
        if not sep or start == end:
            raise ValueError(f"{text!r} is not a window; expected e.g. '23:45-00:45'")
        return cls(start, end, where)

    def contains(self, at: dt.datetime) -> bool:
        return in_window(at.astimezone(self.zone).time().replace(tzinfo=None), self.start, self.end)

    def starts_after(self, at: dt.datetime) -> dt.datetime:
        """The next start of the window after ``at`` (UTC)."""
        local = at.astimezone(self.zone)
        start = dt.datetime.combine(local.date(), self.start, self.zone)
        if start <= local:
            start = dt.datetime.combine(local.date() + dt.timedelta(days=1), self.start, self.zone)
        return start.astimezone(dt.UTC)

    def ends_after(self, at: dt.datetime) -> dt.datetime:
        """The end of the window ``at`` falls in (UTC)."""
        local = at.astimezone(self.zone)
        end = dt.datetime.combine(local.date(), self.end, self.zone)
        if end <= local:
            end = dt.datetime.combine(local.date() + dt.timedelta(days=1), self.end, self.zone)
        return end.astimezone(dt.UTC)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}"


@dataclass(frozen=True)
class MarketState:
    """The market at one instant, as a live run and its status see it.

    :param open: orders may be sent now (the session is open, the broker is up).
    :param reason: ``open``, or why not: ``weekend``, ``holiday``, ``before the open``,
        ``after the close``, ``maintenance``.
    :param next_open: the next opening (``None`` when trading around the clock).
    :param next_close: the end of the session in progress, else of the next one.
    :param wake_at: when a sleeping run wakes for the next open (``None`` while open).
    :param changes_at: the next instant this answer may change (``None``: never).
    """

    open: bool
    reason: str
    calendar: str
    next_open: dt.datetime | None = None
    next_close: dt.datetime | None = None
    early_close: bool = False
    wake_at: dt.datetime | None = None
    maintenance_until: dt.datetime | None = None
    changes_at: dt.datetime | None = None
    #: The exchange's session is open (also while the broker is in maintenance).
    session_open: bool = False

    def describe(self) -> str:
        """One line for people: ``open until 16:00 …`` or ``closed (weekend) until …``."""
        if self.open:
            if self.next_close is None:
                return "open (trading around the clock)"
            early = ", an early close" if self.early_close else ""
            return f"open until {self.next_close:%Y-%m-%d %H:%M} UTC{early}"
        if self.reason == "maintenance" and self.maintenance_until is not None:
            return f"broker maintenance until {self.maintenance_until:%Y-%m-%d %H:%M} UTC"
        when = f" until {self.next_open:%Y-%m-%d %H:%M} UTC" if self.next_open else ""
        return f"closed ({self.reason}){when}"


class MarketSchedule:
    """The sessions of ``calendar`` (an exchange code, or ``"always"``) and a maintenance window.

    :raises ConfigError: an exchange the calendar library does not know.
    """

    def __init__(
        self,
        calendar: str = "XNYS",
        *,
        maintenance: Maintenance | None = None,
        wake_before: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        self.name = calendar.strip() or "XNYS"
        self.always = self.name.lower() == ALWAYS
        self.calendar: MarketCalendar | None = None
        if not self.always:
            try:
                self.calendar = MarketCalendar(self.name)
            except ConfigError as exc:
                raise ConfigError(
                    f'[run] calendar = {self.name!r}: {exc}; or "always" to trade around the clock',
                    key="run.calendar",
                ) from exc
            self.name = self.calendar.exchange
        self.maintenance = maintenance
        self.wake_before = wake_before

    # -- what the feeds ask ------------------------------------------------------

    def session_at(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        if self.calendar is None:
            return at - _FAR, at + _FAR
        session = self.calendar.current(at)
        return None if session is None else (session.open, session.close)

    def next_open(self, at: dt.datetime) -> dt.datetime:
        if self.calendar is None:
            return at
        return self.calendar.next_open(at)

    def previous_session(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        if self.calendar is None:
            return None
        session = self.calendar.previous_session(at)
        return None if session is None else (session.open, session.close)

    def close_after(self, at: dt.datetime) -> dt.datetime:
        """The first close after ``at`` (a day later when trading around the clock)."""
        if self.calendar is None:
            return at + dt.timedelta(days=1)
        return self.calendar.next_close(at)

    # -- what the run asks -------------------------------------------------------

    def is_open(self, at: dt.datetime) -> bool:
        return self.state(at).open

    def state(self, at: dt.datetime) -> MarketState:
        """The market at ``at``: open or why not, and what comes next."""
        calendar = self.calendar
        if calendar is None:
            state = MarketState(True, "open", ALWAYS, session_open=True)
        else:
            session = calendar.current(at)
            next_open = calendar.next_open(at)
            if session is not None:
                state = MarketState(
                    True,
                    "open",
                    self.name,
                    next_open=next_open,
                    next_close=session.close,
                    early_close=session.early_close,
                    session_open=True,
                )
            else:
                state = MarketState(
                    False,
                    self._closed_because(at, next_open),
                    self.name,
                    next_open=next_open,
                    next_close=calendar.next_close(at),
                    early_close=calendar.is_early_close(next_open),
                    wake_at=max(at, next_open - self.wake_before),
                )
        window = self.maintenance
        changes = [
            t
            for t in (state.next_close if state.open else None, state.next_open, state.wake_at)
            if t is not None and t > at
        ]
        if window is not None and window.contains(at):
            until = window.ends_after(at)
            return MarketState(
                False,
                "maintenance",
                state.calendar,
                next_open=state.next_open if not state.session_open else until,
                next_close=state.next_close,
                early_close=state.early_close,
                wake_at=until if state.wake_at is None else max(until, state.wake_at),
                maintenance_until=until,
                changes_at=min([*changes, until]),
                session_open=state.session_open,
            )
        if window is not None:
            changes.append(window.starts_after(at))
        return replace(state, changes_at=min(changes) if changes else None)

    def _closed_because(self, at: dt.datetime, next_open: dt.datetime) -> str:
        assert self.calendar is not None
        tz = self.calendar.tz
        today = at.astimezone(tz).date()
        session = self.calendar.session(at)
        if session is not None:
            return "before the open" if at < session.open else "after the close"
        if today.weekday() >= 5:
            return "weekend"
        return "holiday"
