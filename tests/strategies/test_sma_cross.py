"""The built-in SMA crossover strategy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from tradepipe import Action
from tradepipe.strategies.sma_cross import SmaCross
from tradepipe.testing import MemorySink, bars_from_closes, replay

FAST_SLOW = {"fast": 2, "slow": 4}


def decisions(closes: list[float], symbol: str = "AAPL", **settings: Any) -> list[Any]:
    replay(
        bars_from_closes(closes, symbol),
        strategies={"sma_cross": {**FAST_SLOW, **settings}},
        run={"risk_filters": []},
    )
    assert MemorySink.last is not None
    return MemorySink.last.decisions


def test_buys_on_a_cross_up_with_the_trend_and_closes_on_a_cross_down() -> None:
    # Falling, then a rise that lifts SMA(2) above SMA(4) while SMA(4) rises too,
    # then a fall that crosses back below.
    closes = [10, 9, 8, 7, 6, 9, 12, 13, 12, 7, 5, 4]
    made = decisions(closes, quantity=5)
    assert [d.action for d in made] == [Action.BUY, Action.CLOSE]
    buy, close = made
    assert buy.confidence == 80 and buy.quantity == Decimal(5)
    assert buy.rationale == "SMA(2) crossed above SMA(4)"
    assert buy.source == "sma_cross" and buy.id.startswith("d-")
    assert close.rationale == "SMA(2) crossed below SMA(4)"
    # Decided on the bar where the averages crossed.
    assert buy.created_at == made[0].created_at
    fills = MemorySink.last.fills
    assert [f.side for f in fills] == ["buy", "sell"]


def test_a_cross_up_while_the_slow_average_falls_has_lower_confidence() -> None:
    # Last bar: SMA(2) = (20 + 30) / 2 = 25 > SMA(4) = (10 + 5 + 20 + 30) / 4 = 16.25,
    # a cross up (the bar before, 12.5 < 18.75); but SMA(4) fell from 18.75 to
    # 16.25 because 30 replaced 40 in its window.
    closes = [40, 40, 40, 40, 10, 5, 20, 30]
    [entry] = decisions(closes, quantity=1)
    assert entry.action is Action.BUY
    assert entry.confidence == 60
    assert "still falling" in entry.rationale


def test_no_second_entry_while_long_and_no_close_while_flat() -> None:
    closes = [10, 9, 8, 7, 6, 9, 12, 11, 13, 14, 15]
    made = decisions(closes, quantity=1)
    assert [d.action for d in made] == [Action.BUY]


def test_risk_sizing_gets_a_stop_distance_hint() -> None:
    closes = [10, 9, 8, 7, 6, 9, 12]
    [entry] = decisions(closes, stop_distance_pct="0.05")
    assert entry.quantity is None
    assert entry.sizing is not None
    assert entry.sizing.stop_distance == Decimal("0.6000")  # 5% of the close, 12


def test_symbols_setting_restricts_the_strategy() -> None:
    assert decisions([10, 9, 8, 7, 6, 9, 12], symbol="MSFT", symbols=["aapl"]) == []


@pytest.mark.parametrize("bad", [{"fast": 30, "slow": 10}, {"fast": 5, "slow": 5}, {"fast": 0}])
def test_settings_are_checked(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        SmaCross.Settings(**bad)
