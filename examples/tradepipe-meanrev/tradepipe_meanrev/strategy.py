"""Mean reversion: buy a close well below its moving average, sell on the way back."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from tradepipe import SMA, Bar, ComponentSettings, Decision, Fill, Strategy, StrategyContext

_ZERO = Decimal(0)
_CENT = Decimal("0.01")


class MeanReversion(Strategy):
    """Long-only mean reversion, one state per symbol.

    It buys a flat symbol (nothing held, no order working) whose close is
    ``drop_pct`` or more below its ``lookback``-bar average, and sells what it
    bought once a close is back at the average, or ``stop_distance_pct`` below
    the price it paid: the stop that risk-based sizing was told about. It
    sells only its own shares, counted from its fills, so it can run beside
    another strategy trading the same symbols.
    """

    name = "meanrev"
    description = "buy a close well below its moving average, sell on the way back"

    class Settings(ComponentSettings):  # the keys of [strategies.meanrev]
        lookback: int = Field(default=20, ge=2)
        #: How far below the average a close must be to buy (0.03: 3%).
        drop_pct: float = Field(default=0.03, gt=0, lt=1)
        #: Above the default ``min_confidence`` threshold (70), so entries pass it.
        confidence: float = Field(default=75, ge=0, le=100)
        #: The exit below the price paid, as a fraction of it; sizing risks
        #: ``[sizing] risk_fraction`` of equity on this distance.
        stop_distance_pct: Decimal = Field(default=Decimal("0.05"), gt=0, lt=1)

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._averages: dict[str, SMA] = {}
        self._held: dict[str, Decimal] = {}
        self._paid: dict[str, float] = {}

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision | None:
        s = self.settings
        symbol = bar.symbol
        average = self._averages.setdefault(symbol, SMA(s.lookback)).update(bar.close)
        if average is None:
            return None
        exposure = ctx.exposure(symbol)
        if exposure <= 0:
            # Sold: by our own order (working or filled), or by another strategy.
            self._held.pop(symbol, None)
        held = min(self._held.get(symbol, _ZERO), exposure)
        if held > 0:
            stop = self._paid[symbol] * (1 - float(s.stop_distance_pct))
            if bar.close >= average:
                why = f"back at or above SMA({s.lookback}) {average:.2f}"
            elif bar.close <= stop:
                why = f"at or below the stop {stop:.2f}"
            else:
                return None
            return self.decision(
                ctx,
                symbol=symbol,
                action="sell",
                quantity=held,
                confidence=s.confidence,
                rationale=f"close {bar.close:g} {why}",
            )
        if exposure == 0 and bar.close <= average * (1 - s.drop_pct):
            distance = (Decimal(str(bar.close)) * s.stop_distance_pct).quantize(_CENT)
            return self.decision(
                ctx,
                symbol=symbol,
                action="buy",
                confidence=s.confidence,
                sizing={"stop_distance": max(distance, _CENT)},
                rationale=f"close {bar.close:g} is {1 - bar.close / average:.1%} below "
                f"SMA({s.lookback}) {average:.2f}",
            )
        return None

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        held = self._held.get(fill.symbol, _ZERO)
        if fill.side == "buy":
            self._held[fill.symbol] = held + fill.quantity
            self._paid[fill.symbol] = float(fill.price)
        else:
            self._held[fill.symbol] = max(held - fill.quantity, _ZERO)
