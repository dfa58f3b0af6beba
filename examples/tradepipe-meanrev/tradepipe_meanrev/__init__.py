"""tradepipe-meanrev: a mean-reversion strategy and a quantity cap for tradepipe.

The package's one entry point (``meanrev`` in the ``tradepipe`` group) names
this module; its hook implementations hand tradepipe the two components.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl

from tradepipe_meanrev.risk import MaxQuantity
from tradepipe_meanrev.strategy import MeanReversion

__all__ = ["MaxQuantity", "MeanReversion"]


@hookimpl
def tradepipe_register_strategies(register: Any) -> None:
    register(MeanReversion)


@hookimpl
def tradepipe_register_risk_filters(register: Any) -> None:
    register(MaxQuantity)
