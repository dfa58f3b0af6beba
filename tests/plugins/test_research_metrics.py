"""A run's metrics against figures worked out by hand."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

import pytest
from tradepipe.plugins.research.metrics import daily_points, round_trips, run_metrics
from tradepipe.plugins.research.report import drawdowns, monthly_returns

D = Decimal


@dataclass(frozen=True)
class F:
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    ts: dt.datetime
    multiplier: Decimal = D(1)


def at(day: int, hour: int = 15) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


def days(values: list[float]) -> list[tuple[dt.date, float]]:
    return [(dt.date(2026, 3, 2) + dt.timedelta(days=i), v) for i, v in enumerate(values)]


def test_round_trips_match_first_in_first_out_with_both_commissions() -> None:
    fills = [
        F("AAPL", "buy", D(10), D(100), D(1), at(2)),
        F("AAPL", "buy", D(10), D(110), D(1), at(3)),
        # 10 of the first lot: 10 x (120 - 100) less 0.10 + 0.10 a share = 198;
        # 5 of the second: 5 x (120 - 110) less 0.20 a share = 49.
        F("AAPL", "sell", D(15), D(120), D("1.5"), at(4)),
        # A short sold at 50 and bought back at 40: 5 x 10.
        F("MSFT", "sell", D(5), D(50), D(0), at(4)),
        F("MSFT", "buy", D(5), D(40), D(0), at(5)),
        # Selling 10 when 5 are left: closes 5 at a loss of 5 x 10 + 5 x 0.10, opens a short.
        F("AAPL", "sell", D(10), D(100), D(0), at(6)),
        # An option: 2 contracts of 100 bought at 3, sold at 4.5: 2 x 100 x 1.5 - 2.6.
        F("SPY C", "buy", D(2), D(3), D("1.3"), at(6), D(100)),
        F("SPY C", "sell", D(2), D("4.5"), D("1.3"), at(9), D(100)),
    ]
    trips = round_trips(fills)
    assert [(t.symbol, str(t.quantity), str(t.pnl), str(t.cost)) for t in trips] == [
        ("AAPL", "15", "247.0", "1550"),
        ("MSFT", "5", "50", "250"),
        ("AAPL", "5", "-50.5", "550"),
        ("SPY C", "2", "297.40", "600"),
    ]
    assert trips[0].ret == pytest.approx(247 / 1550)


def test_return_and_risk_figures_by_hand() -> None:
    # Daily returns +10 %, -10 %, +10 %.
    equity = days([100.0, 110.0, 99.0, 108.9])
    invested = days([0.0, 50.0, 50.0, 0.0])
    fills = [
        F("AAPL", "buy", D(1), D(50), D(1), at(3)),
        F("AAPL", "sell", D(1), D(54), D(1), at(5)),
    ]
    m = run_metrics(equity, fills, invested=invested)
    returns = [0.1, -0.1, 0.1]
    mean = sum(returns) / 3
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)  # sample deviation
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / 3)
    assert m.total_return == pytest.approx(0.089)
    assert m.volatility == pytest.approx(std * math.sqrt(252))
    assert m.sharpe == pytest.approx(mean / std * math.sqrt(252))
    assert m.sortino == pytest.approx(mean * 252 / (downside * math.sqrt(252)))
    assert m.max_drawdown == pytest.approx(99 / 110 - 1)
    # From the peak (day 1) to the end (day 3): never made good again.
    assert m.max_drawdown_days == 2
    annual = 1.089 ** (252 / 3) - 1
    assert m.annual_return == pytest.approx(annual)
    assert m.calmar == pytest.approx(annual / 0.1)
    # One trade: 54 - 50 less 2 of commissions.
    assert (m.trades, m.win_rate, m.avg_win, m.avg_loss) == (1, 1.0, 2.0, None)
    assert m.profit_factor is None  # no losing trade: no factor, not infinity
    assert m.exposure == 0.5
    assert m.turnover == pytest.approx(104 / ((100 + 110 + 99 + 108.9) / 4))
    assert (m.commissions, m.fills, m.days) == (2.0, 2, 4)
    assert (m.start, m.end) == (dt.date(2026, 3, 2), dt.date(2026, 3, 5))


def test_against_a_benchmark_that_moves_alike_and_twice_as_much() -> None:
    equity = days([100.0, 110.0, 99.0, 108.9])
    alike = run_metrics(equity, [], benchmark=days([50, 55, 49.5, 54.45]), benchmark_symbol="SPY")
    assert alike.benchmark == "SPY"
    assert alike.benchmark_return == pytest.approx(0.089)
    assert alike.excess_return == pytest.approx(0.0)
    assert alike.beta == pytest.approx(1.0)
    assert alike.alpha == pytest.approx(0.0, abs=1e-9)
    # The benchmark's returns are twice the run's: beta one half.
    twice = run_metrics(equity, [], benchmark=days([50, 60, 48, 57.6]), benchmark_symbol="SPY")
    assert twice.beta == pytest.approx(0.5)
    assert twice.benchmark_return == pytest.approx(0.152)
    assert twice.excess_return == pytest.approx(0.089 - 0.152)


def test_too_little_to_go_on_is_none_never_nan() -> None:
    m = run_metrics(days([100.0]), [])
    figures = m.as_dict()
    assert figures["total_return"] is None and figures["sharpe"] is None
    assert figures["max_drawdown_days"] is None and figures["win_rate"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in figures.values())
    flat = run_metrics(days([100.0, 100.0, 100.0]), [])
    assert flat.total_return == 0.0 and flat.max_drawdown == 0.0 and flat.max_drawdown_days == 0
    assert flat.sharpe is None  # no variation: no ratio


def test_daily_points_take_each_new_york_day_s_last_value() -> None:
    # 03:00 UTC on the 3rd is still the 2nd in New York.
    points = [(at(2, 15), 1), (at(3, 3), 2), (at(3, 15), 3), (at(3, 20), 4)]
    assert daily_points(points) == [(dt.date(2026, 3, 2), 2.0), (dt.date(2026, 3, 3), 4.0)]


def test_monthly_returns_and_drawdowns() -> None:
    equity = [
        (dt.date(2026, 1, 2), 100.0),
        (dt.date(2026, 1, 30), 110.0),
        (dt.date(2026, 2, 27), 99.0),
        (dt.date(2026, 3, 3), 120.0),
    ]
    assert monthly_returns(equity) == {
        2026: {1: pytest.approx(0.1), 2: pytest.approx(-0.1), 3: pytest.approx(120 / 99 - 1)}
    }
    assert [round(v, 4) for _, v in drawdowns(equity)] == [0.0, 0.0, -0.1, 0.0]


def test_trade_figures_put_a_list_in_time_order_and_refuse_a_stream_out_of_it() -> None:
    from tradepipe.plugins.research.metrics import FillsOutOfOrder, trade_figures

    fills = [
        F("AAPL", "sell", D(10), D(110), D(0), at(2)),
        F("AAPL", "buy", D(10), D(105), D(0), at(3)),  # covers the short: +50
        F("AAPL", "buy", D(10), D(100), D(0), at(4)),
    ]
    shuffled = [fills[2], fills[0], fills[1]]
    assert trade_figures(shuffled) == trade_figures(fills)
    assert (trade_figures(fills).trades, trade_figures(fills).avg_win) == (1, 50.0)
    assert trade_figures(iter(fills)) == trade_figures(fills)
    with pytest.raises(FillsOutOfOrder, match="comes after one at"):
        trade_figures(iter(shuffled))
