"""The return statistics held to empyrical's own results (the oracle), on series of
every shape a run gives: short, flat, all gains, ruin, gaps in a benchmark."""

from __future__ import annotations

import datetime as dt
import math
import sys
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
        [0.1, -1.0, -math.inf, 0.2, math.inf],  # both infinities: not a number
        [0.1, -1e200, 0.2],  # squares beyond a float
        [1e300, 1e300, -0.5],  # sums beyond a float
    ],
)
def test_edges_are_empyrical_s(values: list[float]) -> None:
    r = np.array(values, dtype=float)
    for name in ("annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio"):
        assert same(getattr(R, name)(values, YEAR), oracle(name, r)), name
    assert same(R.max_drawdown(values), oracle("max_drawdown", r))
    assert same(R.calmar_ratio(values, YEAR), oracle("calmar_ratio", r))


wild = st.one_of(
    daily,
    st.sampled_from([math.inf, -math.inf, math.nan, 1e200, -1e200, 1e300, -1.0, 0.0]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(wild, max_size=12))
def test_infinities_and_huge_values_are_empyrical_s_too(values: list[float]) -> None:
    """Equity that reaches nothing makes infinite changes; nothing raises, and every
    figure is what empyrical says (``nan`` or ``inf`` where it says so)."""
    r = np.array(values, dtype=float)
    names = ["annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio"]
    if is_constant(values):
        # numpy's mean of a huge constant can round off the value itself, and the
        # squared deviations then overflow: six returns of 1e200 have "infinite"
        # volatility and a Sharpe ratio of 0 there, two of them 0 and inf. A
        # constant series has no dispersion, whatever the rounding.
        assert R.annual_volatility(values, YEAR) == 0.0
        assert R.sharpe_ratio(values, YEAR) == math.copysign(math.inf, values[0])
        names = ["annual_return", "sortino_ratio"]
    for name in names:
        assert same(getattr(R, name)(values, YEAR), oracle(name, r)), name
    assert same(R.max_drawdown(values), oracle("max_drawdown", r))


def is_constant(values: list[float]) -> bool:
    """Two or more returns, all the same finite number other than 0."""
    return len(values) > 1 and len(set(values)) == 1 and math.isfinite(values[0]) and values[0] != 0


@pytest.mark.parametrize(
    "values", [[1e200] * 6, [1e200] * 2, [1e300] * 7, [-1e200] * 5, [0.1] * 12, [-0.5] * 4]
)
def test_a_constant_return_has_no_volatility_whatever_the_rounding(values: list[float]) -> None:
    assert R.annual_volatility(values, YEAR) == 0.0
    assert R.sharpe_ratio(values, YEAR) == math.copysign(math.inf, values[0])


#: Not a number and infinities; no huge finite values, whose sums of products cancel
#: catastrophically and come out as numpy's rounding happens to leave them.
unruly = st.one_of(daily, st.sampled_from([math.inf, -math.inf, math.nan, -1.0, 0.0]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(unruly, unruly), max_size=10))
def test_alpha_and_beta_of_wild_series_are_empyrical_s(pairs: list[tuple[float, float]]) -> None:
    returns, factor = [r for r, _ in pairs], [f for _, f in pairs]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        alpha, beta = empyrical.alpha_beta(np.array(returns), np.array(factor))
    got = R.alpha_beta(returns, factor, YEAR)
    if beta_is_rounding(returns, factor):
        # No covariance to speak of: both betas are what summing rounded off, in
        # an order of its own (returns of 1.0 against factors 0, 1e-9, 0, 0 give
        # 6.9e-08 here and 1.4e-07 in empyrical). Both must still be numbers.
        assert math.isnan(got[1]) == math.isnan(beta)
        return
    assert same(got[1], beta) and same(got[0], alpha)


def beta_is_rounding(returns: list[float], factor: list[float]) -> bool:
    """Whether the covariance of finite ``returns`` and ``factor`` is within what
    adding up their products rounds off."""
    pairs = [(r, f) for r, f in zip(returns, factor, strict=True) if math.isfinite(r + f)]
    if len(pairs) < 2 or len(pairs) < len(returns):
        return False
    mean = sum(f for _, f in pairs) / len(pairs)
    covariance = sum(r * (f - mean) for r, f in pairs) / len(pairs)
    scale = sum(abs(r) * (abs(f) + abs(mean)) for r, f in pairs) / len(pairs)
    return abs(covariance) <= 16 * len(pairs) * sys.float_info.epsilon * scale


def test_equity_that_reaches_nothing_gives_figures_as_the_pandas_path_did() -> None:
    equity = [100.0, 0.0, -50.0, 0.0, 20.0, 30.0]
    days = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(len(equity))]
    got = run_metrics(list(zip(days, equity, strict=True)), [])
    returns = pd.Series(equity, index=pd.DatetimeIndex(days)).pct_change().iloc[1:]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = {
            "volatility": empyrical.annual_volatility(returns),
            "sharpe": empyrical.sharpe_ratio(returns),
            "sortino": empyrical.sortino_ratio(returns),
            "max_drawdown": empyrical.max_drawdown(returns),
        }
    for key, theirs in expected.items():
        ours = getattr(got, key)
        if math.isfinite(theirs):
            assert ours == pytest.approx(theirs, rel=1e-9), key
        else:
            assert ours is None, key


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
