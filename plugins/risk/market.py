"""``market_hours``: trade in the exchange's hours, never in IBKR's maintenance window.

Regular hours, holidays and early closes come from the exchange calendar
(:class:`~tradepipe.calendar.MarketCalendar`). An order whose intent says
``outside_rth`` may also go in the extended session of a trading day (04:00 to
20:00 New York by default; to 17:00 after an early close). IBKR's nightly
maintenance window (default 23:45 to 00:45 New York, see the Web API notes
§2.3) denies every order: the broker drops sessions then.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from tradepipe import (
    Check,
    ComponentSettings,
    Decision,
    OrderIntent,
    RiskContext,
    RiskFilter,
    hookimpl,
)
from tradepipe.calendar import MarketCalendar
from tradepipe.schedule import in_window

__all__ = ["MarketHours", "in_window"]


class MarketHours(RiskFilter):
    """Deny orders outside the exchange's hours or in the broker's maintenance window."""

    name = "market_hours"
    description = "regular hours from the exchange calendar; extended hours with outside_rth"

    class Settings(ComponentSettings):
        exchange: str = "XNYS"
        #: Extended session (exchange local time) for orders marked outside_rth.
        extended_open: dt.time = dt.time(4, 0)
        extended_close: dt.time = dt.time(20, 0)
        #: Where the extended session ends after an early close.
        early_close_extended_close: dt.time = dt.time(17, 0)
        #: The broker's nightly maintenance window; crossing midnight is fine.
        maintenance_start: dt.time | None = dt.time(23, 45)
        maintenance_end: dt.time | None = dt.time(0, 45)
        maintenance_timezone: str = Field(default="America/New_York")

    settings: Settings

    def __init__(self, settings: ComponentSettings | None = None) -> None:
        super().__init__(settings)
        self._calendar: MarketCalendar | None = None
        self._maintenance_tz = ZoneInfo(self.settings.maintenance_timezone)

    @property
    def calendar(self) -> MarketCalendar:
        # Loaded on first use: reading the library takes about a second.
        if self._calendar is None:
            self._calendar = MarketCalendar(self.settings.exchange)
        return self._calendar

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        now = ctx.now()
        s = self.settings
        if s.maintenance_start is not None and s.maintenance_end is not None:
            local = now.astimezone(self._maintenance_tz).time()
            if in_window(local, s.maintenance_start, s.maintenance_end):
                return self.deny(
                    f"in the broker's maintenance window {s.maintenance_start:%H:%M}-"
                    f"{s.maintenance_end:%H:%M} {s.maintenance_timezone}",
                    now=now,
                )
        calendar = self.calendar
        session = calendar.session(now)
        figures: dict[str, Any] = {"now": now, "exchange": calendar.exchange}
        if session is not None:
            figures["open"] = session.open
            figures["close"] = session.close
            figures["early_close"] = session.early_close
        if session is not None and session.is_open(now):
            return self.allow("regular trading hours", **figures)
        if session is None:
            return self.deny(
                f"{calendar.exchange} does not trade on {now.astimezone(calendar.tz).date()}",
                **figures,
            )
        if not intent.outside_rth:
            return self.deny(
                f"outside {calendar.exchange} regular hours, and the order is not outside_rth",
                **figures,
            )
        local = now.astimezone(calendar.tz).time()
        close = s.early_close_extended_close if session.early_close else s.extended_close
        figures["extended_open"] = s.extended_open.isoformat()
        figures["extended_close"] = close.isoformat()
        if s.extended_open <= local < close:
            return self.allow("extended hours, order is outside_rth", **figures)
        return self.deny(
            f"outside {calendar.exchange} extended hours {s.extended_open:%H:%M}-{close:%H:%M}",
            **figures,
        )


@hookimpl
def tradepipe_register_risk_filters(register: Any) -> None:
    register(MarketHours)
