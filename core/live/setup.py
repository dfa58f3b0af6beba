"""Setting up a live run: its clock, its pipeline, its trading hours.

What :mod:`tradepipe.live.run` needs before the loop starts, from the settings,
the plugins and the components they name: a live feed (a replay feed in
``[run] feed`` gives way to ``[run] live_feed`` or the broker's own live feed;
one named on the command line must be live), the run's clock (the wall's, or faster
for a demo feed), and the market schedule of ``[run] calendar`` and the
broker's maintenance window.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from tradepipe.clock import LiveClock, ScaledClock, SystemClock
from tradepipe.errors import ConfigError
from tradepipe.host import PluginHost
from tradepipe.live.feed import LiveFeed
from tradepipe.pipeline import Pipeline, build_pipeline, make_component
from tradepipe.schedule import Maintenance, MarketSchedule
from tradepipe.settings import AppSettings

log = logging.getLogger(__name__)


def live_clock(feed: Any) -> LiveClock:
    """The clock of a live run on ``feed``: the wall's, or a faster one for a demo feed."""
    speed = float(getattr(feed, "speed", 1.0))
    return SystemClock() if speed == 1.0 else ScaledClock(speed=speed)


def build_live_pipeline(
    settings: AppSettings, host: PluginHost, *, clock: LiveClock | None = None
) -> Pipeline:
    """The pipeline of a live run: a live feed, and the run's clock given to every component.

    :raises ConfigError: ``[run] feed`` is not a live feed.
    """
    settings = with_live_feed(settings, host)
    name = settings.run.feed
    if clock is None:
        clock = live_clock(require_live_feed(make_component(host, settings, "feed", name), host))
    pipeline = build_pipeline(settings, host, clock=clock)
    require_live_feed(pipeline.feed, host)
    if not settings.run.session and not pipeline.broker.simulated:
        log.warning(
            "live run on broker %s without a fixed [run] session: a restart would start a "
            "new session and could not tell which decisions this one already sent; set "
            '[run] session (for example "%s-live") before leaving it running',
            pipeline.broker.name,
            pipeline.broker.name,
        )
    return pipeline


def with_live_feed(settings: AppSettings, host: PluginHost) -> AppSettings:
    """``settings`` with ``[run] feed`` a live feed.

    A replay feed in ``[run] feed`` (the demo's ``synthetic``) gives way to
    ``[run] live_feed``, else to the broker's own live feed (IBKR's stream, the
    simulator's synthetic market), saying so; a live feed stays as it is.
    """
    run = settings.run
    if issubclass(host.component("feed", run.feed), LiveFeed):
        return settings
    broker_feed: str = getattr(host.component("broker", run.broker), "live_feed", "")
    instead = run.live_feed or broker_feed
    if not instead:
        return settings  # require_live_feed says what to do
    log.info(
        "[run] feed %s replays history: this live run uses %s (%s)",
        run.feed,
        instead,
        "[run] live_feed" if run.live_feed else f"broker {run.broker}'s live feed",
    )
    return settings.model_copy(update={"run": run.model_copy(update={"feed": instead})})


def require_live_feed(feed: Any, host: PluginHost) -> LiveFeed:
    """``feed`` if it is live, else a :class:`ConfigError` naming the live feeds there are."""
    if isinstance(feed, LiveFeed):
        return feed
    live = sorted(
        name for name, reg in host.components("feed").items() if issubclass(reg.cls, LiveFeed)
    )
    raise ConfigError(
        f"[run] feed = {feed.name!r} replays history and cannot run live; "
        f"live feeds: {', '.join(live) or 'none installed'}",
        key="run.feed",
    )


def market_schedule(pipeline: Pipeline) -> MarketSchedule:
    """The hours a live run of ``pipeline`` trades, from ``[run]``, its feed and its broker.

    :raises ConfigError: an unknown calendar or a bad maintenance window.
    """
    run = pipeline.settings.run
    feed = pipeline.feed
    calendar = run.calendar or getattr(feed, "default_calendar", None) or "XNYS"
    window = run.maintenance_window
    source = "[run] maintenance_window"
    if window == "broker":
        window = pipeline.broker.maintenance_window
        source = f"broker {pipeline.broker.name!r}'s maintenance_window"
    try:
        maintenance = Maintenance.parse(window)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}", key="run.maintenance_window") from exc
    return MarketSchedule(
        calendar,
        maintenance=maintenance,
        wake_before=timedelta(seconds=run.wake_before_open_seconds),
    )
