"""A cap on the quantity of one order."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from tradepipe import Check, ComponentSettings, Decision, OrderIntent, RiskContext, RiskFilter


class MaxQuantity(RiskFilter):
    """Reduce an order to at most ``limit`` units; orders that only shrink a position pass."""

    name = "max_quantity"
    description = "cap the quantity of one order; reduce larger ones"

    class Settings(ComponentSettings):  # the keys of [risk.max_quantity]
        limit: Decimal = Field(default=Decimal(500), gt=0)

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        limit = self.settings.limit
        position = ctx.position(intent.symbol)
        signed = intent.quantity if intent.side == "buy" else -intent.quantity
        if position and (signed > 0) != (position > 0) and abs(signed) <= abs(position):
            # Capping a sale could leave part of a position its strategy meant to close.
            return self.allow("reduces the position", position=position)
        # Keyword arguments are the figures recorded with the verdict; ``quantity``
        # is reduce()'s own argument, so the order's is recorded as ``requested``.
        if intent.quantity <= limit:
            return self.allow(requested=intent.quantity, limit=limit)
        return self.reduce(limit, f"capped at {limit}", requested=intent.quantity, limit=limit)
