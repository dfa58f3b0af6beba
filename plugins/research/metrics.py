"""How a run did: returns, risk and trade statistics from its equity and its fills.

:func:`run_metrics` takes a run's equity at each day's close (the last account
snapshot of each New York date), its fills and, when asked, a benchmark's
closes, and returns :class:`Metrics`. The return statistics (annualised
return and volatility, Sharpe, Sortino, maximum drawdown, Calmar, alpha and
beta) are empyrical's, on daily returns, 252 trading days a year and no
risk-free rate, worked out by :mod:`~tradepipe.plugins.research.returns`
(which the tests hold to empyrical itself). The trade statistics are worked
out here: a trade is one closing fill, matched first in, first out against
the fills that opened the position, its profit net of the commissions of
both sides.

A figure that cannot be had (a volatility from two days, a profit factor with
no losing trade) is ``None``, never a guess, and ``NaN`` never leaves this
module.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from tradepipe.clock import NEW_YORK
from tradepipe.orders import FillLike
from tradepipe.plugins.research import returns as R

#: Trading days in a year, for annualising.
YEAR_DAYS = 252

Point = tuple[dt.date, float]


@dataclass(frozen=True)
class Trip:
    """A closed trade: one closing fill and the opening fills it matched."""

    symbol: str
    closed: dt.datetime
    quantity: Decimal
    #: Money made, commissions of the opening share and the closing fill taken off.
    pnl: Decimal
    #: What the matched opening cost (long) or brought in (short), for the return.
    cost: Decimal

    @property
    def ret(self) -> float:
        return float(self.pnl / self.cost) if self.cost else 0.0


@dataclass(frozen=True)
class Metrics:
    """A run's performance. Ratios are fractions (0.05 is 5 %); money in the account's currency."""

    start: dt.date | None
    end: dt.date | None
    days: int
    start_equity: float | None
    end_equity: float | None
    total_return: float | None
    annual_return: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    #: Trading days from the peak before the deepest drawdown until it was made
    #: good again (or until the end, if it never was).
    max_drawdown_days: int | None
    calmar: float | None
    trades: int
    win_rate: float | None
    profit_factor: float | None
    avg_win: float | None
    avg_loss: float | None
    #: The share of days that ended with a position.
    exposure: float | None
    #: Money traded (both sides) over the average equity.
    turnover: float | None
    commissions: float
    fills: int
    benchmark: str | None = None
    benchmark_return: float | None = None
    excess_return: float | None = None
    alpha: float | None = None
    beta: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("start", "end"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out


def daily_points(points: Iterable[tuple[dt.datetime, Any]]) -> list[Point]:
    """The last value of each New York date, oldest first (``points`` in time order)."""
    days: dict[dt.date, float] = {}
    for ts, value in points:
        days[ts.astimezone(NEW_YORK).date()] = float(value)
    return sorted(days.items())


def day_closes(
    snapshots: Iterable[tuple[dt.datetime, Any, Any]],
) -> tuple[list[Point], list[Point]]:
    """The equity and the gross position value at each day's close, from account
    snapshots as (time, equity, gross position value) in time order."""
    taken = list(snapshots)
    equity = daily_points((ts, value) for ts, value, _ in taken)
    invested = daily_points((ts, gross) for ts, _, gross in taken)
    return equity, invested


def round_trips(fills: Iterable[FillLike]) -> list[Trip]:
    """Closing fills matched first in, first out against the opening ones, per symbol."""
    return [
        Trip(fill.symbol, fill.ts, matched, pnl, cost)
        for fill, matched, pnl, cost in _closings(sorted(fills, key=lambda f: f.ts))
        if matched
    ]


_ZERO = Decimal(0)


class _Lots:
    """The open lots of each symbol, which closing fills match first in, first out."""

    __slots__ = ("_books", "open")

    def __init__(self) -> None:
        # Per symbol: [signed quantity, price, commission per unit], oldest first.
        self._books: dict[str, deque[list[Decimal]]] = {}
        #: Lots open now, of every symbol.
        self.open = 0

    def close(self, fill: FillLike) -> tuple[Decimal, Decimal, Decimal]:
        """Apply ``fill``: the quantity it closed (zero when it only opened), the
        profit made and what the matched opening cost."""
        quantity, price, multiplier = fill.quantity, fill.price, fill.multiplier
        signed = quantity if fill.side == "buy" else -quantity  # a Side, or its text
        book = self._books.get(fill.symbol)
        if book is None:
            book = self._books[fill.symbol] = deque()
        per_unit = fill.commission / quantity if fill.commission else _ZERO
        left = signed
        pnl = cost = matched = _ZERO
        while book and left and (book[0][0] > 0) != (left > 0):
            lot = book[0]
            held, lot_price = lot[0], lot[1]
            take = min(abs(held), abs(left))
            if held > 0:  # a long lot is sold
                pnl += (price - lot_price) * take * multiplier
                lot[0] = held - take
                left += take
            else:  # a short one bought back
                pnl -= (price - lot_price) * take * multiplier
                lot[0] = held + take
                left -= take
            pnl -= (lot[2] + per_unit) * take
            cost += lot_price * take * multiplier
            matched += take
            if not lot[0]:
                book.popleft()
                self.open -= 1
        if left:
            book.append([left, price, per_unit])
            self.open += 1
        return matched, pnl, cost


def _closings(
    fills: Iterable[FillLike],
) -> Iterator[tuple[FillLike, Decimal, Decimal, Decimal]]:
    """Each fill of ``fills`` (in time order) with the quantity it closed (zero when
    it only opened), the profit made and what the matched opening cost."""
    lots = _Lots()
    for fill in fills:
        yield (fill, *lots.close(fill))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _drawdown_days(equity: Sequence[float]) -> int | None:
    """Days from the peak before the deepest drawdown to its recovery (or the end)."""
    if len(equity) < 2:
        return None
    peak_at, deepest, start, end = 0, 0.0, 0, 0
    for i, value in enumerate(equity):
        if value >= equity[peak_at]:
            peak_at = i
        depth = value / equity[peak_at] - 1 if equity[peak_at] else 0.0
        if depth < deepest:
            deepest, start, end = depth, peak_at, i
    if deepest == 0:
        return 0
    recovered = next(
        (i for i in range(end, len(equity)) if equity[i] >= equity[start]), len(equity) - 1
    )
    return recovered - start


@dataclass(frozen=True)
class TradeFigures:
    """What a run's fills say, worked out without pandas (a sweep's worker sends
    these, and the process that collects the results adds the rest)."""

    trades: int
    win_rate: float | None
    profit_factor: float | None
    avg_win: float | None
    avg_loss: float | None
    #: Money traded, both sides.
    traded: float
    commissions: float
    fills: int


class FillsOutOfOrder(ValueError):
    """A stream of fills handed to :func:`trade_figures` was not in time order."""


class TradeTally:
    """:func:`trade_figures` worked out one fill at a time, as a run makes them:
    only the open lots are kept."""

    __slots__ = (
        "_last",
        "_lots",
        "commissions",
        "count",
        "losses",
        "lost",
        "traded",
        "trades",
        "wins",
        "won",
    )

    def __init__(self) -> None:
        self._lots = _Lots()
        self._last: dt.datetime | None = None
        self.count = self.trades = self.won = self.lost = 0
        self.wins = self.losses = self.traded = 0.0
        self.commissions = Decimal(0)

    def add(self, fill: FillLike) -> None:
        """Count ``fill``, the latest of the fills so far.

        :raises FillsOutOfOrder: ``fill`` is earlier than the one before it.
        """
        ts = fill.ts
        if self._last is not None and ts < self._last:
            raise FillsOutOfOrder(
                f"a fill at {ts.isoformat()} comes after one at {self._last.isoformat()}"
            )
        self._last = ts
        matched, pnl, _cost = self._lots.close(fill)
        self.count += 1
        self.traded += float(fill.price * fill.quantity * fill.multiplier)
        self.commissions += fill.commission
        if not matched:
            return
        self.trades += 1
        if pnl > 0:
            self.wins += float(pnl)
            self.won += 1
        elif pnl < 0:
            self.losses += float(pnl)
            self.lost += 1

    @property
    def open_lots(self) -> int:
        """Lots opened and not yet closed: what the tally holds."""
        return self._lots.open

    def figures(self) -> TradeFigures:
        trades, won, lost = self.trades, self.won, self.lost
        return TradeFigures(
            trades=trades,
            win_rate=won / trades if trades else None,
            profit_factor=self.wins / -self.losses if lost else None,
            avg_win=self.wins / won if won else None,
            avg_loss=self.losses / lost if lost else None,
            traded=self.traded,
            commissions=float(self.commissions),
            fills=self.count,
        )


def trade_figures(fills: Iterable[FillLike]) -> TradeFigures:
    """The trade statistics of ``fills`` (see the module docstring).

    One pass, keeping only the open lots: ``fills`` may be a stream of a long
    run's fills read from the ledger, never all of them in memory at once. A
    list is put in time order here; a stream must come in time order.

    :raises FillsOutOfOrder: a stream's fill is earlier than the one before it.
    """
    if isinstance(fills, Sequence):
        fills = sorted(fills, key=lambda f: f.ts)
    tally = TradeTally()
    add = tally.add
    for fill in fills:
        add(fill)
    return tally.figures()


def run_metrics(
    equity: Sequence[Point],
    fills: Iterable[FillLike] | TradeFigures,
    *,
    invested: Sequence[Point] = (),
    benchmark: Sequence[Point] = (),
    benchmark_symbol: str | None = None,
) -> Metrics:
    """The metrics of a run.

    :param equity: the equity at each day's close, oldest first (:func:`daily_points`).
    :param fills: the run's fills, or their :func:`trade_figures`.
    :param invested: the gross position value at each day's close (for exposure).
    :param benchmark: the benchmark's close on each day (its return, alpha, beta).
    """
    values = [value for _, value in equity]
    returns = R.pct_change(values)
    enough = len(returns) >= 2
    total = values[-1] / values[0] - 1 if len(values) >= 2 and values[0] else None
    trade = fills if isinstance(fills, TradeFigures) else trade_figures(fills)
    mean_equity = sum(values) / len(values) if values else 0.0
    held = [value for _, value in invested]
    metrics = Metrics(
        start=equity[0][0] if equity else None,
        end=equity[-1][0] if equity else None,
        days=len(equity),
        start_equity=values[0] if values else None,
        end_equity=values[-1] if values else None,
        total_return=total,
        annual_return=_finite(R.annual_return(returns, YEAR_DAYS)) if enough else None,
        volatility=_finite(R.annual_volatility(returns, YEAR_DAYS)) if enough else None,
        sharpe=_finite(R.sharpe_ratio(returns, YEAR_DAYS)) if enough else None,
        sortino=_finite(R.sortino_ratio(returns, YEAR_DAYS)) if enough else None,
        max_drawdown=_finite(R.max_drawdown(returns)) if enough else None,
        max_drawdown_days=_drawdown_days(values),
        calmar=_finite(R.calmar_ratio(returns, YEAR_DAYS)) if enough else None,
        trades=trade.trades,
        win_rate=trade.win_rate,
        profit_factor=trade.profit_factor,
        avg_win=trade.avg_win,
        avg_loss=trade.avg_loss,
        exposure=sum(1 for value in held if value) / len(held) if held else None,
        turnover=trade.traded / mean_equity if mean_equity else None,
        commissions=trade.commissions,
        fills=trade.fills,
    )
    if not benchmark or not benchmark_symbol:
        return metrics
    closes = [value for _, value in benchmark]
    factor = R.pct_change(_on_days([day for day, _ in equity], benchmark))
    bench_total = closes[-1] / closes[0] - 1 if len(closes) >= 2 and closes[0] else None
    alpha = beta = None
    if enough and sum(1 for f in factor if not math.isnan(f)) >= 2:
        alpha, beta = (_finite(x) for x in R.alpha_beta(returns, factor, YEAR_DAYS))
    return Metrics(
        **{
            **asdict(metrics),
            "benchmark": benchmark_symbol,
            "benchmark_return": bench_total,
            "excess_return": None if total is None or bench_total is None else total - bench_total,
            "alpha": alpha,
            "beta": beta,
        }
    )


def _on_days(days: Sequence[dt.date], closes: Sequence[Point]) -> list[float]:
    """The benchmark's close on each of ``days``: that day's, else the one taken for
    the day before (a holiday of its market), ``nan`` until it has one."""
    known = dict(closes)
    out, last = [], math.nan
    for day in days:
        last = known.get(day, last)
        out.append(last)
    return out
