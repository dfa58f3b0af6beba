"""A run as research reads it: its equity by day, its fills, and a benchmark's closes.

The equity and the position value come from the run's account snapshots (a
replay takes one at each day's close, ``[run] daily_snapshots``); the fills
from the ledger (a combo's legs, not its own row); a benchmark's closes from
the run's feed, read again (a replay's feed gives the same bars every time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from tradepipe.errors import ConfigError, PersistenceError
from tradepipe.plugins.ledger.queries import LATEST, Ledger
from tradepipe.plugins.ledger.schema import RunRow
from tradepipe.plugins.ledger.summary import run_series
from tradepipe.plugins.research.metrics import (
    Metrics,
    Point,
    daily_points,
    day_closes,
    run_metrics,
)


@dataclass(frozen=True)
class RunData:
    run: RunRow
    equity: list[Point]
    invested: list[Point]
    fills: list[Any]  # rows with a fill's columns (FillLike)


def read_run(ledger: Ledger, run_id: str | None) -> RunData:
    """The run ``run_id`` (``None`` or ``latest``: the latest trading run).

    :raises ConfigError: no such run.
    :raises PersistenceError: the ledger could not be read.
    """
    run = ledger.run(run_id)
    if run is None:
        if run_id not in (None, LATEST):
            raise ConfigError(f"no run {run_id!r} in the ledger at {ledger.where}", key="run")
        raise PersistenceError(f"the ledger at {ledger.where} has no runs yet")
    try:
        with Session(ledger.engine) as s:
            snaps, fills = run_series(s, run.run_id)
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not read run {run.run_id} from the ledger") from exc
    equity, invested = day_closes(snaps)
    return RunData(
        run=run,
        equity=equity,
        invested=invested,
        fills=fills,
    )


def feed_closes(settings: Any, host: Any, feed_name: str, symbol: str) -> list[Point]:
    """``symbol``'s close at the end of each day, from the feed ``feed_name`` read again.

    :raises ConfigError: the feed is a live one, or has no bar of ``symbol``.
    """
    from tradepipe.live.feed import LiveFeed
    from tradepipe.pipeline import make_component

    feed = make_component(host, settings, "feed", feed_name)
    if isinstance(feed, LiveFeed):
        raise ConfigError(
            f"feed {feed_name!r} is live: a benchmark is read from a replay's feed", key="benchmark"
        )
    feed.load()
    closes = daily_points((bar.ts, bar.close) for bar in feed.bars() if bar.symbol == symbol)
    if not closes:
        raise ConfigError(f"feed {feed_name!r} has no bars of {symbol}", key="benchmark")
    return closes


def metrics_of(data: RunData, benchmark: list[Point] | None = None, symbol: str = "") -> Metrics:
    """:func:`run_metrics` of a run read by :func:`read_run`."""
    return run_metrics(
        data.equity,
        data.fills,
        invested=data.invested,
        benchmark=benchmark or (),
        benchmark_symbol=symbol or None,
    )
