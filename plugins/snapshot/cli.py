"""``tradepipe snapshot``: write the snapshot files once, or on a schedule in market hours.

One-shot by default, for cron and CI. ``--every 5m`` keeps running: a snapshot
every five minutes while the exchange (``[snapshot] exchange``) is open,
nothing while it is closed, sleeping until the next snapshot or the next open;
``--always`` ignores the hours. Ctrl-C stops it at once: a file being written
is left as it was (the writes are atomic), and the broker is disconnected.

Demo data follows ``[snapshot] demo_fallback``: it is chosen when the command
starts and the configured broker cannot be used. A running schedule keeps
trying the configured broker and switches to it as soon as it answers; once it
has written real data it never goes back to the demo (a later failure leaves
the files as they were and is retried on the next cycle).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from tradepipe.calendar import MarketCalendar
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.clock import Clock, SystemClock
from tradepipe.errors import BrokerError, ConfigError, TradepipeError
from tradepipe.plugins.snapshot.files import Outcome, take_snapshot
from tradepipe.plugins.snapshot.source import (
    FALLBACK,
    BrokerNotConfigured,
    Source,
    open_configured,
    open_source,
)
from tradepipe.settings import MIN_EVERY, AppSettings, parse_duration

log = logging.getLogger(__name__)

#: Where a run's messages go: one dict per event (printed as a line or as JSON).
Say = Callable[[dict[str, Any]], None]

# Module attributes rather than direct calls, so tests can stand in for time.
sleep: Callable[[float], None] = time.sleep
clock: Clock = SystemClock()


class Snapshotter:
    """Keeps the source of a run of snapshots and takes them one after another."""

    def __init__(
        self, app: AppContext, settings: AppSettings, out: Path, *, html: bool, say: Say
    ) -> None:
        self.app = app
        self.settings = settings
        self.out = out
        self.html = html
        self.say = say
        self.source: Source | None = None
        redaction = app.redaction
        self.redact = redaction.redact if redaction is not None else None
        self.count = 0
        self._fresh = False

    def start(self) -> None:
        """Open the source: the configured broker, or the demo if allowed.

        :raises TradepipeError: the broker cannot be used and the demo is not allowed.
        """
        fallback = self.settings.snapshot.demo_fallback
        self._use(open_source(self.app.host, self.settings, clock, fallback=fallback))

    def _use(self, source: Source) -> None:
        self.source = source
        self._fresh = True
        if source.demo:
            self.say({"event": "demo", "reason": source.demo_reason})

    def cycle(self) -> Outcome:
        """Take one snapshot, reconnecting or leaving the demo first where that applies."""
        if not self._fresh:
            self._reopen()
        self._fresh = False
        source = self.source
        assert source is not None
        outcome = take_snapshot(
            source,
            self.settings.snapshot,
            self.out,
            clock.now(),
            secrets=self.settings.secret_values(),
            redact=self.redact,
            html=self.html,
        )
        self.count += 1
        self.say({"event": "written", **outcome.as_dict()})
        if outcome.failed and not source.demo:
            # Likely a lost session: start from a fresh connection next time.
            self.close()
        return outcome

    def _reopen(self) -> None:
        """Reconnect a dropped broker; on the demo, see whether the broker is back."""
        current = self.source
        if current is not None and not current.demo:
            return
        try:
            found = open_configured(self.app.host, self.settings)
        except FALLBACK as exc:
            if current is None:
                # Real data was written before: never replace it with the demo's.
                raise
            log.info("snapshot: still demo data: %s", exc)
            return
        self.close()
        self.say({"event": "broker", "broker": found.broker.name})
        self._use(found)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None


def run_every(
    cycle: Callable[[], Any],
    every: dt.timedelta,
    calendar: MarketCalendar | None,
    say: Say,
    *,
    now: Callable[[], dt.datetime],
    wait: Callable[[float], None],
) -> None:
    """Call ``cycle`` every ``every`` while ``calendar`` says the exchange is open.

    Runs until interrupted. While the exchange is closed nothing is called and
    the loop sleeps until the next open, where the count starts again; with
    ``calendar`` ``None`` the hours are ignored. Slots missed because a cycle
    took longer than ``every`` are skipped, not caught up.
    """
    due = now()
    while True:
        current = now()
        if calendar is not None and not calendar.is_open(current):
            due = _closed(calendar, current, say)
            wait(max(0.0, (due - current).total_seconds()))
            continue
        if current >= due:
            cycle()
            while due <= now():
                due += every
        wait(max(0.0, (due - now()).total_seconds()))


def _line(event: dict[str, Any]) -> tuple[str, bool]:
    """A message as one line for a person, and whether it is an error."""
    kind = event["event"]
    if kind == "written":
        stamp = dt.datetime.fromisoformat(event["generated_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = f"{event['broker']}, {event['account'] or 'unknown account'}"
        if event["demo"]:
            who += ", demo data"
        written = ", ".join(event["written"]) or "nothing"
        text = f"{stamp}  wrote {written} to {event['out']} ({who})"
        if event["failed"]:
            failed = "; ".join(f"{name}: {why}" for name, why in event["failed"].items())
            text += f"; not written: {failed}"
        return text, bool(event["failed"])
    if kind == "closed":
        opens = dt.datetime.fromisoformat(event["next_open"])
        local = opens.astimezone(ZoneInfo(event["tz"]))
        return (
            f"market closed, next open at {opens:%Y-%m-%d %H:%M} UTC ({local:%H:%M} {event['tz']})",
            False,
        )
    if kind == "demo":
        return f"demo data from the paper simulator: {event['reason']}", False
    if kind == "broker":
        return f"broker {event['broker']!r} answers: writing its data from now on", False
    if kind == "error":
        return f"error: {event['message']}", True
    return f"stopped after {event['count']} snapshot(s)", False


def _printer(as_json: bool, app: AppContext) -> Say:
    """Print events as lines for people or JSON for programs, through the log redaction."""

    def redact(text: str) -> str:
        return app.redaction.redact(text) if app.redaction is not None else text

    def say(event: dict[str, Any]) -> None:
        if as_json:
            click.echo(redact(json.dumps(event)))
            return
        text, error = _line(event)
        click.echo(redact(text), err=error)

    return say


def _calendar(settings: AppSettings) -> MarketCalendar:
    try:
        return MarketCalendar(settings.snapshot.exchange)
    except ConfigError as exc:
        raise ConfigError(f"[snapshot] exchange: {exc}", key="snapshot.exchange") from exc


@click.command("snapshot")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write the files here ([snapshot] out, default: snapshots).",
)
@click.option(
    "--every",
    metavar="DURATION",
    help="Keep running: a snapshot this often while the exchange is open, e.g. 5m.",
)
@click.option("--once", is_flag=True, help="One snapshot, even when [snapshot] every is set.")
@click.option("--always", is_flag=True, help="With --every: ignore market hours.")
@click.option(
    "--if-open",
    is_flag=True,
    help="One snapshot only if the exchange is open now; otherwise say when it opens.",
)
@click.option("--html", is_flag=True, help="Also write index.html, a page showing the files.")
@click.option("--broker", "broker_name", metavar="NAME", help="Use this broker ([run] broker).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per event instead of text.")
@pass_app
def snapshot(
    app: AppContext,
    out_dir: Path | None,
    every: str | None,
    once: bool,
    always: bool,
    if_open: bool,
    html: bool,
    broker_name: str | None,
    as_json: bool,
) -> None:
    """Write portfolio, quotes, scanner results and token status as JSON files.

    Reads the configured broker (or demo data when it cannot be used and
    [snapshot] demo_fallback allows), writes each file atomically, and exits;
    with --every it keeps writing while the exchange is open.
    """
    interval = _interval(every, once or if_open)
    app.setup_logging()
    settings = _with_broker(app.settings, broker_name)
    if interval is None and not (once or if_open):
        interval = settings.snapshot.interval
    out = out_dir if out_dir is not None else Path(settings.snapshot.out)
    say = _printer(as_json, app)
    hours = if_open or (interval is not None and not always)
    calendar = _calendar(settings) if hours else None
    if if_open and calendar is not None:
        now = clock.now()
        if not calendar.is_open(now):
            _closed(calendar, now, say)
            return
    runner = Snapshotter(app, settings, out, html=html, say=say)
    try:
        runner.start()
        if interval is None:
            outcome = runner.cycle()
            if outcome.failed:
                raise TradepipeError(
                    f"{len(outcome.failed)} of the files could not be read from the broker; "
                    "the previous ones were kept"
                )
            return
        run_every(
            lambda: _guarded(runner, say),
            interval,
            calendar,
            say,
            now=clock.now,
            wait=sleep,
        )
    except KeyboardInterrupt:
        say({"event": "stopped", "count": runner.count})
        raise
    finally:
        runner.close()


def _with_broker(settings: AppSettings, name: str | None) -> AppSettings:
    """``settings`` with ``[run] broker = name`` for ``--broker``.

    Not :meth:`AppContext.override`: a plugin's command is found through the
    plugin host, which has loaded the settings before the command runs.
    """
    if not name:
        return settings
    return settings.model_copy(update={"run": settings.run.model_copy(update={"broker": name})})


def _interval(every: str | None, single: bool) -> dt.timedelta | None:
    """``--every`` checked; ``None`` without it."""
    if not every:
        return None
    if single:
        raise click.UsageError("--every keeps running; --once and --if-open write one snapshot")
    try:
        interval = parse_duration(every)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None
    if interval < MIN_EVERY:
        raise click.BadParameter(
            f"{every!r} is too often; the shortest interval is 10s", param_hint="--every"
        )
    return interval


def _closed(calendar: MarketCalendar, now: dt.datetime, say: Say) -> dt.datetime:
    """Say the market is closed and when it opens; return that time."""
    opens = calendar.next_open(now)
    say({"event": "closed", "next_open": opens.isoformat(), "tz": str(calendar.tz)})
    return opens


def _guarded(runner: Snapshotter, say: Say) -> None:
    """One scheduled cycle; a broker error is reported and retried next time."""
    try:
        runner.cycle()
    except (BrokerError, BrokerNotConfigured) as exc:
        runner.close()
        say({"event": "error", "message": str(exc)})
