"""The strategy in a whole pipeline, under tradepipe's default sizing and risk filters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradepipe import Bar, Decision, Strategy, StrategyContext, hookimpl
from tradepipe.testing import MemorySink, bars_from_closes, replay, test_host

DEFAULT_FILTERS = ["min_confidence", "max_position_value", "max_risk_per_trade", "buying_power"]
RUN = {"strategies": ["meanrev"], "risk_filters": [*DEFAULT_FILTERS, "max_quantity"]}
FLAT = [100.0] * 20  # SMA(20) = 100 from the 20th bar


def trades() -> list[tuple[str, Decimal, Decimal]]:
    sink = MemorySink.last
    assert sink is not None
    return [(str(f.side), f.quantity, f.price) for f in sink.fills]


def test_buys_the_dip_and_sells_at_the_average() -> None:
    _, result, _ = replay(bars_from_closes([*FLAT, 95.0, 96.0, 101.0, 101.0]), run=RUN)

    assert (result.decisions, result.orders, result.fills) == (2, 2, 2)
    # Risk sizing: 1% of 100,000 over a 4.75 stop is 210 shares, capped at
    # [sizing] max_position_value 10,000 / 95 = 105. Filled at the next bar's open.
    assert trades() == [("buy", 105, Decimal(95)), ("sell", 105, Decimal(101))]
    sink = MemorySink.last
    assert sink is not None
    assert sink.decisions[0].rationale == "close 95 is 4.8% below SMA(20) 99.75"
    assert sink.decisions[1].rationale == "close 101 back at or above SMA(20) 99.60"


def test_sells_at_the_stop() -> None:
    replay(bars_from_closes([*FLAT, 95.0, 90.0, 89.0]), run=RUN)

    assert trades() == [("buy", 105, Decimal(95)), ("sell", 105, Decimal(90))]
    sink = MemorySink.last
    assert sink is not None
    assert sink.decisions[1].rationale == "close 90 at or below the stop 90.25"


def test_a_dip_smaller_than_drop_pct_is_not_traded() -> None:
    closes = [*FLAT, 95.0, 96.0, 101.0]
    _, result, _ = replay(bars_from_closes(closes), run=RUN)
    assert result.decisions == 2
    # 95 is 4.8% below the average: not enough at drop_pct = 0.05.
    _, result, _ = replay(
        bars_from_closes(closes), run=RUN, strategies={"meanrev": {"drop_pct": 0.05}}
    )
    assert result.decisions == 0


class Follower(Strategy):
    """Buys 10 shares, once, of the first symbol it sees held."""

    name = "follower"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.bought = False

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision | None:
        if self.bought or ctx.position(bar.symbol) <= 0:
            return None
        self.bought = True
        return self.decision(ctx, symbol=bar.symbol, action="buy", quantity=10, confidence=90)


class FollowerPlugin:
    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(Follower)


def test_sells_only_what_it_bought() -> None:
    pipeline, _, _ = replay(
        bars_from_closes([*FLAT, 95.0, 96.0, 101.0, 101.0]),
        host=test_host(FollowerPlugin()),
        run={"strategies": ["meanrev", "follower"], "risk_filters": ["min_confidence"]},
    )

    assert trades() == [
        ("buy", 105, Decimal(95)),  # meanrev
        ("buy", 10, Decimal(96)),  # follower, on top
        ("sell", 105, Decimal(101)),  # meanrev, its own shares only
    ]
    assert pipeline.broker.positions()[0].quantity == 10
