"""A fake risk context and small builders shared by the risk-layer tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradepipe.decisions import Decision
from tradepipe.orders import OrderIntent, Side
from tradepipe.testing import T0

D = Decimal


@dataclass
class FakeContext:
    """A :class:`~tradepipe.risk.RiskContext` with fixed answers."""

    positions: dict[str, Decimal] = field(default_factory=dict)
    pendings: dict[str, Decimal] = field(default_factory=dict)
    #: What a close of each symbol may take (see RiskContext.closable).
    closables: dict[str, Decimal] = field(default_factory=dict)
    prices: dict[str, Decimal] = field(default_factory=dict)
    multipliers: dict[str, Decimal] = field(default_factory=dict)
    equity_: Decimal = D(100_000)
    cash_: Decimal = D(100_000)
    reserved_: Decimal = D(0)
    paper: bool = True
    account: str = "paper:test"
    when: dt.datetime = T0
    working: int = 0

    def now(self) -> dt.datetime:
        return self.when

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(symbol, D(0))

    def pending(self, symbol: str) -> Decimal:
        return self.pendings.get(symbol, D(0))

    def exposure(self, symbol: str) -> Decimal:
        return self.position(symbol) + self.pending(symbol)

    def closable(self, symbol: str) -> Decimal:
        return self.closables.get(symbol, D(0))

    def symbols(self) -> dict[str, Decimal]:
        held = {**self.positions, **self.pendings}
        return {s: self.multipliers.get(s, D(1)) for s in held if self.exposure(s)}

    def open_orders(self) -> int:
        return self.working

    def last_price(self, symbol: str) -> Decimal | None:
        return self.prices.get(symbol)

    def equity(self) -> Decimal:
        return self.equity_

    def cash(self) -> Decimal:
        return self.cash_

    def reserved_cash(self) -> Decimal:
        return self.reserved_

    def is_paper(self) -> bool:
        return self.paper

    def account_key(self) -> str:
        return self.account


def intent(
    side: str = "buy", quantity: str = "10", symbol: str = "AAPL", **values: Any
) -> OrderIntent:
    return OrderIntent(
        client_order_id="tp-1",
        decision_id="d-1",
        source="unit",
        symbol=symbol,
        side=Side(side),
        quantity=D(quantity),
        created_at=T0,
        **values,
    )


def decision(**values: Any) -> Decision:
    return Decision(symbol="AAPL", action="buy", confidence=90, **values)
