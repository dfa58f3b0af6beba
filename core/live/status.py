"""What a live run says about itself: the status file, rewritten every few seconds.

The document (schema version 1) holds what ``tradepipe status``, ``GET
/status``, the dashboard and the console view show: the run and its process,
the market session, the feed (connected or stalled, lag, last bar per
symbol, gaps), what the executor did (bars, decisions, orders, fills), the
working orders, the account and today's P&L, the kill switches, and when it
was written. It is replaced atomically, readable by its owner only; account
numbers are masked and no setting's value is in it (names only), so no
secret can be.

Today's P&L is equity now less the equity at the first look on this New
York date; the start is kept in the file, so a restart the same day goes on
from the morning's figure rather than its own.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradepipe.errors import ConfigError, TradepipeError
from tradepipe.logs import mask_account, redact_accounts
from tradepipe.money import cents, price_text
from tradepipe.services.files import write_private_json
from tradepipe.services.halt import current_halts, halt_state_path, read_state, trading_day
from tradepipe.services.status import SCHEMA_VERSION, UP, process_start, read_status

if TYPE_CHECKING:
    from tradepipe.live.run import LiveRun

log = logging.getLogger(__name__)
#: Newest gaps and working orders listed in the file (counts are whole).
_LISTED = 50


class StatusFile:
    """The status file of one live run (``[run] status_file``; ``path`` ``None``: none,
    the document is still made for the console view)."""

    def __init__(self, path: Path | None, every: float) -> None:
        self.path = path
        self.every = every
        self.started_at = datetime.now(UTC)
        self.day: str | None = None
        self.day_start: Decimal | None = None
        #: The (masked) account the day's start equity belongs to.
        self.day_account: str | None = None
        self._pid = os.getpid()
        self._process_start = process_start(self._pid)
        self._failed = False

    def claim(self, namespace: str) -> None:
        """Take the file for this run; keep today's start equity of an earlier run of
        ``namespace``.

        :raises ConfigError: another live run that is still up writes this file.
        """
        if self.path is None:
            return
        try:
            before = read_status(self.path)
        except ConfigError as exc:
            log.warning("%s; it will be replaced", exc)
            return
        if before["liveness"] in ("running", "stale", "unknown") and before.get("pid") != self._pid:
            raise ConfigError(
                f"another live run ({before.get('run_id')}, pid {before.get('pid')}) is up and "
                f"writes {self.path}; stop it first, or give this run its own "
                "[run] status_file",
                key="run.status_file",
            )
        pnl = before.get("pnl_today") or {}
        if before.get("session") == namespace and pnl.get("day") and pnl.get("start_equity"):
            self.day = str(pnl["day"])
            self.day_start = Decimal(str(pnl["start_equity"]))
            self.day_account = pnl.get("account")

    def write(self, run: LiveRun, state: str) -> dict[str, Any]:
        """Build the document from ``run``, replace the file with it; return it.

        A file that cannot be written is logged once and skipped: the status
        must never stop a run.
        """
        document = self.document(run, state)
        if self.path is None:
            return document
        try:
            write_private_json(self.path, document, sync=state not in UP)
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log.error("cannot write the status file %s: %s", self.path, exc)
            self._failed = True
        return document

    # -- the document ------------------------------------------------------------

    def document(self, run: LiveRun, state: str) -> dict[str, Any]:
        p = run.p
        info = p.run
        now = run.clock.now()
        ex = run.executor
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "state": state,
            "pid": self._pid,
            "process_start": self._process_start,
            "host": socket.gethostname(),
            "run_id": info.run_id,
            "env": info.env,
            "mode": "live",
            "session": info.namespace,
            "broker": info.broker,
            "account": mask_account(info.account_id),
            "paper": bool(ex.ctx.is_paper()) if ex is not None else None,
            "strategies": list(info.strategies),
            "started_at": self.started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "every_seconds": self.every,
            "clock": {"now": now.isoformat(), "speed": run.clock.speed},
            "stop_reason": run.stop_reason or None,
            "market": _market(run, now),
            "feed": _feed(run, now),
            "latency_ms": _latency(run.stats.bar_latency),
        }
        if ex is None:
            return doc
        # A lost broker session the run waits on (a person must log in again).
        doc["waiting_for"] = ex.waiting_for or None
        doc["counts"] = {
            "bars": run.stats.bars,
            "quotes": run.stats.quotes,
            "decisions": ex.decisions,
            "orders": ex.orders,
            "fills": ex.fills,
            "strategy_errors": ex.strategy_errors,
            "queued": len(run.gate.queued) if run.gate is not None else 0,
            "unknown": len(ex.unknown),
        }
        working = list(ex.working.values())
        doc["open_orders"] = [
            {
                "client_order_id": o.client_order_id,
                "symbol": o.intent.symbol,
                "side": str(o.intent.side),
                "quantity": str(o.intent.quantity),
                "filled": str(o.filled_quantity),
                "order_type": str(o.intent.order_type),
                "limit_price": None if o.intent.limit_price is None else str(o.intent.limit_price),
                "status": o.status.value,
            }
            for o in working[-_LISTED:]
        ]
        doc["open_order_count"] = len(working)
        ctx = ex.ctx
        positions = []
        for position in ex.book.positions():
            mark = ctx.last_price(position.symbol)
            positions.append(
                {
                    "symbol": position.symbol,
                    "quantity": str(position.quantity),
                    "avg_cost": price_text(position.avg_cost),
                    "mark": None if mark is None else str(mark),
                }
            )
        doc["positions"] = positions
        equity = ctx.equity()
        day = trading_day(now)
        account = doc["account"]
        if self.day != day or self.day_start is None or self.day_account != account:
            # Another day, or another account (a different broker in the same session):
            # its day starts at its own equity.
            self.day, self.day_start, self.day_account = day, equity, account
        doc["cash"] = str(cents(ctx.cash()))
        doc["equity"] = str(cents(equity))
        doc["pnl_today"] = {
            "day": day,
            "account": account,
            "start_equity": str(cents(self.day_start)),
            "pnl": str(cents(equity - self.day_start)),
        }
        doc["halt"] = _halt(run, now)
        return doc


def _market(run: LiveRun, now: datetime) -> dict[str, Any]:
    state = run.market or run.schedule.state(now)
    return {
        "calendar": state.calendar,
        "open": state.open,
        "reason": state.reason,
        "description": state.describe(),
        "next_open": _iso(state.next_open),
        "next_close": _iso(state.next_close),
        "early_close": state.early_close,
        "sleeping": not state.open,
        "wake_at": _iso(state.wake_at),
        "when_closed": run.p.settings.run.when_closed,
    }


def _feed(run: LiveRun, now: datetime) -> dict[str, Any]:
    feed = run.feed.state()
    market_open = run.market.session_open if run.market is not None else True
    bar = feed.bar_seconds
    stall_after = max(10.0, 3 * bar) if bar else 60.0
    lag = feed.lag_seconds(now)
    return {
        "name": feed.name,
        "connected": feed.connected,
        "message": redact_accounts(feed.message),
        "stalled": bool(market_open and feed.connected and feed.stalled(now, stall_after)),
        "bar_seconds": bar,
        "lag_seconds": None if lag is None else round(lag, 3),
        "delivery_lag_seconds": None
        if run.stats.last_lag is None
        else round(run.stats.last_lag, 3),
        "bars": feed.bars,
        "quotes": feed.quotes,
        "last_data": _iso(feed.last_data),
        "last_bars": {
            symbol: {
                "ts": bar_.ts.isoformat(),
                "open": bar_.open,
                "high": bar_.high,
                "low": bar_.low,
                "close": bar_.close,
                "volume": bar_.volume,
                "age_seconds": round((now - bar_.ts).total_seconds() - (bar or 0), 1),
            }
            for symbol, bar_ in sorted(feed.last_bars.items())
        },
        "max_quote_age_seconds": run.max_quote_age.total_seconds(),
        "gap_count": feed.gap_count,
        "gaps": [
            {
                "symbol": g.symbol,
                "start": g.start.isoformat(),
                "end": g.end.isoformat(),
                "reason": g.reason,
            }
            for g in feed.gaps[-_LISTED:]
        ],
    }


def _halt(run: LiveRun, now: datetime) -> dict[str, Any]:
    settings = run.p.settings
    try:
        account = run.executor.ctx.account_key() if run.executor is not None else None
        manual, daily = current_halts(read_state(halt_state_path(settings)), now, account)
    except TradepipeError as exc:
        # The filters deny every order while the file is unreadable: say so.
        return {"halted": True, "problem": str(exc), "manual": None, "daily": None}
    return {
        "halted": manual is not None or daily is not None,
        "manual": manual,
        "daily": daily,
        "daily_limit_used": "max_daily_loss" in settings.run.risk_filters,
    }


def _latency(values: Sequence[float]) -> dict[str, float] | None:
    recent = list(values)[-1000:]
    if len(recent) < 2:
        return None
    cuts = statistics.quantiles(recent, n=100)
    return {"p50": round(cuts[49] * 1000, 3), "p99": round(cuts[98] * 1000, 3)}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
