"""``options_guards``: defined risk only, a cap on contracts, no naked short calls.

A combo's worst loss is bounded exactly when its value cannot fall without end
as the underlying rises: its slope far above every strike (the net of its
calls and shares, each times its multiplier, signed by the order's side) must
not be negative. Below, prices stop at zero, so puts never make a loss
unbounded. A short put on its own is allowed when cash covers its assignment
(cash-secured); a short call when shares held cover it (covered).
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
from tradepipe.instruments import Combo, Option
from tradepipe.money import ZERO, cents
from tradepipe.plugins.risk.filters import reduces_only


def upside_slope(combo: Combo, side_sign: int) -> Decimal:
    """Money gained per point the underlying rises, far above every strike."""
    slope = ZERO
    for leg in combo.legs:
        inst = leg.instrument
        if isinstance(inst, Option) and inst.right == "P":
            continue
        slope += leg.ratio * inst.multiplier
    return slope * side_sign


def contracts_per_unit(intent: OrderIntent) -> Decimal:
    """Option contracts one unit of the order trades (a combo: every option leg's ratio)."""
    inst = intent.instrument
    if isinstance(inst, Option):
        return Decimal(1)
    if isinstance(inst, Combo):
        return Decimal(
            sum(abs(leg.ratio) for leg in inst.legs if isinstance(leg.instrument, Option))
        )
    return ZERO


class OptionsGuards(RiskFilter):
    """Keep option orders to defined risk and a number of contracts."""

    name = "options_guards"
    description = "defined-risk options only (unless allowed), max contracts, no naked short calls"

    class Settings(ComponentSettings):
        #: Deny short options whose loss is not bounded by something held
        #: (uncovered calls, puts without the cash for assignment, open-ended combos).
        defined_risk_only: bool = True
        #: Even with defined_risk_only off, uncovered short calls need this.
        allow_naked_short_calls: bool = False
        #: Largest number of contracts in one order (combo: summed over option legs).
        max_contracts: int = Field(default=10, ge=1)

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        per_unit = contracts_per_unit(intent)
        if not per_unit:
            return self.allow("not an option order")
        contracts = intent.quantity * per_unit
        limit = self.settings.max_contracts
        figures: dict[str, Any] = {"contracts": contracts, "max_contracts": limit}
        risk = self._risk(intent, ctx, figures)
        if risk is not None:
            return self.deny(risk, **figures)
        if contracts <= limit:
            return self.allow(**figures)
        allowed = Decimal(limit) // per_unit
        if allowed <= 0:
            return self.deny(
                f"one unit is {per_unit} contracts, over max_contracts {limit}", **figures
            )
        return self.reduce(
            allowed, f"reduced to {allowed}: {contracts} contracts over {limit}", **figures
        )

    def _risk(self, intent: OrderIntent, ctx: RiskContext, figures: dict[str, Any]) -> str | None:
        """Why the order's risk is refused, or ``None``."""
        inst = intent.instrument
        s = self.settings
        if isinstance(inst, Combo):
            slope = upside_slope(inst, 1 if intent.side == "buy" else -1) * intent.quantity
            figures["upside_slope"] = slope
            if slope >= 0:
                return None
            # The combo's upside loss has no end: net short calls, uncovered.
            covered = max(ctx.exposure(_underlying(inst)), ZERO)
            figures["shares_held"] = covered
            if covered + slope >= 0:
                return None
            if s.defined_risk_only or not s.allow_naked_short_calls:
                return "combo loses without limit as the underlying rises (net short calls)"
            return None
        assert isinstance(inst, Option)
        if intent.side == "buy" or reduces_only(intent, ctx.exposure(intent.symbol)):
            return None
        if inst.right == "C":
            held = max(ctx.exposure(inst.underlying), ZERO)
            needed = intent.quantity * inst.multiplier
            figures.update(shares_held=held, shares_needed=needed)
            if held >= needed:
                return None
            if s.defined_risk_only or not s.allow_naked_short_calls:
                return f"naked short call: {needed} shares needed to cover it, {held} held"
            return None
        needed_cash = intent.quantity * inst.strike * inst.multiplier
        free = ctx.cash() - ctx.reserved_cash()
        figures.update(cash_needed=cents(needed_cash), cash_free=cents(free))
        if free >= needed_cash or not s.defined_risk_only:
            return None
        return f"naked short put: assignment needs {cents(needed_cash)}, {cents(free)} free"


def _underlying(combo: Combo) -> str:
    return combo.symbol.split("+", 1)[0]


@hookimpl
def tradepipe_register_risk_filters(register: Any) -> None:
    register(OptionsGuards)
