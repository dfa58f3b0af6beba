"""The built-in risk filters, against a fake risk context."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_fakes import FakeContext
from tradepipe.decisions import Action, Decision, SizingHints
from tradepipe.orders import OrderIntent, Side
from tradepipe.plugins.risk.filters import (
    BuyingPower,
    MaxPositionValue,
    MaxRiskPerTrade,
    MinConfidence,
)
from tradepipe.risk import Check, Outcome
from tradepipe.testing import T0

D = Decimal


def ctx(position: str = "0", price: str | None = "100", **values: Any) -> FakeContext:
    prices = {} if price is None else {"AAPL": D(price)}
    return FakeContext(positions={"AAPL": D(position)}, prices=prices, **values)


def intent(side: str = "buy", quantity: str = "10", **values: Any) -> OrderIntent:
    return OrderIntent(
        client_order_id="tp-1",
        decision_id="d-1",
        source="unit",
        symbol="AAPL",
        side=Side(side),
        quantity=D(quantity),
        created_at=T0,
        **values,
    )


def decision(confidence: float = 80, **values: Any) -> Decision:
    return Decision(symbol="AAPL", action="buy", confidence=confidence, **values)


# -- MinConfidence -------------------------------------------------------------------


def test_min_confidence_denies_below_the_threshold() -> None:
    flt = MinConfidence()
    check = flt.check(intent(), decision(69.5), ctx())
    assert check == Check(
        Outcome.DENY,
        "confidence 69.5 is below 70",
        None,
        {"confidence": 69.5, "threshold": 70},
    )


@pytest.mark.parametrize("confidence", [70, 70.01, 100])
def test_min_confidence_passes_at_or_above(confidence: float) -> None:
    check = MinConfidence().check(intent(), decision(confidence), ctx())
    assert check.outcome is Outcome.PASS
    assert check.quantity is None
    assert check.figures == {"confidence": confidence, "threshold": 70}


def test_min_confidence_threshold_from_settings() -> None:
    flt = MinConfidence(MinConfidence.Settings(threshold=90))
    assert flt.check(intent(), decision(89), ctx()).reason == "confidence 89 is below 90"
    assert flt.check(intent(), decision(90), ctx()).outcome is Outcome.PASS


# -- MaxPositionValue ----------------------------------------------------------------


def max_value(limit: str = "10000") -> MaxPositionValue:
    return MaxPositionValue(MaxPositionValue.Settings(limit=D(limit)))


def test_position_value_within_the_limit_passes() -> None:
    # 50 x 100 = 5000
    check = max_value().check(intent(quantity="50"), decision(), ctx())
    assert check.outcome is Outcome.PASS
    assert check.figures == {
        "price": D(100),
        "position": D(0),
        "value_after": D("5000.00"),
        "limit": D(10000),
    }


def test_position_value_exactly_at_the_limit_passes() -> None:
    assert max_value().check(intent(quantity="100"), decision(), ctx()).outcome is Outcome.PASS


def test_position_value_over_the_limit_reduces() -> None:
    # 150 x 100 = 15000 > 10000; 10000 / 100 = 100
    check = max_value().check(intent(quantity="150"), decision(), ctx())
    assert check.outcome is Outcome.REDUCE
    assert check.quantity == D(100)
    assert check.reason == "reduced to 100 to keep AAPL within 10000"
    assert str(check.figures["value_after"]) == "15000.00"


def test_existing_long_counts_when_buying() -> None:
    # (60 + 50) x 100 = 11000; room 10000 / 100 - 60 = 40
    check = max_value().check(intent(quantity="50"), decision(), ctx(position="60"))
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(40))
    assert check.figures["position"] == D(60)
    assert check.figures["value_after"] == D("11000.00")


def test_existing_short_counts_when_selling() -> None:
    # |-50 - 80| x 100 = 13000; room 100 - 50 = 50
    check = max_value().check(intent("sell", "80"), decision(), ctx(position="-50"))
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(50))


def test_flip_through_zero_may_close_and_open_up_to_the_limit() -> None:
    # long 10, sell 150: short 140 x 100 = 14000; closing 10 + opening 100 = 110
    check = max_value().check(intent("sell", "150"), decision(), ctx(position="10"))
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(110))


def test_full_position_denies() -> None:
    check = max_value().check(intent(quantity="10"), decision(), ctx(position="100"))
    assert check.outcome is Outcome.DENY
    assert check.reason == (
        "AAPL position would be worth 11000.00, over the limit 10000, and no smaller order fits"
    )
    assert check.figures["value_after"] == D("11000.00")


def test_fractional_orders_reduce_to_fractions() -> None:
    # 15.5 x 3000 = 46500; 10000 / 3000 = 3.3333...
    check = max_value().check(intent(quantity="15.5"), decision(), ctx(price="3000"))
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D("3.3333"))


def test_whole_orders_reduce_to_whole_units() -> None:
    # 15 x 3000 = 45000; 10000 / 3000 = 3.33 -> 3
    check = max_value().check(intent(quantity="15"), decision(), ctx(price="3000"))
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(3))


def test_price_comes_from_the_order_first() -> None:
    # limit 200 beats the reference 100 and the last price 50: 60 x 200 = 12000 -> 50
    order = intent(quantity="60", order_type="limit", limit_price=D(200), reference_price=D(100))
    check = max_value().check(order, decision(), ctx(price="50"))
    assert check.figures["price"] == D(200)
    assert check.quantity == D(50)
    # the reference price beats the last price: 60 x 100 = 6000
    order = intent(quantity="60", reference_price=D(100))
    check = max_value().check(order, decision(), ctx(price="500"))
    assert (check.outcome, check.figures["price"]) == (Outcome.PASS, D(100))


@pytest.mark.parametrize(
    ("position", "side", "quantity"),
    [
        ("200", "sell", "50"),
        ("200", "sell", "200"),
        ("-300", "buy", "1"),
        ("-300", "buy", "300"),
    ],
)
def test_reducing_orders_pass_even_over_the_limit(position: str, side: str, quantity: str) -> None:
    # 200 x 100 = 20000 is already over 10000; no price is needed to shrink it
    check = max_value().check(intent(side, quantity), decision(), ctx(position, price=None))
    assert check.outcome is Outcome.PASS
    assert check.reason == "reduces the position"


def test_missing_price_denies() -> None:
    check = max_value().check(intent(), decision(), ctx(price=None))
    assert check.outcome is Outcome.DENY
    assert check.reason == "no price known for AAPL to value the position"


# -- MaxRiskPerTrade -----------------------------------------------------------------


def max_risk(fraction: str = "0.02", require_stop: bool = False) -> MaxRiskPerTrade:
    return MaxRiskPerTrade(
        MaxRiskPerTrade.Settings(max_fraction=D(fraction), require_stop=require_stop)
    )


def test_risk_within_budget_passes() -> None:
    # 100 x 5 = 500 <= 50000 x 0.02 = 1000
    hinted = decision(sizing=SizingHints(stop_distance=D(5)))
    check = max_risk().check(intent(quantity="100"), hinted, ctx(equity_=D(50_000)))
    assert check.outcome is Outcome.PASS
    assert check.figures == {
        "stop_distance": D(5),
        "risk": D("500.00"),
        "equity": D("50000.00"),
        "max_fraction": D("0.02"),
        "budget": D("1000.00"),
    }


def test_risk_exactly_at_the_budget_passes() -> None:
    # 200 x 5 = 1000 = 50000 x 0.02
    hinted = decision(sizing=SizingHints(stop_distance=D(5)))
    check = max_risk().check(intent(quantity="200"), hinted, ctx(equity_=D(50_000)))
    assert check.outcome is Outcome.PASS


def test_risk_over_budget_reduces() -> None:
    # stop 95 on a price of 100: 300 x 5 = 1500 > 1000; 1000 / 5 = 200
    order = intent(quantity="300", stop_loss=D(95), reference_price=D(100))
    check = max_risk().check(order, decision(), ctx(equity_=D(50_000)))
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(200))
    assert check.reason == "reduced to 200: risk 1500.00 exceeds 1000.00"
    assert check.figures["stop_distance"] == D(5)


def test_risk_reduction_rounds_down() -> None:
    # distance 3: 1000 / 3 = 333.3 -> 333
    order = intent(quantity="400", stop_loss=D(97))
    check = max_risk().check(order, decision(), ctx(equity_=D(50_000)))
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(333))


def test_stop_distance_hint_wins_over_stop_loss() -> None:
    # hint 2 (not |100 - 90| = 10): 400 x 2 = 800 <= 1000
    hinted = decision(sizing=SizingHints(stop_distance=D(2)))
    order = intent(quantity="400", stop_loss=D(90))
    check = max_risk().check(order, hinted, ctx(equity_=D(50_000)))
    assert check.outcome is Outcome.PASS
    assert check.figures["stop_distance"] == D(2)


def test_risk_with_no_unit_fitting_denies() -> None:
    # distance 2000 on 1000 of budget: 0.5 of a unit
    hinted = decision(sizing=SizingHints(stop_distance=D(2000)))
    check = max_risk().check(intent(quantity="2"), hinted, ctx(equity_=D(50_000)))
    assert check.outcome is Outcome.DENY
    assert check.reason == "risk 4000.00 exceeds 1000.00"


def test_no_stop_passes_unmeasured() -> None:
    check = max_risk().check(intent(quantity="10000"), decision(), ctx())
    assert check == Check(Outcome.PASS, "no stop given; risk not measurable", None, {})


def test_require_stop_denies_without_a_stop() -> None:
    check = max_risk(require_stop=True).check(intent(), decision(), ctx())
    assert (check.outcome, check.reason) == (Outcome.DENY, "no stop given, and require_stop is on")


def test_stop_without_a_price_denies() -> None:
    check = max_risk().check(intent(stop_loss=D(95)), decision(), ctx(price=None))
    assert check.outcome is Outcome.DENY
    assert check.reason == "no price known for AAPL to measure the stop"


def test_reducing_orders_pass_the_risk_filter() -> None:
    hinted = decision(sizing=SizingHints(stop_distance=D(50)))
    check = max_risk(require_stop=True).check(
        intent("sell", "500"), hinted, ctx(position="500", equity_=D(1000))
    )
    assert (check.outcome, check.reason) == (Outcome.PASS, "reduces the position")


# -- BuyingPower ---------------------------------------------------------------------


def buying_power(reserve: str = "0") -> BuyingPower:
    return BuyingPower(BuyingPower.Settings(reserve_fraction=D(reserve)))


def test_buy_within_cash_passes() -> None:
    # 50 x 100 = 5000 <= 10000
    check = buying_power().check(intent(quantity="50"), decision(), ctx(cash_=D(10_000)))
    assert check.outcome is Outcome.PASS
    assert check.figures == {
        "cost": D("5000.00"),
        "available": D("10000.00"),
        "cash": D("10000.00"),
    }


def test_cost_exactly_at_available_passes() -> None:
    # 100 x 100 = 10000 - 0 reserved
    check = buying_power().check(intent(quantity="100"), decision(), ctx(cash_=D(10_000)))
    assert check.outcome is Outcome.PASS


def test_open_buy_orders_reduce_what_is_available() -> None:
    # 10000 - 2500 reserved = 7500; 150 x 100 = 15000; 7500 / 100 = 75
    check = buying_power().check(
        intent(quantity="150"), decision(), ctx(cash_=D(10_000), reserved_=D(2500))
    )
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(75))
    assert check.reason == "reduced to 75 to fit available cash"
    assert check.figures == {
        "cost": D("15000.00"),
        "available": D("7500.00"),
        "cash": D("10000.00"),
    }


def test_reserve_fraction_keeps_cash_aside() -> None:
    # 10000 x 0.9 - 1000 = 8000; 100 x 100 = 10000 -> 80
    check = buying_power("0.1").check(
        intent(quantity="100"), decision(), ctx(cash_=D(10_000), reserved_=D(1000))
    )
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(80))


def test_nothing_available_denies() -> None:
    # 1000 - 2000 = -1000 available
    check = buying_power().check(
        intent(quantity="10"), decision(), ctx(cash_=D(1000), reserved_=D(2000))
    )
    assert check.outcome is Outcome.DENY
    assert check.reason == "order costs 1000.00 with 0.00 available"
    assert check.figures["available"] == D("-1000.00")


def test_less_than_one_unit_available_denies() -> None:
    check = buying_power().check(intent(quantity="1"), decision(), ctx(cash_=D(50)))
    assert check.outcome is Outcome.DENY
    assert check.reason == "order costs 100.00 with 50.00 available"


def test_sells_do_not_use_buying_power() -> None:
    check = buying_power().check(intent("sell", "1000"), decision(), ctx(cash_=D(0), price=None))
    assert (check.outcome, check.reason) == (Outcome.PASS, "sells do not use buying power")


def test_buying_power_missing_price_denies() -> None:
    check = buying_power().check(intent(), decision(), ctx(price=None))
    assert check.outcome is Outcome.DENY
    assert check.reason == "no price known for AAPL to cost the order"


# -- properties ----------------------------------------------------------------------

prices = st.decimals(min_value=D("0.01"), max_value=D(2000), places=2)
positions = st.integers(min_value=-1000, max_value=1000).map(D)
quantities = st.one_of(
    st.integers(min_value=1, max_value=5000).map(D),
    st.decimals(min_value=D("0.0001"), max_value=D(5000), places=4),
)
sides = st.sampled_from(["buy", "sell"])


def signed(side: str, quantity: Decimal) -> Decimal:
    return quantity if side == "buy" else -quantity


def final_quantity(check: Check, order: OrderIntent) -> Decimal:
    """The quantity that goes on: the reduced one, checked to be a real reduction."""
    if check.outcome is Outcome.REDUCE:
        assert check.quantity is not None
        assert 0 < check.quantity < order.quantity
        return check.quantity
    assert check.quantity is None
    return order.quantity


@settings(max_examples=200, deadline=None)
@given(
    side=sides,
    quantity=quantities,
    position=positions,
    price=prices,
    limit=st.decimals(min_value=D(1), max_value=D(200_000), places=2),
)
def test_max_position_value_keeps_the_position_within_the_limit(
    side: str, quantity: Decimal, position: Decimal, price: Decimal, limit: Decimal
) -> None:
    order = intent(side, str(quantity))
    check = max_value(str(limit)).check(order, decision(), ctx(str(position), str(price)))
    if check.outcome is Outcome.DENY:
        return
    after = position + signed(side, final_quantity(check, order))
    if check.reason == "reduces the position":
        # may stay over the limit, but only ever shrinks towards zero
        assert abs(after) < abs(position)
        assert after == 0 or (after > 0) == (position > 0)
    else:
        assert abs(after) * price <= limit


@settings(max_examples=200, deadline=None)
@given(
    quantity=quantities,
    price=prices,
    cash=st.decimals(min_value=D(-1000), max_value=D(1_000_000), places=2),
    reserved=st.decimals(min_value=D(0), max_value=D(100_000), places=2),
    reserve=st.decimals(min_value=D(0), max_value=D("0.5"), places=2),
)
def test_buying_power_keeps_cost_within_available(
    quantity: Decimal, price: Decimal, cash: Decimal, reserved: Decimal, reserve: Decimal
) -> None:
    order = intent("buy", str(quantity))
    check = buying_power(str(reserve)).check(
        order, decision(), ctx(price=str(price), cash_=cash, reserved_=reserved)
    )
    if check.outcome is Outcome.DENY:
        return
    available = cash * (1 - reserve) - reserved
    assert final_quantity(check, order) * price <= available


@settings(max_examples=200, deadline=None)
@given(
    side=sides,
    quantity=quantities,
    position=positions,
    price=prices,
    stop_offset=st.decimals(min_value=D("-100"), max_value=D(100), places=2),
    use_hint=st.booleans(),
    equity=st.decimals(min_value=D(100), max_value=D(10_000_000), places=2),
    fraction=st.decimals(min_value=D("0.001"), max_value=D(1), places=3),
)
def test_max_risk_keeps_the_loss_at_the_stop_within_budget(
    side: str,
    quantity: Decimal,
    position: Decimal,
    price: Decimal,
    stop_offset: Decimal,
    use_hint: bool,
    equity: Decimal,
    fraction: Decimal,
) -> None:
    stop = price + stop_offset
    if use_hint:
        distance = abs(stop_offset) or D("0.01")
        order = intent(side, str(quantity))
        dec = decision(sizing=SizingHints(stop_distance=distance))
    else:
        distance = abs(stop_offset)
        order = intent(side, str(quantity), stop_loss=stop if stop > 0 else None)
        dec = decision()
        if stop <= 0:
            distance = D(0)
    context = ctx(str(position), str(price), equity_=equity)
    check = max_risk(str(fraction)).check(order, dec, context)
    if check.outcome is Outcome.DENY or distance == 0:
        return
    if check.reason == "reduces the position":
        assert abs(position + signed(side, quantity)) < abs(position)
        return
    assert final_quantity(check, order) * distance <= equity * fraction


def test_working_orders_count_against_the_position_limit() -> None:
    # Holding 40 at 100 with a working buy of 50: only 10 more fit under 10,000.
    context = ctx(position="40")
    context.pendings["AAPL"] = D(50)
    check = max_value().check(intent(quantity="30"), decision(), context)
    assert check.outcome is Outcome.REDUCE and check.quantity == D(10)


def test_a_sell_that_would_only_reduce_a_filled_position_counts_working_sells() -> None:
    # Long 50 with a working sell of 50: another sell of 50 opens a short.
    context = ctx(position="50")
    context.pendings["AAPL"] = D(-50)
    check = max_value().check(intent("sell", "50"), decision(), context)
    assert check.outcome is Outcome.PASS  # 5,000 short fits the 10,000 limit
    assert "reduces" not in check.reason
    big = max_value().check(intent("sell", "150"), decision(), context)
    assert big.outcome is Outcome.REDUCE and big.quantity == D(100)


def test_nan_confidence_is_denied() -> None:
    nan = Decision.trusted(symbol="AAPL", action=Action.BUY, confidence=float("nan"))
    check = MinConfidence(MinConfidence.Settings()).check(intent(), nan, ctx())
    assert check.outcome is Outcome.DENY


# -- options: a contract is worth its price times the multiplier ------------------------


def test_option_orders_are_valued_with_their_multiplier() -> None:
    from tradepipe.instruments import Option

    option = Option(underlying="AAPL", expiry=dt.date(2026, 12, 18), strike=200, right="C")
    order = intent(
        quantity="3",
        instrument=option,
        order_type="limit",
        limit_price=D("4.10"),
        stop_loss=D("2.10"),
    ).model_copy(update={"symbol": option.ticker})
    ctx = FakeContext(cash_=D(1_000), equity_=D(10_000))
    # 3 contracts x 4.10 x 100 = 1,230: over a 1,000 cap, so 2 contracts (820).
    value = MaxPositionValue(MaxPositionValue.Settings(limit=D(1_000))).check(
        order, decision(), ctx
    )
    assert (value.outcome, value.quantity) == (Outcome.REDUCE, D(2))
    # Risk 3 x 2.00 x 100 = 600 against 2% of 10,000 = 200: one contract.
    risk = MaxRiskPerTrade(MaxRiskPerTrade.Settings(max_fraction=D("0.02"))).check(
        order, decision(), ctx
    )
    assert (risk.outcome, risk.quantity) == (Outcome.REDUCE, D(1))
    # Cost 1,230 against 1,000 cash: two contracts fit.
    cost = BuyingPower(BuyingPower.Settings()).check(order, decision(), ctx)
    assert (cost.outcome, cost.quantity) == (Outcome.REDUCE, D(2))
