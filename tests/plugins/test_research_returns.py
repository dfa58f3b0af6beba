"""The return statistics held to empyrical's own results (the oracle), on series of
every shape a run gives: short, flat, all gains, ruin, gaps in a benchmark."""

from __future__ import annotations

import datetime as dt
import math
import warnings

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tradepipe.plugins.research import returns as R
from tradepipe.plugins.research.metrics import run_metrics

YEAR = 252
daily = st.floats(min_value=-0.99, max_value=2.0, allow_nan=False)
series = st.lists(daily, min_size=0, max_size=60)


def same(ours: float, theirs: float) -> bool:
    theirs = float(theirs)
    if math.isnan(theirs):
        return math.isnan(ours)
    if math.isinf(theirs):
        return ours == theirs
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)


def oracle(name: str, *args: object) -> float:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(getattr(empyrical, name)(*args))


@settings(max_examples=400, deadline=None)
@given(series)
def test_each_statistic_is_empyrical_s(values: list[float]) -> None:
    r = np.array(values, dtype=float)
    assert same(R.annual_return(values, YEAR), oracle("annual_return", r))
    assert same(R.annual_volatility(values, YEAR), oracle("annual_volatility", r))
    assert same(R.sharpe_ratio(values, YEAR), oracle("sharpe_ratio", r))
    assert same(R.sortino_ratio(values, YEAR), oracle("sortino_ratio", r))
    assert same(R.max_drawdown(values), oracle("max_drawdown", r))
    assert same(R.calmar_ratio(values, YEAR), oracle("calmar_ratio", r))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(daily, daily), min_size=0, max_size=60), st.integers(0, 5))
def test_alpha_and_beta_are_empyrical_s(pairs: list[tuple[float, float]], gap: int) -> None:
    ours_r = [r for r, _ in pairs]
    # A benchmark that starts later than the run: its first days are not numbers.
    factor = [math.nan if i < gap else f for i, (_, f) in enumerate(pairs)]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        alpha, beta = empyrical.alpha_beta(np.array(ours_r), np.array(factor))
    got = R.alpha_beta(ours_r, factor, YEAR)
    assert same(got[1], beta)
    assert same(got[0], alpha)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.01],
        [0.01, 0.01, 0.01],  # flat: no dispersion
        [0.02, 0.03, 0.01],  # never a loss: Sortino has nothing to divide by
        [-1.0, 0.5, 0.2],  # everything lost on the first day
        [-2.0, 0.1, 0.1],  # more than everything lost (a short gone wrong)
        [0.1, math.nan, -0.1],
        [math.inf, 0.1],
    ],
)
def test_edges_are_empyrical_s(values: list[float]) -> None:
    r = np.array(values, dtype=float)
    for name in ("annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio"):
        assert same(getattr(R, name)(values, YEAR), oracle(name, r)), name
    assert same(R.max_drawdown(values), oracle("max_drawdown", r))
    assert same(R.calmar_ratio(values, YEAR), oracle("calmar_ratio", r))


def test_pct_change_is_pandas_s() -> None:
    values = [100.0, 110.0, 0.0, 0.0, 5.0, 4.0, math.nan, 3.0]
    expected = pd.Series(values).pct_change(fill_method=None).iloc[1:].tolist()
    got = R.pct_change(values)
    assert len(got) == len(expected)
    assert all(same(a, b) for a, b in zip(got, expected, strict=True))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(50, 150), min_size=2, max_size=40),
    st.lists(st.floats(50, 150), min_size=2, max_size=40),
    st.sets(st.integers(0, 39), max_size=10),
)
def test_run_metrics_against_a_benchmark_as_empyrical_on_pandas(
    equity: list[float], closes: list[float], holidays: set[int]
) -> None:
    """The whole path as it was first built: pandas' reindex, forward fill and change
    of the benchmark's closes onto the run's days, then empyrical."""
    start = dt.date(2026, 1, 5)
    days = [start + dt.timedelta(days=i) for i in range(len(equity))]
    bench = [(start + dt.timedelta(days=i), c) for i, c in enumerate(closes) if i not in holidays]
    if len(bench) < 2:
        return
    got = run_metrics(
        list(zip(days, equity, strict=True)), [], benchmark=bench, benchmark_symbol="SPY"
    )
    index = pd.DatetimeIndex([pd.Timestamp(d) for d in days])
    returns = pd.Series(equity, index=index).pct_change().iloc[1:]
    factor = (
        pd.Series(
            [c for _, c in bench], index=pd.DatetimeIndex([pd.Timestamp(d) for d, _ in bench])
        )
        .reindex(index)
        .ffill()
        .pct_change(fill_method=None)
        .iloc[1:]
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        sharpe = empyrical.sharpe_ratio(returns)
        alpha, beta = empyrical.alpha_beta(returns, factor)
    enough_factor = factor.notna().sum() >= 2
    if math.isfinite(sharpe):
        assert got.sharpe == pytest.approx(sharpe, rel=1e-9)
    else:
        assert got.sharpe is None
    for ours, theirs in ((got.alpha, alpha), (got.beta, beta)):
        if enough_factor and math.isfinite(theirs):
            assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
        else:
            assert ours is None
