"""Return and risk statistics of a daily return series, in plain Python.

Each figure follows empyrical's definition exactly (daily returns, 252 days a
year, no risk-free rate, sample standard deviation, a day whose return is not
a number left out of means); ``tests/plugins/test_research_returns.py`` holds
every one to empyrical's own result on thousands of series. They are worked out
here because importing empyrical brings pandas and SciPy with it: about a
second and 110 MB in every process that summarises a run, where the figures
themselves take microseconds.

A figure that cannot be had is ``nan`` or ``inf`` here, as in empyrical; the
caller turns those into ``None``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

NAN = math.nan


def pct_change(values: Sequence[float]) -> list[float]:
    """Each value's change from the one before, as a fraction (``len(values) - 1``
    of them); a change from nothing is ``inf``, or ``nan`` when it stays nothing."""
    out = []
    for before, after in itertools.pairwise(values):
        if before:
            out.append(after / before - 1)
        else:
            out.append(NAN if after == before else math.copysign(math.inf, after - before))
    return out


def _numbers(returns: Sequence[float]) -> list[float]:
    return [r for r in returns if not math.isnan(r)]


def _sum(values: Sequence[float]) -> float:
    """The sum as numpy gives it where exact summing cannot: ``inf`` plus ``-inf``
    is ``nan``, and an overflow is ``inf``."""
    try:
        return math.fsum(values)
    except ValueError:  # -inf + inf
        return NAN
    except OverflowError:
        return sum(values)  # float addition: infinite, as numpy's


def _mean(values: Sequence[float]) -> float:
    return _sum(values) / len(values) if values else NAN


def _std(values: Sequence[float]) -> float:
    """The sample standard deviation (one degree of freedom), or ``nan``."""
    if len(values) < 2:
        return NAN
    if values[0] == max(values) == min(values) and math.isfinite(values[0]):
        # No dispersion. Worked out, it would be whatever the rounding of the mean
        # left: six returns of 1e200 have a mean a hair off 1e200, whose squared
        # deviations overflow to an "infinite" deviation (numpy's answer there).
        return 0.0
    mean = _mean(values)
    if not math.isfinite(mean):
        return NAN
    # Products, not powers: a float power that overflows raises, a product is inf.
    return math.sqrt(_sum([(v - mean) * (v - mean) for v in values]) / (len(values) - 1))


def annual_return(returns: Sequence[float], year: int) -> float:
    """The yearly rate that compounds to the series' total return over its length."""
    if not returns:
        return NAN
    ending = math.prod(1 + r for r in _numbers(returns))
    power = 1 / (len(returns) / year)
    if ending < 0 and math.isfinite(ending) and not power.is_integer():
        return NAN  # a real power of a loss beyond everything does not exist
    try:
        return float(ending**power - 1)
    except OverflowError:  # numpy's answer: infinite, negative for an odd power of a loss
        return -math.inf if ending < 0 and power % 2 == 1 else math.inf


def annual_volatility(returns: Sequence[float], year: int) -> float:
    if len(returns) < 2:
        return NAN
    return _std(_numbers(returns)) * math.sqrt(year)


def sharpe_ratio(returns: Sequence[float], year: int) -> float:
    if len(returns) < 2:
        return NAN
    values = _numbers(returns)
    return _divide(_mean(values), _std(values)) * math.sqrt(year)


def downside_risk(returns: Sequence[float], year: int) -> float:
    if not returns:
        return NAN
    below = [min(r, 0.0) * min(r, 0.0) for r in _numbers(returns)]
    return math.sqrt(_mean(below)) * math.sqrt(year)


def sortino_ratio(returns: Sequence[float], year: int) -> float:
    if len(returns) < 2:
        return NAN
    return _divide(_mean(_numbers(returns)) * year, downside_risk(returns, year))


def max_drawdown(returns: Sequence[float]) -> float:
    """The deepest fall from a running peak, as a negative fraction (0: none)."""
    if not returns:
        return NAN
    growth, peak = 1.0, 100.0
    deepest = math.inf
    for r in returns:
        if not math.isnan(r):
            growth *= 1 + r
        value = growth * 100  # in empyrical's order: the growth, then the start's 100
        if not math.isnan(value):
            peak = max(peak, value) if not math.isnan(peak) else value
        deepest = min(deepest, _divide(value - peak, peak))  # a nan leaves it as it was
    return NAN if math.isinf(deepest) and deepest > 0 else deepest


def calmar_ratio(returns: Sequence[float], year: int) -> float:
    drawdown = max_drawdown(returns)
    if not drawdown < 0:
        return NAN
    ratio = annual_return(returns, year) / abs(drawdown)
    return NAN if math.isinf(ratio) else ratio


def alpha_beta(returns: Sequence[float], factor: Sequence[float], year: int) -> tuple[float, float]:
    """Alpha (annualised) and beta of ``returns`` against ``factor``, day by day;
    days where either is not a number are left out."""
    pairs = [(r, f) for r, f in zip(returns, factor, strict=True) if not math.isnan(f)]
    if not returns or len(factor) < 2:
        return NAN, NAN
    mean_factor = _mean([f for r, f in pairs if not math.isnan(r)])
    residuals = [(r, f - mean_factor) for r, f in pairs if not math.isnan(r)]
    # Each mean leaves out what is not a number, products included (inf times 0).
    covariance = _mean(_numbers([r * x for r, x in residuals]))
    variance = _mean(_numbers([x * x for _, x in residuals]))
    beta = covariance / variance if variance >= 1e-30 else NAN
    if len(returns) < 2:
        return NAN, beta
    excess = [r - beta * f for r, f in pairs if not math.isnan(r - beta * f)]
    try:
        alpha = (_mean(excess) + 1) ** year - 1
    except OverflowError:
        alpha = math.inf
    return float(alpha), beta


def _divide(top: float, bottom: float) -> float:
    """``top / bottom`` as numpy divides floats: by zero gives ``±inf`` or ``nan``."""
    if bottom:
        return top / bottom
    if math.isnan(top) or not top:
        return NAN
    return math.copysign(math.inf, top) * math.copysign(1.0, bottom)
