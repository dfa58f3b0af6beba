"""The built-in risk filters.

Each is one small class: a ``name``, a ``Settings`` table (``[risk.<name>]``)
and a ``check`` that returns pass, deny or reduce with the figures it used.
Orders that only shrink an existing position pass the exposure filters: they
lower risk, and refusing them could trap a position.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field
from tradepipe import (
    Check,
    ComponentSettings,
    Decision,
    OrderIntent,
    RiskContext,
    RiskFilter,
    hookimpl,
)
from tradepipe.money import ZERO, cents, floor_quantity
from tradepipe.options.risk import OptionRisk


def signed(intent: OrderIntent) -> Decimal:
    return intent.quantity if intent.side == "buy" else -intent.quantity


def reduces_only(intent: OrderIntent, position: Decimal) -> bool:
    """True when the order moves the position towards zero without crossing it."""
    qty = signed(intent)
    return position != 0 and (qty > 0) != (position > 0) and abs(qty) <= abs(position)


def order_price(intent: OrderIntent, ctx: RiskContext) -> Decimal | None:
    return (
        intent.limit_price
        or intent.stop_price
        or intent.reference_price
        or ctx.last_price(intent.symbol)
    )


def per_unit(amount: Decimal, intent: OrderIntent) -> Decimal:
    """``amount`` per unit of the order: times the multiplier for options and combos."""
    return amount if intent.instrument is None else amount * intent.multiplier


def floor_units(quantity: Decimal, like: Decimal) -> Decimal:
    """Round down, to whole units when the original quantity was whole."""
    return floor_quantity(quantity, whole=like == like.to_integral_value())


class MinConfidence(RiskFilter):
    """Deny decisions whose confidence is below a threshold."""

    name = "min_confidence"
    description = "deny decisions less confident than the threshold (0-100)"

    class Settings(ComponentSettings):
        threshold: float = Field(default=70, ge=0, le=100)

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        threshold = self.settings.threshold
        if not decision.confidence >= threshold:  # also refuses NaN
            return self.deny(
                f"confidence {decision.confidence:g} is below {threshold:g}",
                confidence=decision.confidence,
                threshold=threshold,
            )
        return self.allow(confidence=decision.confidence, threshold=threshold)


class MaxPositionValue(RiskFilter):
    """Cap the value of the position in one symbol after the order fills."""

    name = "max_position_value"
    description = "cap one symbol's position value; reduce orders that would exceed it"

    class Settings(ComponentSettings):
        limit: Decimal = Field(default=Decimal(10_000), gt=0)

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        position = ctx.exposure(intent.symbol)  # working orders count
        if reduces_only(intent, position):
            return self.allow("reduces the position", position=position)
        price = order_price(intent, ctx)
        limit = self.settings.limit
        if price is None:
            return self.deny(f"no price known for {intent.symbol} to value the position")
        after = abs(position + signed(intent))
        unit_value = per_unit(price, intent)
        value = after * unit_value
        figures: dict[str, Any] = {
            "price": price,
            "position": position,
            "value_after": cents(value),
            "limit": limit,
        }
        if value <= limit:
            return self.allow(**figures)
        if position != 0 and (position > 0) != (intent.side == "buy"):
            # Crossing zero: the order may close the position and open up to the limit.
            room = abs(position) + limit / unit_value
        else:
            room = limit / unit_value - abs(position)
        allowed = floor_units(room, intent.quantity)
        if allowed <= 0:
            return self.deny(
                f"{intent.symbol} position would be worth {cents(value)}, over the limit "
                f"{limit}, and no smaller order fits",
                **figures,
            )
        return self.reduce(
            allowed, f"reduced to {allowed} to keep {intent.symbol} within {limit}", **figures
        )


class MaxRiskPerTrade(RiskFilter):
    """Cap what one trade can lose at its stop, as a fraction of equity."""

    name = "max_risk_per_trade"
    description = "cap the loss at the stop to a fraction of equity"

    class Settings(ComponentSettings):
        max_fraction: Decimal = Field(default=Decimal("0.02"), gt=0, le=1)
        #: Deny orders that give no stop (otherwise they pass, unmeasured).
        require_stop: bool = False

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        if reduces_only(intent, ctx.exposure(intent.symbol)):
            return self.allow("reduces the position")
        stored = intent.option_risk
        if stored is not None and intent.stop_loss is None:
            # An options strategy's worst loss is known: it is the trade's risk.
            return self._options(intent, stored, ctx)
        distance = decision.sizing.stop_distance if decision.sizing else None
        price = order_price(intent, ctx)
        if distance is None and intent.stop_loss is not None:
            if price is None:
                # A stop that cannot be measured must not pass as "no stop" (fail closed).
                return self.deny(f"no price known for {intent.symbol} to measure the stop")
            distance = abs(price - intent.stop_loss)
        if not distance:
            if self.settings.require_stop:
                return self.deny("no stop given, and require_stop is on")
            return self.allow("no stop given; risk not measurable")
        equity = ctx.equity()
        budget = equity * self.settings.max_fraction
        unit_risk = per_unit(distance, intent)
        risk = intent.quantity * unit_risk
        figures: dict[str, Any] = {
            "stop_distance": distance,
            "risk": cents(risk),
            "equity": cents(equity),
            "max_fraction": self.settings.max_fraction,
            "budget": cents(budget),
        }
        if risk <= budget:
            return self.allow(**figures)
        allowed = floor_units(budget / unit_risk, intent.quantity)
        if allowed <= 0:
            return self.deny(f"risk {cents(risk)} exceeds {cents(budget)}", **figures)
        return self.reduce(
            allowed, f"reduced to {allowed}: risk {cents(risk)} exceeds {cents(budget)}", **figures
        )

    def _options(self, intent: OrderIntent, stored: OptionRisk, ctx: RiskContext) -> Check:
        """Judge an options strategy by the worst loss stored with it (for this quantity)."""
        if stored.max_loss is None:
            return self.deny(f"the {stored.strategy}'s loss has no bound", strategy=stored.strategy)
        equity = ctx.equity()
        budget = equity * self.settings.max_fraction
        risk = stored.max_loss
        figures: dict[str, Any] = {
            "strategy": stored.strategy,
            "max_loss": cents(risk),
            "equity": cents(equity),
            "max_fraction": self.settings.max_fraction,
            "budget": cents(budget),
        }
        if risk <= budget:
            return self.allow(**figures)
        allowed = floor_units(budget / (risk / intent.quantity), intent.quantity)
        reason = f"the {stored.strategy}'s max loss {cents(risk)} exceeds {cents(budget)}"
        if allowed <= 0:
            return self.deny(reason, **figures)
        return self.reduce(allowed, f"reduced to {allowed}: {reason}", **figures)


class BuyingPower(RiskFilter):
    """Keep buys within the cash not already committed to open buy orders."""

    name = "buying_power"
    description = "keep buys within available cash (minus open buy orders)"

    class Settings(ComponentSettings):
        #: Fraction of cash to keep aside (0.05 keeps 5% uninvested).
        reserve_fraction: Decimal = Field(default=ZERO, ge=0, lt=1)

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        if intent.side != "buy":
            return self.allow("sells do not use buying power")
        price = order_price(intent, ctx)
        if price is None:
            return self.deny(f"no price known for {intent.symbol} to cost the order")
        cash = ctx.cash()
        available = cash * (1 - self.settings.reserve_fraction) - ctx.reserved_cash()
        unit_cost = per_unit(price, intent)
        cost = intent.quantity * unit_cost
        figures: dict[str, Any] = {
            "cost": cents(cost),
            "available": cents(available),
            "cash": cents(cash),
        }
        if cost <= available:
            return self.allow(**figures)
        allowed = floor_units(available / unit_cost, intent.quantity) if available > 0 else ZERO
        if allowed <= 0:
            return self.deny(
                f"order costs {cents(cost)} with {cents(max(available, ZERO))} available", **figures
            )
        return self.reduce(allowed, f"reduced to {allowed} to fit available cash", **figures)


@hookimpl
def tradepipe_register_risk_filters(register: Any) -> None:
    for cls in (MinConfidence, MaxPositionValue, MaxRiskPerTrade, BuyingPower):
        register(cls)
