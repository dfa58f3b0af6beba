"""The quantity cap."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tradepipe import Decision, OrderIntent
from tradepipe.testing import MemorySink, bars_from_closes, replay

from tradepipe_meanrev import MaxQuantity

FIXED = {"method": "fixed_quantity", "quantity": 800, "max_position_value": 1_000_000}


def test_reduces_a_larger_order_to_the_limit() -> None:
    closes = [*[100.0] * 20, 95.0, 96.0, 101.0, 101.0]
    _, result, _ = replay(
        bars_from_closes(closes),
        run={"strategies": ["meanrev"], "risk_filters": ["max_quantity"]},
        sizing=FIXED,
        risk={"max_quantity": {"limit": 300}},
    )

    sink = MemorySink.last
    assert sink is not None
    capped = [v for v in sink.verdicts if v.outcome == "reduce"]
    assert [(v.quantity_before, v.quantity_after, v.reason) for v in capped] == [
        (800, 300, "capped at 300")
    ]
    assert [(str(f.side), f.quantity) for f in sink.fills] == [("buy", 300), ("sell", 300)]
    assert result.fills == 2


class Holding:
    """A risk context holding 800 AAPL (the cap reads nothing else)."""

    def position(self, symbol: str) -> Decimal:
        return Decimal(800) if symbol == "AAPL" else Decimal(0)


def test_a_sale_that_shrinks_the_position_is_never_capped() -> None:
    now = dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)
    decision = Decision(source="test", symbol="AAPL", action="close", confidence=80, created_at=now)
    sale = OrderIntent(
        client_order_id="c-1",
        decision_id="d-1",
        source="test",
        symbol="AAPL",
        side="sell",
        quantity=Decimal(800),
        created_at=now,
    )
    cap = MaxQuantity(MaxQuantity.Settings(limit=Decimal(300)))

    check = cap.check(sale, decision, Holding())  # type: ignore[arg-type]

    assert (check.outcome, check.reason) == ("pass", "reduces the position")
