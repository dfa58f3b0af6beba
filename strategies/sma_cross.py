"""SMA crossover: long when the fast average crosses above the slow one, flat when below."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator
from tradepipe import (
    Action,
    Bar,
    ComponentSettings,
    Decision,
    SizingHints,
    Strategy,
    StrategyContext,
    hookimpl,
)
from tradepipe.indicators import SMAPair
from tradepipe.money import to_decimal

_STEP = Decimal("0.0001")
#: Averages closer than this fraction of the slow one are equal (see SmaCross).
_TIE = 1e-9


def _settled(diff: float, slow: float | None) -> float:
    """``diff``, or 0 when the averages are equal but for float rounding."""
    return 0.0 if slow is not None and abs(diff) < _TIE * abs(slow) else diff


class SmaCross(Strategy):
    """Long-only moving-average crossover, one state per symbol.

    A cross above is ``fast(t-1) <= slow(t-1)`` and ``fast(t) > slow(t)``; it
    buys when flat. A cross below (the mirror image) closes a long position.
    Averages within a billionth of each other are equal: running sums of floats
    differ from exact ones by far less, and real prices (in cents) by far more,
    so whether the averages touched never depends on rounding.
    An entry while the slow average is still falling goes against the longer
    trend and is proposed with ``counter_trend_confidence`` instead of
    ``confidence`` (with the default minimum-confidence filter, it is denied).
    """

    name = "sma_cross"
    description = "long when SMA(fast) crosses above SMA(slow), flat when it crosses below"

    class Settings(ComponentSettings):
        fast: int = Field(default=10, ge=1)
        slow: int = Field(default=30, ge=2)
        confidence: float = Field(default=80, ge=0, le=100)
        #: Confidence of an entry made while the slow average is still falling.
        counter_trend_confidence: float = Field(default=60, ge=0, le=100)
        #: Fixed quantity per entry; when unset, sizing decides.
        quantity: Decimal | None = Field(default=None, gt=0)
        #: Stop distance as a fraction of the price, given to risk-based sizing.
        stop_distance_pct: Decimal | None = Field(default=Decimal("0.02"), gt=0, lt=1)
        #: Only these symbols (empty: every symbol the feed has).
        symbols: list[str] = Field(default_factory=list)

        @model_validator(mode="after")
        def _fast_below_slow(self) -> SmaCross.Settings:
            if self.fast >= self.slow:
                raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
            return self

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._averages: dict[str, SMAPair] = {}
        self._previous: dict[str, float] = {}
        self._only = {s.upper() for s in self.settings.symbols}
        fast, slow = self.settings.fast, self.settings.slow
        self._above = f"SMA({fast}) crossed above SMA({slow})"
        self._below = f"SMA({fast}) crossed below SMA({slow})"
        self._against = f"{self._above} while SMA({slow}) is still falling"

    def warm_up(self, bars: Sequence[Bar], ctx: StrategyContext) -> None:
        for bar in bars:
            averages = self._pair(bar.symbol)
            if averages is not None:
                diff = averages.update(bar.close)
                if diff is not None:
                    self._previous[bar.symbol] = _settled(diff, averages.slow_value)

    def _pair(self, symbol: str) -> SMAPair | None:
        averages = self._averages.get(symbol)
        if averages is None:
            if self._only and symbol not in self._only:
                return None
            averages = self._averages[symbol] = SMAPair(self.settings.fast, self.settings.slow)
        return averages

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision | None:
        symbol = bar.symbol
        averages = self._averages.get(symbol)
        if averages is None:
            averages = self._pair(symbol)
            if averages is None:
                return None
        slow_before = averages.slow_value
        diff = averages.update(bar.close)
        if diff is None:
            return None
        tie = _TIE * averages.slow_value  # type: ignore[operator]
        if -tie < diff < tie:
            diff = 0.0
        previous = self._previous.get(symbol)
        self._previous[symbol] = diff
        if previous is None:
            return None
        if previous <= 0 < diff:
            if ctx.position(symbol) > 0:
                return None
            rising = slow_before is not None and averages.slow_value >= slow_before  # type: ignore[operator]
            return self._entry(bar, ctx, rising)
        if previous >= 0 > diff and ctx.position(symbol) > 0:
            return self.trusted_decision(
                ctx,
                symbol=symbol,
                action=Action.CLOSE,
                confidence=self.settings.confidence,
                rationale=self._below,
            )
        return None

    def _entry(self, bar: Bar, ctx: StrategyContext, with_trend: bool) -> Decision:
        s = self.settings
        hints = None
        if s.quantity is None and s.stop_distance_pct is not None:
            distance = (to_decimal(bar.close) * s.stop_distance_pct).quantize(_STEP)
            hints = SizingHints.trusted(stop_distance=max(distance, _STEP))
        # Every value comes from the validated settings or a checked bar.
        return self.trusted_decision(
            ctx,
            symbol=bar.symbol,
            action=Action.BUY,
            confidence=s.confidence if with_trend else s.counter_trend_confidence,
            quantity=s.quantity,
            sizing=hints,
            rationale=self._above if with_trend else self._against,
        )


@hookimpl
def tradepipe_register_strategies(register: Any) -> None:
    register(SmaCross)
